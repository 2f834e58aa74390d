-- imdb_id stays text: it is zero-padded.
SELECT
    movie_key(movie_id) AS movie_id,
    imdb_id,
    TRY_CAST(tmdb_id AS BIGINT) AS tmdb_id
FROM stage_input
