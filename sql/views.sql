-- The consumers' views, defined once for the job's warehouse and for the
-- serving file that consumers read (pipeline/serving.py copies the tables
-- these views need and runs this file there).

-- Published runs whose rows are kept, newest first: newest logical date (a
-- backfill of old dates never displaces a newer run), then the newest
-- publication. age 1 is the current run. Reading pruned_at, not scanning
-- recommendations, keeps a one-user lookup at milliseconds (a scan cost 50 ms).
CREATE OR REPLACE VIEW kept_runs AS
SELECT
    run_id, logical_date, published_at, dataset, model,
    row_number() OVER (ORDER BY logical_date DESC NULLS LAST, published_at DESC, run_id DESC) AS age
FROM published_runs
WHERE pruned_at IS NULL;

CREATE OR REPLACE VIEW current_run AS
SELECT run_id, logical_date, published_at, dataset, model FROM kept_runs WHERE age = 1;

CREATE OR REPLACE VIEW current_recommendations AS
SELECT r.*
FROM recommendations AS r
WHERE r.run_id = (SELECT run_id FROM current_run);

-- What changed for each user against the run published before the current
-- one: 'added' and 'dropped' movies, and 'moved' ones with both ranks.
CREATE OR REPLACE VIEW recommendation_changes AS
WITH cur AS (SELECT * FROM recommendations WHERE run_id = (SELECT run_id FROM kept_runs WHERE age = 1)),
prev AS (SELECT * FROM recommendations WHERE run_id = (SELECT run_id FROM kept_runs WHERE age = 2))
SELECT
    coalesce(c.user_id, p.user_id) AS user_id,
    coalesce(c.movie_id, p.movie_id) AS movie_id,
    CASE WHEN p.movie_id IS NULL THEN 'added' WHEN c.movie_id IS NULL THEN 'dropped' ELSE 'moved' END AS change,
    p.rank AS previous_rank,
    c.rank AS current_rank,
    (SELECT run_id FROM kept_runs WHERE age = 1) AS run_id,
    (SELECT run_id FROM kept_runs WHERE age = 2) AS previous_run_id
FROM cur AS c
FULL OUTER JOIN prev AS p ON c.user_id = p.user_id AND c.movie_id = p.movie_id
WHERE (SELECT count(*) FROM kept_runs) >= 2
  AND p.rank IS DISTINCT FROM c.rank;
