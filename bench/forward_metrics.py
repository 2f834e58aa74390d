"""forward_metrics of a warehouse as a Markdown table (docs/results.md), with the mean over runs.

Run after a replay, e.g.

    MOVIELENS_WAREHOUSE=warehouse/backfill-ml-latest-small.duckdb \\
      make backfill FROM=2016-01-01 TO=2018-12-31 EVERY=month DATASET=../shared/data/ml-latest-small \\
      MODELS=most_popular,ease TOP_N=10
    python bench/forward_metrics.py warehouse/backfill-ml-latest-small.duckdb
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

QUERY = """
SELECT strftime(f.window_start, '%Y-%m-%d') AS since, strftime(f.window_end, '%Y-%m-%d') AS until,
       f.model, f.top_n, f.active_users, f.users_with_list, f.hit_rate, f.recall, f.ndcg,
       f.liked_users, f.liked_hit_rate, f.liked_recall, f.liked_ndcg
FROM forward_metrics AS f ORDER BY f.window_end
"""


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    args = parser.parse_args()
    if not args.warehouse.exists():
        sys.exit(f"no warehouse at {args.warehouse}")
    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        rows = con.execute(QUERY).fetchall()
        runs = con.execute("SELECT count(*), count(DISTINCT logical_date) FROM published_runs").fetchall()[0]
    print(f"{len(rows)} forward_metrics rows; {runs[0]} published runs ({runs[1]} logical dates)\n")
    print(
        "| lists of (since) | judged until | model | N | active users | with a list | HitRate@N | Recall@N | "
        "NDCG@N | liked users | liked HitRate@N | liked Recall@N | liked NDCG@N |"
    )
    print("|---" * 13 + "|")
    for row in rows:
        print("| " + " | ".join(_fmt(v) for v in row) + " |")
    judged = [r for r in rows if r[4]]
    if judged:
        mean = [sum(r[i] for r in judged if r[i] is not None) / len(judged) for i in (6, 7, 8)]
        print(
            f"\nmean over the {len(judged)} windows with active users: HitRate@N {mean[0]:.4f}, "
            f"Recall@N {mean[1]:.4f}, NDCG@N {mean[2]:.4f}"
        )


if __name__ == "__main__":
    main()
