-- One statistic per (model, version, segment, window, feature, metric); segment '' = unsegmented.
-- The sorting key is the metric's identity, so a replayed window replaces itself.
CREATE TABLE IF NOT EXISTS ${database}.drift_metrics
(
    metric_id String,
    model_name LowCardinality(String),
    model_version LowCardinality(String),
    segment String,
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    feature String,
    metric LowCardinality(String),
    value Float64,
    pvalue Nullable(Float64),
    threshold Float64,
    drift Bool,
    `primary` Bool,
    n_reference Int64,
    n_current Int64,
    missing_rate Float64,
    out_of_range_rate Float64,
    late_events Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (model_name, model_version, segment, window_start, feature, metric)
