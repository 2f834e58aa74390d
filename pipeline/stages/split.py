"""Protocol B's per-user temporal split; protocol A's random 70/15/15 too in an evaluation run."""

from __future__ import annotations

import polars as pl

from pipeline.core.run_folder import RunFolder
from pipeline.core.timings import timed
from pipeline.evaluation.split import notebook_split, temporal_split


@timed()
def split(run_dir: str) -> str:
    """The run's ratings, labelled train / val / test, into the run folder."""
    folder = RunFolder(run_dir)
    ratings = pl.read_parquet(folder.ratings)
    if folder.load_config().notebook_protocol:
        notebook_split(ratings).write_parquet(folder.notebook_split)
    temporal_split(ratings).write_parquet(folder.temporal_split)
    return run_dir
