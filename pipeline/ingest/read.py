"""Read raw MovieLens files with DuckDB: first as text (for validation), then typed."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from pipeline.core.sqlfiles import sql
from pipeline.ingest.layouts import COLUMNS, IGNORED, Layout, RawFile

# hash(key), stored as the file is read: partitions of a big file are then picked
# by an integer, not by hashing 25M strings once per partition.
HASH_COLUMN = "_hash"

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
    """One raw file as text in a DuckDB table raw_<kind> (canonical names, _n_fields).

    The rows stay in DuckDB (on disk when the connection is a file), so a
    25-million-line file is never one pandas frame: `chunk` hands out
    partitions, indexed by their line number in the file. The table is written
    in file order (DuckDB preserves insertion order), so a row's rowid is its
    position among the accepted lines; a row_number() window for it cost half
    the read of 25M lines.
    """

    raw_file: RawFile
    path: Path
    table: str
    columns: list[str]  # as found: canonical names, or a mismatching header's names
    n_rows: int
    first_data_line: int  # file line number of the first data line
    rejects: list[tuple[int, str, str, str]] = field(default_factory=list)  # (line, type, message, text)
    crlf: bool = False  # lines end in CR LF (the reader takes both)
    hash_key: str | None = None  # the column whose hash is stored in HASH_COLUMN

    def lines(self, positions: np.ndarray) -> np.ndarray:
        """File line numbers of accepted rows at 1-based `positions` (rejected lines are skipped)."""
        line = positions + self.first_data_line - 1
        if not self.rejects:
            return line
        rejected = np.sort(np.array([r[0] for r in self.rejects], dtype=np.int64))
        # the j-th rejected line (1-based) shifts every later accepted row by one
        shifted = rejected - np.arange(1, len(rejected) + 1) + 1
        return line + np.searchsorted(shifted, line, side="right")

    def chunk(self, con: duckdb.DuckDBPyConnection, key: str | None, part: int, n_parts: int) -> pd.DataFrame:
        """Rows whose `key` hashes to `part` of `n_parts` (all rows when n_parts is 1), in file order."""
        hashed = f"{HASH_COLUMN} " if self.hash_key == key else f'hash("{key}") '
        where = f"WHERE {hashed}% {n_parts} = {part}" if n_parts > 1 and key else ""
        # Through Arrow: pandas then keeps DuckDB's strings as Arrow strings, where
        # .df() builds a Python str per value (7 s against 0.4 s for 2M ratings).
        query = f"SELECT * EXCLUDE ({HASH_COLUMN}), rowid + 1 AS _pos FROM {self.table} {where} ORDER BY _pos"
        frame = con.sql(query).to_arrow_table().to_pandas()
        frame.index = pd.Index(self.lines(frame.pop("_pos").to_numpy()))  # unnamed: GX then reports plain labels
        return frame


def read_raw(con: duckdb.DuckDBPyConnection, folder: Path, raw_file: RawFile, hash_key: str | None = None) -> RawRead:
    """Read `raw_file` from `folder` as text into table raw_<kind>, one row per data line.

    With `hash_key` (a canonical column name), its hash is stored beside the
    row, for `RawRead.chunk` to partition on.
    """
    path = Path(folder) / raw_file.name
    if not path.is_file():
        raise RawReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise RawReadError(path, "file is empty")
    encodings = ("utf-8", "latin-1") if raw_file.encoding == "auto" else (raw_file.encoding,)
    for i, encoding in enumerate(encodings):
        try:
            if raw_file.quoted:
                read = _read_csv(con, path, raw_file, encoding, hash_key)
            else:
                read = _read_delimited(con, path, raw_file, encoding, hash_key)
            break
        except duckdb.Error as exc:
            if i + 1 < len(encodings) and "unicode" in str(exc).lower():
                continue  # "auto": not UTF-8, so the older releases' latin-1
            raise RawReadError(path, f"could not be parsed as {encoding} text: {exc}") from exc
    with open(path, "rb") as fh:
        read.crlf = b"\r\n" in fh.read(1 << 16)
    return read


def _hashed(names: list[str], hash_key: str | None, source: str) -> tuple[str, str | None]:
    """The HASH_COLUMN's projection (NULL without a key the file has) and the key it hashes."""
    if hash_key in names:
        return f", hash({source}) AS {HASH_COLUMN}", hash_key
    return f", NULL::UBIGINT AS {HASH_COLUMN}", None


def _ident(name: str) -> str:
    """`name` as a quoted SQL identifier. A CSV header's names come from the file itself: a quote
    in one must stay part of the name, never end the identifier and start SQL."""
    return '"' + name.replace('"', '""') + '"'


