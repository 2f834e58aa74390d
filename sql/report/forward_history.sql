-- Forward-evaluation metrics of the lists published for $dataset, in window
-- order, up to this run's logical date: the report's "metrics over runs".
SELECT f.window_end, f.model, f.top_n, f.active_users, f.hit_rate, f.recall, f.ndcg,
       f.liked_hit_rate, f.liked_recall
FROM forward_metrics AS f
JOIN published_runs AS p ON p.run_id = f.evaluated_run_id
WHERE p.dataset = $dataset AND f.window_end <= $until
ORDER BY f.window_end, f.computed_at
