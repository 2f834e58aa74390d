"""The job's stages, each taking the run folder and leaving its outputs there.

Airflow tasks and the CLI both call these; between tasks only the run
folder's path travels (XCom), and every stage can be re-run alone.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import torch

from pipeline import alerts, warehouse
from pipeline.config import RunConfig, TrainParams, default_warehouse, safe_name, var_dir
from pipeline.datasets.download import fetch_ml_latest_small, sha256_of
from pipeline.datasets.layouts import Layout
from pipeline.datasets.spec import resolve_dataset
from pipeline.evaluate import rating_metrics, rerank_metrics
from pipeline.features import Features, build_features
from pipeline.load import load_staged
from pipeline.models.neumf_features import NeuMFFeatures
from pipeline.publish import publish as publish_rows
from pipeline.recommend import top_n
from pipeline.split import TEST, TRAIN, VAL, notebook_split
from pipeline.sqlfiles import sql
from pipeline.train import fit, predict, select_device, triples
from pipeline.validate import DataQualityError, validate_folder

log = logging.getLogger(__name__)

MODELS = ("neumf_features",)


def prepare(
    run_id: str,
    logical_date: datetime,
    dataset: str | None = None,
    warehouse_path: str | Path | None = None,
    top_n_items: int = 100,
    max_epochs: int | None = None,
    device: str = "auto",
    model: str = "neumf_features",
) -> str:
    """Create the run folder with its config; return its path."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; available: {', '.join(MODELS)}")
    params = TrainParams()
    if max_epochs is not None:
        params.max_epochs = int(max_epochs)
    cfg = RunConfig(
        run_id=run_id,
        dataset=str(Path(dataset).resolve()) if dataset else "",
        warehouse=str(Path(warehouse_path or default_warehouse()).resolve()),
        logical_date=logical_date.astimezone(UTC).isoformat(),
        top_n=int(top_n_items),
        model=model,
        device=device,
        train=params,
    )
    cfg.save()
    log.info("run %s: folder %s, warehouse %s", run_id, cfg.run_dir, cfg.warehouse)
    return str(cfg.run_dir)


def _cfg(run_dir: str) -> RunConfig:
    return RunConfig.load(run_dir)


def _manifest(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "manifest.json").read_text())


def _layout(run_dir: str) -> Layout:
    return Layout.from_dict(_manifest(run_dir)["layout"])


def fetch(run_dir: str) -> str:
    """Find the raw files (downloading ml-latest-small when no folder is given) and record them."""
    cfg = _cfg(run_dir)
    source = Path(cfg.dataset) if cfg.dataset else fetch_ml_latest_small(var_dir() / "data")
    folder, layout = resolve_dataset(source)
    files = {
        f.name: {"kind": f.kind, "bytes": (folder / f.name).stat().st_size, "sha256": sha256_of(folder / f.name)}
        for f in layout.files
        if (folder / f.name).is_file()
    }
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


def validate(run_dir: str) -> str:
    """Run the GX suites; record results, alerts and quarantined rows; stop on critical failures."""
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
        n_alerts = alerts.record_checks(con, cfg.run_id, report.results, report.quarantine)
        now = datetime.now(UTC).replace(tzinfo=None)
        con.execute("DELETE FROM dq_row_counts WHERE run_id = ?", [cfg.run_id])
        for kind, n in report.row_counts.items():
            con.execute(
                "INSERT INTO dq_row_counts VALUES (?, ?, ?, ?, ?, ?)", [cfg.run_id, folder, kind, n, report.passed, now]
            )
    alert = alerts.validation_alert(cfg.run_id, report.results, report.docs_index)
    if alert is not None:
        alerts.notify(alert)
    quarantined = report.quarantine.groupby("kind").size().to_dict() if len(report.quarantine) else {}
    summary = {
        "passed": report.passed,
        "checks": len(report.results),
        "alerts": {s: sum(1 for f in report.failures if f.severity == s) for s in ("critical", "warning")},
        "rows": report.row_counts,
        "quarantined": {k: int(v) for k, v in quarantined.items()},
        "data_docs": report.docs_index,
    }
    (Path(run_dir) / "validation.json").write_text(json.dumps(summary, indent=2))
    log.info(
        "validation: %d checks, %d alerts (%d critical), quarantined %s; Data Docs: %s",
        len(report.results),
        n_alerts,
        summary["alerts"]["critical"],
        summary["quarantined"] or "nothing",
        report.docs_index,
    )
    if not report.passed:
        raise DataQualityError([r for r in report.results if r.blocking])
    return run_dir


