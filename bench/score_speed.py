"""Top-N for every user at ml-25m scale: users/s, peak memory, and the arithmetic floor.

A synthetic dataset shaped like ml-25m (162,000 users, 59,000 movies, 25M
ratings, popularity skewed like the real one; generated in memory, never
written or committed) is scored by:

- the biased-MF scorer: every user against every movie (one matrix product
  per user batch), seen movies excluded, top-N with reasons, shard by shard
  (50,000 users each, as the pipeline runs them), each shard written to Parquet;
- the two-stage MLP path: biased MF retrieves the top K candidates per user,
  neumf_features re-ranks them (on a sample of users: it is the slow one).

Weights are random: scoring costs the same whatever the weights, and
training a 25M-rating model is not what this measures. The MF scorer's
matrix products are also timed alone (product_only_s), so the ratio splits
into the product's share and the rest's. The floor is the
multiply-adds the MF scorer cannot avoid (users x movies x factors) divided
by the GFLOP/s of a large matrix product measured in the same run: the best
of three timings before and three after the scoring, since this shared
machine's rate swings between about 90 and 140 GFLOP/s.

    python bench/score_speed.py [--users 162000 --movies 59000 --ratings 25000000] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.ingest.features import Features
from pipeline.models import registry
from pipeline.models.base import Recommender
from pipeline.serving.recommend import top_n, users_per_block
from pipeline.stages.score_shard import SHARD_COMPRESSION
from pipeline.training.loop import select_device

T = TypeVar("T")


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM), so each scorer's peak is its own."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def add_shape_arguments(parser: argparse.ArgumentParser) -> None:
    """The ml-25m shape the scale benchmarks share (issue 5), and N."""
    parser.add_argument("--users", type=int, default=162_000)
    parser.add_argument("--movies", type=int, default=59_000)
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--top-n", type=int, default=100)


def synthetic(n_users: int, n_movies: int, n_ratings: int, seed: int = 0) -> tuple[pl.DataFrame, Features]:
    """Ratings with Zipf-like movie popularity and per-user counts around the mean; genres at random."""
    rng = np.random.default_rng(seed)
    per_user = rng.poisson(max(n_ratings / n_users - 20, 1), n_users) + 20
    per_user = np.maximum((per_user * n_ratings / per_user.sum()).astype(np.int64), 1)
    # oversampled, then duplicates (a user rating a movie twice) dropped down to the asked count
    users = np.repeat(np.arange(n_users, dtype=np.int64), (per_user * 1.3).astype(np.int64))
    popularity = 1.0 / np.arange(1, n_movies + 1) ** 0.9
    movies = rng.choice(n_movies, size=len(users), p=popularity / popularity.sum()).astype(np.int64)
    frame = pl.DataFrame(
        {
            "user_idx": users,
            "movie_idx": movies,
            "rating": rng.integers(1, 11, len(users)).astype(np.float64) / 2,
            "timestamp": rng.integers(789_652_009, 1_574_327_703, len(users)),
        }
    ).unique(["user_idx", "movie_idx"], keep="first", maintain_order=True)
    frame = frame.sample(min(n_ratings, len(frame)), seed=seed).sort("user_idx")
    genres = (rng.random((n_movies, 20)) < 0.12).astype(np.float32)
    feats = Features(
        user_ids=np.arange(n_users),
        movie_ids=np.arange(n_movies),
        user_features=np.zeros((n_users, 0), np.float32),
        movie_features=genres,
        user_feature_names=[],
        genres=[f"genre {i}" for i in range(20)],
    )
    return frame, feats


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 5, trials: int = 3) -> float:
    """The best of `trials` timings of `repeats` square products: this shared machine's rate varies
    by half from minute to minute, and a floor should be what the machine can do, not a slow moment."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    best = 0.0
    for _ in range(trials):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9)
    return best


