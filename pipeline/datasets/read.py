"""Read raw MovieLens files with DuckDB: first as text (for validation), then typed."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.datasets.layouts import IGNORED, Layout, RawFile
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
    rejects: list[tuple[int, str, str, str]] = field(default_factory=list)  # (line, type, message, text)
    crlf: bool = False  # lines end in CR LF (the reader takes both)

    def line_of(self, index: int) -> int:
        return self.first_data_line + int(index)


def read_raw(con: duckdb.DuckDBPyConnection, folder: Path, raw_file: RawFile) -> RawRead:
    """Read `raw_file` from `folder` as text, one row per data line, in canonical column names."""
    path = Path(folder) / raw_file.name
    if not path.is_file():
        raise RawReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise RawReadError(path, "file is empty")
    encodings = ("utf-8", "latin-1") if raw_file.encoding == "auto" else (raw_file.encoding,)
    for i, encoding in enumerate(encodings):
        try:
            if raw_file.quoted:
                read = _read_csv(con, path, raw_file, encoding)
            else:
                read = _read_delimited(con, path, raw_file, encoding)
            break
        except duckdb.Error as exc:
            if i + 1 < len(encodings) and "unicode" in str(exc).lower():
                continue  # "auto": not UTF-8, so the older releases' latin-1
            raise RawReadError(path, f"could not be parsed as {encoding} text: {exc}") from exc
    with open(path, "rb") as fh:
        read.crlf = b"\r\n" in fh.read(1 << 16)
    return read


def _read_delimited(con: duckdb.DuckDBPyConnection, path: Path, raw_file: RawFile, encoding: str) -> RawRead:
    projection = ", ".join(f'fields[{i + 1}] AS "{name}"' for i, name in enumerate(raw_file.columns) if name != IGNORED)
    query = f"SELECT {projection}, len(fields) AS _n_fields FROM ({sql('raw/read_lines')})"
    skip = 1 if raw_file.skips_header else 0
    frame = con.execute(
        query,
        {
            "path": str(path),
            "delimiter": raw_file.delimiter,
            "no_delimiter": _NO_DELIMITER,
            "encoding": encoding,
            "skip": skip,
        },
    ).df()
    return RawRead(raw_file, path, frame, first_data_line=1 + skip)


def _read_csv(con: duckdb.DuckDBPyConnection, path: Path, raw_file: RawFile, encoding: str) -> RawRead:
    """Parse with the declared dialect (no sniffing: one bad quote must not make the file unreadable)."""
    rejects_table, rejects_scan = f"rejects_{raw_file.kind}", f"rejects_scan_{raw_file.kind}"
    header = raw_file.skips_header
    n = len(raw_file.columns)
    frame = con.execute(
        sql("raw/read_csv"),
        {
            "path": str(path),
            "columns": {f"c{i}": "VARCHAR" for i in range(n)},
            "delimiter": raw_file.delimiter,
            "encoding": encoding,
            "header": header,
            "rejects_table": rejects_table,
            "rejects_scan": rejects_scan,
        },
    ).df()
    rejects = con.execute(
        f"SELECT line, error_type, error_message, csv_line FROM {rejects_table} ORDER BY line"
    ).fetchall()
    names = list(raw_file.columns)
    found = _header_row(path, raw_file, encoding) if header else None
    if raw_file.header is not None and found != list(raw_file.header):
        # Keep the names as found: the structure check reports them.
        found = found or []
        names = [*found[:n], *(f"_unnamed_{i}" for i in range(len(found), n))]
    frame.columns = [c if c != IGNORED else f"_ignored_{i}" for i, c in enumerate(names)]
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("_ignored_")])
    frame["_n_fields"] = n
    return RawRead(raw_file, path, frame, first_data_line=2 if header else 1, rejects=[tuple(r) for r in rejects])


def _header_row(path: Path, raw_file: RawFile, encoding: str) -> list[str]:
    """The first line's fields, as the CSV dialect splits them."""
    with open(path, encoding="utf-8-sig" if encoding == "utf-8" else encoding, errors="replace", newline="") as fh:
        return next(csv.reader(fh, delimiter=raw_file.delimiter, quotechar='"'), [])


# Columns a kind's stage SQL reads; optional ones a file lacks are NULL there.
STAGE_COLUMNS = {
    "ratings": ("user_id", "movie_id", "rating", "timestamp"),
    "movies": ("movie_id", "title", "genres"),
    "users": ("user_id", "gender", "age", "occupation", "zip_code"),
    "tags": ("user_id", "movie_id", "tag", "timestamp"),
    "links": ("movie_id", "imdb_id", "tmdb_id"),
}


def stage_typed(con: duckdb.DuckDBPyConnection, layout: Layout, kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Cast a raw text frame of `kind` to the warehouse's types (ids, times, genre lists)."""
    con.execute("SET VARIABLE user_id_type = ?", [layout.user_id_type])
    con.execute("SET VARIABLE movie_id_type = ?", [layout.movie_id_type])
    con.execute("SET VARIABLE timestamp_format = ?", [layout.timestamp_format])
    con.execute(sql("stage/macros"))
    con.register("raw_text", frame)
    missing = [
        c
        for c in STAGE_COLUMNS[kind]
        if c not in frame.columns and not (kind == "movies" and c == "genres" and layout.name == "ml-100k")
    ]
    nulls = "".join(f', NULL::VARCHAR AS "{c}"' for c in missing)
    con.execute(f"CREATE OR REPLACE TEMP VIEW raw_{kind} AS SELECT *{nulls} FROM raw_text")
    if kind == "movies" and layout.name == "ml-100k":
        typed = con.execute(sql("stage/movies_100k"), {"genres": list(layout.genres or ())}).df()
    elif kind == "movies":
        typed = con.execute(
            sql("stage/movies"), {"genre_separator": layout.genre_separator, "no_genres": layout.no_genres}
        ).df()
    else:
        typed = con.execute(sql(f"stage/{kind}")).df()
    con.execute(f"DROP VIEW raw_{kind}")
    con.unregister("raw_text")
    typed.index = frame.index  # row i is raw row i: quarantine and line numbers follow the label
    return typed
