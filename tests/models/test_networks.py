"""The notebooks' networks: the folded all-pairs scorer equals the forward pass, and each model
reads its own side features (dnn_content's tags min-max scaled on train movies only)."""

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.evaluation.split import TRAIN
from pipeline.ingest.layouts import WHOLE_STARS
from pipeline.models.base import Ratings
from pipeline.models.networks import PairMLP
from pipeline.training.recipe import ratings
from tests.support.model_data import N_MOVIES, features, fitted, planted_split


def _model(seed: int = 0) -> PairMLP:
    torch.manual_seed(seed)
    return PairMLP(80, 40, torch.rand(80, 3).round(), torch.rand(40, 5).round(), embedding_dim=8, hidden=(32, 16))


def test_score_matrix_equals_forward_on_every_pair() -> None:
    model = _model(seed=3).eval()
    for layer in model.mlp:  # non-trivial batch-norm statistics
        if isinstance(layer, torch.nn.BatchNorm1d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
    users, movies = torch.tensor([0, 5, 79]), torch.arange(40)
    with torch.no_grad():
        pairs = model(users.repeat_interleave(40), movies.repeat(3)).view(3, 40)
    assert torch.allclose(model.score_matrix(users, movies), pairs, atol=1e-5)


def test_dnn_content_scales_tag_features_on_train_movies_only() -> None:
    feats = features()
    feats.movie_tags[N_MOVIES - 1] = 50.0  # far above anything else, on a movie absent from train
    train = ratings(planted_split().filter(pl.col("split") == TRAIN), WHOLE_STARS)
    keep = train.movies != N_MOVIES - 1
    train = Ratings(train.users[keep], train.movies[keep], train.values[keep])
    model = fitted("dnn_content", train, None, {"max_epochs": 1}, feats=feats, epochs=1)
    side = model.module.movie_side.numpy()[:, feats.movie_features.shape[1] :]
    seen = np.unique(train.movies)
    # min-max from train movies: they span [0, 1]; the outlier cannot squash them, and is clipped
    assert side[seen].max() == pytest.approx(1.0) and side[seen].min() == pytest.approx(0.0)
    assert np.all(side[N_MOVIES - 1] <= 1.0)
    expected = feats.movie_tags[seen, 0] / feats.movie_tags[seen, 0].max()
    np.testing.assert_allclose(side[seen, 0], expected, rtol=1e-5)


def test_neumf_features_sees_demographics_and_genres_and_mlp_sees_ids_alone() -> None:
    train = ratings(planted_split().filter(pl.col("split") == TRAIN), WHOLE_STARS)
    feats = features()
    neumf = fitted("neumf_features", train, None, {"max_epochs": 1}, epochs=1)
    plain = fitted("mlp", train, None, {"max_epochs": 1}, epochs=1)
    np.testing.assert_array_equal(neumf.module.user_side.numpy(), feats.user_features)
    np.testing.assert_array_equal(neumf.module.movie_side.numpy(), feats.movie_features)
    assert plain.module.user_side.shape[1] == 0 and plain.module.movie_side.shape[1] == 0
