-- The champion's metrics of the newest published run of a dataset (other than this run).
SELECT m.run_id, m.model, CAST(m.metrics AS VARCHAR)
FROM model_runs AS m
JOIN published_runs AS p USING (run_id)
WHERE m.dataset = $dataset
  AND m.run_id <> $run_id
  AND m.is_champion
  AND m.protocol = $protocol
ORDER BY p.published_at DESC, m.run_id DESC
LIMIT 1;