def _previous_counts(con: duckdb.DuckDBPyConnection, dataset: str, run_id: str) -> dict[str, int]:
    """Row counts of the latest earlier run of this dataset that passed validation."""
    rows = con.execute(sql("queries/previous_row_counts"), {"dataset": dataset, "run_id": run_id}).fetchall()
    return dict(rows)


def load(run_dir: str) -> str:
    """Replace the warehouse's data tables with this run's validated files, as of the logical date."""
    cfg = _cfg(run_dir)
    with warehouse.connect(cfg.warehouse) as con:
        counts = load_staged(con, Path(run_dir) / "staged", datetime.fromisoformat(cfg.logical_date))
    if not counts.get("ratings"):
        raise RuntimeError(f"no ratings before {cfg.logical_date}: nothing to train on")
    return run_dir


def features(run_dir: str) -> str:
    """Dense ids, genre multi-hot and user features, saved beside the indexed ratings."""
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


def split(run_dir: str) -> str:
    """The notebooks' per-user random 70/15/15 split."""
    notebook_split(pl.read_parquet(Path(run_dir) / "ratings.parquet")).write_parquet(Path(run_dir) / "split.parquet")
    return run_dir


def _build_model(cfg: RunConfig, feats: Features) -> NeuMFFeatures:
    return NeuMFFeatures.from_features(feats, cfg.train)


def train(run_dir: str) -> str:
    """Train the configured model on the train split, early-stopping on validation."""
    cfg, layout = _cfg(run_dir), _layout(run_dir)
    feats = Features.load(Path(run_dir) / "features.npz")
    data = pl.read_parquet(Path(run_dir) / "split.parquet")
    device = select_device(cfg.device)
    torch.manual_seed(cfg.train.seed)
    model = _build_model(cfg, feats)
    log.info(
        "training %s on %s (%d train / %d val ratings)",
        cfg.model,
        device,
        (data["split"] == TRAIN).sum(),
        (data["split"] == VAL).sum(),
    )
    result = fit(
        model,
        triples(data.filter(pl.col("split") == TRAIN), layout.scale),
        triples(data.filter(pl.col("split") == VAL), layout.scale),
        cfg.train,
        device,
    )
    torch.save(model.state_dict(), Path(run_dir) / "model.pt")
    summary = {**asdict(result), "device": str(device)}
    (Path(run_dir) / "train.json").write_text(json.dumps(summary, indent=2))
    return run_dir


def _load_model(run_dir: str) -> tuple[RunConfig, Features, NeuMFFeatures, torch.device]:
    """The trained model on the run's device, with its config and features."""
    cfg = _cfg(run_dir)
    device = select_device(cfg.device)
    feats = Features.load(Path(run_dir) / "features.npz")
    model = _build_model(cfg, feats)
    model.load_state_dict(torch.load(Path(run_dir) / "model.pt", map_location=device))
    return cfg, feats, model.to(device), device


