-- Windowed model quality from joined labels, one row per (model, version, window, metric).
CREATE TABLE IF NOT EXISTS ${database}.performance_metrics
(
    metric_id String,
    model_name LowCardinality(String),
    model_version LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    metric LowCardinality(String),
    value Float64,
    n_labels Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (model_name, model_version, window_start, metric)
