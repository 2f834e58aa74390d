import math

import numpy as np
import pytest

from pipeline.core.metrics import rating_metrics, rerank_metrics


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


def test_full_ranking_metrics_by_hand() -> None:
    import scipy.sparse as sp

    from pipeline.core.metrics import full_ranking_metrics

    # 3 users x 5 movies; in train user 0 rated movie 0, user 1 movies 1 and 4, user 2 movies 2 and 3.
    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 1], [0, 0, 1, 1, 0]], dtype=np.float32))
    fixed = np.array([[9.0, 5, 4, 3, 2], [1, 9, 2, 8, 0], [0, 0, 0, 0, 0]])  # seen movies score high: skipped

    m = full_ranking_metrics(
        lambda users: fixed[users],
        train,
        test_users=np.array([0, 0, 1]),
        test_movies=np.array([2, 3, 2]),
        test_ratings=np.array([5.0, 2.0, 4.0]),  # user 0: movie 2 relevant, movie 3 not; user 1: movie 2
        relevant_at=4.0,
        ks=(1, 2),
    )
    # user 0 ranks 1, 2, 3 (0 is seen): hit at rank 2. user 1 ranks 3, 2, 0: hit at rank 2.
    assert m["recall@1"] == 0.0 and m["recall@2"] == 1.0
    assert m["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert m["map@2"] == pytest.approx(0.5) and m["hit_rate@2"] == 1.0 and m["precision@2"] == 0.5
    assert m["coverage@1"] == pytest.approx(2 / 5) and m["coverage@2"] == pytest.approx(3 / 5)
    assert m["users_evaluated"] == 2 and m["candidate_movies"] == 5 and m["users_without_relevant_test_item"] == 0


def test_a_catalogue_smaller_than_k_is_ranked_whole_not_an_error() -> None:
    """Found by the hostile-input test: 15 movies and k = 20 broke the metric arithmetic."""
    import scipy.sparse as sp

    from pipeline.core.metrics import full_ranking_metrics

    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 1], [0, 0, 1, 1, 0]], dtype=np.float32))
    fixed = np.array([[9.0, 5, 4, 3, 2], [1, 9, 2, 8, 0], [0, 0, 0, 0, 0]])
    args = (lambda users: fixed[users], train, np.array([0, 0, 1]), np.array([2, 3, 2]), np.array([5.0, 2.0, 4.0]), 4.0)
    small, whole = full_ranking_metrics(*args, ks=(2, 20)), full_ranking_metrics(*args, ks=(2, 5))
    assert small["recall@20"] == whole["recall@5"] == 1.0  # every movie is in a list of 20
    assert small["ndcg@20"] == pytest.approx(whole["ndcg@5"]) and small["map@20"] == pytest.approx(whole["map@5"])
    assert small["precision@20"] == pytest.approx(1 / 20)  # precision@k still divides by k


def test_metrics_of_an_empty_test_split_are_none_not_an_error() -> None:
    empty = np.array([])
    assert rerank_metrics(empty, empty, empty, 4.0) == {
        "precision@10": None,
        "recall@10": None,
        "f1@10": None,
        "ndcg@10": None,
        "users_ranked": 0,
    }
    assert set(rating_metrics(empty, empty, 5.0).values()) == {None}


def test_full_ranking_ranks_a_fixed_seed_sample_of_users_when_capped_and_says_so() -> None:
    import scipy.sparse as sp

    from pipeline.core.metrics import full_ranking_metrics

    rng = np.random.default_rng(3)
    n_users, n_movies = 500, 40
    train = sp.random(n_users, n_movies, density=0.2, format="csr", random_state=3, dtype=np.float32)
    train.data[:] = 1.0
    scores = rng.random((n_users, n_movies)).astype(np.float32)
    test_users = np.arange(n_users)
    test_movies = rng.integers(0, n_movies, n_users)
    asked: list[np.ndarray] = []

    def scorer(users: np.ndarray) -> np.ndarray:
        asked.append(users)
        return scores[users]

    args = (train, test_users, test_movies, np.full(n_users, 5.0), 4.0)
    full = full_ranking_metrics(lambda users: scores[users], *args)
    capped = full_ranking_metrics(scorer, *args, max_users=100)
    again = full_ranking_metrics(lambda users: scores[users], *args, max_users=100)
    ranked = np.concatenate(asked)
    assert capped["users_evaluated"] == len(ranked) == len(np.unique(ranked)) == 100  # only the sample is scored
    assert capped["users_sampled_from"] == full["users_evaluated"] > 100 and "users_sampled_from" not in full
    assert capped == again  # the same seed draws the same users
    assert capped["ndcg@10"] != full["ndcg@10"] and 0 < capped["ndcg@10"] < 1


def test_full_ranking_metrics_do_not_depend_on_the_batch_of_users() -> None:
    import scipy.sparse as sp

    from pipeline.core.metrics import full_ranking_metrics

    rng = np.random.default_rng(5)
    train = sp.random(300, 50, density=0.2, format="csr", random_state=5, dtype=np.float32)
    scores = rng.random((300, 50)).astype(np.float32)
    args = (train, np.arange(300), rng.integers(0, 50, 300), np.full(300, 5.0), 4.0)
    default = full_ranking_metrics(lambda users: scores[users], *args)  # one batch: 50 movies is a small catalogue
    for batch in (7, 64):
        assert full_ranking_metrics(lambda users: scores[users], *args, batch=batch) == pytest.approx(default)
