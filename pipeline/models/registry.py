"""Every model by name: the one table of them, cheapest first.

Importing this module imports no model (the DAG file reads the names at
parse time, and the first task of a run checks them): a class is imported
when it is asked for. Adding a model means writing its module (a
`pipeline.models.base.Recommender` with its spec) and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from pipeline.ingest.features import Features
    from pipeline.models.base import Recommender

MODELS = {
    "most_popular": "pipeline.models.popularity:MostPopularModel",
    "ease": "pipeline.models.closed_form:EaseModel",
    "svd": "pipeline.models.factors:SVDModel",
    "biased_mf": "pipeline.models.factors:BiasedMFModel",
    "mlp": "pipeline.models.networks:PlainMLP",
    "dnn_content": "pipeline.models.networks:DNNContent",
    "neumf_features": "pipeline.models.networks:NeuMFFeatures",
    "ncf_tags": "pipeline.models.networks:NCFTags",
    "sasrec": "pipeline.models.sequence:SASRecModel",
}
NAMES = tuple(MODELS)


class UnknownModelError(ValueError):
    """A model name in the config that the registry does not know."""


def check_names(names: Iterable[str] | None) -> None:
    """Fail on a name no model has, naming the known ones."""
    for name in names or ():
        if name not in MODELS:
            raise UnknownModelError(f"unknown model {name!r}; available: {', '.join(NAMES)}")


def model_class(name: str) -> type[Recommender]:
    check_names([name])
    module, _, cls = MODELS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def create(name: str, params: dict, feats: Features, device: torch.device) -> Recommender:
    """An unfitted model of that name."""
    return model_class(name)(params, feats, device)


def load(name: str, path: Path, feats: Features, device: torch.device) -> Recommender:
    """A fitted model of that name, saved by Recommender.save."""
    return model_class(name).load(path, feats, device)
