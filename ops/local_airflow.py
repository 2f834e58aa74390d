"""A local Airflow (api-server, scheduler, dag-processor, triggerer) for this machine, started and stopped whole.

`airflow standalone` runs every component in one process group. It is
started in a new session, so stopping it signals the whole group: SIGINT
first (what standalone handles), then SIGTERM and SIGKILL for anything left,
and no worker outlives it. A guard process stops the group the same way if
whoever started it dies without stopping it (kill -9 of `make backfill` runs
no `finally`): the Airflow would otherwise keep the port, and the next
call would refuse to start. Parallelism is low by default (2 task slots), as
suits a 2-core machine; the LocalExecutor otherwise starts 32 workers.

    python -m ops.local_airflow [--port 8080]     # `make airflow`: runs until Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ops.airflow_command import airflow_executable
from ops.pools import ensure_pools

STARTUP_TIMEOUT_S = 240
STOP_TIMEOUT_S = 10  # the scheduler often ignores SIGINT while its executor has workers; SIGTERM follows


class AirflowStartError(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalAirflow:
    """A running standalone Airflow: where its UI is, how to log in, where it logs."""

    url: str
    user: str
    password: str | None
    log: Path
    process: subprocess.Popen

    def login_line(self) -> str:
        if self.password is None:
            return "login: see the api-server's log (no generated password file found)"
        return f"login: {self.user} / {self.password}"


def airflow_home() -> Path:
    home = os.environ.get("AIRFLOW_HOME")
    if not home:  # importing or running airflow without it would create ~/airflow
        raise AirflowStartError("AIRFLOW_HOME is not set; run this through make (make airflow / make backfill)")
    return Path(home)


def environment(port: int, parallelism: int) -> dict[str, str]:
    """The components' settings: low parallelism, the api-server's port, tasks told where it is."""
    return {
        **os.environ,
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        # the scheduler's and triggerer's log servers (8793, 8794 by default) next to the api-server,
        # so two local Airflows on different ports never collide
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port + 1),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(port + 2),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # standalone starts its components as `airflow …` from PATH: this environment's first
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def dags_test_environment(var: Path) -> dict[str, str]:
    """For `airflow dags test` from a bench: the project's Airflow and DAGs, a run folder and
    warehouse of its own under `var` (what the Makefile sets, plus the scratch paths)."""
    from pipeline.core.config import PROJECT_ROOT

    return {
        **os.environ,
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(PROJECT_ROOT / ".airflow")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MOVIELENS_VAR_DIR": str(var),
        "MOVIELENS_WAREHOUSE": str(var / "warehouse.duckdb"),
    }


def healthy(url: str) -> bool:
    """The api-server answers and reports a healthy scheduler (what runs our tasks)."""
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as response:
            health = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return health.get("scheduler", {}).get("status") == "healthy"


def _password(home: Path, user: str) -> str | None:
    """The password standalone generated for `user` (Airflow's simple auth manager)."""
    for name in ("simple_auth_manager_passwords.json.generated", "simple_auth_manager_passwords.json"):
        path = home / name
        if path.exists():
            with contextlib.suppress(ValueError):
                return json.loads(path.read_text()).get(user)
    return None


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def stop(process: subprocess.Popen) -> None:
    """Stop the whole process group: SIGINT, then SIGTERM, then SIGKILL, each given time to work."""
    stop_group(process.pid, process.poll)
    process.wait(timeout=5)


def stop_group(group: int, reap=lambda: None) -> None:
    """SIGINT, SIGTERM, SIGKILL to process group `group` until nothing is left in it."""
    for sig, wait_s in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            reap()
            try:
                os.killpg(group, 0)  # anything left in the group?
            except ProcessLookupError:
                return
            time.sleep(0.5)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a killed process its parent has not reaped yet is a zombie: not alive)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return "\nState:\tZ" not in status


def guard(owner: int, group: int, poll_s: float = 1.0) -> None:
    """Until process group `group` is gone: if `owner` dies first, stop the group."""
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        if not _alive(owner):
            print(f"process {owner}, which started Airflow (group {group}), is gone: stopping it", flush=True)
            stop_group(group)
            return
        time.sleep(poll_s)


def _start_guard(group: int, log: Path) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ops.local_airflow", "--guard", str(os.getpid()), str(group)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outside the group it stops, and outliving a killed owner
        )


@contextlib.contextmanager
def running(port: int = 8080, parallelism: int = 2) -> Iterator[LocalAirflow]:
    """Start standalone Airflow, wait until its scheduler is healthy, stop everything on exit."""
    home = airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "standalone.log"
    url = f"http://localhost:{port}"
    if healthy(url):
        raise AirflowStartError(f"an Airflow already answers on {url}; stop it or choose another port (PORT=…)")
    ensure_pools(airflow_executable(), environment(port, parallelism))
    with open(log, "w") as out:
        process = subprocess.Popen(
            [airflow_executable(), "standalone"],
            env=environment(port, parallelism),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, signalled whole by stop()
        )
    guard_process = _start_guard(process.pid, home / "guard.log")
    # a SIGTERM (kill, timeout, CI) unwinds like Ctrl-C, so the finally below still stops the group
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        print(f"starting Airflow on {url} (log: {log}) ...", flush=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not healthy(url):
            if process.poll() is not None:
                raise AirflowStartError(f"airflow standalone exited with {process.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise AirflowStartError(f"Airflow not healthy after {STARTUP_TIMEOUT_S}s:\n{tail(log)}")
            time.sleep(2)
        yield LocalAirflow(url, "admin", _password(home, "admin"), log, process)
    finally:
        print("stopping Airflow ...", flush=True)
        stop(process)
        guard_process.terminate()  # nothing left to guard: gone before the caller goes on
        guard_process.wait(timeout=10)
        signal.signal(signal.SIGTERM, previous)


def interrupt(signum, frame) -> None:
    """A SIGTERM handler that unwinds like Ctrl-C, so `finally` blocks still stop what was started."""
    raise KeyboardInterrupt


def catch_ctrl_c() -> None:
    """Raise KeyboardInterrupt on SIGINT even where it was ignored: a shell starts a background job
    with SIGINT ignored, and Python then never raises it, so kill -INT would leave processes behind."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> None:
    catch_ctrl_c()
    parser = argparse.ArgumentParser(description="Run a local Airflow until Ctrl-C.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    parser.add_argument("--parallelism", type=int, default=2, help="task slots (2 suits a 2-core machine)")
    parser.add_argument("--guard", nargs=2, type=int, metavar=("OWNER", "GROUP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.guard:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for Airflow is the owner's to handle
        guard(*args.guard)
        return
    try:
        with running(args.port, args.parallelism) as airflow:
            print(f"Airflow is up: {airflow.url}  ({airflow.login_line()})", flush=True)
            print("Ctrl-C stops every Airflow process.", flush=True)
            while airflow.process.poll() is None:
                time.sleep(1)
            print(f"airflow standalone exited by itself ({airflow.process.returncode}); see {airflow.log}")
    except KeyboardInterrupt:
        pass
    except AirflowStartError as exc:
        sys.exit(str(exc))
    print("Airflow stopped.")


if __name__ == "__main__":
    main()
