"""Publish a run's recommendations: all rows, gates, switch, in one transaction.

`current_recommendations` is a view on the newest row of `published_runs`,
so it changes only when the transaction that inserted every row of the new
run commits. If anything fails first, the transaction rolls back and the
previous run stays current, untouched.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline.sqlfiles import sql

log = logging.getLogger(__name__)


class PublishGateError(RuntimeError):
    """The run's rows broke a publishing rule; nothing was published."""


def publish(con: duckdb.DuckDBPyConnection, run_id: str, recs_path: Path, model: str, dataset: str, top_n: int) -> int:
    """Insert the run's rows, check them, and make them current; return rows published."""
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM recommendations WHERE run_id = ?", [run_id])
        con.execute("DELETE FROM published_runs WHERE run_id = ?", [run_id])
        con.execute(
            sql("publish/insert_recommendations"),
            {"run_id": run_id, "model": model, "generated_at": now, "path": str(recs_path)},
        )
        broken = [
            (rule, n)
            for rule, n in con.execute(sql("publish/gates"), {"run_id": run_id, "top_n": top_n}).fetchall()
            if n
        ]
        if broken:
            raise PublishGateError(
                f"run {run_id} not published; gates failed: " + "; ".join(f"{rule}: {n}" for rule, n in broken)
            )
        n_rows, n_users = con.execute(
            "SELECT count(*), count(DISTINCT user_id) FROM recommendations WHERE run_id = ?", [run_id]
        ).fetchall()[0]
        con.execute(
            "INSERT INTO published_runs VALUES (?, ?, ?, ?, ?, ?)", [run_id, now, dataset, model, n_users, n_rows]
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    log.info("published run %s: %d rows for %d users", run_id, n_rows, n_users)
    return int(n_rows)
