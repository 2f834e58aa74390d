-- What the latest runs checked and how the model scored (for whoever is on call).
SELECT p.run_id, p.published_at, p.n_users, p.n_rows,
       m.device, round(m.seconds, 1) AS train_seconds,
       round((m.metrics->>'rmse_stars')::DOUBLE, 3) AS rmse_stars,
       round((m.metrics->>'ndcg@10')::DOUBLE, 3) AS ndcg_at_10
FROM published_runs AS p
LEFT JOIN model_runs AS m USING (run_id)
ORDER BY p.published_at DESC
LIMIT 10;
