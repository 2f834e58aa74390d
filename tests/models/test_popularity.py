"""Most-popular: every user gets the movies most often rated in train, and says so in its reasons."""

import numpy as np

from pipeline.models.base import interactions
from pipeline.models.popularity import MostPopular


def test_most_popular_ranks_by_train_counts_for_everyone() -> None:
    x = interactions(np.array([0, 1, 2, 2]), np.array([1, 1, 0, 1]), 3, 3)
    scores = MostPopular().fit(x).scores(np.array([0, 2]))
    assert scores.tolist() == [[1.0, 3.0, 0.0], [1.0, 3.0, 0.0]]
