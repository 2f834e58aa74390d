"""SASRec: it learns order (what a set of movies cannot say), its padding and batching change
nothing, it repeats with a seed, the matrix-product scorer equals its forward pass, the loss
switches to sampling on big catalogues (and says so), and early stopping follows validation NDCG@10."""

import logging

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.core.config import TrainParams
from pipeline.ingest.features import Features
from pipeline.models import registry
from pipeline.models.base import FitPlan, FitResult, Ratings
from pipeline.models.neural import seed_everything
from pipeline.models.sequence import (
    MONITOR,
    SASRec,
    SequenceParams,
    SequenceTask,
    batches,
    choose_loss,
    histories,
    padded,
    windows,
)
from pipeline.serving.recommend import top_n
from pipeline.training import loop
from tests.support.model_data import CPU, fitted

N_MOVIES = 40


def _ids_only(n_users: int, n_movies: int = N_MOVIES) -> Features:
    empty = np.zeros((n_users, 0), np.float32), np.zeros((n_movies, 0), np.float32)
    return Features(np.arange(n_users), np.arange(n_movies), empty[0], empty[1], [], [])


def _chains(n_users: int, seed: int, length: int = 10, jump: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Histories that walk chains: after movie m comes m + 1, except that with probability `jump`
    the walk jumps to a random movie; the movie after the last one, x, is x + 1.

    A history is then a few runs of consecutive movies, and the set of movies seen cannot tell
    which run the walk is on now: only the order says what comes next. [n_users, length] in time
    order, and the next movies (never rated before)."""
    rng = np.random.default_rng(seed)
    rows, nexts = [], []
    while len(rows) < n_users:
        walk = [int(rng.integers(N_MOVIES - 1))]
        while len(walk) < length:
            walk.append(int(rng.integers(N_MOVIES - 1)) if rng.random() < jump else walk[-1] + 1)
        if max(walk) < N_MOVIES - 1 and len(set(walk) | {walk[-1] + 1}) == length + 1:
            rows.append(walk)
            nexts.append(walk[-1] + 1)
    return np.array(rows), np.array(nexts)


def _ratings(sequences: np.ndarray) -> Ratings:
    n_users, length = sequences.shape
    users = np.repeat(np.arange(n_users), length)
    stamps = 1_000_000 + np.tile(np.arange(length) * 60, n_users)
    return Ratings(users, sequences.ravel(), np.full(users.shape, 0.8, np.float32), stamps)


def _frame(r: Ratings) -> pl.DataFrame:
    return pl.DataFrame({"user_idx": r.users, "movie_idx": r.movies, "rating": r.values * 5, "timestamp": r.timestamps})


@pytest.fixture(scope="module")
def chains() -> tuple[Ratings, np.ndarray]:
    sequences, nexts = _chains(300, seed=1)
    return _ratings(sequences), nexts


def _hit_rate_at_1(name: str, train: Ratings, nexts: np.ndarray, params: dict) -> float:
    model = fitted(name, train, None, params, feats=_ids_only(len(nexts)), epochs=params.get("max_epochs"))
    recs = top_n(model, _frame(train), n=1)
    top = recs.sort("user_idx")["movie_idx"].to_numpy()
    return float((top == nexts).mean())


def test_sasrec_learns_planted_order_that_ease_and_popularity_cannot_see(chains) -> None:
    train, nexts = chains
    sasrec = _hit_rate_at_1(
        "sasrec", train, nexts, {"embedding_dim": 32, "max_len": 16, "batch_size": 64, "lr": 0.005, "max_epochs": 40}
    )
    ease = _hit_rate_at_1("ease", train, nexts, {"lam": 10.0})
    popular = _hit_rate_at_1("most_popular", train, nexts, {})
    # measured: sasrec 0.96-0.97, ease 0.22-0.27, most_popular 0.02-0.05 (seeds 1 and 2)
    assert sasrec >= 0.85, f"sasrec HitRate@1 {sasrec:.2f}"
    assert ease <= 0.4 and popular <= 0.15, f"ease {ease:.2f}, most_popular {popular:.2f}"


def _model(seed: int = 0, n_movies: int = N_MOVIES, dropout: float = 0.2) -> SASRec:
    torch.manual_seed(seed)
    return SASRec(n_movies, max_len=12, dim=16, blocks=2, heads=2, dropout=dropout)


def test_left_padding_does_not_change_any_real_positions_output() -> None:
    model = _model().eval()
    seq = torch.tensor([[3, 17, 5, 9]])
    pad = torch.full((1, 5), model.pad)
    with torch.no_grad():
        alone = model.encode(seq)
        padded_out = model.encode(torch.cat([pad, seq], dim=1))
        # in a batch with a longer sequence, as length-grouped batches do
        batch = model.encode(torch.cat([torch.cat([pad, seq], dim=1), torch.arange(9)[None]], dim=0))
    torch.testing.assert_close(padded_out[:, 5:], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batch[:1, 5:], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.encode(seq, last_only=True), alone[:, -1], rtol=1e-5, atol=1e-5)


def test_the_same_seed_gives_the_same_weights(chains) -> None:
    train, nexts = chains
    params = {"embedding_dim": 16, "max_len": 16, "batch_size": 64}

    def weights() -> dict[str, torch.Tensor]:
        return fitted("sasrec", train, None, params, feats=_ids_only(len(nexts)), epochs=2).state_dict()

    first, second = weights(), weights()
    assert [k for k in first if not k.endswith("_extra_state")] == [k for k in second if not k.endswith("_extra_state")]
    for key, value in first.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, second[key]), key


def test_the_scorers_top_n_equals_ranking_the_forward_pass_last_position_logits() -> None:
    rng = np.random.default_rng(4)
    n_users = 30
    lengths = rng.integers(3, 20, n_users)  # some longer than max_len: the latest max_len count
    users = np.repeat(np.arange(n_users), lengths)
    movies = np.concatenate([rng.choice(N_MOVIES, size=n, replace=False) for n in lengths])
    stamps = np.concatenate([np.sort(rng.integers(0, 50, n)) for n in lengths])  # with ties
    frame = pl.DataFrame({"user_idx": users, "movie_idx": movies, "rating": 4.0, "timestamp": stamps})
    cls = registry.model_class("sasrec")
    model = cls(cls.hyper_parameters({"max_len": 12}), _ids_only(n_users), CPU)
    model.module = _model(seed=2, dropout=0.0).eval()
    model.module.remember(histories(users, movies, stamps, n_users))
    recs = top_n(model, frame, n=5)

    history = histories(users, movies, stamps, n_users)
    for u in range(n_users):
        own = history.movies[history.indptr[u] : history.indptr[u + 1]][-12:]  # the latest max_len, by time
        with torch.no_grad():
            logits = model.module.encode(torch.from_numpy(own)[None])[0, -1] @ model.module.item_matrix().T
        logits[torch.from_numpy(history.movies[history.indptr[u] : history.indptr[u + 1]])] = float("-inf")
        expected = torch.topk(logits, 5).indices.tolist()
        assert recs.filter(pl.col("user_idx") == u).sort("rank")["movie_idx"].to_list() == expected, u


def test_histories_follow_timestamp_then_movie_id_and_shuffling_moves_only_ties() -> None:
    users = np.array([1, 0, 1, 1, 0, 1])
    movies = np.array([9, 4, 2, 7, 3, 5])
    stamps = np.array([20, 5, 10, 10, 5, 10])
    h = histories(users, movies, stamps, n_users=2)
    assert h.indptr.tolist() == [0, 2, 6]
    assert h.movies.tolist() == [3, 4, 2, 5, 7, 9]  # user 1: the three at t=10 by id, then 9 at t=20
    orders = {tuple(histories(users, movies, stamps, 2, np.random.default_rng(s)).movies) for s in range(30)}
    assert len(orders) > 1  # ties do move
    for order in orders:
        assert order[:2] in ((3, 4), (4, 3)) and set(order[2:5]) == {2, 5, 7} and order[5] == 9


def test_windows_make_every_next_movie_a_target_exactly_once() -> None:
    lengths = np.array([1, 2, 5, 11, 0])
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    h = histories(np.repeat(np.arange(5), lengths), np.arange(lengths.sum()), None, 5)
    assert np.array_equal(h.indptr, indptr)
    w = windows(h, max_len=4)
    assert w.length.max() <= 4 and w.positions == int(np.maximum(lengths - 1, 0).sum())
    targets = np.concatenate([np.arange(s + 1, s + 1 + n) for s, n in zip(w.start, w.length, strict=True)])
    expected = np.concatenate([np.arange(indptr[u] + 1, indptr[u + 1]) for u in range(5)])
    assert sorted(targets.tolist()) == expected.tolist()
    # a window never crosses into another user's history
    owner = np.repeat(np.arange(5), lengths)
    for s, n in zip(w.start, w.length, strict=True):
        assert len(set(owner[s : s + n + 1])) == 1


def test_batches_group_windows_of_similar_length_and_cover_each_once() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, 1000)
    w = windows(histories(np.repeat(np.arange(1000), lengths + 1), np.arange((lengths + 1).sum()), None, 1000), 200)
    seen, padding = [], 0
    for batch in batches(w, 32, np.random.default_rng(1)):
        seen += batch.tolist()
        grid = padded(np.arange(w.start.max() + 200), w.start[batch], w.length[batch], -1)
        padding += int((grid == -1).sum())
    assert sorted(seen) == list(range(len(w)))
    assert padding < 0.05 * w.positions  # random batches would pad about half


def _train(model: SASRec, train: Ratings, val: Ratings, params: TrainParams, settings: SequenceParams) -> FitResult:
    """The network on its sequence task, in the trainer's loop (what SASRecModel.fit does)."""
    seed_everything(params.seed)
    task = SequenceTask(model, 80, train, val, params, settings, CPU)
    return loop.train(model, task, params, CPU, FitPlan(loop.train))


def test_the_loss_samples_above_the_catalogue_limit_or_the_memory_budget() -> None:
    settings = SequenceParams(max_len=200, softmax_max_movies=20_000, softmax_budget_mb=1024)
    assert choose_loss(settings, 3_600, batch_size=32) == "softmax"
    assert choose_loss(settings, 59_047, batch_size=32) == "sampled"  # ml-25m's catalogue
    assert choose_loss(settings, 15_000, batch_size=256) == "sampled"  # 256 x 200 x 15,000 x 8 bytes: 5.7 GiB
    assert choose_loss(SequenceParams(loss="softmax"), 59_047, 32) == "softmax"  # asked for explicitly
    with pytest.raises(ValueError, match="expected auto, softmax or sampled"):
        choose_loss(SequenceParams(loss="bpr"), 100, 32)


def _walks(n_users: int = 80, n_movies: int = 30, length: int = 12, seed: int = 0) -> Ratings:
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_movies, n_users)
    movies = (starts[:, None] + np.arange(length)[None, :]) % n_movies  # chains: m then m + 1
    users = np.repeat(np.arange(n_users), length)
    stamps = np.tile(np.arange(length), n_users)
    return Ratings(users, movies.ravel(), np.full(users.shape, 0.8, np.float32), stamps)


