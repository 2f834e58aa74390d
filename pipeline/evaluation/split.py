"""The notebooks' evaluation split, reproduced exactly so results compare.

Protocol (../shared/EVALUATION.md, A): keep users with >= 5 ratings, then
movies with >= 5 ratings; per user in id order, rows sorted by timestamp
(ties by movie id), scikit-learn train_test_split(test_size=0.30,
random_state=42), then the remainder split 50/50 with random_state=42.
"""

from __future__ import annotations

import logging
from functools import cache

import numpy as np
import polars as pl
from sklearn.model_selection import train_test_split

log = logging.getLogger(__name__)

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")


@cache
def _positions(n: int, test_size: float, seed: int) -> np.ndarray:
    """Split label for each of n rows; only depends on n, so it is computed once per size."""
    labels = np.full(n, TRAIN, dtype=np.int8)
    try:
        _, rest = train_test_split(np.arange(n), test_size=test_size, random_state=seed)
        val, test = train_test_split(rest, test_size=0.5, random_state=seed)
    except ValueError:
        return labels  # too few rows to split: all train, as sklearn cannot split them
    labels[val] = VAL
    labels[test] = TEST
    return labels


def filter_min_counts(ratings: pl.DataFrame, min_count: int = 5) -> pl.DataFrame:
    """Users with >= min_count ratings, then (on that result) movies with >= min_count."""
    users = ratings.filter(pl.len().over("user_id") >= min_count)
    return users.filter(pl.len().over("movie_id") >= min_count)


def notebook_split(ratings: pl.DataFrame, min_count: int = 5, test_size: float = 0.30, seed: int = 42) -> pl.DataFrame:
    """`ratings` filtered as the notebooks did, with a `split` column (0 train, 1 val, 2 test)."""
    kept = filter_min_counts(ratings, min_count).sort(["user_id", "timestamp", "movie_id"])
    sizes = kept.group_by("user_id", maintain_order=True).len()["len"].to_numpy()
    per_user = [_positions(int(n), test_size, seed) for n in sizes]
    labels = np.concatenate(per_user) if per_user else np.array([], np.int8)
    unsplittable = sum(len(p) for p in per_user if (p == TRAIN).all())
    if unsplittable:
        log.info("%d ratings of users with too few rows to split were put in train", unsplittable)
    out = kept.with_columns(pl.Series("split", labels, dtype=pl.Int8))
    counts = out.group_by("split").len().sort("split")
    log.info(
        "notebook split: %s (from %d ratings; %d after >= %d filters)",
        ", ".join(f"{SPLIT_NAMES[s]} {n:,}" for s, n in counts.iter_rows()),
        len(ratings),
        len(kept),
        min_count,
    )
    return out


def temporal_split(ratings: pl.DataFrame, fraction: float = 0.1) -> pl.DataFrame:
    """Protocol B (EVALUATION.md): per user, the last max(1, ⌊fraction·n⌋) ratings by
    (timestamp, movie id) are test, the same share of the rest before them validation.

    No count filters: they would look at test data. A user with one rating has it in test.
    """
    ordered = ratings.sort(["user_id", "timestamp", "movie_id"])
    n = pl.len().over("user_id")
    position = pl.int_range(pl.len()).over("user_id")  # 0-based, in time order
    n_test = pl.max_horizontal(pl.lit(1), (n * fraction).floor().cast(pl.Int64))
    n_train = n - n_test
    n_val = pl.min_horizontal(n_train, pl.max_horizontal(pl.lit(1), (n_train * fraction).floor().cast(pl.Int64)))
    split = (
        pl.when(position >= n_train)
        .then(pl.lit(TEST))
        .when(position >= n_train - n_val)
        .then(pl.lit(VAL))
        .otherwise(pl.lit(TRAIN))
        .cast(pl.Int8)
    )
    out = ordered.with_columns(split.alias("split"))
    counts = dict(out.group_by("split").len().iter_rows())
    log.info(
        "temporal split: train_inner %s, val %s, test %s",
        *(f"{counts.get(s, 0):,}" for s in (TRAIN, VAL, TEST)),
    )
    return out


def holdout_time_split(
    ratings: pl.DataFrame, train: float = 0.8, val: float = 0.1, ties: tuple[str, ...] = ("movie_id",)
) -> pl.DataFrame:
    """The ml-latest-small SVD notebook's split: per user in time order (ties by `ties`),
    the first ⌈train·n⌉ ratings train, up to ⌈(train + val)·n⌉ validation, the rest test."""
    ordered = ratings.sort(["user_id", "timestamp", *ties])
    n = pl.len().over("user_id")
    position = pl.int_range(pl.len()).over("user_id")
    split = (
        pl.when(position < (n * train).ceil())
        .then(pl.lit(TRAIN))
        .when(position < (n * (train + val)).ceil())
        .then(pl.lit(VAL))
        .otherwise(pl.lit(TEST))
        .cast(pl.Int8)
    )
    return ordered.with_columns(split.alias("split"))
