"""Train one model (default neumf_features) and score top-N on one device, from a prepared run folder.

Prints seconds per epoch, training samples/s, the notebook-protocol test
metrics and the time to score every user, as JSON. Needs only torch, numpy,
polars and scikit-learn (no Airflow, GX or DuckDB), so it also runs on a GPU
machine with a copied run folder:

    python bench/train_score_device.py var/runs/<run_id> --device cuda
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.core.metrics import rating_metrics, rerank_metrics
from pipeline.core.run_folder import RunFolder
from pipeline.evaluation.split import TEST, TRAIN, VAL
from pipeline.ingest.features import Features
from pipeline.ingest.layouts import RatingScale
from pipeline.models import registry
from pipeline.serving.recommend import top_n
from pipeline.training import fit
from pipeline.training.loop import select_device
from pipeline.training.recipe import ratings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--model", default="neumf_features", choices=list(registry.NAMES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--negatives", type=int, default=None, help="0: rating only, as the notebooks")
    parser.add_argument("--rating-max", type=float, default=5.0)
    parser.add_argument("--top-n", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    run = Path(args.run_dir)
    overrides = {
        k: v
        for k, v in {"max_epochs": args.epochs, "batch_size": args.batch_size, "negatives": args.negatives}.items()
        if v is not None
    }
    params = registry.model_class(args.model).hyper_parameters(overrides)
    feats = Features.load(RunFolder(run).features)
    split = pl.read_parquet(RunFolder(run).notebook_split)
    device = select_device(args.device)
    scale = RatingScale(1.0, args.rating_max, 1.0)

    def part(split_id: int):
        return ratings(split.filter(pl.col("split") == split_id), scale)

    model = registry.create(args.model, params, feats, device)
    result = fit(model, part(TRAIN), part(VAL))
    test = split.filter(pl.col("split") == TEST)
    pred = model.predict(test["user_idx"].to_numpy(), test["movie_idx"].to_numpy())
    metrics = {
        **rating_metrics(pred, part(TEST).values, args.rating_max),
        **rerank_metrics(test["user_id"].to_numpy(), pred, test["rating"].to_numpy(), scale.like_threshold),
    }
    all_ratings = pl.read_parquet(RunFolder(run).ratings)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    recs = top_n(model, all_ratings, args.top_n, train=split.filter(pl.col("split") == TRAIN))
    if device.type == "cuda":
        torch.cuda.synchronize()
    score_s = time.perf_counter() - started
    epoch_s = [h["seconds"] for h in result.history]
    print(
        json.dumps(
            {
                "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
                "torch": torch.__version__,
                "model": args.model,
                "batch_size": params["batch_size"],
                "negatives": params.get("negatives", 0),
                "epochs": len(epoch_s),
                "best_epoch": result.best_epoch,
                "seconds_per_epoch_median": float(np.median(epoch_s)),
                "train_samples_per_s": result.samples_per_s,
                "train_seconds": result.seconds,
                "score_users": int(recs["user_idx"].n_unique()),
                "score_seconds": score_s,
                "score_users_per_s": recs["user_idx"].n_unique() / score_s,
                "test_metrics": metrics,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
