-- Published runs that still have rows but are older than the newest
-- $keep_runs (sql/views.sql, kept_runs): their rows are dropped; the runs
-- stay listed in published_runs, marked pruned_at.
SELECT run_id FROM kept_runs WHERE age > $keep_runs ORDER BY run_id;
