"""Ranking baselines every learned model must beat: most-popular and EASE.

Both score a users x movies matrix over dense indices (the train split's
users and movies), from implicit feedback: a rating of any value is an
interaction. EASE (Steck 2019) is a closed-form item-item model: with X the
users x items interaction matrix, B = I - P / diag(P) for P = (XᵀX + λI)⁻¹,
diagonal forced to zero; a user's scores are their row of X times B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack


def interactions(users: np.ndarray, movies: np.ndarray, n_users: int, n_movies: int) -> sp.csr_matrix:
    """Binary users x movies matrix of who rated what."""
    data = np.ones(len(users), dtype=np.float32)
    matrix = sp.csr_matrix((data, (users, movies)), shape=(n_users, n_movies))
    matrix.data[:] = 1.0  # a repeated pair still counts once
    return matrix


@dataclass
class MostPopular:
    """Every user gets the movies most often rated in train."""

    counts: np.ndarray | None = None

    def fit(self, x: sp.csr_matrix) -> MostPopular:
        self.counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        assert self.counts is not None, "fit first"
        return np.broadcast_to(self.counts, (len(users), len(self.counts)))


@dataclass
class EASE:
    """Embarrassingly shallow autoencoder; `lam` is the L2 weight (tune it on validation)."""

    lam: float = 1000.0
    weights: np.ndarray | None = None
    x: sp.csr_matrix | None = None

    def fit(self, x: sp.csr_matrix) -> EASE:
        # The Gram matrix plus λI is symmetric positive definite: a float32 Cholesky
        # inverse (LAPACK potrf/potri) is 3x faster here than a float64 LU inverse,
        # with a relative error of ~1e-6 (measured; ranking unchanged).
        gram = (x.T @ x).toarray().astype(np.float32)
        gram[np.diag_indices_from(gram)] += self.lam
        factor, info = lapack.spotrf(gram, lower=1, overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: Cholesky failed (LAPACK info {info}); is lam > 0?")
        p, info = lapack.spotri(factor, lower=1, overwrite_c=1)
        p = np.tril(p) + np.tril(p, -1).T
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
        self.weights, self.x = b, x
        return self

    def scores(self, users: np.ndarray) -> np.ndarray:
        assert self.weights is not None and self.x is not None, "fit first"
        return np.asarray(self.x[users] @ self.weights)

    def strongest(self, users: np.ndarray, movies: np.ndarray, budget: int = 1 << 22) -> np.ndarray:
        """For each user and each of their movies [len(users), k], the movie j of the user's history
        whose weight B[j, movie] adds most to the score (a score is the sum of those weights over
        the history); -1 for a user without history. Users go in groups of similar history length,
        at most `budget` weights gathered at once."""
        assert self.weights is not None and self.x is not None, "fit first"
        movies = np.asarray(movies, dtype=np.int64)
        rows = self.x[users]
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
        return out
