"""An input problem that stops a run before validation (at fetch) is in dq_alerts like the ones
validation finds: the file, the rule, severity critical; and nothing published is touched."""

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from pipeline.core import warehouse
from pipeline.ingest import dq_tables
from pipeline.ingest.layouts import LayoutError
from pipeline.ingest.spec import SpecError
from pipeline.stages.fetch import fetch as fetch_stage
from pipeline.stages.prepare import prepare
from tests.support.synthetic import make, write_ml1m


def _fetch(dataset: Path, wh: Path, run_id: str = "r1") -> None:
    run_dir = prepare(run_id, datetime(2026, 1, 1, tzinfo=UTC), str(dataset), wh, models=["most_popular"])
    fetch_stage(run_dir)


def _fetch_alerts(wh: Path) -> list[tuple]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(
            "SELECT run_id, file, suite, expectation, severity, message FROM dq_alerts WHERE suite = 'fetch'"
        ).fetchall()


def _missing_movies(folder: Path) -> tuple[Path, str, str]:
    (folder / "movies.dat").unlink()
    return folder, "dataset_layout_is_recognised", "movies.dat"


def _unrecognised(folder: Path) -> tuple[Path, str, str]:
    for f in folder.iterdir():
        f.rename(f.with_suffix(".bak"))
    return folder, "dataset_layout_is_recognised", "no MovieLens layout recognised"


def _no_folder(folder: Path) -> tuple[Path, str, str]:
    return folder / "nowhere", "dataset_layout_is_recognised", "does not exist"


def _bad_spec(folder: Path) -> tuple[Path, str, str]:
    (folder / "dataset.toml").write_text("[files\nratings = ", encoding="utf-8")
    return folder, "dataset_spec_is_valid", "not valid TOML"


@pytest.mark.parametrize("breaks", [_missing_movies, _unrecognised, _no_folder, _bad_spec])
def test_a_stop_at_fetch_writes_a_critical_dq_alert_naming_the_file_and_rule(breaks, tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "ml1m", make(n_users=10, n_movies=8, per_user=4))
    dataset, rule, said = breaks(folder)
    wh = tmp_path / "wh.duckdb"
    with pytest.raises(LayoutError) as stopped:
        _fetch(dataset, wh)
    assert isinstance(stopped.value, SpecError) == (rule == "dataset_spec_is_valid")
    ((run_id, file, suite, expectation, severity, message),) = _fetch_alerts(wh)
    assert (run_id, suite, expectation, severity) == ("r1", "fetch", rule, "critical")
    assert message == str(stopped.value) and said in message
    assert file.startswith(str(dataset))  # the folder, or the spec file in it


def test_a_fetch_alert_survives_the_retry_that_validates_and_is_not_written_twice(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "ml1m", make(n_users=10, n_movies=8, per_user=4))
    movies = (folder / "movies.dat").read_bytes()
    (folder / "movies.dat").unlink()
    wh = tmp_path / "wh.duckdb"
    for _ in range(2):  # the same run retried before anyone restored the file: one row, not two
        with pytest.raises(LayoutError):
            _fetch(folder, wh)
    assert len(_fetch_alerts(wh)) == 1
    (folder / "movies.dat").write_bytes(movies)
    _fetch(folder, wh)  # restored: the retry gets past fetch, and validation rewrites its own rows only
    with warehouse.connect(str(wh)) as con:
        dq_tables.record_checks(con, "r1", [])
    assert len(_fetch_alerts(wh)) == 1


def test_a_stop_at_fetch_leaves_the_published_recommendations_as_they_were(tmp_path: Path) -> None:
    from pipeline.stages.cli import main

    folder = write_ml1m(tmp_path / "ml1m", make(n_users=30, n_movies=40, per_user=15))
    wh = tmp_path / "wh.duckdb"
    args = ["run", "--dataset", str(folder), "--warehouse", str(wh), "--max-epochs", "1", "--device", "cpu"]
    assert main([*args, "--run-id", "good", "--models", "most_popular"]) == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        before = con.execute("SELECT * FROM current_recommendations ORDER BY user_id, rank").fetchall()
    (folder / "users.dat").unlink()
    assert main([*args, "--run-id", "bad", "--models", "most_popular"]) == 2
    with duckdb.connect(str(wh), read_only=True) as con:
        after = con.execute("SELECT * FROM current_recommendations ORDER BY user_id, rank").fetchall()
    assert before and after == before
    assert [(r[0], r[2], r[4]) for r in _fetch_alerts(wh)] == [("bad", "fetch", "critical")]
