-- Forward evaluation (EVALUATION.md, C): the published lists of run $evaluated_run_id
-- against the ratings made in [$window_start, $window_end), i.e. after that run's
-- logical date and before this run's. Every user who rated anything in the window
-- counts, with or without a list; a movie first seen in the window is a miss.
-- Relevant: any rated movie; "liked": rated at least $like.
WITH listed AS (
    SELECT user_id, movie_id, rank FROM recommendations WHERE run_id = $evaluated_run_id AND rank <= $top_n
),
arrived AS (
    SELECT user_id, movie_id, rating FROM ratings
    -- the window's bounds are UTC instants; rated_at is a TIMESTAMPTZ (sql/load/ratings.sql)
    WHERE rated_at >= ($window_start AT TIME ZONE 'UTC') AND rated_at < ($window_end AT TIME ZONE 'UTC')
),
ideal AS (  -- IDCG for m relevant movies is the sum over ranks 1..min(m, N)
    SELECT range AS m, sum(1 / log2(range + 1)) OVER (ORDER BY range) AS idcg FROM range(1, $top_n + 1)
),
per_user AS (
    SELECT
        a.user_id,
        count(*) AS rated,
        count(*) FILTER (WHERE a.rating >= $like) AS liked,
        count(l.rank) AS hits,
        count(l.rank) FILTER (WHERE a.rating >= $like) AS liked_hits,
        coalesce(sum(1 / log2(l.rank + 1)), 0) AS dcg,
        coalesce(sum(1 / log2(l.rank + 1)) FILTER (WHERE a.rating >= $like), 0) AS liked_dcg,
        bool_or(a.user_id IN (SELECT user_id FROM listed)) AS has_list
    FROM arrived AS a
    LEFT JOIN listed AS l USING (user_id, movie_id)
    GROUP BY a.user_id
)
SELECT
    count(*) AS active_users,
    count(*) FILTER (WHERE has_list) AS users_with_list,
    avg(CASE WHEN hits > 0 THEN 1.0 ELSE 0.0 END) AS hit_rate,
    avg(hits / rated) AS recall,
    avg(dcg / i.idcg) AS ndcg,
    count(*) FILTER (WHERE liked > 0) AS liked_users,
    avg(CASE WHEN liked_hits > 0 THEN 1.0 ELSE 0.0 END) FILTER (WHERE liked > 0) AS liked_hit_rate,
    avg(liked_hits / liked) FILTER (WHERE liked > 0) AS liked_recall,
    avg(liked_dcg / li.idcg) FILTER (WHERE liked > 0) AS liked_ndcg
FROM per_user AS p
JOIN ideal AS i ON i.m = least(p.rated, $top_n)
LEFT JOIN ideal AS li ON li.m = least(p.liked, $top_n);
