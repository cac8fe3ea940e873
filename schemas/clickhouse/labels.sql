-- One row per label event (ground truth, possibly hours after its prediction).
-- Raw events: kept ${raw_ttl_days} days after the time the label became known.
-- A corrected label (same prediction, later timestamp) is a new row; readers take the latest.
CREATE TABLE IF NOT EXISTS ${database}.labels
(
    prediction_id String,
    model_name LowCardinality(String),
    model_version LowCardinality(Nullable(String)),
    label_num Nullable(Float64),
    label_cat Nullable(String),
    timestamp DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (model_name, prediction_id, timestamp)
TTL toDateTime(timestamp) + INTERVAL ${raw_ttl_days} DAY
