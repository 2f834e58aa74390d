"""Forward evaluation: published lists judged against the ratings users made afterwards."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.core import warehouse
from pipeline.evaluation.forward import evaluate_previous
from pipeline.serving.publish import publish
from tests.support.lists import write_lists

D1, D2, D3 = datetime(2024, 1, 1), datetime(2024, 2, 1), datetime(2024, 3, 1)
LISTS = {1: [10, 11, 12], 2: [10, 13, 14]}


def _ratings(con, rows: list[tuple[int, int, float, datetime]]) -> None:
    """Replace the ratings table, as a run's load does."""
    con.execute(
        "CREATE OR REPLACE TABLE ratings (user_id BIGINT, movie_id BIGINT, rating DOUBLE, rated_at TIMESTAMPTZ)"
    )
    if rows:
        con.executemany("INSERT INTO ratings VALUES (?, ?, ?, ?)", [(*r[:3], r[3].replace(tzinfo=UTC)) for r in rows])


def _publish(con, tmp_path: Path, run_id: str, when: datetime, lists=LISTS) -> None:
    path = write_lists(tmp_path / f"{run_id}.parquet", lists)
    publish(con, run_id, path, "ease", "ds", top_n=3, logical_date=when)


@pytest.fixture
def wh(tmp_path: Path):
    con = warehouse.connect(tmp_path / "wh.duckdb")
    con.execute("CREATE TABLE movies AS SELECT range AS movie_id, 'Film ' || range AS title FROM range(1, 30)")
    _ratings(con, [(1, 1, 5.0, datetime(2023, 12, 1)), (2, 2, 4.0, datetime(2023, 12, 2))])
    yield con
    con.close()


def test_the_previous_runs_lists_are_scored_on_the_ratings_of_the_window(wh, tmp_path: Path) -> None:
    _publish(wh, tmp_path, "january", D1)
    _ratings(  # what the February run loads: history, then the window [D1, D2)
        wh,
        [
            (1, 1, 5.0, datetime(2023, 12, 1)),  # before the window: ignored
            (1, 11, 5.0, datetime(2024, 1, 5)),  # hit at rank 2, liked
            (1, 20, 3.0, datetime(2024, 1, 6)),  # miss, not liked
            (2, 15, 4.0, datetime(2024, 1, 7)),  # miss, liked
            (3, 10, 5.0, datetime(2024, 1, 8)),  # a user without a list: a miss, liked
        ],
    )
    row = evaluate_previous(wh, "february", D2, like=4.0)
    assert row["evaluated_run_id"] == "january" and row["window_start"] == D1 and row["window_end"] == D2
    assert (row["active_users"], row["users_with_list"], row["liked_users"], row["top_n"]) == (3, 2, 3, 3)
    gain = 1 / math.log2(3)  # the hit sits at rank 2
    assert row["hit_rate"] == pytest.approx(1 / 3)
    assert row["recall"] == pytest.approx(0.5 / 3)
    assert row["ndcg"] == pytest.approx(gain / (1 + gain) / 3)  # user 1: two relevant, IDCG over two ranks
    assert row["liked_hit_rate"] == pytest.approx(1 / 3)
    assert row["liked_recall"] == pytest.approx(1 / 3)
    assert row["liked_ndcg"] == pytest.approx(gain / 3)
    stored = wh.execute("SELECT run_id, evaluated_run_id, active_users, hit_rate FROM forward_metrics").fetchall()
    assert stored == [("february", "january", 3, pytest.approx(1 / 3))]


def test_without_an_earlier_published_run_nothing_is_judged_or_recorded(wh) -> None:
    assert evaluate_previous(wh, "first", D1, like=4.0) is None
    assert wh.execute("SELECT count(*) FROM forward_metrics").fetchall() == [(0,)]


def test_a_backfilled_date_judges_the_newest_run_before_it_and_a_rerun_replaces_its_row(wh, tmp_path) -> None:
    _publish(wh, tmp_path, "january", D1)
    _publish(wh, tmp_path, "march", D3)
    _ratings(wh, [(1, 10, 5.0, datetime(2024, 1, 9)), (1, 12, 2.0, datetime(2024, 2, 20))])
    first = evaluate_previous(wh, "february", D2, like=4.0)
    assert first["evaluated_run_id"] == "january"  # not March, which is after February
    assert (first["active_users"], first["hit_rate"]) == (1, 1.0)  # the 20 February rating is after the window
    evaluate_previous(wh, "february", D2, like=4.0)
    assert wh.execute("SELECT count(*) FROM forward_metrics WHERE run_id = 'february'").fetchall() == [(1,)]


def test_a_window_without_new_ratings_records_zero_active_users(wh, tmp_path) -> None:
    _publish(wh, tmp_path, "january", D1)
    row = evaluate_previous(wh, "february", D2, like=4.0)
    assert row["active_users"] == 0 and row["hit_rate"] is None
