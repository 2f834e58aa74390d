"""The sequence model's trainer: next-movie prediction at every position of every history.

Each user's training ratings become one chronological history (protocol B's
order: timestamp, then movie id); windows of at most `max_len` positions
are batched with windows of similar length, so padding costs little. The
loss is softmax cross-entropy over the catalogue, or a sampled softmax on
catalogues too big for it (see `choose_loss`). Early stopping follows
validation NDCG@10 (ranking every unseen movie, as protocol B does), and
the epoch loop is pipeline.training.loop's, shared with every torch model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipeline.core.config import TrainParams
from pipeline.core.metrics import full_ranking_metrics
from pipeline.models.baselines import interactions
from pipeline.models.sasrec import (
    SASRec,
    batches,
    histories,
    padded,
    sampled_cross_entropy,
    softmax_cross_entropy,
    windows,
)
from pipeline.training.loop import VAL_LOSS, TrainResult, seed_everything, train

if TYPE_CHECKING:
    from pipeline.models.registry import Ratings

log = logging.getLogger(__name__)

MONITOR = "val_ndcg@10"
LIKED_UNIT = 0.8  # relevant = rating >= 80% of the scale's maximum (EVALUATION.md, B.4), on the [0, 1] scale


@dataclass(frozen=True)
class SequenceParams:
    """The sequence model's own training settings (pipeline/models/registry.py has the defaults)."""

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


def fit(
    model: SASRec,
    n_users: int,
    train_set: Ratings,
    val: Ratings | None,
    params: TrainParams,
    settings: SequenceParams,
    device: torch.device,
    *,
    epochs: int | None = None,
    lr_schedule: list[float] | None = None,
    checkpoint: Path | None = None,
) -> TrainResult:
    """Train on `train_set`'s histories; the model then ranks from them (model.remember)."""
    seed_everything(params.seed)
    model.to(device)
    task = SequenceTask(model, n_users, train_set, val, params, settings, device)
    return train(model, task, params, device, epochs=epochs, lr_schedule=lr_schedule, checkpoint=checkpoint)


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
