"""A user's own MovieLens-like files, described by a small TOML spec (dataset.toml).

The spec says how the bytes are laid out (separator, encoding, header, column
order), what the values mean (id types, rating scale, timestamp unit, genre
separator) and which optional files exist. It is checked in full before any
data is read, and every mistake is reported at once with its key.
See README.md, "Your own data: dataset.toml", for the format.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from pipeline.ingest.layouts import COLUMNS, IGNORED, Layout, LayoutError, RatingScale, RawFile, detect_layout

SPEC_NAME = "dataset.toml"
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1"}
ENCODINGS |= {"utf-16": "utf-16", "utf16": "utf-16"}
ID_TYPES = ("integer", "text")
TIMESTAMP_FORMATS = ("unix", "unix_ms", "iso")
# The file kinds a spec may describe, with their (required, optional) columns.
KINDS = {kind: COLUMNS[kind] for kind in ("ratings", "movies", "users", "tags")}
REQUIRED_KINDS = ("ratings", "movies")
TOP_KEYS = {
    "name",
    "encoding",
    "separator",
    "header",
    "genre_separator",
    "genres",
    "no_genres",
    "timestamp",
    "ids",
    "rating_scale",
    "files",
}
FILE_KEYS = {"path", "columns", "separator", "encoding", "header"}


class SpecError(LayoutError):
    """The dataset spec is malformed; the message lists every mistake with its key."""

    rule = "dataset_spec_is_valid"

    def __init__(self, path: Path, problems: list[str]) -> None:
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"dataset spec {path} has {len(problems)} problem(s):\n{listed}")
        self.path = path
        self.problems = problems


def find_spec(path: Path) -> Path | None:
    """The spec for `path`: the file itself if it is a .toml, else dataset.toml inside the folder."""
    path = Path(path)
    if path.is_file() and path.suffix == ".toml":
        return path
    candidate = path / SPEC_NAME
    return candidate if candidate.is_file() else None


def load_spec(spec_path: Path) -> tuple[Path, Layout]:
    """Parse and check a spec; return the data folder (the spec's own folder) and its layout."""
    spec_path = Path(spec_path).resolve()
    try:
        data = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(spec_path, [f"not valid TOML: {exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise SpecError(spec_path, [f"the spec itself must be UTF-8 text: {exc}"]) from exc
    layout, problems = _layout_from(data, spec_path.parent)
    if problems:
        raise SpecError(spec_path, problems)
    assert layout is not None
    return spec_path.parent, layout


def _layout_from(data: dict[str, Any], folder: Path) -> tuple[Layout | None, list[str]]:
    problems: list[str] = []
    for key in sorted(set(data) - TOP_KEYS):
        problems.append(f"unknown key '{key}' (allowed: {', '.join(sorted(TOP_KEYS))})")

    encoding = _encoding(data.get("encoding", "utf-8"), "encoding", problems)
    separator = _separator(data.get("separator", ","), "separator", problems)
    header = _bool(data.get("header", True), "header", problems)
    genre_separator = _text(data.get("genre_separator", "|"), "genre_separator", problems, allow_empty=False)
    genres = data.get("genres")
    if genres is not None and (
        not isinstance(genres, list) or not genres or not all(isinstance(g, str) and g.strip() for g in genres)
    ):
        problems.append("genres: must be a non-empty list of genre names, or left out to accept any name")
        genres = None
    no_genres = data.get("no_genres")
    if no_genres is not None and not isinstance(no_genres, str):
        problems.append("no_genres: must be text, the value that means 'no genre' (e.g. \"(no genres listed)\")")
    timestamp = data.get("timestamp", "unix")
    if timestamp not in TIMESTAMP_FORMATS:
        problems.append(
            f"timestamp: {timestamp!r} is not one of {', '.join(TIMESTAMP_FORMATS)} "
            "(unix = seconds since 1970, unix_ms = milliseconds, iso = 2024-05-01 12:00:00)"
        )
    ids = _table(data.get("ids", {}), "ids", problems)
    for key in sorted(set(ids) - {"user", "movie"}):
        problems.append(f"ids.{key}: unknown key (allowed: user, movie)")
    id_types = {}
    for who in ("user", "movie"):
        value = ids.get(who, "integer")
        if value not in ID_TYPES:
            problems.append(f"ids.{who}: {value!r} is not one of {', '.join(ID_TYPES)}")
        id_types[who] = value
    scale = _scale(data.get("rating_scale"), problems)
    files = _files(data.get("files"), folder, encoding, separator, header, problems)
    if problems:
        return None, problems
    layout = Layout(
        name="spec",
        files=files,
        scale=scale,
        genres=tuple(genres) if genres else None,
        genre_separator=genre_separator,
        no_genres=no_genres,
        user_id_type=id_types["user"],
        movie_id_type=id_types["movie"],
        timestamp_format=timestamp,
        label=str(data.get("name", folder.name)),
    )
    return layout, problems


def _scale(value: Any, problems: list[str]) -> RatingScale:
    fallback = RatingScale(1.0, 5.0, 1.0)
    if value is None:
        problems.append("rating_scale: missing; e.g. rating_scale = { min = 1, max = 5, step = 1 }")
        return fallback
    table = _table(value, "rating_scale", problems)
    for key in sorted(set(table) - {"min", "max", "step"}):
        problems.append(f"rating_scale.{key}: unknown key (allowed: min, max, step)")
    numbers = {}
    for key in ("min", "max", "step"):
        v = table.get(key)
        if v is None:
            if key != "step":
                problems.append(f"rating_scale.{key}: missing")
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            problems.append(f"rating_scale.{key}: {v!r} is not a number")
            continue
        numbers[key] = float(v)
    lo, hi, step = numbers.get("min"), numbers.get("max"), numbers.get("step")
    if lo is not None and hi is not None:
        if lo < 0:
            problems.append(f"rating_scale.min: {lo:g} is negative; only scales from 0 or above are supported")
        if hi <= lo:
            problems.append(f"rating_scale: max ({hi:g}) must be greater than min ({lo:g})")
        elif step is not None:
            if step <= 0:
                problems.append(f"rating_scale.step: {step:g} must be positive (leave it out for a continuous scale)")
            elif abs((hi - lo) / step - round((hi - lo) / step)) > 1e-9:
                problems.append(f"rating_scale.step: {step:g} does not divide the range {lo:g}..{hi:g} evenly")
    if problems:
        return fallback
    return RatingScale(lo, hi, step)  # type: ignore[arg-type]


def _files(
    value: Any, folder: Path, encoding: str, separator: str, header: bool, problems: list[str]
) -> tuple[RawFile, ...]:
    table = _table(value, "files", problems)
    for kind in REQUIRED_KINDS:
        if kind not in table:
            problems.append(f"files.{kind}: missing; the {kind} file is required")
    for kind in sorted(set(table) - set(KINDS)):
        problems.append(f"files.{kind}: unknown file kind (allowed: {', '.join(KINDS)})")
    out = []
    for kind in (k for k in KINDS if k in table):
        where = f"files.{kind}"
        entry = _table(table[kind], where, problems)
        for key in sorted(set(entry) - FILE_KEYS):
            problems.append(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(FILE_KEYS))})")
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            problems.append(f"{where}.path: missing; the file's name, relative to the spec's folder")
            continue
        if not _inside(folder, path):
            problems.append(
                f"{where}.path: {path!r} leads outside the spec's folder {folder} (an absolute path, '..' or "
                "a symlink out): a spec names files in its own folder only"
            )
            continue
        if not (folder / path).is_file():
            problems.append(f"{where}.path: {folder / path} does not exist")
        columns = _columns(entry.get("columns"), kind, where, problems)
        file_sep = _separator(entry.get("separator", separator), f"{where}.separator", problems)
        file_enc = _encoding(entry.get("encoding", encoding), f"{where}.encoding", problems)
        file_header = _bool(entry.get("header", header), f"{where}.header", problems)
        out.append(
            RawFile(
                kind=kind,
                name=path,
                columns=columns,
                delimiter=file_sep,
                encoding=file_enc,
                quoted=len(file_sep) == 1,
                required=True,
                has_header=file_header,
            )
        )
    return tuple(out)


def _columns(value: Any, kind: str, where: str, problems: list[str]) -> tuple[str, ...]:
    required, optional = KINDS[kind]
    allowed = (*required, *optional)
    if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
        problems.append(
            f"{where}.columns: must list the file's columns in order, e.g. {list(required)}; "
            f"use '{IGNORED}' for a column to ignore"
        )
        return ()
    for name in value:
        if name != IGNORED and name not in allowed:
            problems.append(
                f"{where}.columns: {name!r} is not a {kind} column (allowed: {', '.join(allowed)}, "
                f"or '{IGNORED}' to ignore a column)"
            )
    named = [c for c in value if c != IGNORED]
    for name in sorted({c for c in named if named.count(c) > 1}):
        problems.append(f"{where}.columns: {name!r} is listed more than once")
    for name in required:
        if name not in value:
            problems.append(f"{where}.columns: required column {name!r} is missing")
    return tuple(value)


def _table(value: Any, where: str, problems: list[str]) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is not None:
        problems.append(f"{where}: must be a table (e.g. [{where}] or {where} = {{ ... }})")
    return {}


def _encoding(value: Any, where: str, problems: list[str]) -> str:
    if isinstance(value, str) and value.lower() in ENCODINGS:
        return ENCODINGS[value.lower()]
    problems.append(f"{where}: {value!r} is not supported (use utf-8, latin-1 or utf-16)")
    return "utf-8"


def _separator(value: Any, where: str, problems: list[str]) -> str:
    if not isinstance(value, str) or not value:
        problems.append(f'{where}: must be a non-empty string such as ",", "\\t", ";" or "::"')
        return ","
    if value in ('"', "\n", "\r"):
        problems.append(f"{where}: {value!r} cannot separate fields")
    return value


def _inside(folder: Path, path: str) -> bool:
    """Whether `path` (from the spec) resolves, symlinks followed, to somewhere in `folder`."""
    root = folder.resolve()
    return (root / path).resolve().is_relative_to(root)


def _bool(value: Any, where: str, problems: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    problems.append(f"{where}: must be true or false, not {value!r}")
    return True


def _text(value: Any, where: str, problems: list[str], allow_empty: bool = True) -> str:
    if isinstance(value, str) and (allow_empty or value):
        return value
    problems.append(f"{where}: must be a non-empty string")
    return "|"


def resolve_dataset(path: Path) -> tuple[Path, Layout]:
    """The data folder and its layout: a spec file or dataset.toml wins, else the release is detected."""
    spec = find_spec(Path(path))
    if spec is not None:
        return load_spec(spec)
    if Path(path).is_file():
        raise LayoutError(f"{path} is a file: point at a dataset folder or at a .toml dataset spec")
    return Path(path), detect_layout(Path(path))
