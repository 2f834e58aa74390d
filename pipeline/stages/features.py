"""Dense ids, genre multi-hot and user features, saved beside the indexed ratings."""

from __future__ import annotations

import logging

from pipeline.core import warehouse
from pipeline.core.run_folder import RunFolder
from pipeline.core.timings import timed
from pipeline.ingest.features import build_features

log = logging.getLogger(__name__)


@timed()
def features(run_dir: str) -> str:
    """The model inputs from the warehouse's tables, into the run folder."""
    folder = RunFolder(run_dir)
    with warehouse.connect(folder.load_config().warehouse) as con:
        feats, ratings = build_features(con)
    feats.save(folder.features)
    ratings.write_parquet(folder.ratings)
    log.info(
        "features: %d users x %d user features, %d movies x %d genres",
        *feats.user_features.shape,
        *feats.movie_features.shape,
    )
    return run_dir
