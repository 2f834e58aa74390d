"""
### MovieLens nightly recommendations

`fetch → validate → load → forward_evaluate → features → split → train_model (mapped: one task per
model) → evaluate → fit_champion → score_shard (mapped: one task per user shard) → publish → report`.
`publish` updates the Asset `movielens_current_recommendations`, which downstream DAGs can be scheduled on.

Validates the raw MovieLens files with Great Expectations, loads them into the
DuckDB warehouse as of the run's data-interval end, trains every configured
model under both evaluation protocols (the notebooks' and full ranking),
records them in `model_runs`, picks the champion on full-ranking NDCG@10 on
validation, refits it on every rating and publishes its top-N movies for
every user into `recommendations` / `current_recommendations`. A champion
clearly worse than the published one is held back with a quality alert.
`report` writes the run's HTML report (loss curves, prediction plots, metric
tables, forward metrics over runs) into the run folder, logs its path and
records it in `model_runs.report_path`.

A critical data-quality failure writes `dq_alerts` rows, sends the alert
(MOVIELENS_ALERT_CHANNELS: log, email, webhook) and fails `validate` (no
retries); nothing is published and the previous recommendations stay current.
Warnings alert too, quarantine the rows they concern, and let the run go on.
Any task failure sends an alert through the same channels.

Replay DAGs `movielens_replay_day`, `movielens_replay_week` and `movielens_replay_month` run the
same tasks once per day, week or month of history. They only accept backfill runs: `make backfill
FROM=… TO=… EVERY=month` replays history through them, each run seeing only the ratings made
before its logical date.

Params: `dataset` (folder of raw files or a dataset.toml spec; empty = download ml-latest-small),
`models` (which to train and compare), `top_n`, `max_epochs`, `device` (auto/cpu/cuda),
`users_per_shard` (scoring fans out into one mapped task per shard). The warehouse file is
`MOVIELENS_WAREHOUSE` (default `warehouse/movielens.duckdb` in the project).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

# names only: config and the registry import no model or data code
from pipeline.core.config import EVALUATION, NIGHTLY, NIGHTLY_MODELS, TRAINING_POOL, WAREHOUSE_POOL
from pipeline.models.registry import NAMES as ALL_MODELS

# a retried task waits MOVIELENS_RETRY_DELAY_S (default 2 min), doubling on each further try
RETRY_DELAY = timedelta(seconds=float(os.environ.get("MOVIELENS_RETRY_DELAY_S", 120)))
TRANSIENT = {"retries": 2, "retry_delay": RETRY_DELAY, "retry_exponential_backoff": True}

# Each task calls one stage, pipeline.stages.<stage>, on the run folder and passes its path on.
# A task imports its stage when it runs, never at parse time. Validation never retries (bad data
# stays bad); steps that touch files or the warehouse may. Tasks that open the DuckDB warehouse
# share a one-slot pool: the nightly, replay and evaluation DAGs write the same file, and DuckDB
# lets one process write it at a time.
WAREHOUSE = {"pool": WAREHOUSE_POOL}
# Tasks that train or score take every core they are given: they share the `training` pool, whose
# slots (MOVIELENS_TRAINING_SLOTS, default one per 4 cores) are how many run at once; each then
# uses cores / slots threads (pipeline.core.threads). `make setup` creates both pools.
HEAVY = {"pool": TRAINING_POOL}

# What downstream DAGs can be scheduled on: the consumers' table, in the serving file.
RECOMMENDATIONS = Asset(
    name="movielens_current_recommendations", uri="duckdb://movielens/serving/current_recommendations"
)


def _on_failure(context) -> None:
    """Page through the same channels as data-quality alerts (MOVIELENS_ALERT_CHANNELS)."""
    from pipeline.core import alerts

    alerts.notify(alerts.task_failure_alert(context))


def _fetch(job: str):
    """The first task: the run folder for this job, and the raw files found (or downloaded)."""

    @task(task_id="fetch", **TRANSIENT)
    def fetch() -> str:
        from airflow.sdk.exceptions import AirflowFailException

        from pipeline.ingest.download import DownloadError
        from pipeline.ingest.layouts import LayoutError
        from pipeline.stages.fetch import fetch
        from pipeline.stages.prepare import prepare

        ctx = get_current_context()
        p = ctx["params"]
        # a run triggered without a logical date (Airflow 3's default from the UI, the CLI and the
        # REST API) has none in its context: it sees the ratings made before it was due to run
        as_of = ctx.get("data_interval_end") or ctx.get("logical_date") or ctx["dag_run"].run_after
        run_dir = prepare(
            ctx["run_id"],
            as_of,
            p["dataset"] or None,
            None,
            p.get("top_n", 100),
            p["max_epochs"],
            p["device"],
            p["models"],
            users_per_shard=p.get("users_per_shard", 50_000),
            job=job,
        )
        try:
            return fetch(run_dir)
        except (DownloadError, LayoutError) as exc:
            # Already retried where it helps (the download); a wrong folder or an
            # unreachable archive will not fix itself by waiting.
            raise AirflowFailException(str(exc)) from exc

    return fetch


@task(retries=0, **WAREHOUSE)
def validate(run_dir: str) -> str:
    from pipeline.stages.validate import validate

    return validate(run_dir)


@task(**TRANSIENT, **WAREHOUSE)
def load(run_dir: str) -> str:
    from pipeline.stages.load import load

    return load(run_dir)


@task(**WAREHOUSE)
def forward_evaluate(run_dir: str) -> str:
    from pipeline.stages.forward_evaluate import forward_evaluate

    return forward_evaluate(run_dir)


@task(**WAREHOUSE)
def features(run_dir: str) -> str:
    from pipeline.stages.features import features

    return features(run_dir)


@task
def split(run_dir: str) -> str:
    from pipeline.stages.split import split

    return split(run_dir)


@task
def model_names(run_dir: str) -> list[str]:
    from pipeline.stages.train_model import model_names

    return model_names(run_dir)


@task(map_index_template="{{ name }}", **HEAVY)
def train_model(run_dir: str, name: str) -> str:
    """One model: tuned on train_inner and judged on validation (and, weekly, refit and protocol A)."""
    from pipeline.stages.train_model import train_model

    return train_model(run_dir, name)


@task(**WAREHOUSE)
def evaluate(run_dir: str) -> str:
    from pipeline.stages.evaluate import evaluate

    return evaluate(run_dir)


@task(**HEAVY)
def fit_champion(run_dir: str) -> str:
    from pipeline.stages.fit_champion import fit_champion

    return fit_champion(run_dir)


@task
def score_shards(run_dir: str) -> list[int]:
    from pipeline.stages.score_shard import score_shards

    return score_shards(run_dir)


@task(map_index_template="shard {{ shard }}", **TRANSIENT, **HEAVY)
def score_shard(run_dir: str, shard: int) -> str:
    """One user range of the top-N lists; one mapped task per shard."""
    from pipeline.stages.score_shard import score_shard

    return score_shard(run_dir, shard)


@task(**TRANSIENT, **WAREHOUSE, outlets=[RECOMMENDATIONS])
def publish(run_dir: str) -> str:
    from pipeline.stages.publish import publish

    return publish(run_dir)


@task(**WAREHOUSE)
def report(run_dir: str) -> str:
    from pipeline.stages.report import report

    return report(run_dir)


def _trained(run_dir):
    """One mapped train_model task per model of the run, in the training pool."""
    return train_model.partial(run_dir=run_dir).expand(name=model_names(run_dir))


# `make backfill EVERY=…` replays history at one of these intervals (the nightly DAG's own
# schedule is MOVIELENS_SCHEDULE); their DAGs take backfill runs only, never scheduled ones.
REPLAY_SCHEDULES = {"day": "@daily", "week": "@weekly", "month": "@monthly"}
NEVER_SCHEDULED = pendulum.datetime(2100, 1, 1, tz="UTC")


def dag_settings(job: str) -> dict:
    """The DAG arguments the nightly, replay and evaluation DAGs share; their default models differ."""
    return dict(
        catchup=False,
        max_active_runs=1,
        default_args={"owner": "recsys", "retries": 0, "on_failure_callback": _on_failure},
        params={
            "dataset": Param(
                os.environ.get("MOVIELENS_DATASET", ""),
                type="string",
                description="Folder of raw MovieLens files, or a dataset.toml spec; empty downloads ml-latest-small",
            ),
            "models": Param(
                list(NIGHTLY_MODELS if job == NIGHTLY else ALL_MODELS),
                type="array",
                items={"type": "string", "enum": list(ALL_MODELS)},
                description="Models to train and compare; the best on full-ranking NDCG@10 (validation) is published"
                if job == NIGHTLY
                else "Models to compare under both protocols (nothing is published)",
            ),
            "top_n": Param(100, type="integer", minimum=1, description="Recommendations per user"),
            "max_epochs": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                description="Training epochs at most, for every model; empty: each model's own cap",
            ),
            "device": Param("auto", type="string", enum=["auto", "cpu", "cuda"]),
            "users_per_shard": Param(
                50_000,
                type="integer",
                minimum=1,
                description="Users per scoring shard (one mapped score_shard task each)",
            ),
        },
        doc_md=__doc__,
    )


def movielens_pipeline() -> None:
    """The tasks and their wiring, shared by the nightly DAG and the replay DAGs."""
    run_dir = split(features(forward_evaluate(load(validate(_fetch(NIGHTLY)())))))
    evaluated = evaluate(run_dir)
    _trained(run_dir) >> evaluated
    fitted = fit_champion(evaluated)
    published = publish(fitted)
    score_shard.partial(run_dir=fitted).expand(shard=score_shards(fitted)) >> published
    report(published)


def movielens_evaluation_pipeline() -> None:
    """The weekly comparison: every model under both protocols, test figures from a refit on
    train, into model_runs and the run's report; nothing is scored or published."""
    run_dir = split(features(load(validate(_fetch(EVALUATION)()))))  # no forward evaluation: the nightly job's
    evaluated = evaluate(run_dir)
    _trained(run_dir) >> evaluated
    report(evaluated)


