-- Stage one run's scored rows (every shard file at once) into recommendations,
-- with a readable reason: the history movie behind a personal pick, the
-- ratings count and window behind a most-popular pick, the genres behind a
-- fallback. 'matches your profile' is left for a row with none of these.
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
        -- most-popular ranks by ratings counted over a window: say so, never claim a taste
        WHEN r.reason_popularity IS NOT NULL THEN
            'among the most rated: ' || format('{:,}', r.reason_popularity) || ' ratings'
            || CASE WHEN r.popular_from IS NULL THEN ''
                    ELSE ' from ' || strftime(r.popular_from, '%b %Y') || ' to ' || strftime(r.popular_to, '%b %Y')
               END
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
