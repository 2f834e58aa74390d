"""Each plot writes a real PNG of a sensible size from plain arrays."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.serving import plots
from tests.support.pngs import assert_png


@pytest.fixture
def ratings() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    actual = rng.integers(1, 6, 5_000).astype(float)
    return actual, np.clip(actual * 0.6 + 1.4 + rng.normal(0, 0.7, len(actual)), 0.5, 5)


def test_rating_distribution_and_genre_chart_are_pngs(tmp_path: Path) -> None:
    assert_png(plots.rating_distribution(np.arange(1, 6.0), np.array([5, 10, 30, 40, 15]), tmp_path / "r.png"))
    path = plots.genre_comparison(
        ["Drama", "Comedy", "Horror"], [4.2, 3.1, None], [3.9, 3.3, 2.8], "g", tmp_path / "g.png"
    )
    assert_png(path)


def test_prediction_plots_are_pngs(tmp_path: Path, ratings) -> None:
    actual, predicted = ratings
    assert_png(plots.predicted_vs_actual(actual, predicted, "s", tmp_path / "s.png"))
    assert_png(plots.error_histogram(predicted - actual, "e", tmp_path / "e.png"))
    assert_png(plots.residuals(predicted, actual, "r", tmp_path / "r.png"))


def test_loss_curves_skip_epochs_without_a_validation_loss(tmp_path: Path) -> None:
    curves = {"B train loss": [0.3, 0.2, 0.15], "B val MSE": [0.25, None, float("nan")], "A train loss": [0.31, 0.22]}
    assert_png(plots.loss_curves(curves, 1, "loss", tmp_path / "l.png"))


def test_forward_metrics_plot_tolerates_windows_without_users(tmp_path: Path) -> None:
    from datetime import datetime

    dates = [datetime(2016, m, 1) for m in range(1, 7)]
    series = {"HitRate@10": [0.1, 0.2, None, 0.15, 0.12, 0.3], "NDCG@10": [0.02, 0.04, None, 0.03, 0.02, 0.05]}
    assert_png(plots.forward_metrics(dates, series, "f", tmp_path / "f.png"))
