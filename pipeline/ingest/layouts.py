"""The MovieLens release layouts, as data, and detection from the files present.

A layout is recognised by the files in a folder, never by the folder's name,
so a renamed copy (or a user's own export in the same format) still works.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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
ML_10M_GENRES = (*ML_1M_GENRES, "IMAX", "(no genres listed)")
NO_GENRES = "(no genres listed)"
# u.item has one 0/1 column per genre, in u.genre's order.
ML_100K_FLAG_COLUMNS = tuple(f"g_{i}" for i in range(len(ML_100K_GENRES)))
IGNORED = "-"  # a column name meaning "present in the file, not used"
# The canonical columns of each raw file kind: (required, optional). A dataset
# spec may name these; the stage SQL reads them all (missing optional ones as NULL).
COLUMNS = {
    "ratings": (("user_id", "movie_id", "rating"), ("timestamp",)),
    "movies": (("movie_id", "title"), ("genres",)),
    "users": (("user_id",), ("gender", "age", "occupation", "zip_code")),
    "tags": (("user_id", "movie_id", "tag"), ("timestamp",)),
    "links": (("movie_id",), ("imdb_id", "tmdb_id")),
}


@dataclass(frozen=True)
class RatingScale:
    """The ratings' range and step; models see rating / max (the notebooks' r / 5 on 1-5 data)."""

    min: float
    max: float
    step: float | None = None  # None: any value in [min, max]

    def values(self) -> list[float] | None:
        """Every allowed rating, or None for a continuous scale."""
        if not self.step:
            return None
        n = round((self.max - self.min) / self.step)
        return [round(self.min + i * self.step, 6) for i in range(n + 1)]

    def to_unit(self, rating: float) -> float:
        return rating / self.max

    @property
    def like_threshold(self) -> float:
        """A rating at or above this counts as liked (4 on 1-5, as in the notebooks)."""
        return 0.8 * self.max


WHOLE_STARS = RatingScale(1.0, 5.0, 1.0)
HALF_STARS = RatingScale(0.5, 5.0, 0.5)


@dataclass(frozen=True)
class RawFile:
    """One raw file of a layout: where it is and how its bytes are laid out."""

    kind: str
    name: str
    columns: tuple[str, ...]  # canonical names in file order; IGNORED for unused columns
    delimiter: str
    encoding: str  # utf-8 | latin-1 | utf-16 | auto (utf-8, else latin-1)
    header: tuple[str, ...] | None = None  # expected header names, when the layout fixes them
    quoted: bool = False  # RFC 4180 quoting (single-character separators)
    required: bool = True
    has_header: bool | None = None  # None: a header row iff `header` is given

    @property
    def skips_header(self) -> bool:
        return self.header is not None if self.has_header is None else self.has_header


@dataclass(frozen=True)
class Layout:
    """A MovieLens release format (or a user's spec): its files and value domains."""

    name: str  # ml-100k | ml-1m | ml-10m | ml-latest | spec; suites filter rules on it
    files: tuple[RawFile, ...]
    scale: RatingScale
    genres: tuple[str, ...] | None  # None: any genre name is accepted
    genre_separator: str = "|"
    no_genres: str | None = NO_GENRES
    user_id_type: str = "integer"  # integer | text
    movie_id_type: str = "integer"
    timestamp_format: str = "unix"  # unix | unix_ms | iso
    label: str = ""  # a spec's own name, for logs

    def file(self, kind: str) -> RawFile | None:
        return next((f for f in self.files if f.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        """The inverse of to_dict (the run's manifest keeps the layout this way)."""
        data = dict(data)
        files = tuple(
            RawFile(**{k: tuple(v) if isinstance(v, list) else v for k, v in f.items()}) for f in data.pop("files")
        )
        genres = data.pop("genres")
        return cls(
            files=files,
            scale=RatingScale(**data.pop("scale")),
            genres=tuple(genres) if genres is not None else None,
            **data,
        )


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
    scale=WHOLE_STARS,
    genres=ML_100K_GENRES,
)

ML_1M = Layout(
    name="ml-1m",
    files=(
        RawFile("ratings", "ratings.dat", ("user_id", "movie_id", "rating", "timestamp"), "::", "latin-1"),
        RawFile("movies", "movies.dat", ("movie_id", "title", "genres"), "::", "latin-1"),
        RawFile("users", "users.dat", ("user_id", "gender", "age", "occupation", "zip_code"), "::", "latin-1"),
    ),
    scale=WHOLE_STARS,
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
    scale=HALF_STARS,
    genres=ML_LATEST_GENRES,
)

ML_10M = Layout(
    name="ml-10m",
    files=(
        RawFile("ratings", "ratings.dat", ("user_id", "movie_id", "rating", "timestamp"), "::", "auto"),
        RawFile("movies", "movies.dat", ("movie_id", "title", "genres"), "::", "auto"),
        RawFile("tags", "tags.dat", ("user_id", "movie_id", "tag", "timestamp"), "::", "auto", required=False),
    ),
    scale=HALF_STARS,
    genres=ML_10M_GENRES,
)

LAYOUTS = (ML_100K, ML_1M, ML_10M, ML_LATEST)


class LayoutError(ValueError):
    """The folder holds no recognisable MovieLens layout."""

    rule = "dataset_layout_is_recognised"  # its dq_alerts rule when it stops a run (pipeline.stages.fetch)


def detect_layout(folder: Path) -> Layout:
    """Pick the release layout from the files present in `folder`.

    ml-1m and ml-10m share ratings.dat and movies.dat: users.dat marks ml-1m,
    tags.dat marks ml-10m, and with neither the folder is ambiguous (most
    likely an ml-1m copy that lost users.dat), which is an error, not a guess.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LayoutError(f"dataset folder {folder} does not exist or is not a folder")
    present = {p.name for p in folder.iterdir() if p.is_file()}
    if {"ratings.dat", "movies.dat"} <= present and not present & {"users.dat", "tags.dat"}:
        raise LayoutError(
            f"{folder} has ratings.dat and movies.dat but neither users.dat (ml-1m needs it) nor tags.dat "
            "(ml-10m): restore the missing file, or describe the files in a dataset.toml spec"
        )
    for layout in LAYOUTS:
        markers = {f.name for f in layout.files if f.kind in ("ratings", "movies")}
        if layout is ML_1M:
            markers.add("users.dat")
        if layout is ML_10M:
            markers.add("tags.dat")
        if markers <= present:
            missing = [f.name for f in layout.files if f.required and f.name not in present]
            if missing:
                raise LayoutError(f"{folder} looks like {layout.name} but lacks required file(s): {', '.join(missing)}")
            return layout
    if any(name in present for layout in LAYOUTS for f in layout.files if f.kind == "ratings" for name in [f.name]):
        hint = "a ratings file is there but its movies file is missing"
    else:
        hint = "no ratings file found"
    expected = "; ".join(f"{lay.name}: " + ", ".join(f.name for f in lay.files if f.required) for lay in LAYOUTS)
    raise LayoutError(
        f"no MovieLens layout recognised in {folder} ({hint}; files present: {', '.join(sorted(present)) or 'none'}). "
        f"Expected one of: {expected}; or a dataset.toml spec describing your own files (see README)"
    )
