"""Train and judge one model under the evaluation protocols.

A (the notebooks'): fit on the per-user random 70% with early stopping on
15%, rating and re-ranking metrics on the last 15%.
B (full ranking, ../shared/EVALUATION.md): tune on train_inner -> val (the
champion metric is read here), then rank every unseen movie for the test
users. The weekly evaluation job refits on train (= train_inner + val) the
way production refits and ranks with the refit; the nightly job ranks with
the tuned model itself, given the train history to rank from ("tuned model
on test"), and trains nothing it would throw away. The weekly refit starts
where production will (pipeline.training.recipe): from the tuned weights for a
model that warm-starts, else from scratch on the tuned schedule.
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
from pipeline.models.base import Recommender, interactions
from pipeline.models.factors import TruncatedSVDRatings
from pipeline.training import fit
from pipeline.training.recipe import (
    FROM_SCRATCH,
    WARM_START,
    fit_summary,
    ratings,
    schedule_from,
    warm_start_from,
)

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
    return {"test": metrics, "fit": fit_summary(fitted)}, predictions


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
    out: dict[str, Any] = {"val": val_metrics, "fit": fit_summary(tuned), "schedule": schedule, "warm_start": warm}
    if refit:  # as production will: from the tuned weights when the model warm-starts, else from scratch
        refitted = registry.create(name, params, feats, device)  # load_state_dict copies the tuned weights in
        fitted = fit(refitted, train_rows, None, **(warm or schedule), init_state=model.state_dict() if warm else None)
        out["refit"] = {**fit_summary(fitted), "start": WARM_START if warm else FROM_SCRATCH}
        out["test"] = ranking_metrics(refitted, train, test, scale, max_users)
    # the tuned model ranking from train, weights unchanged: the nightly job's test figures; in the
    # evaluation job they sit beside the refit's (docs/results.md compares the two)
    model.rank_from(train_rows)
    out["test_tuned" if refit else "test"] = ranking_metrics(model, train, test, scale, max_users)
    out["test_from"] = TEST_FROM_REFIT if refit else TEST_FROM_TUNED
    sampled = any("users_sampled_from" in m for m in (out["val"], out["test"]))
    out["eval_sample_users"] = max_users if sampled else None
    return out, predictions


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
