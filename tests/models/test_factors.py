"""The factor models: biased MF's fast scorer gives the same scores as its forward pass, never from
stale factors, and its tables are dense or sparse by size; the truncated SVD reconstructs and
reproduces the ml-latest-small notebook."""

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.evaluation.split import TRAIN
from pipeline.ingest.layouts import WHOLE_STARS
from pipeline.models import neural
from pipeline.models.factors import BiasedMF, TruncatedSVDRatings
from pipeline.training.recipe import ratings
from tests.support.model_data import FAST, fitted, planted_split


def _model() -> BiasedMF:
    torch.manual_seed(0)
    model = BiasedMF(7, 11, factors=4)
    for table in (model.movie_bias, model.user_bias, model.movie_interaction_bias):
        torch.nn.init.normal_(table.weight)
    return model.eval()


def test_score_matrix_equals_forward_on_every_pair_for_both_heads() -> None:
    model = _model()
    users, movies = torch.arange(7).repeat_interleave(11), torch.arange(11).repeat(7)
    rating, logit = model.outputs(users, movies)
    assert torch.allclose(model.score_matrix(torch.arange(7)), rating.view(7, 11).detach(), atol=1e-5)
    scored = model.score_matrix(torch.arange(7), None, "interaction")
    assert torch.allclose(scored, logit.view(7, 11).detach(), atol=1e-5)


def test_score_matrix_writes_into_a_reused_buffer() -> None:
    model, buffer = _model(), torch.empty(3, 11)
    scores = model.score_matrix(torch.tensor([0, 2, 4]), None, "interaction", out=buffer)
    assert scores.data_ptr() == buffer.data_ptr()
    assert torch.allclose(buffer, model.score_matrix(torch.tensor([0, 2, 4]), None, "interaction"))


def test_scores_follow_the_weights_after_training_or_loading_new_ones() -> None:
    model = _model()
    before = model.score_matrix(torch.arange(7), None, "interaction").clone()
    with torch.no_grad():
        model.movie_embedding.weight.add_(1.0)  # an optimiser step or load_state_dict updates in place
    after = model.score_matrix(torch.arange(7), None, "interaction")
    expected = model.outputs(torch.arange(7).repeat_interleave(11), torch.arange(11).repeat(7))[1].view(7, 11)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, expected.detach(), atol=1e-5)


def test_scores_follow_in_place_changes_of_the_biases_folded_into_the_product() -> None:
    model = _model()
    for head in ("rating", "interaction"):
        model.score_matrix(torch.arange(7), None, head)  # cached for both heads first
    with torch.no_grad():
        model.movie_bias.weight.add_(0.5)
        model.movie_interaction_bias.weight.mul_(-1.0)
        model.global_bias.add_(2.0)
        model.user_bias.weight.add_(1.0)
    rating, logit = model.outputs(torch.arange(7).repeat_interleave(11), torch.arange(11).repeat(7))
    assert torch.allclose(model.score_matrix(torch.arange(7)), rating.view(7, 11).detach(), atol=1e-5)
    assert torch.allclose(
        model.score_matrix(torch.arange(7), None, "interaction"), logit.view(7, 11).detach(), atol=1e-5
    )


def test_svd_reconstructs_a_low_rank_matrix_plus_user_means() -> None:
    rng = np.random.default_rng(0)
    full = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 20)) + rng.uniform(2, 4, size=(30, 1))
    users, movies = np.nonzero(rng.random(full.shape) < 0.9)
    model = TruncatedSVDRatings(k=5).fit(users, movies, full[users, movies], 30, 20)
    error = model.predict(users, movies) - full[users, movies]
    mean_only = full[users, movies] - model.user_means[users]
    assert np.sqrt(np.mean(error**2)) < 0.25 * np.sqrt(np.mean(mean_only**2))


def test_biased_mf_tables_are_dense_for_a_small_catalogue_and_sparse_above_the_row_threshold(monkeypatch) -> None:
    train = ratings(planted_split().filter(pl.col("split") == TRAIN), WHOLE_STARS)

    def tables_sparse() -> list[bool]:
        model = fitted("biased_mf", train, None, FAST, epochs=1)
        return [m.sparse for m in model.module.modules() if isinstance(m, torch.nn.Embedding)]

    assert neural.SPARSE_ABOVE_ROWS > 120 + 60  # the planted catalogue's rows
    assert not any(tables_sparse())  # dense: weight decay reaches every row
    monkeypatch.setattr(neural, "SPARSE_ABOVE_ROWS", 10)  # the planted catalogue is above it
    assert all(tables_sparse())


def test_a_sparse_embeddings_setting_other_than_true_false_or_auto_is_refused() -> None:
    assert neural.sparse_tables(True, 1) and not neural.sparse_tables(False, 10**9)
    assert neural.sparse_tables("auto", neural.SPARSE_ABOVE_ROWS + 1) and not neural.sparse_tables("auto", 10)
    with pytest.raises(ValueError, match=r"sparse_embeddings.*'yes'"):
        neural.sparse_tables("yes", 1)
