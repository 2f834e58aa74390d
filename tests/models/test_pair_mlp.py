"""The neural models' dropout: numpy-drawn masks must behave as torch's nn.Dropout."""

from __future__ import annotations

import pytest
import torch

from pipeline.models.pair_mlp import Dropout


@pytest.mark.parametrize("shape", [(200, 500), (201, 499)])  # the draws come four to a 64-bit word: an odd size too
def test_dropout_drops_the_configured_share_and_keeps_the_expected_value(shape) -> None:
    torch.manual_seed(0)
    layer = Dropout(0.3).train()
    out = layer(torch.ones(*shape))
    dropped = float((out == 0).float().mean())
    assert dropped == pytest.approx(0.3, abs=0.005)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.01)  # survivors scaled by 1 / (1 - p)


def test_dropout_passes_gradients_only_through_kept_units() -> None:
    torch.manual_seed(0)
    x = torch.ones(50, 40, requires_grad=True)
    out = Dropout(0.5).train()(x)
    out.sum().backward()
    assert torch.equal(x.grad == 0, out == 0)


def test_dropout_is_the_identity_in_eval_mode_and_repeats_under_a_seed() -> None:
    x = torch.randn(30, 20)
    assert torch.equal(Dropout(0.3).eval()(x), x)
    torch.manual_seed(7)
    first = Dropout(0.3).train()(x)
    torch.manual_seed(7)
    assert torch.equal(Dropout(0.3).train()(x), first)
