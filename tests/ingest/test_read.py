from pathlib import Path

import duckdb
import pytest

from pipeline.ingest.layouts import detect_layout
from pipeline.ingest.read import RawReadError, read_raw, stage_typed
from tests.conftest import shared_dataset
from tests.support.synthetic import make, write_ml1m, write_ml100k, write_ml_latest


def _read_all(folder: Path) -> dict:
    layout = detect_layout(folder)
    con = duckdb.connect()
    out = {}
    for raw_file in layout.files:
        if (folder / raw_file.name).exists():
            raw = read_raw(con, folder, raw_file)
            out[raw_file.kind] = (raw, stage_typed(con, layout, raw_file.kind, raw.chunk(con, None, 0, 1)))
    return out


@pytest.mark.parametrize("writer", [write_ml100k, write_ml1m, write_ml_latest])
def test_reader_returns_every_row_with_types_and_titles_decoded(tmp_path: Path, writer) -> None:
    data = make(n_users=12, n_movies=15, per_user=6)
    read = _read_all(writer(tmp_path / "d", data))
    raw, ratings = read["ratings"]
    assert len(ratings) == len(data.ratings)
    assert raw.rejects == []
    assert ratings["user_id"].notna().all() and ratings["rating"].between(0.5, 5).all()
    movies = read["movies"][1].set_index("movie_id")
    assert len(movies) == len(data.movies)
    # latin-1 (.dat / u.item) and UTF-8 (CSV) both decode the accent; CSV quoting keeps commas
    assert movies.loc[8, "title"] == "Synthetic Film 8 Café (1987)"
    assert movies.loc[1, "title"] == "Synthetic Film 1 Café, The (1980)"
    assert movies.loc[1, "year"] == 1980
    assert {g for genres in movies["genres"] for g in genres} <= {"Action", "Comedy", "Drama", "Horror", "Sci-Fi"}


def test_csv_with_lf_line_endings_reads_the_same_as_crlf(tmp_path: Path) -> None:
    data = make(n_users=6, n_movies=6, per_user=4)
    crlf = _read_all(write_ml_latest(tmp_path / "crlf", data))["ratings"][1]
    lf = _read_all(write_ml_latest(tmp_path / "lf", data, line_end="\n"))["ratings"][1]
    assert crlf.equals(lf)


def test_empty_file_is_a_read_error_naming_the_file(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "d", make(n_users=4, n_movies=4, per_user=2))
    (folder / "ratings.dat").write_text("")
    layout = detect_layout(folder)
    with pytest.raises(RawReadError, match=r"ratings\.dat: file is empty"):
        read_raw(duckdb.connect(), folder, layout.file("ratings"))


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("ml-100k", {"ratings": 100_000, "movies": 1_682, "users": 943}),
        ("ml-1m-users-1-2999", {"ratings": 487_650, "movies": 3_883, "users": 6_040}),
        ("ml-latest-small", {"ratings": 100_836, "movies": 9_742, "tags": 3_683, "links": 9_742}),
    ],
)
def test_real_movielens_copies_load_with_exact_row_counts(name: str, counts: dict) -> None:
    read = _read_all(shared_dataset(name))
    assert {kind: len(typed) for kind, (_, typed) in read.items()} == counts
    for _, typed in read.values():
        assert typed.iloc[:, 0].notna().all()  # every id cast cleanly


def test_partitions_cover_every_row_once_keep_users_whole_and_carry_line_numbers(tmp_path: Path) -> None:
    folder = write_ml1m(tmp_path / "d", make(n_users=40, n_movies=20, per_user=10))
    layout = detect_layout(folder)
    con = duckdb.connect()
    raw = read_raw(con, folder, layout.file("ratings"))
    parts = [raw.chunk(con, "user_id", k, 3) for k in range(3)]
    assert sum(len(p) for p in parts) == raw.n_rows == 400
    assert sorted(i for p in parts for i in p.index) == list(range(1, 401))
    assert not set(parts[0]["user_id"]) & set(parts[1]["user_id"])  # a user's pairs stay in one part
    lines = (folder / "ratings.dat").read_text().splitlines()
    line = int(parts[2].index[0])
    assert "::".join(parts[2].iloc[0][["user_id", "movie_id", "rating", "timestamp"]]) == lines[line - 1]


def test_line_numbers_skip_lines_the_csv_parser_rejected(tmp_path: Path) -> None:
    folder = write_ml_latest(tmp_path / "d", make(n_users=5, n_movies=6, per_user=4))
    path = folder / "ratings.csv"
    lines = path.read_text().splitlines()
    lines[3] = "1,2"  # line 4 has too few fields
    path.write_text("\r\n".join(lines) + "\r\n", newline="")
    con = duckdb.connect()
    raw = read_raw(con, folder, detect_layout(folder).file("ratings"))
    frame = raw.chunk(con, None, 0, 1)
    assert [r[0] for r in raw.rejects] == [4]
    assert list(frame.index[:4]) == [2, 3, 5, 6]
    assert ",".join(frame.loc[5, ["user_id", "movie_id", "rating", "timestamp"]]) == lines[4]
