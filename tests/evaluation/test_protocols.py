"""Protocol B as each job runs it (the weekly job's refit, the nightly job's tuned model on test), and
the ml-latest-small notebook's SVD protocol reproduced."""

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.evaluation.protocols import TEST_FROM_REFIT, TEST_FROM_TUNED, full_ranking_protocol, svd_notebook_holdout
from pipeline.evaluation.split import TEST, TRAIN, VAL, holdout_time_split
from pipeline.ingest.layouts import WHOLE_STARS
from pipeline.models import registry
from pipeline.training import fit
from pipeline.training.recipe import FROM_SCRATCH, WARM_START, production_fit, ratings, read_for_models, warm_start_from
from tests.conftest import shared_ratings
from tests.support.model_data import FAST, features, planted_split

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def split() -> pl.DataFrame:
    return planted_split()


@pytest.mark.parametrize("name", ["ease", "biased_mf"])
def test_the_nightly_path_fits_once_and_labels_its_test_figures_as_the_tuned_models(name: str, split) -> None:
    params = registry.model_class(name).hyper_parameters(FAST)
    nightly, predictions = full_ranking_protocol(name, params, features(), split, WHOLE_STARS, CPU, refit=False)
    weekly, _ = full_ranking_protocol(name, params, features(), split, WHOLE_STARS, CPU, refit=True)
    # the report's rating plots: validation ratings beside the tuned model's predictions (rating models only)
    assert (predictions is None) == (name == "ease")
    assert predictions is None or len(predictions) == split.filter(pl.col("split") == VAL).height
    assert nightly["test_from"] == TEST_FROM_TUNED and "refit" not in nightly
    assert weekly["test_from"] == TEST_FROM_REFIT and "refit" in weekly
    # the same tuning either way: validation decides the same, only the test figures' model differs
    assert nightly["val"] == weekly["val"] and nightly["schedule"] == weekly["schedule"]
    assert 0 < nightly["test"]["ndcg@10"] <= 1
    assert weekly["test_tuned"] == nightly["test"]  # the weekly job reports the nightly figure beside its own
    assert nightly["test"]["users_evaluated"] == weekly["test"]["users_evaluated"]


@pytest.mark.parametrize("warm_epochs", [0, 2])
def test_the_weekly_refit_starts_where_production_will_from_the_tuned_weights_or_from_scratch(
    warm_epochs: int, split
) -> None:
    params = registry.model_class("biased_mf").hyper_parameters({**FAST, "warm_epochs": warm_epochs})
    weekly, _ = full_ranking_protocol("biased_mf", params, features(), split, WHOLE_STARS, CPU, refit=True)
    tuned_lr = weekly["schedule"]["lr_schedule"][-1]
    if warm_epochs:
        assert weekly["warm_start"] == {"epochs": 2, "lr_schedule": [tuned_lr, tuned_lr]}
        assert weekly["refit"]["start"] == WARM_START and weekly["refit"]["epochs"] == 2
    else:
        assert weekly["warm_start"] is None
        assert weekly["refit"]["start"] == FROM_SCRATCH
        assert weekly["refit"]["epochs"] == weekly["schedule"]["epochs"] == weekly["fit"]["best_epoch"]


@pytest.mark.parametrize(("max_epochs", "expected"), [(None, 2), (30, 2), (1, 1)])
def test_a_runs_max_epochs_caps_the_warm_production_fit_too(max_epochs: int | None, expected: int) -> None:
    params = {"warm_epochs": 2, "lr": 0.01} | ({} if max_epochs is None else {"max_epochs": max_epochs})
    warm = warm_start_from({"epochs": 5, "lr_schedule": [0.01, 0.01, 0.01, 0.005, 0.005]}, params)
    assert warm == {"epochs": expected, "lr_schedule": [0.005] * expected}


def test_a_production_fit_without_the_tuned_weights_replays_the_schedule_from_scratch(split) -> None:
    params = registry.model_class("biased_mf").hyper_parameters({**FAST, "warm_epochs": 1})
    rows = split.filter(pl.col("split").is_in([TRAIN, VAL]))
    schedule, warm = {"epochs": 3, "lr_schedule": [0.01] * 3}, {"epochs": 1, "lr_schedule": [0.01]}
    _, lost = production_fit("biased_mf", params, features(), rows, WHOLE_STARS, CPU, schedule, warm, None)
    assert lost["start"] == FROM_SCRATCH and lost["epochs"] == 3
    tuned = registry.create("biased_mf", params, features(), CPU)
    fit(tuned, ratings(rows, WHOLE_STARS), None, epochs=1)
    state = tuned.state_dict()
    _, kept = production_fit("biased_mf", params, features(), rows, WHOLE_STARS, CPU, schedule, warm, state)
    assert kept["start"] == WARM_START and kept["epochs"] == 1


