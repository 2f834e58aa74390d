"""SASRec (Kang & McAuley 2018): causal self-attention over each user's chronological history.

Item embeddings plus learned positions feed pre-LayerNorm causal
self-attention blocks; the output at each position scores every movie
through the same item embeddings (tied), and training asks every position
for the next movie. The loss is softmax cross-entropy over the whole
catalogue, which on ML-1M ranks far better than the per-pair binary losses
of the original paper (Klenitskiy & Vasilev 2023, "Turning Dross Into
Gold Loss: is BERT4Rec really better than SASRec?"); on big catalogues a
sampled softmax with a log-Q correction keeps memory bounded
(pipeline.models.softmax).

Each user's training ratings become one chronological history (protocol B's
order: timestamp, then movie id); windows of at most `max_len` positions
are batched with windows of similar length, so padding costs little. Early
stopping follows validation NDCG@10 (ranking every unseen movie, as protocol
B does).

A user's vector for ranking is the output at the last position of their
latest `max_len` movies, so scoring every movie is one matrix product with
the item embeddings, the same path as matrix factorisation. The histories
a fitted model ranks from are the ones it was trained on, kept in the
module (its extra state), so a saved model scores exactly as before.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pipeline.core.config import TrainParams
from pipeline.core.metrics import full_ranking_metrics
from pipeline.models.base import VAL_LOSS, ModelSpec, Ratings, interactions
from pipeline.models.neural import Dropout, NeuralRecommender
from pipeline.models.softmax import sampled_cross_entropy, softmax_cross_entropy

log = logging.getLogger(__name__)

MONITOR = "val_ndcg@10"
LIKED_UNIT = 0.8  # relevant = rating >= 80% of the scale's maximum (EVALUATION.md, B.4), on the [0, 1] scale


@dataclass(frozen=True)
class Histories:
    """Every user's movies in protocol B's order (timestamp, then movie id), as CSR: the movies of
    user u are movies[indptr[u]:indptr[u + 1]], oldest first."""

    indptr: np.ndarray  # int64 [n_users + 1]
    movies: np.ndarray  # int64 [n_ratings]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)


def histories(
    users: np.ndarray,
    movies: np.ndarray,
    timestamps: np.ndarray | None,
    n_users: int,
    shuffle_ties: np.random.Generator | None = None,
) -> Histories:
    """Each user's movies by (timestamp, movie id); without timestamps, in the rows' own order.

    `shuffle_ties` orders movies rated in the same second at random instead
    of by id (an honesty check: ML-1M users rate many movies in one second,
    and their id order is then information a nightly job does not have).
    """
    users, movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
    keys: list[np.ndarray] = []
    if timestamps is not None:
        tie = shuffle_ties.permutation(len(movies)) if shuffle_ties is not None else movies
        keys = [tie, np.asarray(timestamps, np.int64)]
    else:
        keys = [np.arange(len(movies))]
    order = np.lexsort((*keys, users))  # the last key sorts first: user, then time, then ties
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return Histories(indptr, movies[order])


@dataclass(frozen=True)
class Windows:
    """Training windows: inputs movies[start:start + length], targets one step later. A user's
    history of n movies gives n - 1 (input, next movie) positions, cut into windows of at most
    max_len from the end, so every next movie is a target once."""

    start: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    @property
    def positions(self) -> int:
        return int(self.length.sum())


def windows(history: Histories, max_len: int) -> Windows:
    """Every user's (input, next movie) positions in windows of at most `max_len`, latest first."""
    first, n = history.indptr[:-1], history.lengths - 1  # n positions per user (the last movie has no next)
    n = np.maximum(n, 0)
    pieces = -(-n // max_len)  # windows per user
    user = np.repeat(np.arange(len(n)), pieces)
    k = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)  # 0 = the latest window
    end = first[user] + n[user] - k * max_len  # exclusive end of the window's inputs
    length = np.minimum(max_len, end - first[user])
    return Windows(end - length, length)


