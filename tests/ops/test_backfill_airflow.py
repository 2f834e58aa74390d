"""`make backfill` for real: a standalone Airflow, the scheduler replaying months in order, and a resume."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ops.local_airflow import airflow_executable
from tests.conftest import REPO
from tests.ops.ports import free_port, is_free
from tests.synthetic import make, write_ml1m

# synthetic ratings run from 2001-09-09 to 2002-01-02: two monthly runs see growing history


def _backfill(env: dict, port: int, start: str, end: str, conf: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ops.backfill", "--from", start, "--to", end, "--every", "month"]
    command += ["--port", str(port), "--conf", json.dumps(conf)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.integration
def test_backfill_replays_months_in_order_and_a_rerun_only_runs_the_new_dates(tmp_path: Path) -> None:
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

    first = _backfill(env, port, "2001-11-01", "2001-11-01", conf)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "2001-11-01  success" in first.stdout
    # the operator asks again for a longer range: November is done and is not redone
    second = _backfill(env, port, "2001-11-01", "2001-12-01", conf)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "2001-12-01  success" in second.stdout and "2001-11-01  success" not in second.stdout
    assert "2001-11-01  not run again (already exists)" in second.stdout

    with sqlite3.connect(tmp_path / "airflow" / "airflow.db") as meta:
        runs = meta.execute(
            "SELECT substr(logical_date, 1, 10), run_type, state FROM dag_run WHERE dag_id = 'movielens_replay_month'"
        ).fetchall()
    assert sorted(runs) == [("2001-11-01", "backfill", "success"), ("2001-12-01", "backfill", "success")]
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        published = con.execute("SELECT strftime(logical_date, '%Y-%m-%d') FROM published_runs ORDER BY 1").fetchall()
        assert published == [("2001-11-01",), ("2001-12-01",)]
        # each run saw only the ratings made before its logical date
        december = 1_007_164_800  # 2001-12-01T00:00:00Z
        assert con.execute('SELECT max("timestamp") FROM ratings').fetchall()[0][0] < december
        # and December's run scored November's lists on what was rated in between
        forward = con.execute("SELECT active_users FROM forward_metrics").fetchall()
        assert len(forward) == 1 and forward[0][0] > 0
    # Airflow stopped whole each time: nothing still listens on its port
    assert is_free(port)
