CREATE OR REPLACE TABLE users AS
SELECT user_id, gender, age, occupation, zip_code, external_id
FROM read_parquet($path)
ORDER BY user_id;