def batches(w: Windows, batch_size: int, generator: np.random.Generator) -> Iterator[np.ndarray]:
    """Window indices in batches of `batch_size` windows of similar length (so padding costs
    little), in random order: windows are shuffled, sorted by length (stably, so equal lengths
    stay shuffled), cut into batches, and the batches shuffled."""
    order = generator.permutation(len(w))
    order = order[np.argsort(w.length[order], kind="stable")]
    cuts = list(range(0, len(order), batch_size))
    for i in generator.permutation(len(cuts)):
        yield order[cuts[i] : cuts[i] + batch_size]


def padded(movies: np.ndarray, start: np.ndarray, length: np.ndarray, pad: int) -> np.ndarray:
    """[len(start), max(length)] of movies[start:start + length], left-padded with `pad`."""
    width = int(length.max()) if len(length) else 0
    slot = np.arange(width)[None, :] - (width - length)[:, None]  # position within the window, < 0 = padding
    take = np.where(slot >= 0, start[:, None] + slot, 0)
    return np.where(slot >= 0, movies[take] if len(movies) else pad, pad)


class Block(nn.Module):
    """Pre-LayerNorm causal self-attention and a position-wise feed-forward, each with a residual."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.attention_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), Dropout(dropout), nn.Linear(dim, dim))
        self.drop_attention = Dropout(dropout)
        self.drop_out = Dropout(dropout)
        self.drop_ffn = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """x [B, L, d]; mask [B, L, L] additive (0 or -inf). With `last_only`, only the last
        position's output is computed ([B, 1, d]): scoring needs no other."""
        b, _, dim = x.shape
        h = self.attention_norm(x)
        if last_only:
            q = F.linear(h[:, -1:], self.qkv.weight[:dim], self.qkv.bias[:dim])
            k, v = F.linear(h, self.qkv.weight[dim:], self.qkv.bias[dim:]).chunk(2, dim=-1)
            mask, x = mask[:, -1:], x[:, -1:]
        else:
            q, k, v = self.qkv(h).chunk(3, dim=-1)
        heads, size = self.heads, dim // self.heads
        q, k, v = (t.reshape(b, -1, heads, size).transpose(1, 2) for t in (q, k, v))
        weights = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(size)) + mask[:, None], dim=-1)
        attended = (self.drop_attention(weights) @ v).transpose(1, 2).reshape(b, -1, dim)
        x = x + self.drop_out(self.out(attended))
        return x + self.drop_ffn(self.ffn(self.ffn_norm(x)))


