-- Movies with readable title, release year and genres as a list, so consumers
-- can write list_contains(genres, 'Drama').
CREATE OR REPLACE TABLE movies AS
SELECT
    movie_id,
    title,
    year,
    CASE WHEN genres IS NULL OR genres IN ('', '(no genres listed)') THEN []::VARCHAR[]
         ELSE string_split(genres, '|') END AS genres
FROM read_parquet($path)
ORDER BY movie_id;
