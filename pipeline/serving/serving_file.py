"""The serving file: what consumers in other processes read, replaced atomically.

DuckDB lets one process write a file and shuts every other process out while
it does, so consumers cannot read the warehouse the job writes all night.
After each publish, the job copies what consumers need (the kept runs'
recommendations, published_runs, movies, users and the views of
sql/views.sql) into a new file beside the target and renames it over the
target. A rename is atomic on one file system: a reader that opens the path
gets the old file or the new one, whole, and a reader that has the old file
open keeps reading it until it reconnects. Nothing ever writes the served
file in place, so a read-only connection never meets a lock.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import duckdb

from pipeline.core import crashpoints
from pipeline.core.sqlfiles import sql

log = logging.getLogger(__name__)

# Tables copied into the serving file when the warehouse has them; recommendations
# sorted by (run_id, user_id, rank) so zone maps prune a one-user lookup to one row group.
TABLES = {
    "recommendations": "ORDER BY run_id, user_id, rank",
    "published_runs": "",
    "movies": "ORDER BY movie_id",
    "users": "ORDER BY user_id",
}


def serving_path(warehouse: str | Path) -> Path:
    """The default serving file beside a warehouse: movielens.duckdb -> movielens.serving.duckdb."""
    warehouse = Path(warehouse)
    return warehouse.with_name(f"{warehouse.stem}.serving{warehouse.suffix or '.duckdb'}")


def export(con: duckdb.DuckDBPyConnection, target: str | Path) -> Path:
    """Write a fresh serving file from the warehouse open on `con` and rename it over `target`."""
    started = time.perf_counter()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    present = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
    }
    try:
        con.execute(f"ATTACH '{tmp}' AS serving_export")
        try:
            for table, order in TABLES.items():
                if table in present:
                    con.execute(f"CREATE TABLE serving_export.{table} AS SELECT * FROM main.{table} {order}")
                    crashpoints.reached("serving.copying")
        finally:
            con.execute("DETACH serving_export")
        with duckdb.connect(str(tmp)) as out:
            out.execute(sql("views"))
            out.execute("CHECKPOINT")
        crashpoints.reached("serving.written")
        os.replace(tmp, target)
        crashpoints.reached("serving.renamed")
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    log.info("serving file %s replaced in %.1fs", target, time.perf_counter() - started)
    return target


def _remove_leftovers(target: Path) -> None:
    """Delete the temporary files of an export that was killed (SIGKILL runs no `finally`).

    Only the process holding the warehouse writes its serving file, and it
    holds it now, so no other export's file can be among them.
    """
    for stale in target.parent.glob(f".{target.name}.*.tmp*"):
        log.warning("removing %s, left by an export that was killed before it finished", stale)
        stale.unlink(missing_ok=True)


class Reader:
    """A consumer's long-lived read-only connection that follows the serving file.

    Opening a DuckDB file costs tens of milliseconds, a one-user lookup a few,
    so a service keeps its connection; this reopens it when the job has
    renamed a new file over the path (a changed inode), checked before each
    query with one stat call. Each query therefore sees one whole run.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._inode: int | None = None

    def connection(self) -> duckdb.DuckDBPyConnection:
        inode = os.stat(self.path).st_ino
        if self._con is None or inode != self._inode:
            self.close()
            self._con, self._inode = duckdb.connect(str(self.path), read_only=True), inode
        return self._con

    def query(self, text: str, parameters: dict | list | None = None) -> list[tuple]:
        return self.connection().execute(text, parameters).fetchall()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
