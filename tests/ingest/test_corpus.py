"""Every corruption in the corpus: the run fails or warns as its severity says, the alert
names the file and rule, and what consumers read is byte-for-byte unchanged."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from pipeline.ingest.layouts import LayoutError
from pipeline.ingest.validate import KIND_ORDER, DataQualityError, load_suite
from pipeline.stages import cli
from pipeline.stages.fetch import fetch as fetch_stage
from pipeline.stages.load import load as load_stage
from pipeline.stages.prepare import prepare
from pipeline.stages.validate import validate as validate_stage
from tests.support.corpus import CORPUS, Corruption
from tests.support.synthetic import make, write_ml1m, write_ml100k, write_ml_latest, write_spec_dataset

LOGICAL_DATE = datetime(2003, 1, 1, tzinfo=UTC)  # after every synthetic rating, before "now"
WRITERS = {"ml-1m": write_ml1m, "ml-latest": write_ml_latest, "ml-100k": write_ml100k, "spec": write_spec_dataset}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clean")
    # Many movies, few ratings each: one quarantined movie orphans only a handful of ratings.
    data = make(n_users=60, n_movies=600, per_user=15, half_stars=False)
    half = make(n_users=60, n_movies=600, per_user=15, half_stars=True)
    return {name: writer(root / name, half if name == "ml-latest" else data) for name, writer in WRITERS.items()}


@pytest.fixture(scope="module")
def published(clean, tmp_path_factory) -> Path:
    """A warehouse with good recommendations already published."""
    wh = tmp_path_factory.mktemp("wh") / "published.duckdb"
    args = ["run", "--dataset", str(clean["ml-1m"]), "--warehouse", str(wh), "--run-id", "good"]
    assert cli.main([*args, "--max-epochs", "1", "--top-n", "5", "--logical-date", LOGICAL_DATE.isoformat()]) == 0
    return wh


def _snapshot(wh: Path, out: Path) -> bytes:
    with duckdb.connect(str(wh), read_only=True) as con:
        con.execute(f"COPY (SELECT * FROM current_recommendations ORDER BY ALL) TO '{out}' (HEADER)")
    return out.read_bytes()


def _stages(dataset: Path, wh: Path, run_id: str) -> None:
    run_dir = prepare(run_id, LOGICAL_DATE, str(dataset), wh, top_n_items=5, max_epochs=1)
    for stage in (fetch_stage, validate_stage, load_stage):
        stage(run_dir)


def test_corpus_has_at_least_thirty_distinct_corruptions() -> None:
    assert len({c.name for c in CORPUS}) == len(CORPUS) >= 30


@pytest.mark.parametrize("corruption", CORPUS, ids=lambda c: c.name.replace(" ", "-"))
def test_corruption_fails_or_warns_names_file_and_rule_and_keeps_recommendations(
    corruption: Corruption, clean, published: Path, tmp_path: Path
) -> None:
    dataset = shutil.copytree(clean[corruption.base], tmp_path / "data")
    corruption.apply(dataset)
    wh = tmp_path / "wh.duckdb"
    shutil.copy(published, wh)
    before = _snapshot(wh, tmp_path / "before.csv")

    error: Exception | None = None
    try:
        _stages(dataset, wh, "corrupt")
    except (DataQualityError, LayoutError) as exc:
        error = exc

    if corruption.severity == "layout":
        assert isinstance(error, LayoutError), error
        assert corruption.file in str(error) and corruption.rule in str(error)
    else:
        with duckdb.connect(str(wh), read_only=True) as con:
            alerts = con.execute("SELECT file, severity, message FROM dq_alerts WHERE run_id = 'corrupt'").fetchall()
        named = [(sev, msg) for file, sev, msg in alerts if file.endswith(corruption.file) and corruption.rule in msg]
        assert named, f"no alert naming {corruption.file} and {corruption.rule!r}: {alerts}"
        if corruption.severity == "critical":
            assert isinstance(error, DataQualityError), "a critical corruption must stop the run"
            assert "critical" in {sev for sev, _ in named}
        else:
            assert error is None, f"a warning must not stop the run: {error}"
            assert {sev for _, _, sev in [(f, m, s) for f, s, m in alerts]} == {"warning"}
            _assert_outcome_recorded(wh, corruption)
    assert _snapshot(wh, tmp_path / "after.csv") == before


# Rules checked on the bytes rather than in a suite, and what they do to a row.
FILE_LEVEL_OUTCOMES = {"CSV": "quarantine", "header's number of fields": "quarantine", "LF": "alert_only"}


def _declared_outcome(fragment: str) -> str:
    """What the suites say happens to a row breaking the rule `fragment` names."""
    if fragment in FILE_LEVEL_OUTCOMES:
        return FILE_LEVEL_OUTCOMES[fragment]
    found = {
        next(k for k in ("quarantine", "null", "alert_only") if spec["meta"].get(k))
        for kind in KIND_ORDER
        for section in ("lines", "values", "content")
        for spec in load_suite(kind).get(section, [])
        if fragment in spec["meta"]["rule"] and spec["meta"]["severity"] == "warning"
    }
    assert len(found) == 1, f"{fragment!r} names rules with outcomes {found}"
    return found.pop()


def _assert_outcome_recorded(wh: Path, corruption: Corruption) -> None:
    """A warning's bad rows are quarantined, or their values nulled and flagged, never kept as they were."""
    outcome = _declared_outcome(corruption.rule)
    like = f"%{corruption.rule}%"
    with duckdb.connect(str(wh), read_only=True) as con:
        held = con.execute(
            "SELECT count(*) FROM dq_quarantine WHERE run_id = 'corrupt' AND rule LIKE ?", [like]
        ).fetchall()[0][0]
        nulled = con.execute(
            "SELECT kind, column_name FROM dq_nulled WHERE run_id = 'corrupt' AND rule LIKE ?", [like]
        ).fetchall()
        if outcome == "quarantine":
            assert held >= 1 and not nulled, f"{corruption.name}: nothing quarantined under {corruption.rule!r}"
        elif outcome == "null":
            assert nulled and not held, f"{corruption.name}: nothing nulled under {corruption.rule!r}"
            kind, column = nulled[0]
            table_columns = {r[0] for r in con.execute(f"DESCRIBE {kind}").fetchall()}
            shown = f'"{column}"' if column in table_columns else "NULL"  # u.item's genre flags become `genres`
            flagged = con.execute(
                f"SELECT {shown}, dq_flags FROM {kind} WHERE len(list_filter(dq_flags, lambda f: f LIKE ?)) > 0",
                [like],
            ).fetchall()
            assert len(flagged) == len(nulled), f"{corruption.name}: flagged rows {flagged} for nulled {nulled}"
            # a nulled genre list loads as an empty one (no genres known), as a file without genres does
            assert all(value in (None, []) for value, _ in flagged), f"{corruption.name}: a nulled value was kept"
        else:
            assert held == 0 and not nulled, f"{corruption.name}: an alert-only rule set rows aside"


