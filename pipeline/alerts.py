"""Data-quality alerts: rows in dq_results / dq_alerts, and a notification.

The notifier here is the log (the default channel). Email and webhook
channels plug in behind `notify`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from pipeline.validate import CheckResult

log = logging.getLogger("pipeline.alerts")


def record_checks(con: duckdb.DuckDBPyConnection, run_id: str, results: Sequence[CheckResult]) -> int:
    """Write every check to dq_results and every failure to dq_alerts; return the alert count."""
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute("BEGIN")
    con.execute("DELETE FROM dq_results WHERE run_id = ?", [run_id])
    con.execute("DELETE FROM dq_alerts WHERE run_id = ?", [run_id])
    if results:
        con.executemany(
            "INSERT INTO dq_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    run_id,
                    now,
                    r.file,
                    r.suite,
                    r.expectation,
                    r.column,
                    r.rule,
                    r.severity,
                    r.success,
                    r.element_count,
                    r.unexpected_count,
                ]
                for r in results
            ],
        )
    failures = [r for r in results if not r.success]
    if failures:
        con.executemany(
            "INSERT INTO dq_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    run_id,
                    now,
                    r.file,
                    r.suite,
                    r.expectation,
                    r.column,
                    r.severity,
                    r.unexpected_count,
                    r.samples,
                    r.lines,
                    r.message(),
                ]
                for r in failures
            ],
        )
    con.execute("COMMIT")
    notify(run_id, failures)
    return len(failures)


def notify(run_id: str, failures: Sequence[CheckResult]) -> None:
    """Send each failure through the configured channel (the log)."""
    for f in failures:
        level = logging.ERROR if f.severity == "critical" else logging.WARNING
        log.log(level, "DATA-QUALITY ALERT [%s] run %s: %s", f.severity, run_id, f.message())
