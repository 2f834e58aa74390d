"""The contract every registered model keeps, whatever its family (as implicit's backends share
one test mixin): adding a model means registering it and passing these tests.

Each model is fitted on the same small synthetic set with planted tastes; then its scores have
a row per user and a column per movie, its published lists never hold a movie the user rated,
a saved copy scores exactly as it did, the same seed gives the same scores, and it ranks
held-out movies better than chance.
"""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipeline.core.metrics import full_ranking_metrics
from pipeline.evaluation.split import TEST, TRAIN, VAL
from pipeline.ingest.layouts import WHOLE_STARS, RatingScale
from pipeline.models import registry
from pipeline.models.base import Recommender, interactions
from pipeline.serving.recommend import top_n
from pipeline.training.recipe import ratings
from tests.support.model_data import CPU, FAST, N_MOVIES, N_USERS, features, fitted, planted_split

MODELS = sorted(registry.MODELS)


@pytest.fixture(scope="module")
def split() -> pl.DataFrame:
    return planted_split()


def _part(split: pl.DataFrame, *parts: int):
    return ratings(split.filter(pl.col("split").is_in(parts)), WHOLE_STARS)


def _fit(name: str, split: pl.DataFrame, overrides: dict | None = None) -> Recommender:
    return fitted(name, _part(split, TRAIN), _part(split, VAL), {**FAST, **(overrides or {})})


@pytest.fixture(scope="module", params=MODELS)
def model(request, split) -> Recommender:
    return _fit(request.param, split)


def test_every_registered_name_is_a_recommender_whose_spec_carries_that_name() -> None:
    for name in MODELS:
        cls = registry.model_class(name)
        assert issubclass(cls, Recommender) and cls.spec.name == name


def test_scores_have_a_finite_row_per_user_and_a_column_per_movie(model) -> None:
    users = np.array([0, 7, N_USERS - 1])
    scores = model.scores(users)
    assert scores.shape == (3, N_MOVIES) and np.isfinite(scores).all()
    # the same users one at a time: a user's scores do not depend on who else is in the batch
    np.testing.assert_allclose(
        np.vstack([model.scores(users[i : i + 1]) for i in range(3)]), scores, rtol=1e-5, atol=1e-5
    )


def test_published_lists_never_hold_a_movie_the_user_rated(model, split) -> None:
    train = split.filter(pl.col("split") == TRAIN)
    recs = top_n(model, train, n=10)
    assert recs.join(train, on=["user_idx", "movie_idx"]).height == 0
    assert recs.group_by("user_idx").len()["len"].max() <= 10
    assert recs["user_idx"].n_unique() == train["user_idx"].n_unique()


def test_a_saved_model_loads_and_scores_exactly_as_before(model, tmp_path: Path) -> None:
    model.save(tmp_path / "model.bin")
    again = registry.load(model.name, tmp_path / "model.bin", features(), CPU)
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(again.scores(users), model.scores(users))


@pytest.mark.parametrize("name", MODELS)
def test_the_same_seed_gives_the_same_scores(name: str, split) -> None:
    quick = {"max_epochs": 3}
    first, second = _fit(name, split, quick), _fit(name, split, quick)
    np.testing.assert_array_equal(first.scores(np.arange(N_USERS)), second.scores(np.arange(N_USERS)))


def test_it_ranks_held_out_movies_better_than_chance(model, split) -> None:
    train, test = _part(split, TRAIN), _part(split, TEST)
    seen = interactions(train.users, train.movies, N_USERS, N_MOVIES)

    def chance(users: np.ndarray) -> np.ndarray:
        return np.random.default_rng(0).random((len(users), N_MOVIES))

    ours = full_ranking_metrics(model.scores, seen, test.users, test.movies, test.values * 5, 1.0)
    random = full_ranking_metrics(chance, seen, test.users, test.movies, test.values * 5, 1.0)
    assert ours["recall@10"] > 1.2 * random["recall@10"], f"{ours['recall@10']:.3f} vs {random['recall@10']:.3f}"


def test_a_rating_model_predicts_a_finite_rating_per_pair_and_one_that_cannot_rate_says_so_in_its_spec(model) -> None:
    users, movies = np.array([0, 1, 2]), np.array([5, 6, 7])
    if model.spec.rates:
        predicted = model.predict(users, movies)
        assert predicted.shape == (3,) and np.isfinite(predicted).all()
    else:  # nobody asks it: scoring and the protocols read the spec, and it does not pretend to rate
        assert type(model)._predict is Recommender._predict


