"""User-mean-centred truncated SVD (the ml-latest-small notebook's model).

Each user's train ratings minus that user's mean, unrated cells 0, factorised
by scipy's `svds` into k singular triplets; a prediction is the rank-k
reconstruction plus the user's mean. Kept sparse: the matrix is never dense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from pipeline.evaluation.split import TEST, TRAIN, holdout_time_split


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

    def scores(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Predicted ratings of every movie for these users, [len(users), n_movies], into `out` if given."""
        assert self.user_factors is not None and self.movie_factors is not None and self.user_means is not None
        if out is None:
            return self.user_factors[users] @ self.movie_factors.T + self.user_means[users][:, None]
        out[...] = self.user_factors[users] @ self.movie_factors.T
        out += self.user_means[users][:, None]
        return out


def notebook_holdout(
    ratings: pl.DataFrame, k: int = 50, ties: tuple[str, ...] = ("movie_id",)
) -> tuple[int, float, float]:
    """The ml-latest-small notebook's evaluation: fit on its per-user 80/10/10 time split's train
    part (timestamp ties broken by `ties`); (test pairs whose user and movie were in train, RMSE,
    MAE) on those pairs."""
    frame = holdout_time_split(ratings, ties=ties)
    train, test = frame.filter(pl.col("split") == TRAIN), frame.filter(pl.col("split") == TEST)
    users = {u: i for i, u in enumerate(train["user_id"].unique().sort())}
    movies = {m: i for i, m in enumerate(train["movie_id"].unique().sort())}
    known = test.filter(pl.col("user_id").is_in(list(users)) & pl.col("movie_id").is_in(list(movies)))
    model = TruncatedSVDRatings(k=k).fit(
        train["user_id"].replace_strict(users).to_numpy(),
        train["movie_id"].replace_strict(movies).to_numpy(),
        train["rating"].to_numpy(),
        len(users),
        len(movies),
    )
    pred = model.predict(
        known["user_id"].replace_strict(users).to_numpy(), known["movie_id"].replace_strict(movies).to_numpy()
    )
    error = pred - known["rating"].to_numpy()
    return len(known), float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error)))
