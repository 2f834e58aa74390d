"""What the torch models share: fitting through the trainer's loop, scoring through their
network, saving their weights, and the rating objective the pair models learn.

A `NeuralRecommender` builds its network (`build`) and says what it learns
from (`task`); the epoch loop that trains it is the trainer's, handed in by
the fit plan (pipeline.training), so this module never imports the trainer.
The rating task keeps the training set on the device as three tensors and
cuts each batch by one gather, which is what makes an epoch seconds instead
of the notebooks' tens of seconds through a per-sample DataLoader.
"""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.core.config import TrainParams
from pipeline.models.base import VAL_LOSS, FitPlan, FitResult, Ratings, Recommender

# Pairs scored per forward pass by the all-pairs scorers: on the CPU ~16 MB of
# hidden activations stays in cache (measured fastest here); a GPU wants more.
PAIRS_PER_BATCH = {"cpu": 1 << 15, "cuda": 1 << 22}
# embedding-table rows (users + movies) above which "auto" trains the tables sparse; measured by
# bench/train_sparse.py --sweep (dense Adam's step grows with the rows, SparseAdam's with the batch)
SPARSE_ABOVE_ROWS = 50_000

Triples = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # users, movies, target in [0, 1]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_params(params: Mapping[str, Any]) -> TrainParams:
    known = {f.name for f in fields(TrainParams)}
    return TrainParams(**{k: v for k, v in params.items() if k in known})


def sparse_tables(setting: bool | str, rows: int) -> bool:
    """Whether a model's embedding tables train with sparse gradients (TrainParams.sparse_embeddings).

    Dense Adam also decays every row each step, which sparse tables cannot
    (SparseAdam has no weight decay): biased_mf's validation RMSE on
    ml-1m-users-1-2999 is 0.1730 dense against 0.1771 sparse. So "auto"
    keeps them dense until the catalogue makes a dense step expensive.
    """
    if setting == "auto":
        return rows > SPARSE_ABOVE_ROWS
    if isinstance(setting, bool):
        return setting
    raise ValueError(f'sparse_embeddings must be true, false or "auto", not {setting!r}')


