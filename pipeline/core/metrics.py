"""Metrics of both evaluation protocols (../shared/EVALUATION.md).

A, the notebooks': rating accuracy on the [0, 1] scale and in stars, and
ranking quality from re-ranking each user's own test items. Those numbers
compare with the notebooks only; they say little about the published lists.
B, full ranking: every unseen movie is a candidate, as in the published
top-N lists.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score


def rating_metrics(pred01: np.ndarray, true01: np.ndarray, rating_max: float) -> dict[str, float]:
    """RMSE/MAE/R² on the model's [0, 1] scale, and RMSE/MAE in stars (None without test rows:
    an early as-of date can leave none)."""
    if len(true01) == 0:
        return dict.fromkeys(("rmse", "mae", "r2", "rmse_stars", "mae_stars"))
    rmse = float(np.sqrt(mean_squared_error(true01, pred01)))
    mae = float(mean_absolute_error(true01, pred01))
    return {
        "rmse": rmse,
        "mae": mae,
        "r2": float(r2_score(true01, pred01)),
        "rmse_stars": rmse * rating_max,
        "mae_stars": mae * rating_max,
    }


def rerank_metrics(
    users: np.ndarray, scores: np.ndarray, ratings: np.ndarray, relevant_at: float, k: int = 10
) -> dict[str, float]:
    """Precision/Recall/F1/NDCG@k ranking each user's own test rows by score.

    relevant = rating >= relevant_at; NDCG uses gain 2^rel - 1 and an IDCG
    from the same top-k relevances sorted (the notebooks' formula).
    """
    users = np.asarray(users)
    if len(users) == 0:  # nothing to rank (an early as-of date can leave no test rows)
        return dict.fromkeys((f"precision@{k}", f"recall@{k}", f"f1@{k}", f"ndcg@{k}")) | {"users_ranked": 0}
    order = np.lexsort((-np.asarray(scores), users))  # by user, then score descending
    u, rel = users[order], (np.asarray(ratings)[order] >= relevant_at).astype(np.float64)
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    sizes = np.diff(np.r_[starts, len(u)])
    rank = np.arange(len(u)) - np.repeat(starts, sizes)  # 0-based rank within user
    top = rank < k
    group = np.repeat(np.arange(len(starts)), sizes)

    n_relevant = np.bincount(group, weights=rel, minlength=len(starts))
    hits = np.bincount(group[top], weights=rel[top], minlength=len(starts))
    precision = hits / k
    recall = np.divide(hits, n_relevant, out=np.zeros_like(hits), where=n_relevant > 0)

    gain = (2.0**rel - 1.0) / np.log2(rank + 2.0)
    dcg = np.bincount(group[top], weights=gain[top], minlength=len(starts))
    # IDCG: the same top-k relevances, sorted descending within the user.
    ideal_rel = np.zeros_like(rel)
    top_idx = np.flatnonzero(top)
    resorted = top_idx[np.lexsort((-rel[top_idx], group[top_idx]))]
    ideal_rel[top_idx] = rel[resorted]
    idcg = np.bincount(group[top], weights=((2.0**ideal_rel - 1.0) / np.log2(rank + 2.0))[top], minlength=len(starts))
    ndcg = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)

    p, r = float(precision.mean()), float(recall.mean())
    return {
        f"precision@{k}": p,
        f"recall@{k}": r,
        f"f1@{k}": 2 * p * r / (p + r + 1e-8),
        f"ndcg@{k}": float(ndcg.mean()),
        "users_ranked": len(starts),
    }


EVAL_ELEMENTS = 1 << 25  # scores per evaluation batch (128 MB as float32)


def full_ranking_metrics(
    scores: Callable[[np.ndarray], np.ndarray],
    train: sp.csr_matrix,
    test_users: np.ndarray,
    test_movies: np.ndarray,
    test_ratings: np.ndarray,
    relevant_at: float,
    ks: tuple[int, ...] = (10, 20),
    batch: int | None = None,
    max_users: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Protocol B (EVALUATION.md): rank every movie with a train rating that the user has not
    rated in train; relevant = test rating >= relevant_at; users with no relevant test item
    are skipped and counted.

    With `max_users`, at most that many of the users with a relevant test item are ranked,
    drawn with `seed` (the same users on every run of the same data); "users_sampled_from"
    then says how many there were. A pair model scores users x movies pairs: 162,000 users
    over 59,000 movies would take it an hour per pass on a CPU.

    `scores(users)` gives a [len(users), n_movies] matrix over the train matrix's columns;
    test rows must already be in those indices (rows whose movie has no train rating dropped).
    """
    n_users, n_movies = train.shape
    candidates = np.asarray(train.sum(axis=0)).ravel() > 0
    relevant = np.asarray(test_ratings) >= relevant_at
    truth = sp.csr_matrix(
        (np.ones(int(relevant.sum()), dtype=np.float32), (test_users[relevant], test_movies[relevant])),
        shape=(n_users, n_movies),
    )
    truth.data[:] = 1.0
    n_relevant = np.asarray(truth.sum(axis=1)).ravel()
    users = np.flatnonzero(n_relevant > 0)
    # users per batch: a [batch, n_movies] score matrix is copied and partitioned (int64 indices):
    # about 4 such matrices at once, so the batch shrinks on big catalogues (2,048 users x 62,000
    # movies held 2.5 GB)
    batch = batch or min(2048, max(64, EVAL_ELEMENTS // max(n_movies, 1)))
    population = len(users)
    if max_users is not None and population > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    kmax = max(ks)
    discounts = 1.0 / np.log2(np.arange(2, kmax + 2))
    sums: dict[str, float] = {}
    shown = {k: np.zeros(n_movies, dtype=bool) for k in ks}
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        s = np.array(scores(chunk), dtype=np.float32, copy=True)
        s[:, ~candidates] = -np.inf
        seen = train[chunk]
        s[np.repeat(np.arange(len(chunk)), np.diff(seen.indptr)), seen.indices] = -np.inf
        # torch's top-k, sorted: numpy's argpartition took 0.76 s of each 541 x 62,000 batch at 25M
        # ratings (bench: 28 s of a 20,000-user evaluation), torch.topk 0.03 s
        top = torch.topk(torch.from_numpy(s), min(kmax, n_movies), dim=1).indices.numpy().copy()
        hits = np.asarray(truth[chunk][np.arange(len(chunk))[:, None], top].todense()) > 0
        rel = n_relevant[chunk]
        for k in ks:
            h = hits[:, :k]  # fewer than k columns where the catalogue has fewer than k movies
            n_hits = h.sum(axis=1)
            ideal = np.array([discounts[: int(min(r, k))].sum() for r in rel])
            precision_at = np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)
            for name, values in (
                (f"recall@{k}", n_hits / rel),
                (f"precision@{k}", n_hits / k),
                (f"hit_rate@{k}", (n_hits > 0).astype(float)),
                (f"ndcg@{k}", (h * discounts[: h.shape[1]]).sum(axis=1) / ideal),
                (f"map@{k}", (precision_at * h).sum(axis=1) / np.minimum(rel, k)),
            ):
                sums[name] = sums.get(name, 0.0) + float(values.sum())
            shown[k][np.unique(top[:, :k])] = True
    n = max(len(users), 1)
    metrics = {name: total / n for name, total in sorted(sums.items())}
    metrics |= {f"coverage@{k}": float(shown[k].sum() / max(candidates.sum(), 1)) for k in ks}
    with_test = np.unique(test_users)
    metrics |= {
        "users_evaluated": len(users),
        "users_without_relevant_test_item": int(len(with_test) - population),
        "candidate_movies": int(candidates.sum()),
    }
    if len(users) < population:
        metrics["users_sampled_from"] = population
    return metrics
