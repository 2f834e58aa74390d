"""Train and judge one model of the run: protocol B (tuned on train_inner, judged on validation;
test figures from the tuned model in a nightly run, from a refit on train in an evaluation run)
and, in an evaluation run, protocol A. Airflow maps this stage over the run's models."""

from __future__ import annotations

import logging
import time

import polars as pl

from pipeline.core.config import EVALUATION
from pipeline.core.run_folder import RunFolder
from pipeline.core.threads import use_task_threads
from pipeline.core.timings import timed
from pipeline.evaluation.protocols import FULL_RANKING, NOTEBOOK, full_ranking_protocol, notebook_protocol
from pipeline.ingest.features import Features
from pipeline.ingest.layouts import Layout
from pipeline.models import registry
from pipeline.serving import run_report
from pipeline.training.loop import select_device
from pipeline.training.recipe import read_for_models

log = logging.getLogger(__name__)


def model_names(run_dir: str) -> list[str]:
    """The run's models; Airflow maps train_model over them."""
    return list(RunFolder(run_dir).load_config().models)


def train(run_dir: str) -> str:
    """Every configured model in this process (the CLI's path; the champion's production fit is
    fit_champion's)."""
    for name in model_names(run_dir):
        train_model(run_dir, name)
    return run_dir


@timed(lambda run_dir, name: f"train_model[{name}]")
def train_model(run_dir: str, name: str) -> str:
    """One model's metrics, schedule and parameters into models/<name>/metrics.json (skipped
    with a reason when the dataset lacks what it needs)."""
    folder = RunFolder(run_dir)
    cfg = folder.load_config()
    layout = Layout.from_dict(folder.read(folder.manifest)["layout"])
    feats = Features.load(folder.features)
    folder.model_dir(name).mkdir(parents=True, exist_ok=True)
    for stale in (folder.production_model(name), folder.predictions(name)):  # an earlier training's: stale now
        stale.unlink(missing_ok=True)
    model_class = registry.model_class(name)
    params = model_class.hyper_parameters({**cfg.train_overrides, **cfg.model_params.get(name, {})})
    reason = model_class.skip_reason(feats)
    if reason:
        log.info("model %s skipped: %s", name, reason)
        folder.write(folder.metrics(name), {"model": name, "skipped": reason})
        return run_dir
    device = select_device(cfg.device)
    threads = use_task_threads()
    started = time.perf_counter()
    result: dict = {"model": name, "params": params, "device": str(device), "threads": threads}
    predictions, predictions_from = None, None
    if cfg.notebook_protocol:
        log.info("%s: protocol A (notebooks')", name)
        split_a = pl.read_parquet(folder.notebook_split)
        result[NOTEBOOK], predictions = notebook_protocol(name, params, feats, split_a, layout.scale, device)
        predictions_from = "protocol A test"
    refit = cfg.job == EVALUATION
    log.info("%s: protocol B (full ranking; test figures from the %s)", name, "refit" if refit else "tuned model")
    split_b = read_for_models(folder.temporal_split)
    result[FULL_RANKING], val_predictions = full_ranking_protocol(
        name,
        params,
        feats,
        split_b,
        layout.scale,
        device,
        checkpoint=folder.checkpoint(name),
        refit=refit,
        max_users=cfg.eval_max_users or None,
    )
    if predictions is None and val_predictions is not None:  # a nightly run's plots: B's validation ratings
        predictions, predictions_from = val_predictions, "protocol B validation"
    if predictions is not None:  # the report's rating plots, from a sample of the rows
        result["predictions"] = {"from": predictions_from, "rows": len(predictions)}
        run_report.sample_rows(predictions).write_parquet(folder.predictions(name))
    result["seconds"] = round(time.perf_counter() - started, 2)
    folder.write(folder.metrics(name), result)
    log.info("%s: trained and evaluated in %.1fs", name, result["seconds"])
    return run_dir
