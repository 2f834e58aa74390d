"""The notebooks' neural models, as one network shape: user side + movie side -> MLP.

neumf_features, ncf_tags, mlp and dnn_content all concatenate a user vector
(ID embedding, optionally demographics) with a movie vector (ID embedding,
optionally genres and tag features) and pass it through an MLP ending in a
sigmoid on the rating scaled to [0, 1]. They differ only in which side
features they see, the layer sizes, batch norm and dropout, so they share
one network and its fast all-pairs scorer; each model is a class that says
which side features it reads.

Two outputs: the rating (what the notebooks trained, and RMSE measures) and
an interaction logit (will this user rate this movie at all?), trained
against sampled unrated movies when the trainer's `negatives` > 0. Ranking
every unseen movie by predicted rating alone favours obscure movies a few
people loved; the interaction head is what ranks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from pipeline.models.base import ModelSpec, Ratings
from pipeline.models.neural import PAIRS_PER_BATCH, Dropout, RatingNetwork


class PairMLP(nn.Module):
    # score_matrix holds a [pairs, hidden] activation: callers split users by a pair budget
    hidden_per_pair = True

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        user_side: torch.Tensor,
        movie_side: torch.Tensor,
        embedding_dim: int = 32,
        hidden: tuple[int, ...] = (128, 64, 32),
        dropout: float = 0.3,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, embedding_dim)
        self.movie_embedding = nn.Embedding(n_movies, embedding_dim)
        nn.init.normal_(self.user_embedding.weight, std=0.05)
        nn.init.normal_(self.movie_embedding.weight, std=0.05)
        # Side features are fixed lookup tables, kept on the model's device.
        self.register_buffer("user_side", user_side.float().reshape(n_users, -1))
        self.register_buffer("movie_side", movie_side.float().reshape(n_movies, -1))
        width = 2 * embedding_dim + self.user_side.shape[1] + self.movie_side.shape[1]
        layers: list[nn.Module] = []
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers += [nn.ReLU(), Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 2))  # [rating logit, interaction logit]
        self.mlp = nn.Sequential(*layers)

    def _user_parts(self, users: torch.Tensor) -> list[torch.Tensor]:
        # index_select, not side[users]: half the time on a training batch on the CPU
        return [self.user_embedding(users), self.user_side.index_select(0, users)]

    def _movie_parts(self, movies: torch.Tensor) -> list[torch.Tensor]:
        return [self.movie_embedding(movies), self.movie_side.index_select(0, movies)]

    def user_vector(self, users: torch.Tensor) -> torch.Tensor:
        return torch.cat(self._user_parts(users), dim=1)

    def movie_vector(self, movies: torch.Tensor) -> torch.Tensor:
        return torch.cat(self._movie_parts(movies), dim=1)

    def outputs(self, users: torch.Tensor, movies: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rating on [0, 1], interaction logit) per pair."""
        # one concatenation of the four parts (user_vector then movie_vector, as the scorer splits them)
        out = self.mlp(torch.cat(self._user_parts(users) + self._movie_parts(movies), dim=1))
        return torch.sigmoid(out[:, 0]), out[:, 1]

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.outputs(users, movies)[0]

    @torch.no_grad()
    def score_matrix(
        self,
        users: torch.Tensor,
        movies: torch.Tensor | None = None,
        head: str = "rating",
        out: torch.Tensor | None = None,
        pairs_per_block: int | None = None,
    ) -> torch.Tensor:
        """Scores of every (user, movie) pair as a [users, movies] matrix, in eval mode.

        Batch norm (an affine map in eval mode) is folded into the linear layer
        before it, and the first layer is split into a user half and a movie
        half, each computed once, so the per-pair cost is only the deeper
        layers. Same result as forward() on the cross product, up to rounding.

        The hidden activations are [pairs, hidden]: with `pairs_per_block`, users
        go through in blocks of that many pairs, each block's scores written into
        one [users, movies] result (`out` when given). Keeping each block's small
        result alive between the freed activations fragmented the heap instead:
        a 2,048-user evaluation batch over 12,000 movies peaked at 12 GB.
        """
        if movies is None:
            movies = torch.arange(self.movie_embedding.num_embeddings, device=users.device)
        layers = self._folded_layers()
        user_half, movie_half = self._first_layer_halves(layers[0], users, movies)
        step = len(users) if pairs_per_block is None else max(1, pairs_per_block // max(len(movies), 1))
        if out is None:
            out = torch.empty((len(users), len(movies)), device=users.device)
        for start in range(0, len(users), step):
            block = user_half[start : start + step, None, :] + movie_half[None, :, :]
            out[start : start + step] = self._deeper_layers(layers[1:], block, head)
        return out

    @torch.no_grad()
    def score_candidates(self, users: torch.Tensor, movies: torch.Tensor, head: str = "rating") -> torch.Tensor:
        """Scores of each user's own candidate movies: users [B], movies [B, K] -> [B, K].

        The re-ranking stage of two-stage scoring; the same folded layers as
        score_matrix, over B x K pairs instead of B x n_movies.
        """
        layers = self._folded_layers()
        user_half, movie_half = self._first_layer_halves(layers[0], users, movies.reshape(-1))
        return self._deeper_layers(layers[1:], user_half[:, None, :] + movie_half.view(*movies.shape, -1), head)

    def _first_layer_halves(
        self, first: tuple[torch.Tensor, torch.Tensor], users: torch.Tensor, movies: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first (folded) layer's user part and movie part (bias included), each computed once."""
        w, b = first
        width_user = self.user_embedding.embedding_dim + self.user_side.shape[1]
        return self.user_vector(users) @ w[:, :width_user].T, self.movie_vector(movies) @ w[:, width_user:].T + b

    @staticmethod
    def _deeper_layers(layers: list[tuple[torch.Tensor, torch.Tensor]], first: torch.Tensor, head: str) -> torch.Tensor:
        """The folded layers after the first, on first-layer pre-activations [..., hidden]; one head's scores."""
        hidden = first.reshape(-1, first.shape[-1]).relu_()
        for w, b in layers[:-1]:
            hidden = torch.addmm(b, hidden, w.T).relu_()
        w, b = layers[-1]
        column = 0 if head == "rating" else 1
        out = torch.addmm(b[column : column + 1], hidden, w[column : column + 1].T).view(first.shape[:-1])
        return torch.sigmoid(out) if head == "rating" else out

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


class PairNetwork(RatingNetwork):
    """A notebook network: its side features (`side_features`), the shared PairMLP, the rating task."""

    def side_features(self, train: Ratings | None) -> tuple[np.ndarray, list[np.ndarray]]:
        """The user side [n_users, u] and the movie side's parts [n_movies, m_i] (none by default)."""
        return np.zeros((self.n_users, 0), np.float32), [np.zeros((self.n_movies, 0), np.float32)]

    def build(self, train: Ratings | None) -> nn.Module:
        p = self.params
        user_side, movie_side = self.side_features(train)
        return PairMLP(
            self.n_users,
            self.n_movies,
            torch.from_numpy(np.asarray(user_side, np.float32)),
            torch.from_numpy(np.hstack(movie_side).astype(np.float32)),
            int(p["embedding_dim"]),
            tuple(p["hidden"]),
            float(p["dropout"]),
            bool(p["batch_norm"]),
        )

    def score_tensor(self, users: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Every movie for a block of users, in blocks of a pair budget (the hidden layers are per pair)."""
        self.module.eval()
        budget = PAIRS_PER_BATCH.get(self.device.type, 1 << 15)
        return self.module.score_matrix(users, None, self.ranking_head, out=out, pairs_per_block=budget)


NETWORK = {"hidden": (128, 64, 32), "dropout": 0.3, "batch_norm": True, "negatives": 1}
TUNABLE = {"embedding_dim": (16, 32, 64), "dropout": (0.2, 0.3, 0.5), "lr": (5e-4, 1e-3, 2e-3)}


class NeuMFFeatures(PairNetwork):
    spec = ModelSpec(
        "neumf_features",
        "ID embeddings + user demographics + genre multi-hot -> MLP with batch norm and dropout",
        defaults={"embedding_dim": 32, **NETWORK},
        tunable=TUNABLE,
        rates=True,
        torch=True,
        pairwise=True,
    )

    def side_features(self, train: Ratings | None) -> tuple[np.ndarray, list[np.ndarray]]:
        _, movie_side = super().side_features(train)
        return self.feats.user_features, [*movie_side, self.feats.movie_features]


class NCFTags(NeuMFFeatures):
    spec = ModelSpec(
        "ncf_tags",
        "neumf_features plus each movie's tag TF-IDF reduced by TruncatedSVD",
        defaults={"embedding_dim": 32, **NETWORK, "tag_components": 32},
        tunable={**TUNABLE, "tag_components": (16, 32, 64)},
        rates=True,
        needs=("tags",),
        torch=True,
        pairwise=True,
    )

    def side_features(self, train: Ratings | None) -> tuple[np.ndarray, list[np.ndarray]]:
        user_side, movie_side = super().side_features(train)
        tags = _tag_components(self.feats.movie_tags, int(self.params["tag_components"]), int(self.params["seed"]))
        return user_side, [*movie_side, tags]


class PlainMLP(PairNetwork):
    spec = ModelSpec(
        "mlp",
        "plain user and movie ID embeddings -> MLP (the ml-100k notebook)",
        defaults={"embedding_dim": 32, "hidden": (64, 32), "dropout": 0.2, "batch_norm": False, "negatives": 1},
        tunable=TUNABLE,
        rates=True,
        torch=True,
        pairwise=True,
    )


class DNNContent(PairNetwork):
    spec = ModelSpec(
        "dnn_content",
        "ID embeddings + genre multi-hot + tag TF-IDF (min-max scaled on train) -> small MLP",
        defaults={"embedding_dim": 16, "hidden": (64, 32), "dropout": 0.2, "batch_norm": False, "negatives": 1},
        tunable=TUNABLE,
        rates=True,
        torch=True,
        pairwise=True,
    )

    def side_features(self, train: Ratings | None) -> tuple[np.ndarray, list[np.ndarray]]:
        user_side, movie_side = super().side_features(train)
        movie_side.append(self.feats.movie_features)
        if self.feats.has_tags:
            from sklearn.preprocessing import MinMaxScaler  # here: most runs never import scikit-learn

            # scaled on the movies seen in train only, so val/test movies leak nothing
            seen = np.unique(train.movies) if train is not None else slice(None)
            scaler = MinMaxScaler().fit(self.feats.movie_tags[seen])
            movie_side.append(np.clip(scaler.transform(self.feats.movie_tags), 0.0, 1.0).astype(np.float32))
        return user_side, movie_side


def _tag_components(tags: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The tag TF-IDF reduced to k components (scikit-learn's TruncatedSVD), unit-scaled."""
    from sklearn.decomposition import TruncatedSVD  # here: most runs never import scikit-learn

    k = max(1, min(k, tags.shape[1] - 1, tags.shape[0] - 1))
    reduced = TruncatedSVD(n_components=k, random_state=seed).fit_transform(sp.csr_matrix(tags))
    scale = np.abs(reduced).max() or 1.0
    return (reduced / scale).astype(np.float32)
