SELECT
    user_key(user_id) AS user_id,
    movie_key(movie_id) AS movie_id,
    tag,
    unix_seconds("timestamp") AS "timestamp"
FROM stage_input
