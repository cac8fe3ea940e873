-- One row per prediction event. Raw events: kept ${raw_ttl_days} days after their event time.
-- Features are split by type so SQL can aggregate them: numbers (long, double) in
-- features_num, strings and booleans ('true'/'false') in features_cat, nulls in features_missing.
-- A replayed event has the same sorting key, so FINAL (or a merge) keeps one copy.
CREATE TABLE IF NOT EXISTS ${database}.predictions
(
    prediction_id String,
    model_name LowCardinality(String),
    model_version LowCardinality(String),
    timestamp DateTime64(3, 'UTC'),
    features_num Map(String, Float64),
    features_cat Map(String, String),
    features_missing Array(String),
    prediction_num Nullable(Float64),
    prediction_cat Nullable(String),
    scores Map(String, Float64),
    segment Map(String, String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (model_name, model_version, timestamp, prediction_id)
TTL toDateTime(timestamp) + INTERVAL ${raw_ttl_days} DAY