@pytest.mark.parametrize("name", MODELS)
def test_ranking_from_a_longer_history_changes_only_history_models_lists_and_no_weight(name: str, split) -> None:
    model = _fit(name, split, {"max_epochs": 3})
    users = np.arange(N_USERS)
    before = model.scores(users).copy()
    model.rank_from(_part(split, TRAIN, VAL))  # the nightly job's "tuned model on test"
    after = model.scores(users).copy()
    model.rank_from(_part(split, TRAIN))  # the history it was fitted on, again
    np.testing.assert_array_equal(model.scores(users), before)  # so no weight moved
    if model.spec.ranks_from_history:
        assert not np.allclose(before, after)  # the validation movies are history now
    else:
        np.testing.assert_array_equal(before, after)


def _sparse_corners(split: pl.DataFrame):
    """The planted training rows, but user 0 keeps one rating and the last movie has none."""
    train = _part(split, TRAIN)
    first = np.flatnonzero(train.users == 0)[:1]
    keep = (train.users != 0) & (train.movies != N_MOVIES - 1)
    keep[first] = train.movies[first] != N_MOVIES - 1
    if not keep[first].all():  # user 0's first rating was of the last movie: give them another
        keep[np.flatnonzero((train.users == 0) & (train.movies != N_MOVIES - 1))[:1]] = True
    return train.__class__(train.users[keep], train.movies[keep], train.values[keep], train.timestamps[keep])


@pytest.mark.parametrize("name", MODELS)
def test_a_user_with_one_rating_and_a_movie_nobody_rated_are_served_without_error(name: str, split) -> None:
    train = _sparse_corners(split)
    assert (train.users == 0).sum() == 1 and not (train.movies == N_MOVIES - 1).any()
    model = fitted(name, train, None, {**FAST, "max_epochs": 2}, epochs=2)
    scores = model.scores(np.array([0, 1]))
    assert scores.shape == (2, N_MOVIES) and not np.isnan(scores).any()
    frame = pl.DataFrame(
        {"user_idx": train.users, "movie_idx": train.movies, "rating": train.values * 5, "timestamp": train.timestamps}
    )
    recs = top_n(model, frame, n=10, min_history=1)  # user 0's one rating is enough for a personal list
    own = recs.filter(pl.col("user_idx") == 0)
    assert own.height == 10 and not own["is_fallback"].any()
    assert N_MOVIES - 1 not in recs["movie_idx"].to_list()  # never rated: not a candidate
    if model.spec.rates:
        predicted = model.predict(np.array([0, 0, 1]), np.array([N_MOVIES - 1, 3, N_MOVIES - 1]))
        assert np.isfinite(predicted).all()


RATING_MODELS = [n for n in MODELS if registry.model_class(n).spec.rates]


@pytest.mark.parametrize("name", RATING_MODELS)
def test_a_rating_for_a_user_or_movie_the_fit_never_saw_is_a_training_mean_on_the_datasets_scale(
    name: str, split
) -> None:
    """A dataset rated 0-10 (a spec dataset can be): an unseen user gets the movie's mean, an unseen
    movie the user's, both unseen the overall mean; svd predicted 0 for such pairs before."""
    scale = RatingScale(0.0, 10.0, 0.5)
    frame = split.filter(pl.col("split") == TRAIN).with_columns(pl.col("rating") * 2)
    train = ratings(frame, scale)
    keep = (train.users != 0) & (train.movies != N_MOVIES - 1)  # user 0 and the last movie: never seen
    train = train.__class__(train.users[keep], train.movies[keep], train.values[keep], train.timestamps[keep])
    model = fitted(name, train, None, {**FAST, "max_epochs": 2}, epochs=2)
    stars = model.predict(np.array([0, 5, 0]), np.array([3, N_MOVIES - 1, N_MOVIES - 1])) * scale.max
    movie_3 = train.values[train.movies == 3].mean() * scale.max
    user_5 = train.values[train.users == 5].mean() * scale.max
    overall = train.values.mean() * scale.max
    np.testing.assert_allclose(stars, [movie_3, user_5, overall], rtol=1e-5)
    assert 0.0 < overall <= 10.0  # on the dataset's own scale, not the 0 a missing row gave
