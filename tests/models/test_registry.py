"""The registry: one table of every model by name, importing none of them; an unknown name is
refused; rating models learn planted structure, and each model says when it cannot run.

What every model must do whatever its family (shapes, no seen movie, save/load, seeds) is the
shared contract in tests/models/test_contract.py."""

import ast
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from pipeline.core.config import NIGHTLY_MODELS
from pipeline.evaluation.split import TRAIN, VAL
from pipeline.ingest.layouts import WHOLE_STARS
from pipeline.models import registry
from pipeline.training.recipe import ratings
from tests.conftest import REPO
from tests.support.model_data import FAST, features, fitted, planted_split


@pytest.fixture(scope="module")
def split() -> pl.DataFrame:
    return planted_split()


def _part(split: pl.DataFrame, part: int):
    return ratings(split.filter(pl.col("split") == part), WHOLE_STARS)


def test_the_nightly_default_set_names_registered_models() -> None:
    assert set(NIGHTLY_MODELS) <= set(registry.NAMES)


def test_importing_the_registry_imports_no_model_and_no_torch() -> None:
    tree = ast.parse((REPO / "pipeline" / "models" / "registry.py").read_text())
    runtime = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert {(n.module if isinstance(n, ast.ImportFrom) else n.names[0].name) for n in runtime} <= {
        "__future__",
        "importlib",
        "collections.abc",
        "typing",
    }
    code = "import sys, pipeline.models.registry; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO).stdout == "False\n"


def test_an_unknown_model_name_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(registry.UnknownModelError, match=r"unknown model 'neumf'.*neumf_features"):
        registry.model_class("neumf")


@pytest.mark.parametrize("name", [n for n in registry.NAMES if registry.model_class(n).spec.rates])
def test_rating_model_learns_planted_structure_better_than_the_global_mean(name: str, split) -> None:
    train, val = _part(split, TRAIN), _part(split, VAL)
    model = fitted(name, train, val, FAST)
    mse = float(np.mean((model.predict(val.users, val.movies) - val.values) ** 2))
    baseline = float(np.mean((train.values.mean() - val.values) ** 2))
    assert mse < 0.85 * baseline, f"{name}: val MSE {mse:.4f} vs global mean {baseline:.4f}"


def test_ncf_tags_is_skipped_with_a_reason_when_the_dataset_has_no_tags() -> None:
    assert "no tags" in registry.model_class("ncf_tags").skip_reason(features(with_tags=False))
    assert registry.model_class("ncf_tags").skip_reason(features(with_tags=True)) is None
    assert registry.model_class("dnn_content").skip_reason(features(with_tags=False)) is None  # genres suffice


def test_ease_runs_on_a_catalogue_bigger_than_its_max_movies() -> None:
    feats = features()
    ease = registry.model_class("ease")
    feats.movie_ids = np.arange(ease.hyper_parameters()["max_movies"] + 1)
    assert ease.skip_reason(feats) is None  # it learns over the most-rated max_movies
