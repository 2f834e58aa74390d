"""The trainer: the epoch loop every torch model trains in, whatever it learns from.

A model's task (pipeline.models.base.Task: ratings for the pair models,
sequences for SASRec) says how an epoch is cut into batches, what a batch's
loss is and how validation is measured; the loop owns what must be the same
for every model: fused Adam, bfloat16 autocast (CUDA; CPUs with native bf16
where the model asks), a progress bar per epoch, the learning-rate schedule,
early stopping on the task's validation figure with the best weights
restored, and checkpoints of the best epoch. `fit` fits any model with this
loop handed in; it imports the model contract alone, never a model.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.core.config import TrainParams
from pipeline.core.progress import Progress
from pipeline.core.timings import release_free_memory
from pipeline.models.base import VAL_LOSS, FitPlan, FitResult, Ratings, Recommender, Task

log = logging.getLogger(__name__)
# batches of varying shapes (sasrec's windows) fragment glibc's heap: freed blocks that no later
# request fits stay resident. Handing free pages back every this many steps held sasrec's peak on
# 20,000 x 12,000 (bench/train_memory.py, one epoch) at 2.7 GB instead of 3.3 GB, at no cost in speed
TRIM_EVERY_STEPS = 50

# the relative fall of the validation loss that still counts as learning when the monitor is a ranking
# metric: sasrec's loss fell 0.25-1% an epoch while it learnt on ml-latest-small, and by ~1e-6 once
# a decayed learning rate had nothing left to learn
LOSS_MIN_DELTA = 1e-3


def select_device(requested: str = "auto") -> torch.device:
    """CUDA when asked for or available (auto), else CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available on this machine")
    return torch.device(requested)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX): elsewhere bf16 is
    emulated and slower than float32, so autocast stays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def autocast_enabled(params: TrainParams, device: torch.device) -> bool:
    """bfloat16 autocast: on CUDA with `amp`; on the CPU with `cpu_amp` too, where bf16 is native."""
    if not params.amp:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and params.cpu_amp and cpu_has_native_bf16()


