"""Replace the warehouse's data tables with this run's validated files, as of the logical date."""

from __future__ import annotations

from datetime import datetime

from pipeline.core import warehouse
from pipeline.core.run_folder import RunFolder
from pipeline.core.timings import timed
from pipeline.ingest.load import load_staged


@timed()
def load(run_dir: str) -> str:
    """The staged rows into ratings, movies, users, tags and links, all or nothing."""
    folder = RunFolder(run_dir)
    cfg = folder.load_config()
    with warehouse.connect(cfg.warehouse) as con:
        counts = load_staged(con, folder.staged, datetime.fromisoformat(cfg.logical_date))
    if not counts.get("ratings"):
        raise RuntimeError(f"no ratings before {cfg.logical_date}: nothing to train on")
    return run_dir
