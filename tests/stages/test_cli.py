"""The whole job in one process (no Airflow), on synthetic files."""

import json
from pathlib import Path

import duckdb
import pytest

from pipeline.core.config import NIGHTLY_MODELS
from pipeline.models.registry import NAMES as ALL_MODELS
from pipeline.stages.cli import main
from tests.support.synthetic import make, write_ml1m

N = 10


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_ml1m(tmp_path / "ml1m", make(n_users=30, n_movies=40, per_user=15))


def _run(dataset: Path, wh: Path, run_id: str, *extra: str) -> int:
    return main(
        [
            "run",
            "--dataset",
            str(dataset),
            "--warehouse",
            str(wh),
            "--run-id",
            run_id,
            "--max-epochs",
            "2",
            "--top-n",
            str(N),
            "--device",
            "cpu",
            *extra,
        ]
    )


def test_every_user_gets_n_unseen_known_movies_from_the_nightly_set_decided_on_validation(dataset, tmp_path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert _run(dataset, wh, "run-1") == 0
    con = duckdb.connect(str(wh), read_only=True)
    per_user = con.execute("SELECT user_id, count(*) FROM current_recommendations GROUP BY ALL").fetchall()
    assert len(per_user) == 30 and {n for _, n in per_user} == {N}
    seen = con.execute(
        "SELECT count(*) FROM current_recommendations r JOIN ratings s USING (user_id, movie_id)"
    ).fetchall()[0][0]
    unknown = con.execute(
        "SELECT count(*) FROM current_recommendations WHERE movie_id NOT IN (SELECT movie_id FROM movies)"
    ).fetchall()[0][0]
    assert seen == 0 and unknown == 0
    rows = con.execute(
        "SELECT model, protocol, device, seconds, is_champion, metrics FROM model_runs WHERE run_id = 'run-1'"
    ).fetchall()
    by_key = {(m, p): (d, s, c, json.loads(x)) for m, p, d, s, c, x in rows}
    # the nightly set, protocol B only (protocol A and the refits are the weekly evaluation job's)
    assert set(by_key) == {(m, "full_ranking") for m in NIGHTLY_MODELS}
    for model in NIGHTLY_MODELS:
        device, seconds, _, full = by_key[(model, "full_ranking")]
        assert device == "cpu" and seconds > 0
        assert 0 <= full["val"]["ndcg@10"] <= 1 and full["test"]["users_evaluated"] > 0
        assert full["test_from"] == "tuned model on test"
    assert 0 < by_key[("neumf_features", "full_ranking")][3]["val"]["rmse"] < 1
    assert "rmse" not in by_key[("ease", "full_ranking")][3]["val"]  # ranks only
    # one champion, the model with the best full-ranking NDCG@10 on validation, and it is what was published
    champions = {m for (m, _), v in by_key.items() if v[2]}
    best = max(
        (m for m, p in by_key if p == "full_ranking"), key=lambda m: by_key[(m, "full_ranking")][3]["val"]["ndcg@10"]
    )
    assert champions == {best}
    assert con.execute("SELECT DISTINCT model FROM current_recommendations").fetchall() == [(best,)]


def test_the_evaluation_job_runs_every_model_under_both_protocols_and_publishes_nothing(dataset, tmp_path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert _run(dataset, wh, "weekly", "--job", "evaluation") == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        rows = con.execute("SELECT model, protocol, job, test_from, metrics FROM model_runs").fetchall()
        assert con.execute("SELECT count(*) FROM published_runs").fetchall() == [(0,)]
    by_key = {(m, p): (j, t, json.loads(x)) for m, p, j, t, x in rows}
    # every model under both protocols, except ncf_tags: ml-1m has no tags
    assert by_key[("ncf_tags", "skipped")][2]["skipped"].startswith("the dataset has no tags")
    for model in set(ALL_MODELS) - {"ncf_tags"}:
        notebook = by_key[(model, "notebook")][2]
        job, test_from, full = by_key[(model, "full_ranking")]
        assert job == "evaluation" and test_from == "refit on train"
        assert 0 < notebook["test"]["ndcg@10"] <= 1 and full["test"]["users_evaluated"] > 0
    assert 0 < by_key[("neumf_features", "notebook")][2]["test"]["rmse"] < 1
    assert "rmse" not in by_key[("ease", "notebook")][2]["test"]  # ranks only


def test_bad_data_exits_2_raises_alert_and_keeps_published_recommendations(dataset: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert _run(dataset, wh, "good") == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        before = con.execute("SELECT * FROM current_recommendations ORDER BY user_id, rank").fetchall()
    with open(dataset / "movies.dat", "a", encoding="latin-1") as fh:
        fh.write("1::Another Film (1999)::Drama\n")  # movie id 1 twice: the catalogue is ambiguous (critical)
    assert _run(dataset, wh, "bad") == 2
    with duckdb.connect(str(wh), read_only=True) as con:
        after = con.execute("SELECT * FROM current_recommendations ORDER BY user_id, rank").fetchall()
        alerts = con.execute(
            "SELECT column_name, severity, sample_values FROM dq_alerts WHERE run_id = 'bad'"
        ).fetchall()
    assert after == before
    assert [(c, sev) for c, sev, samples in alerts if "1" in samples] == [("movie_id", "critical")]


def test_a_later_run_scores_the_earlier_published_lists_on_the_ratings_made_in_between(dataset, tmp_path) -> None:
    wh = tmp_path / "wh.duckdb"
    common = ["--dataset", str(dataset), "--warehouse", str(wh), "--top-n", str(N), "--models", "most_popular"]
    # synthetic ratings run from 2001-09-09 for about four months
    assert main(["run", *common, "--run-id", "october", "--logical-date", "2001-10-15"]) == 0
    assert main(["run", *common, "--run-id", "december", "--logical-date", "2001-12-31"]) == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        rows = con.execute(
            "SELECT run_id, evaluated_run_id, window_start, window_end, active_users, hit_rate FROM forward_metrics"
        ).fetchall()
        in_window = con.execute(
            "SELECT count(DISTINCT user_id) FROM ratings WHERE rated_at >= TIMESTAMPTZ '2001-10-15 00:00:00+00'"
        ).fetchall()[0][0]
    assert len(rows) == 1
    run_id, evaluated, start, end, active, hit_rate = rows[0]
    assert (run_id, evaluated) == ("december", "october")
    assert (start.isoformat(), end.isoformat()) == ("2001-10-15T00:00:00", "2001-12-31T00:00:00")
    assert active == in_window > 0 and 0 <= hit_rate <= 1


def test_the_stage_names_the_cli_offers_are_the_nightly_jobs_stages_in_order() -> None:
    from pipeline.stages import cli, job

    assert cli.STAGE_NAMES == tuple(stage.__name__ for stage in job.NIGHTLY_STAGES) == tuple(job.BY_NAME)
    assert [s.__name__ for s in job.EVALUATION_STAGES] == [
        n for n in cli.STAGE_NAMES if n not in ("forward_evaluate", "score", "publish")
    ]