def on_device(tensors: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Whole tensors onto the device once; pinned host memory makes the copy asynchronous on CUDA."""
    if device.type == "cuda":
        return tuple(t.pin_memory().to(device, non_blocking=True) for t in tensors)
    return tuple(t.to(device) for t in tensors)


class Dropout(nn.Dropout):
    """nn.Dropout whose CPU masks come from numpy's PCG64 instead of torch's bernoulli_.

    Measured on this 2-core CPU (4096 x 128 activations, forward + backward):
    torch's dropout 7.7 ms, this 1.4 ms; torch's CPU generator (mt19937) drew
    a quarter of every training step. The draws are the generator's raw
    64-bit outputs cut in four. The keep probability is quantised to
    1/65536. On CUDA (Philox, fast) and in eval mode it is plain nn.Dropout.
    The numpy generator is seeded from torch's, so a seeded run repeats.
    """

    def __init__(self, p: float) -> None:
        super().__init__(p)
        self._threshold = round(p * 65536)
        self._scale = np.float32(65536 / max(65536 - self._threshold, 1))
        self._rng = np.random.default_rng(int(torch.randint(2**62, (1,))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu" or not 0 < self._threshold < 65536:
            return super().forward(x)
        # four 16-bit draws per raw 64-bit output: 1.75x faster than integers(0, 65536, dtype=uint16)
        draws = self._rng.bit_generator.random_raw(-(-x.numel() // 4)).view(np.uint16)[: x.numel()]
        mask = (draws >= self._threshold).astype(np.float32) * self._scale
        return x * torch.from_numpy(mask).view(x.shape).to(x.dtype)


class NeuralRecommender(Recommender):
    """A torch network behind the contract: built per fit, trained by the trainer's loop."""

    def __init__(self, params: Mapping[str, Any], feats, device: torch.device) -> None:
        super().__init__(params, feats, device)
        self.module: nn.Module | None = None

    @abstractmethod
    def build(self, train: Ratings | None) -> nn.Module:
        """The network; `train` sets what depends on training rows (None when weights are loaded)."""

    @abstractmethod
    def task(self, train: Ratings, val: Ratings | None) -> Any:
        """What the network learns from, as the trainer's loop runs it (pipeline.models.base.Task)."""

    @property
    def train_params(self) -> TrainParams:
        return train_params(self.params)

    def _fit(self, train: Ratings, val: Ratings | None, plan: FitPlan) -> FitResult:
        """Early stopping on `val`, or exactly the plan's epochs; from its init_state when given."""
        if plan.loop is None:
            raise TypeError(f"{self.name} trains in epochs: fit it through pipeline.training.fit, which runs them")
        seed_everything(int(self.params["seed"]))
        self.module = self.build(train)
        if plan.init_state is not None:
            self.module.load_state_dict(plan.init_state)
        seed_everything(int(self.params["seed"]))
        self.module.to(self.device)
        return plan.loop(self.module, self.task(train, val), self.train_params, self.device, plan)

    # -- answering -------------------------------------------------------
    @property
    def ranking_head(self) -> str:
        """The head a pair model ranks by: the interaction head when it was trained, else the rating."""
        return "interaction" if int(self.params.get("negatives", 0)) > 0 else "rating"

    def score_tensor(self, users: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        self.module.eval()
        return self.module.score_matrix(users, None, self.ranking_head, out=out)

    def score_candidates(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """[B, K] scores of each user's own candidates (movies [B, K]), in pair-budget chunks."""
        self.module.eval()
        step = max(1, PAIRS_PER_BATCH.get(self.device.type, 1 << 15) // max(movies.shape[1], 1))
        head = self.ranking_head
        out = torch.empty(movies.shape, device=self.device)  # filled in place: see PairMLP.score_matrix
        for i in range(0, len(users), step):
            out[i : i + step] = self.module.score_candidates(users[i : i + step], movies[i : i + step], head)
        return out

    def item_vectors(self) -> torch.Tensor | None:
        return self.module.movie_embedding.weight.detach()

    # -- persistence -----------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.module = self.build(None)
        self.module.load_state_dict(state)
        self.module.to(self.device).eval()


class RatingNetwork(NeuralRecommender):
    """A torch model that rates (biased MF, the notebooks' networks): it learns the rating task,
    and ranks by its interaction head when it was trained (`negatives` > 0), else by rating."""

    def task(self, train: Ratings, val: Ratings | None) -> RatingTask:
        return RatingTask(self.module, train, val, self.train_params, self.device)

    def _predict(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
        u, m = (torch.from_numpy(np.array(a, np.int64)).to(self.device) for a in (users, movies))
        return predict_pairs(self.module, u, m).float().cpu().numpy()

    @torch.no_grad()
    def ratings_of_ranked(self, users: torch.Tensor, movies: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """A model ranking by its rating head ranked by the rating itself: no per-pair work again."""
        if self.ranking_head == "rating":
            return scores.float()
        return super().ratings_of_ranked(users, movies, scores)


# -- the rating objective (biased MF and the notebooks' networks) -----------------


def eval_batch(device: torch.device) -> int:
    """Pairs per forward pass outside training. On the CPU a pass whose activations stay in cache
    is faster: a validation pass of 73,000 pairs took 37 ms in batches of 8,192, 87 ms in one of 65,536."""
    return 65536 if device.type == "cuda" else 8192


@torch.no_grad()
def predict_pairs(
    model: nn.Module, users: torch.Tensor, movies: torch.Tensor, batch_size: int | None = None
) -> torch.Tensor:
    """Ratings for (user, movie) pairs in eval mode, in batches (default: eval_batch of their device)."""
    model.eval()
    batch_size = batch_size or eval_batch(users.device)
    parts = [model(users[i : i + batch_size], movies[i : i + batch_size]) for i in range(0, len(users), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0, device=users.device)


class RatingTask:
    """Shuffled index batches over (user, movie, rating) triples; validation by the same loss:
    MSE on the rating, plus the interaction head's loss with sampled negatives."""

    unit, monitor = "samples", VAL_LOSS

    def __init__(
        self, model: nn.Module, train: Ratings, val: Ratings | None, params: TrainParams, device: torch.device
    ) -> None:
        generator = torch.Generator(device=device).manual_seed(params.seed)
        self.train_set = on_device(train.tensors(), device)
        self.val = on_device(val.tensors(), device) if val is not None else None
        self.batch_size, self.generator = params.batch_size, generator
        self.samples = len(self.train_set[0])
        self.has_validation = self.val is not None
        self.objective = _Objective(model, params, generator)
        self.loss_name = "mse on the rating" + (
            f" + {params.interaction_weight} x interaction bce against {params.negatives} sampled movie(s) per rating"
            if params.negatives
            else ""
        )

    def steps(self) -> Iterator[tuple[int, Callable[[], torch.Tensor] | None]]:
        order = torch.randperm(self.samples, device=self.generator.device, generator=self.generator)
        for start in range(0, self.samples, self.batch_size):
            idx = order[start : start + self.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                yield len(idx), None
                continue
            yield len(idx), lambda idx=idx: self.objective(*(t.index_select(0, idx) for t in self.train_set))

    def validate(self) -> dict[str, float]:
        if self.val is None:
            raise RuntimeError("validate() on a task without validation rows")
        return {VAL_LOSS: self.objective.validation(self.val)}


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
            return float(nn.functional.mse_loss(predict_pairs(self.model, val[0], val[1]).float(), val[2]))
        saved, self.generator = self.generator, torch.Generator(device=val[0].device).manual_seed(12345)
        total = 0.0
        step = eval_batch(val[0].device)
        for i in range(0, len(val[0]), step):
            part = slice(i, i + step)
            total += float(self(val[0][part], val[1][part], val[2][part])) * len(val[0][part])
        self.generator = saved
        return total / max(len(val[0]), 1)
