"""Biased MF's fast scorer: the same scores as its forward pass, never from stale factors."""

import torch

from pipeline.models.biased_mf import BiasedMF


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
