import polars as pl
import pytest
import torch

from pipeline.config import TrainParams
from pipeline.models.neumf_features import NeuMFFeatures
from pipeline.split import TRAIN, VAL, notebook_split
from pipeline.train import fit, predict, select_device
from tests.synthetic import make


def _data():
    data = make(n_users=80, n_movies=40, per_user=25, seed=1)
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


def _model(seed: int = 0) -> NeuMFFeatures:
    torch.manual_seed(seed)
    return NeuMFFeatures(80, 40, torch.rand(80, 3).round(), torch.rand(40, 5).round(), embedding_dim=8, hidden=(32, 16))


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
