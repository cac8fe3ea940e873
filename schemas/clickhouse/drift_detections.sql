-- One row per detector firing; detection_id is deterministic, so a replay replaces itself.
CREATE TABLE IF NOT EXISTS ${database}.drift_detections
(
    detection_id String,
    model_name LowCardinality(String),
    model_version LowCardinality(String),
    kind LowCardinality(String),
    detector LowCardinality(String),
    feature Nullable(String),
    detected_at DateTime64(3, 'UTC'),
    value Float64,
    threshold Nullable(Float64),
    severity LowCardinality(String),
    details Map(String, String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(detected_at)
ORDER BY (model_name, model_version, detected_at, detection_id)
