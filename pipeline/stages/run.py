"""The job's stages, each taking the run folder and leaving its outputs there.

Airflow tasks and the CLI both call these; between tasks only the run
folder's path travels (XCom), and every stage can be re-run alone.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core import crashpoints, warehouse
from pipeline.core.config import (
    EVALUATION,
    JOBS,
    NIGHTLY,
    NIGHTLY_MODELS,
    RunConfig,
    default_warehouse,
    safe_name,
    threads_per_task,
    var_dir,
)
from pipeline.core.sqlfiles import sql
from pipeline.core.timings import timed

# Each stage imports what it uses when it runs: an Airflow task runs one stage in its own process,
# and torch, scikit-learn, Great Expectations and matplotlib together took ~4 s to import in every
# one of them (issue 18). Type-only imports stay here.
if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import torch

    from pipeline.ingest.layouts import Layout
    from pipeline.models.base import Recommender

log = logging.getLogger(__name__)

MODEL_FILE = "model.bin"  # the production fit, which score() publishes from
CHECKPOINT_FILE = "checkpoint.pt"  # the tuned model's best epoch, which a warm production fit starts from


def prepare(
    run_id: str,
    logical_date: datetime,
    dataset: str | None = None,
    warehouse_path: str | Path | None = None,
    top_n_items: int = 100,
    max_epochs: int | None = None,
    device: str = "auto",
    models: list[str] | None = None,
    serving: str | Path | None = None,
    keep_runs: int = 7,
    users_per_shard: int = 50_000,
    job: str = NIGHTLY,
) -> str:
    """Create the run folder with its config; return its path. `job`: "nightly" (decide on
    validation, publish) or "evaluation" (every model under both protocols, publish nothing)."""
    if job not in JOBS:
        raise ValueError(f"job must be one of {', '.join(JOBS)}, not {job!r}")
    from pipeline.models import registry

    registry.check_names(models)  # an unknown name fails here, naming the known ones
    cfg = RunConfig(
        run_id=run_id,
        dataset=str(Path(dataset).resolve()) if dataset else "",
        warehouse=str(Path(warehouse_path or default_warehouse()).resolve()),
        serving=str(Path(serving).resolve()) if serving else "",
        keep_runs=int(keep_runs),
        users_per_shard=int(users_per_shard),
        logical_date=logical_date.astimezone(UTC).isoformat(),
        top_n=int(top_n_items),
        models=list(models or (registry.NAMES if job == EVALUATION else NIGHTLY_MODELS)),
        device=device,
        train_overrides={} if max_epochs is None else {"max_epochs": int(max_epochs)},
        job=job,
        notebook_protocol=job == EVALUATION,
    )
    cfg.save()
    log.info("%s run %s: folder %s, warehouse %s", job, run_id, cfg.run_dir, cfg.warehouse)
    return str(cfg.run_dir)


def _cfg(run_dir: str) -> RunConfig:
    return RunConfig.load(run_dir)


def _logical_date_utc(cfg: RunConfig) -> datetime:
    """The run's logical date as the warehouse stores it (published_runs, forward_metrics): naive UTC."""
    return datetime.fromisoformat(cfg.logical_date).astimezone(UTC).replace(tzinfo=None)


def _manifest(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "manifest.json").read_text())


def _layout(run_dir: str) -> Layout:
    from pipeline.ingest.layouts import Layout

    return Layout.from_dict(_manifest(run_dir)["layout"])


@timed()
def fetch(run_dir: str) -> str:
    """Find the raw files (downloading ml-latest-small when no folder is given) and record them."""
    from pipeline.ingest.download import DownloadError, fetch_ml_latest_small, sha256_of
    from pipeline.ingest.layouts import LayoutError
    from pipeline.ingest.spec import resolve_dataset

    cfg = _cfg(run_dir)
    try:
        source = Path(cfg.dataset) if cfg.dataset else fetch_ml_latest_small(var_dir() / "data")
        folder, layout = resolve_dataset(source)
        files = {
            f.name: {"kind": f.kind, "bytes": (folder / f.name).stat().st_size, "sha256": sha256_of(folder / f.name)}
            for f in layout.files
            if (folder / f.name).is_file()
        }
    except (LayoutError, DownloadError, OSError) as exc:
        _record_fetch_stop(cfg, exc)
        raise
    manifest = {"folder": str(folder), "layout": layout.to_dict(), "files": files}
    (Path(run_dir) / "manifest.json").write_text(json.dumps(manifest, indent=2))
    log.info(
        "dataset %s: layout %s%s, files %s",
        folder,
        layout.name,
        f" ({layout.label})" * bool(layout.label),
        ", ".join(files),
    )
    return run_dir


