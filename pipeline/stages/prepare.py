"""The run folder and its config: what every later stage of the run reads."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from pipeline.core.config import EVALUATION, JOBS, NIGHTLY, NIGHTLY_MODELS, RunConfig, default_warehouse
from pipeline.core.run_folder import RunFolder
from pipeline.models import registry

log = logging.getLogger(__name__)


def prepare(
    run_id: str,
    logical_date: datetime,
    dataset: str | None = None,
    warehouse_path: str | Path | None = None,
    top_n_items: int = 100,
    max_epochs: int | None = None,
    device: str = "auto",
    models: list[str] | None = None,
    serving: str | Path | None = None,
    keep_runs: int = 7,
    users_per_shard: int = 50_000,
    job: str = NIGHTLY,
) -> str:
    """Create the run folder with its config; return its path. `job`: "nightly" (decide on
    validation, publish) or "evaluation" (every model under both protocols, publish nothing)."""
    if job not in JOBS:
        raise ValueError(f"job must be one of {', '.join(JOBS)}, not {job!r}")
    registry.check_names(models)  # an unknown name fails here, naming the known ones
    cfg = RunConfig(
        run_id=run_id,
        dataset=str(Path(dataset).resolve()) if dataset else "",
        warehouse=str(Path(warehouse_path or default_warehouse()).resolve()),
        serving=str(Path(serving).resolve()) if serving else "",
        keep_runs=int(keep_runs),
        users_per_shard=int(users_per_shard),
        logical_date=logical_date.astimezone(UTC).isoformat(),
        top_n=int(top_n_items),
        models=list(models or (registry.NAMES if job == EVALUATION else NIGHTLY_MODELS)),
        device=device,
        train_overrides={} if max_epochs is None else {"max_epochs": int(max_epochs)},
        job=job,
        notebook_protocol=job == EVALUATION,
    )
    folder = RunFolder.of_run(run_id)
    folder.save_config(cfg)
    log.info("%s run %s: folder %s, warehouse %s", job, run_id, folder, cfg.warehouse)
    return str(folder)
