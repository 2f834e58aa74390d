"""Seconds and peak memory of fetch + validate + load on ml-25m-shaped data, by size.

For each size it writes (once, under var/bench/) a synthetic dataset in the
ml-25m CSV layout, then runs the job's real stages (fetch: checksums;
validate: every GX suite, quarantine, Data Docs; load: the warehouse tables)
in a fresh process and reports that process's wall time per stage and its peak
resident memory. The baseline, measured in the same run, is what the
notebooks do to get the same ratings into memory: pandas.read_csv of
ratings.csv, in its own process.

    python bench/load_validate.py                 # 1M and 25M ratings
    python bench/load_validate.py --sizes 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_pipeline(folder: str, workdir: str) -> dict:
    import os

    os.environ["MOVIELENS_VAR_DIR"] = workdir
    from pipeline.core import logs
    from pipeline.core.run_folder import RunFolder
    from pipeline.stages.fetch import fetch
    from pipeline.stages.load import load
    from pipeline.stages.prepare import prepare
    from pipeline.stages.validate import validate

    logs.setup()
    run_dir = prepare("bench", datetime.now(UTC), folder, Path(workdir) / "wh.duckdb", max_epochs=1)
    seconds = {}
    for stage in (fetch, validate, load):
        started = time.perf_counter()
        stage(run_dir)
        seconds[stage.__name__] = round(time.perf_counter() - started, 1)
    summary = RunFolder.read(RunFolder(run_dir).validation)
    return {"seconds": seconds, "peak_mib": round(_peak_mib()), "rows": summary["rows"], "passed": summary["passed"]}


def child_baseline(folder: str) -> dict:
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_csv(Path(folder) / "ratings.csv")
    return {"seconds": round(time.perf_counter() - started, 1), "peak_mib": round(_peak_mib()), "rows": len(frame)}


def _in_child(function: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", function, *args], capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 25_000_000])
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, *rest = args.child
        print(json.dumps({"pipeline": child_pipeline, "baseline": child_baseline}[name](*rest)))
        return

    from bench.make_ml25m_like import write

    for size in args.sizes:
        folder = args.data / f"ml25m-like-{size}"
        if not (folder / "ratings.csv").exists():
            started = time.perf_counter()
            write(folder, size)
            print(f"generated {folder} in {time.perf_counter() - started:.1f}s", flush=True)
        with tempfile.TemporaryDirectory() as workdir:
            ours = _in_child("pipeline", str(folder), workdir)
        base = _in_child("baseline", str(folder))
        total = sum(ours["seconds"].values())
        print(
            f"{ours['rows']['ratings']:>12,} ratings | fetch+validate+load {total:7.1f}s "
            f"({', '.join(f'{k} {v}s' for k, v in ours['seconds'].items())}), peak {ours['peak_mib']:,} MiB, "
            f"passed={ours['passed']} | baseline pandas.read_csv {base['seconds']}s, peak {base['peak_mib']:,} MiB | "
            f"time x{total / max(base['seconds'], 0.1):.1f}, memory x{ours['peak_mib'] / base['peak_mib']:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
