"""Read raw MovieLens files with DuckDB: first as text (for validation), then typed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.datasets.layouts import Layout, RawFile
from pipeline.sqlfiles import sql

# A byte that never occurs in MovieLens text files, so read_lines gets whole lines.
_NO_DELIMITER = "\x1f"


class RawReadError(ValueError):
    """A raw file could not be read at all (missing, empty, unreadable)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class RawRead:
    """One raw file as text, in canonical column names, with what the parser rejected."""

    raw_file: RawFile
    path: Path
    frame: pd.DataFrame
    first_data_line: int  # file line number of frame row 0
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (line, type, message)

    def line_of(self, index: int) -> int:
        return self.first_data_line + int(index)


def read_raw(con: duckdb.DuckDBPyConnection, folder: Path, raw_file: RawFile) -> RawRead:
    """Read `raw_file` from `folder` as text and register it as view raw_<kind>."""
    path = Path(folder) / raw_file.name
    if not path.is_file():
        raise RawReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise RawReadError(path, "file is empty")
    try:
        read = _read_csv(con, path, raw_file) if raw_file.quoted else _read_delimited(con, path, raw_file)
    except duckdb.Error as exc:
        raise RawReadError(path, f"could not be parsed: {exc}") from exc
    con.register(f"raw_{raw_file.kind}", read.frame)
    return read


def _read_delimited(con: duckdb.DuckDBPyConnection, path: Path, raw_file: RawFile) -> RawRead:
    projection = ", ".join(f'fields[{i + 1}] AS "{name}"' for i, name in enumerate(raw_file.columns))
    query = f"SELECT {projection}, len(fields) AS _n_fields FROM ({sql('raw/read_lines')})"
    frame = con.execute(
        query,
        {
            "path": str(path),
            "delimiter": raw_file.delimiter,
            "no_delimiter": _NO_DELIMITER,
            "encoding": raw_file.encoding,
        },
    ).df()
    return RawRead(raw_file, path, frame, first_data_line=1)


def _read_csv(con: duckdb.DuckDBPyConnection, path: Path, raw_file: RawFile) -> RawRead:
    rejects_table, rejects_scan = f"rejects_{raw_file.kind}", f"rejects_scan_{raw_file.kind}"
    frame = con.execute(
        sql("raw/read_csv"),
        {"path": str(path), "rejects_table": rejects_table, "rejects_scan": rejects_scan},
    ).df()
    rejects = con.execute(
        f"SELECT line, error_type, error_message FROM {rejects_table} ORDER BY line LIMIT 20"
    ).fetchall()
    if tuple(frame.columns) == raw_file.header:
        frame.columns = list(raw_file.columns)
    # A header that does not match is left as found: the structure check names it.
    frame["_n_fields"] = len(frame.columns)
    return RawRead(raw_file, path, frame, first_data_line=2, rejects=[tuple(r) for r in rejects])


def stage_typed(con: duckdb.DuckDBPyConnection, layout: Layout, kind: str) -> pd.DataFrame:
    """Cast the registered raw_<kind> view to the warehouse's types."""
    if kind == "movies" and layout.name == "ml-100k":
        return con.execute(sql("stage/movies_100k"), {"genres": list(layout.genres)}).df()
    return con.execute(sql(f"stage/{kind}")).df()
