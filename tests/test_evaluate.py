import math

import numpy as np
import pytest

from pipeline.evaluate import rating_metrics, rerank_metrics


def test_rating_metrics_report_both_scales() -> None:
    m = rating_metrics(np.array([0.8, 0.6]), np.array([1.0, 0.6]), rating_max=5.0)
    assert m["rmse"] == pytest.approx(math.sqrt(0.02))
    assert m["rmse_stars"] == pytest.approx(5 * math.sqrt(0.02))
    assert m["mae_stars"] == pytest.approx(0.5)


def test_rerank_metrics_by_hand() -> None:
    # user 1: scores rank [a(5★), b(2★), c(4★)] -> hits a, c of 2 relevant; user 2: one item, not relevant
    users = np.array([1, 1, 1, 2])
    scores = np.array([0.9, 0.8, 0.1, 0.5])
    ratings = np.array([5, 2, 4, 3])
    m = rerank_metrics(users, scores, ratings, relevant_at=4.0, k=2)
    # user 1 top-2 = a (rel), b (not): P = 1/2, R = 1/2; user 2: P = 0, R = 0 (no relevant)
    assert m["precision@2"] == pytest.approx(0.25)
    assert m["recall@2"] == pytest.approx(0.25)
    # NDCG user 1: DCG = 1/log2(2) = 1, IDCG from the same top-2 sorted = 1 -> 1.0; user 2: 0
    assert m["ndcg@2"] == pytest.approx(0.5)
    assert m["users_ranked"] == 2


def test_better_scores_give_better_ranking_metrics() -> None:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 20)
    ratings = rng.integers(1, 6, size=len(users))
    good = rerank_metrics(users, ratings + rng.normal(0, 0.1, len(users)), ratings, 4.0)
    bad = rerank_metrics(users, -ratings + rng.normal(0, 0.1, len(users)), ratings, 4.0)
    assert good["ndcg@10"] > bad["ndcg@10"] and good["precision@10"] > bad["precision@10"]
