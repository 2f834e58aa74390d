"""The notebooks' plots as PNG files, for the run report and `show-user --plot`.

Each function takes plain arrays and a path, writes one PNG and returns the
path. matplotlib's object API (`Figure`, no pyplot) keeps no global state and
needs no display, so Airflow workers and tests can call these freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

SIZE = (6.4, 4.0)
DPI = 100
PALETTE = ("#4c72b0", "#55a868", "#dd8452", "#8172b3")
SCATTER_POINTS = 20_000  # more only blackens the plot and slows it down


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png", bbox_inches="tight")
    return path


def rating_distribution(values: np.ndarray, counts: np.ndarray, path: Path) -> Path:
    """How many ratings each star value has."""
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    width = 0.8 * float(np.min(np.diff(values))) if len(values) > 1 else 0.4
    ax.bar(values, counts, width=width, color="#4c72b0")
    ax.set(xlabel="rating", ylabel="ratings", title="Rating distribution", xticks=values)
    ax.yaxis.set_major_formatter("{x:,.0f}")
    return _save(fig, path)


def loss_curves(curves: dict[str, Sequence[float]], best_epoch: int | None, title: str, path: Path) -> Path:
    """Per-epoch losses (label -> values); the epoch whose weights were kept is marked."""
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    colours: dict[str, str] = {}
    for label, values in curves.items():
        finite = [(i + 1, v) for i, v in enumerate(values) if v is not None and np.isfinite(v)]
        if finite:
            epochs, losses = zip(*finite, strict=True)
            # one colour per fit (the label's first word), solid for train and dashed for validation
            colour = colours.setdefault(label.split()[0], PALETTE[len(colours) % len(PALETTE)])
            style = "--" if "val" in label else "-"
            ax.plot(epochs, losses, marker="o", markersize=3, label=label, linestyle=style, color=colour)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if best_epoch:
        ax.axvline(best_epoch, color="grey", linewidth=1, linestyle=":", label=f"best epoch {best_epoch}")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _sample(n: int, limit: int, seed: int = 0) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, title: str, path: Path) -> Path:
    """Scatter of predicted against actual stars (actual jittered: ratings are discrete)."""
    pick = _sample(len(actual), SCATTER_POINTS)
    a, p = actual[pick], predicted[pick]
    jitter = np.random.default_rng(1).uniform(-0.15, 0.15, len(a))
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    ax.scatter(a + jitter, p, s=4, alpha=0.15, color="#4c72b0", linewidths=0)
    lo, hi = float(min(a.min(), p.min())), float(max(a.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="#c44e52", linewidth=1, label="perfect prediction")
    means = [(v, float(p[a == v].mean())) for v in np.unique(a)]
    ax.plot(*zip(*means, strict=True), color="black", marker="s", markersize=4, linewidth=1, label="mean prediction")
    ax.set(xlabel="actual rating (jittered)", ylabel="predicted rating", title=title)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def error_histogram(errors: np.ndarray, title: str, path: Path) -> Path:
    """Distribution of predicted - actual, with RMSE and MAE in the legend."""
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    rmse, mae = float(np.sqrt(np.mean(errors**2))), float(np.mean(np.abs(errors)))
    ax.hist(errors, bins=60, color="#4c72b0", label=f"RMSE {rmse:.3f}, MAE {mae:.3f}")
    ax.axvline(0, color="#c44e52", linewidth=1)
    ax.set(xlabel="predicted - actual (stars)", ylabel="test ratings", title=title)
    ax.yaxis.set_major_formatter("{x:,.0f}")
    ax.legend(fontsize=8)
    return _save(fig, path)


def residuals(predicted: np.ndarray, actual: np.ndarray, title: str, path: Path) -> Path:
    """Residual (actual - predicted) against the prediction: bias by predicted level shows as a slope."""
    pick = _sample(len(actual), SCATTER_POINTS)
    p, r = predicted[pick], (actual - predicted)[pick]
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    ax.scatter(p, r, s=4, alpha=0.15, color="#4c72b0", linewidths=0)
    ax.axhline(0, color="#c44e52", linewidth=1)
    edges = np.linspace(p.min(), p.max(), 21)
    which = np.clip(np.digitize(p, edges) - 1, 0, 19)
    centres = [(edges[i] + edges[i + 1]) / 2 for i in range(20) if (which == i).sum() >= 20]
    binned = [float(r[which == i].mean()) for i in range(20) if (which == i).sum() >= 20]
    if centres:
        ax.plot(centres, binned, color="black", marker="s", markersize=3, linewidth=1, label="mean residual")
        ax.legend(fontsize=8)
    ax.set(xlabel="predicted rating", ylabel="actual - predicted", title=title)
    return _save(fig, path)


def forward_metrics(dates: Sequence, series: dict[str, Sequence[float | None]], title: str, path: Path) -> Path:
    """Forward-evaluation metrics of the published lists over runs (label -> one value per date)."""
    fig = Figure(figsize=(SIZE[0] * 1.25, SIZE[1]))
    ax = fig.subplots()
    for label, values in series.items():
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.plot(list(dates), y, marker="o", markersize=3, label=label)
    ax.set(xlabel="window end (next run's logical date)", ylabel="metric", title=title)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)


def genre_comparison(
    genres: Sequence[str], actual: Sequence[float], predicted: Sequence[float], title: str, path: Path
) -> Path:
    """Per genre: the user's mean actual rating beside the model's mean predicted rating of unseen movies."""
    y = np.arange(len(genres))
    fig = Figure(figsize=(SIZE[0], max(3.0, 0.32 * len(genres) + 1.2)))
    ax = fig.subplots()
    a = np.array([np.nan if v is None else v for v in actual], dtype=float)
    p = np.array([np.nan if v is None else v for v in predicted], dtype=float)
    ax.barh(y - 0.2, a, height=0.4, color="#4c72b0", label="your average rating")
    ax.barh(y + 0.2, p, height=0.4, color="#dd8452", label="average predicted, unseen movies")
    ax.set_yticks(y, list(genres))
    ax.invert_yaxis()
    ax.set_xlabel("stars")
    ax.set_ylabel("genre (movies you rated)")
    ax.set_title(title, fontsize=10, pad=24)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return _save(fig, path)
