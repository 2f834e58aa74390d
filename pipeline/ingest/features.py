"""Model inputs from the warehouse: dense ids, genre multi-hot, user demographics, tag TF-IDF."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:  # loading saved features needs no database driver
    import duckdb

# ml-1m age brackets; ml-100k ages in years are mapped onto them so both
# layouts give the model the same user features.
AGE_BUCKETS = (1, 18, 25, 35, 45, 50, 56)


@dataclass
class Features:
    """Dense index <-> id maps and side features, aligned with the indices."""

    user_ids: np.ndarray
    movie_ids: np.ndarray
    user_features: np.ndarray  # float32 [n_users, n_user_features]
    movie_features: np.ndarray  # float32 [n_movies, n_genres]
    user_feature_names: list[str]
    genres: list[str]
    # TF-IDF of the tags users gave each movie (rows of untagged movies are 0);
    # [n_movies, 0] when the dataset has no tags.
    movie_tags: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    tag_terms: list[str] = field(default_factory=list)

    @property
    def has_tags(self) -> bool:
        return self.movie_tags.shape[1] > 0 and bool(self.movie_tags.any())

    def save(self, path: Path) -> None:
        np.savez(
            path,
            user_ids=self.user_ids,
            movie_ids=self.movie_ids,
            user_features=self.user_features,
            movie_features=self.movie_features,
            user_feature_names=np.array(self.user_feature_names, dtype=object),
            genres=np.array(self.genres, dtype=object),
            movie_tags=self.movie_tags,
            tag_terms=np.array(self.tag_terms, dtype=object),
        )

    @classmethod
    def load(cls, path: Path) -> Features:
        with np.load(path, allow_pickle=True) as z:
            return cls(
                user_ids=z["user_ids"],
                movie_ids=z["movie_ids"],
                user_features=z["user_features"],
                movie_features=z["movie_features"],
                user_feature_names=list(z["user_feature_names"]),
                genres=list(z["genres"]),
                movie_tags=z["movie_tags"],
                tag_terms=list(z["tag_terms"]),
            )


def build_features(con: duckdb.DuckDBPyConnection, max_tag_terms: int = 300) -> tuple[Features, pl.DataFrame]:
    """Features for every rated user and movie, and the ratings with dense indices."""
    ratings = con.sql('SELECT user_id, movie_id, rating, "timestamp" FROM ratings').pl()
    user_ids = ratings["user_id"].unique().sort()
    movie_ids = ratings["movie_id"].unique().sort()
    users_index = pl.DataFrame({"user_id": user_ids, "user_idx": np.arange(len(user_ids), dtype=np.int64)})
    movies_index = pl.DataFrame({"movie_id": movie_ids, "movie_idx": np.arange(len(movie_ids), dtype=np.int64)})
    indexed = ratings.join(users_index, on="user_id").join(movies_index, on="movie_id")

    genres, movie_features = _genre_multi_hot(con, movies_index)
    names, user_features = _user_features(con, users_index)
    terms, movie_tags = _tag_tfidf(con, movies_index, max_tag_terms)
    features = Features(
        user_ids=user_ids.to_numpy(),
        movie_ids=movie_ids.to_numpy(),
        user_features=user_features,
        movie_features=movie_features,
        user_feature_names=names,
        genres=genres,
        movie_tags=movie_tags,
        tag_terms=terms,
    )
    return features, indexed


def _genre_multi_hot(con: duckdb.DuckDBPyConnection, movies_index: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    movies = con.sql("SELECT movie_id, genres FROM movies").pl()
    exploded = movies_index.join(movies, on="movie_id", how="left").explode("genres").drop_nulls("genres")
    vocab = sorted(exploded["genres"].unique().to_list())
    matrix = np.zeros((len(movies_index), len(vocab)), dtype=np.float32)
    if vocab:
        col = exploded["genres"].replace_strict(vocab, list(range(len(vocab))), return_dtype=pl.Int64)
        matrix[exploded["movie_idx"].to_numpy(), col.to_numpy()] = 1.0
    return vocab, matrix


def _user_features(con: duckdb.DuckDBPyConnection, users_index: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    if not _has_table(con, "users"):
        return [], np.zeros((len(users_index), 0), dtype=np.float32)
    users = users_index.join(
        con.sql("SELECT user_id, gender, age, occupation FROM users").pl(), on="user_id", how="left"
    )
    bucket = np.searchsorted(np.array(AGE_BUCKETS), users["age"].fill_null(0).to_numpy(), side="right") - 1
    occupations = sorted(users["occupation"].drop_nulls().unique().to_list())
    occ_index = (
        users["occupation"]
        .replace_strict(occupations, list(range(len(occupations))), default=-1, return_dtype=pl.Int64)
        .to_numpy()
    )
    n = len(users)
    gender = (users["gender"] == "F").fill_null(False).to_numpy().astype(np.float32)[:, None]
    age = np.zeros((n, len(AGE_BUCKETS)), dtype=np.float32)
    known_age = users["age"].is_not_null().to_numpy()
    age[np.arange(n)[known_age], np.clip(bucket[known_age], 0, len(AGE_BUCKETS) - 1)] = 1.0
    occ = np.zeros((n, len(occupations)), dtype=np.float32)
    known_occ = occ_index >= 0
    occ[np.arange(n)[known_occ], occ_index[known_occ]] = 1.0
    names = ["gender_F"] + [f"age_{a}" for a in AGE_BUCKETS] + [f"occupation_{o}" for o in occupations]
    return names, np.hstack([gender, age, occ])


def _tag_tfidf(
    con: duckdb.DuckDBPyConnection, movies_index: pl.DataFrame, max_terms: int
) -> tuple[list[str], np.ndarray]:
    """Per movie, the TF-IDF of its tags (each tag one term, lower-cased), top `max_terms` by frequency.

    Tags are a user's words about a movie; the notebooks fed them to the
    content models the same way. Tags are already as of the run's date.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    empty = [], np.zeros((len(movies_index), 0), dtype=np.float32)
    if not _has_table(con, "tags"):
        return empty
    docs = movies_index.join(
        con.sql(
            "SELECT movie_id, list(lower(trim(CAST(tag AS VARCHAR)))) AS tags FROM tags "
            "WHERE tag IS NOT NULL AND trim(CAST(tag AS VARCHAR)) <> '' GROUP BY movie_id"
        ).pl(),
        on="movie_id",
        how="left",
    )
    if docs["tags"].drop_nulls().len() == 0:
        return empty
    vectoriser = TfidfVectorizer(analyzer=lambda tags: tags or [], max_features=max_terms, dtype=np.float32)
    matrix = vectoriser.fit_transform(docs["tags"].to_list())
    return list(vectoriser.get_feature_names_out()), matrix.toarray().astype(np.float32)


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    query = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    return bool(con.execute(query, [name]).fetchall()[0][0])
