"""Make this run's recommendations current (all or nothing), then replace the serving file."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.core import crashpoints, warehouse
from pipeline.core.config import EVALUATION, RunConfig
from pipeline.core.run_folder import RunFolder
from pipeline.core.timings import timed
from pipeline.serving import serving_file
from pipeline.serving.publish import publish as publish_rows
from pipeline.stages.score_shard import score_shards

log = logging.getLogger(__name__)


@timed()
def publish(run_dir: str) -> str:
    """Every shard of the run, or nothing: a missing or unexpected shard file refuses the run."""
    folder = RunFolder(run_dir)
    cfg = folder.load_config()
    if cfg.job == EVALUATION:
        raise RuntimeError(f"run {cfg.run_id} is an evaluation run: it publishes nothing")
    expected = {folder.shard(s).name for s in score_shards(run_dir)}
    present = {p.name for p in folder.scores.glob(folder.shard_glob.name)}
    if expected != present:
        raise RuntimeError(
            f"run {cfg.run_id} not published: scoring shards missing {sorted(expected - present)}, "
            f"unexpected {sorted(present - expected)} in {folder.scores}"
        )
    log.info(
        "publishing run %s: %d shard file(s) into %s, then the serving file", cfg.run_id, len(present), cfg.warehouse
    )
    verdict = folder.read(folder.champion)
    with warehouse.connect(cfg.warehouse) as con:
        publish_rows(
            con,
            cfg.run_id,
            folder.shard_glob,
            verdict["model"],
            folder.read(folder.manifest)["folder"],
            cfg.top_n,
            logical_date=cfg.logical_date_utc(),
            keep_runs=cfg.keep_runs,
            rating_model=(verdict.get("rater") or {}).get("model"),
        )
        crashpoints.reached("publish.committed")
        serving_file.export(con, serving_target(cfg))
    return run_dir


def serving_target(cfg: RunConfig) -> Path:
    """The file consumers read: the run's `serving`, else beside the warehouse."""
    return Path(cfg.serving) if cfg.serving else serving_file.serving_path(cfg.warehouse)
