"""The local Airflow's lifecycle helpers: stopping leaves no process behind."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ops.local_airflow import AirflowStartError, airflow_home, environment, stop
from tests.conftest import REPO

# a parent that ignores SIGINT (as Airflow's scheduler often does) with two children of its own
STUBBORN = "import signal, subprocess, time; signal.signal(signal.SIGINT, signal.SIG_IGN); " + (
    "[subprocess.Popen(['sleep', '300']) for _ in range(2)]; print('ready', flush=True); time.sleep(300)"
)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_ends_the_whole_process_group_even_when_sigint_is_ignored(monkeypatch) -> None:
    monkeypatch.setattr("ops.local_airflow.STOP_TIMEOUT_S", 1)
    process = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True, stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"ready\n"  # SIGINT is ignored from here on (a busy machine starts slowly)
    assert _group_alive(process.pid)
    stop(process)
    assert not _group_alive(process.pid)
    assert process.returncode == -signal.SIGTERM


def test_the_guard_stops_airflow_when_its_owner_is_killed_with_sigkill(tmp_path) -> None:
    """kill -9 of `make backfill` runs no `finally`: the guard stops the group instead, so the port is
    free for the next call."""
    group = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True, stdout=subprocess.PIPE)
    assert group.stdout.readline() == b"ready\n"
    owner = subprocess.Popen(["sleep", "300"])
    guard = subprocess.Popen(
        [sys.executable, "-m", "ops.local_airflow", "--guard", str(owner.pid), str(group.pid)],
        cwd=REPO,
        start_new_session=True,
    )
    time.sleep(2)
    assert _group_alive(group.pid) and guard.poll() is None  # the owner lives: the guard only watches
    owner.kill()  # and stays unreaped, a zombie, as a killed process is until its parent waits
    assert guard.wait(timeout=60) == 0
    group.wait(timeout=5)
    assert not _group_alive(group.pid)
    owner.wait()


def test_the_guard_leaves_when_airflow_was_stopped_normally() -> None:
    group = subprocess.Popen(["sleep", "300"], start_new_session=True)
    guard = subprocess.Popen(
        [sys.executable, "-m", "ops.local_airflow", "--guard", str(os.getpid()), str(group.pid)],
        cwd=REPO,
        start_new_session=True,
    )
    stop(group)
    assert guard.wait(timeout=30) == 0


def test_components_get_low_parallelism_and_agree_on_the_api_port() -> None:
    env = environment(port=8123, parallelism=2)
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8123/execution/"
    assert {env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"], env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"]} == {
        "8124",
        "8125",
    }
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)


def test_without_airflow_home_it_refuses_instead_of_creating_home_airflow(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    with pytest.raises(AirflowStartError, match="AIRFLOW_HOME"):
        airflow_home()
