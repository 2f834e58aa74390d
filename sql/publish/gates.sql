-- Quality gates on a run's rows before they are published. Each row is one
-- rule with the number of violations; any non-zero count stops publishing.
WITH run AS (SELECT * FROM recommendations WHERE run_id = $run_id)
SELECT 'no rows at all' AS rule, CASE WHEN count(*) = 0 THEN 1 ELSE 0 END AS violations FROM run
UNION ALL
SELECT 'movie id not in movies', count(*) FROM run WHERE movie_id NOT IN (SELECT movie_id FROM movies)
UNION ALL
SELECT 'movie already rated by the user', count(*)
FROM run JOIN ratings AS s ON s.user_id = run.user_id AND s.movie_id = run.movie_id
UNION ALL
SELECT 'user with ratings but no recommendations', count(*)
FROM (SELECT DISTINCT user_id FROM ratings) AS u
WHERE u.user_id NOT IN (SELECT user_id FROM run)
UNION ALL
SELECT 'duplicate (user, rank) or (user, movie)', count(*) - count(DISTINCT (user_id, rank)) + count(*) - count(DISTINCT (user_id, movie_id)) FROM run
UNION ALL
SELECT 'more than N rows for a user', count(*) FROM (SELECT user_id FROM run GROUP BY user_id HAVING count(*) > $top_n);
