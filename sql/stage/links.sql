-- imdb_id stays text: it is zero-padded.
SELECT
    TRY_CAST(movie_id AS BIGINT) AS movie_id,
    imdb_id,
    TRY_CAST(tmdb_id AS BIGINT) AS tmdb_id
FROM raw_links
