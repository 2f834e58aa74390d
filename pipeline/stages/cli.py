"""The job without Airflow: every stage in one process, one stage again, or a user's lists.

`movielens` (installed by make setup), or `python -m pipeline.stages.cli`:

movielens run --dataset ../shared/data/ml-100k
movielens run --dataset ../shared/data/ml-100k --until evaluate --models ease,biased_mf
movielens run --dataset ../shared/data/ml-100k --job evaluation   # the weekly comparison
movielens stage validate var/runs/<run>
movielens show-user 42 --plot
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, datetime

from pipeline.core import logs
from pipeline.core.config import JOBS, NIGHTLY, NIGHTLY_MODELS
from pipeline.evaluation.champion import ChampionGateError
from pipeline.ingest.download import DownloadError
from pipeline.ingest.layouts import LayoutError
from pipeline.ingest.validate import DataQualityError
from pipeline.models.registry import NAMES, UnknownModelError

log = logging.getLogger(__name__)
# the stages `--until` and `stage` name (pipeline.stages.job.NIGHTLY_STAGES; a test holds them equal)
STAGE_NAMES = (
    "fetch",
    "validate",
    "load",
    "forward_evaluate",
    "features",
    "split",
    "train",
    "evaluate",
    "score",
    "publish",
    "report",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="movielens", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run every stage in this process")
    p_run.add_argument(
        "--dataset",
        default=os.environ.get("MOVIELENS_DATASET") or None,
        help="folder of raw MovieLens files, or a dataset.toml spec (default: download ml-latest-small)",
    )
    p_run.add_argument("--warehouse", default=None, help="DuckDB file (default: warehouse/movielens.duckdb)")
    p_run.add_argument(
        "--serving",
        default=None,
        help="the file consumers read, replaced atomically on publish (default: <warehouse>.serving.duckdb)",
    )
    p_run.add_argument("--keep-runs", type=int, default=7, help="published runs kept in recommendations")
    p_run.add_argument("--users-per-shard", type=int, default=50_000, help="users per scoring shard")
    p_run.add_argument(
        "--logical-date", default=None, help="ISO date; ratings at or after it are ignored (default: now)"
    )
    p_run.add_argument("--run-id", default=None)
    p_run.add_argument("--top-n", type=int, default=100)
    p_run.add_argument("--max-epochs", type=int, default=None)
    p_run.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p_run.add_argument(
        "--job",
        choices=JOBS,
        default=NIGHTLY,
        help="nightly: decide on validation and publish; evaluation: every model under both protocols, "
        "publish nothing (the weekly job)",
    )
    p_run.add_argument(
        "--models",
        default=os.environ.get("MOVIELENS_MODELS") or None,
        help=f"comma-separated models to train and compare (default: nightly {','.join(NIGHTLY_MODELS)}; "
        f"evaluation: all, {','.join(NAMES)})",
    )
    p_run.add_argument(
        "--until",
        choices=STAGE_NAMES,
        default=None,
        help="stop after this stage (evaluate: compare the models, publish nothing)",
    )
    p_user = sub.add_parser("show-user", help="a user's profile, best and worst rated movies, current top-10")
    p_user.add_argument("user_id", type=int)
    p_user.add_argument("--warehouse", default=None, help="DuckDB file (default: warehouse/movielens.duckdb)")
    p_user.add_argument("--serving", default=None, help="serving file (default: <warehouse>.serving.duckdb)")
    p_user.add_argument(
        "--plot",
        nargs="?",
        const="",
        default=None,
        metavar="PNG",
        help="also write the genre chart: your average rating vs the average predicted for unseen movies "
        "(default path: var/plots/user-<id>-genres.png)",
    )
    p_stage = sub.add_parser("stage", help="re-run one stage of an existing run folder")
    p_stage.add_argument("name", choices=STAGE_NAMES)
    p_stage.add_argument("run_dir")
    args = parser.parse_args(argv)
    logs.setup()
    # one process runs every stage in turn: each may use every core (Airflow's tasks share them)
    os.environ.setdefault("MOVIELENS_TRAINING_SLOTS", "1")
    if args.command == "show-user":
        return _show_user(args)
    # here, not at the top: every stage's imports (torch among them) would slow show-user down
    from pipeline.stages import job
    from pipeline.stages.prepare import prepare

    try:
        if args.command == "stage":
            job.BY_NAME[args.name](args.run_dir)
            return 0
        when = datetime.fromisoformat(args.logical_date) if args.logical_date else datetime.now(UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        run_id = args.run_id or f"cli__{when.strftime('%Y%m%dT%H%M%S')}"
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        run_dir = prepare(
            run_id,
            when,
            args.dataset,
            args.warehouse,
            args.top_n,
            args.max_epochs,
            args.device,
            models,
            serving=args.serving,
            keep_runs=args.keep_runs,
            users_per_shard=args.users_per_shard,
            job=args.job,
        )
        job.run_all(run_dir, until=args.until)
        return 0
    except (DataQualityError, DownloadError, LayoutError, ChampionGateError, UnknownModelError) as exc:
        log.error("%s", exc)
        return 2


def _show_user(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline.core.config import default_warehouse
    from pipeline.serving import serving_file, show_user

    warehouse = Path(args.warehouse) if args.warehouse else default_warehouse()
    served = Path(args.serving) if args.serving else serving_file.serving_path(warehouse)
    if not warehouse.exists() and not served.exists():
        print(f"no warehouse at {warehouse}: run the job first (make run)", file=sys.stderr)
        return 2
    print(show_user.render(show_user.load(warehouse, served, args.user_id)))
    if args.plot is not None:
        from pipeline.core.config import var_dir
        from pipeline.serving import genre_chart

        target = Path(args.plot) if args.plot else var_dir() / "plots" / f"user-{args.user_id}-genres.png"
        try:
            print(f"genre chart: {genre_chart.chart(served, args.user_id, target)}")
        except genre_chart.ChartError as exc:
            print(f"no genre chart: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
