"""EASE (Steck 2019), the closed-form item-item model: with X the users x movies interaction
matrix, B = I - P / diag(P) for P = (XᵀX + λI)⁻¹, diagonal forced to zero; a user's scores are
their row of X times B. It ranks from each user's latest row of X (rank_from), and explains a
recommendation by the history movie whose weight adds most to its score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.linalg import lapack

from pipeline.models.base import ArrayModel, ModelSpec, Ratings, interactions
from pipeline.models.explain import Evidence, Reasons


@dataclass
class EASE:
    """Embarrassingly shallow autoencoder; `lam` is the L2 weight (tune it on validation).

    The weights are a dense movies x movies matrix, so EASE learns over the
    `max_movies` most-rated movies at most (20,000: 1.6 GB of float32) and
    never recommends the rest; on ml-25m those are 59,000 - 20,000 movies with
    under 1% of the ratings. Peak memory is about one such matrix: the Gram
    matrix is built in column blocks, inverted in place, and made symmetric in
    blocks (`np.tril(p) + np.tril(p, -1).T` held three).
    """

    lam: float = 1000.0
    max_movies: int | None = None
    weights: np.ndarray | None = None
    x: sp.csr_matrix | None = None
    movies: np.ndarray | None = None  # the columns EASE learns over (None: all)

    def fit(self, x: sp.csr_matrix) -> EASE:
        if self.max_movies is not None and x.shape[1] > self.max_movies:
            counts = np.asarray(x.sum(axis=0)).ravel()
            self.movies = np.sort(np.argsort(-counts, kind="stable")[: self.max_movies])
        else:
            self.movies = None
        local = x if self.movies is None else x[:, self.movies]
        # The Gram matrix plus λI is symmetric positive definite: a float32 Cholesky
        # inverse (LAPACK potrf/potri) is 3x faster here than a float64 LU inverse,
        # with a relative error of ~1e-6 (measured; ranking unchanged).
        gram = _dense_gram(local.tocsc())
        gram[np.diag_indices_from(gram)] += self.lam
        factor, info = lapack.spotrf(gram, lower=1, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: Cholesky failed (LAPACK info {info}); is lam > 0?")
        del gram
        p, info = lapack.spotri(factor, lower=1, overwrite_c=1)
        del factor
        _symmetric_from_lower(p)
        # LAPACK hands back column-major; the transpose of a symmetric matrix is itself, and row-major
        # is what scipy's sparse @ dense needs: it copied all 1.6 GB of a column-major one per block
        p = p.T
        p /= -p.diagonal().copy()[None, :]
        p[np.diag_indices_from(p)] = 0.0
        self.weights, self.x = p, x
        return self

    def _local(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        return rows if self.movies is None else rows[:, self.movies]

    def scores(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """[len(users), n_movies] float32, written into `out` when given (a reused buffer: a fresh
        [2,000, 62,000] array a block costs its page faults, 1.2 s in 4,000 users' 34 s)."""
        if self.weights is None or self.x is None:
            raise RuntimeError("EASE: fit first")
        if not self.weights.flags.c_contiguous:  # a model saved before weights were row-major: once
            self.weights = np.ascontiguousarray(self.weights)
        local = np.asarray(self._local(self.x[users]) @ self.weights)
        if out is None:
            out = np.empty((len(users), self.x.shape[1]), dtype=np.float32)
        if self.movies is None:
            out[...] = local
        else:
            out.fill(-np.inf)  # movies EASE never learnt
            out[:, self.movies] = local
        return out

    def strongest(self, users: np.ndarray, movies: np.ndarray, budget: int = 1 << 22) -> np.ndarray:
        """For each user and each of their movies [len(users), k], the movie j of the user's history
        whose weight B[j, movie] adds most to the score (a score is the sum of those weights over
        the history); -1 for a user without history. Users go in groups of similar history length,
        at most `budget` weights gathered at once."""
        if self.weights is None or self.x is None:
            raise RuntimeError("EASE: fit first")
        movies = np.asarray(movies, dtype=np.int64)
        if self.movies is not None:  # in EASE's own columns: the history it learnt over, the movies it ranks
            position = np.full(self.x.shape[1], -1, dtype=np.int64)
            position[self.movies] = np.arange(len(self.movies))
            movies = position[movies]
            if (movies < 0).any():
                raise ValueError("EASE: a movie outside its max_movies columns was never recommended by it")
        rows = self._local(self.x[users])
        lengths = np.diff(rows.indptr)
        out = np.full(movies.shape, -1, dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
        order = order[lengths[order] > 0]
        k, i = max(movies.shape[1], 1), 0
        while i < len(order):
            j = min(len(order), i + max(1, budget // (k * int(lengths[order[i]]))))
            while j > i + 1 and (j - i) * int(lengths[order[j - 1]]) * k > budget:
                j = i + (j - i) // 2
            group = order[i:j]
            width = int(lengths[group[-1]])
            slot = np.arange(width)[None, :]
            valid = slot < lengths[group][:, None]
            history = np.where(valid, rows.indices[np.minimum(rows.indptr[group][:, None] + slot, rows.nnz - 1)], 0)
            weights = self.weights[history[:, :, None], movies[group][:, None, :]]  # [group, width, k]
            weights[~valid] = -np.inf
            best = weights.argmax(axis=1)  # [group, k]
            out[group] = np.take_along_axis(history, best, axis=1)
            i = j
        if self.movies is not None:
            out = np.where(out >= 0, self.movies[np.maximum(out, 0)], -1)
        return out


def _dense_gram(x: sp.csc_matrix, block: int = 2048) -> np.ndarray:
    """XᵀX as a dense float32 matrix, a block of columns at a time: the sparse product of a whole
    catalogue is denser than its dense result (25M ratings over 20,000 movies: 3 GB against 1.6 GB)."""
    n = x.shape[1]
    gram = np.empty((n, n), dtype=np.float32)
    xt = x.T.tocsr()
    for start in range(0, n, block):
        gram[:, start : start + block] = (xt @ x[:, start : start + block]).toarray()
    return gram


def _symmetric_from_lower(p: np.ndarray, block: int = 2048) -> None:
    """Copy the lower triangle onto the upper one in place (LAPACK's potri fills only one)."""
    n = p.shape[0]
    for start in range(0, n, block):
        stop = min(n, start + block)
        diag = p[start:stop, start:stop]
        diag[...] = np.tril(diag) + np.tril(diag, -1).T
        p[start:stop, stop:] = p[stop:, start:stop].T


class EaseModel(ArrayModel):
    spec = ModelSpec(
        "ease",
        "EASE item-item closed form (Steck 2019); ranks only",
        defaults={"lam": 1000.0, "max_movies": 20_000},
        tunable={"lam": (250.0, 500.0, 1000.0, 2000.0, 4000.0)},
        ranks_from_history=True,
        reason="contribution",
    )

    def __init__(self, params: Mapping[str, Any], feats, device: torch.device) -> None:
        super().__init__(params, feats, device)
        self.solver = EASE(float(self.params["lam"]), int(self.params["max_movies"]))

    def _solve(self, train: Ratings) -> None:
        self.solver.fit(interactions(train.users, train.movies, self.n_users, self.n_movies))

    def _scores(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return self.solver.scores(users, out=out)

    def rank_from(self, history: Ratings) -> None:
        self.solver.x = interactions(history.users, history.movies, self.n_users, self.n_movies)

    def explain(
        self, users: np.ndarray, top_movies: torch.Tensor, top_scores: torch.Tensor, evidence: Evidence
    ) -> Reasons:
        """The history movie j whose weight B[j, i] adds most to each recommendation's score."""
        movie = self.solver.strongest(users, top_movies.cpu().numpy())
        return Reasons(movie, evidence.rating_of(users, movie))

    def state_dict(self) -> dict[str, Any]:
        s = self.solver
        return {"weights": s.weights, "x": s.x, "movies": s.movies}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.solver.weights, self.solver.x, self.solver.movies = state["weights"], state["x"], state["movies"]
