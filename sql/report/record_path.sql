-- Where this run's HTML report is, on each of its model_runs rows.
UPDATE model_runs SET report_path = $path WHERE run_id = $run_id
