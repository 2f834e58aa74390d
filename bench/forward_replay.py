"""Forward evaluation (EVALUATION.md, C) of models side by side over a replay of global time cuts.

For each cut D of the replay, every model is fitted on the ratings made before D the way the
job's production fit is (sasrec: its epoch count chosen by early stopping on protocol B's
validation of that snapshot, then refitted on every rating before D; closed-form models in one
solve), publishes top-N for every user through the job's scorer (users with fewer than 3
ratings get the popularity fallback, as in the job), and is judged by the job's own forward
SQL (sql/forward/metrics.sql) on the ratings made in [D, next D). Unlike protocol B's per-user
split, nothing after D is seen by anyone, so a sequence model gets no help from a user's own
future: this is the measure of what a nightly job would have published.

    python bench/forward_replay.py --dataset ../shared/data/ml-latest-small \\
        --from 2016-01-01 --to 2018-10-01 --every 1
    python bench/forward_replay.py --dataset ../shared/data/ml-1m-users-1-2999 \\
        --from 2001-01-01 --to 2003-03-01 --every 3

`--every` is months between cuts; each model's figures per window are kept in
var/results/forward_replay-<dataset>.json, so an interrupted replay resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.protocol_b import Split, ids_only, indexed, protocol_b  # noqa: E402
from pipeline.core import logs  # noqa: E402
from pipeline.core.config import PROJECT_ROOT  # noqa: E402
from pipeline.evaluation.forward import window_metrics  # noqa: E402
from pipeline.evaluation.split import TRAIN, VAL, temporal_split  # noqa: E402
from pipeline.models import registry  # noqa: E402
from pipeline.models.base import Recommender  # noqa: E402
from pipeline.serving.recommend import top_n  # noqa: E402
from pipeline.training import fit as train  # noqa: E402
from pipeline.training.recipe import production_fit, ratings, schedule_from  # noqa: E402

CPU = torch.device("cpu")


def add_months(d: datetime, k: int) -> datetime:
    total = d.year * 12 + d.month - 1 + k
    return d.replace(year=total // 12, month=total % 12 + 1)


def cuts_between(start: datetime, end: datetime, every: int) -> list[datetime]:
    """Every `every` months from start through end, and one more: the last window's end."""
    cuts = [start]
    while cuts[-1] <= end:
        cuts.append(add_months(cuts[-1], every))
    return cuts


