"""What every model is: the one contract the trainer, the protocols, scoring and the tests use.

A model is a `Recommender` subclass that carries its own `ModelSpec` (name,
defaults, tunable ranges, whether it rates, what side data and machinery it
needs) and answers, once fitted:

- `scores(users)`: a [users, movies] block to rank by (higher first);
- `predict(users, movies)`: a rating on the [0, 1] scale, when its spec says it rates;
- `item_vectors()`: movie vectors whose cosine says "similar", when it has them;
- `explain(...)`: why each recommended movie is there (pipeline.models.explain);
- `save(path)` / `load(path, ...)`: the fitted model, exactly.

`fit(train, val, plan)` fits it: one solve for a closed-form model; for a torch
model, epochs run by the loop the plan hands in (pipeline.training), so that
models never import the trainer and the trainer imports only this contract.
The registry (pipeline.models.registry) names the classes; nothing outside a
model's own module asks which model it is.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import scipy.sparse as sp
import torch

from pipeline.core.config import TrainParams
from pipeline.models.explain import Evidence, Reasons, similar

if TYPE_CHECKING:
    from torch import nn

    from pipeline.ingest.features import Features

# the validation figure that is lower-is-better; any other monitor (e.g. val_ndcg@10) is higher-is-better
VAL_LOSS = "val_loss"


@dataclass(frozen=True)
class ModelSpec:
    """What a model is, said by the model itself (its class carries it)."""

    name: str
    summary: str
    # its hyper-parameters over the trainer's TrainParams defaults (the notebooks' values where a
    # notebook had the model)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # values a hyper-parameter search may try, per parameter
    tunable: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # predicts a rating (RMSE, predicted_rating); a model that does not is never asked to
    rates: bool = False
    # side data without which it cannot run: "tags" (skipped with a reason when absent)
    needs: tuple[str, ...] = ()
    # a torch network trained in epochs (needs the trainer's loop, a device, checkpoints)
    torch: bool = False
    # scores each (user, movie) pair through a network: too dear for every pair of a big catalogue,
    # so scoring re-ranks a retriever's candidates there (pipeline.serving.recommend)
    pairwise: bool = False
    # scores a user from their latest ratings (EASE's row of X, sasrec's sequence): rank_from changes its lists
    ranks_from_history: bool = False
    # how its rows are explained, in words (the run report and docs say it)
    reason: str = "similar"


@dataclass
class Ratings:
    """Ratings over dense indices; `values` on the [0, 1] scale; `timestamps` (Unix seconds) order
    each user's history for the sequence model (None: the rows' own order)."""

    users: np.ndarray
    movies: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.from_numpy(np.array(self.users, dtype=np.int64)),
            torch.from_numpy(np.array(self.movies, dtype=np.int64)),
            torch.from_numpy(np.array(self.values, dtype=np.float32)),
        )


def interactions(users: np.ndarray, movies: np.ndarray, n_users: int, n_movies: int) -> sp.csr_matrix:
    """Binary users x movies matrix of who rated what."""
    data = np.ones(len(users), dtype=np.float32)
    matrix = sp.csr_matrix((data, (users, movies)), shape=(n_users, n_movies))
    matrix.data[:] = 1.0  # a repeated pair still counts once
    return matrix


@dataclass
class FitResult:
    """What a fit did: per-epoch history (none for a closed form), the best epoch and its figures."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    seconds: float = 0.0
    samples_per_s: float = 0.0
    monitor: str = VAL_LOSS  # what chose the best epoch
    best_val_score: float | None = None  # the monitor's value at the best epoch
    loss: str = ""  # what was minimised, in words (the task's `loss_name`)


