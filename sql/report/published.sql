-- What this run published, if it did: the page's "published" line.
SELECT model, n_users, n_rows FROM published_runs WHERE run_id = $run_id
