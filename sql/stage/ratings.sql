-- Typed ratings from the text read; a value that does not cast becomes NULL
-- (the raw suite has already named and quarantined it).
SELECT
    user_key(user_id) AS user_id,
    movie_key(movie_id) AS movie_id,
    TRY_CAST(rating AS DOUBLE) AS rating,
    unix_seconds("timestamp") AS "timestamp"
FROM stage_input
