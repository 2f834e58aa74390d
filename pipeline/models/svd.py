"""User-mean-centred truncated SVD (the ml-latest-small notebook's model).

Each user's train ratings minus that user's mean, unrated cells 0, factorised
by scipy's `svds` into k singular triplets; a prediction is the rank-k
reconstruction plus the user's mean. Kept sparse: the matrix is never dense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds


@dataclass
class TruncatedSVDRatings:
    k: int = 50
    user_factors: np.ndarray | None = None  # U * sigma  [n_users, k]
    movie_factors: np.ndarray | None = None  # Vt.T       [n_movies, k]
    user_means: np.ndarray | None = None

    def fit(self, users: np.ndarray, movies: np.ndarray, ratings: np.ndarray, n_users: int, n_movies: int):
        sums = np.bincount(users, weights=ratings, minlength=n_users)
        counts = np.bincount(users, minlength=n_users)
        means = np.divide(sums, counts, out=np.zeros(n_users), where=counts > 0)
        centred = sp.csr_matrix((ratings - means[users], (users, movies)), shape=(n_users, n_movies))
        k = min(self.k, min(centred.shape) - 1)
        u, s, vt = svds(centred.astype(np.float64), k=k, random_state=0)
        self.user_factors, self.movie_factors, self.user_means = u * s, vt.T, means
        return self

    def predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        assert self.user_factors is not None and self.movie_factors is not None and self.user_means is not None
        dots = np.einsum("ij,ij->i", self.user_factors[users], self.movie_factors[movies])
        return dots + self.user_means[users]

    def scores(self, users: np.ndarray) -> np.ndarray:
        """Predicted ratings of every movie for these users, [len(users), n_movies]."""
        assert self.user_factors is not None and self.movie_factors is not None and self.user_means is not None
        return self.user_factors[users] @ self.movie_factors.T + self.user_means[users][:, None]
