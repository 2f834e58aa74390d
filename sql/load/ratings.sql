-- Ratings as of the run's cut-off: a run for logical date D never sees a
-- rating made at or after D, so replaying history is faithful. A dataset
-- without timestamps (a spec may leave them out) has no history to cut.
CREATE OR REPLACE TABLE ratings AS
SELECT user_id, movie_id, rating, "timestamp", to_timestamp("timestamp") AS rated_at
FROM read_parquet($path)
WHERE "timestamp" IS NULL OR "timestamp" < $as_of
ORDER BY user_id, "timestamp", movie_id;
