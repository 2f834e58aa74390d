"""The run's report: the HTML page (recorded in model_runs), report.json, and the table of
every task's seconds last in the log."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import duckdb

from pipeline.core import timings, warehouse
from pipeline.core.run_folder import RunFolder
from pipeline.core.sqlfiles import sql
from pipeline.core.timings import timed
from pipeline.serving import run_report

log = logging.getLogger(__name__)


def page(run_dir: str, con: duckdb.DuckDBPyConnection) -> Path:
    """The run's HTML page, its path logged and recorded on the run's model_runs rows."""
    written = run_report.build(run_dir, con)
    con.execute(sql("report/record_path"), {"path": str(written), "run_id": RunFolder(run_dir).load_config().run_id})
    log.info("report: %s", written)
    return written


def page_before_failing(run_dir: str) -> None:
    """The page of a run about to fail (validation, the champion gate); a fault in it must not
    hide why the run failed."""
    try:
        with warehouse.connect(RunFolder(run_dir).load_config().warehouse) as con:
            page(run_dir, con)
    except Exception as exc:  # any fault: the run's own error follows and matters more
        log.warning("report not written: %s: %s", type(exc).__name__, exc)


@timed()
def report(run_dir: str) -> str:
    """A short run summary in the log and in report.json; the HTML page."""
    started = time.perf_counter()
    folder = RunFolder(run_dir)
    cfg = folder.load_config()
    with warehouse.connect(cfg.warehouse) as con:
        written = page(run_dir, con)
        counts = dict(con.execute(sql("report/counts")).fetchall())
    tasks = timings.collect(run_dir)
    tasks.append({"task": "report", "seconds": round(time.perf_counter() - started, 2), "startup_s": None})
    manifest = folder.read(folder.manifest)
    summary = {
        "run_id": cfg.run_id,
        "job": cfg.job,
        "dataset": manifest["folder"],
        "layout": manifest["layout"],
        "counts": counts,
        "champion": folder.read(folder.champion),
        "models": {n: folder.read(folder.metrics(n)) for n in cfg.models},
        "validation": folder.read(folder.validation),
        "timings": {"tasks": tasks, "wall_s": timings.wall_s(tasks)},
        "warehouse": cfg.warehouse,
        "html": str(written),
    }
    folder.write(folder.report_summary, summary)
    log.info("run %s done: %s; warehouse %s", cfg.run_id, counts, cfg.warehouse)
    log.info("seconds per task (start-up: process start to the stage, imports included)\n%s", timings.table(tasks))
    return run_dir