def _read_delimited(
    con: duckdb.DuckDBPyConnection, path: Path, raw_file: RawFile, encoding: str, hash_key: str | None
) -> RawRead:
    names = list(raw_file.columns)
    projection = ", ".join(f"fields[{i + 1}] AS {_ident(name)}" for i, name in enumerate(names) if name != IGNORED)
    hashed, hash_key = _hashed(names, hash_key, f"fields[{names.index(hash_key) + 1}]" if hash_key in names else "")
    table = f"raw_{raw_file.kind}"
    skip = 1 if raw_file.skips_header else 0
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT {projection}, len(fields)::SMALLINT AS _n_fields{hashed} "
        f"FROM ({sql('raw/read_lines')})",
        {
            "path": str(path),
            "delimiter": raw_file.delimiter,
            "no_delimiter": _NO_DELIMITER,
            "encoding": encoding,
            "skip": skip,
        },
    )
    return RawRead(
        raw_file, path, table, _columns(con, table), _count(con, table), first_data_line=1 + skip, hash_key=hash_key
    )


def _read_csv(
    con: duckdb.DuckDBPyConnection, path: Path, raw_file: RawFile, encoding: str, hash_key: str | None
) -> RawRead:
    """Parse with the declared dialect (no sniffing: one bad quote must not make the file unreadable)."""
    rejects_table, rejects_scan = f"rejects_{raw_file.kind}", f"rejects_scan_{raw_file.kind}"
    header = raw_file.skips_header
    n = len(raw_file.columns)
    names = list(raw_file.columns)
    found = _header_row(path, raw_file, encoding) if header else None
    if raw_file.header is not None and found != list(raw_file.header):
        # Keep the names as found: the structure check reports them.
        found = found or []
        names = [*found[:n], *(f"_unnamed_{i}" for i in range(len(found), n))]
    projection = ", ".join(f"c{i} AS {_ident(name)}" for i, name in enumerate(names) if name != IGNORED)
    hashed, hash_key = _hashed(names, hash_key, f"c{names.index(hash_key)}" if hash_key in names else "")
    table = f"raw_{raw_file.kind}"
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT {projection}, {n}::SMALLINT AS _n_fields{hashed} "
        f"FROM ({sql('raw/read_csv')})",
        {
            "path": str(path),
            "columns": {f"c{i}": "VARCHAR" for i in range(n)},
            "delimiter": raw_file.delimiter,
            "encoding": encoding,
            "header": header,
            "rejects_table": rejects_table,
            "rejects_scan": rejects_scan,
        },
    )
    rejects = con.execute(
        # one row per line (a line can break several rules)
        f"SELECT line, first(error_type), first(error_message), first(csv_line) FROM {rejects_table} "
        "GROUP BY line ORDER BY line"
    ).fetchall()
    return RawRead(
        raw_file,
        path,
        table,
        _columns(con, table),
        _count(con, table),
        first_data_line=2 if header else 1,
        rejects=[tuple(r) for r in rejects],
        hash_key=hash_key,
    )


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] != HASH_COLUMN]


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def _header_row(path: Path, raw_file: RawFile, encoding: str) -> list[str]:
    """The first line's fields, as the CSV dialect splits them."""
    with open(path, encoding="utf-8-sig" if encoding == "utf-8" else encoding, errors="replace", newline="") as fh:
        return next(csv.reader(fh, delimiter=raw_file.delimiter, quotechar='"'), [])


def stage_typed(con: duckdb.DuckDBPyConnection, layout: Layout, kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Cast a raw text frame of `kind` to the warehouse's types (ids, times, genre lists)."""
    con.execute(sql("stage/macros"))
    con.execute(
        sql("stage/keys").format(
            user_id_type=layout.user_id_type,
            movie_id_type=layout.movie_id_type,
            timestamp_format=layout.timestamp_format,
        )
    )
    # as Arrow (zero-copy for Arrow strings): DuckDB scans it faster than the pandas frame
    con.register("raw_text", pa.Table.from_pandas(frame, preserve_index=False))
    required, optional = COLUMNS[kind]
    # the stage SQL reads every column of the kind: optional ones a file lacks are NULL
    missing = [
        c
        for c in (*required, *optional)
        if c not in frame.columns and not (kind == "movies" and c == "genres" and layout.name == "ml-100k")
    ]
    nulls = "".join(f', NULL::VARCHAR AS "{c}"' for c in missing)
    con.execute(f"CREATE OR REPLACE TEMP VIEW stage_input AS SELECT *{nulls} FROM raw_text")
    if kind == "movies" and layout.name == "ml-100k":
        typed = con.execute(sql("stage/movies_100k"), {"genres": list(layout.genres or ())}).df()
    elif kind == "movies":
        typed = con.execute(
            sql("stage/movies"), {"genre_separator": layout.genre_separator, "no_genres": layout.no_genres}
        ).df()
    else:
        typed = con.execute(sql(f"stage/{kind}")).df()
    con.execute("DROP VIEW stage_input")
    con.unregister("raw_text")
    typed.index = frame.index  # row i is raw row i: quarantine and line numbers follow the label
    return typed


def typed_ratings(source: Path) -> pl.DataFrame:
    """A dataset's ratings typed by the job's own reader, without validation or loading
    (for benches and tests that need real ratings in memory)."""
    from pipeline.ingest.spec import resolve_dataset

    folder, layout = resolve_dataset(source)
    with duckdb.connect() as con:
        raw = read_raw(con, folder, layout.file("ratings"))
        typed = stage_typed(con, layout, "ratings", raw.chunk(con, None, 0, 1))
    return pl.from_pandas(typed.reset_index(drop=True))
