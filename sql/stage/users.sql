-- Typed users (ml-100k: age in years, occupation as a word; ml-1m: age as a
-- bracket code, occupation as a code 0-20; a spec: whichever it has).
SELECT
    user_key(user_id) AS user_id,
    trim(user_id) AS external_id,
    gender,
    TRY_CAST(age AS INTEGER) AS age,
    occupation,
    zip_code
FROM stage_input
