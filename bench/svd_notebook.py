"""The truncated SVD against the ml-latest-small notebook's figures, and how much the tie order moves them.

The notebook split each user's ratings by time with pandas' default (unstable)
sort, so ratings sharing a timestamp fell in an order that depends on numpy's
sort kernel. Our split breaks ties by movie id. This prints our figures, the
figures with ties broken by rating (lowest first; the only systematic order
found that gives the notebook's pairs and RMSE), then the spread over random
tie orders (movie ids permuted before the same split), and over random orders
among ratings that share both timestamp and rating, beside the notebook's
8,886 pairs / RMSE 0.9628 / MAE 0.7459.

    python bench/svd_notebook.py [--orders 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.evaluation.protocols import svd_notebook_holdout as notebook_holdout
from pipeline.ingest.read import typed_ratings

NOTEBOOK = (8_886, 0.9628, 0.7459)
TIES_BY_RATING = ("rating", "movie_id")  # timestamp ties lowest rating first: the notebook's pairs and RMSE


def with_shuffled_ties(ratings: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Movie ids permuted, so ties on a timestamp fall in a random order (SVD ignores id labels)."""
    ids = ratings["movie_id"].unique().sort()
    shuffled = pl.Series(np.random.default_rng(seed).permutation(ids.to_numpy()))
    return ratings.with_columns(pl.col("movie_id").replace_strict(ids, shuffled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-latest-small"))
    parser.add_argument("--orders", type=int, default=50, help="random tie orders to try")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"no dataset at {args.data}")
    ratings = typed_ratings(args.data)
    started = time.perf_counter()
    ours = notebook_holdout(ratings)
    print(f"notebook:                  {NOTEBOOK[0]:,} pairs  RMSE {NOTEBOOK[1]:.4f}  MAE {NOTEBOOK[2]:.4f}")
    print(f"ours (ties by movie id):   {ours[0]:,} pairs  RMSE {ours[1]:.4f}  MAE {ours[2]:.4f}")
    by_rating = notebook_holdout(ratings, ties=TIES_BY_RATING)
    print(f"ties by rating, movie id:  {by_rating[0]:,} pairs  RMSE {by_rating[1]:.4f}  MAE {by_rating[2]:.4f}")
    for label, ties in (
        ("random tie orders", ("movie_id",)),
        ("random orders among (timestamp, rating) ties", TIES_BY_RATING),
    ):
        spread = []
        for seed in range(args.orders):
            spread.append(notebook_holdout(with_shuffled_ties(ratings, seed), ties=ties))
            print(f"  {label} {seed + 1}/{args.orders}: {spread[-1][0]:,} pairs  RMSE {spread[-1][1]:.4f}", flush=True)
        pairs, rmse, mae = (np.array(column) for column in zip(*spread, strict=True))
        print(
            f"{args.orders} {label}: pairs {pairs.min():,}-{pairs.max():,}  "
            f"RMSE {rmse.min():.4f}-{rmse.max():.4f} (median {np.median(rmse):.4f})  "
            f"MAE {mae.min():.4f}-{mae.max():.4f}  [{time.perf_counter() - started:.0f} s]"
        )
        print(f"  with exactly the notebook's {NOTEBOOK[0]:,} pairs: {int((pairs == NOTEBOOK[0]).sum())}")


if __name__ == "__main__":
    main()
