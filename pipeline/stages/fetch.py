"""Find the raw files (downloading ml-latest-small when no folder is given) and record them."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.core import alerts, warehouse
from pipeline.core.config import RunConfig, var_dir
from pipeline.core.run_folder import RunFolder
from pipeline.core.timings import timed
from pipeline.ingest.download import DownloadError, fetch_ml_latest_small, sha256_of
from pipeline.ingest.layouts import LayoutError
from pipeline.ingest.spec import resolve_dataset

log = logging.getLogger(__name__)


@timed()
def fetch(run_dir: str) -> str:
    """The dataset's folder, layout and files (size and SHA-256 each) into the run's manifest; an
    input that cannot be read stops the run here with a critical alert naming the file and rule."""
    folder_ = RunFolder(run_dir)
    cfg = folder_.load_config()
    try:
        source = Path(cfg.dataset) if cfg.dataset else fetch_ml_latest_small(var_dir() / "data")
        folder, layout = resolve_dataset(source)
        files = {
            f.name: {"kind": f.kind, "bytes": (folder / f.name).stat().st_size, "sha256": sha256_of(folder / f.name)}
            for f in layout.files
            if (folder / f.name).is_file()
        }
    except (LayoutError, DownloadError, OSError) as exc:
        _record_stop(cfg, exc)
        raise
    folder_.write(folder_.manifest, {"folder": str(folder), "layout": layout.to_dict(), "files": files})
    log.info(
        "dataset %s: layout %s%s, files %s",
        folder,
        layout.name,
        f" ({layout.label})" * bool(layout.label),
        ", ".join(files),
    )
    return run_dir


def _record_stop(cfg: RunConfig, exc: Exception) -> None:
    """The dq_alerts row and the notification for an input problem that stops the run at fetch:
    the error names its rule (LayoutError, SpecError, DownloadError); an OSError is an unreadable file."""
    from pipeline.ingest import dq_tables  # only when a run stops here: it reads validation's tables

    file = getattr(exc, "path", None) or getattr(exc, "filename", None) or cfg.dataset or "ml-latest-small download"
    rule = getattr(exc, "rule", "file_is_readable")
    alert = dq_tables.fetch_alert(cfg.run_id, str(file), rule, str(exc))
    try:
        with warehouse.connect(cfg.warehouse) as con:
            dq_tables.record_fetch_alert(con, alert, str(file), rule)
    except Exception as db_exc:  # the input problem is the news; a warehouse that cannot take it is logged
        log.error("could not record the input problem in dq_alerts: %s", db_exc)
    alerts.notify(alert)
