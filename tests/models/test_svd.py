"""The truncated SVD model against the ml-latest-small notebook's own figures."""

import numpy as np
import pytest

from pipeline.evaluation.split import TEST, holdout_time_split
from pipeline.models.svd import TruncatedSVDRatings, notebook_holdout
from tests.conftest import shared_ratings


def test_svd_reconstructs_a_low_rank_matrix_plus_user_means() -> None:
    rng = np.random.default_rng(0)
    full = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 20)) + rng.uniform(2, 4, size=(30, 1))
    users, movies = np.nonzero(rng.random(full.shape) < 0.9)
    model = TruncatedSVDRatings(k=5).fit(users, movies, full[users, movies], 30, 20)
    error = model.predict(users, movies) - full[users, movies]
    mean_only = full[users, movies] - model.user_means[users]
    assert np.sqrt(np.mean(error**2)) < 0.25 * np.sqrt(np.mean(mean_only**2))


def test_svd_reproduces_the_ml_latest_small_notebook() -> None:
    """Notebook: per-user time split 80/10/10, k=50, 8,886 of 9,818 test pairs, RMSE 0.9628, MAE 0.7459.

    Our split breaks timestamp ties by movie id (the notebook's tie order is
    pandas' unstable sort); that moves one test pair and ~0.001 of RMSE.
    bench/svd_notebook.py measures the spread over random tie orders.
    """
    ratings = shared_ratings("ml-latest-small")
    frame = holdout_time_split(ratings)
    assert (frame["split"] == TEST).sum() == 9_818
    pairs, rmse, mae = notebook_holdout(ratings)
    assert pairs in (8_885, 8_886)
    assert rmse == pytest.approx(0.9628, abs=0.0015)
    assert mae == pytest.approx(0.7459, abs=0.0015)


def test_svd_with_timestamp_ties_broken_by_rating_gives_the_notebooks_pairs_and_rmse() -> None:
    """The one systematic tie order found that reproduces 8,886 pairs and RMSE 0.9628; its MAE is
    0.7466 against the notebook's 0.7459, so it is not the notebook's exact order either."""
    pairs, rmse, mae = notebook_holdout(shared_ratings("ml-latest-small"), ties=("rating", "movie_id"))
    assert pairs == 8_886
    assert rmse == pytest.approx(0.9628, abs=5e-5)
    assert mae == pytest.approx(0.7466, abs=5e-5)
