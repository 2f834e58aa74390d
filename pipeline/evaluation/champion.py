"""Choose the model whose lists are published, and refuse a clear regression.

The champion is the trained model with the best declared metric (default:
full-ranking NDCG@10 on validation), whatever its RMSE: the published lists
are rankings. It is compared with the champion of the last published run of
the same dataset; if it is worse by more than the tolerance, the run is not
published, a quality alert goes out, and yesterday's lists stay current.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from pipeline.core.alerts import INSERT_ALERT, Alert
from pipeline.core.config import RunConfig
from pipeline.core.sqlfiles import sql
from pipeline.core.warehouse import transaction

log = logging.getLogger(__name__)


class ChampionGateError(RuntimeError):
    """The best model of this run is clearly worse than the published one; nothing was published."""


@dataclass
class Choice:
    model: str
    metric: str
    value: float
    runners_up: list[tuple[str, float]]


def metric_value(result: dict[str, Any], metric: str) -> float | None:
    """`protocol.split.name` (e.g. full_ranking.val.ndcg@10) from one model's metrics, if present."""
    node: Any = result
    for key in metric.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) else None


def choose_champion(results: list[dict[str, Any]], metric: str) -> Choice:
    """The best model on `metric` (ties: the first in run order, i.e. the cheaper one)."""
    scored = [(r["model"], v) for r in results if (v := metric_value(r, metric)) is not None]
    if not scored:
        raise ValueError(f"champion metric {metric!r} is in no model's metrics; e.g. full_ranking.val.ndcg@10")
    ranked = sorted(scored, key=lambda mv: -mv[1])
    return Choice(ranked[0][0], metric, ranked[0][1], ranked[1:])


RATER_METRIC = "full_ranking.val.rmse"  # lower is better
# validation RMSEs within 0.5% of the lowest are one figure: the same neumf_features on the same
# split measured 0.17317 and 0.17285 in two runs (0.2%); 0.5% of 0.173 is 0.004 stars
RATER_TIE = 0.005


def choose_rater(results: list[dict[str, Any]]) -> tuple[str, float] | None:
    """The model that fills predicted_rating: the lowest validation RMSE (protocol B's validation,
    the tuned model) among those that predict ratings; None when no trained model does.

    Among RMSEs tied with the lowest (RATER_TIE), the one whose tuning fit took the fewest
    seconds: its production refit replays that fit, and a tie buys nothing for the extra time
    (ml-1m-users-1-2999: biased_mf's refit about 5 s, neumf_features' about 70 s).
    """
    scored = [(r, v) for r in results if (v := metric_value(r, RATER_METRIC)) is not None]
    if not scored:
        return None
    lowest = min(v for _, v in scored)
    tied = [(r, v) for r, v in scored if v <= lowest * (1 + RATER_TIE)]

    def fit_seconds(rv: tuple[dict[str, Any], float]) -> tuple[float, float]:
        seconds = metric_value(rv[0], "full_ranking.fit.seconds")  # 0.0 is a real figure, None is not
        return (float("inf") if seconds is None else seconds, rv[1])

    cheapest = min(tied, key=fit_seconds)
    return cheapest[0]["model"], cheapest[1]


def previous_champion(
    con: duckdb.DuckDBPyConnection, dataset: str, run_id: str, metric: str
) -> tuple[str, str, float] | None:
    """(run_id, model, metric value) of the champion of the newest published run of this dataset."""
    protocol, path = metric.split(".", 1)
    row = con.execute(
        sql("queries/published_champion"), {"dataset": dataset, "run_id": run_id, "protocol": protocol}
    ).fetchone()
    if row is None:
        return None
    value = metric_value(json.loads(row[2]), path)
    return (row[0], row[1], value) if value is not None else None


