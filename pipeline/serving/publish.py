"""Publish a run's recommendations: all rows, gates, switch, in one transaction.

`current_recommendations` is a view on the newest published run (sql/views.sql),
so it changes only when the transaction that inserted every row of the new
run commits. If anything fails first, the transaction rolls back and the
previous run stays current, untouched. The same transaction replaces an
earlier run of the same logical date (a re-run is idempotent) and drops the
rows of runs beyond the newest `keep_runs`. Consumers in other processes read
the serving file that pipeline/serving.py writes after the commit.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline.core import crashpoints
from pipeline.core.sqlfiles import sql
from pipeline.core.warehouse import transaction

log = logging.getLogger(__name__)


class PublishGateError(RuntimeError):
    """The run's rows broke a publishing rule; nothing was published."""


def publish(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    recs_path: Path | str,
    model: str,
    dataset: str,
    top_n: int,
    *,
    logical_date: datetime | None = None,
    keep_runs: int = 7,
    rating_model: str | None = None,
) -> int:
    """Insert the run's rows (a Parquet file or glob of shards), check them, and make them
    current; return rows published. `model` ranked the lists, `rating_model` predicted their ratings."""
    if keep_runs < 1:
        raise ValueError(f"keep_runs must be at least 1 (the current run), got {keep_runs}")
    now = datetime.now(UTC).replace(tzinfo=None)
    with transaction(con):
        replaced = [
            r
            for (r,) in con.execute(
                "SELECT run_id FROM published_runs WHERE run_id = ? OR (dataset = ? AND logical_date = ?)",
                [run_id, dataset, logical_date],
            ).fetchall()
        ]
        for old in replaced:
            con.execute("DELETE FROM recommendations WHERE run_id = ?", [old])
            con.execute("DELETE FROM published_runs WHERE run_id = ?", [old])
        if any(r != run_id for r in replaced):
            log.info("run %s replaces %s, published earlier for the same logical date", run_id, replaced)
        crashpoints.reached("publish.deleted")
        con.execute(
            sql("publish/insert_recommendations"),
            {"run_id": run_id, "model": model, "generated_at": now, "path": str(recs_path)},
        )
        crashpoints.reached("publish.inserted")
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
            "INSERT INTO published_runs (run_id, published_at, dataset, model, n_users, n_rows, logical_date, "
            "rating_model) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, now, dataset, model, n_users, n_rows, logical_date, rating_model],
        )
        pruned = [r for (r,) in con.execute(sql("publish/runs_beyond_kept"), {"keep_runs": keep_runs}).fetchall()]
        for old in pruned:
            con.execute("DELETE FROM recommendations WHERE run_id = ?", [old])
            con.execute("UPDATE published_runs SET pruned_at = ? WHERE run_id = ?", [now, old])
        if pruned:
            log.info("dropped the rows of %d run(s) beyond the newest %d: %s", len(pruned), keep_runs, pruned)
        crashpoints.reached("publish.recorded")  # every write done, COMMIT next
    log.info("published run %s: %d rows for %d users", run_id, n_rows, n_users)
    return int(n_rows)