def test_rows_dropping_by_more_than_half_since_last_success_is_critical(clean, published: Path, tmp_path: Path) -> None:
    dataset = shutil.copytree(clean["ml-1m"], tmp_path / "data")
    wh = tmp_path / "wh.duckdb"
    shutil.copy(published, wh)
    _stages(dataset, wh, "night-1")  # passes and becomes the baseline
    ratings = dataset / "ratings.dat"
    lines = ratings.read_text().splitlines(keepends=True)
    ratings.write_text("".join(lines[: len(lines) // 3]))
    with pytest.raises(DataQualityError, match="dropped by more than half"):
        _stages(dataset, wh, "night-2")


def test_warning_run_records_quarantined_rows_with_line_and_reason(clean, published: Path, tmp_path: Path) -> None:
    dataset = shutil.copytree(clean["ml-1m"], tmp_path / "data")
    corruption = next(c for c in CORPUS if c.name == "rating 6 on a 1-5 scale")
    corruption.apply(dataset)
    wh = tmp_path / "wh.duckdb"
    shutil.copy(published, wh)
    _stages(dataset, wh, "warned")
    with duckdb.connect(str(wh), read_only=True) as con:
        rows = con.execute("SELECT kind, line, rule, record FROM dq_quarantine WHERE run_id = 'warned'").fetchall()
        loaded = con.execute("SELECT count(*) FROM ratings WHERE rating > 5").fetchall()[0][0]
    assert len(rows) == 1 and rows[0][:2] == ("ratings", 4) and "scale" in rows[0][2] and "::6::" in rows[0][3]
    assert loaded == 0
