"""Metrics of the notebooks' protocol (../shared/EVALUATION.md, A).

Rating accuracy on the [0, 1] scale and in stars, and ranking quality from
re-ranking each user's own test items. The re-ranking numbers compare with
the notebooks only; they say little about the published top-N lists.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score


def rating_metrics(pred01: np.ndarray, true01: np.ndarray, rating_max: float) -> dict[str, float]:
    """RMSE/MAE/R² on the model's [0, 1] scale, and RMSE/MAE in stars."""
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
