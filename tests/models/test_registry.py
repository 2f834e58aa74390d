"""Every model by name: rating models learn planted structure, and each says why it is skipped.

What every model must do whatever its family (shapes, no seen movie, save/load, seeds) is the
shared contract in tests/models/test_contract.py."""

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.core.config import ALL_MODELS
from pipeline.evaluation.protocols import ratings
from pipeline.evaluation.split import TRAIN, VAL
from pipeline.ingest.layouts import WHOLE_STARS
from pipeline.models import registry
from tests.support.model_data import FAST, N_MOVIES, features, planted_split

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def split() -> pl.DataFrame:
    return planted_split()


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
    model = registry.Recommender(name, registry.hyper_parameters(name, FAST), features(), CPU)
    model.fit(train, val)
    mse = float(np.mean((model.predict(val.users, val.movies) - val.values) ** 2))
    baseline = float(np.mean((train.values.mean() - val.values) ** 2))
    assert mse < 0.85 * baseline, f"{name}: val MSE {mse:.4f} vs global mean {baseline:.4f}"


def test_ncf_tags_is_skipped_with_a_reason_when_the_dataset_has_no_tags() -> None:
    assert "no tags" in registry.skip_reason("ncf_tags", features(with_tags=False))
    assert registry.skip_reason("ncf_tags", features(with_tags=True)) is None
    assert registry.skip_reason("dnn_content", features(with_tags=False)) is None  # genres are content enough


def test_dnn_content_scales_tag_features_on_train_movies_only(split) -> None:
    feats = features()
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


def test_ease_runs_on_a_catalogue_bigger_than_its_max_movies() -> None:
    feats = features()
    feats.movie_ids = np.arange(registry.hyper_parameters("ease")["max_movies"] + 1)
    assert registry.skip_reason("ease", feats) is None  # it learns over the most-rated max_movies


def test_biased_mf_tables_are_dense_for_a_small_catalogue_and_sparse_above_the_row_threshold(
    monkeypatch, split
) -> None:
    from pipeline.training import loop

    def tables_sparse() -> list[bool]:
        model = registry.Recommender("biased_mf", registry.hyper_parameters("biased_mf", FAST), features(), CPU)
        model.fit(_part(split, TRAIN), None, epochs=1)
        return [m.sparse for m in model.module.modules() if isinstance(m, torch.nn.Embedding)]

    assert registry.hyper_parameters("biased_mf")["sparse_embeddings"] == "auto"
    assert not any(tables_sparse())  # dense: weight decay reaches every row
    monkeypatch.setattr(loop, "SPARSE_ABOVE_ROWS", 10)  # the planted catalogue is above it
    assert all(tables_sparse())


def test_a_sparse_embeddings_setting_other_than_true_false_or_auto_is_refused() -> None:
    from pipeline.training import loop

    assert loop.sparse_tables(True, 1) and not loop.sparse_tables(False, 10**9)
    with pytest.raises(ValueError, match=r"sparse_embeddings.*'yes'"):
        loop.sparse_tables("yes", 1)
