"""`make airflow` for real: it prints where the UI is and how to log in, and Ctrl-C leaves no process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.airflow_command import airflow_executable
from tests.conftest import REPO
from tests.support.ports import free_port, is_free
from tests.support.procs import processes_with_env


def _airflow_processes(home: Path) -> list[str]:
    """Processes whose environment names this AIRFLOW_HOME (standalone and every component it started)."""
    return processes_with_env("AIRFLOW_HOME", str(home))


@pytest.mark.integration
def test_make_airflow_prints_url_and_login_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags")}
    subprocess.run([airflow_executable(), "db", "migrate"], env=env, check=True)
    port = free_port()
    command = [sys.executable, "-m", "ops.local_airflow", "--port", str(port)]
    # its own process group, as a terminal's foreground job is: Ctrl-C signals the group
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if "Airflow is up" in line or not line:
            break
    up = lines[-1]
    assert f"http://localhost:{port}" in up and "login: admin / " in up, lines
    assert not is_free(port)  # the UI answers
    assert len(_airflow_processes(home)) >= 4  # standalone, api-server, scheduler, dag-processor, ...
    os.killpg(process.pid, signal.SIGINT)
    rest = process.communicate(timeout=120)[0]
    assert process.returncode == 0 and "Airflow stopped." in rest
    assert _airflow_processes(home) == [] and is_free(port)
