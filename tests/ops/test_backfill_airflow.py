"""`make backfill` for real: a standalone Airflow, the scheduler replaying months in order, killed with
SIGKILL halfway, and resumed."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ops.airflow_command import airflow_executable
from tests.conftest import REPO
from tests.support.ports import free_port, is_free
from tests.support.procs import processes_with_env
from tests.support.synthetic import make, write_ml1m

# synthetic ratings run from 2001-09-09 to 2002-01-02: two monthly runs see growing history


def _command(port: int, start: str, end: str, conf: dict) -> list[str]:
    command = [sys.executable, "-m", "ops.backfill", "--from", start, "--to", end, "--every", "month"]
    return [*command, "--port", str(port), "--conf", json.dumps(conf)]


def _december_running(meta_db: Path) -> bool:
    """December's replay run has started: November's run, and its publish, are recorded as done."""
    try:
        with sqlite3.connect(f"file:{meta_db}?mode=ro", uri=True, timeout=1) as meta:
            rows = meta.execute(
                "SELECT substr(logical_date, 1, 10), state FROM dag_run WHERE dag_id = 'movielens_replay_month'"
            ).fetchall()
    except sqlite3.Error:  # not migrated yet, or locked by the scheduler for a moment
        return False
    return ("2001-11-01", "success") in rows and ("2001-12-01", "running") in rows


def _november_end(meta_db: Path) -> str:
    with sqlite3.connect(meta_db, timeout=10) as meta:
        return meta.execute(
            "SELECT end_date FROM dag_run WHERE dag_id = 'movielens_replay_month' AND logical_date LIKE '2001-11-01%'"
        ).fetchall()[0][0]


@pytest.mark.integration
def test_a_backfill_killed_mid_replay_resumes_where_it_stopped_and_publishes_each_date_once(tmp_path: Path) -> None:
    dataset = write_ml1m(tmp_path / "ml1m", make(n_users=40, n_movies=25, per_user=12, seed=3))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MOVIELENS_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "MOVIELENS_VAR_DIR": str(tmp_path / "var"),
    }
    subprocess.run([airflow_executable(), "db", "migrate"], env=env, check=True, capture_output=True)
    conf = {"dataset": str(dataset), "models": ["most_popular"], "top_n": 5, "device": "cpu"}
    port = free_port()

    # kill -9 of the operator's `make backfill` once November is done and December is under way
    first = subprocess.Popen(
        _command(port, "2001-11-01", "2001-12-01", conf),
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 900
    while not _december_running(tmp_path / "airflow" / "airflow.db"):
        assert first.poll() is None, f"the backfill ended before it could be killed:\n{first.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "December's run never started"
        time.sleep(1)
    first.kill()
    first.communicate()
    november_ended = _november_end(tmp_path / "airflow" / "airflow.db")
    # no `finally` ran: the guard stops the orphaned Airflow, so the next call can start its own
    deadline = time.monotonic() + 120
    while not is_free(port) or processes_with_env("AIRFLOW_HOME", env["AIRFLOW_HOME"]):
        assert time.monotonic() < deadline, "the killed backfill's Airflow is still running"
        time.sleep(1)

    # the operator asks again: the unfinished backfill resumes; November is done and is not redone
    second = subprocess.run(
        _command(port, "2001-11-01", "2001-12-01", conf), cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming unfinished backfill" in second.stdout
    assert "2001-12-01  success" in second.stdout
    assert "2001-11-01  not run again (already exists)" in second.stdout
    assert _november_end(tmp_path / "airflow" / "airflow.db") == november_ended  # not run again

    with sqlite3.connect(tmp_path / "airflow" / "airflow.db") as meta:
        runs = meta.execute(
            "SELECT substr(logical_date, 1, 10), run_type, state FROM dag_run WHERE dag_id = 'movielens_replay_month'"
        ).fetchall()
    assert sorted(runs) == [("2001-11-01", "backfill", "success"), ("2001-12-01", "backfill", "success")]
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        published = con.execute("SELECT strftime(logical_date, '%Y-%m-%d') FROM published_runs ORDER BY 1").fetchall()
        assert published == [("2001-11-01",), ("2001-12-01",)]  # each date once, killed or not
        dupes = con.execute("SELECT count(*) - count(DISTINCT (run_id, user_id, rank)) FROM recommendations")
        assert dupes.fetchall()[0][0] == 0
        # each run saw only the ratings made before its logical date
        december = 1_007_164_800  # 2001-12-01T00:00:00Z
        assert con.execute('SELECT max("timestamp") FROM ratings').fetchall()[0][0] < december
        # and December's run scored November's lists on what was rated in between, once
        forward = con.execute("SELECT active_users FROM forward_metrics").fetchall()
        assert len(forward) == 1 and forward[0][0] > 0
    # Airflow stopped whole each time: nothing still listens on its port
    assert is_free(port)