def _record_fetch_stop(cfg: RunConfig, exc: Exception) -> None:
    """The dq_alerts row and the notification for an input problem that stops the run at fetch:
    the error names its rule (LayoutError, SpecError, DownloadError); an OSError is an unreadable file."""
    from pipeline.core import alerts
    from pipeline.ingest import dq_tables

    file = getattr(exc, "path", None) or getattr(exc, "filename", None) or cfg.dataset or "ml-latest-small download"
    rule = getattr(exc, "rule", "file_is_readable")
    alert = dq_tables.fetch_alert(cfg.run_id, str(file), rule, str(exc))
    try:
        with warehouse.connect(cfg.warehouse) as con:
            dq_tables.record_fetch_alert(con, alert, str(file), rule)
    except Exception as db_exc:  # the input problem is the news; a warehouse that cannot take it is logged
        log.error("could not record the input problem in dq_alerts: %s", db_exc)
    alerts.notify(alert)


@timed()
def validate(run_dir: str) -> str:
    """Run the GX suites; record results, alerts and quarantined rows; stop on critical failures."""
    from pipeline.core import alerts
    from pipeline.ingest import dq_tables
    from pipeline.ingest.validate import DataQualityError, validate_folder

    cfg, manifest = _cfg(run_dir), _manifest(run_dir)
    folder = manifest["folder"]
    with warehouse.connect(cfg.warehouse) as con:
        previous = _previous_counts(con, folder, cfg.run_id)
    docs_dir = var_dir() / "data_docs" / safe_name(cfg.run_id)
    report = validate_folder(
        Path(folder),
        _layout(run_dir),
        datetime.fromisoformat(cfg.logical_date),
        previous,
        docs_dir,
        staged_dir=Path(run_dir) / "staged",
    )
    with warehouse.connect(cfg.warehouse) as con:
        n_alerts = dq_tables.record_checks(con, cfg.run_id, report.results, report.quarantine, report.nulled)
        now = datetime.now(UTC).replace(tzinfo=None)
        con.execute("DELETE FROM dq_row_counts WHERE run_id = ?", [cfg.run_id])
        for kind, n in report.row_counts.items():
            con.execute(
                "INSERT INTO dq_row_counts VALUES (?, ?, ?, ?, ?, ?)", [cfg.run_id, folder, kind, n, report.passed, now]
            )
    alert = dq_tables.validation_alert(cfg.run_id, report.results, report.docs_index)
    if alert is not None:
        alerts.notify(alert)
    summary = {
        "passed": report.passed,
        "checks": len(report.results),
        "alerts": {s: sum(1 for f in report.failures if f.severity == s) for s in ("critical", "warning")},
        "rows": report.row_counts,
        "quarantined": _per_kind(report.quarantine),
        "nulled": _per_kind(report.nulled),
        "data_docs": report.docs_index,
    }
    (Path(run_dir) / "validation.json").write_text(json.dumps(summary, indent=2))
    log.info(
        "validation: %d checks, %d alerts (%d critical), quarantined %s, nulled and flagged %s; Data Docs: %s",
        len(report.results),
        n_alerts,
        summary["alerts"]["critical"],
        summary["quarantined"] or "nothing",
        summary["nulled"] or "nothing",
        report.docs_index,
    )
    if not report.passed:
        _report_before_failing(run_dir)  # whoever is paged sees the failed checks on the run's page too
        raise DataQualityError([r for r in report.results if r.blocking])
    return run_dir


def _per_kind(rows: pd.DataFrame) -> dict[str, int]:
    """Rows of a quarantine or nulled-values frame per file kind."""
    return {str(k): int(v) for k, v in rows["kind"].value_counts().items()}


def _previous_counts(con: duckdb.DuckDBPyConnection, dataset: str, run_id: str) -> dict[str, int]:
    """Row counts of the latest earlier run of this dataset that passed validation."""
    rows = con.execute(sql("queries/previous_row_counts"), {"dataset": dataset, "run_id": run_id}).fetchall()
    return dict(rows)


