-- Published runs that still have rows (not pruned) but are older than the newest
-- $keep_runs (in current_run's order): their rows are dropped; the runs stay
-- listed in published_runs.
SELECT run_id FROM (
    SELECT run_id, row_number() OVER (ORDER BY logical_date DESC NULLS LAST, published_at DESC, run_id DESC) AS age
    FROM published_runs
    WHERE pruned_at IS NULL
)
WHERE age > $keep_runs
ORDER BY run_id;
