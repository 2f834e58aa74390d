"""A run's working folder, and the name of every file in it.

Each stage reads what earlier stages left and writes its own outputs here;
between Airflow tasks only the folder's path travels (XCom). Every name is
this class's, so no stage knows another stage's file names, and a newcomer
reads the whole layout of a run in one place:

    config.json            prepare        the run's settings (RunConfig)
    manifest.json          fetch          the raw files found, their sizes, hashes and layout
    staged/                validate       typed rows that passed, one Parquet folder per file kind
    validation.json        validate       checks, alerts, quarantined and nulled rows per kind
    features.npz           features       dense ids and side features
    ratings.parquet        features       every rating up to the run's date, with dense indices
    split.parquet          split          protocol A's random split (evaluation job only)
    temporal.parquet       split          protocol B's per-user temporal split
    models/<name>/         train_model    metrics.json, checkpoint.pt, test_predictions.parquet;
                           fit_champion   model.bin and production.json (the production fit)
    champion.json          evaluate       the verdict: champion, rater, gate
    scoring.json           fit_champion   how scoring runs: model, retriever, rater
    scores/shard-N.parquet score_shard    top-N rows of one user shard
    report/index.html      report         the run's page and its plots
    report.json            report         the run's summary
    timings/<task>.json    every stage    seconds, start-up and peak memory per task
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.core.config import RunConfig, safe_name, var_dir


class RunFolder:
    """The files of one run (var/runs/<run id>), by what they hold."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of_run(cls, run_id: str) -> RunFolder:
        """Where a run keeps its files: var/runs/<run id made safe for a path>."""
        return cls(var_dir() / "runs" / safe_name(run_id))

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- what each stage leaves --------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def staged(self) -> Path:
        return self.path / "staged"

    @property
    def validation(self) -> Path:
        return self.path / "validation.json"

    @property
    def features(self) -> Path:
        return self.path / "features.npz"

    @property
    def ratings(self) -> Path:
        return self.path / "ratings.parquet"

    @property
    def notebook_split(self) -> Path:
        return self.path / "split.parquet"

    @property
    def temporal_split(self) -> Path:
        return self.path / "temporal.parquet"

    def model_dir(self, name: str) -> Path:
        return self.path / "models" / name

    def metrics(self, name: str) -> Path:
        """A model's protocol figures, schedule and parameters (train_model)."""
        return self.model_dir(name) / "metrics.json"

    def checkpoint(self, name: str) -> Path:
        """The tuned model's best epoch, which a warm production fit continues."""
        return self.model_dir(name) / "checkpoint.pt"

    def predictions(self, name: str) -> Path:
        """A sample of rated pairs beside the model's predictions, for the report's plots."""
        return self.model_dir(name) / "test_predictions.parquet"

    def production_model(self, name: str) -> Path:
        """The production fit, which scoring publishes from."""
        return self.model_dir(name) / "model.bin"

    def production_fit(self, name: str) -> Path:
        """How the production fit went (epochs, start, seconds)."""
        return self.model_dir(name) / "production.json"

    @property
    def champion(self) -> Path:
        return self.path / "champion.json"

    @property
    def scoring(self) -> Path:
        return self.path / "scoring.json"

    @property
    def scores(self) -> Path:
        return self.path / "scores"

    def shard(self, number: int) -> Path:
        return self.scores / f"shard-{number:05d}.parquet"

    @property
    def shard_glob(self) -> Path:
        """Every shard file, as a pattern DuckDB and Polars read."""
        return self.scores / "shard-*.parquet"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @property
    def report_page(self) -> Path:
        return self.report_dir / "index.html"

    @property
    def report_summary(self) -> Path:
        return self.path / "report.json"

    @property
    def timings(self) -> Path:
        return self.path / "timings"

    # -- reading and writing -----------------------------------------------
    def load_config(self) -> RunConfig:
        return RunConfig(**self.read(self.config))

    def save_config(self, cfg: RunConfig) -> None:
        self.write(self.config, asdict(cfg))

    @staticmethod
    def read(path: Path) -> Any:
        """A JSON file of the run."""
        return json.loads(path.read_text())

    @staticmethod
    def read_if_present(path: Path) -> Any | None:
        return json.loads(path.read_text()) if path.is_file() else None

    @staticmethod
    def write(path: Path, data: Any) -> Path:
        """A JSON file of the run, written whole or not at all (renamed into place)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, indent=2, default=str))
        partial.replace(path)
        return path
