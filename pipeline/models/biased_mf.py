"""Biased matrix factorisation: global mean + user bias + movie bias + dot product.

The classic baseline (Koren et al. 2009) that published comparisons find hard
to beat; trained by the same torch trainer as the neural models, on the
rating scaled to [0, 1]. With sampled negatives (the trainer's `negatives`)
the same factors also learn an interaction logit (own movie biases), which
is what ranks unseen movies.
"""

from __future__ import annotations

import torch
from torch import nn


class BiasedMF(nn.Module):
    # score_matrix is a matrix product: memory is the [users, movies] output alone,
    # so callers need not split users by a per-pair budget
    hidden_per_pair = False

    def __init__(self, n_users: int, n_movies: int, factors: int = 64, global_mean: float = 0.7) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, factors)
        self.movie_embedding = nn.Embedding(n_movies, factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.movie_bias = nn.Embedding(n_movies, 1)
        nn.init.normal_(self.user_embedding.weight, std=0.01)
        nn.init.normal_(self.movie_embedding.weight, std=0.01)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.movie_bias.weight)
        self.global_bias = nn.Parameter(torch.tensor(float(global_mean)))
        self.movie_interaction_bias = nn.Embedding(n_movies, 1)
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
        """[users, movies] of one head (movies None: every movie), as one fused matrix product + bias.

        The movie term rides in addmm's bias, so the [users, movies] matrix is
        written once; at ml-25m scale that pass is most of the scoring time.
        `out`, a buffer reused across batches, spares a fresh 60 MB allocation
        per batch: measured 2x faster (42 against 21 GFLOP/s at 284 x 59,000).
        """
        vectors_t = self._all_movies_t() if movies is None else self.movie_embedding(movies).T
        if head == "interaction":
            table = self.movie_interaction_bias
            bias = table.weight[:, 0] if movies is None else table(movies)[:, 0]
            return torch.addmm(bias, self.user_embedding(users), vectors_t, out=out)
        bias = self.movie_bias.weight[:, 0] if movies is None else self.movie_bias(movies)[:, 0]
        scores = torch.addmm(bias + self.global_bias, self.user_embedding(users), vectors_t, out=out)
        return scores.add_(self.user_bias(users))

    def _all_movies_t(self) -> torch.Tensor:
        """Every movie's factors as a contiguous [factors, movies] matrix, kept while the weights are
        unchanged (a product with the transposed view of the embedding measured slower)."""
        weight = self.movie_embedding.weight
        key = (weight.data_ptr(), weight._version)
        if getattr(self, "_movies_t_key", None) != key:
            self._movies_t, self._movies_t_key = weight.detach().T.contiguous(), key
        return self._movies_t

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
