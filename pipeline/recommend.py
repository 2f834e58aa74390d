"""Top-N movies for every user: score, drop what they have seen, explain.

Users are scored in batches against every candidate movie on the model's
device, so memory stays bounded by batch_users x n_movies. Candidates are
movies the model was trained on; users the model could not learn (no
training rows) get the most popular unseen movies instead, flagged as such.
Any model of the registry can fill the lists (the champion does).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import polars as pl
import torch

from pipeline.models.registry import PAIRS_PER_BATCH, Recommender

log = logging.getLogger(__name__)

HISTORY_FOR_REASONS = 50


def csr(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of a 0/1 matrix given by coordinates."""
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, cols[order]


@torch.no_grad()
def top_n(model: Recommender, ratings: pl.DataFrame, n: int, train: pl.DataFrame | None = None) -> pl.DataFrame:
    """Rows (user_idx, rank, movie_idx, score, reason_movie_idx, reason_rating, is_fallback).

    `ratings` are excluded from each user's list; `train` (default: the same
    rows) are those the model learned from.
    """
    started = time.perf_counter()
    train = ratings if train is None else train
    n_users, n_movies, device = model.n_users, model.n_movies, model.device
    seen_ptr, seen_idx = csr(ratings["user_idx"].to_numpy(), ratings["movie_idx"].to_numpy(), n_users)
    candidate = np.zeros(n_movies, dtype=bool)
    candidate[train["movie_idx"].unique().to_numpy()] = True
    trained_users = np.zeros(n_users, dtype=bool)
    trained_users[train["user_idx"].unique().to_numpy()] = True
    popularity = np.bincount(train["movie_idx"].to_numpy(), minlength=n_movies).astype(np.float32)
    liked = _liked_history(ratings)

    blocked = torch.tensor(~candidate, device=device)
    item_vectors = _item_vectors(model, device)
    # score_tensor bounds the pairs per pass itself; this bounds the [batch, movies] matrix
    batch = max(256, PAIRS_PER_BATCH.get(device.type, 1 << 15) // max(n_movies, 1))
    parts = []
    model_users = np.flatnonzero(trained_users)
    for i in range(0, len(model_users), batch):
        users = torch.tensor(model_users[i : i + batch], device=device)
        scores = model.score_tensor(users)
        parts.append(_select(scores, users, blocked, seen_ptr, seen_idx, n, liked, item_vectors, fallback=False))
        if (i // batch) % 20 == 0:
            log.info("scored %d/%d users", min(i + batch, len(model_users)), len(model_users))
    cold = np.flatnonzero(~trained_users)
    if len(cold):
        log.info("%d users without training rows get the popularity fallback", len(cold))
        pop = torch.tensor(popularity / max(popularity.max(), 1.0), device=device)
        for i in range(0, len(cold), batch):
            users = torch.tensor(cold[i : i + batch], device=device)
            scores = pop.expand(len(users), n_movies).clone()
            parts.append(_select(scores, users, blocked, seen_ptr, seen_idx, n, liked, None, fallback=True))
    out = pl.concat(parts) if parts else pl.DataFrame()
    log.info("top-%d for %d users in %.1fs", n, n_users, time.perf_counter() - started)
    return out


def _select(
    scores: torch.Tensor,
    users: torch.Tensor,
    blocked: torch.Tensor,
    seen_ptr: np.ndarray,
    seen_idx: np.ndarray,
    n: int,
    liked: tuple[np.ndarray, np.ndarray],
    item_vectors: torch.Tensor | None,
    fallback: bool,
) -> pl.DataFrame:
    scores = scores.float().masked_fill(blocked, float("-inf"))
    u = users.cpu().numpy()
    starts, ends = seen_ptr[u], seen_ptr[u + 1]
    rows = np.repeat(np.arange(len(u)), ends - starts)
    cols = (
        np.concatenate([seen_idx[s:e] for s, e in zip(starts, ends, strict=True)]) if len(u) else np.array([], np.int64)
    )
    scores[torch.tensor(rows, device=scores.device), torch.tensor(cols, device=scores.device)] = float("-inf")
    k = min(n, scores.shape[1])
    top_scores, top_movies = torch.topk(scores, k, dim=1)
    reason_movie, reason_rating = _reasons(u, top_movies, liked, item_vectors)
    valid = torch.isfinite(top_scores).cpu().numpy()
    frame = pl.DataFrame(
        {
            "user_idx": np.repeat(u, k),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(u)),
            "movie_idx": top_movies.cpu().numpy().ravel(),
            "score": top_scores.cpu().numpy().ravel().astype(np.float64),
            "reason_movie_idx": reason_movie.ravel(),
            "reason_rating": reason_rating.ravel(),
            "is_fallback": np.full(len(u) * k, fallback),
        }
    )
    return frame.filter(pl.Series(valid.ravel()))


def _liked_history(ratings: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each user's best-rated movies (most recent first among equals), padded to a fixed width."""
    best = (
        ratings.sort(["user_idx", "rating", "timestamp"], descending=[False, True, True])
        .with_columns(pl.int_range(pl.len()).over("user_idx").alias("pos"))
        .filter(pl.col("pos") < HISTORY_FOR_REASONS)
    )
    n_users = int(ratings["user_idx"].max()) + 1 if len(ratings) else 0
    movie = np.full((n_users, HISTORY_FOR_REASONS), -1, dtype=np.int64)
    rating = np.zeros((n_users, HISTORY_FOR_REASONS), dtype=np.float64)
    u, p = best["user_idx"].to_numpy(), best["pos"].to_numpy()
    movie[u, p] = best["movie_idx"].to_numpy()
    rating[u, p] = best["rating"].to_numpy()
    return movie, rating


def _item_vectors(model: Recommender, device: torch.device) -> torch.Tensor | None:
    """Unit-length item vectors for 'because you rated X' (cosine similarity)."""
    vectors = model.item_vectors()
    if vectors is None:
        return None
    return torch.nn.functional.normalize(vectors.to(device).float(), dim=1)


def _reasons(
    users: np.ndarray,
    top_movies: torch.Tensor,
    liked: tuple[np.ndarray, np.ndarray],
    item_vectors: torch.Tensor | None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each recommendation, the user's highly rated movie most similar to it."""
    shape = tuple(top_movies.shape)
    if item_vectors is None:
        return np.full(shape, -1, dtype=np.int64), np.full(shape, np.nan)
    history = torch.tensor(liked[0][users], device=top_movies.device)  # [B, L], -1 = padding
    rating = liked[1][users]
    h = item_vectors[history.clamp(min=0)]  # [B, L, d]
    r = item_vectors[top_movies]  # [B, n, d]
    sim = torch.einsum("bnd,bld->bnl", r, h).masked_fill((history < 0)[:, None, :], float("-inf"))
    best = sim.argmax(dim=2).cpu().numpy()  # [B, n]
    rows = np.arange(len(users))[:, None]
    movie = liked[0][users][rows, best]
    return movie, np.where(movie >= 0, rating[rows, best], np.nan)
