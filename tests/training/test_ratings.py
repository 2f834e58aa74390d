import polars as pl
import pytest
import torch

from pipeline.core.config import TrainParams
from pipeline.evaluation.split import TRAIN, VAL, notebook_split
from pipeline.models.pair_mlp import PairMLP
from pipeline.training.loop import select_device
from pipeline.training.ratings import fit, predict
from tests.support.synthetic import make


def _data(clusters: int = 0, per_user: int = 25):
    data = make(n_users=80, n_movies=40, per_user=per_user, seed=1, clusters=clusters)
    frame = pl.DataFrame(data.ratings, schema=["user_id", "movie_id", "rating", "timestamp"], orient="row")
    frame = frame.with_columns(user_idx=pl.col("user_id") - 1, movie_idx=pl.col("movie_id") - 1)
    split = notebook_split(frame)

    def triples(part: int):
        rows = split.filter(pl.col("split") == part)
        return (
            torch.tensor(rows["user_idx"].to_numpy()),
            torch.tensor(rows["movie_idx"].to_numpy()),
            torch.tensor(rows["rating"].to_numpy() / 5, dtype=torch.float32),
        )

    return triples(TRAIN), triples(VAL)


def _model(seed: int = 0) -> PairMLP:
    torch.manual_seed(seed)
    return PairMLP(80, 40, torch.rand(80, 3).round(), torch.rand(40, 5).round(), embedding_dim=8, hidden=(32, 16))


def test_model_learns_planted_structure_better_than_the_global_mean() -> None:
    train, val = _data()
    model = _model()
    result = fit(
        model, train, val, TrainParams(max_epochs=60, batch_size=128, patience=8, lr=0.01), torch.device("cpu")
    )
    baseline = float(((val[2] - train[2].mean()) ** 2).mean())
    assert result.best_val_loss < 0.8 * baseline
    # best weights are restored: predicting val again reproduces the best val loss
    again = float(((predict(model, val[0], val[1]) - val[2]) ** 2).mean())
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


def test_cuda_request_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        assert select_device("cuda").type == "cuda"
    else:
        assert select_device("auto").type == "cpu"
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            select_device("cuda")


def test_score_matrix_equals_forward_on_every_pair() -> None:
    model = _model(seed=3).eval()
    for layer in model.mlp:  # non-trivial batch-norm statistics
        if isinstance(layer, torch.nn.BatchNorm1d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
    users, movies = torch.tensor([0, 5, 79]), torch.arange(40)
    with torch.no_grad():
        pairs = model(users.repeat_interleave(40), movies.repeat(3)).view(3, 40)
    assert torch.allclose(model.score_matrix(users, movies), pairs, atol=1e-5)


def test_the_best_checkpoint_is_saved_and_reloads_to_the_best_val_loss(tmp_path) -> None:
    train, val = _data()
    path = tmp_path / "ckpt" / "checkpoint.pt"
    result = fit(_model(), train, val, TrainParams(max_epochs=6, batch_size=256), torch.device("cpu"), checkpoint=path)
    saved = torch.load(path, weights_only=False)
    assert saved["epoch"] == result.best_epoch and len(saved["history"]) >= result.best_epoch
    model = _model()
    model.load_state_dict(saved["model"])
    again = float(((predict(model, val[0], val[1]) - val[2]) ** 2).mean())
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
    mask[train[0], train[1]] = True
    assert rated[mask].mean() > rated[~mask].mean() + 1.0  # logits: rated pairs clearly higher
    # the rating-only trainer leaves that head untrained
    plain = _model()
    fit(plain, train, val, TrainParams(max_epochs=80, patience=80, batch_size=64, lr=0.01), torch.device("cpu"))
    untrained = plain.score_matrix(torch.arange(80), torch.arange(40), head="interaction")
    assert abs(untrained[mask].mean() - untrained[~mask].mean()) < 0.5
