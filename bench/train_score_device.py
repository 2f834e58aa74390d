"""Train neumf_features and score top-N on one device, from a prepared run folder.

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

from pipeline.config import RunConfig
from pipeline.datasets.layouts import RatingScale
from pipeline.evaluate import rating_metrics, rerank_metrics
from pipeline.features import Features
from pipeline.models.neumf_features import NeuMFFeatures
from pipeline.recommend import top_n
from pipeline.split import TEST, TRAIN, VAL
from pipeline.train import fit, predict, select_device, triples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--rating-max", type=float, default=5.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    run = Path(args.run_dir)
    cfg = RunConfig.load(run)
    if args.epochs:
        cfg.train.max_epochs = args.epochs
    if args.batch_size:
        cfg.train.batch_size = args.batch_size
    feats = Features.load(run / "features.npz")
    split = pl.read_parquet(run / "split.parquet")
    device = select_device(args.device)
    scale = RatingScale(1.0, args.rating_max, 1.0)

    def part(split_id: int):
        return triples(split.filter(pl.col("split") == split_id), scale)

    torch.manual_seed(cfg.train.seed)
    p = cfg.train
    model = NeuMFFeatures.from_features(feats, p)
    result = fit(model, part(TRAIN), part(VAL), p, device)
    users, movies, target = (t.to(device) for t in part(TEST))
    pred = predict(model, users, movies).cpu().numpy()
    test = split.filter(pl.col("split") == TEST)
    metrics = {
        **rating_metrics(pred, target.cpu().numpy(), args.rating_max),
        **rerank_metrics(test["user_id"].to_numpy(), pred, test["rating"].to_numpy(), scale.like_threshold),
    }
    ratings = pl.read_parquet(run / "ratings.parquet")
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    recs = top_n(
        model,
        ratings,
        split.filter(pl.col("split") == TRAIN),
        len(feats.user_ids),
        len(feats.movie_ids),
        cfg.top_n,
        device,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    score_s = time.perf_counter() - started
    epoch_s = [h["seconds"] for h in result.history]
    print(
        json.dumps(
            {
                "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
                "torch": torch.__version__,
                "batch_size": p.batch_size,
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
