"""Write a synthetic dataset in the ml-25m CSV layout (never real MovieLens rows).

Same files, headers, quoting, CRLF line endings, half-star ratings and id
ranges as ml-25m (162,541 users, 62,423 movies), with as many ratings as asked.
DuckDB writes it from range() in a streaming COPY, so 25M rows take well under
a minute and little memory.

    python bench/make_ml25m_like.py var/bench/ml25m-like-25M --ratings 25000000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.datasets.layouts import ML_LATEST_GENRES

N_USERS, N_MOVIES = 162_541, 62_423
GENRES = [g for g in ML_LATEST_GENRES if not g.startswith("(")]
START, END = 789_652_009, 1_574_327_703  # ml-25m's first and last rating times


def write(folder: Path, n_ratings: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed / 1000})")
    per_user = max(1, n_ratings // N_USERS)
    n_users = min(N_USERS, max(1, n_ratings // per_user))
    n_movies = min(N_MOVIES, max(50, n_ratings // 20))
    # Ratings sorted by user then movie, as in the release; a user's movies are
    # distinct by construction (a stride walk through the catalogue).
    con.execute(
        f"""
        COPY (
            SELECT user_id AS userId,
                   movie_id AS movieId,
                   printf('%.1f', 0.5 * (1 + (hash(user_id * 7919 + movie_id) % 10))) AS rating,
                   {START} + (hash(movie_id * 104729 + user_id) % {END - START}) AS "timestamp"
            FROM (
                SELECT i // {per_user} + 1 AS user_id,
                       ((i // {per_user}) * 37 + (i % {per_user}) * 97) % {n_movies} + 1 AS movie_id
                FROM range({n_users * per_user}) t(i)
            )
            ORDER BY user_id, movie_id
        ) TO '{folder / "ratings.csv"}' (HEADER, DELIMITER ',', NEW_LINE '\\r\\n')
        """
    )
    genres = "[" + ", ".join(f"'{g}'" for g in GENRES) + "]"
    con.execute(
        f"""
        COPY (
            SELECT m AS movieId,
                   CASE WHEN m % 10 = 0 THEN 'Film ' || m || ', The (' || (1950 + m % 70) || ')'
                        ELSE 'Film ' || m || ' (' || (1950 + m % 70) || ')' END AS title,
                   array_to_string(list_distinct([{genres}[1 + m % 19], {genres}[1 + (m // 19) % 19]]), '|')
                       AS genres
            FROM range(1, {n_movies + 1}) t(m)
        ) TO '{folder / "movies.csv"}' (HEADER, DELIMITER ',', NEW_LINE '\\r\\n')
        """
    )
    con.execute(
        f"""
        COPY (
            SELECT (i % {n_users}) + 1 AS userId, (i * 13) % {n_movies} + 1 AS movieId,
                   'tag ' || (i % 500) AS tag, {START} + (i * 7919) % {END - START} AS "timestamp"
            FROM range({max(1, n_ratings // 25)}) t(i)
        ) TO '{folder / "tags.csv"}' (HEADER, DELIMITER ',', NEW_LINE '\\r\\n')
        """
    )
    con.execute(
        f"""
        COPY (
            SELECT m AS movieId, lpad(CAST(m * 3 AS VARCHAR), 7, '0') AS imdbId, m + 100 AS tmdbId
            FROM range(1, {n_movies + 1}) t(m)
        ) TO '{folder / "links.csv"}' (HEADER, DELIMITER ',', NEW_LINE '\\r\\n')
        """
    )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--ratings", type=int, default=25_000_000)
    args = parser.parse_args()
    started = time.perf_counter()
    write(args.folder, args.ratings)
    size = sum(p.stat().st_size for p in args.folder.iterdir()) / 2**20
    print(
        f"wrote {args.folder} ({args.ratings:,} ratings asked, {size:,.0f} MiB) in {time.perf_counter() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
