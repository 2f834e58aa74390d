"""Run settings: defaults, environment overrides and the per-run working folder."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"


def var_dir() -> Path:
    """Where run artefacts and downloads live (git-ignored); MOVIELENS_VAR_DIR overrides."""
    return Path(os.environ.get("MOVIELENS_VAR_DIR", PROJECT_ROOT / "var")).resolve()


def default_warehouse() -> Path:
    return Path(os.environ.get("MOVIELENS_WAREHOUSE", PROJECT_ROOT / "warehouse" / "movielens.duckdb")).resolve()


@dataclass
class TrainParams:
    """neumf_features hyper-parameters; defaults are the notebook's."""

    embedding_dim: int = 32
    hidden: tuple[int, ...] = (128, 64, 32)
    dropout: float = 0.3
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 1024
    max_epochs: int = 30
    patience: int = 5
    lr_patience: int = 2
    lr_factor: float = 0.5
    seed: int = 0


@dataclass
class RunConfig:
    """Everything one run needs; travels between tasks as a small JSON file."""

    run_id: str
    dataset: str
    warehouse: str
    logical_date: str  # ISO date-time; ratings at or after it are not seen
    top_n: int = 100
    model: str = "neumf_features"
    device: str = "auto"
    train: TrainParams = field(default_factory=TrainParams)

    @property
    def run_dir(self) -> Path:
        return var_dir() / "runs" / safe_name(self.run_id)

    def save(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "config.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> RunConfig:
        data = json.loads((Path(run_dir) / "config.json").read_text())
        train = data.pop("train")
        train["hidden"] = tuple(train["hidden"])
        return cls(train=TrainParams(**train), **data)


def safe_name(text: str) -> str:
    """A run id as a folder name (Airflow run ids hold ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