def snapshot(data: Split, cut: datetime) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Ratings before `cut` with dense indices of their own users and movies (as the job's run for
    that date would have), and the index -> id maps."""
    before = data.frame.filter(pl.col("timestamp") < int(cut.timestamp())).drop("user_idx", "movie_idx", "split")
    return indexed(before)


def fit(name: str, frame: pl.DataFrame, n_users: int, n_movies: int, data: Split) -> Recommender:
    """The job's way: tuned on protocol B's validation of this snapshot, refitted on all of it."""
    feats, params = ids_only(n_users, n_movies), registry.model_class(name).hyper_parameters()
    schedule: dict = {}
    if registry.model_class(name).spec.torch:  # a closed form has nothing to tune: one solve
        split = temporal_split(frame)
        inner, val = (ratings(split.filter(pl.col("split") == s), data.scale) for s in (TRAIN, VAL))
        schedule = schedule_from(train(registry.create(name, params, feats, CPU), inner, val))
    model, _ = production_fit(name, params, feats, frame, data.scale, CPU, schedule)
    return model


def judge(lists: pl.DataFrame, data: Split, start: datetime, end: datetime, n: int) -> dict:
    """The job's forward metrics of `lists` (user_id, movie_id, rank) on the ratings in [start, end)."""
    with duckdb.connect() as con:
        con.register("lists", lists.to_arrow())
        con.register("every_rating", data.frame.select("user_id", "movie_id", "rating", "timestamp").to_arrow())
        con.execute("CREATE TABLE recommendations AS SELECT 'replay' AS run_id, * FROM lists")
        con.execute("CREATE TABLE ratings AS SELECT *, to_timestamp(timestamp) AS rated_at FROM every_rating")
        return window_metrics(con, "replay", start, end, n, 0.8 * data.scale.max)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--from", dest="start", required=True)
    parser.add_argument("--to", dest="end", required=True, help="the last cut (judged until a cut after it)")
    parser.add_argument("--every", type=int, default=1, help="months between cuts")
    parser.add_argument("--models", default="most_popular,ease,sasrec")
    parser.add_argument("--top-n", type=int, default=10)
    args = parser.parse_args()
    logs.setup()
    data = protocol_b(args.dataset)
    start, end = (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in (args.start, args.end))
    cuts = cuts_between(start, end, args.every)
    cache = PROJECT_ROOT / "var" / "results" / f"forward_replay-{args.dataset.name}.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(cache.read_text()) if cache.exists() else {}
    names = args.models.split(",")
    for cut, following in pairwise(cuts):
        frame, user_ids, movie_ids = snapshot(data, cut)
        for name in names:
            key = f"{name}|{cut.date()}|{following.date()}|{args.top_n}"
            if key in done:
                continue
            started = time.perf_counter()
            model = fit(name, frame, len(user_ids), len(movie_ids), data)
            recs = top_n(model, frame, args.top_n, min_history=3)
            lists = pl.DataFrame(
                {
                    "user_id": user_ids[recs["user_idx"].to_numpy()],
                    "movie_id": movie_ids[recs["movie_idx"].to_numpy()],
                    "rank": recs["rank"].to_numpy(),
                }
            )
            metrics = judge(lists, data, cut.replace(tzinfo=None), following.replace(tzinfo=None), args.top_n)
            done[key] = {"model": name, "since": str(cut.date()), "until": str(following.date()), **metrics}
            done[key]["seconds"] = round(time.perf_counter() - started, 1)
            cache.write_text(json.dumps(done, indent=2, default=str))
    render(done, names, args)


def render(done: dict, names: list[str], args: argparse.Namespace) -> None:
    rows = [r for k, r in done.items() if k.endswith(f"|{args.top_n}")]
    windows = sorted({(r["since"], r["until"]) for r in rows})
    by = {(r["model"], r["since"]): r for r in rows}
    print(f"Forward evaluation on {args.dataset.name}, top-{args.top_n} lists; metrics over every rated movie\n")
    header = " | ".join(f"{n} HitRate / NDCG" for n in names)
    print(f"| lists of (since) | judged until | active users | {header} |")
    print("|---" * (3 + len(names)) + "|")
    for since, until in windows:
        cells = []
        for n in names:
            r = by.get((n, since))
            cells.append("–" if r is None or r["hit_rate"] is None else f"{r['hit_rate']:.3f} / {r['ndcg']:.4f}")
        active = next((by[(n, since)]["active_users"] for n in names if (n, since) in by), 0)
        print(f"| {since} | {until} | {active} | " + " | ".join(cells) + " |")
    print()
    for n in names:
        judged = [by[(n, s)] for s, _ in windows if (n, s) in by and by[(n, s)]["active_users"]]
        if not judged:
            continue
        mean = {m: float(np.mean([r[m] or 0.0 for r in judged])) for m in ("hit_rate", "recall", "ndcg")}
        liked = [r for r in judged if r["liked_users"]]
        liked_ndcg = float(np.mean([r["liked_ndcg"] or 0.0 for r in liked])) if liked else float("nan")
        users = sum(r["active_users"] for r in judged)
        print(
            f"{n}: mean over {len(judged)} windows ({users} active user-windows): HitRate@{args.top_n} "
            f"{mean['hit_rate']:.4f}, Recall@{args.top_n} {mean['recall']:.4f}, NDCG@{args.top_n} {mean['ndcg']:.4f}, "
            f"liked NDCG@{args.top_n} {liked_ndcg:.4f}; fit + score {sum(r['seconds'] for r in judged):.0f} s"
        )


if __name__ == "__main__":
    main()
