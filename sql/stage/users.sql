-- Typed users (ml-100k: age in years, occupation as a word; ml-1m: age as a
-- bracket code, occupation as a code 0-20).
SELECT
    TRY_CAST(user_id AS BIGINT) AS user_id,
    gender,
    TRY_CAST(age AS INTEGER) AS age,
    occupation,
    zip_code
FROM raw_users
