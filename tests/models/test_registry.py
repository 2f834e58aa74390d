"""Every model by name: each learns planted structure, saves and loads, and says why it is skipped."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.config import ALL_MODELS
from pipeline.datasets.layouts import WHOLE_STARS
from pipeline.evaluate import full_ranking_metrics
from pipeline.features import Features
from pipeline.models import registry
from pipeline.models.baselines import interactions
from pipeline.protocols import ratings
from pipeline.split import TEST, TRAIN, VAL, temporal_split
from tests.synthetic import make

CPU = torch.device("cpu")
FAST = {"max_epochs": 40, "patience": 6, "batch_size": 256, "lr": 0.01, "interaction_weight": 1.0}
N_USERS, N_MOVIES = 120, 60


def _features(with_tags: bool = True, seed: int = 0) -> Features:
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


@pytest.fixture(scope="module")
def split() -> pl.DataFrame:
    data = make(n_users=N_USERS, n_movies=N_MOVIES, per_user=30, seed=3, clusters=4)
    frame = pl.DataFrame(data.ratings, schema=["user_id", "movie_id", "rating", "timestamp"], orient="row")
    frame = frame.with_columns(user_idx=pl.col("user_id") - 1, movie_idx=pl.col("movie_id") - 1)
    return temporal_split(frame, fraction=0.2)


def _part(split: pl.DataFrame, part: int):
    return ratings(split.filter(pl.col("split") == part), WHOLE_STARS)


def test_the_registry_holds_exactly_the_models_the_config_can_name() -> None:
    assert set(registry.SPECS) == set(ALL_MODELS)


def test_an_unknown_model_name_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(registry.UnknownModelError, match=r"unknown model 'neumf'.*neumf_features"):
        registry.spec("neumf")


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if registry.spec(n).predicts_ratings])
def test_rating_model_learns_planted_structure_better_than_the_global_mean(name: str, split) -> None:
    train, val = _part(split, TRAIN), _part(split, VAL)
    model = registry.Recommender(name, registry.hyper_parameters(name, FAST), _features(), CPU)
    model.fit(train, val)
    mse = float(np.mean((model.predict(val.users, val.movies) - val.values) ** 2))
    baseline = float(np.mean((train.values.mean() - val.values) ** 2))
    assert mse < 0.85 * baseline, f"{name}: val MSE {mse:.4f} vs global mean {baseline:.4f}"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_ranks_held_out_movies_better_than_random(name: str, split) -> None:
    train, test = _part(split, TRAIN), _part(split, TEST)
    model = registry.Recommender(name, registry.hyper_parameters(name, FAST), _features(), CPU)
    model.fit(train, _part(split, VAL))
    seen = interactions(train.users, train.movies, N_USERS, N_MOVIES)

    def random_scores(users: np.ndarray) -> np.ndarray:
        return np.random.default_rng(0).random((len(users), N_MOVIES))

    ours = full_ranking_metrics(model.scores, seen, test.users, test.movies, test.values * 5, 1.0)
    chance = full_ranking_metrics(random_scores, seen, test.users, test.movies, test.values * 5, 1.0)
    assert ours["recall@10"] > 1.2 * chance["recall@10"], (
        f"{name}: {ours['recall@10']:.3f} vs {chance['recall@10']:.3f}"
    )


@pytest.mark.parametrize("name", ALL_MODELS)
def test_a_saved_model_loads_and_scores_exactly_as_before(name: str, split, tmp_path: Path) -> None:
    feats = _features()
    model = registry.Recommender(name, registry.hyper_parameters(name, {"max_epochs": 2}), feats, CPU)
    model.fit(_part(split, TRAIN), _part(split, VAL))
    model.save(tmp_path / "model.bin")
    again = registry.Recommender.load(name, tmp_path / "model.bin", feats, CPU)
    users = np.arange(10)
    np.testing.assert_allclose(again.scores(users), model.scores(users), rtol=1e-5, atol=1e-6)


def test_ncf_tags_is_skipped_with_a_reason_when_the_dataset_has_no_tags() -> None:
    assert "no tags" in registry.skip_reason("ncf_tags", _features(with_tags=False))
    assert registry.skip_reason("ncf_tags", _features(with_tags=True)) is None
    assert registry.skip_reason("dnn_content", _features(with_tags=False)) is None  # genres are content enough


def test_dnn_content_scales_tag_features_on_train_movies_only(split) -> None:
    feats = _features()
    feats.movie_tags[N_MOVIES - 1] = 50.0  # far above anything else, on a movie absent from train
    train = _part(split, TRAIN)
    keep = train.movies != N_MOVIES - 1
    train = registry.Ratings(train.users[keep], train.movies[keep], train.values[keep])
    model = registry.Recommender("dnn_content", registry.hyper_parameters("dnn_content", {"max_epochs": 1}), feats, CPU)
    model.fit(train, None, epochs=1)
    side = model.module.movie_side.numpy()[:, feats.movie_features.shape[1] :]
    seen = np.unique(train.movies)
    # min-max from train movies: they span [0, 1]; the outlier cannot squash them, and is clipped
    assert side[seen].max() == pytest.approx(1.0) and side[seen].min() == pytest.approx(0.0)
    assert np.all(side[N_MOVIES - 1] <= 1.0)
    expected = feats.movie_tags[seen, 0] / feats.movie_tags[seen, 0].max()
    np.testing.assert_allclose(side[seen, 0], expected, rtol=1e-5)


def test_ease_is_skipped_when_the_catalogue_is_too_big_for_its_dense_inverse() -> None:
    feats = _features()
    assert registry.skip_reason("ease", feats) is None
    big = registry.hyper_parameters("ease")["max_movies"] + 1
    feats.movie_ids = np.arange(big)
    assert "max_movies" in registry.skip_reason("ease", feats)
