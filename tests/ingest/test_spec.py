"""dataset.toml: a user's own MovieLens-like files, and every mistake in a spec named by its key."""

from pathlib import Path

import duckdb
import pytest

from pipeline.ingest.layouts import LayoutError
from pipeline.ingest.spec import SpecError, resolve_dataset
from pipeline.ingest.validate import validate_folder
from pipeline.stages import cli
from tests.support.synthetic import SPEC, make, write_ml10m, write_spec_dataset


@pytest.fixture
def spec_folder(tmp_path: Path) -> Path:
    return write_spec_dataset(tmp_path / "acme", make(n_users=30, n_movies=20, per_user=10))


def test_spec_folder_is_read_with_its_own_separator_ids_scale_and_times(spec_folder: Path) -> None:
    folder, layout = resolve_dataset(spec_folder)
    assert layout.name == "spec" and layout.label == "acme-ratings" and layout.scale.values() == list(range(11))
    report = validate_folder(folder, layout)
    assert report.passed and not report.failures, [f.message() for f in report.failures]
    ratings, movies = report.staged["ratings"], report.staged["movies"]
    assert len(ratings) == 300 and ratings["rating"].between(0, 10).all() and (ratings["rating"] > 5).any()
    assert ratings["user_id"].notna().all() and ratings["timestamp"].min() >= 1_000_000_000
    assert movies["external_id"].str.match(r"^tt\d{7}$").all()
    assert set(ratings["movie_id"]) <= set(movies["movie_id"])  # text ids map to the same key in both files
    assert all(g in {"Action", "Comedy", "Drama", "Horror", "Sci-Fi"} for gs in movies["genres"] for g in gs)


def test_spec_path_may_be_the_toml_file_itself(spec_folder: Path) -> None:
    assert resolve_dataset(spec_folder / "dataset.toml")[0] == spec_folder.resolve()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('encoding = "utf-8"', 'encoding = "cp1252"', "encoding: 'cp1252' is not supported"),
        ("max = 10", "max = 0", "rating_scale: max (0) must be greater than min (0)"),
        ("step = 1", "step = 3", "rating_scale.step: 3 does not divide the range 0..10 evenly"),
        ('user = "text"', 'user = "uuid"', "ids.user: 'uuid' is not one of integer, text"),
        ('"rating", "timestamp"]', '"stars", "timestamp"]', "files.ratings.columns: 'stars' is not a ratings column"),
        ('"rating", "timestamp"]', '"timestamp"]', "files.ratings.columns: required column 'rating' is missing"),
        ('path = "catalogue.txt"', 'path = "nope.txt"', "files.movies.path:"),
        ('timestamp = "iso"', 'timestamp = "dd/mm/yyyy"', "timestamp: 'dd/mm/yyyy' is not one of"),
        ("header = true", 'header = "yes"', "header: must be true or false"),
        ('name = "acme-ratings"', 'name = "acme-ratings"\nseperator = ";"', "unknown key 'seperator'"),
        ("[files.movies]", "[files.film]", "files.movies: missing"),
        ("min = 0", "min = -5", "rating_scale.min: -5 is negative"),
    ],
)
def test_each_spec_mistake_is_named_with_its_key(spec_folder: Path, old: str, new: str, expected: str) -> None:
    spec = spec_folder / "dataset.toml"
    assert old in SPEC
    spec.write_text(SPEC.replace(old, new, 1))
    with pytest.raises(SpecError) as err:
        resolve_dataset(spec_folder)
    assert expected in str(err.value) and str(spec) in str(err.value)


def test_all_spec_mistakes_are_reported_at_once(spec_folder: Path) -> None:
    (spec_folder / "dataset.toml").write_text(
        SPEC.replace("max = 10", "max = 'ten'").replace('movie = "text"', "movie = 1")
    )
    with pytest.raises(SpecError) as err:
        resolve_dataset(spec_folder)
    assert len(err.value.problems) == 2


