"""One trainer for the torch models: whole tensors on the device, batches by index.

The notebooks fed a per-sample Dataset through a DataLoader; here the
training set lives on the device as three tensors and each batch is one
gather, which is what makes an epoch seconds instead of tens of seconds.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.config import TrainParams
from pipeline.progress import Progress

log = logging.getLogger(__name__)

Triples = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # users, movies, target in [0, 1]


def select_device(requested: str = "auto") -> torch.device:
    """CUDA when asked for or available (auto), else CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available on this machine")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    seconds: float = 0.0
    samples_per_s: float = 0.0


def to_device(triples: Triples, device: torch.device) -> Triples:
    return tuple(t.to(device) for t in triples)  # type: ignore[return-value]


def eval_batch(device: torch.device) -> int:
    """Pairs per forward pass outside training. On the CPU a pass whose activations stay in cache
    is faster: a validation pass of 73,000 pairs took 37 ms in batches of 8,192, 87 ms in one of 65,536."""
    return 65536 if device.type == "cuda" else 8192


@torch.no_grad()
def predict(model: nn.Module, users: torch.Tensor, movies: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Scores for (user, movie) pairs in eval mode, in batches (default: eval_batch of their device)."""
    model.eval()
    batch_size = batch_size or eval_batch(users.device)
    parts = [model(users[i : i + batch_size], movies[i : i + batch_size]) for i in range(0, len(users), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0, device=users.device)


def _on_device(tensors: Triples, device: torch.device) -> Triples:
    """Whole tensors onto the device once; pinned host memory makes the copy asynchronous on CUDA."""
    if device.type == "cuda":
        return tuple(t.pin_memory().to(device, non_blocking=True) for t in tensors)  # type: ignore[return-value]
    return to_device(tensors, device)


def fit(
    model: nn.Module,
    train: Triples,
    val: Triples | None,
    params: TrainParams,
    device: torch.device,
    *,
    epochs: int | None = None,
    lr_schedule: list[float] | None = None,
    checkpoint: Path | None = None,
) -> TrainResult:
    """Adam + ReduceLROnPlateau + early stopping on validation MSE; best weights restored.

    Without `val` (a refit on more data) it trains exactly `epochs` epochs,
    replaying `lr_schedule` (the learning rate per epoch of the tuned run) so
    the refit follows the schedule validation chose. With `checkpoint`, the
    best weights, optimiser state and history are saved there as they improve.
    """
    seed_everything(params.seed)
    model.to(device)
    train = _on_device(train, device)
    val = _on_device(val, device) if val is not None else None
    # fused: one kernel updates every parameter (the CPU default runs ~10 ops per tensor);
    # bench/train_speed.py at batch 1024 on this CPU: 219k against 196k samples/s
    optimiser = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay, fused=True)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser, mode="min", factor=params.lr_factor, patience=params.lr_patience
    )
    # bfloat16 autocast on CUDA (no loss scaling needed); the CPU stays float32.
    amp = params.amp and device.type == "cuda"
    generator = torch.Generator(device=device).manual_seed(params.seed)
    objective = _Objective(model, params, generator)
    n = len(train[0])
    max_epochs = epochs if epochs is not None else params.max_epochs
    result = TrainResult()
    best_state = copy.deepcopy(model.state_dict())
    stale = 0
    started = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        if lr_schedule:
            for group in optimiser.param_groups:
                group["lr"] = lr_schedule[min(epoch, len(lr_schedule)) - 1]
        model.train()
        order = torch.randperm(n, device=device, generator=generator)
        total = torch.zeros((), device=device)
        with Progress(n, f"epoch {epoch}/{max_epochs}", "samples", log) as progress:
            for start in range(0, n, params.batch_size):
                idx = order[start : start + params.batch_size]
                progress.update(len(idx))
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                optimiser.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    loss = objective(*(t.index_select(0, idx) for t in train))
                loss.backward()
                optimiser.step()
                total += loss.detach() * len(idx)
        train_loss = float(total) / n
        lr = optimiser.param_groups[0]["lr"]
        val_loss = objective.validation(val) if val is not None else float("nan")
        if val is not None and not lr_schedule:
            scheduler.step(val_loss)
        seconds = time.perf_counter() - t0
        result.history.append(
            {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr, "seconds": seconds}
        )
        improved = val is None or val_loss < result.best_val_loss - 1e-7
        log.info(
            "epoch %d/%d  train_loss %.5f  val_loss %.5f  lr %.1e  %.1fs (%.0f samples/s)%s",
            epoch,
            max_epochs,
            train_loss,
            val_loss,
            lr,
            seconds,
            n / seconds,
            "  *best" if improved and val is not None else "",
        )
        if improved:
            result.best_val_loss, result.best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimiser, result)
        else:
            stale += 1
            if stale >= params.patience:
                log.info("early stop: no val improvement for %d epochs; best epoch %d", stale, result.best_epoch)
                break
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    epochs_run = len(result.history)
    result.samples_per_s = n * epochs_run / sum(h["seconds"] for h in result.history) if epochs_run else 0.0
    return result


class _Objective:
    """MSE on the rating; plus, with `negatives` > 0, binary cross-entropy of the interaction
    head on the rated pairs against that many uniformly sampled movies per pair."""

    def __init__(self, model: nn.Module, params: TrainParams, generator: torch.Generator) -> None:
        self.model, self.k, self.weight, self.generator = model, params.negatives, params.interaction_weight, generator
        self.n_movies = model.movie_embedding.num_embeddings if self.k else 0

    def __call__(self, users: torch.Tensor, movies: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self.k:
            return nn.functional.mse_loss(self.model(users, movies).float(), target)
        n = len(users)
        sampled = torch.randint(self.n_movies, (n * self.k,), device=users.device, generator=self.generator)
        rating, logit = self.model.outputs(torch.cat([users, users.repeat(self.k)]), torch.cat([movies, sampled]))
        labels = torch.zeros(len(logit), device=users.device)
        labels[:n] = 1.0
        mse = nn.functional.mse_loss(rating[:n].float(), target)
        return mse + self.weight * nn.functional.binary_cross_entropy_with_logits(logit.float(), labels)

    @torch.no_grad()
    def validation(self, val: Triples) -> float:
        """The same loss on validation, with negatives drawn from a fixed seed (comparable across epochs)."""
        self.model.eval()
        if not self.k:
            return float(nn.functional.mse_loss(predict(self.model, val[0], val[1]).float(), val[2]))
        saved, self.generator = self.generator, torch.Generator(device=val[0].device).manual_seed(12345)
        total = 0.0
        step = eval_batch(val[0].device)
        for i in range(0, len(val[0]), step):
            part = slice(i, i + step)
            total += float(self(val[0][part], val[1][part], val[2][part])) * len(val[0][part])
        self.generator = saved
        return total / max(len(val[0]), 1)


def _save_checkpoint(path: Path, model: nn.Module, optimiser: torch.optim.Optimizer, result: TrainResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "epoch": result.best_epoch,
        "history": result.history,
    }
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)  # a crash never leaves half a checkpoint
