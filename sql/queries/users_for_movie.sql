-- Users who would be recommended a given movie, best placed first.
-- Usage: SET VARIABLE movie_id = 2571;
SELECT r.user_id, r.rank, round(r.predicted_rating, 2) AS predicted_rating
FROM current_recommendations AS r
WHERE r.movie_id = getvariable('movie_id')
ORDER BY r.rank, r.user_id;
