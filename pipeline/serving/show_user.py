"""One user as a person would look at them: profile, best and worst rated movies, current top-10.

History comes from the warehouse, the recommendations from the serving file
(what consumers read, never locked by a run). While a run writes the
warehouse, DuckDB shuts other processes out of it: the view then says so and
still shows the recommendations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipeline.core.sqlfiles import sql


@dataclass
class UserView:
    user_id: int
    profile: dict[str, object] | None = None
    highest: list[tuple] = field(default_factory=list)  # (title, genres, rating, rated_on)
    lowest: list[tuple] = field(default_factory=list)
    top: list[tuple] = field(default_factory=list)  # (rank, title, genres, predicted_rating, reason)
    history_note: str | None = None  # why the history is missing, when it is


def _with_user(con: duckdb.DuckDBPyConnection, user_id: int, n: int) -> None:
    con.execute(f"SET VARIABLE user_id = {int(user_id)}")
    con.execute(f"SET VARIABLE n = {int(n)}")


def history(con: duckdb.DuckDBPyConnection, view: UserView, n: int = 5) -> None:
    """Profile and the n highest- and lowest-rated movies, from the warehouse."""
    _with_user(con, view.user_id, n)
    tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "users" in tables:  # a dataset without a users file has no such table
        cursor = con.execute(sql("queries/user_profile"))
        row = cursor.fetchone()
        if row is not None:
            view.profile = dict(zip([d[0] for d in cursor.description], row, strict=True))
    for side, _position, *movie in con.execute(sql("queries/user_rated_extremes")).fetchall():
        (view.highest if side == "highest" else view.lowest).append(tuple(movie))


def recommendations(con: duckdb.DuckDBPyConnection, view: UserView) -> None:
    """The current top-10 with predicted ratings and reasons, from the serving file."""
    _with_user(con, view.user_id, 10)
    view.top = con.execute(sql("queries/top_n_for_user")).fetchall()


def load(warehouse: Path, serving: Path, user_id: int, n: int = 5) -> UserView:
    view = UserView(user_id)
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            history(con, view, n)
    except duckdb.IOException as exc:  # a run holds the write lock, or there is no warehouse yet
        view.history_note = f"history unavailable ({warehouse}: {str(exc).splitlines()[0]})"
    if serving.exists():
        with duckdb.connect(str(serving), read_only=True) as con:
            recommendations(con, view)
    return view


def _table(headers: list[str], rows: list[tuple]) -> str:
    cells = [[("–" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def render(view: UserView) -> str:
    """The view as text for a terminal."""
    parts = [f"user {view.user_id}"]
    if view.profile:
        shown = {k: v for k, v in view.profile.items() if k != "user_id" and v is not None}
        parts.append("profile: " + (", ".join(f"{k} {v}" for k, v in shown.items()) or "no demographics"))
    elif view.history_note is None:
        parts.append("profile: no demographics in this dataset")
    if view.history_note:
        parts.append(view.history_note)
    else:
        parts.append("\nhighest rated\n" + _table(["title", "genres", "rating", "rated on"], view.highest))
        parts.append("\nlowest rated\n" + _table(["title", "genres", "rating", "rated on"], view.lowest))
    if view.top:
        headers = ["rank", "title", "genres", "predicted", "reason"]
        parts.append("\ncurrent top-10\n" + _table(headers, view.top))
    else:
        parts.append("\nno current recommendations for this user (not in the latest published run)")
    return "\n".join(parts)
