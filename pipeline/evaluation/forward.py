"""Forward evaluation: how the lists already published did against what users rated next.

Offline protocols judge a model on held-out history; this judges the product.
A run for logical date D takes the newest earlier published run (logical date
D' < D) and scores its lists against the ratings made in [D', D), which the
warehouse has just loaded (EVALUATION.md, section C). One row per run goes to
`forward_metrics`; a backfill therefore leaves one row per replayed interval.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import duckdb

from pipeline.core import crashpoints
from pipeline.core.sqlfiles import sql
from pipeline.core.warehouse import transaction

log = logging.getLogger(__name__)

COLUMNS = (
    "active_users",
    "users_with_list",
    "hit_rate",
    "recall",
    "ndcg",
    "liked_users",
    "liked_hit_rate",
    "liked_recall",
    "liked_ndcg",
)


def evaluate_previous(con: duckdb.DuckDBPyConnection, run_id: str, end: datetime, like: float) -> dict[str, Any] | None:
    """Judge the newest run published before this run's logical date `end` (naive UTC, as
    published_runs stores it); record and return its metrics, or None when there is no earlier run."""
    earlier = con.execute(
        "SELECT run_id, logical_date, model FROM kept_runs WHERE logical_date < ? AND run_id <> ? ORDER BY age LIMIT 1",
        [end, run_id],
    ).fetchall()
    if not earlier:
        log.info("forward evaluation: no run published before %s to judge", end)
        return None
    evaluated, start, model = earlier[0]
    top_n = con.execute("SELECT max(rank) FROM recommendations WHERE run_id = ?", [evaluated]).fetchall()[0][0]
    row = {"run_id": run_id, "evaluated_run_id": evaluated, "model": model, "window_start": start}
    row |= {"window_end": end, "top_n": top_n} | window_metrics(con, evaluated, start, end, top_n, like)
    row["computed_at"] = datetime.now(UTC).replace(tzinfo=None)
    with transaction(con):
        con.execute("DELETE FROM forward_metrics WHERE run_id = ?", [run_id])  # a re-run replaces its row
        names = ", ".join(row)
        con.execute(f"INSERT INTO forward_metrics ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        crashpoints.reached("forward.recorded")
    log.info(
        "forward evaluation of %s (%s, lists of %d) over [%s, %s): %d active users, hit rate %s, recall@%d %s, "
        "ndcg@%d %s",
        evaluated,
        model,
        top_n,
        start,
        end,
        row["active_users"],
        _fmt(row["hit_rate"]),
        top_n,
        _fmt(row["recall"]),
        top_n,
        _fmt(row["ndcg"]),
    )
    return row


def window_metrics(
    con: duckdb.DuckDBPyConnection, run_id: str, start: datetime, end: datetime, top_n: int, like: float
) -> dict[str, Any]:
    """`run_id`'s lists in `recommendations` judged on the `ratings` made in [start, end) (COLUMNS)."""
    values = con.execute(
        sql("forward/metrics"),
        {"evaluated_run_id": run_id, "window_start": start, "window_end": end, "top_n": top_n, "like": like},
    ).fetchall()[0]
    return dict(zip(COLUMNS, values, strict=True))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
