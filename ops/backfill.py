"""Replay history through real Airflow: one DAG run per day, week or month, in order, resumable.

`make backfill FROM=2016-01-01 TO=2018-12-31 EVERY=month` starts a local
Airflow (ops.local_airflow), asks it for a backfill (`airflow backfill
create`), prints each run as it finishes and stops Airflow when the backfill
is complete. Each run sees only the ratings made before its logical date (the
DAG's fetch task reads its data interval's end), so the replay is faithful.

EVERY picks the replay DAG of that interval (movielens_replay_day|week|month),
which only ever takes backfill runs; without it, the interval is the nightly
DAG's schedule (see dag_for). Resuming: dates whose run succeeded are
never redone (reprocess behaviour `failed`: only failed dates are run again),
and an unfinished backfill left by an interrupted call is picked up where it
stopped (the scheduler resets the tasks the interruption orphaned) before
the requested range is considered.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date, datetime

from ops.airflow_command import airflow_executable
from ops.local_airflow import AirflowStartError, environment, running

NIGHTLY = "movielens_nightly"
EVERY = ("day", "week", "month")


class BackfillError(RuntimeError):
    pass


def dag_for(every: str | None, nightly_schedule: str | None = None) -> str:
    """The DAG that replays at `every`; None: at the nightly DAG's schedule (MOVIELENS_SCHEDULE).

    A replay DAG even then, when one has that schedule: the nightly DAG would
    have to be unpaused for the backfill, and its own scheduled run could then
    write the warehouse beside a backfill run. Only a schedule no replay DAG
    has (a cron expression) backfills the nightly DAG itself.
    """
    if every is None:
        schedule = nightly_schedule or os.environ.get("MOVIELENS_SCHEDULE", "@daily")
        every = {"@daily": "day", "@weekly": "week", "@monthly": "month"}.get(schedule)
        if every is None:
            return NIGHTLY
    if every not in EVERY:
        raise BackfillError(f"EVERY must be one of {', '.join(EVERY)} (or unset for the DAG's schedule), not {every!r}")
    return f"movielens_replay_{every}"


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BackfillError(f"{name} must be a date as YYYY-MM-DD, not {text!r}") from None


def _airflow(*args: str, port: int) -> subprocess.CompletedProcess:
    return subprocess.run([airflow_executable(), *args], env=environment(port, 2), capture_output=True, text=True)


def _require_dag(dag_id: str) -> None:
    """The DAG is in Airflow's database (`airflow dags reserialize` has just stored the parsed DAGs)."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        if SerializedDagModel.get(dag_id, session=session) is None:
            raise BackfillError(f"DAG {dag_id} is not in Airflow: see `airflow dags list-import-errors`")


def _is_paused(dag_id: str) -> bool:
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        model = session.get(DagModel, dag_id)
        return bool(model.is_paused) if model is not None else True


def _unfinished_backfill(dag_id: str):
    """The newest backfill of the DAG that is not complete (an interrupted call's), or None."""
    from airflow.models.backfill import Backfill
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(Backfill).where(Backfill.dag_id == dag_id, Backfill.completed_at.is_(None))
        found = session.scalars(query.order_by(Backfill.id.desc())).first()
        return (found.id, found.from_date, found.to_date) if found is not None else None


def _newest_backfill_id(dag_id: str) -> int:
    from airflow.models.backfill import Backfill
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.max(Backfill.id)).where(Backfill.dag_id == dag_id)) or 0


