"""Top-N scoring: seen movies excluded, shards, two-stage re-ranking, fallbacks, predicted ratings."""

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.ingest.features import Features
from pipeline.ingest.layouts import WHOLE_STARS
from pipeline.models.base import Recommender
from pipeline.serving.recommend import (
    HISTORY_FOR_REASONS,
    Genres,
    _best_rated_by_levels,
    _best_rated_by_polars,
    _liked_history,
    needs_two_stage,
    top_k,
    top_n,
)
from pipeline.training import fit
from pipeline.training.recipe import ratings as to_ratings
from tests.support.model_data import fitted
from tests.support.synthetic import make

CPU = torch.device("cpu")
N_USERS, N_MOVIES = 40, 30
FAST = {"max_epochs": 3, "batch_size": 128, "lr": 0.01}


def _features() -> Features:
    return Features(
        user_ids=np.arange(1, N_USERS + 1),
        movie_ids=np.arange(1, N_MOVIES + 1),
        user_features=np.eye(2, dtype=np.float32)[np.arange(N_USERS) % 2],
        movie_features=np.eye(3, dtype=np.float32)[np.arange(N_MOVIES) % 3],  # movie m has genre m % 3
        user_feature_names=["a", "b"],
        genres=["Comedy", "Drama", "Horror"],
        movie_tags=np.zeros((N_MOVIES, 0), np.float32),
        tag_terms=[],
    )


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    synthetic = make(n_users=N_USERS, n_movies=N_MOVIES, per_user=12, seed=5, clusters=3)
    frame = pl.DataFrame(synthetic.ratings, schema=["user_id", "movie_id", "rating", "timestamp"], orient="row")
    return frame.with_columns(user_idx=pl.col("user_id") - 1, movie_idx=pl.col("movie_id") - 1)


def _fitted(name: str, frame: pl.DataFrame) -> Recommender:
    return fitted(name, to_ratings(frame, WHOLE_STARS), None, FAST, feats=_features(), epochs=3)


@pytest.fixture(scope="module")
def mf(data) -> Recommender:
    return _fitted("biased_mf", data)


@pytest.fixture(scope="module")
def mlp(data) -> Recommender:
    return _fitted("neumf_features", data)


def _lists(recs: pl.DataFrame) -> dict[int, list[int]]:
    return {u: g.sort("rank")["movie_idx"].to_list() for (u,), g in recs.group_by("user_idx")}


def test_every_user_gets_n_unseen_movies_in_score_order(data, mf) -> None:
    recs = top_n(mf, data, n=5)
    assert recs["user_idx"].n_unique() == N_USERS and recs.group_by("user_idx").len()["len"].unique().to_list() == [5]
    assert recs.join(data, on=["user_idx", "movie_idx"]).height == 0  # nothing already rated
    for (_,), group in recs.group_by("user_idx"):
        scores = group.sort("rank")["score"].to_list()
        assert scores == sorted(scores, reverse=True)


def test_movies_without_training_rows_are_never_recommended(data, mf) -> None:
    train = data.filter(pl.col("movie_idx") != 0)  # movie 0 is rated, but not in what the model learned
    recs = top_n(mf, data, n=10, train=train)
    assert 0 not in recs["movie_idx"].to_list()


def test_shards_scored_separately_give_exactly_the_lists_of_one_pass(data, mf) -> None:
    whole = top_n(mf, data, n=5)
    shards = [top_n(mf, data, n=5, users=np.arange(N_USERS)[i : i + 15]) for i in range(0, N_USERS, 15)]
    assert _lists(pl.concat(shards)) == _lists(whole)


def test_two_stage_with_every_movie_as_candidate_equals_scoring_everything(data, mlp, mf) -> None:
    assert _lists(top_n(mlp, data, n=5, retriever=mf, candidates=N_MOVIES)) == _lists(top_n(mlp, data, n=5))


def test_two_stage_re_ranks_only_the_retrievers_candidates(data, mlp, mf) -> None:
    recs = top_n(mlp, data, n=3, retriever=mf, candidates=4)
    retrieved = _lists(top_n(mf, data, n=4))
    for user, movies in _lists(recs).items():
        assert set(movies) <= set(retrieved[user])
    assert recs.join(data, on=["user_idx", "movie_idx"]).height == 0


def test_only_mlp_models_on_large_catalogues_go_two_stage(mlp, mf) -> None:
    assert needs_two_stage(mlp, from_movies=N_MOVIES) and not needs_two_stage(mlp, from_movies=N_MOVIES + 1)
    assert not needs_two_stage(mf, from_movies=1)


def test_predicted_ratings_come_from_the_rating_head_even_when_ranking_by_interaction(data, mlp) -> None:
    assert mlp.ranking_head == "interaction"
    recs = top_n(mlp, data, n=5)
    expected = mlp.predict(recs["user_idx"].to_numpy(), recs["movie_idx"].to_numpy())
    np.testing.assert_allclose(recs["predicted"].to_numpy(), expected, rtol=1e-5)
    assert recs["predicted"].is_between(0, 1).all()


