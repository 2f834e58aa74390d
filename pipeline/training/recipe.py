"""How the job fits a model, beyond one fit: the frames models read, the schedule validation
chose, and the production fit whose lists are published.

A production fit uses every rating up to the run's date, no hold-out. It
replays the epochs and learning rates validation chose from scratch, or, for
a model with `warm_epochs` (sasrec), continues the tuned weights on the
longer histories for that many epochs: on ml-1m-users-1-2999 two warm epochs
rank as well as fourteen from scratch (bench/warm_refit.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from pipeline.core.run_folder import RunFolder
from pipeline.ingest.features import Features
from pipeline.ingest.layouts import Layout, RatingScale
from pipeline.models import registry
from pipeline.models.base import FitResult, Ratings, Recommender
from pipeline.training.loop import fit, select_device

log = logging.getLogger(__name__)

MODEL_COLUMNS = ("user_idx", "movie_idx", "rating", "timestamp", "split")


def read_for_models(path: Path) -> pl.DataFrame:
    """A ratings or split file's columns that training and protocol B read, dense indices as int32.

    At 25M ratings the ids and int64 indices were 600 MB of every copy the
    protocols make (the file, train_inner, train), in a task that must stay
    under 8 GiB (issue 19)."""
    names = pl.read_parquet_schema(path)
    frame = pl.read_parquet(path, columns=[c for c in MODEL_COLUMNS if c in names])
    return frame.with_columns(pl.col("user_idx", "movie_idx").cast(pl.Int32))


def ratings(frame: pl.DataFrame, scale: RatingScale) -> Ratings:
    """A split's rows for the models; timestamps travel where the dataset has them (the sequence
    model orders each history by them)."""
    stamps = frame["timestamp"] if "timestamp" in frame.columns else None
    return Ratings(
        frame["user_idx"].to_numpy(),
        frame["movie_idx"].to_numpy(),
        scale.to_unit(frame["rating"].to_numpy()).astype(np.float32),
        None if stamps is None or stamps.null_count() or not stamps.dtype.is_integer() else stamps.to_numpy(),
    )


def production_fit(
    name: str,
    params: dict[str, Any],
    feats: Features,
    all_ratings: pl.DataFrame,
    scale: RatingScale,
    device: torch.device,
    schedule: dict[str, Any],
    warm: dict[str, Any] | None = None,
    tuned_state: dict[str, torch.Tensor] | None = None,
) -> tuple[Recommender, dict[str, Any]]:
    """The model whose lists are published: every rating up to the run's date, no hold-out. With
    `warm` and the tuned weights it continues those; otherwise it replays `schedule` from scratch."""
    model = registry.create(name, params, feats, device)
    start = warm is not None and tuned_state is not None
    fitted = fit(model, ratings(all_ratings, scale), None, **(warm if start else schedule), init_state=tuned_state)
    return model, {**fit_summary(fitted), "start": WARM_START if start else FROM_SCRATCH}


WARM_START = "tuned weights"
FROM_SCRATCH = "scratch"


def schedule_from(tuned: FitResult) -> dict[str, Any]:
    """Epochs and per-epoch learning rates validation chose (empty for closed-form models): what
    a refit on more data from scratch replays."""
    if not tuned.history:
        return {}
    lrs = [h["lr"] for h in tuned.history[: tuned.best_epoch]]
    return {"epochs": max(tuned.best_epoch, 1), "lr_schedule": lrs}


def warm_start_from(schedule: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
    """`warm_epochs` more epochs at the last learning rate of the tuned `schedule`, for a model
    that refits from its tuned weights (None: it refits from scratch, or has no epochs). A run's
    `max_epochs` caps these too: it is the most epochs any one fit of the run trains."""
    epochs = int(params.get("warm_epochs", 0))
    if epochs <= 0 or not schedule:
        return None
    epochs = min(epochs, int(params.get("max_epochs", epochs)))
    lr = schedule["lr_schedule"][-1] if schedule["lr_schedule"] else float(params["lr"])
    return {"epochs": epochs, "lr_schedule": [lr] * epochs}


def fit_summary(result: FitResult) -> dict[str, Any]:
    """What a fit did, as metrics.json and production.json keep it."""
    return {
        "seconds": round(result.seconds, 3),
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        # the validation loss at the best epoch: MSE (+ interaction BCE) for rating models, cross-entropy for sasrec
        "best_val_loss": None if not np.isfinite(result.best_val_loss) else result.best_val_loss,
        "samples_per_s": round(result.samples_per_s),
        "loss": result.loss or None,  # what was minimised (sasrec: full or sampled softmax)
        "monitor": result.monitor if result.history else None,  # what chose the best epoch
        "best_val_score": result.best_val_score,
        # per-epoch losses for the report's curves (none for closed-form models)
        "history": [
            {"epoch": h["epoch"], "train_loss": h["train_loss"], "val_loss": finite_or_none(h["val_loss"])}
            for h in result.history
        ],
    }


def finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None


def production_model(folder: RunFolder, name: str) -> Recommender:
    """The model `name` refit on every rating of the run, as validation chose (its metrics'
    schedule and warm start); saved in the run folder, so a re-run of scoring reuses it."""
    cfg = folder.load_config()
    device = select_device(cfg.device)
    feats = Features.load(folder.features)
    path = folder.production_model(name)
    if path.exists():
        return registry.load(name, path, feats, device)
    metrics = folder.read(folder.metrics(name))
    tuned = metrics["full_ranking"]  # protocol B's tuning (pipeline.evaluation.protocols)
    schedule, warm = tuned["schedule"], tuned.get("warm_start")
    tuned_state = _tuned_state(folder, name, device) if warm else None
    if tuned_state is not None:
        how = f"{warm['epochs']} epochs on from the tuned weights"
    else:
        how = f"{schedule['epochs']} epochs from scratch" if schedule else "closed form"
    log.info("%s: production fit on every rating (%s)", name, how)
    scale = Layout.from_dict(folder.read(folder.manifest)["layout"]).scale
    frame = read_for_models(folder.ratings)
    model, fitted = production_fit(name, metrics["params"], feats, frame, scale, device, schedule, warm, tuned_state)
    model.save(path)
    folder.write(folder.production_fit(name), fitted)
    return model


def _tuned_state(folder: RunFolder, name: str, device: torch.device) -> dict | None:
    """The tuned model's best weights, from train_model's checkpoint (None, and a refit from
    scratch, when it is gone: a run folder from before warm starts, or one cleaned by hand)."""
    path = folder.checkpoint(name)
    if not path.exists():
        log.warning("%s: no tuned checkpoint at %s; the production fit starts from scratch", name, path)
        return None
    return torch.load(path, map_location=device, weights_only=False)["model"]
