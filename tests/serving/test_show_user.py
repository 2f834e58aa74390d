"""make show-user: a user's profile, best and worst rated movies and current top-10, from real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.core import warehouse
from pipeline.serving import serving_file, show_user
from pipeline.serving.publish import publish
from pipeline.stages import cli
from tests.support.lists import write_lists

HOLD_LOCK = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.readline()"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    with warehouse.connect(tmp_path / "wh.duckdb") as con:
        con.execute(
            "CREATE TABLE movies AS SELECT range AS movie_id, 'Film ' || range AS title, "
            "CASE WHEN range % 2 = 0 THEN ['Drama'] ELSE ['Comedy', 'Drama'] END AS genres FROM range(1, 31)"
        )
        con.execute(
            "CREATE TABLE users AS SELECT * FROM (VALUES (1, 'F', 25, 4, '10001')) "
            "t(user_id, gender, age, occupation, zip_code)"
        )
        # user 1 rated movies 1..7: 1 and 2 five stars (2 more recently), 7 one star
        con.execute(
            "CREATE TABLE ratings AS SELECT 1 AS user_id, m AS movie_id, r AS rating, "
            "to_timestamp(1e9 + m * 86400) AS rated_at FROM (VALUES (1, 5.0), (2, 5.0), (3, 4.0), (4, 3.0), "
            "(5, 3.0), (6, 2.0), (7, 1.0)) t(m, r)"
        )
        lists = {1: range(10, 22), 2: range(8, 13)}  # 12 movies for user 1: the view shows 10
        publish(con, "day-1", write_lists(tmp_path / "a.parquet", lists, predicted=4.5), "ease", "ds", top_n=12)
        served = serving_file.export(con, tmp_path / "wh.serving.duckdb")
    return tmp_path / "wh.duckdb", served


def test_view_has_demographics_five_best_and_worst_rated_and_the_top_ten(files) -> None:
    view = show_user.load(*files, user_id=1)
    assert view.profile == {"user_id": 1, "gender": "F", "age": 25, "occupation": 4, "zip_code": "10001"}
    assert [(t, r) for t, _, r, _ in view.highest] == [
        ("Film 2", 5.0),  # ties: the most recent first
        ("Film 1", 5.0),
        ("Film 3", 4.0),
        ("Film 5", 3.0),
        ("Film 4", 3.0),
    ]
    assert [t for t, *_ in view.lowest][:2] == ["Film 7", "Film 6"] and len(view.lowest) == 5
    assert view.highest[0][1] == "Drama" and view.lowest[0][1] == "Comedy, Drama"
    assert [rank for rank, *_ in view.top] == list(range(1, 11))
    assert view.top[0][1:4] == ("Film 10", "Drama", 4.5)


def test_rendered_view_is_a_readable_table_per_section(files) -> None:
    text = show_user.render(show_user.load(*files, user_id=1))
    assert "profile: gender F, age 25, occupation 4, zip_code 10001" in text
    for section in ("highest rated", "lowest rated", "current top-10"):
        assert f"\n{section}\n" in text
    top = text.split("current top-10\n")[1].splitlines()
    assert top[0].split() == ["rank", "title", "genres", "predicted", "reason"] and len(top) == 12  # header, rule, 10
    assert all(line == line.rstrip() for line in text.splitlines())


def test_while_a_run_writes_the_warehouse_the_recommendations_still_show(files) -> None:
    warehouse_file, served = files
    # another process holds the write lock, as a running job does
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(warehouse_file)], stdout=subprocess.PIPE, stdin=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"locked\n"
        view = show_user.load(warehouse_file, served, user_id=1)
    finally:
        holder.communicate(b"done\n", timeout=30)
    assert view.history_note is not None and "history unavailable" in view.history_note
    assert len(view.top) == 10
    assert "history unavailable" in show_user.render(view)


def test_cli_prints_the_view_and_refuses_a_missing_warehouse(files, tmp_path, capsys) -> None:
    assert cli.main(["show-user", "1", "--warehouse", str(files[0])]) == 0
    assert "current top-10" in capsys.readouterr().out
    assert cli.main(["show-user", "1", "--warehouse", str(tmp_path / "none.duckdb")]) == 2
    assert "no warehouse at" in capsys.readouterr().err


def test_a_dataset_without_users_shows_no_demographics(files) -> None:
    warehouse_file, served = files
    with duckdb.connect(str(warehouse_file)) as con:
        con.execute("DROP TABLE users")  # ml-latest-small has no users file
    view = show_user.load(warehouse_file, served, user_id=1)
    assert view.profile is None and len(view.highest) == 5
    assert "profile: no demographics in this dataset" in show_user.render(view)
