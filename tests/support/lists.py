"""Scored recommendation lists as the score stage writes them (one Parquet shard), for publishing tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

import polars as pl

SCHEMA = {"reason_popularity": pl.Int64, "popular_from": pl.Date, "popular_to": pl.Date}


def write_lists(
    path: Path,
    lists: dict[int, Iterable[int]],
    predicted: float = 4.0,
    popular: tuple[int, date, date] | None = None,
) -> Path:
    """Each user's movies in rank order, scores falling with rank; each row's reason is
    "because you rated <the movie whose id is the user's id> 5★", or with `popular`
    (count, from, to) a most-popular pick's count and window."""
    reason = (
        {
            "reason_movie_id": u,
            "reason_rating": 5.0,
            "reason_popularity": None,
            "popular_from": None,
            "popular_to": None,
        }
        if popular is None
        else {"reason_movie_id": None, "reason_rating": None}
        | {"reason_popularity": popular[0], "popular_from": popular[1], "popular_to": popular[2]}
        for u in lists
    )
    rows = [
        {"user_id": u, "rank": r + 1, "movie_id": m, "score": 1.0 - r / 10, "predicted_rating": predicted}
        | because
        | {"reason_genres": "", "is_fallback": False}
        for (u, movies), because in zip(lists.items(), reason, strict=True)
        for r, m in enumerate(movies)
    ]
    pl.DataFrame(rows, schema_overrides=SCHEMA).write_parquet(path)
    return path
