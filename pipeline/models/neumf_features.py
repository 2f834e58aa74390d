"""neumf_features: the notebooks' best model.

User and movie ID embeddings, user demographics and the movie's genre
multi-hot, concatenated into an MLP with batch norm and dropout, predicting
the rating scaled to [0, 1] through a sigmoid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from pipeline.config import TrainParams
    from pipeline.features import Features


class NeuMFFeatures(nn.Module):
    def __init__(
        self,
        n_users: int,
        n_movies: int,
        user_features: torch.Tensor,
        movie_features: torch.Tensor,
        embedding_dim: int = 32,
        hidden: tuple[int, ...] = (128, 64, 32),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, embedding_dim)
        self.movie_embedding = nn.Embedding(n_movies, embedding_dim)
        nn.init.normal_(self.user_embedding.weight, std=0.05)
        nn.init.normal_(self.movie_embedding.weight, std=0.05)
        # Side features are fixed lookup tables, kept on the model's device.
        self.register_buffer("user_features", user_features.float())
        self.register_buffer("movie_features", movie_features.float())
        width = 2 * embedding_dim + user_features.shape[1] + movie_features.shape[1]
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    @classmethod
    def from_features(cls, feats: Features, params: TrainParams) -> NeuMFFeatures:
        return cls(
            len(feats.user_ids),
            len(feats.movie_ids),
            torch.from_numpy(feats.user_features),
            torch.from_numpy(feats.movie_features),
            params.embedding_dim,
            params.hidden,
            params.dropout,
        )

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        x = torch.cat(
            [
                self.user_embedding(users),
                self.movie_embedding(movies),
                self.user_features[users],
                self.movie_features[movies],
            ],
            dim=1,
        )
        return torch.sigmoid(self.mlp(x).squeeze(1))

    @torch.no_grad()
    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Scores of every (user, movie) pair as a [users, movies] matrix, in eval mode.

        Batch norm (an affine map in eval mode) is folded into the linear layer
        before it, and the first layer is split into a user half and a movie
        half, each computed once, so the per-pair cost is only the deeper
        layers. Same result as forward() on the cross product, up to rounding.
        """
        layers = self._folded_layers()
        (w, b), rest = layers[0], layers[1:]
        d, n_uf = self.user_embedding.embedding_dim, self.user_features.shape[1]
        w_user = torch.cat([w[:, :d], w[:, 2 * d : 2 * d + n_uf]], dim=1)
        w_movie = torch.cat([w[:, d : 2 * d], w[:, 2 * d + n_uf :]], dim=1)
        u = torch.cat([self.user_embedding(users), self.user_features[users]], dim=1) @ w_user.T
        m = torch.cat([self.movie_embedding(movies), self.movie_features[movies]], dim=1) @ w_movie.T + b
        hidden = (u[:, None, :] + m[None, :, :]).reshape(-1, w.shape[0]).relu_()
        for w, b in rest[:-1]:
            hidden = torch.addmm(b, hidden, w.T).relu_()
        w, b = rest[-1]
        return torch.sigmoid(torch.addmm(b, hidden, w.T)).view(len(users), len(movies))

    def _folded_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) per linear layer with the following eval-mode batch norm folded in."""
        folded: list[tuple[torch.Tensor, torch.Tensor]] = []
        modules = list(self.mlp)
        for i, layer in enumerate(modules):
            if not isinstance(layer, nn.Linear):
                continue
            w, b = layer.weight, layer.bias
            norm = modules[i + 1] if i + 1 < len(modules) else None
            if isinstance(norm, nn.BatchNorm1d):
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                w, b = w * scale[:, None], (b - norm.running_mean) * scale + norm.bias
            folded.append((w, b))
        return folded
