"""Run the Great Expectations suites; record results, alerts and quarantined rows; stop on
critical failures, before anything of the run reaches the warehouse's data tables."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.core import alerts, warehouse
from pipeline.core.config import safe_name, var_dir
from pipeline.core.run_folder import RunFolder
from pipeline.core.sqlfiles import sql
from pipeline.core.timings import timed
from pipeline.ingest import dq_tables
from pipeline.ingest.layouts import Layout
from pipeline.ingest.validate import DataQualityError, validate_folder

log = logging.getLogger(__name__)


@timed()
def validate(run_dir: str) -> str:
    """The raw files against the suites; typed rows that pass are staged in the run folder."""
    folder = RunFolder(run_dir)
    cfg, manifest = folder.load_config(), folder.read(folder.manifest)
    dataset = manifest["folder"]
    with warehouse.connect(cfg.warehouse) as con:
        previous = _previous_counts(con, dataset, cfg.run_id)
    docs_dir = var_dir() / "data_docs" / safe_name(cfg.run_id)
    report = validate_folder(
        Path(dataset),
        Layout.from_dict(manifest["layout"]),
        datetime.fromisoformat(cfg.logical_date),
        previous,
        docs_dir,
        staged_dir=folder.staged,
    )
    with warehouse.connect(cfg.warehouse) as con:
        n_alerts = dq_tables.record_checks(con, cfg.run_id, report.results, report.quarantine, report.nulled)
        now = datetime.now(UTC).replace(tzinfo=None)
        con.execute("DELETE FROM dq_row_counts WHERE run_id = ?", [cfg.run_id])
        for kind, n in report.row_counts.items():
            con.execute(
                "INSERT INTO dq_row_counts VALUES (?, ?, ?, ?, ?, ?)",
                [cfg.run_id, dataset, kind, n, report.passed, now],
            )
    alert = dq_tables.validation_alert(cfg.run_id, report.results, report.docs_index)
    if alert is not None:
        alerts.notify(alert)
    summary = {
        "passed": report.passed,
        "checks": len(report.results),
        "alerts": {s: sum(1 for f in report.failures if f.severity == s) for s in ("critical", "warning")},
        "rows": report.row_counts,
        "quarantined": _per_kind(report.quarantine),
        "nulled": _per_kind(report.nulled),
        "data_docs": report.docs_index,
    }
    folder.write(folder.validation, summary)
    log.info(
        "validation: %d checks, %d alerts (%d critical), quarantined %s, nulled and flagged %s; Data Docs: %s",
        len(report.results),
        n_alerts,
        summary["alerts"]["critical"],
        summary["quarantined"] or "nothing",
        summary["nulled"] or "nothing",
        report.docs_index,
    )
    if not report.passed:
        from pipeline.stages.report import page_before_failing  # only on the way out: it draws plots

        page_before_failing(run_dir)  # whoever is paged sees the failed checks on the run's page too
        raise DataQualityError([r for r in report.results if r.blocking])
    return run_dir


def _per_kind(rows: pd.DataFrame) -> dict[str, int]:
    """Rows of a quarantine or nulled-values frame per file kind."""
    return {str(k): int(v) for k, v in rows["kind"].value_counts().items()}


def _previous_counts(con: duckdb.DuckDBPyConnection, dataset: str, run_id: str) -> dict[str, int]:
    """Row counts of the latest earlier run of this dataset that passed validation."""
    rows = con.execute(sql("queries/previous_row_counts"), {"dataset": dataset, "run_id": run_id}).fetchall()
    return dict(rows)
