"""Wall time of one nightly run on the Celery cluster (`make cluster`) with 1 worker against 2, same run.

Each count gets a fresh cluster (Postgres, Redis, api-server, scheduler,
dag-processor, N workers; ops/cluster.py) and a fresh warehouse; the run is
triggered through the CLI and timed from the dag_run's start to its end in
the metadata DB. The table says, per worker, how many mapped tasks it ran.
The training pool has one slot per worker, so N workers run N heavy tasks at
once. On this 2-core machine two workers share the cores: the figure says
what the overhead of distribution costs here, not what two machines gain.

    python bench/cluster_workers.py [--dataset ../shared/data/ml-100k] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ops.cluster import Ports, running
from pipeline.core.config import PROJECT_ROOT


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def one_run(workers: int, conf: dict, scratch: Path) -> dict:
    """Start a cluster of `workers`, run the DAG once, return its timings and task placement."""
    os.environ.update(
        {
            "MOVIELENS_VAR_DIR": str(scratch / f"var-{workers}"),
            "MOVIELENS_WAREHOUSE": str(scratch / f"warehouse-{workers}.duckdb"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "MOVIELENS_SCHEDULE": "",
        }
    )
    folder = PROJECT_ROOT / "var" / f"bench-cluster-{workers}"
    shutil.rmtree(folder, ignore_errors=True)
    api = free_port()
    started = time.monotonic()
    with running(workers, Ports(api=api, postgres=free_port(), redis=free_port()), folder) as cluster:
        up_s = time.monotonic() - started
        while not cluster.query("SELECT 1 FROM dag WHERE dag_id = 'movielens_nightly'"):
            time.sleep(1)
        cluster.airflow("dags", "trigger", "movielens_nightly", "--run-id", "bench", "--conf", json.dumps(conf))
        while cluster.run_state("bench") not in ("success", "failed"):
            time.sleep(2)
        state = cluster.run_state("bench")
        wall = cluster.query("SELECT extract(epoch FROM end_date - start_date) FROM dag_run WHERE run_id = 'bench'")[0][
            0
        ]
        placement = cluster.query(
            "SELECT hostname, count(*) FROM task_instance WHERE run_id = 'bench'"
            " AND task_id IN ('train_model', 'score_shard') GROUP BY hostname ORDER BY hostname"
        )
    shutil.rmtree(folder, ignore_errors=True)
    return {"workers": workers, "state": state, "run_s": float(wall), "start_s": up_s, "placement": placement}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "ml-100k")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--models", default="most_popular,ease,biased_mf")
    ap.add_argument("--users-per-shard", type=int, default=160)
    ap.add_argument("--max-epochs", type=int, default=30)
    args = ap.parse_args()
    conf = {
        "dataset": str(args.dataset.resolve()),
        "models": args.models.split(","),
        "max_epochs": args.max_epochs,
        "device": "cpu",
        "users_per_shard": args.users_per_shard,
    }
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        for workers in (int(w) for w in args.workers.split(",")):
            result = one_run(workers, conf, Path(scratch))
            print(f"{workers} worker(s): run {result['state']} in {result['run_s']:.1f}s", flush=True)
            results.append(result)
    print(f"\n{args.dataset.name}, models {args.models}, users_per_shard {args.users_per_shard}\n")
    print("| workers | cluster start-up (s) | DAG run (s) | vs 1 worker | mapped tasks per worker |")
    print("|---:|---:|---:|---:|---|")
    base = results[0]["run_s"]
    for r in results:
        where = ", ".join(f"{host}: {n}" for host, n in r["placement"])
        print(f"| {r['workers']} | {r['start_s']:.0f} | {r['run_s']:.1f} | {r['run_s'] / base:.2f} | {where} |")


if __name__ == "__main__":
    main()
