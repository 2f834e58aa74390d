"""A corpus of corrupted inputs, generated from clean synthetic datasets.

Each corruption says which base layout it breaks, how, which file the alert
must name, a fragment of the rule it must name, and the severity the run must
show: `critical` (the run stops before publishing) or `warning` (the run goes
on, the alert is raised, bad rows are quarantined). A `layout` outcome is a
critical failure found before validation (a file missing), reported by the
error message rather than a dq_alerts row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.synthetic import BASE_TS


@dataclass(frozen=True)
class Corruption:
    name: str
    base: str  # ml-1m | ml-latest | ml-100k | spec
    apply: Callable[[Path], None]
    severity: str  # critical | warning | layout
    file: str
    rule: str  # a fragment of the rule (or error) that must be named


def _lines(path: Path, encoding: str = "latin-1") -> list[str]:
    return [line.rstrip("\r") for line in path.read_bytes().decode(encoding).split("\n")[:-1]]


def _write(path: Path, lines: list[str], encoding: str = "latin-1", end: str = "\n") -> None:
    path.write_bytes("".join(f"{line}{end}" for line in lines).encode(encoding))


def _edit(name: str, line_no: int, edit: Callable[[list[str]], list[str]], sep: str = "::", enc: str = "latin-1"):
    """Change the fields of one line (1-based) of `name`."""

    def apply(folder: Path) -> None:
        path = folder / name
        lines = _lines(path, enc)
        lines[line_no - 1] = sep.join(edit(lines[line_no - 1].split(sep)))
        _write(path, lines, enc, "\r\n" if name.endswith(".csv") else "\n")

    return apply


def _set(index: int, value: str) -> Callable[[list[str]], list[str]]:
    return lambda f: [*f[:index], value, *f[index + 1 :]]


def _append(name: str, line: str, enc: str = "latin-1", end: str = "\n"):
    def apply(folder: Path) -> None:
        with open(folder / name, "ab") as fh:
            fh.write((line + end).encode(enc))

    return apply


def _every_line(name: str, change: Callable[[str], str], enc: str = "latin-1", skip_header: bool = False):
    def apply(folder: Path) -> None:
        path = folder / name
        lines = _lines(path, enc)
        end = "\r\n" if name.endswith(".csv") else "\n"
        head, body = (lines[:1], lines[1:]) if skip_header else ([], lines)
        _write(path, head + [change(line) for line in body], enc, end)

    return apply


def _replace_bytes(name: str, change: Callable[[bytes], bytes]):
    def apply(folder: Path) -> None:
        path = folder / name
        path.write_bytes(change(path.read_bytes()))

    return apply


def _remove(name: str):
    return lambda folder: (folder / name).unlink()


def _ms(line: str) -> str:
    f = line.split("::")
    return "::".join([*f[:3], f[3] + "000"])


CORPUS: tuple[Corruption, ...] = (
    # structure and encoding
    Corruption(
        "wrong separator in a :: file",
        "ml-1m",
        _replace_bytes("ratings.dat", lambda b: b.replace(b"::", b"\t")),
        "critical",
        "ratings.dat",
        "number of fields",
    ),
    Corruption(
        "semicolons in a CSV file",
        "ml-latest",
        _replace_bytes("ratings.csv", lambda b: b.replace(b",", b";")),
        "critical",
        "ratings.csv",
        "columns",
    ),
    Corruption(
        "UTF-8 movies in a latin-1 layout",
        "ml-1m",
        _replace_bytes("movies.dat", lambda b: b.decode("latin-1").encode("utf-8")),
        "critical",
        "movies.dat",
        "double-encoded",
    ),
    Corruption(
        "latin-1 movies in a UTF-8 CSV",
        "ml-latest",
        _replace_bytes("movies.csv", lambda b: b.decode("utf-8").encode("latin-1")),
        "critical",
        "movies.csv",
        "valid utf-8 text",
    ),
    Corruption(
        "U+FFFD replacement characters in titles",
        "ml-latest",
        _replace_bytes("movies.csv", lambda b: b.replace("é".encode(), "\ufffd".encode())),
        "critical",
        "movies.csv",
        "replacement characters",
    ),
    Corruption(
        "byte-order mark before a latin-1 file",
        "ml-1m",
        _replace_bytes("ratings.dat", lambda b: b"\xef\xbb\xbf" + b),
        "warning",
        "ratings.dat",
        "user_id is a user id",
    ),
    Corruption(
        "truncated last line",
        "ml-1m",
        _replace_bytes("ratings.dat", lambda b: b[: b.rstrip(b"\n").rfind(b"::")] + b"\n"),
        "warning",
        "ratings.dat",
        "number of fields",
    ),
    Corruption(
        "truncated last line of a CSV",
        "ml-latest",
        _replace_bytes("ratings.csv", lambda b: b[: b.rstrip(b"\r\n").rfind(b",")] + b"\r\n"),
        "warning",
        "ratings.csv",
        "header's number of fields",
    ),
    Corruption(
        "extra column on every line",
        "ml-1m",
        _every_line("ratings.dat", lambda line: line + "::web"),
        "critical",
        "ratings.dat",
        "number of fields",
    ),
    Corruption(
        "missing column on every line",
        "ml-1m",
        _every_line("movies.dat", lambda line: line.rsplit("::", 1)[0]),
        "critical",
        "movies.dat",
        "number of fields",
    ),
    Corruption(
        "CRLF line endings in a :: file",
        "ml-1m",
        _replace_bytes("ratings.dat", lambda b: b.replace(b"\n", b"\r\n")),
        "warning",
        "ratings.dat",
        "LF",
    ),
    Corruption(
        "empty ratings file",
        "ml-1m",
        lambda f: (f / "ratings.dat").write_bytes(b""),
        "critical",
        "ratings.dat",
        "empty",
    ),
    Corruption(
        "header-only CSV",
        "ml-latest",
        lambda f: (f / "ratings.csv").write_bytes(b"userId,movieId,rating,timestamp\r\n"),
        "critical",
        "ratings.csv",
        "at least one data row",
    ),
    Corruption(
        "renamed CSV header",
        "ml-latest",
        _replace_bytes("ratings.csv", lambda b: b.replace(b"userId,movieId", b"user,item", 1)),
        "critical",
        "ratings.csv",
        "columns",
    ),
    Corruption(
        "unbalanced quote in one CSV title",
        "ml-latest",
        _replace_bytes("movies.csv", lambda b: b.replace(b'"Synthetic Film 3 (', b'"Synthetic "Film 3 (', 1)),
        "warning",
        "movies.csv",
        "CSV",
    ),
    # values
    Corruption(
        "non-numeric user id",
        "ml-1m",
        _edit("ratings.dat", 5, _set(0, "abc")),
        "warning",
        "ratings.dat",
        "user_id is a user id",
    ),
    Corruption(
        "empty movie id",
        "ml-1m",
        _edit("ratings.dat", 9, _set(1, "")),
        "warning",
        "ratings.dat",
        "movie_id is a movie id",
    ),
    Corruption(
        "rating 0 on a 1-5 scale",
        "ml-1m",
        _edit("ratings.dat", 3, _set(2, "0")),
        "warning",
        "ratings.dat",
        "within the declared scale",
    ),
    Corruption(
        "rating 6 on a 1-5 scale",
        "ml-1m",
        _edit("ratings.dat", 4, _set(2, "6")),
        "warning",
        "ratings.dat",
        "within the declared scale",
    ),
    Corruption(
        "rating NaN", "ml-1m", _edit("ratings.dat", 6, _set(2, "NaN")), "warning", "ratings.dat", "plain decimal number"
    ),
    Corruption(
        "rating 4.25 on a whole-star scale",
        "ml-1m",
        _edit("ratings.dat", 8, _set(2, "4.25")),
        "warning",
        "ratings.dat",
        "scale's steps",
    ),
    Corruption(
        "rating 4.25 on a half-star scale",
        "ml-latest",
        _edit("ratings.csv", 8, _set(2, "4.25"), sep=",", enc="utf-8"),
        "warning",
        "ratings.csv",
        "scale's steps",
    ),
    Corruption(
        "negative rating",
        "ml-1m",
        _edit("ratings.dat", 10, _set(2, "-3")),
        "warning",
        "ratings.dat",
        "plain decimal number",
    ),
    # content
    Corruption(
        "duplicated (user, movie) pair",
        "ml-1m",
        lambda f: _append("ratings.dat", _lines(f / "ratings.dat")[0])(f),
        "warning",
        "ratings.dat",
        "at most once",
    ),
    Corruption(
        "orphan movie in ratings",
        "ml-1m",
        _append("ratings.dat", f"1::999::4::{BASE_TS}"),
        "warning",
        "ratings.dat",
        "every rated movie is in the movies file",
    ),
    Corruption(
        "orphan user in ratings",
        "ml-1m",
        _append("ratings.dat", f"999::1::4::{BASE_TS}"),
        "warning",
        "ratings.dat",
        "users file",
    ),
    Corruption(
        "orphan movie in tags",
        "ml-latest",
        _append("tags.csv", f"1,999,lost,{BASE_TS}", "utf-8", "\r\n"),
        "warning",
        "tags.csv",
        "every tagged movie",
    ),
    Corruption(
        "duplicate movie id",
        "ml-1m",
        _append("movies.dat", "3::Same Id Again (1999)::Drama"),
        "critical",
        "movies.dat",
        "movie ids are unique",
    ),
    Corruption(
        "unknown genre",
        "ml-1m",
        _edit("movies.dat", 2, _set(2, "Drama|Cyberpunk")),
        "warning",
        "movies.dat",
        "vocabulary",
    ),
    Corruption(
        "titles without a year",
        "ml-1m",
        _every_line("movies.dat", lambda line: line.replace(" (", " [").replace(")::", "]::")),
        "warning",
        "movies.dat",
        "year in brackets",
    ),
    Corruption(
        "genre flag 2 in u.item",
        "ml-100k",
        _edit("u.item", 4, _set(7, "2"), sep="|"),
        "warning",
        "u.item",
        "genre flag g_2",
    ),
    # time
    Corruption(
        "timestamps in milliseconds",
        "ml-1m",
        _every_line("ratings.dat", _ms),
        "critical",
        "ratings.dat",
        "plausible time",
    ),
    Corruption(
        "negative timestamp", "ml-1m", _edit("ratings.dat", 12, _set(3, "-5")), "warning", "ratings.dat", "Unix seconds"
    ),
    Corruption(
        "timestamp in 2999",
        "ml-1m",
        _edit("ratings.dat", 13, _set(3, "32472144000")),
        "warning",
        "ratings.dat",
        "plausible time",
    ),
    Corruption(
        "timestamp before 1995",
        "ml-1m",
        _edit("ratings.dat", 14, _set(3, "600000000")),
        "warning",
        "ratings.dat",
        "plausible time",
    ),
    Corruption(
        "timestamp after the logical date",
        "ml-1m",
        _edit("ratings.dat", 15, _set(3, "1104537600")),
        "warning",
        "ratings.dat",
        "logical date",
    ),
    # demographics
    Corruption("gender X", "ml-1m", _edit("users.dat", 2, _set(1, "X")), "warning", "users.dat", "gender is F or M"),
    Corruption(
        "age 30 is not an ml-1m bracket",
        "ml-1m",
        _edit("users.dat", 3, _set(2, "30")),
        "warning",
        "users.dat",
        "bracket codes",
    ),
    Corruption(
        "occupation 25",
        "ml-1m",
        _edit("users.dat", 4, _set(3, "25")),
        "warning",
        "users.dat",
        "occupation is a code 0-20",
    ),
    Corruption(
        "age not a whole number",
        "ml-1m",
        _edit("users.dat", 5, _set(2, "twenty")),
        "warning",
        "users.dat",
        "age is a whole number",
    ),
    Corruption(
        "ml-100k occupation not a lower-case word",
        "ml-100k",
        _edit("u.user", 3, _set(3, "Engineer"), sep="|"),
        "warning",
        "u.user",
        "lower-case word",
    ),
    Corruption(
        "movie without a title",
        "ml-1m",
        _edit("movies.dat", 3, _set(1, "")),
        "warning",
        "movies.dat",
        "every movie has a title",
    ),
    Corruption(
        "imdbId with letters",
        "ml-latest",
        _edit("links.csv", 3, _set(1, "tt0114709"), sep=",", enc="utf-8"),
        "warning",
        "links.csv",
        "imdbId is digits",
    ),
    Corruption(
        "tmdbId as a decimal",
        "ml-latest",
        _edit("links.csv", 4, _set(2, "862.0"), sep=",", enc="utf-8"),
        "warning",
        "links.csv",
        "tmdbId is digits",
    ),
    Corruption(
        "duplicate user id",
        "ml-1m",
        _append("users.dat", "1::F::25::3::12345"),
        "critical",
        "users.dat",
        "user ids are unique",
    ),
    # files and specs
    Corruption("users file missing for ml-1m", "ml-1m", _remove("users.dat"), "layout", "users.dat", "users.dat"),
    Corruption("movies file missing", "ml-latest", _remove("movies.csv"), "layout", "movies.csv", "movies file"),
    Corruption(
        "rating 11 on a spec's 0-10 scale",
        "spec",
        _edit("scores.txt", 5, _set(3, "11"), sep=";", enc="utf-8"),
        "warning",
        "scores.txt",
        "within the declared scale",
    ),
    Corruption(
        "padded text id in a spec",
        "spec",
        _edit("scores.txt", 6, lambda f: [" " + f[0], *f[1:]], sep=";", enc="utf-8"),
        "warning",
        "scores.txt",
        "movie_id is a movie id",
    ),
    Corruption(
        "unparseable ISO time in a spec",
        "spec",
        _edit("scores.txt", 7, _set(4, "yesterday"), sep=";", enc="utf-8"),
        "warning",
        "scores.txt",
        "declared format",
    ),
)
