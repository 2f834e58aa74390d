"""The scoring stages of a real run: shards, two-stage re-ranking, publishing every shard at once."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipeline.core.run_folder import RunFolder
from pipeline.stages.cli import main
from pipeline.stages.publish import publish as publish_stage
from pipeline.stages.score_shard import score
from tests.support.synthetic import make, write_ml1m

N_USERS, N = 30, 10


@pytest.fixture
def evaluated(tmp_path: Path) -> Path:
    """A run trained and evaluated up to the champion (neumf_features and its retriever biased_mf)."""
    dataset = write_ml1m(tmp_path / "ml1m", make(n_users=N_USERS, n_movies=40, per_user=15))
    options = {"--dataset": dataset, "--warehouse": tmp_path / "wh.duckdb", "--run-id": "scoring", "--top-n": N}
    options |= {"--max-epochs": 2, "--device": "cpu", "--models": "neumf_features,biased_mf", "--until": "evaluate"}
    assert main(["run", *(str(x) for pair in options.items() for x in pair)]) == 0
    return next((tmp_path / "var" / "runs").iterdir())


def _set(path: Path, **values) -> None:
    RunFolder.write(path, RunFolder.read(path) | values)


def test_an_mlp_champion_on_a_large_catalogue_is_scored_two_stage_in_shards_and_published_whole(evaluated):
    # the precondition under test: an MLP champion, a catalogue above the two-stage threshold, 5 shards
    run = RunFolder(evaluated)
    _set(run.champion, model="neumf_features")
    _set(run.config, two_stage_from=10, candidates=15, users_per_shard=7)
    score(str(evaluated))
    plan = run.read(run.scoring)
    rater = run.read(run.champion)["rater"]["model"]  # the lower validation RMSE
    assert plan == {"model": "neumf_features", "retriever": "biased_mf", "candidates": 15, "rater": rater}
    assert sorted(run.scores.iterdir()) == [run.shard(i) for i in range(5)]
    publish_stage(str(evaluated))
    with duckdb.connect(run.load_config().warehouse, read_only=True) as con:
        per_user = con.execute(
            "SELECT count(*), min(n), max(n) FROM (SELECT count(*) n FROM current_recommendations GROUP BY user_id)"
        ).fetchall()
        stars = con.execute(
            "SELECT min(predicted_rating), max(predicted_rating), bool_or(is_fallback) FROM current_recommendations"
        ).fetchall()[0]
        model = con.execute("SELECT DISTINCT model FROM current_recommendations").fetchall()
    assert per_user == [(N_USERS, N, N)]
    assert 1.0 <= stars[0] <= stars[1] <= 5.0 and stars[2] is False
    assert model == [("neumf_features",)]


def test_publishing_refuses_a_run_with_a_missing_shard(evaluated):
    run = RunFolder(evaluated)
    _set(run.config, users_per_shard=7)
    score(str(evaluated))
    run.shard(2).unlink()
    with pytest.raises(RuntimeError, match=rf"shards missing \['{run.shard(2).name}'\]"):
        publish_stage(str(evaluated))
    with duckdb.connect(run.load_config().warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM published_runs").fetchall() == [(0,)]


def test_the_rater_tie_reads_fit_seconds_that_a_real_runs_metrics_carry(evaluated):
    from pipeline.evaluation.champion import choose_rater, metric_value

    run = RunFolder(evaluated)
    results = [run.read(run.metrics(m)) for m in ("neumf_features", "biased_mf")]
    assert all(metric_value(r, "full_ranking.fit.seconds") > 0 for r in results)  # what a tie is broken on
    chosen = run.read(run.champion)["rater"]
    assert choose_rater(results) == (chosen["model"], chosen["val_rmse"])
