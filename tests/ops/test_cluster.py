"""`make cluster` for real: Postgres, Redis, a CeleryExecutor Airflow with two workers, one of them lost.

One nightly run on ml-100k goes through the cluster. Mapped train_model and
score_shard tasks spread over both workers (their host names are in the
metadata DB); while worker-2 runs a score_shard, its whole process group is
SIGKILLed, as a machine that dies. The scheduler finds the task's heartbeat
gone, fails it, and its retry runs on worker-1; the run succeeds and the
table is published once, whole.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from ops.cluster import CLUSTER_ENV, Cluster, Ports, missing_services, running
from tests.conftest import REPO, SHARED_DATA
from tests.support.ports import free_port, is_free
from tests.support.procs import processes_with_env

pytestmark = pytest.mark.integration

DAG_ID = "movielens_nightly"
MODELS = ["most_popular", "ease", "biased_mf"]
USERS_PER_SHARD = 160  # ml-100k's 943 users: 6 score_shard tasks
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = missing_services()
    if reason:
        pytest.skip(f"no cluster here: {reason}")
    if not (SHARED_DATA / "ml-100k").exists():
        pytest.skip("ml-100k is not in ../shared/data")
    folder = tmp_path_factory.mktemp("cluster")
    settings = {
        "MOVIELENS_VAR_DIR": str(folder / "var"),  # the run folders every worker shares
        "MOVIELENS_WAREHOUSE": str(folder / "warehouse.duckdb"),
        "MOVIELENS_RETRY_DELAY_S": "5",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "MOVIELENS_SCHEDULE": "",  # only the test's run: no scheduled one beside it
        # two shards at a time, so each worker (concurrency 1) takes some: with the one slot of a
        # 2-core machine Celery handed all six to worker-1 once, and worker-2 never ran one to lose
        "MOVIELENS_TRAINING_SLOTS": "2",
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        ports = Ports(api=free_port(), postgres=free_port(), redis=free_port())
        # under the project: Postgres runs as the user postgres, who cannot enter pytest's 0700 folders
        services = REPO / "var" / f"test-cluster-{os.getpid()}"
        with running(2, ports, services, heartbeat_timeout_s=20) as started:
            yield started
    finally:
        shutil.rmtree(REPO / "var" / f"test-cluster-{os.getpid()}", ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_for(what: str, check, timeout_s: float = RUN_TIMEOUT_S, cluster: Cluster | None = None, every_s: float = 2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if cluster is not None:
            dead = [n for n in ("scheduler", "api-server") if cluster.processes[n].poll() is not None]
            assert not dead, f"{dead} exited: {cluster.log(dead[0]).read_text()[-3000:]}"
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")


def _api_get(cluster: Cluster, path: str) -> bytes:
    with urllib.request.urlopen(f"{cluster.url}/api/v2{path}", timeout=30) as response:
        return response.read()


def test_a_nightly_run_spreads_over_two_workers_and_survives_losing_one(cluster: Cluster) -> None:
    _wait_for("the DAG to be parsed", lambda: cluster.query("SELECT 1 FROM dag WHERE dag_id = %s", DAG_ID))
    conf = {
        "dataset": str(SHARED_DATA / "ml-100k"),
        "models": MODELS,
        "top_n": 10,
        "max_epochs": 3,
        "device": "cpu",
        "users_per_shard": USERS_PER_SHARD,
    }
    started = time.monotonic()
    cluster.airflow("dags", "trigger", DAG_ID, "--run-id", "cluster-test", "--conf", json.dumps(conf))

    def victim() -> tuple | None:
        """A score_shard running on worker-2, once worker-2 has finished a mapped task of its own."""
        rows = cluster.query(
            "SELECT task_id, map_index, state, hostname FROM task_instance WHERE run_id = 'cluster-test'"
            " AND task_id IN ('train_model', 'score_shard')",
        )
        ended = cluster.query(
            "SELECT state FROM dag_run WHERE run_id = 'cluster-test' AND state IN ('failed', 'success')"
        )
        assert not ended, f"the run ended ({ended[0][0]}) before worker-2 could be lost: {rows}"
        done_on_2 = any(r[2] == "success" and r[3] == "worker-2" for r in rows)
        running_on_2 = [r for r in rows if r[0] == "score_shard" and r[2] == "running" and r[3] == "worker-2"]
        return running_on_2[0] if done_on_2 and running_on_2 else None

    # a shard of ml-100k runs for seconds: look often
    _, killed_index, _, _ = _wait_for("a score_shard running on worker-2", victim, cluster=cluster, every_s=0.3)
    killed_at = time.monotonic()
    os.killpg(cluster.processes["worker-2"].pid, signal.SIGKILL)  # the worker and its tasks, as a lost machine

    def finished() -> str | None:
        state = cluster.run_state("cluster-test")
        return state if state in ("success", "failed") else None

    state = _wait_for("the run to finish", finished, cluster=cluster)
    recovered_s = time.monotonic() - killed_at
    print(
        f"run finished ({state}) {time.monotonic() - started:.0f}s after the trigger, {recovered_s:.0f}s after the kill"
    )
    assert state == "success", cluster.query(
        "SELECT task_id, map_index, state FROM task_instance WHERE run_id = %s", "cluster-test"
    )

    mapped = cluster.query(
        "SELECT task_id, map_index, state, hostname, try_number FROM task_instance"
        " WHERE run_id = 'cluster-test' AND task_id IN ('train_model', 'score_shard')",
    )
    assert len([r for r in mapped if r[0] == "train_model"]) == len(MODELS)
    assert len([r for r in mapped if r[0] == "score_shard"]) == -(-943 // USERS_PER_SHARD)
    assert all(r[2] == "success" for r in mapped), mapped
    # both workers ran mapped tasks: worker-2 before it was lost, worker-1 throughout
    tries = cluster.query(
        "SELECT task_id, map_index, hostname, state FROM task_instance_history WHERE run_id = 'cluster-test'"
        " UNION ALL SELECT task_id, map_index, hostname, state FROM task_instance WHERE run_id = 'cluster-test'",
    )
    hosts = {r[2] for r in tries if r[0] in ("train_model", "score_shard")}
    assert {"worker-1", "worker-2"} <= hosts
    # the lost task failed on worker-2 and its retry ran on worker-1
    retried = next(r for r in mapped if r[0] == "score_shard" and r[1] == killed_index)
    assert retried[3] == "worker-1" and retried[4] >= 2
    assert ("score_shard", killed_index, "worker-2") in {(r[0], r[1], r[2]) for r in tries if r[3] != "success"}

    # published once, whole: every user has top_n rows, none of them a movie the user rated
    with duckdb.connect(os.environ["MOVIELENS_WAREHOUSE"], read_only=True) as con:
        runs = con.execute("SELECT run_id FROM published_runs").fetchall()
        assert len(runs) == 1
        per_user = con.execute(
            "SELECT count(DISTINCT user_id), min(n), max(n) FROM"
            " (SELECT user_id, count(*) AS n FROM current_recommendations GROUP BY user_id)"
        ).fetchall()[0]
        assert per_user == (943, 10, 10)
        seen = con.execute(
            "SELECT count(*) FROM current_recommendations r JOIN ratings t USING (user_id, movie_id)"
        ).fetchall()[0][0]
        assert seen == 0
        duplicates = con.execute(
            "SELECT count(*) FROM (SELECT user_id, movie_id FROM current_recommendations"
            " GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
        assert duplicates == 0

    # a task's log, read through the api-server as the UI does
    log = _api_get(
        cluster,
        f"/dags/{DAG_ID}/dagRuns/cluster-test/taskInstances/score_shard/logs/{retried[4]}"
        f"?map_index={killed_index}&full_content=true",
    )
    assert b"top-10 for" in log


def _cluster_processes(folder: Path) -> list[str]:
    """Processes started for the cluster in `folder` (each carries it in its environment)."""
    return processes_with_env(CLUSTER_ENV, str(folder))


def test_make_cluster_comes_up_with_its_workers_and_ctrl_c_leaves_no_process() -> None:
    reason = missing_services()
    if reason:
        pytest.skip(f"no cluster here: {reason}")
    folder = REPO / "var" / f"test-cluster-ctrl-c-{os.getpid()}"
    port, postgres, redis = free_port(), free_port(), free_port()
    command = [sys.executable, "-m", "ops.cluster", "--workers", "2", "--folder", str(folder), "--port", str(port)]
    command += ["--postgres-port", str(postgres), "--redis-port", str(redis)]
    # its own process group, as a terminal's foreground job is: Ctrl-C signals the group
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = []
        while True:
            line = process.stdout.readline()
            lines.append(line)
            if "is up" in line or not line:
                break
        assert f"http://localhost:{port}" in lines[-1], lines
        # api-server, scheduler, dag-processor, two workers and their children (Postgres and Redis
        # rewrite their process titles over their environment: their ports say they run)
        assert len(_cluster_processes(folder)) >= 5
        assert not is_free(port) and not is_free(postgres) and not is_free(redis)
        os.killpg(process.pid, signal.SIGINT)
        rest = process.communicate(timeout=180)[0]
        assert process.returncode == 0 and "cluster stopped." in rest
        assert _cluster_processes(folder) == []
        assert is_free(port) and is_free(postgres) and is_free(redis)
    finally:
        if process.poll() is None:  # a failed assertion above: still stop the cluster whole
            os.killpg(process.pid, signal.SIGINT)
            process.communicate(timeout=180)
        shutil.rmtree(folder, ignore_errors=True)
