"""The MovieLens release layouts, as data, and detection from the files present.

A layout is recognised by the files in a folder, never by the folder's name,
so a renamed copy (or a user's own export in the same format) still works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ML_100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
ML_1M_GENRES = ML_100K_GENRES[1:]
ML_LATEST_GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
    "(no genres listed)",
)
WHOLE_STARS = ("1", "2", "3", "4", "5")
# u.item has one 0/1 column per genre, in u.genre's order.
ML_100K_FLAG_COLUMNS = tuple(f"g_{i}" for i in range(len(ML_100K_GENRES)))
HALF_STARS = tuple(f"{x / 2:.1f}" for x in range(1, 11))


@dataclass(frozen=True)
class RawFile:
    """One raw file of a layout: where it is and how its bytes are laid out."""

    kind: str
    name: str
    columns: tuple[str, ...]
    delimiter: str
    encoding: str
    header: tuple[str, ...] | None = None  # expected header row, None if headerless
    quoted: bool = False  # RFC 4180 quoting (CSV family only)
    required: bool = True


@dataclass(frozen=True)
class Layout:
    """A MovieLens release format: its files and its value domains."""

    name: str
    files: tuple[RawFile, ...]
    rating_values: tuple[str, ...]  # allowed ratings exactly as written in the file
    rating_max: float
    genres: tuple[str, ...]
    genre_separator: str = "|"
    extras: dict[str, str] = field(default_factory=dict)

    def file(self, kind: str) -> RawFile | None:
        return next((f for f in self.files if f.kind == kind), None)


ML_100K = Layout(
    name="ml-100k",
    files=(
        RawFile("ratings", "u.data", ("user_id", "movie_id", "rating", "timestamp"), "\t", "latin-1"),
        RawFile(
            "movies",
            "u.item",
            ("movie_id", "title", "release_date", "video_release_date", "imdb_url", *ML_100K_FLAG_COLUMNS),
            "|",
            "latin-1",
        ),
        RawFile("users", "u.user", ("user_id", "age", "gender", "occupation", "zip_code"), "|", "latin-1"),
    ),
    rating_values=WHOLE_STARS,
    rating_max=5.0,
    genres=ML_100K_GENRES,
)

ML_1M = Layout(
    name="ml-1m",
    files=(
        RawFile("ratings", "ratings.dat", ("user_id", "movie_id", "rating", "timestamp"), "::", "latin-1"),
        RawFile("movies", "movies.dat", ("movie_id", "title", "genres"), "::", "latin-1"),
        RawFile("users", "users.dat", ("user_id", "gender", "age", "occupation", "zip_code"), "::", "latin-1"),
    ),
    rating_values=WHOLE_STARS,
    rating_max=5.0,
    genres=ML_1M_GENRES,
)

ML_LATEST = Layout(
    name="ml-latest",
    files=(
        RawFile(
            "ratings",
            "ratings.csv",
            ("user_id", "movie_id", "rating", "timestamp"),
            ",",
            "utf-8",
            header=("userId", "movieId", "rating", "timestamp"),
            quoted=True,
        ),
        RawFile(
            "movies",
            "movies.csv",
            ("movie_id", "title", "genres"),
            ",",
            "utf-8",
            header=("movieId", "title", "genres"),
            quoted=True,
        ),
        RawFile(
            "tags",
            "tags.csv",
            ("user_id", "movie_id", "tag", "timestamp"),
            ",",
            "utf-8",
            header=("userId", "movieId", "tag", "timestamp"),
            quoted=True,
            required=False,
        ),
        RawFile(
            "links",
            "links.csv",
            ("movie_id", "imdb_id", "tmdb_id"),
            ",",
            "utf-8",
            header=("movieId", "imdbId", "tmdbId"),
            quoted=True,
            required=False,
        ),
    ),
    rating_values=HALF_STARS,
    rating_max=5.0,
    genres=ML_LATEST_GENRES,
)

LAYOUTS = (ML_100K, ML_1M, ML_LATEST)


class LayoutError(ValueError):
    """The folder holds no recognisable MovieLens layout."""


def detect_layout(folder: Path) -> Layout:
    """Pick the layout whose ratings and movies files are present in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LayoutError(f"dataset folder {folder} does not exist or is not a folder")
    present = {p.name for p in folder.iterdir() if p.is_file()}
    for layout in LAYOUTS:
        key_files = {f.name for f in layout.files if f.kind in ("ratings", "movies")}
        if key_files <= present:
            missing = [f.name for f in layout.files if f.required and f.name not in present]
            if missing:
                raise LayoutError(f"{folder} looks like {layout.name} but lacks required file(s): {', '.join(missing)}")
            return layout
    expected = "; ".join(f"{lay.name}: " + ", ".join(f.name for f in lay.files if f.required) for lay in LAYOUTS)
    raise LayoutError(
        f"no MovieLens layout recognised in {folder} (files present: {', '.join(sorted(present)) or 'none'}). "
        f"Expected one of: {expected}"
    )
