-- What validation raised in this run, most severe first, for the report.
SELECT severity, file, expectation, coalesce(column_name, '') AS column_name,
       coalesce(unexpected_count, 0) AS unexpected, message
FROM dq_alerts
WHERE run_id = $run_id
ORDER BY severity = 'critical' DESC, file, expectation
