"""The sequence model's losses: the fused, chunked CPU losses equal the plain logits matrix in
value and gradients (bf16 products within bf16 rounding), and a sampled softmax over every other
movie is the full softmax."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pipeline.models.softmax import (
    _sampled_logits_cross_entropy,
    _SampledCrossEntropy,
    _SoftmaxCrossEntropy,
    sampled_cross_entropy,
    softmax_cross_entropy,
)


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