def _split(r: Ratings, last: int) -> tuple[Ratings, Ratings]:
    """Each user's last `last` ratings as validation."""
    length = np.bincount(r.users)[0]
    is_val = np.tile(np.arange(length) >= length - last, len(r.users) // length)
    part = [Ratings(r.users[m], r.movies[m], r.values[m], r.timestamps[m]) for m in (~is_val, is_val)]
    return part[0], part[1]


def test_training_logs_which_loss_and_learns_with_the_sampled_one(caplog: pytest.LogCaptureFixture) -> None:
    train, val = _split(_walks(), last=1)
    model = SASRec(30, max_len=16, dim=16, blocks=1, dropout=0.0)
    params = TrainParams(lr=0.01, batch_size=16, max_epochs=25, patience=25, weight_decay=0.0)
    with caplog.at_level(logging.INFO, logger="pipeline.models.sequence"):
        result = _train(model, train, val, params, SequenceParams(loss="sampled", sampled_negatives=8))
    assert "loss: sampled softmax, 8 popularity-sampled negatives with log-Q correction" in caplog.text
    assert result.best_val_score > 0.5  # val NDCG@10 of the next chain step, from near 0 untrained


def test_early_stopping_follows_validation_ndcg_and_restores_that_epochs_weights() -> None:
    train, val = _split(_walks(), last=1)
    model = SASRec(30, max_len=16, dim=16, blocks=1, dropout=0.2)
    params = TrainParams(lr=0.01, batch_size=16, max_epochs=60, patience=3, weight_decay=0.0)
    result = _train(model, train, val, params, SequenceParams())
    scores = [h[MONITOR] for h in result.history]
    assert result.monitor == MONITOR and result.best_val_score == max(scores)
    assert result.best_epoch == scores.index(max(scores)) + 1
    # stopped by patience: the last 3 epochs neither beat the best NDCG nor lowered the loss by 0.1%
    assert len(result.history) < 60 and len(result.history) - result.best_epoch >= 3
    losses = [h["val_loss"] for h in result.history]
    assert all(losses[i] > min(losses[:i]) * (1 - 1e-3) for i in range(len(losses) - 3, len(losses)))
    again = SequenceTask(model, 80, train, val, params, SequenceParams(), torch.device("cpu")).validate()
    assert again[MONITOR] == pytest.approx(result.best_val_score)  # the best epoch's weights are back
