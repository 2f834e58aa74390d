from pathlib import Path

import polars as pl
import pytest

from pipeline import warehouse
from pipeline.publish import PublishGateError, publish


@pytest.fixture
def con(tmp_path: Path):
    con = warehouse.connect(tmp_path / "wh.duckdb")
    con.execute("CREATE TABLE movies AS SELECT range AS movie_id, 'Film ' || range AS title FROM range(1, 21)")
    con.execute("CREATE TABLE ratings AS SELECT * FROM (VALUES (1, 1, 5.0), (2, 2, 4.0)) t(user_id, movie_id, rating)")
    yield con
    con.close()


def _recs(tmp_path: Path, name: str, first_movie: int = 3, users=(1, 2), n: int = 5) -> Path:
    rows = [
        {
            "user_id": u,
            "rank": r + 1,
            "movie_id": first_movie + r,
            "score": 1.0 - r / 10,
            "predicted_rating": 4.0,
            "reason_movie_id": u,
            "reason_rating": 5.0,
            "is_fallback": False,
        }
        for u in users
        for r in range(n)
    ]
    path = tmp_path / f"{name}.parquet"
    pl.DataFrame(rows).write_parquet(path)
    return path


def _current(con) -> list:
    return con.execute("SELECT * EXCLUDE (generated_at) FROM current_recommendations ORDER BY user_id, rank").fetchall()


def test_published_rows_become_current_with_a_readable_reason(con, tmp_path: Path) -> None:
    assert publish(con, "run-a", _recs(tmp_path, "a"), "m", "ds", top_n=5) == 10
    rows = con.execute("SELECT run_id, reason FROM current_recommendations WHERE user_id = 1 AND rank = 1").fetchall()
    assert rows == [("run-a", "because you rated Film 1 5★")]


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
