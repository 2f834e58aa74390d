-- The day's changes against the previous published run: how many users'
-- lists changed, and the movies most often added and dropped.
-- Usage: duckdb -readonly warehouse/movielens.serving.duckdb -f sql/queries/changes_summary.sql
WITH counts AS (
    SELECT movie_id, change, count(*) AS users
    FROM recommendation_changes
    WHERE change IN ('added', 'dropped')
    GROUP BY ALL
)
SELECT
    'users whose list changed' AS what, NULL AS title, count(DISTINCT user_id) AS users
FROM recommendation_changes
UNION ALL
SELECT * FROM (
    SELECT 'most added', m.title, c.users FROM counts c JOIN movies m USING (movie_id)
    WHERE c.change = 'added' ORDER BY c.users DESC, m.title LIMIT 5
)
UNION ALL
SELECT * FROM (
    SELECT 'most dropped', m.title, c.users FROM counts c JOIN movies m USING (movie_id)
    WHERE c.change = 'dropped' ORDER BY c.users DESC, m.title LIMIT 5
);
