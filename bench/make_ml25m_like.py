"""Write a synthetic dataset in the ml-25m CSV layout (never real MovieLens rows).

Same files, headers, quoting, CRLF line endings, half-star ratings and id
ranges as ml-25m (162,541 users, 62,423 movies), with as many ratings as asked.
DuckDB writes it from range() in a streaming COPY, so 25M rows take well under
a minute and little memory.

Two modes:
- plain (the default): ratings are hash noise on a stride walk through the
  catalogue; for benches of cost only (parsing, validation, scoring).
- `--structured`: something to learn. Popularity is long-tailed (an item's
  rank is drawn log-uniformly, a Zipf law), each user has two or three
  favourite genres and rates movies of them higher, how many ratings a user
  has is long-tailed too, and a user's ratings arrive in sessions over the
  years, each session within one favourite genre, so the order carries
  signal for a sequence model. `--users` and `--movies` set the shape.

    python bench/make_ml25m_like.py var/bench/ml25m-like-25M --ratings 25000000
    python bench/make_ml25m_like.py var/bench/synth-20k --structured --ratings 2000000 --users 20000 --movies 12000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.ingest.layouts import ML_LATEST_GENRES

N_USERS, N_MOVIES = 162_541, 62_423
GENRES = [g for g in ML_LATEST_GENRES if not g.startswith("(")]
START, END = 789_652_009, 1_574_327_703  # ml-25m's first and last rating times


def write(folder: Path, n_ratings: int, seed: int = 0) -> Path:
    """The plain dataset: cost-only noise."""
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
    _write_catalogue(con, folder, n_users, n_movies, n_ratings)
    return folder


def write_structured(
    folder: Path, n_ratings: int, n_users: int | None = None, n_movies: int | None = None, seed: int = 0
) -> Path:
    """The structured dataset: tastes, long tails and sessions (see the module's docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    n_users = n_users or min(N_USERS, max(100, n_ratings // 153))  # ml-25m: 153 ratings per user
    n_movies = n_movies or min(N_MOVIES, max(200, n_ratings // 400))
    most = max(40, min(3_000, n_movies // 2))  # ratings of the busiest users
    # An exponential count above ml-25m's minimum of 20, capped: its mean is set so
    # the total lands near n_ratings once duplicate draws are merged.
    scale = max(1.0, n_ratings / n_users * 1.1 - 20)
    con = duckdb.connect()
    genres = "[" + ", ".join(f"'{g}'" for g in GENRES) + "]"
    n_genres = len(GENRES)
    # unif(a, b, c): a reproducible uniform draw in (0, 1) for the key (a, b, c) and the seed
    con.execute(f"CREATE MACRO unif(a, b, c) AS ((hash(a, b, c, {seed}) % 1000003)::DOUBLE + 0.5) / 1000003")
    con.execute(
        f"""
        CREATE TABLE movie AS
        SELECT m AS movie_id,
               2 * unif(m, 1, 0) - 1 AS quality,
               row_number() OVER (ORDER BY hash(m, 2, {seed})) AS pop_rank,
               floor({n_genres} * pow(unif(m, 3, 0), 1.5))::INT AS g1,
               CASE WHEN unif(m, 4, 0) < 0.6 THEN floor({n_genres} * unif(m, 5, 0))::INT END AS g2
        FROM range(1, {n_movies + 1}) t(m)
        """
    )
    con.execute(
        f"""
        CREATE TABLE movie_genre AS
        SELECT movie_id, g1 AS g FROM movie UNION SELECT movie_id, g2 FROM movie WHERE g2 IS NOT NULL;
        CREATE TABLE movie_genres AS SELECT movie_id, {genres}[g + 1] AS genre FROM movie_genre;
        -- within a genre, movies in order of popularity
        CREATE TABLE genre_pick AS
        SELECT g, row_number() OVER (PARTITION BY g ORDER BY pop_rank) AS idx, movie_id,
               count(*) OVER (PARTITION BY g) AS n_g
        FROM movie_genre JOIN movie USING (movie_id);
        CREATE TABLE genre_size AS SELECT g, max(n_g) AS n_g FROM genre_pick GROUP BY g;
        """
    )
    for _ in range(3):  # duplicate draws of popular movies merge: draw more until the total is near n_ratings
        _draw(con, n_users, n_movies, most, scale, seed)
        found = con.execute("SELECT count(*) FROM (SELECT DISTINCT user_id, movie_id FROM draw)").fetchall()[0][0]
        if found >= 0.97 * n_ratings:
            break
        scale *= n_ratings / max(found, 1)
    # A rating: the movie's quality, the user's bias, +0.7 for a favourite genre
    # (-0.5 otherwise) and noise, to the nearest half star. Duplicate draws of a
    # (user, movie) pair keep the first.
    con.execute(
        f"""
        COPY (
            SELECT d.user_id AS userId, d.movie_id AS movieId,
                   printf('%.1f', least(5.0, greatest(0.5, round(2 * (
                       3.1 + 0.9 * m.quality + d.bias
                       + CASE WHEN list_contains(d.fav, m.g1) OR list_contains(d.fav, m.g2) THEN 0.7 ELSE -0.5 END
                       + 1.6 * (unif(d.user_id, d.movie_id, 18) - 0.5))) / 2))) AS rating,
                   d.ts AS "timestamp"
            FROM (
                SELECT user_id, movie_id, min(ts) AS ts, any_value(fav) AS fav, any_value(bias) AS bias
                FROM draw GROUP BY user_id, movie_id
            ) d JOIN movie m USING (movie_id)
            ORDER BY userId, movieId
        ) TO '{folder / "ratings.csv"}' (HEADER, DELIMITER ',', NEW_LINE '\\r\\n')
        """
    )
    con.execute("DROP TABLE draw")
    _write_catalogue(con, folder, n_users, n_movies, n_ratings)
    return folder


def _draw(con: duckdb.DuckDBPyConnection, n_users: int, n_movies: int, most: int, scale: float, seed: int) -> None:
    """Table draw: each user's movie draws with their times, before duplicates merge."""
    n_genres = len(GENRES)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE usr AS
        SELECT u AS user_id,
               least({most}, 20 + round(-{scale} * ln(unif(u, 6, 0))))::INT AS n,
               [floor({n_genres} * pow(unif(u, 7, 0), 1.5))::INT,
                floor({n_genres} * pow(unif(u, 8, 0), 1.5))::INT,
                floor({n_genres} * unif(u, 9, 0))::INT] AS fav,
               {START} + floor(unif(u, 10, 0) * {(END - START) * 0.6})::BIGINT AS t0,
               3 + floor(unif(u, 11, 0) * 10)::INT AS session_len,
               86400 * (1 + floor(unif(u, 12, 0) * 60))::BIGINT AS session_gap,
               0.5 * (unif(u, 13, 0) - 0.5) AS bias
        FROM range(1, {n_users + 1}) t(u)
        """
    )
    # Each draw: 80% a movie of the session's favourite genre, else any movie,
    # its popularity rank log-uniform (P(rank r) ~ 1/r) in either catalogue.
    con.execute(
        f"""
        CREATE OR REPLACE TABLE draw AS
        WITH ev AS (
            SELECT user_id, fav, t0, session_len, session_gap, bias, unnest(range(n)) AS i FROM usr
        ), sess AS (
            SELECT *, i // session_len AS s,
                   fav[1 + (hash(user_id, i // session_len, {seed}) % 3)::BIGINT] AS sg
            FROM ev
        ), ranked AS (
            SELECT sess.*, unif(user_id, i, 14) < 0.8 AS in_genre,
                   floor(exp(unif(user_id, i, 15) * ln(genre_size.n_g)))::BIGINT AS genre_idx,
                   floor(exp(unif(user_id, i, 16) * ln({n_movies})))::BIGINT AS global_rank
            FROM sess JOIN genre_size ON genre_size.g = sess.sg
        )
        SELECT r.user_id,
               CASE WHEN r.in_genre THEN gp.movie_id ELSE mv.movie_id END AS movie_id,
               least({END}, r.t0 + r.s * r.session_gap + (r.i % r.session_len) * 150
                     + floor(unif(r.user_id, r.i, 17) * 120)::BIGINT) AS ts,
               r.fav, r.bias, r.i
        FROM ranked r
        JOIN genre_pick gp ON gp.g = r.sg AND gp.idx = r.genre_idx
        JOIN movie mv ON mv.pop_rank = r.global_rank
        """
    )


def _write_catalogue(con: duckdb.DuckDBPyConnection, folder: Path, n_users: int, n_movies: int, n_ratings: int) -> None:
    """movies.csv (titles, one or two genres as in movie_genres when present), tags.csv, links.csv."""
    has_genres = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'movie_genres'").fetchall()[0][0]
    genre_of = (
        "(SELECT array_to_string(list(genre ORDER BY genre), '|') FROM movie_genres g WHERE g.movie_id = m)"
        if has_genres
        else "array_to_string(list_distinct([{genres}[1 + m % 19], {genres}[1 + (m // 19) % 19]]), '|')"
    )
    genres = "[" + ", ".join(f"'{g}'" for g in GENRES) + "]"
    con.execute(
        f"""
        COPY (
            SELECT m AS movieId,
                   CASE WHEN m % 10 = 0 THEN 'Film ' || m || ', The (' || (1950 + m % 70) || ')'
                        ELSE 'Film ' || m || ' (' || (1950 + m % 70) || ')' END AS title,
                   {genre_of.format(genres=genres)} AS genres
            FROM range(1, {n_movies + 1}) t(m)
            ORDER BY m
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--structured", action="store_true", help="tastes, long tails and sessions (see above)")
    parser.add_argument("--users", type=int, help="structured only (default: ml-25m's ratings per user)")
    parser.add_argument("--movies", type=int, help="structured only (default: ml-25m's ratings per movie)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.structured:
        write_structured(args.folder, args.ratings, args.users, args.movies, args.seed)
    else:
        if args.users or args.movies:
            parser.error("--users and --movies need --structured")
        write(args.folder, args.ratings, args.seed)
    size = sum(p.stat().st_size for p in args.folder.iterdir()) / 2**20
    print(
        f"wrote {args.folder} ({args.ratings:,} ratings asked, {size:,.0f} MiB) in {time.perf_counter() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
