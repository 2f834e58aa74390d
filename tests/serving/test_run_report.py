"""The per-run HTML report, from real synthetic runs through the CLI."""

import re
from pathlib import Path

import duckdb
import pytest

from pipeline.core.config import var_dir
from pipeline.core.run_folder import RunFolder
from pipeline.stages.cli import main
from tests.support.pngs import assert_png
from tests.support.synthetic import make, write_ml1m

MODELS = "most_popular,biased_mf,svd"


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_ml1m(tmp_path / "ml1m", make(n_users=30, n_movies=40, per_user=15))


def _run(dataset: Path, wh: Path, run_id: str, date: str) -> int:
    args = ["run", "--dataset", str(dataset), "--warehouse", str(wh), "--run-id", run_id, "--logical-date", date]
    return main([*args, "--models", MODELS, "--max-epochs", "3", "--top-n", "5", "--device", "cpu"])


def _images(page: Path) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page.read_text())


def test_each_run_writes_a_report_whose_every_plot_is_a_png_beside_it(dataset: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    # synthetic ratings run from 2001-09-09 for about four months: the second run has forward history
    assert _run(dataset, wh, "october", "2001-10-15") == 0
    assert _run(dataset, wh, "december", "2001-12-31") == 0
    page = RunFolder.of_run("december").report_page
    with duckdb.connect(str(wh), read_only=True) as con:
        paths = con.execute("SELECT DISTINCT report_path FROM model_runs WHERE run_id = 'december'").fetchall()
    assert paths == [(str(page),)]
    images = _images(page)
    expected = {"ratings.png", "forward.png"}
    expected |= {f"{m}_{kind}.png" for m in ("biased_mf", "svd") for kind in ("scatter", "errors", "residuals")}
    expected.add("biased_mf_loss.png")  # trained by epochs; svd and most_popular are closed form
    assert expected <= set(images)
    on_disk = {p.name for p in page.parent.glob("*.png")}
    assert set(images) == on_disk  # every PNG is on the page, and every image on the page exists
    for name in on_disk:
        assert_png(page.parent / name)
    text = page.read_text()
    champion = re.search(r"<b>(\w+) ★</b>", text)
    assert champion is not None and champion.group(1) in MODELS.split(",")
    rated = re.search(r"lists ranked by (\w+); predicted ratings from (\w+) \(the lowest validation RMSE", text)
    assert rated is not None and rated.group(1) == champion.group(1) and rated.group(2) in ("biased_mf", "svd")
    assert "No forward metrics yet" not in text
    first = (RunFolder.of_run("october").report_page).read_text()
    assert "No forward metrics yet" in first and "forward.png" not in first


def test_report_of_a_run_stopped_by_bad_data_shows_the_alert_and_says_what_is_missing(dataset, tmp_path) -> None:
    wh = tmp_path / "wh.duckdb"
    with open(dataset / "movies.dat", "a", encoding="latin-1") as fh:
        fh.write("1::Another Film (1999)::Drama\n")  # movie id 1 twice: critical
    assert _run(dataset, wh, "bad", "2001-12-31") == 2  # validate writes the page before it fails the run
    page = RunFolder.of_run("bad").report_page
    text = page.read_text()
    assert "FAILED" in text and "critical" in text and "movie_id" in text
    assert "No model was trained in this run." in text
    assert "has not published" in text
    assert _images(page) == []  # the run stopped before the ratings were loaded


def test_kept_predictions_are_a_fixed_sample_of_distinct_rows_when_there_are_too_many() -> None:
    import polars as pl

    from pipeline.serving.run_report import sample_rows

    frame = pl.DataFrame({"actual": range(100), "predicted": range(100)})
    kept = sample_rows(frame, limit=30)
    assert len(kept) == 30 and kept["actual"].n_unique() == 30 and kept["actual"].is_in(frame["actual"]).all()
    assert kept.equals(sample_rows(frame, limit=30))  # the same rows on a re-run
    assert sample_rows(frame, limit=100).equals(frame)


def test_a_report_that_cannot_be_written_does_not_hide_why_the_run_failed(dataset, tmp_path, caplog) -> None:
    with open(dataset / "movies.dat", "a", encoding="latin-1") as fh:
        fh.write("1::Another Film (1999)::Drama\n")
    blocker = var_dir() / "runs" / "bad" / "report"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the report folder should be")
    assert _run(dataset, tmp_path / "wh.duckdb", "bad", "2001-12-31") == 2  # still the data-quality exit
    assert any(r.getMessage().startswith("report not written: FileExistsError") for r in caplog.records)
