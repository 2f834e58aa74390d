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

import numpy as np
import polars as pl
import torch
from torch import nn

from pipeline.config import TrainParams
from pipeline.datasets.layouts import RatingScale

log = logging.getLogger(__name__)

Triples = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # users, movies, target in [0, 1]


def triples(frame: pl.DataFrame, scale: RatingScale) -> Triples:
    """(user_idx, movie_idx, rating on the unit scale) tensors from an indexed ratings frame."""
    return (
        torch.from_numpy(frame["user_idx"].to_numpy().copy()),
        torch.from_numpy(frame["movie_idx"].to_numpy().copy()),
        torch.from_numpy(scale.to_unit(frame["rating"].to_numpy()).astype(np.float32)),
    )


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


@torch.no_grad()
def predict(model: nn.Module, users: torch.Tensor, movies: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
    """Scores for (user, movie) pairs in eval mode, in large batches."""
    model.eval()
    parts = [model(users[i : i + batch_size], movies[i : i + batch_size]) for i in range(0, len(users), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0, device=users.device)


def fit(model: nn.Module, train: Triples, val: Triples, params: TrainParams, device: torch.device) -> TrainResult:
    """Adam + ReduceLROnPlateau + early stopping on validation MSE; best weights restored."""
    seed_everything(params.seed)
    model.to(device)
    train, val = to_device(train, device), to_device(val, device)
    optimiser = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser, mode="min", factor=params.lr_factor, patience=params.lr_patience
    )
    loss_fn = nn.MSELoss()
    generator = torch.Generator(device=device).manual_seed(params.seed)
    n = len(train[0])
    result = TrainResult()
    best_state = copy.deepcopy(model.state_dict())
    stale = 0
    started = time.perf_counter()
    for epoch in range(1, params.max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, device=device, generator=generator)
        total = torch.zeros((), device=device)
        for start in range(0, n, params.batch_size):
            idx = order[start : start + params.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(train[0][idx], train[1][idx]), train[2][idx])
            loss.backward()
            optimiser.step()
            total += loss.detach() * len(idx)
        train_loss = float(total) / n
        val_loss = float(loss_fn(predict(model, val[0], val[1]), val[2]))
        scheduler.step(val_loss)
        seconds = time.perf_counter() - t0
        lr = optimiser.param_groups[0]["lr"]
        result.history.append(
            {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr, "seconds": seconds}
        )
        improved = val_loss < result.best_val_loss - 1e-7
        log.info(
            "epoch %d/%d  train_mse %.5f  val_mse %.5f  lr %.1e  %.1fs (%.0f samples/s)%s",
            epoch,
            params.max_epochs,
            train_loss,
            val_loss,
            lr,
            seconds,
            n / seconds,
            "  *best" if improved else "",
        )
        if improved:
            result.best_val_loss, result.best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= params.patience:
                log.info("early stop: no val improvement for %d epochs; best epoch %d", stale, result.best_epoch)
                break
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    epochs = len(result.history)
    result.samples_per_s = n * epochs / sum(h["seconds"] for h in result.history) if epochs else 0.0
    return result
