"""The DuckDB warehouse file: opening it with the schema in place."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.sqlfiles import sql


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, creating it and its lasting tables on first use."""
    path = Path(path)
    if read_only:
        return duckdb.connect(str(path), read_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(sql("schema"))
    con.execute(sql("views"))
    return con
