CREATE OR REPLACE TABLE users AS
SELECT user_id, gender, age, occupation, zip_code
FROM read_parquet($path)
ORDER BY user_id;