@dataclass
class RatingMeans:
    """What a rating model falls back to for a user or a movie its fit never saw: a mean of the
    training ratings ([0, 1] scale, so stars on the dataset's own scale), never a guess from an
    untrained row. NaN marks a user or movie without training ratings."""

    overall: float
    user: np.ndarray  # [n_users]
    movie: np.ndarray  # [n_movies]

    @classmethod
    def of(cls, train: Ratings, n_users: int, n_movies: int) -> RatingMeans:
        values = np.asarray(train.values, np.float64)

        def per(index: np.ndarray, n: int) -> np.ndarray:
            counts = np.bincount(index, minlength=n)
            sums = np.bincount(index, weights=values, minlength=n)
            return np.divide(sums, counts, out=np.full(n, np.nan), where=counts > 0).astype(np.float32)

        overall = float(values.mean()) if len(values) else 0.5
        return cls(overall, per(np.asarray(train.users), n_users), per(np.asarray(train.movies), n_movies))

    def fill(self, users: np.ndarray, movies: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """`predicted`, with each pair whose user or movie is unseen replaced by the nearest mean:
        the movie's for an unseen user, the user's for an unseen movie, the overall one for both."""
        user_mean, movie_mean = self.user[users], self.movie[movies]
        unseen_user, unseen_movie = np.isnan(user_mean), np.isnan(movie_mean)
        if not (unseen_user.any() or unseen_movie.any()):
            return predicted
        out = np.array(predicted, dtype=np.float32)
        out[unseen_user & ~unseen_movie] = movie_mean[unseen_user & ~unseen_movie]
        out[~unseen_user & unseen_movie] = user_mean[~unseen_user & unseen_movie]
        out[unseen_user & unseen_movie] = self.overall
        return out


class Task(Protocol):
    """What a torch model learns from, as the trainer's epoch loop sees it."""

    samples: int  # per epoch (progress and samples/s)
    unit: str  # what a sample is, for the progress line ("samples", "positions")
    monitor: str  # the validation figure early stopping follows (VAL_LOSS, or a higher-is-better metric)
    has_validation: bool
    loss_name: str  # what a batch's loss is, in words (logged, and kept in the fit's summary)

    def steps(self) -> Iterator[tuple[int, Callable[[], torch.Tensor] | None]]:
        """One epoch in a seeded order: (samples, a closure returning the batch's mean loss, or None
        to skip the batch)."""
        ...

    def validate(self) -> dict[str, float]:
        """Validation figures after an epoch: VAL_LOSS and, where it differs, the monitor."""
        ...


class EpochLoop(Protocol):
    """The trainer's loop (pipeline.training.loop.train): optimiser, schedule, early stopping."""

    def __call__(
        self, network: nn.Module, task: Task, params: TrainParams, device: torch.device, plan: FitPlan
    ) -> FitResult: ...


@dataclass(frozen=True)
class FitPlan:
    """How one fit runs. Without `epochs`: early stopping on validation. With `epochs` (a refit
    without validation): exactly that many, replaying `lr_schedule`. From `init_state`'s weights
    (a warm start) when given; the best epoch checkpointed to `checkpoint`. `loop` runs a torch
    model's epochs: the trainer hands itself in (pipeline.training.fit), models never import it."""

    loop: EpochLoop | None = None
    epochs: int | None = None
    lr_schedule: list[float] | None = None
    checkpoint: Path | None = None
    init_state: Mapping[str, Any] | None = None


class Recommender(ABC):
    """One model: fitted on ratings over the dataset's dense indices, then asked for scores."""

    spec: ClassVar[ModelSpec]

    def __init__(self, params: Mapping[str, Any], feats: Features, device: torch.device) -> None:
        self.params, self.feats, self.device = dict(params), feats, device
        self.n_users, self.n_movies = len(feats.user_ids), len(feats.movie_ids)
        self.means: RatingMeans | None = None  # a rating model's fallbacks, set by fit
        self._unit_vectors: torch.Tensor | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    # -- what the class says about itself ---------------------------------
    @classmethod
    def hyper_parameters(cls, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Trainer defaults, then the model's own defaults, then the run's overrides."""
        base = {f.name: getattr(TrainParams(), f.name) for f in fields(TrainParams)}
        merged = {**base, **cls.spec.defaults, **(overrides or {})}
        for key in ("hidden", "betas"):  # tuples (a run's config.json gives lists)
            if key in merged:
                merged[key] = tuple(merged[key])
        return merged

    @classmethod
    def skip_reason(cls, feats: Features) -> str | None:
        """Why this model cannot run on this dataset, or None when it can."""
        if "tags" in cls.spec.needs and not feats.has_tags:
            return "the dataset has no tags (no tags file, or no tag on any rated movie)"
        return None

    # -- fitting ----------------------------------------------------------------
    def fit(self, train: Ratings, val: Ratings | None = None, plan: FitPlan | None = None) -> FitResult:
        """Learn from `train` (and `val`, where the model stops early on it); a rating model also
        keeps the training means it falls back to for users and movies `train` does not hold."""
        if self.spec.rates:
            self.means = RatingMeans.of(train, self.n_users, self.n_movies)
        return self._fit(train, val, plan or FitPlan())

    @abstractmethod
    def _fit(self, train: Ratings, val: Ratings | None, plan: FitPlan) -> FitResult:
        """The family's own fitting."""

    def rank_from(self, history: Ratings) -> None:
        """Rank from `history` from now on, weights unchanged. Only models whose spec says
        ranks_from_history read it; for the others a user's taste is in their weights. The nightly
        job's test figures come from the tuned model ranking from train this way."""
        return None

    # -- answering --------------------------------------------------------------
    @abstractmethod
    def score_tensor(self, users: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """[len(users), n_movies] scores on the model's device (higher ranks first); written into
        `out` (a reused buffer) where the model's scorer allows it."""

    def scores(self, users: np.ndarray) -> np.ndarray:
        """The same block as numpy, for the evaluation protocols."""
        return self.score_tensor(torch.from_numpy(np.asarray(users, np.int64)).to(self.device)).float().cpu().numpy()

    def score_candidates(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """[B, K] scores of each user's own candidates (movies [B, K])."""
        return self.score_tensor(users).gather(1, movies)

    def predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """The rating on the [0, 1] scale for each (user, movie) pair, for a spec that rates; a
        user or movie the fit never saw gets a training mean (RatingMeans) instead."""
        if not self.spec.rates:
            raise NotImplementedError(f"{self.name} does not rate: its spec says rates=False, so no one asks it")
        users, movies = np.asarray(users, np.int64), np.asarray(movies, np.int64)
        predicted = self._predict(users, movies)
        return predicted if self.means is None else self.means.fill(users, movies, predicted)

    def _predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """The model's own ratings for pairs (only rating models have one)."""
        raise NotImplementedError(f"{self.name} does not rate")

    @torch.no_grad()
    def ratings_of_ranked(self, users: torch.Tensor, movies: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Ratings on [0, 1] of ranked pairs (users [B], movies and their scores [B, k])."""
        flat_users = users.repeat_interleave(movies.shape[1]).cpu().numpy()
        predicted = self.predict(flat_users, movies.reshape(-1).cpu().numpy())
        return torch.from_numpy(predicted).to(scores.device).view(movies.shape)

    def item_vectors(self) -> torch.Tensor | None:
        """Movie vectors whose cosine says "similar" (for reasons), when the model has them."""
        return None

    def explain(
        self, users: np.ndarray, top_movies: torch.Tensor, top_scores: torch.Tensor, evidence: Evidence
    ) -> Reasons:
        """Per recommendation [B, k], the movie that drives it. By default the user's best-rated
        movie closest to it in the model's item space; models with a truer account override it."""
        if self._unit_vectors is None:
            vectors = self.item_vectors()
            if vectors is None:
                return Reasons.none(tuple(top_movies.shape))
            self._unit_vectors = torch.nn.functional.normalize(vectors.to(self.device).float(), dim=1)
        return similar(users, top_movies, evidence.liked(), self._unit_vectors)

    # -- persistence --------------------------------------------------------
    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything a fitted model needs to score again (torch weights, or arrays)."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Become the fitted model `state` describes."""

    def save(self, path: Path) -> None:
        """Written beside and renamed over `path`: a kill mid-save leaves the previous file whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        saved = {"model": self.name, "params": self.params, "state": self.state_dict(), "means": self.means}
        torch.save(saved, partial)
        partial.replace(path)

    @classmethod
    def load(cls, path: Path, feats: Features, device: torch.device) -> Recommender:
        """A saved model of this class (side features travel in the weights as buffers)."""
        saved = torch.load(path, map_location=device, weights_only=False)  # our own file, from a run folder
        if saved.get("model") != cls.spec.name:
            raise ValueError(f"{path} holds a {saved.get('model')} model, not {cls.spec.name}")
        model = cls(saved["params"], feats, device)
        model.load_state_dict(saved["state"])
        model.means = saved.get("means")
        return model


class ArrayModel(Recommender):
    """A model that scores with numpy (the closed forms): its `_scores` fills a float32 block."""

    @abstractmethod
    def _scores(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """[len(users), n_movies]; into `out` when given."""

    def _solve(self, train: Ratings) -> None:
        """The one step a closed form takes."""
        raise NotImplementedError

    def _fit(self, train: Ratings, val: Ratings | None, plan: FitPlan) -> FitResult:
        """One solve on `train`; validation and the plan's epochs do not apply."""
        result = FitResult()
        started = time.perf_counter()
        self._solve(train)
        result.seconds = time.perf_counter() - started
        return result

    def score_tensor(self, users: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        if out is not None and out.device.type == "cpu" and out.dtype == torch.float32 and out.is_contiguous():
            self._scores(users.cpu().numpy(), out=out.numpy())  # shares out's memory
            return out
        return torch.from_numpy(np.array(self._scores(users.cpu().numpy()), np.float32)).to(self.device)