@timed()
def load(run_dir: str) -> str:
    """Replace the warehouse's data tables with this run's validated files, as of the logical date."""
    from pipeline.ingest.load import load_staged

    cfg = _cfg(run_dir)
    with warehouse.connect(cfg.warehouse) as con:
        counts = load_staged(con, Path(run_dir) / "staged", datetime.fromisoformat(cfg.logical_date))
    if not counts.get("ratings"):
        raise RuntimeError(f"no ratings before {cfg.logical_date}: nothing to train on")
    return run_dir


@timed()
def forward_evaluate(run_dir: str) -> str:
    """Score the lists published before this run against the ratings that arrived since (forward_metrics)."""
    from pipeline.evaluation import forward

    cfg, layout = _cfg(run_dir), _layout(run_dir)
    with warehouse.connect(cfg.warehouse) as con:
        forward.evaluate_previous(con, cfg.run_id, _logical_date_utc(cfg), layout.scale.like_threshold)
    return run_dir


@timed()
def features(run_dir: str) -> str:
    """Dense ids, genre multi-hot and user features, saved beside the indexed ratings."""
    from pipeline.ingest.features import build_features

    cfg = _cfg(run_dir)
    with warehouse.connect(cfg.warehouse) as con:
        feats, ratings = build_features(con)
    feats.save(Path(run_dir) / "features.npz")
    ratings.write_parquet(Path(run_dir) / "ratings.parquet")
    log.info(
        "features: %d users x %d user features, %d movies x %d genres",
        *feats.user_features.shape,
        *feats.movie_features.shape,
    )
    return run_dir


@timed()
def split(run_dir: str) -> str:
    """Protocol B's per-user temporal split; protocol A's random 70/15/15 too in an evaluation run."""
    import polars as pl

    from pipeline.evaluation.split import notebook_split, temporal_split

    ratings = pl.read_parquet(Path(run_dir) / "ratings.parquet")
    if _cfg(run_dir).notebook_protocol:
        notebook_split(ratings).write_parquet(Path(run_dir) / "split.parquet")
    temporal_split(ratings).write_parquet(Path(run_dir) / "temporal.parquet")
    return run_dir


def _model_dir(run_dir: str, name: str) -> Path:
    return Path(run_dir) / "models" / name


def model_names(run_dir: str) -> list[str]:
    """The run's models; Airflow maps train_model over them."""
    return list(_cfg(run_dir).models)


def train(run_dir: str) -> str:
    """Every configured model (the champion's production fit is fit_champion's)."""
    cfg = _cfg(run_dir)
    for name in cfg.models:
        train_model(run_dir, name)
    return run_dir


