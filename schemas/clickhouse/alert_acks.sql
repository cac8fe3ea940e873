-- Responder actions on alerts (acknowledge, resolve), an audit log.
CREATE TABLE IF NOT EXISTS ${database}.alert_acks
(
    alert_id String,
    action LowCardinality(String),
    actor String,
    timestamp DateTime64(3, 'UTC'),
    note Nullable(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (alert_id, timestamp, action, actor)
