"""Each job's stages in order, in one process: the CLI's path (Airflow runs each as a task,
wired in dags/movielens_nightly.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pipeline.core.config import EVALUATION
from pipeline.core.run_folder import RunFolder
from pipeline.stages.evaluate import evaluate
from pipeline.stages.features import features
from pipeline.stages.fetch import fetch
from pipeline.stages.forward_evaluate import forward_evaluate
from pipeline.stages.load import load
from pipeline.stages.publish import publish
from pipeline.stages.report import report
from pipeline.stages.score_shard import score
from pipeline.stages.split import split
from pipeline.stages.train_model import train
from pipeline.stages.validate import validate

log = logging.getLogger(__name__)

Stage = Callable[[str], str]
# the nightly job: decide on validation, publish
NIGHTLY_STAGES: tuple[Stage, ...] = (
    fetch,
    validate,
    load,
    forward_evaluate,
    features,
    split,
    train,
    evaluate,
    score,
    publish,
    report,
)
# the weekly evaluation job: nothing published, no forward evaluation of published lists
EVALUATION_STAGES: tuple[Stage, ...] = (fetch, validate, load, features, split, train, evaluate, report)
BY_NAME = {stage.__name__: stage for stage in NIGHTLY_STAGES}


def run_all(run_dir: str, until: str | None = None) -> str:
    """Every stage of the run's job in order (up to `until`), in this process."""
    stages = EVALUATION_STAGES if RunFolder(run_dir).load_config().job == EVALUATION else NIGHTLY_STAGES
    for stage in stages:
        started = time.perf_counter()
        log.info("== %s", stage.__name__)
        stage(run_dir)
        log.info("== %s done in %.1fs", stage.__name__, time.perf_counter() - started)
        if stage.__name__ == until:
            break
    return run_dir
