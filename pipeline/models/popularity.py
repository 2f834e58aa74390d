"""Most-popular: every user gets the movies most often rated in train. The floor every learned
model must clear, and the list a user with too little history falls back to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from pipeline.models.base import ArrayModel, ModelSpec, Ratings, interactions
from pipeline.models.explain import Evidence, Reasons


@dataclass
class MostPopular:
    """Counts of who rated each movie (implicit feedback: a rating of any value counts)."""

    counts: np.ndarray | None = None

    def fit(self, x: sp.csr_matrix) -> MostPopular:
        self.counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
        return self

    def scores(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """[len(users), n_movies]; a read-only broadcast view unless written into `out`."""
        if self.counts is None:
            raise RuntimeError("MostPopular: fit first")
        if out is None:
            return np.broadcast_to(self.counts, (len(users), len(self.counts)))
        out[...] = self.counts
        return out


class MostPopularModel(ArrayModel):
    spec = ModelSpec("most_popular", "the movies most often rated in train", reason="popular")

    def __init__(self, params: Mapping[str, Any], feats, device: torch.device) -> None:
        super().__init__(params, feats, device)
        self.solver = MostPopular()

    def _solve(self, train: Ratings) -> None:
        self.solver.fit(interactions(train.users, train.movies, self.n_users, self.n_movies))

    def _scores(self, users: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return self.solver.scores(users, out=out)

    def explain(
        self, users: np.ndarray, top_movies: torch.Tensor, top_scores: torch.Tensor, evidence: Evidence
    ) -> Reasons:
        """How many ratings the movie had, and over which dates: never a claim about the user's taste."""
        none = Reasons.none(tuple(top_movies.shape))
        scores = top_scores.float().cpu().numpy()
        # its score is the count; rows past a user's last candidate are -inf and dropped later
        counts = np.rint(np.where(np.isfinite(scores), scores, 0.0)).astype(np.int64)
        return Reasons(none.movie, none.rating, popularity=counts, window=evidence.window())

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.solver.counts}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.solver = MostPopular(state["counts"])
