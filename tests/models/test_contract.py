"""The contract every registered model keeps, whatever its family (as implicit's backends share
one test mixin): adding a model means registering it and passing these tests.

Each model is fitted on the same small synthetic set with planted tastes; then its scores have
a row per user and a column per movie, its published lists never hold a movie the user rated,
a saved copy scores exactly as it did, the same seed gives the same scores, and it ranks
held-out movies better than chance.
"""

import copy
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from pipeline.core.metrics import full_ranking_metrics
from pipeline.evaluation.protocols import ratings
from pipeline.evaluation.split import TEST, TRAIN, VAL
from pipeline.ingest.layouts import WHOLE_STARS
from pipeline.models import registry
from pipeline.models.baselines import interactions
from pipeline.serving.recommend import top_n
from tests.support.model_data import FAST, N_MOVIES, N_USERS, features, planted_split

CPU = torch.device("cpu")
MODELS = sorted(registry.SPECS)


@pytest.fixture(scope="module")
def split() -> pl.DataFrame:
    return planted_split()


def _part(split: pl.DataFrame, *parts: int):
    return ratings(split.filter(pl.col("split").is_in(parts)), WHOLE_STARS)


def _fit(name: str, split: pl.DataFrame, overrides: dict | None = None) -> registry.Recommender:
    model = registry.Recommender(name, registry.hyper_parameters(name, {**FAST, **(overrides or {})}), features(), CPU)
    model.fit(_part(split, TRAIN), _part(split, VAL))
    return model


@pytest.fixture(scope="module", params=MODELS)
def fitted(request, split) -> registry.Recommender:
    return _fit(request.param, split)


def test_every_model_of_the_config_is_in_the_contract() -> None:
    from pipeline.core.config import ALL_MODELS

    assert set(MODELS) == set(ALL_MODELS)


def test_scores_have_a_finite_row_per_user_and_a_column_per_movie(fitted) -> None:
    users = np.array([0, 7, N_USERS - 1])
    scores = fitted.scores(users)
    assert scores.shape == (3, N_MOVIES) and np.isfinite(scores).all()
    # the same users one at a time: a user's scores do not depend on who else is in the batch
    np.testing.assert_allclose(
        np.vstack([fitted.scores(users[i : i + 1]) for i in range(3)]), scores, rtol=1e-5, atol=1e-5
    )


def test_published_lists_never_hold_a_movie_the_user_rated(fitted, split) -> None:
    train = split.filter(pl.col("split") == TRAIN)
    recs = top_n(fitted, train, n=10)
    assert recs.join(train, on=["user_idx", "movie_idx"]).height == 0
    assert recs.group_by("user_idx").len()["len"].max() <= 10
    assert recs["user_idx"].n_unique() == train["user_idx"].n_unique()


def test_a_saved_model_loads_and_scores_exactly_as_before(fitted, tmp_path: Path) -> None:
    fitted.save(tmp_path / "model.bin")
    again = registry.Recommender.load(fitted.name, tmp_path / "model.bin", features(), CPU)
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(again.scores(users), fitted.scores(users))


@pytest.mark.parametrize("name", MODELS)
def test_the_same_seed_gives_the_same_scores(name: str, split) -> None:
    quick = {"max_epochs": 3}
    first, second = _fit(name, split, quick), _fit(name, split, quick)
    np.testing.assert_array_equal(first.scores(np.arange(N_USERS)), second.scores(np.arange(N_USERS)))


def test_it_ranks_held_out_movies_better_than_chance(fitted, split) -> None:
    train, test = _part(split, TRAIN), _part(split, TEST)
    seen = interactions(train.users, train.movies, N_USERS, N_MOVIES)

    def chance(users: np.ndarray) -> np.ndarray:
        return np.random.default_rng(0).random((len(users), N_MOVIES))

    ours = full_ranking_metrics(fitted.scores, seen, test.users, test.movies, test.values * 5, 1.0)
    random = full_ranking_metrics(chance, seen, test.users, test.movies, test.values * 5, 1.0)
    assert ours["recall@10"] > 1.2 * random["recall@10"], f"{ours['recall@10']:.3f} vs {random['recall@10']:.3f}"


def test_a_rating_model_predicts_a_rating_per_pair_and_a_ranking_model_refuses(fitted) -> None:
    users, movies = np.array([0, 1, 2]), np.array([5, 6, 7])
    if fitted.spec.predicts_ratings:
        predicted = fitted.predict(users, movies)
        assert predicted.shape == (3,) and np.isfinite(predicted).all()
    else:
        with pytest.raises(TypeError, match="predicts no ratings"):
            fitted.predict(users, movies)


# models that score a user from the user's ratings; the others from factors they learnt
RANK_FROM_HISTORY = {"ease", "sasrec"}


@pytest.mark.parametrize("name", MODELS)
def test_ranking_from_a_longer_history_changes_no_weight_and_only_history_models_scores(name: str, split) -> None:
    model = _fit(name, split, {"max_epochs": 3})
    users = np.arange(N_USERS)
    before = model.scores(users).copy()
    state = model.module.state_dict() if model.module is not None else {}
    weights = {k: v.clone() for k, v in state.items() if torch.is_tensor(v)}
    solved = copy.deepcopy(getattr(model.solver, "weights", None))  # EASE's B
    model.rank_from(_part(split, TRAIN, VAL))  # the nightly job's "tuned model on test"
    after = model.scores(users)
    if model.module is not None:
        assert all(torch.equal(v, weights[k]) for k, v in model.module.state_dict().items() if k in weights)
    if solved is not None:
        np.testing.assert_array_equal(model.solver.weights, solved)
    if name in RANK_FROM_HISTORY:
        assert not np.allclose(before, after)  # the validation movies are history now
    else:
        np.testing.assert_array_equal(before, after)


NEURAL = [m for m in MODELS if registry.spec(m).family != "closed_form"]


@pytest.mark.parametrize("name", NEURAL)
def test_a_warm_start_continues_the_given_weights_and_a_refit_from_scratch_does_not(name: str, split) -> None:
    tuned = _fit(name, split, {"max_epochs": 3})
    state = copy.deepcopy(tuned.module.state_dict())
    learnt = dict(tuned.module.named_parameters())
    params = registry.hyper_parameters(name, FAST)
    frozen = {"epochs": 1, "lr_schedule": [0.0]}  # one epoch that cannot move a weight
    warm = registry.Recommender(name, params, features(), CPU)
    warm.fit(_part(split, TRAIN, VAL), None, **frozen, init_state=state)
    scratch = registry.Recommender(name, params, features(), CPU)
    scratch.fit(_part(split, TRAIN, VAL), None, **frozen)
    assert all(torch.equal(p, learnt[k]) for k, p in warm.module.named_parameters())
    assert not all(torch.equal(p, learnt[k]) for k, p in scratch.module.named_parameters())
