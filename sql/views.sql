-- The consumers' views, defined once for the job's warehouse and for the
-- serving file that consumers read (pipeline/serving.py copies the tables
-- these views need and runs this file there).

-- The newest published run: newest logical date first (a backfill of old
-- dates never displaces a newer run), then the newest publication.
CREATE OR REPLACE VIEW current_run AS
SELECT run_id, logical_date, published_at, dataset, model
FROM published_runs
WHERE pruned_at IS NULL  -- a run whose rows are kept; a scan of recommendations here cost 50 ms a query
ORDER BY logical_date DESC NULLS LAST, published_at DESC, run_id DESC
LIMIT 1;

CREATE OR REPLACE VIEW current_recommendations AS
SELECT r.*
FROM recommendations AS r
WHERE r.run_id = (SELECT run_id FROM current_run);

-- What changed for each user against the run published before the current
-- one: 'added' and 'dropped' movies, and 'moved' ones with both ranks.
CREATE OR REPLACE VIEW recommendation_changes AS
WITH ordered AS (
    SELECT run_id, row_number() OVER (ORDER BY logical_date DESC NULLS LAST, published_at DESC, run_id DESC) AS age
    FROM published_runs
    WHERE pruned_at IS NULL
),
cur AS (SELECT * FROM recommendations WHERE run_id = (SELECT run_id FROM ordered WHERE age = 1)),
prev AS (SELECT * FROM recommendations WHERE run_id = (SELECT run_id FROM ordered WHERE age = 2))
SELECT
    coalesce(c.user_id, p.user_id) AS user_id,
    coalesce(c.movie_id, p.movie_id) AS movie_id,
    CASE WHEN p.movie_id IS NULL THEN 'added' WHEN c.movie_id IS NULL THEN 'dropped' ELSE 'moved' END AS change,
    p.rank AS previous_rank,
    c.rank AS current_rank,
    (SELECT run_id FROM ordered WHERE age = 1) AS run_id,
    (SELECT run_id FROM ordered WHERE age = 2) AS previous_run_id
FROM cur AS c
FULL OUTER JOIN prev AS p ON c.user_id = p.user_id AND c.movie_id = p.movie_id
WHERE (SELECT count(*) FROM ordered) >= 2
  AND p.rank IS DISTINCT FROM c.rank;
