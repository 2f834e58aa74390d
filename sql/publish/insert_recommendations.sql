-- Stage one run's scored rows (every shard file at once) into recommendations,
-- with a readable reason.
-- Runs inside the publishing transaction: nobody sees these rows until the
-- run is recorded in published_runs and the transaction commits.
INSERT INTO recommendations
SELECT
    $run_id AS run_id,
    r.user_id,
    r.rank,
    r.movie_id,
    r.score,
    r.predicted_rating,
    CASE
        WHEN r.is_fallback AND r.reason_genres IS NOT NULL THEN
            'popular in ' || r.reason_genres || ', genres you like (too little history for a personal pick yet)'
        WHEN r.is_fallback THEN 'popular with other viewers (too little history for a personal pick yet)'
        WHEN m.title IS NOT NULL THEN
            'because you rated ' || m.title || ' '
            || regexp_replace(CAST(r.reason_rating AS VARCHAR), '\.0$', '') || '★'
        ELSE 'matches your profile'
    END AS reason,
    $model AS model,
    $generated_at AS generated_at,
    r.is_fallback
FROM read_parquet($path) AS r
LEFT JOIN movies AS m ON m.movie_id = r.reason_movie_id;