class SASRec(nn.Module):
    # score_matrix is one matrix product of user vectors with the item embeddings
    hidden_per_pair = False

    def __init__(
        self,
        n_movies: int,
        max_len: int = 200,
        dim: int = 64,
        blocks: int = 2,
        heads: int = 1,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.n_movies, self.max_len, self.pad = n_movies, max_len, n_movies
        self.movie_embedding = nn.Embedding(n_movies + 1, dim, padding_idx=n_movies)  # the last row pads
        self.position_embedding = nn.Embedding(max_len, dim)
        self.drop_input = Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(blocks))
        self.final_norm = nn.LayerNorm(dim)
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
            elif name.endswith("bias") and "norm" not in name:
                nn.init.zeros_(p)
        with torch.no_grad():
            self.movie_embedding.weight[self.pad].zero_()
        # the histories a fitted model ranks from (set by remember(), saved as extra state)
        self.history = Histories(np.zeros(1, np.int64), np.zeros(0, np.int64))

    # -- the network -----------------------------------------------------
    def encode(self, inputs: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Outputs [B, L, d] for left-padded movie sequences [B, L] (pad = n_movies); with
        `last_only`, [B, d] at the last position.

        Positions count back from each window's last movie (the original's
        left-padded fixed window), so how much padding a batch adds changes
        nothing: a real movie's position and everything it attends to are
        the same.
        """
        length = inputs.shape[1]
        positions = torch.arange(self.max_len - length, self.max_len, device=inputs.device)
        x = self.movie_embedding(inputs) * math.sqrt(self.movie_embedding.embedding_dim)
        x = self.drop_input(x + self.position_embedding(positions))
        valid = inputs != self.pad
        x = x * valid[..., None]
        causal = torch.ones(length, length, dtype=torch.bool, device=inputs.device).tril()
        # a query sees earlier real movies and itself (a padding query only itself, so no row is empty)
        allowed = causal & (valid[:, None, :] | torch.eye(length, dtype=torch.bool, device=inputs.device))
        mask = torch.zeros(allowed.shape, device=inputs.device).masked_fill_(~allowed, float("-inf"))
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1)
        x = self.final_norm(x)
        return x[:, -1] if last_only else x

    def item_matrix(self) -> torch.Tensor:
        """[n_movies, d]: the embeddings every position scores against (padding row excluded)."""
        return self.movie_embedding.weight[: self.n_movies]

    def item_vectors(self) -> torch.Tensor:
        return self.item_matrix().detach()

    # -- the fitted model's histories ---------------------------------------
    def remember(self, history: Histories) -> None:
        """Keep each user's latest `max_len` movies: what the user vectors are computed from."""
        lengths = np.minimum(history.lengths, self.max_len)
        start = history.indptr[1:] - lengths
        indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        take = np.repeat(start, lengths) + np.arange(lengths.sum()) - np.repeat(indptr[:-1], lengths)
        self.history = Histories(indptr, history.movies[take].astype(np.int32))  # half the bytes saved and copied

    def get_extra_state(self) -> dict[str, np.ndarray]:
        return {"indptr": self.history.indptr, "movies": self.history.movies}

    def set_extra_state(self, state: dict[str, np.ndarray]) -> None:
        self.history = Histories(np.asarray(state["indptr"]), np.asarray(state["movies"]))

    @torch.no_grad()
    def user_vectors(self, users: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """[len(users), d]: the last position's output over each user's remembered movies (zeros
        for a user with none). Users are encoded in batches of similar length."""
        idx = users.cpu().numpy()
        start, length = self.history.indptr[idx], np.diff(self.history.indptr)[idx]
        out = torch.zeros((len(idx), self.movie_embedding.embedding_dim), device=users.device)
        order = np.argsort(length, kind="stable")
        order = order[length[order] > 0]
        for i in range(0, len(order), batch):
            part = order[i : i + batch]
            seqs = padded(self.history.movies, start[part], length[part], self.pad)
            vectors = self.encode(torch.from_numpy(seqs).to(users.device), last_only=True)
            out[torch.from_numpy(part).to(users.device)] = vectors.float()
        return out

    @torch.no_grad()
    def score_matrix(
        self, users: torch.Tensor, movies: torch.Tensor | None = None, head: str = "interaction", out=None
    ) -> torch.Tensor:
        """[users, movies] next-movie logits: user vectors times every item embedding (one product)."""
        self.eval()
        vectors = self.user_vectors(users)
        if movies is None:
            return torch.mm(vectors, self.item_matrix().T, out=out)
        return torch.bmm(self.item_matrix()[movies], vectors[:, :, None])[:, :, 0]

    def score_candidates(self, users: torch.Tensor, movies: torch.Tensor, head: str = "interaction") -> torch.Tensor:
        return self.score_matrix(users, movies, head)


@dataclass(frozen=True)
class SequenceParams:
    """The sequence model's own training settings (SASRecModel.spec has the defaults)."""

    max_len: int = 200
    loss: str = "auto"  # "softmax" (every movie), "sampled" (log-Q corrected), or "auto": chosen by choose_loss
    softmax_max_movies: int = 20_000  # above this catalogue size "auto" samples
    softmax_budget_mb: int = 1024  # ... and also where one batch's logits and their gradient would exceed this
    sampled_negatives: int = 2048  # negatives shared by a batch for the sampled loss
    shuffle_ties: bool = False  # order movies rated in the same second at random while training

    @classmethod
    def of(cls, params: dict[str, Any]) -> SequenceParams:
        return cls(**{k: params[k] for k in cls.__dataclass_fields__ if k in params})


def choose_loss(settings: SequenceParams, n_movies: int, batch_size: int) -> str:
    """ "softmax" unless the catalogue is above softmax_max_movies or a batch's logits would not fit
    the budget (positions x movies x 8 bytes: float32 logits and their gradient)."""
    if settings.loss != "auto":
        if settings.loss not in ("softmax", "sampled"):
            raise ValueError(f"sasrec loss {settings.loss!r}: expected auto, softmax or sampled")
        return settings.loss
    logits_mb = batch_size * settings.max_len * n_movies * 8 / 2**20
    too_big = n_movies > settings.softmax_max_movies or logits_mb > settings.softmax_budget_mb
    return "sampled" if too_big else "softmax"


class SequenceTask:
    """Batches of history windows; validation ranks every unseen movie for the validation users."""

    unit, monitor = "positions", MONITOR

    def __init__(
        self,
        model: SASRec,
        n_users: int,
        train_set: Ratings,
        val: Ratings | None,
        params: TrainParams,
        settings: SequenceParams,
        device: torch.device,
    ) -> None:
        self.model, self.device, self.batch_size = model, device, params.batch_size
        # what the model ranks from is always protocol B's order; only training may shuffle ties
        ordered = histories(train_set.users, train_set.movies, train_set.timestamps, n_users)
        model.remember(ordered)
        self.history = ordered
        if settings.shuffle_ties:
            shuffle = np.random.default_rng(params.seed)
            self.history = histories(train_set.users, train_set.movies, train_set.timestamps, n_users, shuffle)
        self.windows = windows(self.history, model.max_len)
        self.samples = self.windows.positions
        self.order = np.random.default_rng(params.seed)
        self.loss = choose_loss(settings, model.n_movies, params.batch_size)
        counts = np.bincount(train_set.movies, minlength=model.n_movies).astype(np.float64)
        self.sampling = torch.from_numpy(counts / max(counts.sum(), 1.0)).float().to(device)
        self.negatives = min(settings.sampled_negatives, model.n_movies)
        self.generator = torch.Generator(device=device).manual_seed(params.seed)
        self.loss_name = (
            f"softmax cross-entropy over all {model.n_movies:,} movies"
            if self.loss == "softmax"
            else f"sampled softmax, {self.negatives} popularity-sampled negatives with log-Q correction"
        )
        log.info(
            "sasrec: %s histories, %s windows of at most %d, %s positions per epoch; loss: %s",
            f"{int((self.history.lengths > 1).sum()):,}",
            f"{len(self.windows):,}",
            model.max_len,
            f"{self.samples:,}",
            self.loss_name,
        )
        self.val = val
        self.has_validation = val is not None and len(val) > 0
        if self.has_validation:
            self.seen = interactions(train_set.users, train_set.movies, n_users, model.n_movies)
            known = np.zeros(model.n_movies, dtype=bool)
            known[train_set.movies] = True
            kept = known[val.movies]  # as protocol B: validation movies with no training rating are dropped
            self.val_rows = (val.users[kept], val.movies[kept], val.values[kept])

    def steps(self) -> Iterator[tuple[int, Callable[[], torch.Tensor] | None]]:
        w, movies, pad = self.windows, self.history.movies, self.model.pad
        for batch in batches(w, self.batch_size, self.order):
            inputs = padded(movies, w.start[batch], w.length[batch], pad)
            targets = padded(movies, w.start[batch] + 1, w.length[batch], -1)
            yield int(w.length[batch].sum()), lambda i=inputs, t=targets: self._loss(i, t)

    def _loss(self, inputs: np.ndarray, targets: np.ndarray) -> torch.Tensor:
        inputs_t = torch.from_numpy(inputs).to(self.device, non_blocking=True)
        targets_t = torch.from_numpy(targets).to(self.device, non_blocking=True)
        valid = targets_t >= 0
        hidden = self.model.encode(inputs_t)[valid]
        target = targets_t[valid]
        items = self.model.item_matrix()
        if self.loss == "softmax":
            return softmax_cross_entropy(hidden, items, target)
        negatives = torch.multinomial(self.sampling, self.negatives, replacement=True, generator=self.generator)
        return sampled_cross_entropy(hidden, items, target, negatives, torch.log(self.sampling * self.negatives))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """NDCG@10 over every unseen movie (the champion's metric), and the mean cross-entropy of
        the validation movies given each user's training history (the loss curve's validation)."""
        self.model.eval()
        users, movies, values = self.val_rows
        unique, inverse = np.unique(users, return_inverse=True)
        vectors = self.model.user_vectors(torch.from_numpy(unique).to(self.device))  # encoded once
        items_t = self.model.item_matrix().T
        row_of = np.full(self.seen.shape[0], -1, dtype=np.int64)
        row_of[unique] = np.arange(len(unique))

        def scores(batch: np.ndarray) -> np.ndarray:
            return (vectors[torch.from_numpy(row_of[batch]).to(self.device)] @ items_t).float().cpu().numpy()

        metrics = full_ranking_metrics(scores, self.seen, users, movies, values, LIKED_UNIT, ks=(10,))
        total = 0.0
        for start in range(0, len(unique), 1024):
            logits = (vectors[start : start + 1024] @ items_t).float()
            rows = np.flatnonzero((inverse >= start) & (inverse < start + 1024))
            at = torch.from_numpy(inverse[rows] - start).to(self.device)
            picked = logits[at, torch.from_numpy(movies[rows]).to(self.device)]
            total += float((torch.logsumexp(logits, dim=1)[at] - picked).sum())
        # no validation user with a liked movie (a tiny or early dataset): nothing to rank, NDCG 0
        return {VAL_LOSS: total / max(len(users), 1), MONITOR: metrics.get("ndcg@10", 0.0)}


class SASRecModel(NeuralRecommender):
    spec = ModelSpec(
        "sasrec",
        "causal self-attention over each user's chronological history, full-softmax next-movie loss",
        defaults={
            "embedding_dim": 128,  # bench/sasrec_grid.py: best validation NDCG@10 in the fewest epochs
            "blocks": 2,
            "heads": 1,
            "dropout": 0.2,
            "max_len": 200,
            "lr": 1e-3,
            "betas": (0.9, 0.98),
            "weight_decay": 0.0,
            "batch_size": 32,
            # validation NDCG@10 creeps up by 0.0001-0.0008 an epoch after its first plateau (ml-1m-users-
            # 1-2999: 0.1740 at epoch 14, 0.1748 at 24): gains under 0.5% are noise, not worth an epoch
            "patience": 3,
            "min_delta": 0.005,
            "lr_patience": 1000,  # a constant learning rate, as the reference trained
            # bf16 products on CPUs with native bf16 (bench/sasrec_speed.py): the same validation
            # NDCG@10 in fewer seconds per epoch (docs/results.md, "A nightly run that fits")
            "cpu_amp": True,
            "loss": "auto",
            "softmax_max_movies": 20_000,
            "softmax_budget_mb": 1024,
            "sampled_negatives": 2048,
            "shuffle_ties": False,
            # production continues the tuned weights for 2 epochs instead of 14 from scratch: test
            # NDCG@10 within 0.0021 of the scratch refit on three datasets (bench/warm_refit.py)
            "warm_epochs": 2,
        },
        tunable={"embedding_dim": (64, 128), "blocks": (1, 2), "dropout": (0.1, 0.2, 0.3), "max_len": (50, 200)},
        torch=True,
        ranks_from_history=True,
    )

    def build(self, train: Ratings | None) -> nn.Module:
        p = self.params
        return SASRec(
            self.n_movies,
            int(p["max_len"]),
            int(p["embedding_dim"]),
            int(p["blocks"]),
            int(p["heads"]),
            float(p["dropout"]),
        )

    def task(self, train: Ratings, val: Ratings | None) -> SequenceTask:
        """The model then ranks from `train`'s histories (SASRec.remember)."""
        settings = SequenceParams.of(self.params)
        return SequenceTask(self.module, self.n_users, train, val, self.train_params, settings, self.device)

    def rank_from(self, history: Ratings) -> None:
        self.module.remember(histories(history.users, history.movies, history.timestamps, self.n_users))

    def item_vectors(self) -> torch.Tensor | None:
        """Its tied item embeddings: the space its scores are dot products in."""
        return self.module.item_vectors()
