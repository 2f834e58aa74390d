"""Train one model under both evaluation protocols, then for production.

A (the notebooks'): fit on the per-user random 70% with early stopping on
15%, rating and re-ranking metrics on the last 15%.
B (full ranking, ../shared/EVALUATION.md): tune on train_inner -> val (the
champion metric is read here), then rank every unseen movie for the test
users. The weekly evaluation job refits on train (= train_inner + val) the
way production refits and ranks with the refit; the nightly job ranks with
the tuned model itself, given the train history to rank from ("tuned model
on test"), and trains nothing it would throw away.
Production: a refit on every rating, whose top-N lists are published. It
replays the epochs and learning rates validation chose from scratch, or,
for a model with `warm_epochs` (sasrec), continues the tuned weights on the
longer histories for that many epochs: on ml-1m-users-1-2999 two warm
epochs rank as well as fourteen from scratch (bench/warm_refit.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from pipeline.core.metrics import full_ranking_metrics, rating_metrics, rerank_metrics
from pipeline.evaluation.split import TEST, TRAIN, VAL, holdout_time_split
from pipeline.ingest.features import Features
from pipeline.ingest.layouts import RatingScale
from pipeline.models import registry
from pipeline.models.base import Ratings, Recommender, interactions
from pipeline.models.factors import TruncatedSVDRatings
from pipeline.training import fit

log = logging.getLogger(__name__)

NOTEBOOK = "notebook"
FULL_RANKING = "full_ranking"
# where protocol B's test figures come from (metrics.json "test_from", model_runs.test_from)
TEST_FROM_REFIT = "refit on train"
TEST_FROM_TUNED = "tuned model on test"
PROTOCOL_LABELS = {
    NOTEBOOK: "A: notebooks' protocol (per-user random 70/15/15, re-rank own test items)",
    FULL_RANKING: "B: full ranking (per-user temporal last 10% test, every unseen movie a candidate)",
}


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


def _part(frame: pl.DataFrame, *parts: int) -> pl.DataFrame:
    return frame.filter(pl.col("split").is_in(parts))


def notebook_protocol(
    name: str, params: dict[str, Any], feats: Features, split: pl.DataFrame, scale: RatingScale, device: torch.device
) -> tuple[dict[str, Any], pl.DataFrame | None]:
    """Protocol A test metrics (rating metrics only for models that predict ratings), and the
    test ratings beside their predictions in stars for the report's plots (None without ratings)."""
    model = registry.create(name, params, feats, device)
    fitted = fit(model, ratings(_part(split, TRAIN), scale), ratings(_part(split, VAL), scale))
    test = _part(split, TEST)
    users, movies = test["user_idx"].to_numpy(), test["movie_idx"].to_numpy()
    predictions = None
    if model.spec.rates:
        pred = model.predict(users, movies)
        metrics = rating_metrics(pred, scale.to_unit(test["rating"].to_numpy()), scale.max)
        predictions = pl.DataFrame(
            {"actual": test["rating"].to_numpy(), "predicted": np.asarray(pred, dtype=np.float64) * scale.max}
        )
    else:
        pred, metrics = _pair_scores(model, users, movies), {}
    metrics |= rerank_metrics(test["user_id"].to_numpy(), pred, test["rating"].to_numpy(), scale.like_threshold)
    return {"test": metrics, "fit": _fit_summary(fitted)}, predictions


