from pathlib import Path

import pytest

from pipeline.ingest.layouts import LayoutError, detect_layout
from tests.support.synthetic import make, write_ml1m, write_ml10m, write_ml100k, write_ml_latest


@pytest.mark.parametrize(
    ("writer", "expected"), [(write_ml100k, "ml-100k"), (write_ml1m, "ml-1m"), (write_ml_latest, "ml-latest")]
)
def test_layout_is_detected_from_files_not_folder_name(tmp_path: Path, writer, expected: str) -> None:
    folder = writer(tmp_path / "some-renamed-folder", make(n_users=5, n_movies=5, per_user=3))
    assert detect_layout(folder).name == expected


def test_unrecognised_folder_names_files_present_and_expected(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LayoutError) as err:
        detect_layout(tmp_path)
    message = str(err.value)
    assert "notes.txt" in message and "ratings.dat" in message and "u.data" in message


def test_missing_required_file_is_named(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "d", make(n_users=5, n_movies=5, per_user=3))
    (folder / "users.dat").unlink()
    with pytest.raises(LayoutError, match=r"users\.dat"):
        detect_layout(folder)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="does not exist"):
        detect_layout(tmp_path / "nope")


def test_genome_files_beside_a_csv_release_are_ignored(tmp_path: Path) -> None:
    folder = write_ml_latest(tmp_path / "ml-25m", make(n_users=5, n_movies=5, per_user=3))
    (folder / "genome-scores.csv").write_text("movieId,tagId,relevance\n1,1,0.5\n")
    (folder / "genome-tags.csv").write_text("tagId,tag\n1,funny\n")
    layout = detect_layout(folder)
    assert layout.name == "ml-latest" and not any("genome" in f.name for f in layout.files)


def test_ml10m_is_told_from_ml1m_by_tags_dat(tmp_path: Path) -> None:
    folder = write_ml10m(tmp_path / "ten", make(n_users=5, n_movies=5, per_user=3, half_stars=True))
    assert detect_layout(folder).name == "ml-10m"
    (folder / "users.dat").write_text("1::F::1::10::48067\n")
    assert detect_layout(folder).name == "ml-1m"  # users.dat wins: the ml-1m release has no tags.dat
