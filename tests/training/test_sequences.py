"""The sequence trainer: the fused loss is exact, the loss switches to sampling on big catalogues
(and says so), and early stopping follows validation NDCG@10."""

import logging

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pipeline.core.config import TrainParams
from pipeline.models.registry import Ratings
from pipeline.models.sasrec import (
    SASRec,
    _sampled_logits_cross_entropy,
    _SampledCrossEntropy,
    _SoftmaxCrossEntropy,
    sampled_cross_entropy,
    softmax_cross_entropy,
)
from pipeline.training.sequences import MONITOR, SequenceParams, SequenceTask, choose_loss, fit


def _assert_same_value_and_gradients(fused: torch.Tensor, plain: torch.Tensor, inputs: tuple) -> None:
    """Equal losses, and equal gradients of 2.5 x each loss with respect to every input."""
    torch.testing.assert_close(fused, plain)
    got, want = torch.autograd.grad(2.5 * fused, inputs), torch.autograd.grad(2.5 * plain, inputs)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_fused_softmax_cross_entropy_equals_autograd_in_value_and_gradients(chunk: int) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(50, 8, requires_grad=True)
    items = torch.randn(30, 8, requires_grad=True)
    targets = torch.randint(30, (50,))
    fused = _SoftmaxCrossEntropy.apply(hidden, items, targets, chunk, torch.float32)
    plain = F.cross_entropy(hidden @ items.T, targets)
    _assert_same_value_and_gradients(fused, plain, (hidden, items))
    torch.testing.assert_close(softmax_cross_entropy(hidden, items, targets), plain)  # the entry point, CPU path


def test_fused_softmax_cross_entropy_with_bf16_products_stays_within_bf16_rounding_of_float32() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(200, 32, requires_grad=True)
    items = torch.randn(300, 32, requires_grad=True)
    targets = torch.randint(300, (200,))
    plain = F.cross_entropy(hidden @ items.T, targets)
    want = torch.autograd.grad(plain, (hidden, items))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what the loop does on a CPU with native bf16
        low = softmax_cross_entropy(hidden, items, targets)
    got = torch.autograd.grad(low, (hidden, items))
    low_value, plain_value = float(low.detach()), float(plain.detach())
    assert low.dtype == torch.float32 and abs(low_value - plain_value) < 0.02 * plain_value
    for g, w in zip(got, want, strict=True):
        assert g.dtype == torch.float32
        assert float((g - w).norm() / w.norm()) < 0.02  # bf16 keeps 8 bits of mantissa: ~0.4% per product


def test_sampled_softmax_with_every_other_movie_as_negative_is_the_full_softmax() -> None:
    torch.manual_seed(1)
    hidden, items = torch.randn(20, 8), torch.randn(12, 8)
    targets = torch.randint(12, (20,))
    uniform = torch.full((12,), -np.log(12.0))  # log q equal for all: the correction cancels
    sampled = sampled_cross_entropy(hidden, items, targets, torch.arange(12), uniform)
    torch.testing.assert_close(sampled, F.cross_entropy(hidden @ items.T, targets))


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_fused_sampled_cross_entropy_equals_the_logits_matrix_in_value_and_gradients(chunk: int) -> None:
    torch.manual_seed(2)
    hidden = torch.randn(50, 8, requires_grad=True)
    items = torch.randn(30, 8, requires_grad=True)
    targets = torch.randint(30, (50,))
    negatives = torch.randint(30, (12,))  # with repeats, and some equal to a position's target (masked)
    assert bool((negatives[None, :] == targets[:, None]).any())
    log_q = torch.log(torch.rand(30) + 0.1)
    fused = _SampledCrossEntropy.apply(hidden, items, targets, negatives, log_q, chunk, torch.float32)
    plain = _sampled_logits_cross_entropy(hidden, items, targets, negatives, log_q)
    _assert_same_value_and_gradients(fused, plain, (hidden, items))
    torch.testing.assert_close(sampled_cross_entropy(hidden, items, targets, negatives, log_q), plain)  # CPU path


def test_fused_sampled_cross_entropy_with_bf16_products_stays_within_bf16_rounding_of_float32() -> None:
    torch.manual_seed(3)
    hidden = torch.randn(200, 32, requires_grad=True)
    items = torch.randn(300, 32, requires_grad=True)
    targets, negatives = torch.randint(300, (200,)), torch.randint(300, (64,))
    log_q = torch.full((300,), float(np.log(64 / 300)))
    plain = _sampled_logits_cross_entropy(hidden, items, targets, negatives, log_q)
    want = torch.autograd.grad(plain, (hidden, items))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = sampled_cross_entropy(hidden, items, targets, negatives, log_q)
    got = torch.autograd.grad(low, (hidden, items))
    low_value, plain_value = float(low.detach()), float(plain.detach())
    assert low.dtype == torch.float32 and abs(low_value - plain_value) < 0.02 * plain_value
    for g, w in zip(got, want, strict=True):
        assert g.dtype == torch.float32
        assert float((g - w).norm() / w.norm()) < 0.02


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
    with caplog.at_level(logging.INFO, logger="pipeline.training.sequences"):
        result = fit(
            model, 80, train, val, params, SequenceParams(loss="sampled", sampled_negatives=8), torch.device("cpu")
        )
    assert "loss: sampled softmax, 8 popularity-sampled negatives with log-Q correction" in caplog.text
    assert result.best_val_score > 0.5  # val NDCG@10 of the next chain step, from near 0 untrained


def test_early_stopping_follows_validation_ndcg_and_restores_that_epochs_weights() -> None:
    train, val = _split(_walks(), last=1)
    model = SASRec(30, max_len=16, dim=16, blocks=1, dropout=0.2)
    params = TrainParams(lr=0.01, batch_size=16, max_epochs=60, patience=3, weight_decay=0.0)
    result = fit(model, 80, train, val, params, SequenceParams(), torch.device("cpu"))
    scores = [h[MONITOR] for h in result.history]
    assert result.monitor == MONITOR and result.best_val_score == max(scores)
    assert result.best_epoch == scores.index(max(scores)) + 1
    # stopped by patience: the last 3 epochs neither beat the best NDCG nor lowered the loss by 0.1%
    assert len(result.history) < 60 and len(result.history) - result.best_epoch >= 3
    losses = [h["val_loss"] for h in result.history]
    assert all(losses[i] > min(losses[:i]) * (1 - 1e-3) for i in range(len(losses) - 3, len(losses)))
    again = SequenceTask(model, 80, train, val, params, SequenceParams(), torch.device("cpu")).validate()
    assert again[MONITOR] == pytest.approx(result.best_val_score)  # the best epoch's weights are back
