"""neumf_features: the notebooks' best model.

User and movie ID embeddings, user demographics and the movie's genre
multi-hot, concatenated into an MLP with batch norm and dropout, predicting
the rating scaled to [0, 1] through a sigmoid.
"""

from __future__ import annotations

import torch
from torch import nn


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
