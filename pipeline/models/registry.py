"""Every model by name: what it needs, its defaults, and one interface to fit and score it.

A model is chosen by name in the run's config (`models`). Whatever its
family, a fitted model answers `predict(users, movies)` (the rating on the
[0, 1] scale, for models that predict ratings) and `scores(users)` (a
[users, movies] matrix to rank by), so both evaluation protocols, scoring
and publishing treat every model alike.
"""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from pipeline.core.config import TrainParams, UnknownModelError, check_model_names  # noqa: F401 (UnknownModelError: re-exported)
from pipeline.models.baselines import EASE, MostPopular, interactions
from pipeline.models.biased_mf import BiasedMF
from pipeline.models.pair_mlp import PairMLP
from pipeline.models.sasrec import SASRec, histories
from pipeline.models.svd import TruncatedSVDRatings
from pipeline.training import loop as trainer
from pipeline.training import ratings as rating_trainer
from pipeline.training import sequences as sequence_trainer

if TYPE_CHECKING:
    from pipeline.ingest.features import Features

log = logging.getLogger(__name__)

# Pairs scored per forward pass by the all-pairs scorers: on the CPU ~16 MB of
# hidden activations stays in cache (measured fastest here); a GPU wants more.
PAIRS_PER_BATCH = {"cpu": 1 << 15, "cuda": 1 << 22}
# scores held at once when ranking every movie: 2^26 floats on the CPU (256 MiB; 1,137 users
# of a 59,000-movie catalogue): a 50,000-user shard of the ml-25m shape took 6.5-7.0 s in
# blocks of 2^26 against 7.6-8.1 s in blocks of 2^24 (fewer, larger products and passes),
# and the block is still small next to the data
SCORES_PER_BLOCK = {"cpu": 1 << 26, "cuda": 1 << 27}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    # "neural": trained on ratings by pipeline.training.ratings; "sequence": on each user's chronological
    # history by pipeline.training.sequences; "closed_form": solved in one step
    family: str
    predicts_ratings: bool  # False: ranks only (no RMSE)
    needs: tuple[str, ...]  # "tags", "user_features", "genres": skipped with a reason without them
    # the notebooks' values where a notebook had the model; "negatives": 1 adds the
    # interaction head that ranks (0 is the notebook-faithful rating-only variant)
    defaults: dict[str, Any]
    summary: str


SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "neumf_features",
            "neural",
            True,
            (),
            {"embedding_dim": 32, "hidden": (128, 64, 32), "dropout": 0.3, "batch_norm": True, "negatives": 1},
            "ID embeddings + user demographics + genre multi-hot -> MLP with batch norm and dropout",
        ),
        ModelSpec(
            "ncf_tags",
            "neural",
            True,
            ("tags",),
            {
                "embedding_dim": 32,
                "hidden": (128, 64, 32),
                "dropout": 0.3,
                "batch_norm": True,
                "negatives": 1,
                "tag_components": 32,
            },
            "neumf_features plus each movie's tag TF-IDF reduced by TruncatedSVD",
        ),
        ModelSpec(
            "mlp",
            "neural",
            True,
            (),
            {"embedding_dim": 32, "hidden": (64, 32), "dropout": 0.2, "batch_norm": False, "negatives": 1},
            "plain user and movie ID embeddings -> MLP (the ml-100k notebook)",
        ),
        ModelSpec(
            "dnn_content",
            "neural",
            True,
            (),
            {"embedding_dim": 16, "hidden": (64, 32), "dropout": 0.2, "batch_norm": False, "negatives": 1},
            "ID embeddings + genre multi-hot + tag TF-IDF (min-max scaled on train) -> small MLP",
        ),
        ModelSpec(
            "biased_mf",
            "neural",
            True,
            (),
            {"factors": 64, "weight_decay": 1e-5, "lr": 2e-3, "negatives": 1, "sparse_embeddings": "auto"},
            "global + user + movie bias + dot product of factors, trained in torch",
        ),
        ModelSpec(
            "sasrec",
            "sequence",
            False,
            (),
            {
                "embedding_dim": 128,  # bench/sasrec_grid.py: best validation NDCG@10 in the fewest epochs
                "blocks": 2,
                "heads": 1,
                "dropout": 0.2,
                "max_len": 200,
                "lr": 1e-3,
                "betas": (0.9, 0.98),
                "weight_decay": 0.0,
                "batch_size": 32,
                "max_epochs": 200,
                # validation NDCG@10 creeps up by 0.0001-0.0008 an epoch after its first plateau (ml-1m-users-
                # 1-2999: 0.1740 at epoch 14, 0.1748 at 24): gains under 0.5% are noise, not worth an epoch
                "patience": 3,
                "min_delta": 0.005,
                "lr_patience": 1000,  # a constant learning rate, as the reference trained
                # bf16 products on CPUs with native bf16 (bench/sasrec_speed.py): the same validation
                # NDCG@10 in fewer seconds per epoch (docs/results.md, "A nightly run that fits")
                "cpu_amp": True,
                "loss": "auto",
                "softmax_max_movies": 20_000,
                "softmax_budget_mb": 1024,
                "sampled_negatives": 2048,
                "shuffle_ties": False,
                # production continues the tuned weights for 2 epochs instead of 14 from scratch: test
                # NDCG@10 within 0.0021 of the scratch refit on three datasets (bench/warm_refit.py)
                "warm_epochs": 2,
            },
            "causal self-attention over each user's chronological history, full-softmax next-movie loss",
        ),
        ModelSpec("svd", "closed_form", True, (), {"k": 50}, "user-mean-centred truncated SVD (scipy svds)"),
        ModelSpec("most_popular", "closed_form", False, (), {}, "the movies most often rated in train"),
        ModelSpec(
            "ease",
            "closed_form",
            False,
            (),
            {"lam": 1000.0, "max_movies": 20_000},
            "EASE item-item closed form (Steck 2019); ranks only",
        ),
    )
}


