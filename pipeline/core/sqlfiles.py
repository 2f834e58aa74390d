"""SQL lives in sql/ as files; this reads them by name."""

from __future__ import annotations

from functools import cache

from pipeline.core.config import SQL_DIR


@cache
def sql(name: str) -> str:
    """Text of sql/<name>.sql."""
    return (SQL_DIR / f"{name}.sql").read_text()
