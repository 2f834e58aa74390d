"""The small synthetic dataset every model is tested on (generated in code, never MovieLens rows)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import torch

from pipeline.core.config import TrainParams
from pipeline.evaluation.split import temporal_split
from pipeline.ingest.features import Features
from pipeline.models import registry
from pipeline.models.base import FitPlan, FitResult, Ratings, Recommender
from pipeline.models.neural import RatingTask, seed_everything
from pipeline.training import fit, loop
from tests.support.synthetic import make

CPU = torch.device("cpu")

# few epochs at a high learning rate: enough to learn the planted structure in seconds
FAST = {"max_epochs": 40, "patience": 6, "batch_size": 256, "lr": 0.01, "interaction_weight": 1.0}
N_USERS, N_MOVIES = 120, 60


def features(with_tags: bool = True, seed: int = 0) -> Features:
    """Ids, 4 user groups, 5 random genres and sparse random tag weights per movie."""
    rng = np.random.default_rng(seed)
    tags = (rng.random((N_MOVIES, 12)) < 0.3).astype(np.float32) * rng.random((N_MOVIES, 12)).astype(np.float32)
    return Features(
        user_ids=np.arange(1, N_USERS + 1),
        movie_ids=np.arange(1, N_MOVIES + 1),
        user_features=np.eye(4, dtype=np.float32)[np.arange(N_USERS) % 4],
        movie_features=(rng.random((N_MOVIES, 5)) < 0.4).astype(np.float32),
        user_feature_names=[f"g{i}" for i in range(4)],
        genres=[f"genre{i}" for i in range(5)],
        movie_tags=tags if with_tags else np.zeros((N_MOVIES, 0), np.float32),
        tag_terms=[f"t{i}" for i in range(12)] if with_tags else [],
    )


def planted_split() -> pl.DataFrame:
    """Ratings with planted tastes (4 user clusters) and protocol B's split (20% test)."""
    data = make(n_users=N_USERS, n_movies=N_MOVIES, per_user=30, seed=3, clusters=4)
    frame = pl.DataFrame(data.ratings, schema=["user_id", "movie_id", "rating", "timestamp"], orient="row")
    frame = frame.with_columns(user_idx=pl.col("user_id") - 1, movie_idx=pl.col("movie_id") - 1)
    return temporal_split(frame, fraction=0.2)


def fitted(
    name: str,
    train: Ratings,
    val: Ratings | None = None,
    overrides: dict[str, Any] | None = None,
    feats: Features | None = None,
    **plan: Any,
) -> Recommender:
    """A model of that name with its defaults under `overrides`, fitted the way the job fits one."""
    cls = registry.model_class(name)
    model = cls(cls.hyper_parameters(overrides), feats if feats is not None else features(), CPU)
    fit(model, train, val, **plan)
    return model


def train_rating_network(
    network: torch.nn.Module, train: Ratings, val: Ratings | None, params: TrainParams, **plan: Any
) -> FitResult:
    """One torch network on the rating task, in the trainer's loop (what a pair model's fit does)."""
    seed_everything(params.seed)
    network.to(CPU)
    task = RatingTask(network, train, val, params, CPU)
    return loop.train(network, task, params, CPU, FitPlan(loop.train, **plan))