def full_ranking_protocol(
    name: str,
    params: dict[str, Any],
    feats: Features,
    split: pl.DataFrame,
    scale: RatingScale,
    device: torch.device,
    checkpoint: Path | None = None,
    refit: bool = True,
    max_users: int | None = None,
) -> tuple[dict[str, Any], pl.DataFrame | None]:
    """Protocol B: val metrics of the tuned model; test metrics of its refit on train (`refit`), or
    of the tuned model itself ranking from the train history (the nightly job's, no extra fit).
    Also the validation ratings beside the tuned model's predictions in stars, for the report's
    plots (None for a model that predicts no ratings). `max_users`: see ranking_metrics."""
    inner, val = _part(split, TRAIN), _part(split, VAL)
    model = registry.create(name, params, feats, device)
    tuned = fit(model, ratings(inner, scale), ratings(val, scale), checkpoint=checkpoint)
    val_metrics = ranking_metrics(model, inner, val, scale, max_users)
    predictions = None
    if model.spec.rates:  # the run's rating predictor is the lowest validation RMSE (run.evaluate)
        pred = model.predict(val["user_idx"].to_numpy(), val["movie_idx"].to_numpy())
        val_metrics |= rating_metrics(pred, scale.to_unit(val["rating"].to_numpy()), scale.max)
        predictions = pl.DataFrame(
            {"actual": val["rating"].to_numpy(), "predicted": np.asarray(pred, dtype=np.float64) * scale.max}
        )
    schedule = schedule_from(tuned)
    warm = warm_start_from(schedule, params)
    train, test = _part(split, TRAIN, VAL), _part(split, TEST)
    train_rows = ratings(train, scale)
    out: dict[str, Any] = {"val": val_metrics, "fit": _fit_summary(tuned), "schedule": schedule, "warm_start": warm}
    if refit:  # as production will: from the tuned weights when the model warm-starts, else from scratch
        refitted = registry.create(name, params, feats, device)  # load_state_dict copies the tuned weights in
        fitted = fit(refitted, train_rows, None, **(warm or schedule), init_state=model.state_dict() if warm else None)
        out["refit"] = {**_fit_summary(fitted), "start": WARM_START if warm else FROM_SCRATCH}
        out["test"] = ranking_metrics(refitted, train, test, scale, max_users)
    # the tuned model ranking from train, weights unchanged: the nightly job's test figures; in the
    # evaluation job they sit beside the refit's (docs/results.md compares the two)
    model.rank_from(train_rows)
    out["test_tuned" if refit else "test"] = ranking_metrics(model, train, test, scale, max_users)
    out["test_from"] = TEST_FROM_REFIT if refit else TEST_FROM_TUNED
    sampled = any("users_sampled_from" in m for m in (out["val"], out["test"]))
    out["eval_sample_users"] = max_users if sampled else None
    return out, predictions


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
    return model, {**_fit_summary(fitted), "start": WARM_START if start else FROM_SCRATCH}


WARM_START = "tuned weights"
FROM_SCRATCH = "scratch"


def schedule_from(tuned) -> dict[str, Any]:
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


def _fit_summary(result) -> dict[str, Any]:
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
            {"epoch": h["epoch"], "train_loss": h["train_loss"], "val_loss": _finite(h["val_loss"])}
            for h in result.history
        ],
    }


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def ranking_metrics(
    model: Recommender, train: pl.DataFrame, test: pl.DataFrame, scale: RatingScale, max_users: int | None = None
) -> dict[str, Any]:
    """Full-ranking metrics of `test` rows against everything unseen in `train`; with `max_users`,
    over at most that many users, drawn with a fixed seed (evaluate.full_ranking_metrics)."""
    seen = interactions(train["user_idx"].to_numpy(), train["movie_idx"].to_numpy(), model.n_users, model.n_movies)
    known = np.zeros(model.n_movies, dtype=bool)
    known[train["movie_idx"].unique().to_numpy()] = True
    kept = test.filter(pl.Series(known[test["movie_idx"].to_numpy()]))
    metrics = full_ranking_metrics(
        model.scores,
        seen,
        kept["user_idx"].to_numpy(),
        kept["movie_idx"].to_numpy(),
        kept["rating"].to_numpy(),
        scale.like_threshold,
        max_users=max_users,
    )
    metrics["test_rows_without_train_movie"] = len(test) - len(kept)
    return metrics


def _pair_scores(model: Recommender, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """Ranking scores at given pairs, for models that only score whole rows."""
    out = np.empty(len(users), np.float32)
    unique, inverse = np.unique(users, return_inverse=True)
    for start in range(0, len(unique), 1024):
        rows = np.flatnonzero((inverse >= start) & (inverse < start + 1024))
        block = model.scores(unique[start : start + 1024])
        out[rows] = block[inverse[rows] - start, movies[rows]]
    return out


def svd_notebook_holdout(
    ratings: pl.DataFrame, k: int = 50, ties: tuple[str, ...] = ("movie_id",)
) -> tuple[int, float, float]:
    """The ml-latest-small notebook's evaluation: fit on its per-user 80/10/10 time split's train
    part (timestamp ties broken by `ties`); (test pairs whose user and movie were in train, RMSE,
    MAE) on those pairs."""
    frame = holdout_time_split(ratings, ties=ties)
    train, test = frame.filter(pl.col("split") == TRAIN), frame.filter(pl.col("split") == TEST)
    users = {u: i for i, u in enumerate(train["user_id"].unique().sort())}
    movies = {m: i for i, m in enumerate(train["movie_id"].unique().sort())}
    known = test.filter(pl.col("user_id").is_in(list(users)) & pl.col("movie_id").is_in(list(movies)))
    model = TruncatedSVDRatings(k=k).fit(
        train["user_id"].replace_strict(users).to_numpy(),
        train["movie_id"].replace_strict(movies).to_numpy(),
        train["rating"].to_numpy(),
        len(users),
        len(movies),
    )
    pred = model.predict(
        known["user_id"].replace_strict(users).to_numpy(), known["movie_id"].replace_strict(movies).to_numpy()
    )
    error = pred - known["rating"].to_numpy()
    return len(known), float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error)))
