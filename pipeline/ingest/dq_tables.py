"""What data-quality checks leave behind: rows in dq_results, dq_alerts, dq_quarantine and
dq_nulled, and the run's one notification (pipeline.core.alerts sends it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb
import pandas as pd

from pipeline.core.alerts import INSERT_ALERT, Alert
from pipeline.core.warehouse import transaction
from pipeline.ingest.validate import CheckResult

FETCH_SUITE = "fetch"  # the dq_alerts suite of problems that stop a run before validation


def fetch_alert(run_id: str, file: str, rule: str, message: str) -> Alert:
    """The Alert for an input problem found before validation could start (a missing file, an
    unrecognised layout, a malformed spec, an unreadable file, a failed download)."""
    return Alert(run_id, "critical", f"input problem in {file} ({rule}): run stopped, nothing published", [message])


def record_fetch_alert(con: duckdb.DuckDBPyConnection, alert: Alert, file: str, rule: str) -> None:
    """Its critical dq_alerts row: the alert table records every input problem that stopped a run,
    not only the ones Great Expectations found."""
    now = datetime.now(UTC).replace(tzinfo=None)
    with transaction(con):
        con.execute("DELETE FROM dq_alerts WHERE run_id = ? AND suite = ?", [alert.run_id, FETCH_SUITE])
        row = [alert.run_id, now, file, FETCH_SUITE, rule, None, "critical", None, None, None, alert.details[0], None]
        con.execute(INSERT_ALERT, row)


def record_checks(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    results: Sequence[CheckResult],
    quarantine: pd.DataFrame | None = None,
    nulled: pd.DataFrame | None = None,
) -> int:
    """Write checks, alerts, quarantined rows and nulled values for `run_id` in one transaction;
    return the alert count."""
    now = datetime.now(UTC).replace(tzinfo=None)
    failures = [r for r in results if not r.success]
    with transaction(con):
        for table in ("dq_results", "dq_quarantine", "dq_nulled"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        # a retried run's earlier stop at fetch stays on record: it happened, and was fixed
        con.execute("DELETE FROM dq_alerts WHERE run_id = ? AND suite <> ?", [run_id, FETCH_SUITE])
        if results:
            con.executemany(
                "INSERT INTO dq_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
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
                    )
                    for r in results
                ],
            )
        if failures:
            con.executemany(
                INSERT_ALERT,
                [
                    (
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
                        r.docs_url,
                    )
                    for r in failures
                ],
            )
        for table, frame, columns in (
            ("dq_quarantine", quarantine, "file, kind, line, rule, record"),
            ("dq_nulled", nulled, 'file, kind, line, "column", rule, value'),
        ):
            if frame is not None and len(frame):
                con.register("rows_frame", frame)
                con.execute(f"INSERT INTO {table} SELECT ?, ?, {columns} FROM rows_frame", [run_id, now])
                con.unregister("rows_frame")
    return len(failures)


def validation_alert(run_id: str, results: Sequence[CheckResult], docs_index: str | None = None) -> Alert | None:
    """The run's one notification for its failed checks (None when every check passed)."""
    failures = [r for r in results if not r.success]
    if not failures:
        return None
    critical = [f for f in failures if f.severity == "critical"]
    severity = "critical" if critical else "warning"
    files = sorted({f.file.rsplit("/", 1)[-1] for f in failures})
    outcome = "run stopped, nothing published" if critical else "run continues"
    headline = f"{len(failures)} data-quality rule(s) failed in {', '.join(files)} ({outcome})"
    details = [f"[{f.severity}] {f.message()}" for f in sorted(failures, key=lambda f: f.severity != "critical")]
    return Alert(run_id, severity, headline, details, docs_index)
