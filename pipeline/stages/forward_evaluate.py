"""Score the lists published before this run against the ratings that arrived since (forward_metrics)."""

from __future__ import annotations

from pipeline.core import warehouse
from pipeline.core.run_folder import RunFolder
from pipeline.core.timings import timed
from pipeline.evaluation import forward
from pipeline.ingest.layouts import Layout


@timed()
def forward_evaluate(run_dir: str) -> str:
    """EVALUATION.md's protocol C for the previous published run, into forward_metrics."""
    folder = RunFolder(run_dir)
    cfg = folder.load_config()
    layout = Layout.from_dict(folder.read(folder.manifest)["layout"])
    with warehouse.connect(cfg.warehouse) as con:
        forward.evaluate_previous(con, cfg.run_id, cfg.logical_date_utc(), layout.scale.like_threshold)
    return run_dir
