"""The run report: one HTML page per run with the notebooks' plots, beside its PNGs.

Written into the run folder (`var/runs/<run>/report/index.html`, git-ignored)
from what the stages left there and what the warehouse holds, so it can be
re-made for any run folder (`python -m pipeline.stages.cli stage report <run_dir>`).
Parts a run did not reach (no models trained, no forward history yet) are
said to be missing, never silently left out.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from pipeline.core import timings
from pipeline.core.run_folder import RunFolder
from pipeline.core.sqlfiles import sql
from pipeline.evaluation.champion import FULL_RANKING_COLUMNS, NOTEBOOK_COLUMNS, metric_value
from pipeline.serving import plots

log = logging.getLogger(__name__)

PREDICTIONS_KEPT = 50_000  # enough for the plots; ml-25m's protocol-A test has 3.75M rows

# the docs' tables, plus what an operator checks first on a run's page
B_COLUMNS = (
    *FULL_RANKING_COLUMNS,
    ("users evaluated", "full_ranking.test.users_evaluated", "{:,.0f}"),
    ("users without relevant", "full_ranking.test.users_without_relevant_test_item", "{:,.0f}"),
    ("epochs", "full_ranking.fit.epochs", "{:.0f}"),
    ("best epoch", "full_ranking.fit.best_epoch", "{:.0f}"),
    ("seconds", "seconds", "{:.1f}"),
)


def sample_rows(frame: pl.DataFrame, limit: int = PREDICTIONS_KEPT, seed: int = 0) -> pl.DataFrame:
    """At most `limit` rows, drawn without replacement with a fixed seed (the plots' input)."""
    return frame if len(frame) <= limit else frame.sample(limit, seed=seed)


@dataclass
class RunFacts:
    """Everything the page shows, read from the run folder and the warehouse."""

    run_id: str
    logical_date: str
    dataset: str
    validation: dict[str, Any] | None
    ratings: dict[str, Any] | None = None  # counts, date range and mean (summarised lazily: ml-25m has 25M rows)
    rating_counts: pl.DataFrame | None = None
    alerts: list[tuple] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[str, pl.DataFrame] = field(default_factory=dict)
    champion: dict[str, Any] | None = None
    forward: pl.DataFrame | None = None
    published: dict[str, Any] | None = None
    job: str = "nightly"
    timings: list[dict[str, Any]] = field(default_factory=list)


def gather(folder: RunFolder, con: duckdb.DuckDBPyConnection | None) -> RunFacts:
    """The run's facts, from whatever the run reached; `con` (the warehouse) adds alerts and
    forward history when given."""
    read = folder.read_if_present
    cfg = read(folder.config) or {}
    manifest = read(folder.manifest) or {}
    models = cfg.get("models", [])
    results = [r for n in models if (r := read(folder.metrics(n))) is not None]
    predictions = {n: pl.read_parquet(p) for n in models if (p := folder.predictions(n)).is_file()}
    ratings_file = folder.ratings
    facts = RunFacts(
        run_id=cfg.get("run_id", folder.path.name),
        logical_date=cfg.get("logical_date", ""),
        dataset=manifest.get("folder", cfg.get("dataset", "")),
        validation=read(folder.validation),
        results=results,
        predictions=predictions,
        champion=read(folder.champion),
        job=cfg.get("job", "nightly"),
        timings=timings.collect(folder.path),
    )
    if ratings_file.is_file():
        facts.ratings, facts.rating_counts = _summary(ratings_file)
    if con is not None:
        facts.alerts = con.execute(sql("report/alerts"), {"run_id": facts.run_id}).fetchall()
        if facts.logical_date:
            until = datetime.fromisoformat(facts.logical_date).astimezone(UTC).replace(tzinfo=None)
            facts.forward = pl.from_pandas(
                con.execute(sql("report/forward_history"), {"dataset": facts.dataset, "until": until}).df()
            )
        row = con.execute(sql("report/published"), {"run_id": facts.run_id}).fetchone()
        facts.published = dict(zip(("model", "users", "rows"), row, strict=True)) if row else None
    return facts


def build(run_dir: str | Path, con: duckdb.DuckDBPyConnection | None = None) -> Path:
    """Write report/index.html and its PNGs into the run folder; return the page's path."""
    folder = RunFolder(run_dir)
    out = folder.report_dir
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # a re-made report shows this run's state only
        old.unlink()
    facts = gather(folder, con)
    body = [_header(facts), _contents(facts), _data_section(facts, out), _metrics_section(facts)]
    body += [_model_section(r, facts, out) for r in facts.results]
    body.append(_forward_section(facts, out))
    body.append(_timings_section(facts))
    page = folder.report_page
    page.write_text(_page(f"Run {facts.run_id}", "\n".join(body)))
    return page


# ---------------------------------------------------------------- sections


def _header(facts: RunFacts) -> str:
    rows = [
        ("run", facts.run_id),
        ("job", JOB_LABELS.get(facts.job, facts.job)),
        ("logical date", facts.logical_date),
        ("dataset", facts.dataset),
    ]
    if facts.champion:
        rows.append(("champion", facts.champion.get("message", facts.champion.get("model", ""))))
        rows.append(("ranked by, rated by", _ranked_and_rated(facts.champion)))
    if facts.published:
        p = facts.published
        rows.append(("published", f"{p['model']}: {p['rows']:,} rows for {p['users']:,} users"))
    elif facts.job == "evaluation":
        rows.append(("published", "no: an evaluation run publishes nothing"))
    else:
        rows.append(("published", "no: this run has not published recommendations"))
    rows.append(("report made", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")))
    return f"<h1>Run {_e(facts.run_id)}</h1>\n{_kv_table(rows)}"


def _ranked_and_rated(champion: dict[str, Any]) -> str:
    """Which model orders the lists and which one fills predicted_rating (they can differ)."""
    rater = champion.get("rater")
    rated = (
        f"predicted ratings from {rater['model']} (the lowest validation RMSE among the rating models, "
        f"{rater['val_rmse']:.4f} on the [0, 1] scale)"
        if rater
        else "no rating model in this run: predicted_rating is empty"
    )
    return f"lists ranked by {champion.get('model', '?')}; {rated}"


def _contents(facts: RunFacts) -> str:
    links = [("data", "Data"), ("models", "Models")] + [(f"model-{r['model']}", r["model"]) for r in facts.results]
    links += [("forward", "Forward evaluation"), ("timings", "Seconds per task")]
    return "<p class=nav>" + " · ".join(f'<a href="#{_e(a)}">{_e(t)}</a>' for a, t in links) + "</p>"


def _data_section(facts: RunFacts, out: Path) -> str:
    """Counts and validation on the left, the rating distribution on the right, alerts below."""
    left, right = [], []
    r, counts = facts.ratings, facts.rating_counts
    if r is None or counts is None or not r["ratings"]:
        left.append("<p class=missing>No ratings in the run folder: the run stopped before features.</p>")
    else:
        left.append(
            _kv_table(
                [
                    ("ratings", f"{r['ratings']:,}"),
                    ("users", f"{r['users']:,}"),
                    ("movies rated", f"{r['movies']:,}"),
                    ("rated between", _date_range(r["first"], r["last"])),
                    ("mean rating", f"{r['mean']:.3f}"),
                ]
            )
        )
        png = plots.rating_distribution(counts["rating"].to_numpy(), counts["len"].to_numpy(), out / "ratings.png")
        right.append(_img(png, "Rating distribution"))
    left.append("<h3>Validation</h3>")
    v = facts.validation
    if v is None:
        left.append("<p class=missing>No validation result in the run folder.</p>")
    else:
        quarantined = ", ".join(f"{k}: {n:,}" for k, n in v.get("quarantined", {}).items()) or "nothing"
        left.append(
            _kv_table(
                [
                    ("result", "passed" if v.get("passed") else "FAILED"),
                    ("checks", str(v.get("checks"))),
                    ("alerts", ", ".join(f"{n} {s}" for s, n in v.get("alerts", {}).items())),
                    ("rows per file", ", ".join(f"{k}: {n:,}" for k, n in v.get("rows", {}).items())),
                    ("quarantined rows", quarantined),
                ]
            )
        )
        if v.get("data_docs"):
            left.append(f'<p>Great Expectations Data Docs: <a href="{_e(v["data_docs"])}">open</a></p>')
    parts = ['<h2 id="data">Data</h2>', '<div class="grid">', "<div>", *left, "</div>", *right, "</div>"]
    if facts.alerts:
        parts.append(
            _table(
                ["severity", "file", "expectation", "column", "unexpected", "message"],
                [[_e(c) if not isinstance(c, int) else f"{c:,}" for c in row] for row in facts.alerts],
            )
        )
    return "\n".join(parts)


def _summary(ratings_file: Path) -> tuple[dict[str, Any], pl.DataFrame]:
    """Counts, date range and mean, and ratings per star value: two queries over one scan."""
    ratings = pl.scan_parquet(ratings_file)
    totals = ratings.select(
        pl.len().alias("ratings"),
        pl.col("user_id").n_unique().alias("users"),
        pl.col("movie_id").n_unique().alias("movies"),
        pl.col("timestamp").min().alias("first"),
        pl.col("timestamp").max().alias("last"),
        pl.col("rating").mean().alias("mean"),
    )
    totals, counts = pl.collect_all([totals, ratings.group_by("rating").len().sort("rating")])
    return totals.row(0, named=True), counts


def _date_range(first: int | None, last: int | None) -> str:
    if first is None or last is None:
        return "no timestamps in this dataset"
    day = (datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%d") for t in (first, last))
    return " and ".join(day)


def _metrics_section(facts: RunFacts) -> str:
    parts = ['<h2 id="models">Models</h2>']
    if not facts.results:
        return parts[0] + "\n<p class=missing>No model was trained in this run.</p>"
    champion = (facts.champion or {}).get("model")
    metric = (facts.champion or {}).get("metric", "full_ranking.val.ndcg@10")
    parts.append(
        f"<p>The champion ({_e(champion or 'none chosen')}) is the best on <code>{_e(metric)}</code>; "
        "★ marks it. A = the notebooks' protocol (per-user random 70/15/15, re-ranking each user's own "
        "test items; test split). B = full ranking (per-user temporal split, last 10% test; every unseen "
        "movie a candidate). ../shared/EVALUATION.md defines both.</p>"
    )
    trained = [r for r in facts.results if "full_ranking" in r]
    test_from = sorted({r["full_ranking"].get("test_from", "refit on train") for r in trained})
    b_title = f"B: full ranking (test figures: {', '.join(test_from) or 'none'})"
    tables = [("A: notebooks' protocol, test", NOTEBOOK_COLUMNS)] if facts.job == "evaluation" else []
    for title, columns in (*tables, (b_title, B_COLUMNS)):
        rows = []
        for r in facts.results:
            name = r["model"] + (" ★" if r["model"] == champion else "")
            if "skipped" in r:
                rows.append([_e(name), f"skipped: {_e(r['skipped'])}"] + [""] * (len(columns) - 1))
                continue
            cells = [_fmt(metric_value(r, path), fmt) for _, path, fmt in columns]
            rows.append([f"<b>{_e(name)}</b>" if r["model"] == champion else _e(name), *cells])
        parts.append(f"<h3>{_e(title)}</h3>")
        parts.append(_table(["model", *(c[0] for c in columns)], rows))
    return "\n".join(parts)


def _model_section(result: dict[str, Any], facts: RunFacts, out: Path) -> str:
    name = result["model"]
    parts = [f'<h2 id="model-{_e(name)}">{_e(name)}</h2>']
    if "skipped" in result:
        return parts[0] + f"\n<p class=missing>Skipped: {_e(result['skipped'])}</p>"
    images = []
    curves: dict[str, list] = {}
    for protocol, label in (("full_ranking", "B"), ("notebook", "A")):
        for h in result.get(protocol, {}).get("fit", {}).get("history") or []:
            curves.setdefault(f"{label} train loss", []).append(h["train_loss"])
            curves.setdefault(f"{label} val loss", []).append(h["val_loss"])
    best = result.get("full_ranking", {}).get("fit", {}).get("best_epoch")
    if curves:
        png = plots.loss_curves(
            curves, best, f"{name}: loss per epoch (B's best epoch marked)", out / f"{name}_loss.png"
        )
        images.append(_img(png, f"{name} loss curves"))
    else:
        images.append("<p class=missing>No training curve: fitted in closed form.</p>")
    pred = facts.predictions.get(name)
    if pred is not None and len(pred):
        actual, predicted = pred["actual"].to_numpy(), pred["predicted"].to_numpy()
        source = result.get("predictions") or {"from": "protocol A test", "rows": len(pred)}
        total = source["rows"]
        note = f"{source['from']}, {len(pred):,} ratings" + (f" of {total:,}" if total > len(pred) else "")
        images.append(
            _img(
                plots.predicted_vs_actual(
                    actual, predicted, f"{name}: predicted vs actual ({note})", out / f"{name}_scatter.png"
                ),
                f"{name} predicted vs actual",
            )
        )
        images.append(
            _img(
                plots.error_histogram(predicted - actual, f"{name}: prediction error", out / f"{name}_errors.png"),
                f"{name} error histogram",
            )
        )
        images.append(
            _img(
                plots.residuals(predicted, actual, f"{name}: residuals vs prediction", out / f"{name}_residuals.png"),
                f"{name} residuals",
            )
        )
    else:
        images.append("<p class=missing>This model ranks without predicting ratings: no rating plots.</p>")
    return "\n".join([*parts, '<div class="grid">', *images, "</div>"])


JOB_LABELS = {
    "nightly": "nightly: decided on validation, test figures from the tuned model, publishes",
    "evaluation": "evaluation: every model under both protocols, test figures from a refit, publishes nothing",
}


def _timings_section(facts: RunFacts) -> str:
    head = '<h2 id="timings">Seconds per task</h2>'
    if not facts.timings:
        return head + "\n<p class=missing>No task recorded its time.</p>"
    rows = [
        [
            _e(t["task"]),
            f"{t['seconds']:.1f}",
            _fmt(t.get("startup_s"), "{:.1f}"),
            f"{share:.1%}",
            _fmt(t.get("peak_rss_mib"), "{:,}"),
        ]
        for t, share in zip(facts.timings, timings.shares(facts.timings), strict=True)
    ]
    wall = timings.wall_s(facts.timings)
    note = (
        "<p>Start-up: from the task's process start to its stage (interpreter, Airflow's task runner, "
        "imports); blank where the process had run a stage before (the CLI). Peak: the task's largest "
        "resident memory (its process's, imports included; for a later stage of one process, its own). "
        f"Sum of tasks {sum(t['seconds'] for t in facts.timings):.1f} s"
        + (f"; wall {wall:.1f} s from the first task's start to the last one's end" if wall is not None else "")
        + ". This page's own task (report) is in report.json and the log.</p>"
    )
    return "\n".join([head, note, _table(["task", "seconds", "start-up s", "share", "peak MiB"], rows)])


def _forward_section(facts: RunFacts, out: Path) -> str:
    head = '<h2 id="forward">Forward evaluation over runs</h2>'
    f = facts.forward
    if f is None or f.is_empty():
        return head + (
            "\n<p class=missing>No forward metrics yet: they need a list published by an earlier run of this "
            "dataset and ratings made since.</p>"
        )
    n = int(f["top_n"].max())
    png = plots.forward_metrics(
        f["window_end"].to_list(),
        {
            f"HitRate@{n}": f["hit_rate"].to_list(),
            f"Recall@{n}": f["recall"].to_list(),
            f"NDCG@{n}": f["ndcg"].to_list(),
        },
        f"Published lists against the ratings that followed ({len(f)} window{'s' * (len(f) != 1)})",
        out / "forward.png",
    )
    rows = [
        [str(r["window_end"])[:10], _e(r["model"] or ""), f"{r['active_users']:,}"]
        + [_fmt(r[c], "{:.4f}") for c in ("hit_rate", "recall", "ndcg", "liked_hit_rate", "liked_recall")]
        for r in f.tail(12).iter_rows(named=True)
    ]
    table = _table(
        ["window end", "model", "active users", "HitRate", "Recall", "NDCG", "liked HitRate", "liked Recall"], rows
    )
    return "\n".join([head, _img(png, "Forward metrics over runs"), f"<p>The last {len(rows)} windows:</p>", table])


# ---------------------------------------------------------------- html


def _e(value: object) -> str:
    return html.escape(str(value))


def _fmt(value: object, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return fmt.format(value)


def _img(path: Path, alt: str) -> str:
    return f'<figure><img src="{_e(path.name)}" alt="{_e(alt)}"></figure>'


def _kv_table(rows: list[tuple[str, str]]) -> str:
    return "<table class=kv>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Cells are HTML already (escaped by the caller)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child, table.kv td { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; } figure { margin: 0; }
img { max-width: 560px; border: 1px solid #eee; } .missing { color: #a33; }
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