def evaluate(run_dir: str) -> str:
    """Test-split metrics of the notebooks' protocol, into metrics.json and model_runs."""
    layout = _layout(run_dir)
    cfg, _, model, device = _load_model(run_dir)
    test = pl.read_parquet(Path(run_dir) / "split.parquet").filter(pl.col("split") == TEST)
    users, movies, target = triples(test, layout.scale)
    pred = predict(model, users.to(device), movies.to(device)).cpu().numpy()
    metrics = {
        "protocol": "notebook (per-user random 70/15/15, re-rank own test items)",
        **rating_metrics(pred, target.numpy(), layout.scale.max),
        **rerank_metrics(test["user_id"].to_numpy(), pred, test["rating"].to_numpy(), layout.scale.like_threshold),
    }
    (Path(run_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    trained = json.loads((Path(run_dir) / "train.json").read_text())
    with warehouse.connect(cfg.warehouse) as con:
        con.execute("DELETE FROM model_runs WHERE run_id = ? AND model = ?", [cfg.run_id, cfg.model])
        con.execute(
            "INSERT INTO model_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                cfg.run_id,
                datetime.fromisoformat(cfg.logical_date).replace(tzinfo=None),
                _manifest(run_dir)["folder"],
                cfg.model,
                json.dumps(asdict(cfg.train)),
                json.dumps(metrics),
                trained["device"],
                trained["seconds"],
                True,
                datetime.now(UTC).replace(tzinfo=None),
            ],
        )
    log.info(
        "test (notebook protocol): RMSE %.4f (%.3f stars)  MAE %.3f stars  R2 %.3f  P@10 %.3f  R@10 %.3f  NDCG@10 %.3f",
        metrics["rmse"],
        metrics["rmse_stars"],
        metrics["mae_stars"],
        metrics["r2"],
        metrics["precision@10"],
        metrics["recall@10"],
        metrics["ndcg@10"],
    )
    return run_dir


def score(run_dir: str) -> str:
    """Top-N unseen movies for every user, with the movie behind each reason."""
    layout = _layout(run_dir)
    cfg, feats, model, device = _load_model(run_dir)
    ratings = pl.read_parquet(Path(run_dir) / "ratings.parquet")
    train_rows = pl.read_parquet(Path(run_dir) / "split.parquet").filter(pl.col("split") == TRAIN)
    recs = top_n(model, ratings, train_rows, len(feats.user_ids), len(feats.movie_ids), cfg.top_n, device)
    ids_u, ids_m = feats.user_ids, feats.movie_ids
    reason_idx = recs["reason_movie_idx"].to_numpy()
    out = recs.select(
        pl.Series("user_id", ids_u[recs["user_idx"].to_numpy()]),
        "rank",
        pl.Series("movie_id", ids_m[recs["movie_idx"].to_numpy()]),
        "score",
        # stars on the dataset's scale; a popularity fallback predicts no rating
        pl.when(~pl.col("is_fallback")).then(pl.col("score") * layout.scale.max).alias("predicted_rating"),
        # -1 means "no reason movie": null, never a sentinel id
        pl.when(pl.Series(reason_idx >= 0))
        .then(pl.Series(ids_m[np.clip(reason_idx, 0, None)]))
        .alias("reason_movie_id"),
        "reason_rating",
        "is_fallback",
    )
    out.write_parquet(Path(run_dir) / "recommendations.parquet")
    return run_dir


def publish(run_dir: str) -> str:
    """Make this run's recommendations current (all or nothing)."""
    cfg = _cfg(run_dir)
    with warehouse.connect(cfg.warehouse) as con:
        publish_rows(
            con,
            cfg.run_id,
            Path(run_dir) / "recommendations.parquet",
            cfg.model,
            _manifest(run_dir)["folder"],
            cfg.top_n,
        )
    return run_dir


def report(run_dir: str) -> str:
    """A short run summary in the log and in report.json."""
    cfg = _cfg(run_dir)
    with warehouse.connect(cfg.warehouse) as con:
        counts = dict(
            con.execute(
                "SELECT 'ratings', count(*) FROM ratings UNION ALL SELECT 'users with recommendations', "
                "count(DISTINCT user_id) FROM current_recommendations UNION ALL SELECT 'recommendation rows', "
                "count(*) FROM current_recommendations"
            ).fetchall()
        )
    summary = {
        "run_id": cfg.run_id,
        "dataset": _manifest(run_dir)["folder"],
        "layout": _manifest(run_dir)["layout"],
        "counts": counts,
        "training": json.loads((Path(run_dir) / "train.json").read_text()),
        "metrics": json.loads((Path(run_dir) / "metrics.json").read_text()),
        "validation": json.loads((Path(run_dir) / "validation.json").read_text()),
        "warehouse": cfg.warehouse,
    }
    (Path(run_dir) / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    log.info("run %s done: %s; warehouse %s", cfg.run_id, counts, cfg.warehouse)
    return run_dir


STAGES = (fetch, validate, load, features, split, train, evaluate, score, publish, report)


def run_all(run_dir: str) -> str:
    """Every stage in order, in this process (the CLI's path; Airflow runs them as tasks)."""
    for stage in STAGES:
        started = time.perf_counter()
        log.info("== %s", stage.__name__)
        stage(run_dir)
        log.info("== %s done in %.1fs", stage.__name__, time.perf_counter() - started)
    return run_dir
