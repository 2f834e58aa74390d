"""Factor models: a user and a movie are vectors, a score their dot product.

- biased_mf: global + user + movie bias + dot product of factors (Koren et al. 2009), the
  classic baseline published comparisons find hard to beat; trained in torch on the rating
  scaled to [0, 1]. With sampled negatives (the trainer's `negatives`) the same factors also
  learn an interaction logit (own movie biases), which is what ranks unseen movies.
- svd: the ml-latest-small notebook's user-mean-centred truncated SVD (scipy's `svds`): each
  user's ratings minus their mean, unrated cells 0, factorised into k singular triplets; a
  prediction is the rank-k reconstruction plus the user's mean. Kept sparse throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds
from torch import nn

from pipeline.models.base import ArrayModel, ModelSpec, Ratings
from pipeline.models.neural import RatingNetwork, sparse_tables


class BiasedMF(nn.Module):
    # score_matrix is a matrix product: memory is the [users, movies] output alone,
    # so callers need not split users by a per-pair budget
    hidden_per_pair = False

    def __init__(
        self, n_users: int, n_movies: int, factors: int = 64, global_mean: float = 0.7, sparse: bool = False
    ) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, factors, sparse=sparse)
        self.movie_embedding = nn.Embedding(n_movies, factors, sparse=sparse)
        self.user_bias = nn.Embedding(n_users, 1, sparse=sparse)
        self.movie_bias = nn.Embedding(n_movies, 1, sparse=sparse)
        nn.init.normal_(self.user_embedding.weight, std=0.01)
        nn.init.normal_(self.movie_embedding.weight, std=0.01)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.movie_bias.weight)
        self.global_bias = nn.Parameter(torch.tensor(float(global_mean)))
        self.movie_interaction_bias = nn.Embedding(n_movies, 1, sparse=sparse)
        nn.init.zeros_(self.movie_interaction_bias.weight)

    def outputs(self, users: torch.Tensor, movies: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rating on [0, 1], interaction logit) per pair."""
        dot = (self.user_embedding(users) * self.movie_embedding(movies)).sum(dim=1)
        rating = self.global_bias + self.user_bias(users).squeeze(1) + self.movie_bias(movies).squeeze(1) + dot
        return rating, self.movie_interaction_bias(movies).squeeze(1) + dot

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.outputs(users, movies)[0]

    @torch.no_grad()
    def score_matrix(
        self,
        users: torch.Tensor,
        movies: torch.Tensor | None = None,
        head: str = "rating",
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[users, movies] of one head (movies None: every movie), as one matrix product.

        For every movie the biases ride in two extra factors (the user side
        carries 1 and its own bias, the movie side its bias and 1), so the
        [users, movies] matrix is written once, by one product with an even
        factor count: measured 62.8 against 65.5 ms per 1,137 x 59,000 block
        for addmm with a broadcast bias (which first copies the bias into
        every row). `out`, a buffer reused across batches, spares a fresh
        allocation per batch: measured 2x faster at 284 x 59,000.
        """
        if movies is None:
            return torch.mm(self._user_side(users, head), self._all_movies_t(head), out=out)
        vectors, vectors_t = self.user_embedding(users), self.movie_embedding(movies).T
        if head == "interaction":
            return torch.addmm(self.movie_interaction_bias(movies)[:, 0], vectors, vectors_t, out=out)
        scores = torch.addmm(self.movie_bias(movies)[:, 0] + self.global_bias, vectors, vectors_t, out=out)
        return scores.add_(self.user_bias(users))

    def _user_side(self, users: torch.Tensor, head: str) -> torch.Tensor:
        """[users, factors + 2]: the factors, 1 (times the movie's bias), the user's bias (times 1)."""
        vectors = self.user_embedding(users)
        ones = torch.ones((len(users), 1), device=vectors.device, dtype=vectors.dtype)
        own = self.user_bias(users) if head != "interaction" else torch.zeros_like(ones)
        return torch.cat([vectors, ones, own], dim=1)

    def _all_movies_t(self, head: str) -> torch.Tensor:
        """[factors + 2, movies], contiguous: the factors, the head's movie bias (with the global
        bias for ratings), 1. Kept while the weights are unchanged."""
        bias = self.movie_interaction_bias if head == "interaction" else self.movie_bias
        weights = (self.movie_embedding.weight, bias.weight, self.global_bias)
        key = (head, *((w.data_ptr(), w._version) for w in weights))
        cached = getattr(self, "_movies_t", {})
        if cached.get(head, (None,))[0] != key:
            row = bias.weight[:, 0] + (self.global_bias if head != "interaction" else 0.0)
            matrix = torch.cat([self.movie_embedding.weight.T, row[None], torch.ones_like(row)[None]])
            cached[head] = (key, matrix.detach().contiguous())
            self._movies_t = cached
        return cached[head][1]

    @torch.no_grad()
    def rating_from_interaction(self, users: torch.Tensor, movies: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Ratings of pairs (users [B], movies [B, k]) from their interaction logits: the dot product is
        shared, so only the biases change (no per-pair factor gather; scoring reports both)."""
        movie_terms = self.movie_bias.weight[:, 0] - self.movie_interaction_bias.weight[:, 0]
        return logits + movie_terms[movies] + (self.user_bias.weight[users, 0] + self.global_bias)[:, None]

    @torch.no_grad()
    def score_candidates(self, users: torch.Tensor, movies: torch.Tensor, head: str = "rating") -> torch.Tensor:
        """Scores of each user's own candidate movies: users [B], movies [B, K] -> [B, K]."""
        rating, logit = self.outputs(users.repeat_interleave(movies.shape[1]), movies.reshape(-1))
        return (logit if head == "interaction" else rating).view(movies.shape)


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
        if self.user_factors is None or self.movie_factors is None or self.user_means is None:
            raise RuntimeError("TruncatedSVDRatings: fit first")
        dots = np.einsum("ij,ij->i", self.user_factors[users], self.movie_factors[movies])
        return dots + self.user_means[users]

    def scores(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Predicted ratings of every movie for these users, [len(users), n_movies], into `out` if given."""
        if self.user_factors is None or self.movie_factors is None or self.user_means is None:
            raise RuntimeError("TruncatedSVDRatings: fit first")
        if out is None:
            return self.user_factors[users] @ self.movie_factors.T + self.user_means[users][:, None]
        out[...] = self.user_factors[users] @ self.movie_factors.T
        out += self.user_means[users][:, None]
        return out


class BiasedMFModel(RatingNetwork):
    spec = ModelSpec(
        "biased_mf",
        "global + user + movie bias + dot product of factors, trained in torch",
        defaults={"factors": 64, "weight_decay": 1e-5, "lr": 2e-3, "negatives": 1, "sparse_embeddings": "auto"},
        tunable={"factors": (32, 64, 128), "lr": (1e-3, 2e-3, 5e-3), "weight_decay": (0.0, 1e-5, 1e-4)},
        rates=True,
        torch=True,
    )

    def build(self, train: Ratings | None) -> nn.Module:
        mean = float(np.mean(train.values)) if train is not None and len(train) else 0.7
        sparse = sparse_tables(self.params.get("sparse_embeddings", False), self.n_users + self.n_movies)
        return BiasedMF(self.n_users, self.n_movies, int(self.params["factors"]), mean, sparse)

    @torch.no_grad()
    def ratings_of_ranked(self, users: torch.Tensor, movies: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Its interaction score differs from its rating by biases alone: no per-pair work again."""
        if self.ranking_head == "rating":
            return scores.float()
        return self.module.rating_from_interaction(users, movies, scores).float()


class SVDModel(ArrayModel):
    spec = ModelSpec(
        "svd",
        "user-mean-centred truncated SVD (scipy svds)",
        defaults={"k": 50},
        tunable={"k": (20, 50, 100)},
        rates=True,
    )

    def __init__(self, params: Mapping[str, Any], feats, device: torch.device) -> None:
        super().__init__(params, feats, device)
        self.solver = TruncatedSVDRatings(int(self.params["k"]))

    def _solve(self, train: Ratings) -> None:
        values = train.values.astype(np.float64)
        self.solver.fit(train.users, train.movies, values, self.n_users, self.n_movies)

    def _scores(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return self.solver.scores(users, out=out)

    def _predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        return self.solver.predict(users, movies).astype(np.float32)

    def item_vectors(self) -> torch.Tensor | None:
        return torch.from_numpy(self.solver.movie_factors.astype(np.float32))

    def state_dict(self) -> dict[str, Any]:
        s = self.solver
        return {"user_factors": s.user_factors, "movie_factors": s.movie_factors, "user_means": s.user_means}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.solver = TruncatedSVDRatings(int(self.params["k"]), **state)