def test_mf_predicted_ratings_derived_from_interaction_scores_equal_its_predictions(data, mf) -> None:
    assert mf.ranking_head == "interaction"
    recs = top_n(mf, data, n=5)
    expected = mf.predict(recs["user_idx"].to_numpy(), recs["movie_idx"].to_numpy())
    np.testing.assert_allclose(recs["predicted"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(recs["predicted"].to_numpy(), recs["score"].to_numpy())  # the heads do differ


@pytest.mark.parametrize("width", [12_800, 12_813])  # 400 whole chunks (50 groups); and a tail of 13 columns
def test_chunked_top_k_returns_exactly_torchs_top_values_with_distinct_columns(width) -> None:
    generator = torch.Generator().manual_seed(width)
    scores = torch.randint(0, 50, (64, width), generator=generator).float()  # many ties
    scores[:, ::3] = float("-inf")  # seen movies
    scores[0, -5:] = 1000.0  # the best columns of a row in the tail
    scores[1, :] = float("-inf")  # a user with no candidate left
    scores[2, :] = float("-inf")
    scores[2, ::1000] = 7.0  # fewer finite scores than k: no floor, torch.topk ranks the row
    scores[3, :-20] = float("-inf")
    scores[3, -20:] = 5.0  # exactly k finite scores, in the last chunk and the tail
    values, columns = top_k(scores, 20, chunk=32, group=8)
    expected, _ = torch.topk(scores, 20, dim=1)
    assert torch.equal(values, expected)
    assert torch.equal(scores.gather(1, columns), values)  # each column holds the value reported for it
    assert all(len(set(row.tolist())) == 20 for row in columns)
    assert set(columns[0, :5].tolist()) == set(range(width - 5, width))
    assert set(columns[3].tolist()) == set(range(width - 20, width))


def test_top_k_of_a_matrix_too_narrow_to_prune_is_torchs() -> None:
    scores = torch.randn(8, 500, generator=torch.Generator().manual_seed(3))
    values, columns = top_k(scores, 20, chunk=32, group=8)  # one group: no floor to gain from
    expected_values, expected_columns = torch.topk(scores, 20, dim=1)
    assert torch.equal(values, expected_values) and torch.equal(columns, expected_columns)


def test_users_below_min_history_get_a_flagged_fallback_from_their_favourite_genres(data, mf) -> None:
    # user 0 keeps two training ratings, both of Horror movies (genre 2: movies 2, 5, 8, ...)
    train = data.filter(pl.col("user_idx") != 0).vstack(
        pl.DataFrame(
            {"user_id": [1, 1], "movie_id": [3, 6], "rating": [5.0, 4.0], "timestamp": [1, 2]}
            | {"user_idx": [0, 0], "movie_idx": [2, 5]},
            schema=data.schema,
        )
    )
    genres = Genres(_features().movie_features, _features().genres)
    recs = top_n(mf, train, n=5, min_history=3, genres=genres, like_threshold=WHOLE_STARS.like_threshold)
    cold = recs.filter(pl.col("user_idx") == 0).sort("rank")
    assert cold["is_fallback"].all() and cold.height == 5
    assert set(cold["reason_genres"].to_list()) == {"Horror"}
    horror_left = [m for m in range(2, N_MOVIES, 3) if m not in (2, 5)]
    assert set(cold["movie_idx"].to_list()) <= set(horror_left)  # 8 unseen Horror movies fill 5 slots
    assert cold["predicted"].is_nan().all() and (cold["reason_movie_idx"] == -1).all()
    assert not recs.filter(pl.col("user_idx") != 0)["is_fallback"].any()


def _cold_user_zero(data: pl.DataFrame) -> pl.DataFrame:
    """`data` where user 0 keeps only two ratings (below min_history 3: a fallback list)."""
    return data.filter(pl.col("user_idx") != 0).vstack(data.filter(pl.col("user_idx") == 0).head(2))


def test_predicted_rating_is_filled_by_the_rater_when_the_champion_ranks_only(data, mf) -> None:
    ease = _fitted("ease", data)
    train = _cold_user_zero(data)
    fit(ease, to_ratings(train, WHOLE_STARS))
    genres = Genres(_features().movie_features, _features().genres)
    recs = top_n(ease, train, n=5, min_history=3, genres=genres, like_threshold=4.0, rater=mf)
    assert recs.filter(pl.col("is_fallback"))["user_idx"].unique().to_list() == [0]
    expected = mf.predict(recs["user_idx"].to_numpy(), recs["movie_idx"].to_numpy())
    np.testing.assert_allclose(recs["predicted"].to_numpy(), expected, rtol=1e-5)  # every row, fallbacks too
    assert recs["predicted"].is_finite().all()
    without = top_n(ease, train, n=5, min_history=3, genres=genres, like_threshold=4.0)
    assert without["predicted"].is_nan().all()  # EASE alone predicts no rating


def test_an_ease_reason_is_the_history_movie_with_the_largest_weight_towards_the_movie(data) -> None:
    ease = _fitted("ease", data)
    recs = top_n(ease, data, n=5)
    weights, seen = ease.state_dict()["weights"], data.group_by("user_idx").agg("movie_idx", "rating")
    history = {u: (m, r) for u, m, r in seen.iter_rows()}
    for user, movie, reason, rating in recs.select("user_idx", "movie_idx", "reason_movie_idx", "reason_rating").rows():
        movies, ratings = history[user]
        contributions = weights[movies, movie]  # the score is their sum
        assert reason == movies[int(np.argmax(contributions))]
        assert rating == ratings[int(np.argmax(contributions))]
    assert recs["reason_popularity"].is_null().all()


def test_a_most_popular_reason_is_its_ratings_count_and_window_never_a_similar_movie(data) -> None:
    popular = _fitted("most_popular", data)
    recs = top_n(popular, data, n=5)
    counts = data.group_by("movie_idx").len()
    joined = recs.join(counts, on="movie_idx")
    assert (joined["reason_popularity"] == joined["len"]).all()
    assert (recs["reason_movie_idx"] == -1).all()
    first, last = (
        datetime.fromtimestamp(int(t), UTC).date() for t in (data["timestamp"].min(), data["timestamp"].max())
    )
    assert recs["popular_from"].unique().to_list() == [first] and recs["popular_to"].unique().to_list() == [last]


def test_every_factor_and_sequence_model_row_names_a_history_movie(data, mf) -> None:
    for model in (mf, _fitted("sasrec", data)):
        recs = top_n(model, data, n=5)
        assert (recs["reason_movie_idx"] >= 0).all(), model.name
        rated = recs.join(data, left_on=["user_idx", "reason_movie_idx"], right_on=["user_idx", "movie_idx"])
        assert rated.height == recs.height and (rated["reason_rating"] == rated["rating"]).all()


def test_fewer_candidates_than_n_gives_only_real_rows(data, mf) -> None:
    recs = top_n(mf, data, n=N_MOVIES)
    seen = data.group_by("user_idx").len()
    per_user = recs.group_by("user_idx").len().join(seen, on="user_idx")
    assert (per_user["len"] == N_MOVIES - per_user["len_right"]).all()
    assert recs["score"].is_finite().all()


def _ratings_with_unique_times(values: np.ndarray, seed: int) -> pl.DataFrame:
    """Users with 0-60 ratings each (some under the history width), every timestamp distinct."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(300), rng.integers(0, 61, 300))
    return pl.DataFrame(
        {
            "user_idx": users,
            "movie_idx": rng.integers(0, 500, len(users)),
            "rating": rng.choice(values, len(users)),
            "timestamp": 978_300_000 + rng.permutation(len(users)),
        }
    )


def test_best_rated_history_by_rating_levels_equals_polars_top_k_per_user() -> None:
    ratings = _ratings_with_unique_times(np.arange(1, 11) / 2, seed=5)  # half stars: many equal ratings
    by_levels = _best_rated_by_levels(ratings, HISTORY_FOR_REASONS)
    assert by_levels is not None
    expected = pl.DataFrame(dict(zip("upmr", _best_rated_by_polars(ratings, HISTORY_FOR_REASONS), strict=True)))
    got = pl.DataFrame(dict(zip("upmr", by_levels, strict=True)))
    assert got.sort("u", "p").equals(expected.sort("u", "p"))
    assert got.height == sum(min(n, HISTORY_FOR_REASONS) for n in ratings["user_idx"].value_counts()["count"])


def test_ratings_off_the_half_star_grid_are_ranked_by_polars_instead() -> None:
    ratings = _ratings_with_unique_times(np.array([0.1, 2.25, 3.7, 4.95]), seed=6)
    assert _best_rated_by_levels(ratings, HISTORY_FOR_REASONS) is None
    movie, rating = _liked_history(ratings, 300)
    own = ratings.filter(pl.col("user_idx") == 7)
    first = own.sort("rating", "timestamp", descending=True).head(HISTORY_FOR_REASONS)
    assert movie[7, : first.height].tolist() == first["movie_idx"].to_list()
    assert rating[7, : first.height].tolist() == pytest.approx(first["rating"].to_list())


def test_ratings_without_timestamps_are_ranked_by_polars_instead() -> None:
    ratings = _ratings_with_unique_times(np.arange(1, 11) / 2, seed=7).with_columns(
        pl.lit(None, dtype=pl.Int64).alias("timestamp")
    )
    assert _best_rated_by_levels(ratings, HISTORY_FOR_REASONS) is None
    movie, rating = _liked_history(ratings, 300)
    assert (movie >= 0).sum() == sum(min(n, HISTORY_FOR_REASONS) for n in ratings["user_idx"].value_counts()["count"])
    best = ratings.group_by("user_idx").agg(pl.col("rating").max()).sort("user_idx")
    assert rating[best["user_idx"].to_numpy(), 0].tolist() == pytest.approx(best["rating"].to_list())