def like_for_like(
    previous: tuple[str, str, float] | None, results: list[dict[str, Any]], metric: str
) -> tuple[str, str, float] | None:
    """The published champion's reference figure, measured on this run's data where possible.

    Metrics of runs with different as-of dates come from different validation
    windows: a monthly replay showed the same most_popular at 0.28 one month
    and 0.16 the next, with nothing wrong. So when the published champion's
    model was trained in this run too, its figure here is the reference (same
    split, like for like); only a model no longer trained keeps its old figure.
    """
    if previous is None:
        return None
    run, model, _ = previous
    here = next((metric_value(r, metric) for r in results if r["model"] == model), None)
    return (run, model, here) if here is not None else previous


def gate(choice: Choice, previous: tuple[str, str, float] | None, tolerance: float) -> dict[str, Any]:
    """Publish unless the new champion trails the published one by more than `tolerance`."""
    verdict: dict[str, Any] = {**asdict(choice), "tolerance": tolerance, "previous": None, "publish": True}
    head = f"champion {choice.model}: {choice.metric} {choice.value:.4f}"
    if previous is None:
        verdict["message"] = f"{head} (no earlier published champion for this dataset)"
        return verdict
    run, model, value = previous
    verdict["previous"] = {"run_id": run, "model": model, "value": value}
    if choice.value < value - tolerance:
        verdict["publish"] = False
        verdict["message"] = (
            f"{head} is worse than the published champion {model} of run {run} ({value:.4f}) by "
            f"{value - choice.value:.4f}, more than the tolerance {tolerance}: not published; "
            "the previous recommendations stay current"
        )
    else:
        verdict["message"] = f"{head}; published champion {model} of run {run} had {value:.4f}"
    return verdict