@torch.no_grad()
def product_seconds(rec: Recommender, n_users: int) -> float:
    """The scorer's matrix products alone, in its own user blocks and buffer: what of the ratio the
    product takes, and so what is left for excluding seen movies, top-k, reasons and rows."""
    batch = users_per_block(rec.n_movies, rec.device)
    buffer = torch.empty((batch, rec.n_movies), device=rec.device)
    started = time.perf_counter()
    for start in range(0, n_users, batch):
        users = torch.arange(start, min(start + batch, n_users), device=rec.device)
        rec.score_tensor(users, buffer[: len(users)])
    if rec.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def model(name: str, feats: Features, device: torch.device, overrides: dict | None = None) -> Recommender:
    """A model with random weights (what is measured is the cost of scoring, not its quality)."""
    torch.manual_seed(0)
    rec = registry.create(name, registry.model_class(name).hyper_parameters(overrides), feats, device)
    rec.module = rec.build(None).to(device).eval()
    return rec


def timed(label: str, fn: Callable[[], T]) -> tuple[T, dict]:
    _reset_peak()
    before = _rss_mb("VmRSS")
    started = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - started
    peak = _rss_mb("VmHWM")
    print(f"{label}: {seconds:.1f}s, peak RSS {peak:.0f} MB ({peak - before:+.0f} MB over the inputs)", file=sys.stderr)
    return out, {"seconds": round(seconds, 2), "peak_rss_mb": round(peak), "peak_over_inputs_mb": round(peak - before)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_arguments(parser)
    parser.add_argument("--candidates", type=int, default=500, help="K of the two-stage path")
    parser.add_argument("--two-stage-users", type=int, default=20_000, help="users scored by the two-stage path")
    parser.add_argument("--users-per-shard", type=int, default=50_000, help="as the pipeline's default")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = select_device(args.device)

    started = time.perf_counter()
    ratings, feats = synthetic(args.users, args.movies, args.ratings)
    print(f"synthetic data: {len(ratings):,} ratings in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    gflops_before = matmul_gflops(device)
    mf = model("biased_mf", feats, device)
    factors = mf.module.user_embedding.embedding_dim

    def by_shards() -> int:
        """Shard by shard as the pipeline's score stage runs them, each written to Parquet."""
        rows = 0
        with tempfile.TemporaryDirectory() as tmp:
            for i, start in enumerate(range(0, args.users, args.users_per_shard)):
                users = np.arange(start, min(start + args.users_per_shard, args.users))
                recs = top_n(mf, ratings, args.top_n, users=users)
                recs.write_parquet(Path(tmp) / f"shard-{i:05d}.parquet", compression=SHARD_COMPRESSION)
                rows += recs.height
        return rows

    rows, mf_run = timed("biased_mf, all users", by_shards)
    gflops = max(gflops_before, matmul_gflops(device))  # measured on both sides of the scoring
    floor_s = 2 * args.users * args.movies * factors / (gflops * 1e9)
    assert rows == args.users * args.top_n, rows
    mf_run["users_per_shard"] = args.users_per_shard
    mf_run["users_per_s"] = round(args.users / mf_run["seconds"])
    mf_run["floor_s"] = round(floor_s, 2)
    mf_run["ratio_to_floor"] = round(mf_run["seconds"] / floor_s, 2)
    product_s = product_seconds(mf, args.users)
    mf_run["product_only_s"] = round(product_s, 2)  # the scorer's matrix products alone, same blocks
    mf_run["product_ratio_to_floor"] = round(product_s / floor_s, 2)

    mlp = model("neumf_features", feats, device)
    sample = np.sort(np.random.default_rng(1).choice(args.users, min(args.two_stage_users, args.users), replace=False))
    _, two_stage = timed(
        f"two-stage neumf_features, {len(sample):,} users",
        lambda: top_n(mlp, ratings, args.top_n, users=sample, retriever=mf, candidates=args.candidates),
    )
    two_stage["users"] = len(sample)
    two_stage["users_per_s"] = round(len(sample) / two_stage["seconds"])
    two_stage["all_users_s_estimate"] = round(args.users / two_stage["users_per_s"], 1)
    print(
        json.dumps(
            {
                "shape": {"users": args.users, "movies": args.movies, "ratings": len(ratings)},
                "device": str(device),
                "threads": torch.get_num_threads(),
                "top_n": args.top_n,
                "matmul_gflops": round(gflops, 1),
                "mf_factors": factors,
                "biased_mf_all_users": mf_run,
                "two_stage_mlp": {"candidates": args.candidates, **two_stage},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
