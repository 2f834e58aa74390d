"""The nightly DAG end to end through Airflow on a big structured synthetic dataset: seconds and
peak memory per task.

It runs `airflow dags test movielens_nightly` as `make run` does, on a
dataset from bench/make_ml25m_like.py --structured (default 25M ratings,
ml-25m's shape), in a scratch warehouse, then prints the run's own timings
(timings/<task>.json: each task's seconds and peak resident memory) as a
table with the total, the DAG's wall time, the largest peak against the 8 GiB
limit, each model's protocol B figures (a sanity check that the models learn
there, not a claim about real data) and the champion. Then `show-user` for
one user, timed, against the published table.

    python bench/end_to_end.py --models most_popular,ease,biased_mf
    python bench/end_to_end.py                            # the nightly default set
    python bench/end_to_end.py --ratings 2000000 --users 20000 --movies 12000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ops.local_airflow import dags_test_environment  # noqa: E402
from pipeline.core.run_folder import RunFolder  # noqa: E402

LIMIT_MIB = 8 * 1024


def run_dag(data: Path, scratch: Path, models: list[str] | None, max_epochs: int | None) -> tuple[Path, float]:
    """The nightly DAG once; its run folder and the command's wall seconds."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = dags_test_environment(scratch)
    conf: dict = {"dataset": str(data.resolve())}
    if models:
        conf["models"] = models
    if max_epochs is not None:
        conf["max_epochs"] = max_epochs
    airflow = str(Path(sys.executable).parent / "airflow")
    command = [airflow, "dags", "test", "movielens_nightly", "--conf", json.dumps(conf)]
    print("$", " ".join(command[:-1]), f"'{command[-1]}'", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"movielens_nightly failed (exit {done.returncode}) after {seconds:.0f}s; its log is above")
    (run_dir,) = (scratch / "runs").iterdir()
    return run_dir, seconds


def show_user(scratch: Path) -> tuple[float, int]:
    """`pipeline.stages.cli show-user` for the first published user: its seconds and exit status."""
    import duckdb

    warehouse = scratch / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        user = con.execute("SELECT min(user_id) FROM recommendations").fetchall()[0][0]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.stages.cli", "show-user", str(user), "--warehouse", str(warehouse)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, done.returncode


def render(run_dir: Path, command_s: float | None, show_user_s: float | None) -> str:
    report = RunFolder.read(RunFolder(run_dir).report_summary)
    tasks = report["timings"]["tasks"]
    lines = ["| task | seconds | peak RSS (MiB) | resident at its start (MiB) |", "|---|---:|---:|---:|"]

    def mib(value: int | None) -> str:
        return "–" if value is None else f"{value:,}"

    for t in tasks:
        lines.append(
            f"| {t['task']} | {t['seconds']:.1f} | {mib(t.get('peak_rss_mib'))} | {mib(t.get('start_rss_mib'))} |"
        )
    peaks = [t["peak_rss_mib"] for t in tasks if t.get("peak_rss_mib") is not None]
    total = sum(t["seconds"] for t in tasks)
    lines.append(f"| **sum of tasks** | **{total:.0f}** | **max {max(peaks):,}** | |")
    lines.append(f"| DAG wall (first task's start to last one's end) | {report['timings']['wall_s']:.0f} | | |")
    if command_s is not None:
        lines.append(f"| `airflow dags test`, start to exit | {command_s:.0f} | | |")
    if show_user_s is not None:
        lines.append(f"| `show-user` (one user, after the run) | {show_user_s:.1f} | | |")
    over = [t["task"] for t in tasks if (t.get("peak_rss_mib") or 0) > LIMIT_MIB]
    lines.append("")
    lines.append(
        f"Largest task peak {max(peaks):,} MiB; limit {LIMIT_MIB:,} MiB" + (f"; OVER: {over}" if over else ".")
    )
    lines.append("")
    lines.append("| model | val NDCG@10 | test NDCG@10 | test recall@10 | users evaluated |")
    lines.append("|---|---:|---:|---:|---:|")
    for name, result in report["models"].items():
        b = (result or {}).get("full_ranking") or {}
        val, test = b.get("val") or {}, b.get("test") or {}

        def cell(value: object) -> str:
            return f"{value:.4f}" if isinstance(value, int | float) else "–"

        lines.append(
            f"| {name} | {cell(val.get('ndcg@10'))} | {cell(test.get('ndcg@10'))} | {cell(test.get('recall@10'))} "
            f"| {test.get('users_evaluated', '–')} |"
        )
    lines.append("")
    champion = report.get("champion") or {}
    lines.append(f"Champion: {champion.get('message', champion) if isinstance(champion, dict) else champion}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--users", type=int, default=None, help="default: ml-25m's ratings per user")
    parser.add_argument("--movies", type=int, default=None, help="default: ml-25m's ratings per movie")
    parser.add_argument("--data", type=Path, default=None, help="default: var/bench/structured-<ratings>")
    parser.add_argument("--models", default="", help="comma-separated; empty: the nightly default set")
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--scratch", type=Path, default=ROOT / "var" / "bench" / "end-to-end")
    parser.add_argument("--render", type=Path, metavar="RUN_DIR", help="only print the tables of a finished run")
    args = parser.parse_args()
    if args.render:
        print(render(args.render, None, None))
        return
    data = args.data or ROOT / "var" / "bench" / f"structured-{args.ratings}"
    if not (data / "ratings.csv").exists():
        from bench.make_ml25m_like import write_structured

        started = time.perf_counter()
        write_structured(data, args.ratings, args.users, args.movies)
        print(f"generated {data} in {time.perf_counter() - started:.0f}s", flush=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()] or None
    run_dir, seconds = run_dag(data, args.scratch, models, args.max_epochs)
    user_s, code = show_user(args.scratch)
    print(f"\n{data.name}, models: {', '.join(models) if models else 'the nightly default set'}\n")
    print(render(run_dir, seconds, user_s if code == 0 else None))
    if code != 0:
        print(f"show-user failed (exit {code})")


if __name__ == "__main__":
    main()
