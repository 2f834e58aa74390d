SELECT
    TRY_CAST(user_id AS BIGINT) AS user_id,
    TRY_CAST(movie_id AS BIGINT) AS movie_id,
    tag,
    TRY_CAST("timestamp" AS BIGINT) AS "timestamp"
FROM raw_tags
