-- Movies with readable title, release year and genres as a list, so consumers
-- can write list_contains(genres, 'Drama'). external_id is the id as written
-- in the source file (the same as movie_id for integer ids).
CREATE OR REPLACE TABLE movies AS
SELECT movie_id, title, year, genres, external_id, dq_flags
FROM read_parquet($path)
ORDER BY movie_id;
