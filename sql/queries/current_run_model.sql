-- The run and model behind the recommendations consumers see now (one row).
SELECT run_id, model FROM current_recommendations LIMIT 1
