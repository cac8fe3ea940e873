-- Alert state after each change; the highest revision per alert_id wins.
-- Partitioned by opening time, which every revision of an alert shares, so that
-- the revisions meet in one partition and replace each other.
CREATE TABLE IF NOT EXISTS ${database}.alerts
(
    alert_id String,
    model_name LowCardinality(String),
    model_version LowCardinality(String),
    kind LowCardinality(String),
    feature Nullable(String),
    state LowCardinality(String),
    severity LowCardinality(String),
    opened_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    revision UInt64,
    value Float64,
    threshold Nullable(Float64),
    occurrences Int64,
    message String,
    acknowledged_by Nullable(String),
    resolved_by Nullable(String),
    note Nullable(String)
)
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(opened_at)
ORDER BY (model_name, model_version, alert_id)
