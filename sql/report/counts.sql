-- The run summary's counts (report.json, the log's last lines).
SELECT 'ratings', count(*) FROM ratings
UNION ALL
SELECT 'users with recommendations', count(DISTINCT user_id) FROM current_recommendations
UNION ALL
SELECT 'recommendation rows', count(*) FROM current_recommendations
