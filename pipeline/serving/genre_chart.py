"""`show-user --plot`: per genre, the user's average rating beside the model's average
predicted rating over the genre's movies the user has not rated.

The predictions come from the published run's own folder (its features,
ratings and production models), so the chart shows what that run believed:
the run's rater, whose predictions are the published predicted_rating. A
run without one (no rating model trained) has no predicted rating to show;
the chart then uses a truncated SVD fitted on the same run's ratings in a
few seconds, and says so in its title.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import torch

from pipeline.core.run_folder import RunFolder
from pipeline.core.sqlfiles import sql
from pipeline.ingest.features import Features
from pipeline.ingest.layouts import Layout, RatingScale
from pipeline.models import registry
from pipeline.models.base import Recommender
from pipeline.serving import plots
from pipeline.training import fit
from pipeline.training.recipe import ratings as unit_ratings

log = logging.getLogger(__name__)

STAND_IN = "svd"  # rates every pair; fitted in closed form from the run's ratings


class ChartError(RuntimeError):
    """The chart cannot be drawn (no published run, no run folder, unknown user)."""


@dataclass
class GenreComparison:
    user_id: int
    run_id: str
    model: str  # whose predictions are shown
    champion: str
    genres: list[str]
    actual: list[float | None]  # None: the user rated no movie of the genre
    predicted: list[float | None]  # None: the user has rated every movie of the genre
    rated: list[int]


def current_run(serving: Path) -> tuple[str, str]:
    """(run_id, model) of the recommendations consumers see now."""
    if not serving.exists():
        raise ChartError(f"no serving file at {serving}: run the job first (make run)")
    with duckdb.connect(str(serving), read_only=True) as con:
        row = con.execute(sql("queries/current_run_model")).fetchone()
    if row is None:
        raise ChartError(f"{serving} has no current recommendations")
    return row[0], row[1]


def compare(folder: RunFolder, run_id: str, champion: str, user_id: int) -> GenreComparison:
    """The per-genre averages for one user, from the run folder's files and models."""
    if not folder.features.is_file():
        raise ChartError(f"the folder of run {run_id} is gone or incomplete ({folder}): cannot predict for --plot")
    feats = Features.load(folder.features)
    scale = Layout.from_dict(folder.read(folder.manifest)["layout"]).scale
    where = np.flatnonzero(feats.user_ids == user_id)
    if not len(where):
        raise ChartError(f"user {user_id} has no ratings in run {run_id}")
    user_idx = int(where[0])
    own = pl.scan_parquet(folder.ratings).filter(pl.col("user_idx") == user_idx).collect()
    model = _rating_model(folder, champion, feats, scale)
    unseen = np.setdiff1d(np.arange(len(feats.movie_ids)), own["movie_idx"].to_numpy())
    predicted = model.predict(np.full(len(unseen), user_idx), unseen) * scale.max
    in_genre = feats.movie_features > 0
    rated_genres = in_genre[own["movie_idx"].to_numpy()]
    stars = own["rating"].to_numpy()
    genres, actual, mean_pred, counts = [], [], [], []
    for g, name in enumerate(feats.genres):
        mask_rated, mask_unseen = rated_genres[:, g], in_genre[unseen, g]
        if not mask_rated.any() and not mask_unseen.any():
            continue
        genres.append(name)
        actual.append(float(stars[mask_rated].mean()) if mask_rated.any() else None)
        mean_pred.append(float(predicted[mask_unseen].mean()) if mask_unseen.any() else None)
        counts.append(int(mask_rated.sum()))
    return GenreComparison(user_id, run_id, model.name, champion, genres, actual, mean_pred, counts)


def _rating_model(folder: RunFolder, champion: str, feats: Features, scale: RatingScale) -> Recommender:
    """The run's rater (it filled predicted_rating), else the champion when it predicts ratings,
    else the stand-in fitted here."""
    device = torch.device("cpu")
    rater = ((folder.read_if_present(folder.champion) or {}).get("rater") or {}).get("model")
    for name in (rater, champion):
        saved = folder.production_model(str(name))
        if name and registry.model_class(name).spec.rates and saved.is_file():
            return registry.load(name, saved, feats, device)
    ratings = pl.read_parquet(folder.ratings, columns=["user_idx", "movie_idx", "rating"])
    log.info(
        "%s predicts no ratings: fitting %s on the run's %d ratings for the chart", champion, STAND_IN, len(ratings)
    )
    stand_in = registry.create(STAND_IN, registry.model_class(STAND_IN).hyper_parameters(), feats, device)
    fit(stand_in, unit_ratings(ratings, scale))
    return stand_in


def write(comparison: GenreComparison, path: Path) -> Path:
    if comparison.model == comparison.champion:
        by = comparison.model
    elif registry.model_class(comparison.champion).spec.rates:
        by = f"{comparison.model} (the run's rater; {comparison.champion} ranked)"
    else:
        by = f"{comparison.model} ({comparison.champion} predicts no ratings)"
    labels = [f"{g} ({n})" for g, n in zip(comparison.genres, comparison.rated, strict=True)]
    title = f"User {comparison.user_id}: rated vs predicted by {by}, run {comparison.run_id}"
    return plots.genre_comparison(labels, comparison.actual, comparison.predicted, title, path)


def chart(serving: Path, user_id: int, path: Path) -> Path:
    """The genre chart of the currently published run for one user, written to `path`."""
    run_id, champion = current_run(serving)
    return write(compare(RunFolder.of_run(run_id), run_id, champion, user_id), path)
