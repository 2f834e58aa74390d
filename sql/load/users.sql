-- dq_flags: '<column>: <rule>' for each value validation nulled (NULL when none);
-- the value as read is in dq_nulled.
CREATE OR REPLACE TABLE users AS
SELECT user_id, gender, age, occupation, zip_code, external_id, dq_flags
FROM read_parquet($path)
ORDER BY user_id;
