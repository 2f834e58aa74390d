"""The epoch loop's own rules, on a scripted task: early stopping and bf16 autocast."""

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from pipeline.core.config import TrainParams
from pipeline.models.base import VAL_LOSS, FitPlan, FitResult
from pipeline.training import loop


class Scripted:
    """A task whose validation figure follows a script (higher is better), one tiny batch an epoch."""

    samples, unit, monitor, has_validation, loss_name = 1, "samples", "val_ndcg@10", True, "scripted"

    def __init__(self, model: nn.Module, scores: list[float], losses: list[float] | None = None) -> None:
        self.model, self.scores, self.epoch = model, scores, 0
        self.losses = losses or [1.0] * len(scores)  # flat: the validation loss says nothing

    def steps(self) -> Iterator:
        yield 1, lambda: self.model(torch.ones(1, 2)).sum() ** 2

    def validate(self) -> dict[str, float]:
        self.epoch += 1
        return {VAL_LOSS: self.losses[self.epoch - 1], self.monitor: self.scores[self.epoch - 1]}


def _train(scores: list[float], losses: list[float] | None = None, **params) -> FitResult:
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    settings = TrainParams(max_epochs=len(scores), lr_patience=1000, **params)
    return loop.train(model, Scripted(model, scores, losses), settings, torch.device("cpu"), FitPlan(loop.train))


def test_gains_below_min_delta_do_not_count_so_the_fit_stops_patience_epochs_after_the_real_best() -> None:
    scores = [0.10, 0.150, 0.1504, 0.1507, 0.1509, 0.160, 0.161]
    strict = _train(scores, patience=3)  # every gain counts: runs on and keeps epoch 7
    assert (strict.best_epoch, len(strict.history)) == (7, 7)
    # 1% of 0.150 is 0.0015: epochs 3-5 are noise, the fit stops after 3 of them with epoch 2 kept
    tolerant = _train(scores, patience=3, min_delta=0.01)
    assert (tolerant.best_epoch, len(tolerant.history)) == (2, 5)
    assert tolerant.best_val_score == pytest.approx(0.150)


def test_a_ranking_metric_that_dips_while_the_validation_loss_falls_does_not_stop_the_fit() -> None:
    # sasrec on ml-latest-small: an early popularity-like peak, a dip, then the real climb
    scores = [0.035, 0.045, 0.042, 0.041, 0.039, 0.044, 0.045, 0.054, 0.060, 0.059, 0.058, 0.057]
    losses = [8.36, 8.38, 8.34, 8.30, 8.27, 8.24, 8.19, 8.12, 8.12, 8.16, 8.15, 8.17]
    on_score_alone = _train(scores, patience=3, min_delta=0.005)
    assert (on_score_alone.best_epoch, len(on_score_alone.history)) == (2, 5)  # the trap
    fit = _train(scores, losses, patience=3, min_delta=0.005)
    # still learning through epoch 8 (the loss falls), best NDCG at 9, then 3 epochs of neither
    assert (fit.best_epoch, len(fit.history)) == (9, 12)
    assert fit.best_val_score == pytest.approx(0.060)


def test_autocast_stays_off_on_the_cpu_unless_the_model_asks_and_the_cpu_has_bf16(monkeypatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)
    assert not loop.autocast_enabled(TrainParams(), cpu)  # cpu_amp defaults off
    assert loop.autocast_enabled(TrainParams(cpu_amp=True), cpu)
    assert not loop.autocast_enabled(TrainParams(cpu_amp=True, amp=False), cpu)
    assert loop.autocast_enabled(TrainParams(), cuda)
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)  # emulated bf16 is slower: stay float32
    assert not loop.autocast_enabled(TrainParams(cpu_amp=True), cpu)


class Lookup(nn.Module):
    """A sparse-gradient table beside a dense layer: the two halves the loop must step together."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(10, 3, sparse=True)
        self.dense = nn.Linear(3, 1)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.dense(self.table(rows))


class Rows(Scripted):
    """Every batch touches rows 0-2 of the table only."""

    def steps(self) -> Iterator:
        yield 1, lambda: (self.model(torch.tensor([0, 1, 2])) - 1).pow(2).sum()


def test_sparse_embedding_tables_update_only_the_rows_a_batch_touched_and_dense_layers_still_learn() -> None:
    torch.manual_seed(0)
    model = Lookup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = TrainParams(max_epochs=3, lr_patience=1000, lr=0.1, weight_decay=0.1)
    loop.train(model, Rows(model, [0.1, 0.2, 0.3]), settings, torch.device("cpu"), FitPlan(loop.train))
    table = model.table.weight.detach()
    assert not torch.equal(table[:3], before["table.weight"][:3])  # touched rows learned
    assert torch.equal(table[3:], before["table.weight"][3:])  # untouched rows: no decay, no momentum drift
    assert not torch.equal(model.dense.weight.detach(), before["dense.weight"])


def test_a_learning_rate_cut_reaches_the_sparse_tables_optimiser_too() -> None:
    torch.manual_seed(0)
    model = Lookup()
    optimisers = loop.Optimisers(model, TrainParams(lr=0.1))
    assert [type(o).__name__ for o in optimisers.all] == ["Adam", "SparseAdam"]
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimisers.lead, mode="max", factor=0.5, patience=0)
    for score in (1.0, 0.5):  # the second epoch is worse: the lead's rate halves
        scheduler.step(score)
        optimisers.set_lr(optimisers.lr)
    assert [o.param_groups[0]["lr"] for o in optimisers.all] == [0.05, 0.05]


def test_cuda_request_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        assert loop.select_device("cuda").type == "cuda"
    else:
        assert loop.select_device("auto").type == "cpu"
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            loop.select_device("cuda")