def test_spec_that_is_not_toml_says_so(spec_folder: Path) -> None:
    (spec_folder / "dataset.toml").write_text("separator = ;\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        resolve_dataset(spec_folder)


def test_spec_dataset_runs_end_to_end_with_ratings_on_its_own_scale(spec_folder: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    args = ["--dataset", str(spec_folder), "--warehouse", str(wh), "--run-id", "acme", "--top-n", "5"]
    # biased_mf starts from the mean rating, so after two short epochs its predictions already sit
    # near the data's mean (6.4 on 0-10); a network still at its initial 0.5 could not tell the scales apart
    code = cli.main(["run", *args, "--max-epochs", "2", "--logical-date", "2030-01-01", "--models", "biased_mf"])
    assert code == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        users, low, high = con.execute(
            "SELECT count(DISTINCT user_id), min(predicted_rating), max(predicted_rating) FROM current_recommendations"
        ).fetchall()[0]
        joined = con.execute(
            "SELECT count(*) FROM current_recommendations JOIN movies USING (movie_id) WHERE external_id LIKE 'tt%'"
        ).fetchall()[0][0]
    assert users == 30 and joined == 30 * 5
    assert 0 <= low <= high <= 10 and high > 5  # scores mapped back onto the 0-10 scale, not 1-5


def test_ml10m_folder_is_detected_and_validates_with_half_stars(tmp_path: Path) -> None:
    folder = write_ml10m(tmp_path / "ten", make(n_users=30, n_movies=20, per_user=10, half_stars=True))
    folder_, layout = resolve_dataset(folder)
    assert layout.name == "ml-10m"
    report = validate_folder(folder_, layout)
    assert report.passed and not report.failures, [f.message() for f in report.failures]
    assert set(report.staged) == {"movies", "tags", "ratings"}
    assert (report.staged["ratings"]["rating"] % 1 == 0.5).any()


def test_dat_folder_without_users_or_tags_file_is_ambiguous_and_says_which(tmp_path: Path) -> None:
    folder = write_ml10m(tmp_path / "ten", make(n_users=5, n_movies=5, per_user=3))
    (folder / "tags.dat").unlink()
    with pytest.raises(LayoutError, match=r"users\.dat.*tags\.dat"):
        resolve_dataset(folder)


MINIMAL_SPEC = """\
separator = "\\t"
header = false
[ids]
user = "text"
movie = "text"
[rating_scale]
min = 0
max = 100
[files.ratings]
path = "r.tsv"
columns = ["user_id", "movie_id", "rating"]
[files.movies]
path = "items.tsv"
columns = ["movie_id", "title"]
[files.users]
path = "people.tsv"
columns = ["user_id", "gender", "age"]
"""


def test_minimal_spec_without_timestamps_genres_or_steps_runs_end_to_end(tmp_path: Path) -> None:
    data = make(n_users=30, n_movies=20, per_user=10)
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "dataset.toml").write_text(MINIMAL_SPEC)
    (folder / "r.tsv").write_text("".join(f"u{u}\tsku-{m}\t{r * 20 - 7.5}\n" for u, m, r, _ in data.ratings))
    (folder / "items.tsv").write_text("".join(f"sku-{m}\tProduct {m}\n" for m, _, _ in data.movies))
    (folder / "people.tsv").write_text("".join(f"u{u}\t{g}\t{20 + u}\n" for u, g, _, _ in data.users))
    wh = tmp_path / "wh.duckdb"
    args = ["--dataset", str(folder), "--warehouse", str(wh), "--run-id", "shop", "--top-n", "3", "--max-epochs", "2"]
    assert cli.main(["run", *args]) == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        rows, users = con.execute("SELECT count(*), count(DISTINCT user_id) FROM current_recommendations").fetchall()[0]
        untimed = con.execute('SELECT count(*) FROM ratings WHERE "timestamp" IS NULL').fetchall()[0][0]
    assert (rows, users) == (90, 30) and untimed == len(data.ratings)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_a_spec_naming_a_file_outside_its_folder_is_refused_before_anything_is_read(
    spec_folder: Path, tmp_path: Path, how: str
) -> None:
    outside = tmp_path / "elsewhere" / "secrets.txt"
    outside.parent.mkdir()
    outside.write_text('id;name;tags\ntt0000001;"x";Drama\n')
    if how == "symlink":
        (spec_folder / "link.txt").symlink_to(outside)
    path = {"dotdot": "../elsewhere/secrets.txt", "absolute": str(outside), "symlink": "link.txt"}[how]
    (spec_folder / "dataset.toml").write_text(SPEC.replace('path = "catalogue.txt"', f'path = "{path}"', 1))
    with pytest.raises(SpecError) as err:
        resolve_dataset(spec_folder)
    assert "files.movies.path" in str(err.value) and "outside the spec's folder" in str(err.value)


def test_a_spec_separator_carrying_sql_is_only_a_separator(spec_folder: Path) -> None:
    spec = spec_folder / "dataset.toml"
    spec.write_text(SPEC.replace('separator = ";"', 'separator = "\'); DROP TABLE x; --"', 1))
    folder, layout = resolve_dataset(spec_folder)  # any text may separate fields; it is a bound parameter
    report = validate_folder(folder, layout)
    # nothing splits on it, so every line has one field: each file is refused by the field-count
    # rule (had it reached SQL as text, DuckDB's parse error would be a file_is_readable failure)
    critical = {(f.file.rsplit("/", 1)[-1], f.column) for f in report.failures if f.severity == "critical"}
    assert critical == {("scores.txt", "_n_fields"), ("catalogue.txt", "_n_fields")}
