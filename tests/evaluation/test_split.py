import numpy as np
import polars as pl
from sklearn.model_selection import train_test_split

from pipeline.evaluation.split import TEST, TRAIN, VAL, filter_min_counts, notebook_split
from tests.support.synthetic import make


def _ratings(seed: int = 0) -> pl.DataFrame:
    data = make(n_users=40, n_movies=30, per_user=12, seed=seed)
    frame = pl.DataFrame(data.ratings, schema=["user_id", "movie_id", "rating", "timestamp"], orient="row")
    # a user with too few ratings and a movie rated only by them must be filtered out
    extra = pl.DataFrame({"user_id": [999] * 3, "movie_id": [1, 2, 777], "rating": [3.0] * 3, "timestamp": [1, 2, 3]})
    return pl.concat([frame, extra])


def test_filters_apply_users_first_then_movies() -> None:
    kept = filter_min_counts(_ratings(), 5)
    assert 999 not in kept["user_id"].to_list() and 777 not in kept["movie_id"].to_list()
    assert kept.group_by("movie_id").len()["len"].min() >= 5


def test_split_matches_a_literal_per_user_sklearn_loop() -> None:
    ratings = _ratings(seed=3)
    ours = notebook_split(ratings)
    expected = {}
    kept = filter_min_counts(ratings, 5)
    for user in sorted(kept["user_id"].unique().to_list()):
        rows = kept.filter(pl.col("user_id") == user).sort(["timestamp", "movie_id"])
        keys = list(zip(rows["user_id"], rows["movie_id"], strict=True))
        train, tmp = train_test_split(keys, test_size=0.30, random_state=42)
        val, test = train_test_split(tmp, test_size=0.50, random_state=42)
        expected.update({k: TRAIN for k in train} | {k: VAL for k in val} | {k: TEST for k in test})
    got = dict(zip(zip(ours["user_id"], ours["movie_id"], strict=True), ours["split"], strict=True))
    assert got == expected


def test_every_user_has_rows_in_each_split_and_proportions_are_70_15_15() -> None:
    out = notebook_split(_ratings())
    shares = out.group_by("split").len().sort("split")["len"].to_numpy() / len(out)
    assert np.allclose(shares, [0.70, 0.15, 0.15], atol=0.06)
    assert out.group_by("user_id").agg(pl.col("split").n_unique())["split"].min() == 3


def test_temporal_split_puts_each_users_latest_tenth_in_test_and_the_tenth_before_in_val() -> None:
    from pipeline.evaluation.split import temporal_split

    ratings = pl.DataFrame(
        {
            "user_id": [1] * 25 + [2] + [3] * 3,
            "movie_id": [*range(25), 7, 1, 2, 3],
            "rating": [4.0] * 29,
            "timestamp": [*range(25, 0, -1), 5, 10, 10, 11],  # user 1 rated in reverse id order
        }
    )
    out = temporal_split(ratings)
    user1 = out.filter(pl.col("user_id") == 1)
    # 25 ratings: last 2 by time are test; of the 23 before, the last 2 are val
    assert user1.filter(pl.col("split") == TEST)["timestamp"].sort().to_list() == [24, 25]
    assert user1.filter(pl.col("split") == VAL)["timestamp"].sort().to_list() == [22, 23]
    assert out.filter(pl.col("user_id") == 2)["split"].to_list() == [TEST]  # one rating: it is the test
    user3 = out.filter(pl.col("user_id") == 3).sort("timestamp", "movie_id")
    assert user3["split"].to_list() == [TRAIN, VAL, TEST]  # time ties broken by movie id


def test_temporal_split_of_real_ml1m_part_matches_the_reference_counts() -> None:
    from pipeline.evaluation.split import temporal_split
    from tests.conftest import shared_ratings

    counts = dict(temporal_split(shared_ratings("ml-1m-users-1-2999")).group_by("split").len().iter_rows())
    assert counts == {TRAIN: 397_566, VAL: 42_658, TEST: 47_426}  # EVALUATION.md, protocol B
