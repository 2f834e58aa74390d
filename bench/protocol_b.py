"""Protocol B's split of a real dataset in memory, for the sequence model's benches.

The job's own reader types the ratings (no validation, no warehouse); users
and movies get dense indices in id order, as pipeline.ingest.features gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.evaluation.split import temporal_split
from pipeline.ingest.features import Features
from pipeline.ingest.layouts import RatingScale
from pipeline.ingest.read import typed_ratings
from pipeline.ingest.spec import resolve_dataset


@dataclass
class Split:
    frame: pl.DataFrame  # user_id, movie_id, rating, timestamp, user_idx, movie_idx, split
    n_users: int
    n_movies: int
    scale: RatingScale

    def features(self) -> Features:
        return ids_only(self.n_users, self.n_movies)


def ids_only(n_users: int, n_movies: int) -> Features:
    """Ids only: the sequence model (and EASE, popularity) needs no side features."""
    empty = np.zeros((n_users, 0), np.float32), np.zeros((n_movies, 0), np.float32)
    return Features(np.arange(n_users), np.arange(n_movies), empty[0], empty[1], [], [])


def indexed(frame: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """`frame` with dense user_idx and movie_idx in id order, and the index -> id maps."""
    users, movies = frame["user_id"].unique().sort(), frame["movie_id"].unique().sort()
    frame = frame.join(pl.DataFrame({"user_id": users, "user_idx": np.arange(len(users))}), on="user_id").join(
        pl.DataFrame({"movie_id": movies, "movie_idx": np.arange(len(movies))}), on="movie_id"
    )
    return frame, users.to_numpy(), movies.to_numpy()


def protocol_b(dataset: Path) -> Split:
    """The dataset's ratings with protocol B's `split` column (0 train_inner, 1 val, 2 test)."""
    _, layout = resolve_dataset(dataset)
    frame, users, movies = indexed(typed_ratings(dataset).select("user_id", "movie_id", "rating", "timestamp"))
    return Split(temporal_split(frame), len(users), len(movies), layout.scale)
