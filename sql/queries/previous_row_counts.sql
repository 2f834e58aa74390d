-- Row counts per file kind of the latest earlier run of $dataset whose
-- validation passed: the baseline of the row-count drift rules.
SELECT kind, n_rows
FROM dq_row_counts
WHERE dataset = $dataset
  AND passed
  AND run_id = (
      SELECT run_id FROM dq_row_counts
      WHERE dataset = $dataset AND passed AND run_id <> $run_id
      ORDER BY recorded_at DESC
      LIMIT 1
  )
