"""Seconds per training step of biased_mf with dense Adam against sparse tables + SparseAdam, same run.

A dense Adam step reads and writes every row of every embedding table, so
its cost grows with the catalogue; a sparse one touches the rows in the
batch. Both run the trainer's own `Optimisers` on random batches of
`--batch-size` pairs over `--users` x `--movies` (ml-25m's shape by default).

    python bench/train_sparse.py [--users 162000 --movies 59000 --steps 200]
    python bench/train_sparse.py --sweep   # catalogues from ml-100k's to ml-25m's: where "auto" turns sparse
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.core.config import TrainParams
from pipeline.models.factors import BiasedMF
from pipeline.models.neural import SPARSE_ABOVE_ROWS
from pipeline.training.loop import Optimisers

# (users, movies): ml-100k, ml-1m, ml-latest-small, 20,000 x 12,000, ml-10m, ml-20m, ml-25m
SWEEP = [(943, 1_682), (6_040, 3_706), (610, 9_742), (20_000, 12_000), (69_878, 10_677), (138_493, 26_744)]


def ms_per_step(users: int, movies: int, sparse: bool, steps: int, batch: int) -> float:
    torch.manual_seed(0)
    model = BiasedMF(users, movies, 64, sparse=sparse)
    optimiser = Optimisers(model, TrainParams(lr=2e-3, weight_decay=1e-5, sparse_embeddings=sparse))
    u, m = torch.randint(0, users, (steps, batch)), torch.randint(0, movies, (steps, batch))
    y = torch.rand(steps, batch)
    for warm_up in (True, False):
        started = time.perf_counter()
        for i in range(10 if warm_up else steps):
            optimiser.zero_grad()
            ((model(u[i], m[i]) - y[i]) ** 2).mean().backward()
            optimiser.step()
    return (time.perf_counter() - started) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=162_000)
    ap.add_argument("--movies", type=int, default=59_000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--sweep", action="store_true", help="each catalogue of SWEEP, then --users x --movies")
    args = ap.parse_args()
    catalogues = [*SWEEP, (args.users, args.movies)] if args.sweep else [(args.users, args.movies)]
    print(f'biased_mf, batch {args.batch_size}; "auto" trains sparse above {SPARSE_ABOVE_ROWS:,} rows')
    print(f"{'users':>8} {'movies':>7} {'rows':>8} {'dense ms':>9} {'sparse ms':>9} {'dense/sparse':>12}")
    for users, movies in catalogues:
        dense = ms_per_step(users, movies, False, args.steps, args.batch_size)
        sparse = ms_per_step(users, movies, True, args.steps, args.batch_size)
        rows = users + movies
        print(f"{users:>8,} {movies:>7,} {rows:>8,} {dense:>9.2f} {sparse:>9.2f} {dense / sparse:>12.2f}")


if __name__ == "__main__":
    main()
