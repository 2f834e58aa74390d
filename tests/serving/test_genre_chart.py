"""show-user --plot: the genre chart from a real published run's folder and models."""

import shutil
from pathlib import Path

import duckdb
import pytest

from pipeline.core.run_folder import RunFolder
from pipeline.serving import genre_chart, serving_file
from pipeline.stages import cli
from tests.support.pngs import assert_png
from tests.support.synthetic import make, write_ml1m

USER = 3


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real CLI run of biased_mf (a model that predicts ratings) on synthetic files."""
    return tmp_path_factory.mktemp("genres")


@pytest.fixture
def run(published: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("MOVIELENS_VAR_DIR", str(published / "var"))
    wh = published / "wh.duckdb"
    if not wh.exists():
        dataset = write_ml1m(published / "ml1m", make(n_users=30, n_movies=40, per_user=15))
        args = ["run", "--dataset", str(dataset), "--warehouse", str(wh), "--run-id", "r1", "--models", "biased_mf"]
        assert cli.main([*args, "--max-epochs", "2", "--top-n", "5", "--device", "cpu"]) == 0
    return wh, serving_file.serving_path(wh)


def _genre_means(wh: Path, user: int) -> dict[str, float]:
    with duckdb.connect(str(wh), read_only=True) as con:
        rows = con.execute(
            "SELECT g, avg(rating) FROM (SELECT unnest(m.genres) AS g, r.rating FROM ratings r "
            "JOIN movies m USING (movie_id) WHERE r.user_id = ?) GROUP BY g",
            [user],
        ).fetchall()
    return dict(rows)


def test_actual_side_is_the_users_mean_rating_per_genre_and_predictions_are_the_champions(run) -> None:
    wh, served = run
    run_id, champion = genre_chart.current_run(served)
    assert (run_id, champion) == ("r1", "biased_mf")
    chart = genre_chart.compare(RunFolder.of_run(run_id), run_id, champion, USER)
    assert chart.model == "biased_mf"  # it predicts ratings: its own production fit is used
    expected = _genre_means(wh, USER)
    got = {g: a for g, a in zip(chart.genres, chart.actual, strict=True) if a is not None}
    assert got == pytest.approx(expected)
    predicted = [p for p in chart.predicted if p is not None]
    assert predicted and all(0 < p < 6 for p in predicted)


def test_a_ranking_only_champion_shows_the_runs_rater_which_filled_predicted_rating(run) -> None:
    chart = genre_chart.compare(RunFolder.of_run("r1"), "r1", "most_popular", USER)
    assert chart.model == "biased_mf" and chart.champion == "most_popular"  # r1's rater
    assert any(p is not None for p in chart.predicted)


def test_a_run_without_a_rater_is_stood_in_for_by_svd_fitted_on_the_runs_ratings(run, tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "r1")
    shutil.copytree(RunFolder.of_run("r1").path, folder.path)
    folder.write(folder.champion, folder.read(folder.champion) | {"rater": None})
    chart = genre_chart.compare(folder, "r1", "most_popular", USER)
    assert chart.model == "svd" and chart.champion == "most_popular"
    assert any(p is not None for p in chart.predicted)


def test_cli_plot_writes_a_png_and_refuses_an_unknown_user(run, tmp_path: Path, capsys) -> None:
    wh, _ = run
    target = tmp_path / "genres.png"
    assert cli.main(["show-user", str(USER), "--warehouse", str(wh), "--plot", str(target)]) == 0
    assert f"genre chart: {target}" in capsys.readouterr().out
    assert_png(target)
    assert cli.main(["show-user", "999", "--warehouse", str(wh), "--plot", str(tmp_path / "x.png")]) == 2
    assert "user 999 has no ratings in run r1" in capsys.readouterr().err
