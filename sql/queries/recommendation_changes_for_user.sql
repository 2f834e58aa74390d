-- What changed in one user's list since the previous published run.
-- Usage: duckdb -readonly warehouse/movielens.serving.duckdb -c "SET VARIABLE user_id = 42" -f sql/queries/recommendation_changes_for_user.sql
SELECT
    c.change,
    m.title,
    c.previous_rank,
    c.current_rank
FROM recommendation_changes AS c
JOIN movies AS m USING (movie_id)
WHERE c.user_id = getvariable('user_id')
ORDER BY c.change, coalesce(c.current_rank, c.previous_rank);
