"""SASRec's seconds per training epoch against the epoch's arithmetic floor, same run.

Trains `sasrec` with its registry defaults through the job's own trainer
(pipeline.training.fit, no validation) on protocol B's train split of
a dataset (default ml-1m-users-1-2999), and prints the seconds of each epoch
next to the floor: the multiply-adds the epoch cannot avoid, forward and
backward (3x the forward's), at the best rate of a large square matrix
product measured in the same run (best of three before and three after):

- logits: every position against every movie, positions x movies x d;
- attention blocks, per block: the four d x d projections and the d x d
  feed-forward pair (6 d^2 per position), and causal attention (each
  position against itself and the ones before it, for scores and values:
  n(n+1) d per window of n positions).

Embedding lookups, layer norms, softmax and the optimiser are memory-bound
and counted in the ratio, not the floor. `--naive` also times one epoch of
the reference's way (every window padded to max_len, logits at every
position through F.cross_entropy) for comparison.

`--baseline` times a second setting in the same run (e.g. float32 against
the default bf16 products on a CPU with native bf16) and prints the ratio.

    python bench/sasrec_speed.py [--dataset ../shared/data/ml-1m-users-1-2999] [--epochs 3] [--naive]
    python bench/sasrec_speed.py --epochs 2 --baseline '{"cpu_amp": false}'
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.protocol_b import protocol_b  # noqa: E402
from pipeline.core import logs  # noqa: E402
from pipeline.evaluation.split import TEST  # noqa: E402
from pipeline.models import registry  # noqa: E402
from pipeline.models.sequence import SASRec, histories, padded, windows  # noqa: E402
from pipeline.training import fit  # noqa: E402
from pipeline.training.loop import select_device  # noqa: E402
from pipeline.training.recipe import ratings  # noqa: E402


def square_rate(device: torch.device, size: int = 4096, repeats: int = 3) -> float:
    """Best GFLOP/s of a size x size float32 matrix product."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def floor_flops(lengths: np.ndarray, n_movies: int, dim: int, blocks: int) -> dict[str, float]:
    """Forward + backward multiply-adds of one epoch (x2 for FLOPs), by part."""
    positions = float(lengths.sum())
    logits = 3 * positions * n_movies * dim
    attention = 3 * blocks * (6 * dim * dim * positions + dim * float((lengths * (lengths + 1)).sum()))
    return {"logits_gflop": 2 * logits / 1e9, "blocks_gflop": 2 * attention / 1e9}


def naive_epoch(model: SASRec, movies: np.ndarray, start: np.ndarray, length: np.ndarray, batch: int) -> float:
    """The reference's batching: windows in random order, each padded to max_len, plain cross-entropy."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    model.train()
    order = np.random.default_rng(0).permutation(len(start))
    t0 = time.perf_counter()
    for i in range(0, len(order), batch):
        b = order[i : i + batch]
        inputs, targets = (
            padded(movies, start[b] + shift, length[b], fill) for shift, fill in ((0, model.pad), (1, -100))
        )
        widen = ((0, 0), (model.max_len - inputs.shape[1], 0))  # every window padded to max_len
        inputs, targets = np.pad(inputs, widen, constant_values=model.pad), np.pad(targets, widen, constant_values=-100)
        out = model.encode(torch.from_numpy(inputs))
        logits = out @ model.item_matrix().T
        loss = torch.nn.functional.cross_entropy(
            logits.view(-1, model.n_movies), torch.from_numpy(targets).view(-1), ignore_index=-100
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=REPO.parent / "shared" / "data" / "ml-1m-users-1-2999")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--params", default="{}", help="JSON overrides of sasrec's defaults, e.g. '{\"batch_size\": 64}'"
    )
    parser.add_argument("--naive", action="store_true", help="also time one epoch of the reference's padding")
    parser.add_argument(
        "--baseline", default=None, help="JSON overrides of a setting timed in the same run, for a ratio"
    )
    args = parser.parse_args()
    logs.setup()
    device = select_device(args.device)
    if not args.dataset.is_dir():
        sys.exit(f"{args.dataset} is missing: this bench needs real MovieLens data (../shared/data)")

    data = protocol_b(args.dataset)
    train = data.frame.filter(pl.col("split") != TEST)
    n_users, n_movies, feats = data.n_users, data.n_movies, data.features()
    params = registry.model_class("sasrec").hyper_parameters(json.loads(args.params))
    rows = ratings(train, data.scale)
    history = histories(rows.users, rows.movies, rows.timestamps, n_users)
    w = windows(history, int(params["max_len"]))
    flops = floor_flops(w.length, n_movies, int(params["embedding_dim"]), int(params["blocks"]))
    total_gflop = flops["logits_gflop"] + flops["blocks_gflop"]

    rates = [square_rate(device)]
    model = registry.create("sasrec", params, feats, device)
    result = fit(model, rows, None, epochs=args.epochs)
    rates.append(square_rate(device))
    baseline_s = None
    if args.baseline is not None:
        overrides = {**json.loads(args.params), **json.loads(args.baseline)}
        other = registry.model_class("sasrec").hyper_parameters(overrides)
        fitted = fit(registry.create("sasrec", other, feats, device), rows, None, epochs=args.epochs)
        baseline_s = [h["seconds"] for h in fitted.history]
        rates.append(square_rate(device))
    rate = max(rates)
    floor_s = total_gflop / rate
    seconds = [h["seconds"] for h in result.history]
    report = {
        "dataset": args.dataset.name,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "users": n_users,
        "movies": n_movies,
        "windows": len(w),
        "positions": w.positions,
        "batch_size": int(params["batch_size"]),
        "epoch_s": [round(s, 2) for s in seconds],
        "best_epoch_s": round(min(seconds), 2),
        "positions_per_s": round(w.positions / min(seconds)),
        **{k: round(v, 1) for k, v in flops.items()},
        "square_gflops": round(rate, 1),
        "floor_s": round(floor_s, 2),
        "ratio_to_floor": round(min(seconds) / floor_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if baseline_s is not None:
        report["baseline"] = json.loads(args.baseline)
        report["baseline_epoch_s"] = [round(s, 2) for s in baseline_s]
        report["speedup_over_baseline"] = round(min(baseline_s) / min(seconds), 2)
    if device.type == "cuda":
        report["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    if args.naive:
        reference = SASRec(n_movies, int(params["max_len"]), int(params["embedding_dim"]), int(params["blocks"]))
        report["naive_epoch_s"] = round(naive_epoch(reference, history.movies, w.start, w.length, 32), 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
