-- Coverage by genre in the current lists: how many of each genre's movies
-- are recommended to anyone, and how many recommendation slots go to it.
-- Usage: duckdb -readonly warehouse/movielens.serving.duckdb -f sql/queries/coverage_by_genre.sql
WITH catalogue AS (
    SELECT unnest(genres) AS genre, movie_id FROM movies
),
shown AS (
    SELECT movie_id, count(*) AS slots FROM current_recommendations GROUP BY movie_id
)
SELECT
    c.genre,
    count(*) AS movies,
    count(s.movie_id) AS movies_recommended,
    round(count(s.movie_id) / count(*), 3) AS coverage,
    coalesce(sum(s.slots), 0) AS recommendation_slots
FROM catalogue AS c
LEFT JOIN shown AS s USING (movie_id)
GROUP BY c.genre
ORDER BY recommendation_slots DESC, c.genre;