TAGS = ["movielens", "recommendations", "duckdb"]
dag(
    dag_id="movielens_nightly",
    # MOVIELENS_SCHEDULE="" runs it only when triggered
    schedule=os.environ.get("MOVIELENS_SCHEDULE", "@daily") or None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=TAGS,
    **dag_settings(NIGHTLY),
)(movielens_pipeline)()
for every, schedule in REPLAY_SCHEDULES.items():
    dag(
        dag_id=f"movielens_replay_{every}",
        schedule=schedule,
        # Never scheduled: the scheduler creates no run before the start date, while a backfill
        # may cover any past dates. Manual runs (as of now) are refused; Airflow requires a
        # scheduled DAG to accept scheduled runs, which the start date keeps from happening.
        start_date=NEVER_SCHEDULED,
        allowed_run_types=["backfill", "scheduled"],
        is_paused_upon_creation=True,
        tags=[*TAGS, "replay"],
        description=f"movielens_nightly's tasks once per {every} of history; backfill runs only (make backfill)",
        **dag_settings(NIGHTLY),
    )(movielens_pipeline)()
# The weekly full comparison (make evaluate runs it now). Sunday 06:00 UTC by default, after that
# night's nightly run: both jobs load the same warehouse, and one at a time is what DuckDB allows.
evaluation_settings = dag_settings(EVALUATION)
for nightly_only in ("top_n", "users_per_shard"):
    evaluation_settings["params"].pop(nightly_only)
evaluation_settings["doc_md"] = movielens_evaluation_pipeline.__doc__
dag(
    dag_id="movielens_evaluation",
    schedule=os.environ.get("MOVIELENS_EVALUATION_SCHEDULE", "0 6 * * 0"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    is_paused_upon_creation=True,
    tags=[*TAGS, "evaluation"],
    description="every model under both protocols, weekly; writes model_runs and a report, publishes nothing",
    **evaluation_settings,
)(movielens_evaluation_pipeline)()
