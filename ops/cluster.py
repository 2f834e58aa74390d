"""A distributed Airflow on this machine: Postgres, Redis, and Celery workers, started and stopped whole.

What a multi-machine deployment runs, each part its own process (group):
Postgres (Debian's package) holds the metadata DB, Redis (Debian's package)
is the Celery broker, and Airflow runs its api-server, scheduler,
dag-processor and N Celery workers. Each worker has its own Celery hostname,
its own working directory and reports its own host name to Airflow (what
`task_instance.hostname` records), as separate machines would. Every process
shares one run folder, one warehouse path and one log folder, the way an NFS
or EFS mount is shared between machines. Postgres and Redis keep their data
under the cluster folder (git-ignored `var/cluster` by default).

    python -m ops.cluster [--workers 2] [--port 8080]   # `make cluster`: runs until Ctrl-C

Ctrl-C (or SIGTERM) stops the workers, Airflow's services, Redis and
Postgres, each by its process group, and nothing is left running.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ops.airflow_command import airflow_executable
from ops.local_airflow import AirflowStartError, catch_ctrl_c, healthy, interrupt, stop, tail
from ops.pools import ensure_pools
from pipeline.core.config import PROJECT_ROOT, var_dir

STARTUP_TIMEOUT_S = 240
WORKER_HOSTNAME_ENV = "MOVIELENS_WORKER_HOSTNAME"
CLUSTER_ENV = "MOVIELENS_CLUSTER"  # every process of a cluster carries its folder: what to look for if one leaks


class ClusterError(AirflowStartError):
    """A part of the cluster is missing or did not come up."""


def worker_hostname() -> str:
    """Airflow's `core.hostname_callable` in the cluster: a worker's own name (several share this
    machine, so the machine's name would not tell them apart), the machine's elsewhere."""
    return os.environ.get(WORKER_HOSTNAME_ENV) or socket.getfqdn()


def postgres_bin(program: str) -> str:
    """Debian installs Postgres's server programs under /usr/lib/postgresql/<version>/bin, off PATH."""
    found = shutil.which(program)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise ClusterError(f"{program} not found: install Postgres (apt-get install postgresql)")
    return candidates[-1]


def redis_bin() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ClusterError("redis-server not found: install Redis (apt-get install redis-server)")
    return found


def missing_services() -> str | None:
    """Why this machine cannot run the cluster (a program not installed), or None when it can."""
    try:
        postgres_bin("initdb"), postgres_bin("postgres"), redis_bin()
    except ClusterError as exc:
        return str(exc)
    return None


@dataclass
class Ports:
    api: int = 8080
    postgres: int = 5433  # beside a system Postgres on 5432
    redis: int = 6380  # beside a system Redis on 6379

    def log_server(self, worker: int) -> int:
        """Each worker serves its task logs on a port of its own (8793 for all would collide here)."""
        return self.api + 10 + worker


@dataclass
class Cluster:
    """A running cluster: where its UI is, its processes by name, and the environment tasks get."""

    folder: Path
    ports: Ports
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.ports.api}"

    def log(self, name: str) -> Path:
        return self.folder / "logs" / f"{name}.log"

    def worker_names(self) -> list[str]:
        return [name for name in self.processes if name.startswith("worker-")]

    def airflow(self, *args: str, timeout_s: float = 120) -> str:
        """An `airflow` CLI command against this cluster (its metadata DB); its stdout."""
        done = subprocess.run(
            [airflow_executable(), *args], env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        if done.returncode != 0:
            raise ClusterError(f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Rows of a query on the metadata DB (task_instance.hostname says which worker ran a task)."""
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.ports.postgres, user="airflow", dbname="airflow")
        try:
            with con, con.cursor() as cur:  # `with con` commits; it does not close
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            con.close()

    def run_state(self, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE run_id = %s", run_id)
        return rows[0][0] if rows else None


def _as_postgres_user() -> dict[str, object]:
    """Postgres refuses to run as root; under root (CI, containers) it runs as Debian's `postgres`."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def _start(cluster: Cluster, name: str, argv: list[str], env: dict[str, str], cwd: Path, **kwargs) -> None:
    out = cluster.log(name).open("w")
    cluster.processes[name] = subprocess.Popen(
        argv,
        env=env | {CLUSTER_ENV: str(cluster.folder)},
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped whole
        **kwargs,
    )
    out.close()


def _wait(cluster: Cluster, name: str, ready, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not ready():
        process = cluster.processes[name]
        if process.poll() is not None:
            raise ClusterError(f"{name} exited with {process.returncode}:\n{tail(cluster.log(name))}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} not ready after {STARTUP_TIMEOUT_S}s:\n{tail(cluster.log(name))}")
        time.sleep(0.5)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _postgres(cluster: Cluster, port: int) -> str:
    """Start Postgres on `port` (initialising its data folder the first time); its SQLAlchemy URL."""
    data = cluster.folder / "postgres"
    as_user = _as_postgres_user()
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if as_user:
            shutil.chown(data, "postgres", "postgres")
            closed = [p for p in data.parents if not os.stat(p).st_mode & 0o001]
            if closed:  # e.g. pytest's and mkdtemp's folders are 0700
                raise ClusterError(
                    f"Postgres runs as the user postgres, which cannot reach {data}: "
                    f"{closed[0]} is not searchable by others (chmod o+x, or choose another --folder)"
                )
        done = subprocess.run(
            [postgres_bin("initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8"],
            capture_output=True,
            text=True,
            **as_user,
        )
        if done.returncode != 0:
            raise ClusterError(f"initdb failed ({done.returncode}):\n{done.stderr[-2000:]}")
    argv = [postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(data)]
    argv += ["-c", "listen_addresses=127.0.0.1"]
    _start(cluster, "postgres", argv, dict(os.environ), data, **as_user)
    _wait(cluster, "postgres", lambda: _accepts(port), f"Postgres on port {port}")
    import psycopg2

    deadline = time.monotonic() + 30
    while True:  # the port opens before the server takes connections
        try:
            con = psycopg2.connect(host="127.0.0.1", port=port, user="airflow", dbname="postgres")
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = 'airflow'")
        if cur.fetchone() is None:
            cur.execute("CREATE DATABASE airflow")
    con.close()
    return f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"


def _redis(cluster: Cluster, port: int) -> str:
    data = cluster.folder / "redis"
    data.mkdir(parents=True, exist_ok=True)
    argv = [redis_bin(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    _start(cluster, "redis", argv, dict(os.environ), data)
    _wait(cluster, "redis", lambda: _accepts(port), f"Redis on port {port}")
    return f"redis://127.0.0.1:{port}/0"


def _secret(folder: Path) -> str:
    """One JWT secret for every component: the api-server signs the tokens the workers' tasks use."""
    path = folder / "jwt_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def airflow_environment(
    folder: Path, ports: Ports, database: str, broker: str, workers: int, heartbeat_timeout_s: int
) -> dict[str, str]:
    """What every Airflow process of the cluster shares (a worker adds its own name and log port)."""
    home = folder / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__CORE__PARALLELISM": str(2 * workers + 2),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(2 * workers + 2),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "ops.cluster.worker_hostname",
        "AIRFLOW__API__PORT": str(ports.api),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{ports.api}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{ports.api}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(folder),
        # a local cluster: no login page (the api-server still checks its tokens)
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # a lost worker's task is failed (then retried) once its heartbeat is this old
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(heartbeat_timeout_s),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(folder / "task-logs"),  # shared, as a mount would be
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports.api + 2),
        # each worker machine has its own cores: one training slot per worker, one thread each here
        "MOVIELENS_TRAINING_SLOTS": os.environ.get("MOVIELENS_TRAINING_SLOTS", str(workers)),
        "MOVIELENS_VAR_DIR": str(var_dir()),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }


def _migrate(env: dict[str, str], cluster: Cluster) -> None:
    done = subprocess.run([airflow_executable(), "db", "migrate"], env=env, capture_output=True, text=True)
    cluster.log("db-migrate").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise ClusterError(f"airflow db migrate failed ({done.returncode}):\n{done.stderr[-3000:]}")


def start_worker(cluster: Cluster, index: int, ports: Ports) -> None:
    """Worker `index` (1-based): its own Celery hostname, working directory, log port and host name."""
    name = f"worker-{index}"
    cwd = cluster.folder / "workers" / name
    cwd.mkdir(parents=True, exist_ok=True)
    env = cluster.env | {
        WORKER_HOSTNAME_ENV: name,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports.log_server(index)),
    }
    argv = [airflow_executable(), "celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", "1"]
    _start(cluster, name, argv, env, cwd)


@contextlib.contextmanager
def running(
    workers: int = 2,
    ports: Ports | None = None,
    folder: Path | None = None,
    heartbeat_timeout_s: int = 60,
) -> Iterator[Cluster]:
    """Start Postgres, Redis, the api-server, scheduler, dag-processor and `workers` Celery
    workers; wait until the scheduler is healthy and every worker answers; stop all on exit."""
    ports = ports or Ports()
    folder = (folder or var_dir() / "cluster").resolve()
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    reason = missing_services()
    if reason:
        raise ClusterError(reason)
    cluster = Cluster(folder, ports, {})
    if healthy(cluster.url):
        raise ClusterError(f"an Airflow already answers on {cluster.url}; stop it or choose another port (PORT=…)")
    previous = signal.signal(signal.SIGTERM, interrupt)  # a SIGTERM unwinds like Ctrl-C: all stopped
    try:
        print(f"starting Postgres on {ports.postgres} and Redis on {ports.redis} (logs: {folder / 'logs'}) ...")
        database = _postgres(cluster, ports.postgres)
        broker = _redis(cluster, ports.redis)
        cluster.env = airflow_environment(folder, ports, database, broker, workers, heartbeat_timeout_s)
        print("migrating Airflow's metadata DB in Postgres ...", flush=True)
        _migrate(cluster.env, cluster)
        ensure_pools(airflow_executable(), cluster.env)
        cwd = folder / "airflow"
        _start(cluster, "api-server", [airflow_executable(), "api-server", "--port", str(ports.api)], cluster.env, cwd)
        _start(cluster, "scheduler", [airflow_executable(), "scheduler"], cluster.env, cwd)
        _start(cluster, "dag-processor", [airflow_executable(), "dag-processor"], cluster.env, cwd)
        for index in range(1, workers + 1):
            start_worker(cluster, index, ports)
        print(f"starting the api-server, scheduler, dag-processor and {workers} worker(s) ...", flush=True)
        _wait(cluster, "scheduler", lambda: healthy(cluster.url), f"Airflow's scheduler behind {cluster.url}")
        for name in cluster.worker_names():
            _wait(cluster, name, lambda n=name: "ready." in cluster.log(n).read_text(errors="replace"), name)
        yield cluster
    finally:
        print("stopping the cluster ...", flush=True)
        order = [*cluster.worker_names(), "scheduler", "dag-processor", "api-server", "redis", "postgres"]
        for name in order:
            if name in cluster.processes:
                stop(cluster.processes[name])
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    catch_ctrl_c()
    parser = argparse.ArgumentParser(description="Run a local CeleryExecutor Airflow until Ctrl-C.")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", 2)))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8080)))
    parser.add_argument("--postgres-port", type=int, default=Ports.postgres)
    parser.add_argument("--redis-port", type=int, default=Ports.redis)
    parser.add_argument("--folder", type=Path, default=None, help="default: var/cluster")
    args = parser.parse_args()
    ports = Ports(api=args.port, postgres=args.postgres_port, redis=args.redis_port)
    try:
        with running(args.workers, ports, args.folder) as cluster:
            print(f"Airflow (CeleryExecutor, {args.workers} workers) is up: {cluster.url}", flush=True)
            print("Ctrl-C stops every process of the cluster.", flush=True)
            while all(p.poll() is None for p in cluster.processes.values()):
                time.sleep(1)
            gone = [name for name, p in cluster.processes.items() if p.poll() is not None]
            print(f"{', '.join(gone)} exited by itself; see {cluster.folder / 'logs'}")
    except KeyboardInterrupt:
        pass
    except AirflowStartError as exc:
        sys.exit(str(exc))
    print("cluster stopped.")


if __name__ == "__main__":
    main()
