-- What the current lists tell consumers, by kind of reason: how many rows
-- name a movie from the user's history, a popularity window, the genres of a
-- fallback, or only the generic "matches your profile", and how many lack a
-- predicted rating. docs/results.md quotes it (bench/published_rows.py).
SELECT
    CASE
        WHEN reason LIKE 'because you rated %' THEN 'a movie from the history'
        WHEN reason LIKE 'among the most rated:%' THEN 'popularity, with its window'
        WHEN reason LIKE 'popular %' THEN 'fallback (too little history)'
        WHEN reason = 'matches your profile' THEN 'generic'
        ELSE 'other'
    END AS reason_kind,
    count(*) AS n_rows,
    round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS pct,
    count(*) FILTER (WHERE predicted_rating IS NULL) AS null_predicted_rating
FROM current_recommendations
GROUP BY ALL
ORDER BY n_rows DESC;
