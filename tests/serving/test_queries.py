"""The consumer examples in sql/queries/ run against a real serving file and answer correctly."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.core import warehouse
from pipeline.core.config import SQL_DIR
from pipeline.serving import serving_file
from pipeline.serving.publish import publish
from tests.support.lists import write_lists


def _recs(tmp_path: Path, name: str, first_movie: int) -> Path:
    lists = {u: range(first_movie, first_movie + 5) for u in (1, 2)}
    return write_lists(tmp_path / f"{name}.parquet", lists, predicted=4.5)


@pytest.fixture
def reader(tmp_path: Path):
    with warehouse.connect(tmp_path / "wh.duckdb") as con:
        con.execute(
            "CREATE TABLE movies AS SELECT range AS movie_id, 'Film ' || range AS title, "
            "CASE WHEN range % 2 = 0 THEN ['Drama'] ELSE ['Comedy', 'Drama'] END AS genres FROM range(1, 21)"
        )
        con.execute(
            "CREATE TABLE ratings AS SELECT * FROM (VALUES (1, 1, 5.0), (2, 2, 4.0)) t(user_id, movie_id, rating)"
        )
        publish(con, "day-1", _recs(tmp_path, "a", 3), "ease", "ds", top_n=5)
        publish(con, "day-2", _recs(tmp_path, "b", 4), "ease", "ds", top_n=5)  # 3 dropped, 8 added
        target = serving_file.export(con, tmp_path / "serving.duckdb")
    with duckdb.connect(str(target), read_only=True) as con:
        yield con


def _query(con, name: str, **variables) -> list[tuple]:
    for key, value in variables.items():
        con.execute(f"SET VARIABLE {key} = {value}")
    return con.execute((SQL_DIR / "queries" / f"{name}.sql").read_text()).fetchall()


def test_top_n_for_user_gives_titles_genres_ratings_and_reasons_in_rank_order(reader) -> None:
    rows = _query(reader, "top_n_for_user", user_id=1)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0] == (1, "Film 4", "Drama", 4.5, "because you rated Film 1 5★")


def test_users_for_movie_lists_every_user_it_is_recommended_to(reader) -> None:
    assert _query(reader, "users_for_movie", movie_id=8) == [(1, 5, 4.5), (2, 5, 4.5)]


def test_changes_for_user_show_the_added_dropped_and_moved_movies(reader) -> None:
    rows = _query(reader, "recommendation_changes_for_user", user_id=2)
    assert ("added", "Film 8", None, 5) in rows and ("dropped", "Film 3", 1, None) in rows
    assert ("moved", "Film 4", 2, 1) in rows and len(rows) == 6


def test_changes_summary_counts_changed_users_and_the_most_added_and_dropped(reader) -> None:
    rows = _query(reader, "changes_summary")
    assert rows[0] == ("users whose list changed", None, 2)
    assert ("most added", "Film 8", 2) in rows and ("most dropped", "Film 3", 2) in rows


def test_coverage_by_genre_counts_recommended_movies_and_slots_per_genre(reader) -> None:
    rows = {r[0]: r[1:] for r in _query(reader, "coverage_by_genre")}
    # current lists: movies 4..8 for both users; Drama has all 20 movies, Comedy the 10 odd ones
    assert rows["Drama"] == (20, 5, 0.25, 10)
    assert rows["Comedy"] == (10, 2, 0.2, 4)


def test_reason_kinds_counts_rows_by_kind_of_reason_and_missing_predicted_ratings(tmp_path: Path) -> None:
    with warehouse.connect(tmp_path / "wh.duckdb") as con:
        con.execute("CREATE TABLE movies AS SELECT range AS movie_id, 'Film ' || range AS title FROM range(1, 21)")
        con.execute("CREATE TABLE ratings AS SELECT range AS user_id, 1 AS movie_id, 5.0 AS rating FROM range(1, 3)")
        popular = (12_345, date(2000, 4, 1), date(2003, 2, 1))
        lists = write_lists(tmp_path / "a.parquet", {u: range(3, 8) for u in (1, 2)}, popular=popular)
        con.execute(
            "COPY (SELECT * REPLACE (CASE WHEN user_id = 2 THEN NULL ELSE predicted_rating END AS predicted_rating) "
            f"FROM read_parquet('{lists}')) TO '{tmp_path / 'b.parquet'}'"
        )
        publish(con, "day-1", tmp_path / "b.parquet", "most_popular", "ds", top_n=5)
        rows = con.execute((SQL_DIR / "queries" / "reason_kinds.sql").read_text()).fetchall()
    assert rows == [("popularity, with its window", 10, 100.0, 5)]
