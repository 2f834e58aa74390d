"""Small synthetic MovieLens-shaped datasets, generated in code (never MovieLens rows).

Ratings have planted structure (user and movie latent factors plus biases),
so a model that learns must beat the global mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.ingest.layouts import ML_100K_GENRES

GENRES_1M = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]
GENRES_100K = list(ML_100K_GENRES)
BASE_TS = 1_000_000_000  # 2001-09-09


@dataclass
class Synthetic:
    ratings: list[tuple[int, int, float, int]]  # user, movie, rating, timestamp
    movies: list[tuple[int, str, list[str]]]  # id, title, genres
    users: list[tuple[int, str, int, int]]  # id, gender, age code, occupation code


def make(
    n_users: int = 60,
    n_movies: int = 40,
    per_user: int = 20,
    seed: int = 0,
    half_stars: bool = False,
    clusters: int = 0,
) -> Synthetic:
    """`clusters` > 0 also plants *which* movies a user rates: user u mostly rates movies
    of block u % clusters (90%), lower movie ids more often, so ranking models (and
    popularity) have something to learn."""
    rng = np.random.default_rng(seed)
    uf, mf = rng.normal(size=(n_users, 3)), rng.normal(size=(n_movies, 3))
    ub, mb = rng.normal(0, 0.5, n_users), rng.normal(0, 0.7, n_movies)
    ratings = []
    for u in range(n_users):
        for m in _chosen(rng, u, n_movies, min(per_user, n_movies), clusters):
            raw = 3.3 + ub[u] + mb[m] + 0.6 * uf[u] @ mf[m] + rng.normal(0, 0.3)
            value = np.clip(np.round(raw * 2) / 2 if half_stars else np.round(raw), 0.5 if half_stars else 1, 5)
            ratings.append((u + 1, int(m) + 1, float(value), BASE_TS + int(rng.integers(0, 10_000_000))))
    movies = [(m + 1, _title(m), sorted(set(rng.choice(GENRES_1M, size=2).tolist()))) for m in range(n_movies)]
    users = [(u + 1, "F" if u % 2 else "M", [1, 18, 25, 35, 45, 50, 56][u % 7], u % 21) for u in range(n_users)]
    return Synthetic(ratings, movies, users)


def _chosen(rng: np.random.Generator, u: int, n_movies: int, k: int, clusters: int) -> np.ndarray:
    if not clusters:
        return rng.choice(n_movies, size=k, replace=False)
    block = np.arange(n_movies)[np.arange(n_movies) % clusters == u % clusters]
    weights = np.where(np.isin(np.arange(n_movies), block), 0.9 / len(block), 0.1 / (n_movies - len(block)))
    weights = weights * (2.0 - np.arange(n_movies) / n_movies) ** 2
    return rng.choice(n_movies, size=k, replace=False, p=weights / weights.sum())


def _title(m: int) -> str:
    """Some titles carry a comma (CSV quoting) or an accent (latin-1 vs UTF-8)."""
    article = ", The" if m % 5 == 0 else ""
    accent = " Café" if m % 7 == 0 else ""
    return f"Synthetic Film {m + 1}{accent}{article} ({1980 + m % 30})"


def _stars(value: float, half: bool) -> str:
    return f"{value:.1f}" if half else str(int(value))


def write_ml1m(folder: Path, data: Synthetic) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("".join(f"{u}::{m}::{_stars(r, False)}::{t}\n" for u, m, r, t in data.ratings))
    (folder / "movies.dat").write_bytes(
        "".join(f"{m}::{title}::{'|'.join(g)}\n" for m, title, g in data.movies).encode("latin-1")
    )
    (folder / "users.dat").write_text("".join(f"{u}::{g}::{a}::{o}::{u:05d}\n" for u, g, a, o in data.users))
    return folder


def write_ml100k(folder: Path, data: Synthetic) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(f"{u}\t{m}\t{_stars(r, False)}\t{t}\n" for u, m, r, t in data.ratings))
    lines = []
    for m, title, genres in data.movies:
        flags = "|".join("1" if g in genres else "0" for g in GENRES_100K)
        lines.append(f"{m}|{title}|01-Jan-1995||http://example.invalid/{m}|{flags}\n")
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))
    occupations = ["student", "engineer", "writer"]
    (folder / "u.user").write_text(
        "".join(f"{u}|{20 + u % 40}|{g}|{occupations[u % 3]}|{u:05d}\n" for u, g, _, _ in data.users)
    )
    return folder


def write_ml_latest(folder: Path, data: Synthetic, line_end: str = "\r\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nl = line_end
    (folder / "ratings.csv").write_text(
        f"userId,movieId,rating,timestamp{nl}"
        + "".join(f"{u},{m},{_stars(r, True)},{t}{nl}" for u, m, r, t in data.ratings),
        newline="",
    )
    (folder / "movies.csv").write_text(
        f"movieId,title,genres{nl}" + "".join(f'{m},"{title}",{"|".join(g)}{nl}' for m, title, g in data.movies),
        encoding="utf-8",
        newline="",
    )
    tags = "".join(f'{u},{m},"funny, clever",{t + 60}{nl}' for u, m, _, t in data.ratings[::4])
    (folder / "tags.csv").write_text(f"userId,movieId,tag,timestamp{nl}{tags}", newline="")
    (folder / "links.csv").write_text(
        f"movieId,imdbId,tmdbId{nl}" + "".join(f"{m},{m:07d},{m + 100}{nl}" for m, _, _ in data.movies), newline=""
    )
    return folder


def write_ml10m(folder: Path, data: Synthetic) -> Path:
    """ml-10m: '::' files like ml-1m, half stars, tags.dat instead of users.dat, UTF-8 titles."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("".join(f"{u}::{m}::{_stars(r, True)}::{t}\n" for u, m, r, t in data.ratings))
    (folder / "movies.dat").write_text(
        "".join(f"{m}::{title}::{'|'.join(g)}\n" for m, title, g in data.movies), encoding="utf-8"
    )
    (folder / "tags.dat").write_text(f"1::1::funny::{BASE_TS}\n2::3::dark::{BASE_TS + 5}\n")
    return folder


SPEC = """\
# A shop's own export: semicolons, a header, text ids, a 0-10 scale, ISO times.
name = "acme-ratings"
encoding = "utf-8"
separator = ";"
header = true
genre_separator = ","
timestamp = "iso"

[ids]
user = "text"
movie = "text"

[rating_scale]
min = 0
max = 10
step = 1

[files.ratings]
path = "scores.txt"
columns = ["movie_id", "user_id", "-", "rating", "timestamp"]

[files.movies]
path = "catalogue.txt"
columns = ["movie_id", "title", "genres"]
"""


def write_spec_dataset(folder: Path, data: Synthetic) -> Path:
    """A MovieLens-like export no release looks like, described by dataset.toml."""
    from datetime import UTC, datetime

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.toml").write_text(SPEC)
    rows = "".join(
        f"tt{m:07d};cust-{u:04d};web;{int(r * 2)};{datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M:%S}\n"
        for u, m, r, t in data.ratings
    )
    (folder / "scores.txt").write_text("item;customer;channel;score;when\n" + rows)
    (folder / "catalogue.txt").write_text(
        "id;name;tags\n" + "".join(f'tt{m:07d};"{title}";{",".join(g)}\n' for m, title, g in data.movies)
    )
    return folder
