"""The `training` pool: how many training and scoring tasks may run at once on this machine;
and the `warehouse` pool: one task at a time opens the DuckDB warehouse, whichever DAG it is in.

Airflow's own means of keeping heavy tasks from fighting over the cores. Its
slots are pipeline.core.config.training_slots() (one per 4 cores, at least one;
MOVIELENS_TRAINING_SLOTS overrides), and each task in it uses cores / slots
threads. Set before the scheduler starts (ops.local_airflow) and by `make
setup`, so the pool always matches what the tasks assume.

    python -m ops.pools      # create or update the pool in Airflow's metadata DB
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from ops.airflow_command import airflow_executable
from pipeline.core.config import TRAINING_POOL, WAREHOUSE_POOL, threads_per_task, training_slots


def description(environ: Mapping[str, str] | None = None) -> str:
    return (
        f"train_model, fit_champion, score_shard: {training_slots(environ)} at once, "
        f"{threads_per_task(environ)} threads each on {os.cpu_count()} cores (MOVIELENS_TRAINING_SLOTS)"
    )


WAREHOUSE_DESCRIPTION = "tasks that open the DuckDB warehouse (one writer at a time, across the DAGs)"


def ensure_pools(airflow: str, env: dict[str, str] | None = None) -> int:
    """Create or resize the training pool to training_slots() (as `env`, the environment Airflow
    and its tasks get, sets it), and the one-slot warehouse pool; return the training pool's slots."""
    slots = training_slots(env)
    pools = ((TRAINING_POOL, slots, description(env)), (WAREHOUSE_POOL, 1, WAREHOUSE_DESCRIPTION))
    for pool, size, text in pools:
        done = subprocess.run([airflow, "pools", "set", pool, str(size), text], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"airflow pools set {pool} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return slots


def main() -> None:
    slots = ensure_pools(airflow_executable())
    print(f"pool {TRAINING_POOL}: {slots} slot(s), {threads_per_task()} thread(s) per task", file=sys.stderr)


if __name__ == "__main__":
    main()
