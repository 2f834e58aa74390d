"""Peak memory of each model's train_model task on a dataset with many users and many movies.

Memory must be set by block sizes, not by users x movies (issue 19). This
prepares one nightly run folder on a structured synthetic dataset (default
20,000 users x 12,000 movies, 2M ratings, from bench/make_ml25m_like.py
--structured), runs the job's own stages up to the split, then runs
`run.train_model` for each model in a fresh process, as an Airflow task does,
and prints that task's wall seconds and its peak resident memory (the
timings module's per-task peak, VmHWM) beside its validation NDCG@10.
Baseline in the same run: the split stage's peak, which holds every rating.

    python bench/train_memory.py                       # the nightly model set, 2 epochs each
    python bench/train_memory.py --models neumf_features --max-epochs 1
    python bench/train_memory.py --run-dir <run folder> --models sasrec   # a finished run's own data

`--run-dir` reruns `train_model` in a fresh process on a run folder that has
been split already (e.g. bench/end_to_end.py's at 25M ratings), with that
run's own settings; it replaces the folder's models/<name>/ outputs, and its limit is 8 GiB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MIB = 3 * 1024  # on 20,000 x 12,000
TASK_LIMIT_MIB = 8 * 1024  # any task at any size (issue 19)
# train_model in a fresh process, as an Airflow task runs it
TRAIN_MODEL = (
    "from pipeline.core import logs; from pipeline.stages.train_model import train_model; "
    "logs.setup(); train_model({run_dir!r}, {name!r})"
)


def _child(code: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"child failed:\n{done.stderr[-4000:]}")


def main() -> None:
    from pipeline.core.config import NIGHTLY_MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "bench" / "synth-20000x12000")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--movies", type=int, default=12_000)
    parser.add_argument("--ratings", type=int, default=2_000_000)
    parser.add_argument("--models", default=",".join(NIGHTLY_MODELS))
    parser.add_argument("--max-epochs", type=int, default=2, help="peaks come in the first epoch and evaluation")
    parser.add_argument("--run-dir", type=Path, help="train on this split run folder instead of preparing one")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.run_dir:
        env = {**os.environ, "MOVIELENS_TRAINING_SLOTS": "1"}
        run_dir = str(args.run_dir)
        for name in models:
            _child(TRAIN_MODEL.format(run_dir=run_dir, name=name), env)
        _report(run_dir, models, args.run_dir.name, TASK_LIMIT_MIB)
        return
    if not (args.data / "ratings.csv").exists():
        from bench.make_ml25m_like import write_structured

        write_structured(args.data, args.ratings, args.users, args.movies)
    with tempfile.TemporaryDirectory(prefix="train-memory-") as work:
        env = {**os.environ, "MOVIELENS_VAR_DIR": work, "MOVIELENS_TRAINING_SLOTS": "1"}
        code = (
            "from datetime import UTC, datetime; from pathlib import Path; from pipeline.core import logs; "
            "from pipeline.stages import job; from pipeline.stages.prepare import prepare; logs.setup(); "
            f"d = prepare('bench-memory', datetime.now(UTC), {str(args.data)!r}, Path({work!r}) / 'wh.duckdb', "
            f"max_epochs={args.max_epochs}, models={models!r}); "
            "[job.BY_NAME[s](d) for s in ('fetch', 'validate', 'load', 'features', 'split')]; "
            f"Path({work!r}, 'run_dir').write_text(d)"
        )
        started = time.perf_counter()
        _child(code, env)
        run_dir = Path(work, "run_dir").read_text()
        print(f"prepared {run_dir} in {time.perf_counter() - started:.0f}s", flush=True)
        for name in models:
            _child(TRAIN_MODEL.format(run_dir=run_dir, name=name), env)
        _report(run_dir, models, args.data.name, TARGET_MIB)


def _report(run_dir: str, models: list[str], label: str, target_mib: int) -> None:
    """Each task's seconds, peak and validation NDCG@10 beside the split task's peak (the baseline)."""
    from pipeline.core import timings
    from pipeline.core.run_folder import RunFolder

    entries = {e["task"]: e for e in timings.collect(run_dir)}
    base = entries["split"]["peak_rss_mib"]
    print(f"\n{label}: train_model, each in a fresh process (target: peak <= {target_mib:,} MiB)")
    print(f"{'task':<30} {'seconds':>8} {'peak MiB':>9} {'x split':>8} {'val NDCG@10':>12}")
    print(f"{'split (baseline)':<30} {entries['split']['seconds']:>8.1f} {base:>9,} {1.0:>8.2f}")
    for name in models:
        e = entries[f"train_model[{name}]"]
        metrics = RunFolder.read(RunFolder(run_dir).metrics(name))
        ndcg = metrics.get("full_ranking", {}).get("val", {}).get("ndcg@10")
        flag = "" if e["peak_rss_mib"] <= target_mib else "  OVER"
        print(
            f"{e['task']:<30} {e['seconds']:>8.1f} {e['peak_rss_mib']:>9,} {e['peak_rss_mib'] / base:>8.2f} "
            f"{ndcg if ndcg is None else format(ndcg, '.4f'):>12}{flag}"
        )


if __name__ == "__main__":
    main()
