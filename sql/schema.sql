-- The warehouse's tables that outlive a run. Data tables (ratings, movies,
-- users, tags, links) are replaced by each successful load: see sql/load/.

CREATE TABLE IF NOT EXISTS dq_results (
    run_id           VARCHAR NOT NULL,
    checked_at       TIMESTAMP NOT NULL,
    file             VARCHAR NOT NULL,   -- path of the raw file checked
    suite            VARCHAR NOT NULL,   -- expectations/<suite>.json, section
    expectation      VARCHAR NOT NULL,
    column_name      VARCHAR,
    rule             VARCHAR,            -- the rule in words
    severity         VARCHAR NOT NULL,   -- critical | warning
    success          BOOLEAN NOT NULL,
    element_count    BIGINT,
    unexpected_count BIGINT
);

CREATE TABLE IF NOT EXISTS dq_alerts (
    run_id           VARCHAR NOT NULL,
    raised_at        TIMESTAMP NOT NULL,
    file             VARCHAR NOT NULL,
    suite            VARCHAR NOT NULL,
    expectation      VARCHAR NOT NULL,
    column_name      VARCHAR,
    severity         VARCHAR NOT NULL,
    unexpected_count BIGINT,
    sample_values    VARCHAR[],
    sample_lines     BIGINT[],           -- line numbers in the raw file
    message          VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS model_runs (
    run_id       VARCHAR NOT NULL,
    logical_date TIMESTAMP,
    dataset      VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    params       JSON,
    metrics      JSON,
    device       VARCHAR,
    seconds      DOUBLE,
    is_champion  BOOLEAN,
    created_at   TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS recommendations (
    run_id           VARCHAR NOT NULL,
    user_id          BIGINT NOT NULL,
    rank             INTEGER NOT NULL,
    movie_id         BIGINT NOT NULL,
    score            DOUBLE NOT NULL,
    predicted_rating DOUBLE,
    reason           VARCHAR,
    model            VARCHAR NOT NULL,
    generated_at     TIMESTAMP NOT NULL
);

-- One row per published run; the newest one is what consumers see.
CREATE TABLE IF NOT EXISTS published_runs (
    run_id       VARCHAR PRIMARY KEY,
    published_at TIMESTAMP NOT NULL,
    dataset      VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    n_users      BIGINT NOT NULL,
    n_rows       BIGINT NOT NULL
);

-- Added by the data-contracts work (issue 3); ALTER keeps older warehouses.
ALTER TABLE dq_alerts ADD COLUMN IF NOT EXISTS docs_url VARCHAR;  -- the GX Data Docs page

-- Rows set aside by row-level warning rules, with the rule and the line's text.
CREATE TABLE IF NOT EXISTS dq_quarantine (
    run_id         VARCHAR NOT NULL,
    quarantined_at TIMESTAMP NOT NULL,
    file           VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,   -- ratings | movies | users | tags | links
    line           BIGINT NOT NULL,    -- line number in the raw file
    rule           VARCHAR NOT NULL,
    record         VARCHAR             -- the line's fields as read
);

-- Values nulled by row-level warning rules about side attributes (a user's
-- gender, a movie's genres, a link's tmdbId): the row was loaded with the value
-- NULL and a dq_flags entry '<column>: <rule>'; here is the value as read.
CREATE TABLE IF NOT EXISTS dq_nulled (
    run_id      VARCHAR NOT NULL,
    nulled_at   TIMESTAMP NOT NULL,
    file        VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,   -- movies | users | links
    line        BIGINT NOT NULL,    -- line number in the raw file
    column_name VARCHAR NOT NULL,
    rule        VARCHAR NOT NULL,
    value       VARCHAR             -- as read (NULL where the rule is that it is missing)
);

-- Data rows per raw file, per run; drift rules compare with the previous run
-- of the same dataset that passed validation.
CREATE TABLE IF NOT EXISTS dq_row_counts (
    run_id      VARCHAR NOT NULL,
    dataset     VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    n_rows      BIGINT NOT NULL,
    passed      BOOLEAN NOT NULL,
    recorded_at TIMESTAMP NOT NULL
);

-- Added by the models work (issue 4): which evaluation protocol a row's metrics
-- belong to: notebook (A), full_ranking (B), or skipped (the model could not run).
ALTER TABLE model_runs ADD COLUMN IF NOT EXISTS protocol VARCHAR;

-- Added by the recommendations-tables work (issue 5): the logical date a run
-- answers for. The newest logical date is current; re-running a date replaces
-- that date's run (sql/views.sql, pipeline/publish.py).
ALTER TABLE published_runs ADD COLUMN IF NOT EXISTS logical_date TIMESTAMP;
-- Whether a row comes from the popularity fallback (too little history for the model).
ALTER TABLE recommendations ADD COLUMN IF NOT EXISTS is_fallback BOOLEAN;
-- When a run's rows were dropped for being older than the kept runs (NULL: rows kept).
ALTER TABLE published_runs ADD COLUMN IF NOT EXISTS pruned_at TIMESTAMP;

-- Added by the operations work (issue 6): forward evaluation, one row per run
-- that found an earlier published run to judge (EVALUATION.md, C).
CREATE TABLE IF NOT EXISTS forward_metrics (
    run_id           VARCHAR NOT NULL,   -- the run that measured
    evaluated_run_id VARCHAR NOT NULL,   -- the published run whose lists were judged
    model            VARCHAR,
    window_start     TIMESTAMP NOT NULL, -- that run's logical date
    window_end       TIMESTAMP NOT NULL, -- this run's logical date
    top_n            INTEGER NOT NULL,
    active_users     BIGINT NOT NULL,    -- users who rated anything in the window
    users_with_list  BIGINT NOT NULL,
    hit_rate         DOUBLE,
    recall           DOUBLE,
    ndcg             DOUBLE,
    liked_users      BIGINT NOT NULL,    -- active users with a rating >= 80% of the scale's max
    liked_hit_rate   DOUBLE,
    liked_recall     DOUBLE,
    liked_ndcg       DOUBLE,
    computed_at      TIMESTAMP NOT NULL
);
-- Added by the run-report work (issue 7): the run's HTML report.
ALTER TABLE model_runs ADD COLUMN IF NOT EXISTS report_path VARCHAR;

-- Added by the sequence-ranker work (issue 17): the model that ranks a run's lists (is_champion,
-- published_runs.model) and the one whose predictions fill predicted_rating (the lowest
-- validation RMSE: is_rater, published_runs.rating_model) can differ.
ALTER TABLE model_runs ADD COLUMN IF NOT EXISTS is_rater BOOLEAN;
ALTER TABLE published_runs ADD COLUMN IF NOT EXISTS rating_model VARCHAR;

-- Added by the nightly-window work (issue 18): which job wrote a row ("nightly": decides and
-- publishes; "evaluation": the weekly comparison, publishes nothing) and where protocol B's test
-- figures come from ("tuned model on test" nightly, "refit on train" in the evaluation job).
ALTER TABLE model_runs ADD COLUMN IF NOT EXISTS job VARCHAR;
ALTER TABLE model_runs ADD COLUMN IF NOT EXISTS test_from VARCHAR;
-- Added by the 25M-scale work (issue 19): protocol B ranks at most RunConfig.eval_max_users
-- users per split, drawn with a fixed seed; the sample's size where it drew one (NULL: every user).
ALTER TABLE model_runs ADD COLUMN IF NOT EXISTS eval_sample_users INTEGER;
