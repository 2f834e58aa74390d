-- Typed ratings from the text read; a value that does not cast becomes NULL
-- (the raw suite has already named it).
SELECT
    TRY_CAST(user_id AS BIGINT) AS user_id,
    TRY_CAST(movie_id AS BIGINT) AS movie_id,
    TRY_CAST(rating AS DOUBLE) AS rating,
    TRY_CAST("timestamp" AS BIGINT) AS "timestamp"
FROM raw_ratings
