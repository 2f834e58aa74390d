"""What consumers read in a warehouse's current recommendations: reasons by kind, predicted ratings.

    python bench/published_rows.py warehouse/movielens.duckdb

Prints the published run (model and rating model), then sql/queries/reason_kinds.sql
as a Markdown table: rows per kind of reason, their share, and rows without a
predicted rating.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.core.sqlfiles import sql  # noqa: E402


def main() -> None:
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_file():
        sys.exit(__doc__)
    with duckdb.connect(sys.argv[1], read_only=True) as con:
        run = con.execute(
            "SELECT run_id, dataset, model, rating_model, n_users, n_rows FROM published_runs "
            "ORDER BY published_at DESC LIMIT 1"
        ).fetchone()
        if run is None:
            sys.exit(f"{sys.argv[1]}: nothing published yet")
        rows = con.execute(sql("queries/reason_kinds")).fetchall()
    print(f"run {run[0]} on {run[1]}: ranked by {run[2]}, rated by {run[3]}; {run[4]:,} users, {run[5]:,} rows\n")
    print("| reason | rows | share | without predicted_rating |")
    print("|---|---|---|---|")
    for kind, n, pct, null in rows:
        print(f"| {kind} | {n:,} | {pct:.2f}% | {null:,} |")


if __name__ == "__main__":
    main()
