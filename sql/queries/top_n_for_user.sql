-- Top 10 for one user, with titles and genres, from the latest published run.
-- Usage: duckdb -readonly warehouse/movielens.serving.duckdb -c "SET VARIABLE user_id = 42" -f sql/queries/top_n_for_user.sql
SELECT
    r.rank,
    m.title,
    array_to_string(m.genres, ', ') AS genres,
    round(r.predicted_rating, 2) AS predicted_rating,
    r.reason
FROM current_recommendations AS r
JOIN movies AS m USING (movie_id)
WHERE r.user_id = getvariable('user_id')
ORDER BY r.rank
LIMIT 10;
