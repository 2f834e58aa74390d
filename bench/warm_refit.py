"""A refit from scratch against a warm start from the tuned weights, same run, test figures side by side.

The nightly job tunes a model on train_inner (early stopping on val) and
then fits the champion again for production on every rating. From scratch
that replays every epoch validation chose (sasrec on ml-1m-users-1-2999:
14 epochs, 280 s); a warm start continues the tuned weights on the longer
histories for a few epochs. Protocol B measures both the way the weekly job
does: tune on train_inner, refit on train (= train_inner + val), NDCG@10 on
the test window. Printed: the tuned model as it is (ranking from train),
the refit from scratch, and warm starts of 1 to `--warm` epochs, with
seconds, and for a rating model (the rater fills predicted_rating) the RMSE
in stars on the test ratings too.

`--run RUN_DIR` takes the split and side features of a finished run (its
temporal.parquet and features.npz) instead of splitting `--dataset` with ids
only: the models with side features (neumf_features) need it.

    python bench/warm_refit.py [--dataset ../shared/data/ml-1m-users-1-2999] [--model sasrec] [--warm 3]
    python bench/warm_refit.py --run var/runs/<run id> --model neumf_features --warm 0 --params '{"batch_size": 4096}'
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.protocol_b import protocol_b  # noqa: E402
from pipeline.core import logs  # noqa: E402
from pipeline.core.metrics import rating_metrics  # noqa: E402
from pipeline.core.run_folder import RunFolder  # noqa: E402
from pipeline.evaluation.protocols import ranking_metrics  # noqa: E402
from pipeline.evaluation.split import TEST, TRAIN, VAL  # noqa: E402
from pipeline.ingest.features import Features  # noqa: E402
from pipeline.ingest.spec import resolve_dataset  # noqa: E402
from pipeline.models import registry  # noqa: E402
from pipeline.models.base import Recommender  # noqa: E402
from pipeline.training import fit  # noqa: E402
from pipeline.training.loop import select_device  # noqa: E402
from pipeline.training.recipe import ratings, schedule_from  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "data" / "ml-1m-users-1-2999")
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--warm", type=int, default=3, help="warm-start epochs to try (each one evaluated)")
    parser.add_argument("--params", default="{}", help="JSON overrides of the model's defaults")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--run", type=Path, default=None, help="a finished run's folder: its split and features")
    args = parser.parse_args()
    logs.setup()
    device = select_device(args.device)
    if args.run is not None:
        run = RunFolder(args.run)
        args.dataset = Path(run.read(run.manifest)["folder"])
        frame, feats = pl.read_parquet(run.temporal_split), Features.load(run.features)
        scale = resolve_dataset(args.dataset)[1].scale
    else:
        if not args.dataset.is_dir():
            sys.exit(f"{args.dataset} is missing: this bench needs real MovieLens data (../shared/data)")
        data = protocol_b(args.dataset)
        frame, feats, scale = data.frame, data.features(), data.scale
    inner, val = frame.filter(pl.col("split") == TRAIN), frame.filter(pl.col("split") == VAL)
    train, test = frame.filter(pl.col("split") != TEST), frame.filter(pl.col("split") == TEST)
    params = registry.model_class(args.model).hyper_parameters(json.loads(args.params))
    train_rows = ratings(train, scale)

    def ndcg(model: Recommender) -> str:
        score = f"{ranking_metrics(model, train, test, scale, None)['ndcg@10']:.4f}"
        if not model.spec.rates:
            return score
        pred = model.predict(test["user_idx"].to_numpy(), test["movie_idx"].to_numpy())
        rmse = rating_metrics(np.asarray(pred), scale.to_unit(test["rating"].to_numpy()), scale.max)["rmse_stars"]
        return f"{score} | {rmse:.4f}"

    t0 = time.perf_counter()
    tuned_model = registry.create(args.model, params, feats, device)
    tuned = fit(tuned_model, ratings(inner, scale), ratings(val, scale))
    tune_s = time.perf_counter() - t0
    schedule = schedule_from(tuned)
    state = copy.deepcopy(tuned_model.state_dict())
    val_ndcg = ranking_metrics(tuned_model, inner, val, scale, None)["ndcg@10"]
    tuned_model.rank_from(train_rows)
    rows = [("tuned model, ranking from train", 0, tune_s, ndcg(tuned_model))]

    t0 = time.perf_counter()
    scratch = registry.create(args.model, params, feats, device)
    fit(scratch, train_rows, None, **schedule)
    rows.append(("refit from scratch", schedule["epochs"], time.perf_counter() - t0, ndcg(scratch)))

    lr = schedule["lr_schedule"][-1]
    for k in range(1, args.warm + 1):
        t0 = time.perf_counter()
        warm = registry.create(args.model, params, feats, device)
        fit(warm, train_rows, None, epochs=k, lr_schedule=[lr] * k, init_state=state)
        rows.append((f"warm start, {k} epoch(s)", k, time.perf_counter() - t0, ndcg(warm)))

    print(f"\n{args.model} on {args.dataset.name}: tuned {tuned.best_epoch} of {len(tuned.history)} epochs")
    print(f"val NDCG@10 of the tuned model: {val_ndcg:.4f}; tuning took {tune_s:.1f} s\n")
    rmse = " test RMSE (stars) |" if tuned_model.spec.rates else ""
    print(f"| fit for test figures | epochs | seconds | test NDCG@10 |{rmse}")
    print("|---|---|---|---|" + ("---|" if rmse else ""))
    for name, epochs, seconds, score in rows:
        print(f"| {name} | {epochs} | {seconds:.1f} | {score} |")


if __name__ == "__main__":
    main()
