"""The `training` pool: how many training and scoring tasks may run at once on this machine.

Airflow's own means of keeping heavy tasks from fighting over the cores. Its
slots are pipeline.config.training_slots() (one per 4 cores, at least one;
MOVIELENS_TRAINING_SLOTS overrides), and each task in it uses cores / slots
threads. Set before the scheduler starts (ops.local_airflow) and by `make
setup`, so the pool always matches what the tasks assume.

    python -m ops.pools      # create or update the pool in Airflow's metadata DB
"""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline.config import TRAINING_POOL, threads_per_task, training_slots


def description() -> str:
    return (
        f"train_model, fit_champion, score_shard: {training_slots()} at once, "
        f"{threads_per_task()} threads each on {os.cpu_count()} cores (MOVIELENS_TRAINING_SLOTS)"
    )


def ensure_training_pool(airflow: str, env: dict[str, str] | None = None) -> int:
    """Create or resize the pool to training_slots(); return its slots."""
    slots = training_slots()
    done = subprocess.run(
        [airflow, "pools", "set", TRAINING_POOL, str(slots), description()],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"airflow pools set {TRAINING_POOL} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return slots


def main() -> None:
    from ops.local_airflow import airflow_executable

    slots = ensure_training_pool(airflow_executable())
    print(f"pool {TRAINING_POOL}: {slots} slot(s), {threads_per_task()} thread(s) per task", file=sys.stderr)


if __name__ == "__main__":
    main()
