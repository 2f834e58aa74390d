"""EASE, and both baselines (EASE and most-popular) equal to the reference figures on real data."""

import numpy as np
import polars as pl
import pytest

from pipeline.core.metrics import full_ranking_metrics
from pipeline.evaluation.split import TEST, temporal_split
from pipeline.models.base import interactions
from pipeline.models.closed_form import EASE
from pipeline.models.popularity import MostPopular
from tests.conftest import shared_ratings


def test_ease_learns_item_to_item_structure_and_never_scores_an_item_by_itself() -> None:
    # two disjoint taste groups: users who rate 0 also rate 1; users who rate 2 also rate 3
    users = np.repeat(np.arange(20), 2)
    movies = np.array([[0, 1] if u < 10 else [2, 3] for u in range(20)]).ravel()
    model = EASE(lam=1.0).fit(interactions(users, movies, 21, 4))
    assert np.allclose(np.diag(model.weights), 0)
    model.x = interactions(np.array([20]), np.array([0]), 21, 4)  # a new user who rated movie 0
    scores = model.scores(np.array([20]))[0]
    assert scores[1] > max(scores[2], scores[3])  # movie 1, from the same group, comes first


def test_ease_over_its_max_movies_learns_the_most_rated_and_never_recommends_the_rest() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 300, 4000)
    movies = np.minimum(rng.zipf(1.5, 4000) - 1, 59)  # movie 0 the most rated, then 1, ...
    x = interactions(users, movies, 300, 60)
    capped = EASE(lam=10.0, max_movies=20).fit(x)
    counts = np.asarray(x.sum(axis=0)).ravel()
    assert capped.weights.shape == (20, 20)
    assert set(capped.movies) == set(np.argsort(-counts, kind="stable")[:20])
    scores = capped.scores(np.arange(300))
    outside = np.setdiff1d(np.arange(60), capped.movies)
    assert np.isneginf(scores[:, outside]).all() and np.isfinite(scores[:, capped.movies]).all()
    # its weights are EASE's closed form on those columns alone: the same as fitting them directly
    direct = EASE(lam=10.0).fit(x[:, capped.movies].tocsr())
    np.testing.assert_allclose(capped.weights, direct.weights, rtol=1e-4, atol=1e-6)
    # reasons name a history movie EASE learnt over, in the catalogue's own indices
    top = np.argsort(-scores[:5], axis=1)[:, :3]
    strongest = capped.strongest(np.arange(5), top)
    assert np.isin(strongest[strongest >= 0], capped.movies).all()


def test_ease_builds_the_same_weights_block_by_block_as_in_one_piece() -> None:
    from pipeline.models import closed_form

    rng = np.random.default_rng(1)
    x = interactions(rng.integers(0, 200, 3000), rng.integers(0, 70, 3000), 200, 70)
    gram = closed_form._dense_gram(x.tocsc(), block=16)
    np.testing.assert_allclose(gram, (x.T @ x).toarray())
    lower = np.tril(rng.random((70, 70)).astype(np.float32))
    sym = lower.copy()
    closed_form._symmetric_from_lower(sym, block=16)
    np.testing.assert_array_equal(sym, np.tril(lower) + np.tril(lower, -1).T)


def test_ease_weights_are_row_major_and_equal_the_closed_form() -> None:
    # scipy's sparse @ dense copies a column-major right-hand side on every call (1.6 GB at 20,000 movies)
    rng = np.random.default_rng(2)
    x = interactions(rng.integers(0, 100, 800), rng.integers(0, 30, 800), 100, 30)
    model = EASE(lam=5.0).fit(x)
    assert model.weights.flags.c_contiguous
    p = np.linalg.inv((x.T @ x).toarray().astype(np.float64) + 5.0 * np.eye(30))
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weights, expected, atol=1e-5)


def _ml1m_protocol_b() -> tuple:
    ratings = shared_ratings("ml-1m-users-1-2999")
    split = temporal_split(ratings)
    train = split.filter(pl.col("split") != TEST)
    users, movies = train["user_id"].unique().sort(), train["movie_id"].unique().sort()
    u_index = dict(zip(users.to_list(), range(len(users)), strict=True))
    m_index = dict(zip(movies.to_list(), range(len(movies)), strict=True))
    x = interactions(
        train["user_id"].replace_strict(u_index).to_numpy(),
        train["movie_id"].replace_strict(m_index).to_numpy(),
        len(users),
        len(movies),
    )
    test = split.filter(
        (pl.col("split") == TEST)
        & pl.col("movie_id").is_in(movies.implode())
        & pl.col("user_id").is_in(users.implode())
    )
    return (
        x,
        test["user_id"].replace_strict(u_index).to_numpy(),
        test["movie_id"].replace_strict(m_index).to_numpy(),
        test["rating"].to_numpy(),
    )


@pytest.mark.parametrize(
    ("model", "recall", "ndcg", "hit_rate", "coverage"),
    [(MostPopular(), 0.050, 0.055, 0.263, 0.037), (EASE(lam=1000.0), 0.095, 0.085, 0.347, 0.240)],
    ids=["most-popular", "ease-1000"],
)
def test_baselines_reproduce_the_reference_full_ranking_figures(model, recall, ndcg, hit_rate, coverage) -> None:
    x, users, movies, ratings = _ml1m_protocol_b()
    m = full_ranking_metrics(model.fit(x).scores, x, users, movies, ratings, relevant_at=4.0)
    assert (m["users_evaluated"], m["candidate_movies"]) == (2_835, 3_592)
    assert m["recall@10"] == pytest.approx(recall, abs=6e-4)
    assert m["ndcg@10"] == pytest.approx(ndcg, abs=6e-4)
    assert m["hit_rate@10"] == pytest.approx(hit_rate, abs=6e-4)
    assert m["coverage@10"] == pytest.approx(coverage, abs=6e-4)
