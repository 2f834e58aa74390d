"""Crash consistency: kill real job stages with SIGKILL, then check nothing published was lost.

A template is built once: a warehouse with run A published (most_popular,
logical date D1) and its serving file, and run B (ease, a later date D2)
prepared up to the champion's production fit, with the warehouse as it was
before B's load and as it is after. Each trial copies the template into its
own folder, starts a child process that runs one of B's steps, and kills it:
- at a named point (pipeline/crashpoints.py: after a shard's Parquet write,
  after its rename, inside publish's transaction before and after the insert
  and before COMMIT, after COMMIT and before the serving export, while the
  serving file is copied, between its write and its rename, after the rename,
  after each of load's table replacements, inside forward evaluation's
  record), or
- after a random delay within the step's measured run time.

After each kill it checks (each a "state checked"; any failure is a loss):
- the warehouse opens (DuckDB replays or discards its WAL);
- current_recommendations, in the warehouse and in the serving file, is one
  whole run, A's or B's (row count and an order-free hash of every row);
- load's data tables are all A's or all B's, never a mix;
- no temporary file is left beside the serving file, nor a half shard
  among the shards publish reads;
- re-running the step completes, and leaves exactly the state of a run never
  killed: B current everywhere, one published_runs row per run, no duplicate
  rows, one forward_metrics row for B; publishing the same date again under
  another run id replaces B without duplicates.

`python -m tests.crash.harness --random 200` runs every named point and 200
random kills and prints "kills tried, states checked, losses";
tests/crash/test_crash_consistency.py runs a short version in CI.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipeline.core.run_folder import RunFolder
from pipeline.stages.evaluate import evaluate as evaluate_stage
from pipeline.stages.features import features as features_stage
from pipeline.stages.fetch import fetch as fetch_stage
from pipeline.stages.fit_champion import fit_champion
from pipeline.stages.forward_evaluate import forward_evaluate
from pipeline.stages.job import run_all
from pipeline.stages.load import load as load_stage
from pipeline.stages.prepare import prepare
from pipeline.stages.publish import publish as publish_stage
from pipeline.stages.score_shard import score_shard, score_shards
from pipeline.stages.split import split as split_stage
from pipeline.stages.train_model import train
from pipeline.stages.validate import validate as validate_stage
from tests.support.synthetic import BASE_TS, make, write_ml1m

REPO = Path(__file__).resolve().parents[2]
D1 = datetime.fromtimestamp(BASE_TS + 6_000_000, UTC)  # about 60% of the ratings before it
D2 = datetime.fromtimestamp(BASE_TS + 10_000_000 + 86_400, UTC)  # every rating before it
RUN_A, RUN_B, RUN_B2 = "crash-A", "crash-B", "crash-B-again"
DATA_TABLES = ("movies", "users", "ratings")

# (step, point): the step the child runs, and where it is killed
POINTS = (
    ("load", "load.replaced@1"),
    ("load", "load.replaced@3"),
    ("load", "forward.recorded"),
    ("publish", "shard.written@1"),
    ("publish", "shard.renamed@2"),
    ("publish", "publish.deleted"),
    ("publish", "publish.inserted"),
    ("publish", "publish.recorded"),
    ("publish", "publish.committed"),
    ("publish", "serving.copying@1"),
    ("publish", "serving.copying@3"),
    ("publish", "serving.written"),
    ("publish", "serving.renamed"),
)


@dataclass
class Tally:
    kills: int = 0
    states: int = 0
    losses: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        self.states += 1
        if not ok:
            self.losses.append(what)


@dataclass
class Template:
    root: Path
    hashes: dict[str, tuple[int, int]]  # run id -> current_recommendations' (rows, hash) when it is current
    tables: dict[str, dict[str, int]]  # "A" | "B" -> row counts of the data tables
    windows: dict[str, tuple[float, float]]  # step -> (its writes begin, it ends), seconds after its start, unkilled


def _recs_state(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    return tuple(
        con.execute(
            "SELECT count(*), coalesce(bit_xor(hash(run_id, user_id, rank, movie_id, score)), 0) "
            "FROM current_recommendations"
        ).fetchall()[0]
    )


def _table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in DATA_TABLES}


def _point_config(run_dir: Path, root: Path) -> None:
    """Point a copied run folder's config at the copy's warehouse and serving file."""
    run = RunFolder(run_dir)
    cfg = run.load_config()
    cfg.warehouse, cfg.serving = str(root / "wh.duckdb"), str(root / "wh.serving.duckdb")
    run.save_config(cfg)


def _env(root: Path, crash_at: str | None = None) -> dict[str, str]:
    env = {**os.environ, "MOVIELENS_VAR_DIR": str(root / "var"), "PYTHONPATH": str(REPO)}
    env.pop("MOVIELENS_CRASH_AT", None)
    if crash_at:
        env["MOVIELENS_CRASH_AT"] = crash_at
    return env


def _child(root: Path, step: str, crash_at: str | None = None) -> subprocess.Popen:
    run_dir = root / "var" / "runs" / RUN_B
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash.harness", "--child", step, str(run_dir)],
        cwd=REPO,
        env=_env(root, crash_at),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _step(step: str, run_dir: str) -> None:
    """What a child runs: B's load and forward evaluation, or B's scoring and publishing.

    It notes (on the system-wide monotonic clock) when the writes that random
    kills aim at begin: the load, or the publishing and export after scoring."""
    mark = Path(run_dir).parents[2] / "writes-begin"
    if step == "load":
        mark.write_text(str(time.monotonic()))
        load_stage(run_dir)
        forward_evaluate(run_dir)
    else:
        for shard in score_shards(run_dir):
            score_shard(run_dir, shard)
        mark.write_text(str(time.monotonic()))
        publish_stage(run_dir)


def build_template(root: Path) -> Template:
    """Run A published, run B ready to load and ready to score, each warehouse state saved."""
    os.environ["MOVIELENS_VAR_DIR"] = str(root / "var")
    data = write_ml1m(root / "data", make(n_users=120, n_movies=80, per_user=20, clusters=4))
    wh, srv = root / "wh.duckdb", root / "wh.serving.duckdb"
    common = {"warehouse_path": wh, "serving": srv, "top_n_items": 10, "users_per_shard": 40, "max_epochs": 1}
    run_all(prepare(RUN_A, D1, str(data), models=["most_popular"], **common))
    for name in ("wh.duckdb", "wh.serving.duckdb"):
        shutil.copy(root / name, root / f"A.{name}")
    run_b = prepare(RUN_B, D2, str(data), models=["ease"], **common)
    for stage in (fetch_stage, validate_stage, load_stage, forward_evaluate, features_stage, split_stage, train):
        stage(run_b)
    evaluate_stage(run_b)
    fit_champion(run_b)
    shutil.copy(wh, root / "B-loaded.wh.duckdb")
    with duckdb.connect(str(root / "A.wh.duckdb"), read_only=True) as con:
        hashes, tables = {RUN_A: _recs_state(con)}, {"A": _table_counts(con)}
    with duckdb.connect(str(wh), read_only=True) as con:
        tables["B"] = _table_counts(con)
    if tables["A"] == tables["B"]:
        raise RuntimeError(f"the template's two loads must differ to tell them apart: {tables}")
    template = Template(root, hashes, tables, {})
    for step in ("load", "publish"):  # each step once, unkilled: its time, and B's published state
        trial = _trial_folder(template, step, root / f"clean-{step}")
        started = time.monotonic()
        child = _child(trial, step)
        _, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"the unkilled {step} step failed:\n{err[-3000:]}")
        writes = float((trial / "writes-begin").read_text()) - started
        template.windows[step] = (writes, time.monotonic() - started)
        if step == "publish":
            with duckdb.connect(str(trial / "wh.duckdb"), read_only=True) as con:
                template.hashes[RUN_B] = _recs_state(con)
    if template.hashes[RUN_A] == template.hashes[RUN_B]:
        raise RuntimeError("runs A and B published the same rows: a kill's outcome could not be told apart")
    return template


def _trial_folder(template: Template, step: str, folder: Path) -> Path:
    """A fresh copy: the warehouse before `step`, A's serving file, run B's folder."""
    root = template.root
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "var" / "runs").mkdir(parents=True)
    shutil.copy(root / ("A.wh.duckdb" if step == "load" else "B-loaded.wh.duckdb"), folder / "wh.duckdb")
    shutil.copy(root / "A.wh.serving.duckdb", folder / "wh.serving.duckdb")
    run_dir = folder / "var" / "runs" / RUN_B
    shutil.copytree(root / "var" / "runs" / RUN_B, run_dir)
    shutil.rmtree(RunFolder(run_dir).scores, ignore_errors=True)
    _point_config(run_dir, folder)
    return folder


def _check_after_kill(template: Template, folder: Path, step: str, tally: Tally, label: str) -> bool:
    """The states a kill may leave; False when the warehouse would not even open."""
    try:
        con = duckdb.connect(str(folder / "wh.duckdb"))
    except duckdb.Error as exc:
        tally.check(False, f"{label}: the warehouse does not open: {exc}")
        return False
    tally.check(True, "")
    with con:
        state = _recs_state(con)
        tally.check(state in template.hashes.values(), f"{label}: warehouse current run is a mix: {state}")
        counts = _table_counts(con)
        tally.check(counts in template.tables.values(), f"{label}: data tables are a mix: {counts}")
        if step == "load":
            tally.check(state == template.hashes[RUN_A], f"{label}: a load kill changed the recommendations")
    with duckdb.connect(str(folder / "wh.serving.duckdb"), read_only=True) as con:
        served = _recs_state(con)
    tally.check(served in template.hashes.values(), f"{label}: serving file's current run is a mix: {served}")
    shards = RunFolder(folder / "var" / "runs" / RUN_B)
    for path in shards.scores.glob(shards.shard_glob.name) if shards.scores.exists() else ():
        try:
            duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()
            tally.check(True, "")
        except duckdb.Error as exc:
            tally.check(False, f"{label}: a half-written shard {path.name} where publish reads: {exc}")
    return True


def _check_rerun(template: Template, folder: Path, step: str, tally: Tally, label: str) -> None:
    """Re-running the killed step reaches the state of a run never killed."""
    child = _child(folder, step)
    _, err = child.communicate()
    tally.check(child.returncode == 0, f"{label}: the re-run failed: {err[-2000:]}")
    if child.returncode != 0:
        return
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix in (".tmp", ".wal")]
    tally.check(not leftovers, f"{label}: temporary files left beside the serving file: {leftovers}")
    with duckdb.connect(str(folder / "wh.duckdb")) as con:
        tally.check(_table_counts(con) == template.tables["B"], f"{label}: re-run load is not B's")
        n_forward = con.execute("SELECT count(*) FROM forward_metrics WHERE run_id = ?", [RUN_B]).fetchall()[0][0]
        tally.check(n_forward == 1, f"{label}: {n_forward} forward_metrics rows for B")
        if step == "load":
            return
        tally.check(_recs_state(con) == template.hashes[RUN_B], f"{label}: re-run did not publish B's rows")
        runs = con.execute("SELECT run_id, count(*) FROM published_runs GROUP BY ALL ORDER BY ALL").fetchall()
        tally.check(runs == [(RUN_A, 1), (RUN_B, 1)], f"{label}: published_runs after the re-run: {runs}")
        dupes = con.execute(
            "SELECT count(*) - count(DISTINCT (run_id, user_id, rank)) FROM recommendations"
        ).fetchall()[0][0]
        tally.check(dupes == 0, f"{label}: {dupes} duplicate recommendation rows")
    with duckdb.connect(str(folder / "wh.serving.duckdb"), read_only=True) as con:
        tally.check(_recs_state(con) == template.hashes[RUN_B], f"{label}: serving file is not B after the re-run")
    _check_same_date_again(folder, tally, label)


def _check_same_date_again(folder: Path, tally: Tally, label: str) -> None:
    """The same logical date published again under another run id replaces B: one run for the date."""
    from pipeline.serving.publish import publish

    run = RunFolder(folder / "var" / "runs" / RUN_B)
    cfg = run.load_config()
    with duckdb.connect(str(folder / "wh.duckdb")) as con:
        n_b = con.execute("SELECT count(*) FROM recommendations WHERE run_id = ?", [RUN_B]).fetchall()[0][0]
        publish(
            con,
            RUN_B2,
            run.shard_glob,
            "ease",
            run.read(run.manifest)["folder"],
            cfg.top_n,
            logical_date=D2.replace(tzinfo=None),
        )
        runs = con.execute("SELECT run_id FROM published_runs ORDER BY ALL").fetchall()
        n_b2 = con.execute("SELECT count(*) FROM recommendations WHERE run_id = ?", [RUN_B2]).fetchall()[0][0]
        n_all = con.execute("SELECT count(*) FROM recommendations WHERE run_id <> ?", [RUN_A]).fetchall()[0][0]
    tally.check(runs == [(RUN_A,), (RUN_B2,)], f"{label}: the same date again left runs {runs}")
    tally.check(n_b2 == n_b == n_all, f"{label}: the same date again: {n_b2} rows for {n_b} ({n_all} in all)")


def trial(template: Template, step: str, tally: Tally, crash_at: str | None = None, delay: float | None = None) -> str:
    """One kill (at a point, or after `delay` seconds) and every check after it; returns what happened."""
    label = f"{step} @ {crash_at or f'{delay:.2f}s'}"
    folder = _trial_folder(template, step, template.root / "trial")
    child = _child(folder, step, crash_at)
    if delay is not None:
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
    _, err = child.communicate()
    if child.returncode != -signal.SIGKILL:
        outcome = "finished before the kill" if child.returncode == 0 else f"failed: {err[-1500:]}"
        if child.returncode != 0:
            tally.check(False, f"{label}: the child {outcome}")
    else:
        tally.kills += 1
        outcome = "killed"
    if _check_after_kill(template, folder, step, tally, label):
        _check_rerun(template, folder, step, tally, label)
    return outcome


def random_kills(template: Template, tally: Tally, n: int, seed: int) -> None:
    """`n` kills at random times, most of them inside the writes (publishing and export, or load)."""
    rng = random.Random(seed)
    for i in range(n):
        step = rng.choice(("load", "publish", "publish"))  # publishing and export: the riskiest writes
        # the child spends its first second or two importing and scoring, which writes nothing shared
        begin, end = template.windows[step]
        delay = rng.uniform(begin, end) if rng.random() < 0.8 else rng.uniform(0.0, end)
        before = len(tally.losses)
        outcome = trial(template, step, tally, delay=delay)
        lost = len(tally.losses) - before
        print(f"random {i + 1:4} {step:8} at {delay:5.2f}s {outcome:24} losses {lost}", flush=True)


def campaign(root: Path, n_random: int, seed: int = 0, points: tuple = POINTS) -> Tally:
    """Every named point, then `n_random` kills at random times; prints each and the figure."""
    started = time.perf_counter()
    template = build_template(root)
    windows = ", ".join(f"{s} {a:.2f}-{b:.2f}s" for s, (a, b) in template.windows.items())
    took = time.perf_counter() - started
    print(f"template ready in {took:.0f}s; writes of the unkilled steps: {windows}", flush=True)
    tally = Tally()
    for step, point in points:
        before = len(tally.losses)
        outcome = trial(template, step, tally, crash_at=point)
        print(f"{step:8} {point:22} {outcome:10} losses {len(tally.losses) - before}", flush=True)
    random_kills(template, tally, n_random, seed)
    print(f"kills tried {tally.kills}, states checked {tally.states}, losses {len(tally.losses)}")
    for loss in tally.losses:
        print(f"LOSS: {loss}")
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("STEP", "RUN_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--random", type=int, default=20, help="random-time kills after the named points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=str(REPO / "var" / "crash"), help="scratch folder (emptied first)")
    args = parser.parse_args(argv)
    if args.child:
        _step(*args.child)
        return 0
    root = Path(args.root)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return 1 if campaign(root, args.random, args.seed).losses else 0


if __name__ == "__main__":
    sys.exit(main())
