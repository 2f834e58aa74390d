"""The local Airflow's lifecycle helpers: stopping leaves no process behind."""

import os
import signal
import subprocess
import sys

import pytest

from ops.local_airflow import AirflowStartError, airflow_home, environment, stop

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