def spec(name: str) -> ModelSpec:
    if name not in SPECS:
        check_model_names([name])  # raises, naming the known ones
    return SPECS[name]


def skip_reason(name: str, feats: Features) -> str | None:
    """Why this model cannot run on this dataset, or None when it can."""
    s = spec(name)
    if "tags" in s.needs and not feats.has_tags:
        return "the dataset has no tags (no tags file, or no tag on any rated movie)"
    return None


def hyper_parameters(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trainer defaults, then the model's own defaults, then the run's overrides."""
    base = {f.name: getattr(TrainParams(), f.name) for f in fields(TrainParams)}
    merged = {**base, **spec(name).defaults, **(overrides or {})}
    for key in ("hidden", "betas"):  # tuples (a run's config.json gives lists)
        if key in merged:
            merged[key] = tuple(merged[key])
    return merged


def train_params(params: dict[str, Any]) -> TrainParams:
    known = {f.name for f in fields(TrainParams)}
    return TrainParams(**{k: v for k, v in params.items() if k in known})


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


class Recommender:
    """A model of any family behind one interface."""

    def __init__(self, name: str, params: dict[str, Any], feats: Features, device: torch.device) -> None:
        self.spec, self.params, self.feats, self.device = spec(name), params, feats, device
        self.n_users, self.n_movies = len(feats.user_ids), len(feats.movie_ids)
        self.module: torch.nn.Module | None = None
        self.solver: Any = None

    @property
    def name(self) -> str:
        return self.spec.name

    # -- fitting ---------------------------------------------------------
    def fit(
        self,
        train: Ratings,
        val: Ratings | None,
        *,
        epochs: int | None = None,
        lr_schedule: list[float] | None = None,
        checkpoint: Path | None = None,
        init_state: dict[str, torch.Tensor] | None = None,
    ) -> trainer.TrainResult:
        """Neural: early stopping on `val`, or exactly `epochs` epochs (replaying `lr_schedule`)
        when refitting without validation; from `init_state`'s weights (a warm start) when given.
        Closed form: one solve on `train`."""
        if self.spec.family == "closed_form":
            result = trainer.TrainResult()
            started = time.perf_counter()
            self.solver = self._solve(train)
            result.seconds = time.perf_counter() - started
            return result
        trainer.seed_everything(int(self.params["seed"]))
        self.module = self._build(train)
        if init_state is not None:
            self.module.load_state_dict(init_state)
        if self.spec.family == "sequence":
            return sequence_trainer.fit(
                self.module,
                self.n_users,
                train,
                val,
                train_params(self.params),
                sequence_trainer.SequenceParams.of(self.params),
                self.device,
                epochs=epochs,
                lr_schedule=lr_schedule,
                checkpoint=checkpoint,
            )
        return rating_trainer.fit(
            self.module,
            train.tensors(),
            val.tensors() if val is not None else None,
            train_params(self.params),
            self.device,
            epochs=epochs,
            lr_schedule=lr_schedule,
            checkpoint=checkpoint,
        )

    def _build(self, train: Ratings | None) -> torch.nn.Module:
        """The network; `train` sets what depends on training rows (None when weights are loaded)."""
        p, f = self.params, self.feats
        if self.name == "sasrec":
            return SASRec(
                self.n_movies,
                int(p["max_len"]),
                int(p["embedding_dim"]),
                int(p["blocks"]),
                int(p["heads"]),
                float(p["dropout"]),
            )
        if self.name == "biased_mf":
            mean = float(np.mean(train.values)) if train is not None and len(train) else 0.7
            sparse = trainer.sparse_tables(p.get("sparse_embeddings", False), self.n_users + self.n_movies)
            return BiasedMF(self.n_users, self.n_movies, int(p["factors"]), mean, sparse)
        user_side = np.zeros((self.n_users, 0), np.float32)
        movie_side = [np.zeros((self.n_movies, 0), np.float32)]
        if self.name in ("neumf_features", "ncf_tags"):
            user_side = f.user_features
            movie_side.append(f.movie_features)
        if self.name == "ncf_tags":
            movie_side.append(_tag_components(f.movie_tags, int(p["tag_components"]), int(p["seed"])))
        if self.name == "dnn_content":
            movie_side.append(f.movie_features)
            if f.has_tags:
                from sklearn.preprocessing import MinMaxScaler  # here: most runs never import scikit-learn

                # scaled on the movies seen in train only, so val/test movies leak nothing
                seen = np.unique(train.movies) if train is not None else slice(None)
                scaler = MinMaxScaler().fit(f.movie_tags[seen])
                movie_side.append(np.clip(scaler.transform(f.movie_tags), 0.0, 1.0).astype(np.float32))
        return PairMLP(
            self.n_users,
            self.n_movies,
            torch.from_numpy(np.asarray(user_side, np.float32)),
            torch.from_numpy(np.hstack(movie_side).astype(np.float32)),
            int(p["embedding_dim"]),
            tuple(p["hidden"]),
            float(p["dropout"]),
            bool(p["batch_norm"]),
        )

    def _solve(self, train: Ratings) -> Any:
        if self.name == "svd":
            return TruncatedSVDRatings(int(self.params["k"])).fit(
                train.users, train.movies, train.values.astype(np.float64), self.n_users, self.n_movies
            )
        x = interactions(train.users, train.movies, self.n_users, self.n_movies)
        if self.name == "most_popular":
            return MostPopular().fit(x)
        return EASE(float(self.params["lam"]), int(self.params["max_movies"])).fit(x)

    def rank_from(self, history: Ratings) -> None:
        """Rank from `history` from now on, weights unchanged: the models that score a user from
        their ratings (EASE's row of X, sasrec's latest movies) see it; the others keep what
        they learnt (a user's factors are weights). The nightly job's test figures come from the
        tuned model ranking from train this way ("tuned model on test")."""
        if isinstance(self.solver, EASE):
            self.solver.x = interactions(history.users, history.movies, self.n_users, self.n_movies)
        elif isinstance(self.module, SASRec):
            self.module.remember(histories(history.users, history.movies, history.timestamps, self.n_users))

    # -- answering -------------------------------------------------------
    def predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """The rating on the [0, 1] scale for each (user, movie) pair."""
        if not self.spec.predicts_ratings:
            raise TypeError(f"{self.name} ranks movies but predicts no ratings")
        if self.module is not None:
            u, m = (torch.from_numpy(np.array(a, np.int64)).to(self.device) for a in (users, movies))
            return rating_trainer.predict(self.module, u, m).float().cpu().numpy()
        return self.solver.predict(np.asarray(users), np.asarray(movies)).astype(np.float32)

    @torch.no_grad()
    def ratings_of_ranked(self, users: torch.Tensor, movies: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Ratings on [0, 1] of ranked pairs (users [B], movies and their scores [B, k]).

        A neural model ranking by its rating head ranked by the rating itself,
        and biased MF's interaction score differs from its rating by biases
        alone, so neither repeats the per-pair work; the rest predict.
        """
        if self.module is not None and self.ranking_head == "rating":
            return scores.float()
        if hasattr(self.module, "rating_from_interaction"):
            return self.module.rating_from_interaction(users, movies, scores).float()
        flat_users = users.repeat_interleave(movies.shape[1]).cpu().numpy()
        predicted = self.predict(flat_users, movies.reshape(-1).cpu().numpy())
        return torch.from_numpy(predicted).to(scores.device).view(movies.shape)

    @torch.no_grad()
    def score_tensor(self, users: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """[len(users), n_movies] scores on the model's device (higher ranks first); written into
        `out` (a reused [len(users), n_movies] buffer) where the model's scorer is one matrix product."""
        if self.module is None:
            if out is not None and out.device.type == "cpu" and out.dtype == torch.float32 and out.is_contiguous():
                self.solver.scores(users.cpu().numpy(), out=out.numpy())  # shares out's memory
                return out
            return torch.from_numpy(np.array(self.solver.scores(users.cpu().numpy()), np.float32)).to(self.device)
        self.module.eval()
        head = self.ranking_head
        if not self.module.hidden_per_pair:
            return self.module.score_matrix(users, None, head, out=out)
        budget = PAIRS_PER_BATCH.get(self.device.type, 1 << 15)
        return self.module.score_matrix(users, None, head, out=out, pairs_per_block=budget)

    def score_candidates(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """[B, K] scores of each user's own candidates (movies [B, K]), in pair-budget chunks."""
        if self.module is None:
            return self.score_tensor(users).gather(1, movies)
        self.module.eval()
        step = max(1, PAIRS_PER_BATCH.get(self.device.type, 1 << 15) // max(movies.shape[1], 1))
        head = self.ranking_head
        out = torch.empty(movies.shape, device=self.device)  # filled in place: see PairMLP.score_matrix
        for i in range(0, len(users), step):
            out[i : i + step] = self.module.score_candidates(users[i : i + step], movies[i : i + step], head)
        return out

    @property
    def ranking_head(self) -> str:
        """Neural models rank by their interaction head when it was trained, else by rating."""
        return "interaction" if int(self.params.get("negatives", 0)) > 0 else "rating"

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.score_tensor(torch.from_numpy(np.asarray(users, np.int64)).to(self.device)).float().cpu().numpy()

    @property
    def reason_kind(self) -> str:
        """How a recommendation is explained (pipeline.serving.recommend): "popular" for most-popular (its
        ratings count and window, never a claim about the user's taste), "contribution" for EASE
        (the history movie whose weight adds most to the score), "similar" for every model with
        item vectors (the user's best-rated movie closest to it; for sasrec in its tied item
        embeddings, the space its scores are dot products in)."""
        if isinstance(self.solver, MostPopular):
            return "popular"
        if isinstance(self.solver, EASE):
            return "contribution"
        return "similar"

    def strongest(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        """EASE: per (user, recommended movie), the history movie contributing most (see EASE.strongest)."""
        if not isinstance(self.solver, EASE):
            raise TypeError(f"{self.name} has no per-movie contributions")
        return self.solver.strongest(users, movies)

    def item_vectors(self) -> torch.Tensor | None:
        """Movie vectors whose cosine says 'similar' (for reasons), when the model has them."""
        if isinstance(self.module, SASRec):
            return self.module.item_vectors()
        if self.module is not None:
            return self.module.movie_embedding.weight.detach()
        if isinstance(self.solver, TruncatedSVDRatings):
            return torch.from_numpy(self.solver.movie_factors.astype(np.float32))
        return None

    # -- persistence -----------------------------------------------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.module is not None:
            torch.save({"state": self.module.state_dict(), "params": self.params}, path)
        else:
            with path.open("wb") as f:
                pickle.dump({"solver": self.solver, "params": self.params}, f)

    @classmethod
    def load(cls, name: str, path: Path, feats: Features, device: torch.device) -> Recommender:
        """A saved model (side features travel in the weights as buffers)."""
        if spec(name).family != "closed_form":
            saved = torch.load(path, map_location=device, weights_only=False)
            model = cls(name, saved["params"], feats, device)
            model.module = model._build(None)
            model.module.load_state_dict(saved["state"])
            model.module.to(device).eval()
            return model
        with path.open("rb") as f:
            saved = pickle.load(f)  # our own file, from this run's folder
        model = cls(name, saved["params"], feats, device)
        model.solver = saved["solver"]
        return model


def _tag_components(tags: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The tag TF-IDF reduced to k components (scikit-learn's TruncatedSVD), unit-scaled."""
    from sklearn.decomposition import TruncatedSVD  # here: most runs never import scikit-learn

    k = max(1, min(k, tags.shape[1] - 1, tags.shape[0] - 1))
    reduced = TruncatedSVD(n_components=k, random_state=seed).fit_transform(sp.csr_matrix(tags))
    scale = np.abs(reduced).max() or 1.0
    return (reduced / scale).astype(np.float32)