def use_task_threads() -> int:
    """Torch and BLAS threads for a heavy task: the machine's cores shared among the `training`
    pool's slots (MOVIELENS_TRAINING_SLOTS), so tasks running side by side do not oversubscribe."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = threads_per_task()
    torch.set_num_threads(threads)
    threadpool_limits(threads)  # EASE's LAPACK, scipy's sparse products
    return threads


@timed(lambda run_dir, name: f"train_model[{name}]")
def train_model(run_dir: str, name: str) -> str:
    """One model: protocol B (tuned on train_inner, judged on val; test figures from the tuned model
    in a nightly run, from a refit on train in an evaluation run) and, in an evaluation run, protocol A.
    Its metrics and schedule go to models/<name>/metrics.json."""
    import polars as pl

    from pipeline.evaluation.protocols import (
        FULL_RANKING,
        NOTEBOOK,
        full_ranking_protocol,
        notebook_protocol,
        read_for_models,
    )
    from pipeline.ingest.features import Features
    from pipeline.models import registry
    from pipeline.serving import run_report
    from pipeline.training.loop import select_device

    cfg, layout = _cfg(run_dir), _layout(run_dir)
    feats = Features.load(Path(run_dir) / "features.npz")
    out = _model_dir(run_dir, name)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (MODEL_FILE, run_report.PREDICTIONS_FILE):  # an earlier training's outputs are stale now
        (out / stale).unlink(missing_ok=True)
    model_class = registry.model_class(name)
    params = model_class.hyper_parameters({**cfg.train_overrides, **cfg.model_params.get(name, {})})
    reason = model_class.skip_reason(feats)
    if reason:
        log.info("model %s skipped: %s", name, reason)
        (out / "metrics.json").write_text(json.dumps({"model": name, "skipped": reason}, indent=2))
        return run_dir
    device = select_device(cfg.device)
    threads = use_task_threads()
    started = time.perf_counter()
    result: dict = {"model": name, "params": params, "device": str(device), "threads": threads}
    predictions, predictions_from = None, None
    if cfg.notebook_protocol:
        log.info("%s: protocol A (notebooks')", name)
        split_a = pl.read_parquet(Path(run_dir) / "split.parquet")
        result[NOTEBOOK], predictions = notebook_protocol(name, params, feats, split_a, layout.scale, device)
        predictions_from = "protocol A test"
    refit = cfg.job == EVALUATION
    log.info("%s: protocol B (full ranking; test figures from the %s)", name, "refit" if refit else "tuned model")
    split_b = read_for_models(Path(run_dir) / "temporal.parquet")
    result[FULL_RANKING], val_predictions = full_ranking_protocol(
        name,
        params,
        feats,
        split_b,
        layout.scale,
        device,
        checkpoint=out / CHECKPOINT_FILE,
        refit=refit,
        max_users=cfg.eval_max_users or None,
    )
    if predictions is None and val_predictions is not None:  # a nightly run's plots: B's validation ratings
        predictions, predictions_from = val_predictions, "protocol B validation"
    if predictions is not None:  # the report's rating plots, from a sample of the rows
        result["predictions"] = {"from": predictions_from, "rows": len(predictions)}
        run_report.sample_rows(predictions).write_parquet(out / run_report.PREDICTIONS_FILE)
    result["seconds"] = round(time.perf_counter() - started, 2)
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=str))
    log.info("%s: trained and evaluated in %.1fs", name, result["seconds"])
    return run_dir


@timed()
def evaluate(run_dir: str) -> str:
    """Every model's metrics into model_runs, a comparison table in the log, and the champion; a
    nightly run stops here (gate) when the champion is clearly worse than the published one."""
    from pipeline.core import alerts
    from pipeline.evaluation.champion import (
        RATER_TIE,
        ChampionGateError,
        champion_alert,
        choose_champion,
        choose_rater,
        comparison_table,
        gate,
        like_for_like,
        previous_champion,
        record_model_runs,
    )

    cfg = _cfg(run_dir)
    results = [json.loads((_model_dir(run_dir, n) / "metrics.json").read_text()) for n in cfg.models]
    trained = [r for r in results if "skipped" not in r]
    if not trained:
        reasons = "; ".join(f"{r['model']}: {r['skipped']}" for r in results)
        raise RuntimeError(f"no model could be trained: {reasons}")
    choice = choose_champion(trained, cfg.champion_metric)
    rater = choose_rater(trained)
    log.info(
        "model comparison (%s)\n%s",
        "A: notebooks' protocol, test; B: full ranking, test from a refit on train"
        if cfg.job == EVALUATION
        else "B: full ranking; test figures from the tuned model on test",
        comparison_table(results, choice.model),
    )
    dataset = _manifest(run_dir)["folder"]
    with warehouse.connect(cfg.warehouse) as con:
        previous = previous_champion(con, dataset, cfg.run_id, cfg.champion_metric)
        record_model_runs(con, cfg, dataset, results, choice.model, rater[0] if rater else None)
    if cfg.job == EVALUATION:  # publishes nothing: the nightly run's gate is not this job's to apply
        verdict = {**gate(choice, None, cfg.champion_tolerance), "publish": False}
        verdict["message"] = f"{verdict['message']}; an evaluation run publishes nothing"
    else:
        verdict = gate(choice, like_for_like(previous, trained, cfg.champion_metric), cfg.champion_tolerance)
    verdict["rater"] = {"model": rater[0], "val_rmse": rater[1]} if rater else None
    log.info(
        "predicted ratings from %s",
        f"{rater[0]} (validation RMSE {rater[1]:.4f} on the [0, 1] scale: the lowest of the rating models, "
        f"or within {RATER_TIE:.1%} of it and the quickest to fit)"
        if rater
        else "no model (none of this run's models predicts ratings): predicted_rating stays empty",
    )
    (Path(run_dir) / "champion.json").write_text(json.dumps(verdict, indent=2))
    log.info("%s", verdict["message"])
    if not verdict["publish"] and cfg.job != EVALUATION:
        with warehouse.connect(cfg.warehouse) as con:
            alert = champion_alert(con, cfg.run_id, verdict)
        alerts.notify(alert)
        _report_before_failing(run_dir)  # the held-back models' plots and metrics
        raise ChampionGateError(verdict["message"])
    return run_dir


def _production_model(run_dir: str, name: str) -> Recommender:
    """The champion refit on every rating up to the run's date, with the epochs and learning
    rates validation chose; saved in models/<name>/ so a re-run of score reuses it."""
    from pipeline.evaluation.protocols import FULL_RANKING, production_fit, read_for_models
    from pipeline.ingest.features import Features
    from pipeline.models import registry
    from pipeline.training.loop import select_device

    cfg, layout = _cfg(run_dir), _layout(run_dir)
    device = select_device(cfg.device)
    feats = Features.load(Path(run_dir) / "features.npz")
    path = _model_dir(run_dir, name) / MODEL_FILE
    if path.exists():
        return registry.load(name, path, feats, device)
    metrics = json.loads((_model_dir(run_dir, name) / "metrics.json").read_text())
    schedule, warm = metrics[FULL_RANKING]["schedule"], metrics[FULL_RANKING].get("warm_start")
    tuned_state = _tuned_state(run_dir, name, device) if warm else None
    if tuned_state is not None:
        how = f"{warm['epochs']} epochs on from the tuned weights"
    else:
        how = f"{schedule['epochs']} epochs from scratch" if schedule else "closed form"
    log.info("%s: production fit on every rating (%s)", name, how)
    model, fitted = production_fit(
        name,
        metrics["params"],
        feats,
        read_for_models(Path(run_dir) / "ratings.parquet"),
        layout.scale,
        device,
        schedule,
        warm,
        tuned_state,
    )
    model.save(path)
    (_model_dir(run_dir, name) / "production.json").write_text(json.dumps(fitted, indent=2))
    return model


def _tuned_state(run_dir: str, name: str, device: torch.device) -> dict | None:
    """The tuned model's best weights, from train_model's checkpoint (None, and a refit from
    scratch, when it is gone: a run folder from before warm starts, or one cleaned by hand)."""
    import torch

    path = _model_dir(run_dir, name) / CHECKPOINT_FILE
    if not path.exists():
        log.warning("%s: no tuned checkpoint at %s; the production fit starts from scratch", name, path)
        return None
    return torch.load(path, map_location=device, weights_only=False)["model"]


def _champion(run_dir: str) -> str:
    return json.loads((Path(run_dir) / "champion.json").read_text())["model"]


def _rater(run_dir: str) -> str | None:
    """The model whose predictions fill predicted_rating (None: no rating model in the run)."""
    rater = json.loads((Path(run_dir) / "champion.json").read_text()).get("rater")
    return rater["model"] if rater else None


SCORES_DIR = "scores"
# Shards are read once, by publish: lz4 writes 5M rows in 0.28 s against zstd's 0.49 s (131 vs 107 MB)
SHARD_COMPRESSION = "lz4"


@timed()
def fit_champion(run_dir: str) -> str:
    """Production fits of the champion, and of the retriever when scoring is two-stage; decides the path."""
    from pipeline.serving.recommend import needs_two_stage

    use_task_threads()
    cfg = _cfg(run_dir)
    name = _champion(run_dir)
    model = _production_model(run_dir, name)
    retriever = None
    if needs_two_stage(model, cfg.two_stage_from):
        if (_model_dir(run_dir, cfg.retriever) / "metrics.json").exists() and cfg.retriever != name:
            retriever = cfg.retriever
            _production_model(run_dir, retriever)
        else:
            log.warning(
                "%s on %d movies: two-stage scoring needs the retriever %s trained in this run; scoring every movie",
                name,
                model.n_movies,
                cfg.retriever,
            )
    rater = _rater(run_dir)
    if rater is not None and rater != name:
        log.info("%s ranks, %s rates: its production fit too", name, rater)
        _production_model(run_dir, rater)
    plan = {"model": name, "retriever": retriever, "candidates": cfg.candidates if retriever else None, "rater": rater}
    log.info(
        "scoring with %s: %s",
        name,
        f"two-stage, top {cfg.candidates} candidates from {retriever} re-ranked"
        if retriever
        else f"every movie scored ({model.n_movies} movies)",
    )
    (Path(run_dir) / "scoring.json").write_text(json.dumps(plan, indent=2))
    shutil.rmtree(Path(run_dir) / SCORES_DIR, ignore_errors=True)  # shards of an earlier attempt
    return run_dir


def score_shards(run_dir: str) -> list[int]:
    """Shard numbers of this run's users (`users_per_shard` each); Airflow maps score_shard over them."""
    from pipeline.ingest.features import Features

    cfg = _cfg(run_dir)
    n_users = len(Features.load(Path(run_dir) / "features.npz").user_ids)
    return list(range(max(1, -(-n_users // max(cfg.users_per_shard, 1)))))


@timed(lambda run_dir, shard: f"score_shard[{shard}]")
def score_shard(run_dir: str, shard: int) -> str:
    """Top-N for one range of users from the champion, written to scores/shard-NNNNN.parquet."""
    import numpy as np
    import polars as pl

    from pipeline.serving.recommend import Genres, top_n

    use_task_threads()
    cfg, layout = _cfg(run_dir), _layout(run_dir)
    plan = json.loads((Path(run_dir) / "scoring.json").read_text())
    model = _production_model(run_dir, plan["model"])
    retriever = _production_model(run_dir, plan["retriever"]) if plan["retriever"] else None
    rater = plan.get("rater")
    rater_model = None if rater is None else model if rater == plan["model"] else _production_model(run_dir, rater)
    users = np.arange(model.n_users)[shard * cfg.users_per_shard : (shard + 1) * cfg.users_per_shard]
    log.info(
        "shard %d: users %d..%d of %d",
        shard,
        users[0] if len(users) else 0,
        users[-1] if len(users) else 0,
        model.n_users,
    )
    ratings = pl.read_parquet(Path(run_dir) / "ratings.parquet")
    recs = top_n(
        model,
        ratings,
        cfg.top_n,
        users=users,
        retriever=retriever,
        candidates=cfg.candidates,
        min_history=cfg.min_history,
        genres=Genres(model.feats.movie_features, model.feats.genres),
        like_threshold=layout.scale.like_threshold,
        rater=rater_model,
    )
    ids_u, ids_m = model.feats.user_ids, model.feats.movie_ids
    reason_idx = recs["reason_movie_idx"].to_numpy()
    out = recs.select(
        pl.Series("user_id", ids_u[recs["user_idx"].to_numpy()]),
        "rank",
        pl.Series("movie_id", ids_m[recs["movie_idx"].to_numpy()]),
        "score",
        # stars on the dataset's scale from the run's rater (the lowest validation RMSE), whatever ranked
        (pl.col("predicted").cast(pl.Float64).fill_nan(None) * layout.scale.max).alias("predicted_rating"),
        # -1 means "no reason movie": null, never a sentinel id
        pl.when(pl.Series(reason_idx >= 0))
        .then(pl.Series(ids_m[np.clip(reason_idx, 0, None)]))
        .alias("reason_movie_id"),
        "reason_rating",
        "reason_genres",
        "reason_popularity",
        "popular_from",
        "popular_to",
        "is_fallback",
    )
    folder = Path(run_dir) / SCORES_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"shard-{shard:05d}.parquet"
    out.write_parquet(path.with_suffix(".tmp"), compression=SHARD_COMPRESSION)
    crashpoints.reached("shard.written")
    path.with_suffix(".tmp").replace(path)  # a retried shard never leaves half a file
    crashpoints.reached("shard.renamed")
    return run_dir


def score(run_dir: str) -> str:
    """Every shard in this process (the CLI's path; Airflow maps score_shard over the shards)."""
    fit_champion(run_dir)
    for shard in score_shards(run_dir):
        score_shard(run_dir, shard)
    return run_dir


@timed()
def publish(run_dir: str) -> str:
    """Make this run's recommendations current (all or nothing), then replace the serving file."""
    from pipeline.serving import serving_file
    from pipeline.serving.publish import publish as publish_rows

    cfg = _cfg(run_dir)
    if cfg.job == EVALUATION:
        raise RuntimeError(f"run {cfg.run_id} is an evaluation run: it publishes nothing")
    expected = {f"shard-{s:05d}.parquet" for s in score_shards(run_dir)}
    present = {p.name for p in (Path(run_dir) / SCORES_DIR).glob("shard-*.parquet")}
    if expected != present:
        raise RuntimeError(
            f"run {cfg.run_id} not published: scoring shards missing {sorted(expected - present)}, "
            f"unexpected {sorted(present - expected)} in {Path(run_dir) / SCORES_DIR}"
        )
    log.info(
        "publishing run %s: %d shard file(s) into %s, then the serving file", cfg.run_id, len(present), cfg.warehouse
    )
    with warehouse.connect(cfg.warehouse) as con:
        publish_rows(
            con,
            cfg.run_id,
            Path(run_dir) / SCORES_DIR / "shard-*.parquet",
            _champion(run_dir),
            _manifest(run_dir)["folder"],
            cfg.top_n,
            logical_date=_logical_date_utc(cfg),
            keep_runs=cfg.keep_runs,
            rating_model=_rater(run_dir),
        )
        crashpoints.reached("publish.committed")
        serving_file.export(con, serving_target(cfg))
    return run_dir


def serving_target(cfg: RunConfig) -> Path:
    from pipeline.serving import serving_file

    return Path(cfg.serving) if cfg.serving else serving_file.serving_path(cfg.warehouse)


def _html_report(run_dir: str, con: duckdb.DuckDBPyConnection) -> Path:
    """The run's HTML page, its path logged and recorded on the run's model_runs rows."""
    from pipeline.serving import run_report

    page = run_report.build(run_dir, con)
    con.execute(sql("report/record_path"), {"path": str(page), "run_id": _cfg(run_dir).run_id})
    log.info("report: %s", page)
    return page


def _report_before_failing(run_dir: str) -> None:
    """The page of a run about to fail; a fault in it must not hide why the run failed."""
    try:
        with warehouse.connect(_cfg(run_dir).warehouse) as con:
            _html_report(run_dir, con)
    except Exception as exc:  # any fault: the run's own error follows and matters more
        log.warning("report not written: %s: %s", type(exc).__name__, exc)


@timed()
def report(run_dir: str) -> str:
    """A short run summary in the log and in report.json; the HTML report, its path in model_runs;
    the table of every task's seconds last in the log."""
    from pipeline.core import timings

    started = time.perf_counter()
    cfg = _cfg(run_dir)
    with warehouse.connect(cfg.warehouse) as con:
        page = _html_report(run_dir, con)
        counts = dict(
            con.execute(
                "SELECT 'ratings', count(*) FROM ratings UNION ALL SELECT 'users with recommendations', "
                "count(DISTINCT user_id) FROM current_recommendations UNION ALL SELECT 'recommendation rows', "
                "count(*) FROM current_recommendations"
            ).fetchall()
        )
    tasks = timings.collect(run_dir)
    tasks.append({"task": "report", "seconds": round(time.perf_counter() - started, 2), "startup_s": None})
    summary = {
        "run_id": cfg.run_id,
        "job": cfg.job,
        "dataset": _manifest(run_dir)["folder"],
        "layout": _manifest(run_dir)["layout"],
        "counts": counts,
        "champion": json.loads((Path(run_dir) / "champion.json").read_text()),
        "models": {n: json.loads((_model_dir(run_dir, n) / "metrics.json").read_text()) for n in cfg.models},
        "validation": json.loads((Path(run_dir) / "validation.json").read_text()),
        "timings": {"tasks": tasks, "wall_s": timings.wall_s(tasks)},
        "warehouse": cfg.warehouse,
        "html": str(page),
    }
    (Path(run_dir) / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    log.info("run %s done: %s; warehouse %s", cfg.run_id, counts, cfg.warehouse)
    log.info("seconds per task (start-up: process start to the stage, imports included)\n%s", timings.table(tasks))
    return run_dir


# The stages in order, in one process (the CLI's path; Airflow runs each as a task)
STAGES = (fetch, validate, load, forward_evaluate, features, split, train, evaluate, score, publish, report)
# The weekly evaluation job's: nothing published, no forward evaluation of published lists
EVALUATION_STAGES = (fetch, validate, load, features, split, train, evaluate, report)


def run_all(run_dir: str, until: str | None = None) -> str:
    """Every stage of the run's job in order (up to `until`), in this process."""
    stages = EVALUATION_STAGES if _cfg(run_dir).job == EVALUATION else STAGES
    for stage in stages:
        started = time.perf_counter()
        log.info("== %s", stage.__name__)
        stage(run_dir)
        log.info("== %s done in %.1fs", stage.__name__, time.perf_counter() - started)
        if stage.__name__ == until:
            break
    return run_dir
