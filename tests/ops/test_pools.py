"""The pools the DAGs' tasks need exist in a fresh Airflow with the sizes the tasks assume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.pools import ensure_pools


@pytest.mark.integration
def test_pools_are_created_with_one_training_slot_per_four_cores_and_one_warehouse_slot(tmp_path: Path) -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "MOVIELENS_TRAINING_SLOTS": "3"}
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    assert ensure_pools(airflow, env) == 3
    env["MOVIELENS_TRAINING_SLOTS"] = "2"
    assert ensure_pools(airflow, env) == 2  # run again: resized, not duplicated
    listed = subprocess.run(
        [airflow, "pools", "list", "--output", "json"], env=env, check=True, capture_output=True, text=True
    )
    slots = {p["pool"]: int(p["slots"]) for p in json.loads(listed.stdout)}
    assert slots["training"] == 2 and slots["warehouse"] == 1