def fit(
    model: Recommender,
    train_set: Ratings,
    val: Ratings | None = None,
    *,
    epochs: int | None = None,
    lr_schedule: list[float] | None = None,
    checkpoint: Path | None = None,
    init_state: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fit any model: a closed form solves; a torch model trains in this module's epoch loop
    (early stopping on `val`, or exactly `epochs` epochs replaying `lr_schedule`, from
    `init_state`'s weights when given; see `train`)."""
    plan = FitPlan(train, epochs, lr_schedule, checkpoint, init_state)
    return model.fit(train_set, val, plan)


def train(network: nn.Module, task: Task, params: TrainParams, device: torch.device, plan: FitPlan) -> FitResult:
    """Adam + ReduceLROnPlateau + early stopping on the task's monitor; best weights restored.

    Without validation (a refit on more data) it trains exactly `epochs`
    epochs, replaying `lr_schedule` (the learning rate per epoch of the tuned
    run) so the refit follows the schedule validation chose. With
    `checkpoint`, the best weights, optimiser state and history are saved
    there as they improve. The model, the task's tensors and the seed must be
    set up before (see the tasks' own constructors).
    """
    epochs, lr_schedule, checkpoint, model = plan.epochs, plan.lr_schedule, plan.checkpoint, network
    higher = task.monitor != VAL_LOSS
    optimiser = Optimisers(model, params)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser.lead, mode="max" if higher else "min", factor=params.lr_factor, patience=params.lr_patience
    )
    # bfloat16 autocast (no loss scaling needed) on CUDA, and on a CPU with native bf16 for the
    # models that ask for it (cpu_amp); the weights and the optimiser stay float32
    amp = autocast_enabled(params, device)
    max_epochs = epochs if epochs is not None else params.max_epochs
    result = FitResult(monitor=task.monitor, loss=task.loss_name)
    best = float("-inf") if higher else float("inf")
    best_state = copy.deepcopy(model.state_dict())
    stale, lowest_loss = 0, float("inf")
    started = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        if lr_schedule:
            optimiser.set_lr(lr_schedule[min(epoch, len(lr_schedule)) - 1])
        model.train()
        total = torch.zeros((), device=device)
        with Progress(task.samples, f"epoch {epoch}/{max_epochs}", task.unit, log) as progress:
            for step, (n, loss_of) in enumerate(task.steps(), 1):
                progress.update(n)
                if step % TRIM_EVERY_STEPS == 0:
                    release_free_memory(collect=False)
                if loss_of is None:
                    continue
                optimiser.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    loss = loss_of()
                loss.backward()
                optimiser.step()
                total += loss.detach() * n
        train_loss = float(total) / max(task.samples, 1)
        lr = optimiser.lr
        val = task.validate() if task.has_validation else {}
        val_loss = val.get(VAL_LOSS, float("nan"))
        score = val.get(task.monitor, float("nan"))
        if task.has_validation and not lr_schedule:
            scheduler.step(score)
            optimiser.set_lr(optimiser.lr)  # the scheduler moved the lead's rate only
        seconds = time.perf_counter() - t0
        extra = {k: v for k, v in val.items() if k != VAL_LOSS}
        result.history.append(
            {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, **extra, "lr": lr, "seconds": seconds}
        )
        # an improvement must beat the best by min_delta of its size: a gain below the noise of the
        # validation figure would only keep a fit running past the epoch that mattered
        margin = max(1e-7, params.min_delta * abs(best)) if np.isfinite(best) else 1e-7
        improved = not task.has_validation or (score > best + margin if higher else score < best - margin)
        # a ranking monitor is noisy and can dip while the model still learns (sasrec on ml-latest-small:
        # NDCG@10 0.045 at epoch 2, 0.039 at 5, 0.080 at 25, its validation loss falling all along), so
        # a fit whose validation loss still falls is not stale either; the best epoch stays the monitor's
        learning = (
            higher
            and task.has_validation
            and np.isfinite(val_loss)
            and val_loss < lowest_loss - max(1e-7, LOSS_MIN_DELTA * abs(lowest_loss))
        )
        lowest_loss = min(lowest_loss, val_loss) if np.isfinite(val_loss) else lowest_loss
        log.info(
            "epoch %d/%d  train_loss %.5f  val_loss %.5f%s  lr %.1e  %.1fs (%.0f %s/s)%s",
            epoch,
            max_epochs,
            train_loss,
            val_loss,
            f"  {task.monitor} {score:.4f}" if higher and task.has_validation else "",
            lr,
            seconds,
            task.samples / seconds,
            task.unit,
            "  *best" if improved and task.has_validation else "",
        )
        if improved:
            best, result.best_epoch, stale = score, epoch, 0
            result.best_val_loss = val_loss if task.has_validation else float("inf")
            result.best_val_score = score if task.has_validation else None
            best_state = copy.deepcopy(model.state_dict())
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimiser, result)
        elif learning:
            stale = 0
        else:
            stale += 1
            if stale >= params.patience:
                log.info(
                    "early stop: no %s improvement%s for %d epochs; best epoch %d",
                    task.monitor,
                    " and no lower validation loss" if higher else "",
                    stale,
                    result.best_epoch,
                )
                break
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    epochs_run = len(result.history)
    result.samples_per_s = task.samples * epochs_run / sum(h["seconds"] for h in result.history) if epochs_run else 0.0
    return result


class Optimisers:
    """Adam over the dense parameters and SparseAdam over sparse-gradient embedding tables, as one.

    Torch's Adam refuses sparse gradients; a model opts its tables in with
    `nn.Embedding(sparse=True)` (TrainParams.sparse_embeddings) so that a step
    costs the rows a batch touched instead of the whole catalogue. The
    learning-rate schedule follows `lead` and is copied to the others.
    """

    def __init__(self, model: nn.Module, params: TrainParams) -> None:
        sparse = [p for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse for p in m.parameters()]
        sparse_ids = {id(p) for p in sparse}
        dense = [p for p in model.parameters() if id(p) not in sparse_ids]
        betas = tuple(params.betas)
        self.all: list[torch.optim.Optimizer] = []
        if dense or not sparse:
            # fused: one kernel updates every parameter (the CPU default runs ~10 ops per tensor);
            # bench/train_speed.py at batch 1024 on this CPU: 219k against 196k samples/s
            self.all.append(
                torch.optim.Adam(dense, lr=params.lr, weight_decay=params.weight_decay, betas=betas, fused=True)
            )
        if sparse:
            self.all.append(torch.optim.SparseAdam(sparse, lr=params.lr, betas=betas))
        self.lead = self.all[0]

    @property
    def lr(self) -> float:
        return float(self.lead.param_groups[0]["lr"])

    def set_lr(self, lr: float) -> None:
        for optimiser in self.all:
            for group in optimiser.param_groups:
                group["lr"] = lr

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimiser in self.all:
            optimiser.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimiser in self.all:
            optimiser.step()

    def state_dict(self) -> dict[str, Any]:
        return {type(o).__name__: o.state_dict() for o in self.all}


def save_checkpoint(path: Path, model: nn.Module, optimiser: Optimisers, result: FitResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimiser": optimiser.state_dict(),
        "epoch": result.best_epoch,
        "history": result.history,
    }
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, partial)
    partial.replace(path)  # a crash never leaves half a checkpoint
