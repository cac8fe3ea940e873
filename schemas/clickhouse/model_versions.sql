-- Lifecycle of each model version, from model events: one row per (version, event type),
-- the latest event of each type wins. Current stage: argMax(event_type, timestamp).
CREATE TABLE IF NOT EXISTS ${database}.model_versions
(
    model_name LowCardinality(String),
    model_version String,
    event_type LowCardinality(String),
    timestamp DateTime64(3, 'UTC'),
    event_id String,
    request_id Nullable(String),
    run_id Nullable(String),
    message Nullable(String)
)
ENGINE = ReplacingMergeTree(timestamp)
ORDER BY (model_name, model_version, event_type)
