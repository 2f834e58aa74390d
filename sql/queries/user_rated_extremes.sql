-- One user's highest- and lowest-rated movies (5 each by default), with genres; ties: most recent first.
-- Usage: duckdb -readonly warehouse/movielens.duckdb -c "SET VARIABLE user_id = 42" -f sql/queries/user_rated_extremes.sql
WITH rated AS (
    SELECT r.rating, r.rated_at, m.title, array_to_string(m.genres, ', ') AS genres,
           row_number() OVER (ORDER BY r.rating DESC, r.rated_at DESC, m.title) AS best,
           row_number() OVER (ORDER BY r.rating ASC, r.rated_at DESC, m.title) AS worst
    FROM ratings AS r
    JOIN movies AS m USING (movie_id)
    WHERE r.user_id = getvariable('user_id')
)
SELECT 'highest' AS side, best AS position, title, genres, rating, strftime(rated_at, '%Y-%m-%d') AS rated_on
FROM rated WHERE best <= coalesce(getvariable('n'), 5)
UNION ALL
SELECT 'lowest', worst, title, genres, rating, strftime(rated_at, '%Y-%m-%d')
FROM rated WHERE worst <= coalesce(getvariable('n'), 5)
ORDER BY side, position;
