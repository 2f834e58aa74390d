"""Run settings: defaults, environment overrides and the per-run working folder."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
# The nightly job's default set: the models that compete for the table (the weekly evaluation
# job compares every model of pipeline.models.registry). The other notebook models rank far
# below these on validation and took most of a night's training time (issue 18).
NIGHTLY_MODELS = ("most_popular", "ease", "biased_mf", "neumf_features", "sasrec")


# What a run is for. "nightly": decide on validation alone, test figures from the tuned model,
# production fits of the champion and the rater only, publish. "evaluation" (the weekly job):
# every model under both protocols, refit on train for test figures, publish nothing.
NIGHTLY, EVALUATION = "nightly", "evaluation"
JOBS = (NIGHTLY, EVALUATION)


# The Airflow pool the training and scoring tasks share (dags/movielens_nightly.py, ops/pools.py)
TRAINING_POOL = "training"
# The pool of the tasks that open the warehouse, one slot: DuckDB lets one process write a file,
# and the nightly, replay and evaluation DAGs share it
WAREHOUSE_POOL = "warehouse"


def training_slots(environ: Mapping[str, str] | None = None) -> int:
    """Heavy (torch, BLAS) tasks that run well side by side here: the `training` pool's slots.
    One per 4 cores (1 on a 2-core machine: two torch tasks on 2 cores thrash, a task measured at
    190 s alone took 1,811 s beside two others); MOVIELENS_TRAINING_SLOTS (in `environ`, default
    this process's environment) overrides."""
    configured = (os.environ if environ is None else environ).get("MOVIELENS_TRAINING_SLOTS", "").strip()
    if configured:
        return max(1, int(configured))
    return max(1, (os.cpu_count() or 1) // 4)


def threads_per_task(environ: Mapping[str, str] | None = None) -> int:
    """Threads a heavy task may use: the cores shared among the training pool's slots."""
    return max(1, (os.cpu_count() or 1) // training_slots(environ))


def var_dir() -> Path:
    """Where run artefacts and downloads live (git-ignored); MOVIELENS_VAR_DIR overrides."""
    return Path(os.environ.get("MOVIELENS_VAR_DIR", PROJECT_ROOT / "var")).resolve()


def default_warehouse() -> Path:
    return Path(os.environ.get("MOVIELENS_WAREHOUSE", PROJECT_ROOT / "warehouse" / "movielens.duckdb")).resolve()


@dataclass
class TrainParams:
    """Trainer settings shared by the neural models; defaults are the notebook's.

    Each model adds its own (pipeline/models/registry.py) and a run may
    override any of them per model (RunConfig.model_params).
    """

    embedding_dim: int = 32
    hidden: tuple[int, ...] = (128, 64, 32)
    dropout: float = 0.3
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's; SASRec's reference uses (0.9, 0.98)
    weight_decay: float = 1e-5
    batch_size: int = 1024
    max_epochs: int = 30
    patience: int = 5
    # the relative gain on the validation figure that counts as an improvement for early stopping
    min_delta: float = 0.0
    lr_patience: int = 2
    lr_factor: float = 0.5
    seed: int = 0
    amp: bool = True  # bfloat16 autocast on CUDA
    # bfloat16 autocast on CPUs with native bf16 (AVX512-BF16, AMX) too; off where a model did not
    # measure a gain (sasrec: 1.9x per training step on this CPU, pipeline/models/registry.py)
    cpu_amp: bool = False
    # sampled unrated movies per rated pair for the interaction (ranking) head;
    # 0 trains the rating alone, as the notebooks did, and then ranks by rating
    negatives: int = 0
    interaction_weight: float = 0.1
    # embedding tables with sparse gradients, updated by SparseAdam (lazy: only the rows a batch
    # touched): a dense Adam step reads and writes every row of every table, which at ml-25m's
    # 162,000 users and 59,000 movies is most of a step (bench/train_sparse.py). No weight decay
    # reaches these tables (SparseAdam has none). "auto": sparse above SPARSE_ABOVE_ROWS table rows
    # (pipeline/training/loop.py), dense and weight-decayed below, where a dense step is cheap
    sparse_embeddings: bool | str = False
    # production refit: 0 replays the tuned run's epochs from scratch on every rating; n > 0 continues
    # the tuned weights for n epochs instead (pipeline/protocols.py; bench/warm_refit.py measures it)
    warm_epochs: int = 0


@dataclass
class RunConfig:
    """Everything one run needs; travels between tasks as a small JSON file."""

    run_id: str
    dataset: str
    warehouse: str
    logical_date: str  # ISO date-time; ratings at or after it are not seen
    top_n: int = 100
    # the file consumers read, replaced atomically after each publish ("" = beside the warehouse)
    serving: str = ""
    # published runs whose rows `recommendations` keeps
    keep_runs: int = 7
    # scoring: users per shard (one Airflow mapped task each), the fewest training
    # ratings for a personal list (fewer: popularity fallback), and two-stage
    # scoring for MLP models on catalogues of `two_stage_from` movies or more:
    # `retriever` keeps `candidates` movies per user, the MLP re-ranks them
    users_per_shard: int = 50_000
    min_history: int = 3
    two_stage_from: int = 20_000
    retriever: str = "biased_mf"
    candidates: int = 500
    models: list[str] = field(default_factory=list)  # names of pipeline.models.registry
    device: str = "auto"
    # trainer settings set for this run (e.g. max_epochs), over every model's own defaults
    train_overrides: dict = field(default_factory=dict)
    # per model, hyper-parameters over the registry's defaults, e.g. {"ease": {"lam": 500}}
    model_params: dict[str, dict] = field(default_factory=dict)
    job: str = NIGHTLY
    # protocol A is for comparison with the notebooks: the evaluation job runs it, the nightly one not
    notebook_protocol: bool = False
    # protocol B ranks at most this many users per split, drawn with a fixed seed (0: all);
    # model_runs.eval_sample_users records it where a split had more
    eval_max_users: int = 20_000
    # "<protocol>.<split>.<metric>" from the models' metrics; higher is better
    champion_metric: str = "full_ranking.val.ndcg@10"
    # a champion worse than the last published one by more than this is not published
    champion_tolerance: float = 0.01

    def logical_date_utc(self) -> datetime:
        """The run's logical date as the warehouse stores it (published_runs, forward_metrics): naive UTC."""
        return datetime.fromisoformat(self.logical_date).astimezone(UTC).replace(tzinfo=None)


def safe_name(text: str) -> str:
    """A run id as a folder name (Airflow run ids hold ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