def record_model_runs(
    con: duckdb.DuckDBPyConnection,
    cfg: RunConfig,
    dataset: str,
    results: list[dict[str, Any]],
    champion: str,
    rater: str | None = None,
) -> None:
    """One model_runs row per model and protocol (and one per skipped model), replacing the run's rows;
    is_champion marks the model that ranks the published lists, is_rater the one that rates them;
    `job` says which job wrote them, `test_from` where protocol B's test figures come from,
    `eval_sample_users` how many users protocol B ranked where it drew a sample (NULL: all)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    logical = datetime.fromisoformat(cfg.logical_date).replace(tzinfo=None)
    rows = []
    for r in results:
        base = (cfg.run_id, logical, dataset, r["model"], json.dumps(r.get("params", {}), default=str))
        if "skipped" in r:
            rows.append(
                (
                    *base,
                    json.dumps({"skipped": r["skipped"]}),
                    *(None, 0.0, False, now, "skipped", False, cfg.job, None, None),
                )
            )
            continue
        for protocol in ("notebook", "full_ranking"):
            if protocol in r:
                metrics = {k: v for k, v in r[protocol].items() if k != "schedule"}
                chosen = (r["model"] == champion, now, protocol, r["model"] == rater, cfg.job)
                test_from = r[protocol].get("test_from") if protocol == "full_ranking" else None
                sample = r[protocol].get("eval_sample_users") if protocol == "full_ranking" else None
                rows.append((*base, json.dumps(metrics), r["device"], r["seconds"], *chosen, test_from, sample))
    with transaction(con):
        con.execute("DELETE FROM model_runs WHERE run_id = ?", [cfg.run_id])
        con.executemany(
            "INSERT INTO model_runs (run_id, logical_date, dataset, model, params, metrics, device, seconds, "
            "is_champion, created_at, protocol, is_rater, job, test_from, eval_sample_users) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


# Each protocol's headline metrics: (header, path for metric_value, format). The
# run report and bench/model_results.py (docs/results.md) print these tables.
NOTEBOOK_COLUMNS = (
    ("RMSE (/max)", "notebook.test.rmse", "{:.4f}"),
    ("RMSE★", "notebook.test.rmse_stars", "{:.3f}"),
    ("MAE★", "notebook.test.mae_stars", "{:.3f}"),
    ("R²", "notebook.test.r2", "{:.3f}"),
    ("P@10", "notebook.test.precision@10", "{:.3f}"),
    ("R@10", "notebook.test.recall@10", "{:.3f}"),
    ("F1@10", "notebook.test.f1@10", "{:.3f}"),
    ("NDCG@10", "notebook.test.ndcg@10", "{:.3f}"),
    ("fit s", "notebook.fit.seconds", "{:.0f}"),
)
FULL_RANKING_COLUMNS = (
    ("val NDCG@10", "full_ranking.val.ndcg@10", "{:.4f}"),
    ("Recall@10", "full_ranking.test.recall@10", "{:.4f}"),
    ("Recall@20", "full_ranking.test.recall@20", "{:.4f}"),
    ("NDCG@10", "full_ranking.test.ndcg@10", "{:.4f}"),
    ("NDCG@20", "full_ranking.test.ndcg@20", "{:.4f}"),
    ("MAP@10", "full_ranking.test.map@10", "{:.4f}"),
    ("HitRate@10", "full_ranking.test.hit_rate@10", "{:.3f}"),
    ("Coverage@10", "full_ranking.test.coverage@10", "{:.3f}"),
)

# The log's one-table summary (comparison_table)
COLUMNS = (
    ("RMSE★ A", "notebook.test.rmse_stars", "{:.3f}"),
    ("MAE★ A", "notebook.test.mae_stars", "{:.3f}"),
    ("NDCG@10 A", "notebook.test.ndcg@10", "{:.3f}"),
    ("NDCG@10 B val", "full_ranking.val.ndcg@10", "{:.4f}"),
    ("NDCG@10 B test", "full_ranking.test.ndcg@10", "{:.4f}"),
    ("Recall@10 B", "full_ranking.test.recall@10", "{:.4f}"),
    ("Recall@20 B", "full_ranking.test.recall@20", "{:.4f}"),
    ("MAP@10 B", "full_ranking.test.map@10", "{:.4f}"),
    ("Cov@10 B", "full_ranking.test.coverage@10", "{:.3f}"),
    # how far early stopping let the tuning fit run past its best epoch (0: closed form)
    ("epochs B", "full_ranking.fit.epochs", "{:.0f}"),
    ("best B", "full_ranking.fit.best_epoch", "{:.0f}"),
    ("seconds", "seconds", "{:.1f}"),
)


def comparison_table(results: list[dict[str, Any]], champion: str | None = None) -> str:
    """Markdown table of every model's headline figures; A = notebooks' protocol, B = full ranking.
    Columns no model has (protocol A in a nightly run) are left out."""
    trained = [r for r in results if "skipped" not in r]
    columns = [c for c in COLUMNS if any(metric_value(r, c[1]) is not None for r in trained)] or list(COLUMNS)
    header = "| model | " + " | ".join(c[0] for c in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for r in results:
        name = r["model"] + (" (champion)" if r["model"] == champion else "")
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} |" + " |" * (len(columns) - 1))
            continue
        cells = []
        for _, path, fmt in columns:
            value = metric_value(r, path)
            cells.append(fmt.format(value) if value is not None else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def champion_alert(con: duckdb.DuckDBPyConnection, run_id: str, verdict: dict) -> Alert:
    """A dq_alerts row and the Alert for a champion that was held back by the quality gate."""
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute(
        "DELETE FROM dq_alerts WHERE run_id = ? AND suite = 'model_quality'",
        [run_id],
    )
    con.execute(
        INSERT_ALERT,
        [
            run_id,
            now,
            "model_runs",
            "model_quality",
            "champion_not_worse_than_published",
            verdict["metric"],
            "critical",
            None,
            [verdict["model"], f"{verdict['value']:.4f}"],
            None,
            verdict["message"],
            None,  # no Data Docs page: the evidence is in model_runs
        ],
    )
    previous = verdict.get("previous") or {}
    details = [
        verdict["message"],
        f"published champion: {previous.get('model')} (run {previous.get('run_id')})",
    ]
    return Alert(run_id, "critical", f"model quality gate: {verdict['model']} not published", details)
