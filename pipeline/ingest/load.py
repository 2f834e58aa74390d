"""Load validated, typed files into the warehouse, all tables in one transaction."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import duckdb

from pipeline.core import crashpoints
from pipeline.core.sqlfiles import sql
from pipeline.core.warehouse import transaction

log = logging.getLogger(__name__)

KINDS = ("movies", "users", "tags", "links", "ratings")
AS_OF_KINDS = ("ratings", "tags")


def load_staged(con: duckdb.DuckDBPyConnection, staged_dir: Path, as_of: datetime) -> dict[str, int]:
    """Replace the data tables from staged/<kind>/*.parquet; return row counts per table."""
    counts: dict[str, int] = {}
    with transaction(con):
        for kind in KINDS:
            parts = Path(staged_dir) / kind
            if not any(parts.glob("*.parquet")):
                con.execute(f"DROP TABLE IF EXISTS {kind}")
                continue
            params = {"path": str(parts / "*.parquet")}
            if kind in AS_OF_KINDS:
                params["as_of"] = int(as_of.timestamp())
            con.execute(sql(f"load/{kind}"), params)
            counts[kind] = con.execute(f"SELECT count(*) FROM {kind}").fetchall()[0][0]
            crashpoints.reached("load.replaced")  # after each table: some replaced, the rest not yet
    log.info("loaded %s", ", ".join(f"{k}: {v:,} rows" for k, v in counts.items()))
    return counts
