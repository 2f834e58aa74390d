from datetime import date, datetime
from pathlib import Path

import pytest

from pipeline.serving.publish import PublishGateError, publish
from tests.support.lists import write_lists


def _recs(tmp_path: Path, name: str, first_movie: int = 3, users=(1, 2), n: int = 5) -> Path:
    return write_lists(tmp_path / f"{name}.parquet", {u: range(first_movie, first_movie + n) for u in users})


def _current(con) -> list:
    return con.execute("SELECT * EXCLUDE (generated_at) FROM current_recommendations ORDER BY user_id, rank").fetchall()


def test_published_rows_become_current_with_a_readable_reason(con, tmp_path: Path) -> None:
    assert publish(con, "run-a", _recs(tmp_path, "a"), "m", "ds", top_n=5) == 10
    rows = con.execute("SELECT run_id, reason FROM current_recommendations WHERE user_id = 1 AND rank = 1").fetchall()
    assert rows == [("run-a", "because you rated Film 1 5★")]


def test_a_most_popular_pick_says_how_many_ratings_over_which_window_never_a_taste(con, tmp_path: Path) -> None:
    path = write_lists(
        tmp_path / "p.parquet", {1: range(3, 8), 2: range(3, 8)}, popular=(12345, date(2000, 4, 25), date(2003, 2, 28))
    )
    publish(con, "run-p", path, "most_popular", "ds", top_n=5)
    reasons = {r for (r,) in con.execute("SELECT DISTINCT reason FROM current_recommendations").fetchall()}
    assert reasons == {"among the most rated: 12,345 ratings from Apr 2000 to Feb 2003"}


def test_failure_after_scoring_leaves_current_recommendations_exactly_as_before(con, tmp_path: Path) -> None:
    publish(con, "run-a", _recs(tmp_path, "a"), "m", "ds", top_n=5)
    before = _current(con)
    # run b recommends user 1 a movie they already rated: the gate must stop it
    with pytest.raises(PublishGateError, match="already rated"):
        publish(con, "run-b", _recs(tmp_path, "b", first_movie=1), "m", "ds", top_n=5)
    assert _current(con) == before
    assert con.execute("SELECT count(*) FROM recommendations WHERE run_id = 'run-b'").fetchall() == [(0,)]


def test_a_user_without_rows_blocks_publishing(con, tmp_path: Path) -> None:
    with pytest.raises(PublishGateError, match="no recommendations"):
        publish(con, "run-c", _recs(tmp_path, "c", users=(1,)), "m", "ds", top_n=5)
    assert _current(con) == []


def test_republishing_the_same_run_is_idempotent(con, tmp_path: Path) -> None:
    path = _recs(tmp_path, "a")
    publish(con, "run-a", path, "m", "ds", top_n=5)
    first = _current(con)
    publish(con, "run-a", path, "m", "ds", top_n=5)
    assert _current(con) == first
    assert con.execute("SELECT count(*) FROM recommendations").fetchall() == [(10,)]


def test_newer_run_replaces_older_for_consumers(con, tmp_path: Path) -> None:
    publish(con, "run-a", _recs(tmp_path, "a"), "m", "ds", top_n=5)
    publish(con, "run-b", _recs(tmp_path, "b", first_movie=10), "m", "ds", top_n=5)
    assert {r[0] for r in _current(con)} == {"run-b"}
    assert con.execute("SELECT count(DISTINCT run_id) FROM recommendations").fetchall() == [(2,)]


def _day(d: int) -> datetime:
    return datetime(2024, 1, d)


def test_rerunning_a_logical_date_replaces_that_dates_run_without_duplicates(con, tmp_path: Path) -> None:
    publish(con, "first-try", _recs(tmp_path, "a"), "m", "ds", top_n=5, logical_date=_day(1))
    first = [r[1:] for r in _current(con)]
    publish(con, "second-try", _recs(tmp_path, "a"), "m", "ds", top_n=5, logical_date=_day(1))
    assert [r[1:] for r in _current(con)] == first
    assert con.execute("SELECT DISTINCT run_id FROM recommendations").fetchall() == [("second-try",)]
    assert con.execute("SELECT run_id FROM published_runs").fetchall() == [("second-try",)]


def test_only_the_newest_keep_runs_runs_keep_their_rows(con, tmp_path: Path) -> None:
    for day in range(1, 6):
        publish(
            con,
            f"run-{day}",
            _recs(tmp_path, f"r{day}", first_movie=3 + day),
            "m",
            "ds",
            5,
            logical_date=_day(day),
            keep_runs=3,
        )
    kept = con.execute("SELECT DISTINCT run_id FROM recommendations ORDER BY 1").fetchall()
    assert kept == [("run-3",), ("run-4",), ("run-5",)]
    assert con.execute("SELECT count(*) FROM published_runs").fetchall() == [(5,)]  # the log stays whole
    pruned = con.execute("SELECT run_id FROM published_runs WHERE pruned_at IS NOT NULL ORDER BY 1").fetchall()
    assert pruned == [("run-1",), ("run-2",)]
    assert {r[0] for r in _current(con)} == {"run-5"}


def test_a_backfilled_older_date_never_displaces_the_newest_date(con, tmp_path: Path) -> None:
    publish(con, "nightly", _recs(tmp_path, "a"), "m", "ds", top_n=5, logical_date=_day(9))
    publish(con, "backfill", _recs(tmp_path, "b", first_movie=10), "m", "ds", top_n=5, logical_date=_day(2))
    assert {r[0] for r in _current(con)} == {"nightly"}


def test_recommendation_changes_lists_added_dropped_and_moved_movies(con, tmp_path: Path) -> None:
    publish(con, "day-1", _recs(tmp_path, "a", first_movie=3), "m", "ds", top_n=5, logical_date=_day(1))
    # day 2: every list shifts by one movie: 3 drops out, 8 comes in, 4..7 move up a place
    publish(con, "day-2", _recs(tmp_path, "b", first_movie=4), "m", "ds", top_n=5, logical_date=_day(2))
    changes = con.execute(
        "SELECT movie_id, change, previous_rank, current_rank, run_id, previous_run_id "
        "FROM recommendation_changes WHERE user_id = 1 ORDER BY movie_id"
    ).fetchall()
    assert changes[0] == (3, "dropped", 1, None, "day-2", "day-1")
    assert changes[1] == (4, "moved", 2, 1, "day-2", "day-1")
    assert changes[-1] == (8, "added", None, 5, "day-2", "day-1")
    assert len(changes) == 6


def test_keep_runs_below_one_is_refused(con, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_runs"):
        publish(con, "run-a", _recs(tmp_path, "a"), "m", "ds", top_n=5, keep_runs=0)
