CREATE OR REPLACE TABLE links AS
SELECT movie_id, imdb_id, tmdb_id, dq_flags FROM read_parquet($path) ORDER BY movie_id;
