CREATE OR REPLACE TABLE tags AS
SELECT user_id, movie_id, tag, "timestamp", to_timestamp("timestamp") AS tagged_at
FROM read_parquet($path)
WHERE "timestamp" IS NULL OR "timestamp" < $as_of;
