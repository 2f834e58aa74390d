"""The serving file: consumers in other processes always read a whole published run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.serving import serving_file
from pipeline.serving.publish import publish
from pipeline.stages.cli import main
from tests.support.lists import write_lists
from tests.support.synthetic import make, write_ml1m

N_USERS, N = 30, 10
READER = Path(__file__).parents[1] / "support" / "serving_reader.py"


def _publish(con, tmp_path: Path, run_id: str, first_movie: int) -> None:
    path = write_lists(tmp_path / f"{run_id}.parquet", {u: range(first_movie, first_movie + 5) for u in (1, 2)})
    publish(con, run_id, path, "m", "ds", top_n=5)


def test_the_serving_file_holds_the_current_run_movies_and_views_while_the_warehouse_is_open(con, tmp_path):
    _publish(con, tmp_path, "run-a", 3)
    target = serving_file.export(con, tmp_path / "serving.duckdb")
    # the job still holds the warehouse open for writing; a consumer reads the serving file
    with duckdb.connect(str(target), read_only=True) as reader:
        top = reader.execute(
            "SELECT r.rank, m.title, r.reason FROM current_recommendations r JOIN movies m USING (movie_id) "
            "WHERE user_id = 1 ORDER BY rank LIMIT 2"
        ).fetchall()
        views = {v for (v,) in reader.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert top == [(1, "Film 3", "because you rated Film 1 5★"), (2, "Film 4", "because you rated Film 1 5★")]
    assert {"current_recommendations", "recommendation_changes", "current_run"} <= views


def test_a_failed_export_leaves_the_served_file_byte_identical_and_no_temporary_file(con, tmp_path, monkeypatch):
    _publish(con, tmp_path, "run-a", 3)
    target = serving_file.export(con, tmp_path / "serving.duckdb")
    before = target.read_bytes()
    _publish(con, tmp_path, "run-b", 8)
    monkeypatch.setattr(serving_file, "sql", lambda name: "CREATE VIEW broken AS SELECT * FROM no_such_table")
    with pytest.raises(duckdb.Error, match="no_such_table"):
        serving_file.export(con, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_export_removes_what_a_killed_export_left_and_nothing_else(con, tmp_path) -> None:
    """Found by the crash harness: SIGKILL during an export runs no `finally`, and each night's
    temporary copy of the serving file stayed on disk."""
    _publish(con, tmp_path, "run-a", 3)
    left = [tmp_path / ".serving.duckdb.0123abcd.tmp", tmp_path / ".serving.duckdb.0123abcd.tmp.wal"]
    for path in left:
        path.write_bytes(b"half a file")
    other = tmp_path / ".other.duckdb.0123abcd.tmp"  # another target's: not this export's to remove
    other.write_bytes(b"x")
    serving_file.export(con, tmp_path / "serving.duckdb")
    assert not any(path.exists() for path in left) and other.exists()


def test_the_default_serving_file_sits_beside_the_warehouse() -> None:
    assert serving_file.serving_path("/data/wh/movielens.duckdb") == Path("/data/wh/movielens.serving.duckdb")


def _cli_run(dataset: Path, wh: Path, run_id: str) -> int:
    options = {"--dataset": dataset, "--warehouse": wh, "--run-id": run_id, "--top-n": N, "--max-epochs": 2}
    options |= {"--device": "cpu", "--models": "most_popular,biased_mf"}
    return main(["run", *(str(x) for pair in options.items() for x in pair)])


def test_a_reader_in_another_process_always_gets_a_whole_run_during_real_runs(tmp_path: Path) -> None:
    dataset = write_ml1m(tmp_path / "ml1m", make(n_users=N_USERS, n_movies=40, per_user=15))
    wh = tmp_path / "wh.duckdb"
    target, out, stop = serving_file.serving_path(wh), tmp_path / "reads.jsonl", tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, str(READER), str(target), str(out), str(stop)])
    try:
        assert _cli_run(dataset, wh, "run-1") == 0
        assert _cli_run(dataset, wh, "run-2") == 0  # trains and publishes while the reader polls
    finally:
        stop.touch()
        assert reader.wait(timeout=60) == 0
    reads = [json.loads(line) for line in out.read_text().splitlines()]
    errors = [r["error"] for r in reads if "error" in r]
    answers = [r["answer"] for r in reads if "answer" in r]
    assert errors == []
    assert max(r["seconds"] for r in reads) < 1.0
    # every answer is one whole run: one run id, every user, N rows each; never empty, never a mix
    assert answers and all(a in ([["run-1", N_USERS * N, N_USERS]], [["run-2", N_USERS * N, N_USERS]]) for a in answers)
    seen = [a[0][0] for a in answers]
    assert "run-1" in seen and seen[-1] == "run-2"
    assert seen == sorted(seen)  # once the new run is served, the old one never comes back
    # the reader was polling through the second run, not only before and after it
    assert seen.count("run-1") > 5


def test_a_long_lived_reader_follows_each_new_serving_file_and_keeps_one_run_per_query(con, tmp_path):
    _publish(con, tmp_path, "run-a", 3)
    target = serving_file.export(con, tmp_path / "serving.duckdb")
    current = "SELECT DISTINCT run_id FROM current_recommendations"
    with serving_file.Reader(target) as reader:
        assert reader.query(current) == [("run-a",)]
        first = reader.connection()
        assert reader.connection() is first  # no reopen while the file is unchanged
        _publish(con, tmp_path, "run-b", 8)
        serving_file.export(con, target)
        assert reader.query(current) == [("run-b",)]
        assert reader.query("SELECT count(*) FROM current_recommendations WHERE user_id = $u", {"u": 1}) == [(5,)]
