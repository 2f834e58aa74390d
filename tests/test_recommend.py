import numpy as np
import polars as pl
import torch
from torch import nn

from pipeline.models.registry import spec
from pipeline.recommend import top_n


class PopularityByIndex:
    """A recommender scoring movie i as i (higher index = better), with item vectors for reasons."""

    spec = spec("biased_mf")

    def __init__(self, n_users: int, n_movies: int) -> None:
        self.n_users, self.n_movies, self.device = n_users, n_movies, torch.device("cpu")
        self.vectors = nn.Embedding(n_movies, 4).weight.detach()

    def score_tensor(self, users: torch.Tensor) -> torch.Tensor:
        return (torch.arange(self.n_movies, dtype=torch.float32) / 100).expand(len(users), -1).clone()

    def item_vectors(self) -> torch.Tensor:
        return self.vectors


def _frames():
    # users 0, 1 have training rows; user 2 only has a rating outside train (cold for the model)
    ratings = pl.DataFrame(
        {
            "user_idx": [0, 0, 1, 1, 2],
            "movie_idx": [9, 8, 0, 1, 9],
            "rating": [5.0, 4.0, 3.0, 5.0, 4.0],
            "timestamp": [1, 2, 3, 4, 5],
        }
    )
    train = ratings.filter(pl.col("user_idx") < 2).vstack(
        pl.DataFrame({"user_idx": [1], "movie_idx": [7], "rating": [2.0], "timestamp": [6]})
    )
    return ratings, train


def test_top_n_excludes_seen_and_untrained_movies_and_ranks_by_score() -> None:
    ratings, train = _frames()
    recs = top_n(PopularityByIndex(3, 12), ratings, n=3, train=train)
    user0 = recs.filter(pl.col("user_idx") == 0).sort("rank")
    # candidates are movies with training rows {0, 1, 7, 8, 9}; user 0 saw 8 and 9
    assert user0["movie_idx"].to_list() == [7, 1, 0]
    assert user0["score"].to_list() == sorted(user0["score"].to_list(), reverse=True)
    assert not user0["is_fallback"].any()
    # every reason points at a movie the user rated highly
    assert set(user0["reason_movie_idx"].to_list()) <= {8, 9}


def test_users_without_training_rows_get_a_flagged_popularity_fallback() -> None:
    ratings, train = _frames()
    recs = top_n(PopularityByIndex(3, 12), ratings, n=3, train=train)
    cold = recs.filter(pl.col("user_idx") == 2).sort("rank")
    assert cold["is_fallback"].all() and len(cold) == 3
    assert 9 not in cold["movie_idx"].to_list()  # seen
    assert np.all(cold["reason_movie_idx"].to_numpy() == -1)


def test_fewer_candidates_than_n_gives_only_real_rows() -> None:
    ratings, train = _frames()
    recs = top_n(PopularityByIndex(3, 12), ratings, n=10, train=train)
    assert recs["score"].is_finite().all()
    assert recs.filter(pl.col("user_idx") == 0).height == 3  # 5 candidates - 2 seen
