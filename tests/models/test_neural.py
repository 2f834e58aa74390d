"""What the torch models share: the numpy-drawn dropout behaves as torch's, and the rating task
(MSE plus the interaction head) trains a network in the trainer's loop: it learns, repeats with a
seed, stops early, restores and checkpoints its best epoch, and refits on a given schedule."""

import copy

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.core.config import TrainParams
from pipeline.evaluation.split import TRAIN, VAL, notebook_split
from pipeline.ingest.layouts import WHOLE_STARS
from pipeline.models import registry
from pipeline.models.base import Ratings
from pipeline.models.networks import PairMLP
from pipeline.models.neural import Dropout, predict_pairs
from pipeline.training.recipe import ratings
from tests.support.model_data import FAST, fitted, planted_split, train_rating_network
from tests.support.synthetic import make


def _data(clusters: int = 0, per_user: int = 25):
    data = make(n_users=80, n_movies=40, per_user=per_user, seed=1, clusters=clusters)
    frame = pl.DataFrame(data.ratings, schema=["user_id", "movie_id", "rating", "timestamp"], orient="row")
    frame = frame.with_columns(user_idx=pl.col("user_id") - 1, movie_idx=pl.col("movie_id") - 1)
    split = notebook_split(frame)

    def rows(part: int) -> Ratings:
        rows = split.filter(pl.col("split") == part)
        return Ratings(rows["user_idx"].to_numpy(), rows["movie_idx"].to_numpy(), rows["rating"].to_numpy() / 5)

    return rows(TRAIN), rows(VAL)


def fit(model, train: Ratings, val: Ratings | None, params: TrainParams, device=None, **plan):
    return train_rating_network(model, train, val, params, **plan)


def predict(model, users, movies):
    return predict_pairs(
        model, torch.from_numpy(np.array(users, np.int64)), torch.from_numpy(np.array(movies, np.int64))
    )


def _model(seed: int = 0) -> PairMLP:
    torch.manual_seed(seed)
    return PairMLP(80, 40, torch.rand(80, 3).round(), torch.rand(40, 5).round(), embedding_dim=8, hidden=(32, 16))


def test_model_learns_planted_structure_better_than_the_global_mean() -> None:
    train, val = _data()
    model = _model()
    result = fit(
        model, train, val, TrainParams(max_epochs=60, batch_size=128, patience=8, lr=0.01), torch.device("cpu")
    )
    baseline = float(((torch.from_numpy(val.values).float() - float(train.values.mean())) ** 2).mean())
    assert result.best_val_loss < 0.8 * baseline
    # best weights are restored: predicting val again reproduces the best val loss
    again = float(((predict(model, val.users, val.movies) - torch.from_numpy(val.values).float()) ** 2).mean())
    assert again == pytest.approx(result.best_val_loss, rel=1e-4)


def test_training_is_repeatable_with_a_seed() -> None:
    train, val = _data()
    params = TrainParams(max_epochs=3, batch_size=256)
    first = fit(_model(), train, val, params, torch.device("cpu"))
    second = fit(_model(), train, val, params, torch.device("cpu"))
    assert [h["val_loss"] for h in first.history] == [h["val_loss"] for h in second.history]


def test_early_stopping_stops_before_max_epochs_when_val_stops_improving() -> None:
    train, val = _data()
    result = fit(
        _model(), train, val, TrainParams(max_epochs=200, batch_size=256, patience=2, lr=0.05), torch.device("cpu")
    )
    assert len(result.history) < 200 and result.best_epoch <= len(result.history) - 2


def test_the_best_checkpoint_is_saved_and_reloads_to_the_best_val_loss(tmp_path) -> None:
    train, val = _data()
    path = tmp_path / "ckpt" / "checkpoint.pt"
    result = fit(_model(), train, val, TrainParams(max_epochs=6, batch_size=256), torch.device("cpu"), checkpoint=path)
    saved = torch.load(path, weights_only=False)
    assert saved["epoch"] == result.best_epoch and len(saved["history"]) >= result.best_epoch
    model = _model()
    model.load_state_dict(saved["model"])
    again = float(((predict(model, val.users, val.movies) - torch.from_numpy(val.values).float()) ** 2).mean())
    assert again == pytest.approx(result.best_val_loss, rel=1e-4)


def test_a_refit_without_validation_runs_the_given_epochs_at_the_given_learning_rates() -> None:
    train, _ = _data()
    schedule = [0.01, 0.01, 0.005]
    result = fit(
        _model(), train, None, TrainParams(batch_size=256), torch.device("cpu"), epochs=3, lr_schedule=schedule
    )
    assert [h["lr"] for h in result.history] == schedule and result.best_epoch == 3


def test_sampled_negatives_teach_the_interaction_head_to_rank_rated_pairs_first() -> None:
    train, val = _data(clusters=4, per_user=10)  # who rates what is planted: four blocks of movies
    model = _model()
    fit(
        model,
        train,
        val,
        TrainParams(max_epochs=80, patience=80, batch_size=64, lr=0.01, negatives=2, interaction_weight=1.0),
        torch.device("cpu"),
    )
    rated = model.score_matrix(torch.arange(80), torch.arange(40), head="interaction")
    mask = torch.zeros(80, 40, dtype=torch.bool)
    mask[torch.tensor(train.users), torch.tensor(train.movies)] = True
    assert rated[mask].mean() > rated[~mask].mean() + 1.0  # logits: rated pairs clearly higher
    # the rating-only trainer leaves that head untrained
    plain = _model()
    fit(plain, train, val, TrainParams(max_epochs=80, patience=80, batch_size=64, lr=0.01), torch.device("cpu"))
    untrained = plain.score_matrix(torch.arange(80), torch.arange(40), head="interaction")
    assert abs(untrained[mask].mean() - untrained[~mask].mean()) < 0.5


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


TORCH_MODELS = [n for n in registry.NAMES if registry.model_class(n).spec.torch]


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_a_warm_start_continues_the_given_weights_and_a_refit_from_scratch_does_not(name: str) -> None:
    split = planted_split()
    tuned = fitted(name, ratings(split.filter(pl.col("split") == TRAIN), WHOLE_STARS), None, FAST, epochs=3)
    state = copy.deepcopy(tuned.state_dict())
    learnt = dict(tuned.module.named_parameters())
    rows = ratings(split.filter(pl.col("split").is_in([TRAIN, VAL])), WHOLE_STARS)
    frozen = {"epochs": 1, "lr_schedule": [0.0]}  # one epoch that cannot move a weight
    warm = fitted(name, rows, None, FAST, **frozen, init_state=state)
    scratch = fitted(name, rows, None, FAST, **frozen)
    assert all(torch.equal(p, learnt[k]) for k, p in warm.module.named_parameters())
    assert not all(torch.equal(p, learnt[k]) for k, p in scratch.module.named_parameters())
