"""Scored recommendation lists as the score stage writes them (one Parquet shard), for publishing tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import polars as pl


def write_lists(path: Path, lists: dict[int, Iterable[int]], predicted: float = 4.0) -> Path:
    """Each user's movies in rank order, scores falling with rank; each row's reason is
    "because you rated <the movie whose id is the user's id> 5★"."""
    rows = [
        {"user_id": u, "rank": r + 1, "movie_id": m, "score": 1.0 - r / 10, "predicted_rating": predicted}
        | {"reason_movie_id": u, "reason_rating": 5.0, "reason_genres": "", "is_fallback": False}
        for u, movies in lists.items()
        for r, m in enumerate(movies)
    ]
    pl.DataFrame(rows).write_parquet(path)
    return path
