"""Champion choice by the declared metric, and the gate that keeps a worse champion unpublished."""

from pathlib import Path

import duckdb
import pytest

from pipeline.evaluation.champion import (
    choose_champion,
    choose_rater,
    comparison_table,
    gate,
    like_for_like,
    metric_value,
)
from pipeline.stages.cli import main
from tests.support.synthetic import make, write_ml1m


def _result(model: str, val_ndcg: float, rmse: float | None = None) -> dict:
    r = {"model": model, "full_ranking": {"val": {"ndcg@10": val_ndcg}, "test": {"ndcg@10": val_ndcg}}}
    if rmse is not None:
        r["notebook"] = {"test": {"rmse_stars": rmse}}
    return r


def test_the_champion_is_the_best_on_the_declared_metric_not_on_rmse() -> None:
    results = [_result("neumf_features", 0.03, rmse=0.87), _result("ease", 0.08), _result("svd", 0.06, rmse=0.98)]
    choice = choose_champion(results, "full_ranking.val.ndcg@10")
    assert (choice.model, choice.value) == ("ease", 0.08)
    assert [m for m, _ in choice.runners_up] == ["svd", "neumf_features"]
    assert metric_value(results[0], "notebook.test.rmse_stars") == 0.87
    with pytest.raises(ValueError, match="in no model's metrics"):
        choose_champion(results, "full_ranking.val.ndcg@99")


def _rating_model(model: str, val_rmse: float, fit_seconds: float) -> dict:
    return {"model": model, "full_ranking": {"val": {"rmse": val_rmse}, "fit": {"seconds": fit_seconds}}}


def test_the_rater_is_the_lowest_validation_rmse_when_it_is_clearly_lowest() -> None:
    results = [_rating_model("biased_mf", 0.1771, 8.0), _rating_model("neumf_features", 0.1732, 70.0)]
    assert choose_rater(results) == ("neumf_features", 0.1732)
    assert choose_rater([_result("ease", 0.08)]) is None  # no model predicts ratings


def test_of_rmses_tied_with_the_lowest_the_rater_is_the_quickest_to_fit() -> None:
    # 0.17302 is 0.1% above 0.17285: within the tie, so the 9x cheaper refit wins
    results = [
        _rating_model("neumf_features", 0.17285, 70.2),
        _rating_model("biased_mf", 0.17302, 8.2),
        _rating_model("svd", 0.19, 1.0),  # quickest, but not tied
        _result("sasrec", 0.17),
    ]
    assert choose_rater(results) == ("biased_mf", 0.17302)


def test_gate_holds_back_a_champion_worse_than_the_published_one_beyond_the_tolerance() -> None:
    choice = choose_champion([_result("mlp", 0.050)], "full_ranking.val.ndcg@10")
    assert gate(choice, None, 0.01)["publish"]
    assert gate(choice, ("run-1", "ease", 0.055), 0.01)["publish"]  # within tolerance
    held = gate(choice, ("run-1", "ease", 0.070), 0.01)
    assert not held["publish"] and "ease" in held["message"] and "run-1" in held["message"]


def test_comparison_table_has_one_row_per_model_and_marks_the_champion() -> None:
    table = comparison_table([_result("ease", 0.08), {"model": "ncf_tags", "skipped": "no tags"}], "ease")
    assert "| ease (champion) |" in table and "skipped: no tags" in table
    assert len(table.splitlines()) == 4


def _run(dataset: Path, wh: Path, run_id: str, models: str) -> int:
    args = ["run", "--dataset", str(dataset), "--warehouse", str(wh), "--run-id", run_id, "--models", models]
    return main([*args, "--max-epochs", "2", "--top-n", "5", "--device", "cpu"])


def test_a_clearly_worse_champion_is_not_published_and_raises_a_quality_alert(tmp_path: Path) -> None:
    # planted clusters: EASE finds them, global popularity cannot
    dataset = write_ml1m(tmp_path / "ml1m", make(n_users=80, n_movies=60, per_user=20, seed=5, clusters=4))
    wh = tmp_path / "wh.duckdb"
    assert _run(dataset, wh, "good", "ease") == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        before = con.execute("SELECT * FROM current_recommendations ORDER BY user_id, rank").fetchall()
    assert _run(dataset, wh, "worse", "most_popular") == 2
    with duckdb.connect(str(wh), read_only=True) as con:
        after = con.execute("SELECT * FROM current_recommendations ORDER BY user_id, rank").fetchall()
        alert = con.execute(
            "SELECT suite, expectation, severity, message FROM dq_alerts WHERE run_id = 'worse'"
        ).fetchall()
        recorded = con.execute(
            "SELECT model, protocol, is_champion FROM model_runs WHERE run_id = 'worse' ORDER BY protocol"
        ).fetchall()
        models = con.execute("SELECT DISTINCT model FROM current_recommendations").fetchall()
        pages = con.execute("SELECT DISTINCT report_path FROM model_runs WHERE run_id = 'worse'").fetchall()
    assert after == before and models == [("ease",)]
    # the held-back run still has its report, which says why nothing was published
    assert len(pages) == 1 and "not published" in Path(pages[0][0]).read_text()
    assert len(alert) == 1 and alert[0][:3] == ("model_quality", "champion_not_worse_than_published", "critical")
    assert "most_popular" in alert[0][3] and "not published" in alert[0][3]
    # the challenger's metrics are still recorded, labelled by protocol (a nightly run: protocol B only)
    assert recorded == [("most_popular", "full_ranking", True)]


def test_published_champion_is_judged_on_this_runs_data_when_it_was_trained_here() -> None:
    def result(model: str, ndcg: float) -> dict:
        return {"model": model, "full_ranking": {"val": {"ndcg@10": ndcg}}}

    metric = "full_ranking.val.ndcg@10"
    published = ("run-1", "ease", 0.28)  # measured on run-1's (earlier) validation window
    this_run = [result("most_popular", 0.15), result("ease", 0.16)]
    assert like_for_like(published, this_run, metric) == ("run-1", "ease", 0.16)
    assert gate(choose_champion(this_run, metric), like_for_like(published, this_run, metric), 0.01)["publish"]
    # a champion no longer trained keeps its own figure: dropping it from the models is still gated
    without = [result("most_popular", 0.15)]
    assert like_for_like(published, without, metric) == published
    assert not gate(choose_champion(without, metric), like_for_like(published, without, metric), 0.01)["publish"]
    assert like_for_like(None, this_run, metric) is None