def test_tuned_ease_on_test_ranks_from_train_with_the_weights_of_train_inner(split) -> None:
    params = registry.model_class("ease").hyper_parameters()
    model = registry.create("ease", params, features(), CPU)
    fit(model, ratings(split.filter(pl.col("split") == TRAIN), WHOLE_STARS))
    weights = model.state_dict()["weights"].copy()
    train = ratings(split.filter(pl.col("split").is_in([TRAIN, VAL])), WHOLE_STARS)
    model.rank_from(train)
    users = np.arange(10)
    x = np.zeros((len(users), weights.shape[0]), np.float32)
    for u, m in zip(train.users, train.movies, strict=True):
        if u < 10:
            x[u, m] = 1.0
    np.testing.assert_allclose(model.scores(users), x @ weights, rtol=1e-5, atol=1e-5)


def test_protocol_b_over_a_user_cap_ranks_a_sample_and_records_its_size(split) -> None:
    params = registry.model_class("ease").hyper_parameters()
    everyone, _ = full_ranking_protocol("ease", params, features(), split, WHOLE_STARS, CPU, refit=False)
    sampled, _ = full_ranking_protocol("ease", params, features(), split, WHOLE_STARS, CPU, refit=False, max_users=10)
    assert everyone["eval_sample_users"] is None and "users_sampled_from" not in everyone["val"]
    assert sampled["eval_sample_users"] == 10  # what model_runs.eval_sample_users records
    for part in ("val", "test"):
        assert sampled[part]["users_evaluated"] == 10
        assert sampled[part]["users_sampled_from"] == everyone[part]["users_evaluated"] > 10


def test_models_read_the_split_columns_they_use_with_int32_indices_and_the_same_rows(split, tmp_path) -> None:
    path = tmp_path / "temporal.parquet"
    split.write_parquet(path)
    read = read_for_models(path)
    assert "user_id" in split.columns and "movie_id" in split.columns
    assert read.columns == [c for c in ("user_idx", "movie_idx", "rating", "timestamp", "split") if c in split.columns]
    assert read.schema["user_idx"] == pl.Int32 and read.schema["movie_idx"] == pl.Int32
    for column in read.columns:
        assert read[column].cast(split.schema[column]).equals(split[column])
    # the protocol gives the same figures from either frame
    params = registry.model_class("ease").hyper_parameters(FAST)
    narrow, _ = full_ranking_protocol("ease", params, features(), read, WHOLE_STARS, CPU, refit=False)
    wide, _ = full_ranking_protocol("ease", params, features(), split, WHOLE_STARS, CPU, refit=False)
    assert narrow["val"] == wide["val"] and narrow["test"] == wide["test"]


def test_svd_reproduces_the_ml_latest_small_notebook() -> None:
    """Notebook: per-user time split 80/10/10, k=50, 8,886 of 9,818 test pairs, RMSE 0.9628, MAE 0.7459.

    Our split breaks timestamp ties by movie id (the notebook's tie order is
    pandas' unstable sort); that moves one test pair and ~0.001 of RMSE.
    bench/svd_notebook.py measures the spread over random tie orders.
    """
    ratings = shared_ratings("ml-latest-small")
    frame = holdout_time_split(ratings)
    assert (frame["split"] == TEST).sum() == 9_818
    pairs, rmse, mae = svd_notebook_holdout(ratings)
    assert pairs in (8_885, 8_886)
    assert rmse == pytest.approx(0.9628, abs=0.0015)
    assert mae == pytest.approx(0.7459, abs=0.0015)


def test_svd_with_timestamp_ties_broken_by_rating_gives_the_notebooks_pairs_and_rmse() -> None:
    """The one systematic tie order found that reproduces 8,886 pairs and RMSE 0.9628; its MAE is
    0.7466 against the notebook's 0.7459, so it is not the notebook's exact order either."""
    pairs, rmse, mae = svd_notebook_holdout(shared_ratings("ml-latest-small"), ties=("rating", "movie_id"))
    assert pairs == 8_886
    assert rmse == pytest.approx(0.9628, abs=5e-5)
    assert mae == pytest.approx(0.7466, abs=5e-5)