def _create(dag_id: str, start: date, end: date, conf: dict, port: int) -> int:
    before = _newest_backfill_id(dag_id)
    done = _airflow(
        "backfill",
        "create",
        "--dag-id",
        dag_id,
        "--from-date",
        start.isoformat(),
        "--to-date",
        end.isoformat(),
        "--reprocess-behavior",
        "failed",  # a date whose run succeeded is never redone; a failed one is
        "--max-active-runs",
        "1",  # in order, one at a time: forward evaluation reads the previous run
        "--dag-run-conf",
        json.dumps(conf),
        port=port,
    )
    created = _newest_backfill_id(dag_id)
    if done.returncode != 0 or created == before:
        raise BackfillError(f"airflow backfill create failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return created


def _state(backfill_id: int) -> tuple[bool, list[tuple[str, str, float | None]], list[tuple[str, str]]]:
    """(complete?, [(logical date, state, seconds)] of its runs, [(logical date, why not run)])."""
    from airflow.models import DagRun
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        backfill = session.get(Backfill, backfill_id)
        runs = session.scalars(select(DagRun).where(DagRun.backfill_id == backfill_id)).all()
        skipped = session.scalars(
            select(BackfillDagRun).where(
                BackfillDagRun.backfill_id == backfill_id, BackfillDagRun.exception_reason.is_not(None)
            )
        ).all()
        rows = [
            (
                r.logical_date.date().isoformat(),
                str(r.state.value if hasattr(r.state, "value") else r.state),
                (r.end_date - r.start_date).total_seconds() if r.end_date and r.start_date else None,
            )
            for r in runs
        ]
        why = [(s.logical_date.date().isoformat(), str(s.exception_reason)) for s in skipped if s.logical_date]
        return backfill.completed_at is not None, sorted(rows), sorted(why)


def _follow(backfill_id: int, reported: dict[str, str], poll_s: float) -> list[tuple[str, str, float | None]]:
    """Print each run as it finishes, until the scheduler marks the backfill complete."""
    complete, runs, skipped = _state(backfill_id)
    for day, why in skipped:
        print(f"  {day}  not run again ({why.lower().replace('_', ' ')})", flush=True)
    while True:
        finished = [r for r in runs if r[1] in ("success", "failed")]
        for day, state, seconds in finished:
            if reported.get(day) != state:  # each run is told once
                reported[day] = state
                took = f" in {seconds:.0f}s" if seconds is not None else ""
                print(f"  {day}  {state}{took}   [{len(finished)}/{len(runs)} runs]", flush=True)
        if complete:
            return runs
        time.sleep(poll_s)
        complete, runs, _ = _state(backfill_id)


def _run_scheduler_until_complete(
    backfill_id: int, dag_id: str, reported: dict[str, str], port: int, poll_s: float
) -> list[tuple[str, str, float | None]]:
    with running(port) as airflow:
        print(f"Airflow up at {airflow.url} ({airflow.login_line()}); running {dag_id}", flush=True)
        # Unpaused only now: the scheduler runs no run of a paused DAG (backfill runs included), and a
        # task started before the api-server answers fails (tasks report to it), costing a retry.
        _airflow("dags", "unpause", dag_id, port=port)
        return _follow(backfill_id, reported, poll_s)


def backfill(
    start: date, end: date, every: str | None, conf: dict, port: int = 8080, poll_s: float = 5.0
) -> list[tuple[str, str, float | None]]:
    """Run (or resume) the backfill of [start, end] and return its runs as (logical date, state, seconds)."""
    if start > end:
        raise BackfillError(f"FROM ({start}) is after TO ({end})")
    if datetime.combine(start, datetime.min.time()) > datetime.now():
        raise BackfillError(f"FROM ({start}) is in the future: there is no history to replay")
    dag_id = dag_for(every)
    reported: dict[str, str] = {}  # logical date -> the state the operator was told
    # The backfill is created while no scheduler runs: SQLite (the local metadata DB) takes one
    # writer at a time, and a busy scheduler made `backfill create` fail with "database is locked".
    reserialized = _airflow("dags", "reserialize", port=port)
    if reserialized.returncode != 0:
        raise BackfillError(f"the DAGs do not parse:\n{(reserialized.stdout + reserialized.stderr)[-3000:]}")
    _require_dag(dag_id)
    was_paused = _is_paused(dag_id)
    try:
        unfinished = _unfinished_backfill(dag_id)
        if unfinished is not None:  # an interrupted call's: finished first, then the requested range
            backfill_id, was_from, was_to = unfinished
            print(f"resuming unfinished backfill #{backfill_id} ({was_from:%Y-%m-%d} to {was_to:%Y-%m-%d})")
            _run_scheduler_until_complete(backfill_id, dag_id, reported, port, poll_s)
        backfill_id = _create(dag_id, start, end, conf, port)
        print(f"backfill #{backfill_id}: {dag_id} from {start} to {end}, one run at a time", flush=True)
        runs = _run_scheduler_until_complete(backfill_id, dag_id, reported, port, poll_s)
    finally:
        if was_paused:
            _airflow("dags", "pause", dag_id, port=port)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", required=True, help="first logical date, YYYY-MM-DD")
    parser.add_argument("--to", dest="end", required=True, help="last logical date, YYYY-MM-DD (inclusive)")
    parser.add_argument("--every", choices=EVERY, default=None, help="default: the nightly DAG's own schedule")
    parser.add_argument("--conf", default="{}", help="DAG params as JSON (dataset, models, top_n, max_epochs, …)")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    try:
        start, end = _day(args.start, "FROM"), _day(args.end, "TO")
        runs = backfill(start, end, args.every, json.loads(args.conf), args.port)
    except (BackfillError, AirflowStartError) as exc:
        sys.exit(f"backfill: {exc}")
    except KeyboardInterrupt:
        sys.exit("backfill interrupted: run the same command again to resume (finished dates are kept)")
    failed = [day for day, state, _ in runs if state == "failed"]
    print(f"backfill complete: {len(runs) - len(failed)} runs succeeded, {len(failed)} failed")
    if failed:
        sys.exit(f"failed dates: {', '.join(failed)} (task logs in the Airflow UI; run again to retry them)")


if __name__ == "__main__":
    main()
