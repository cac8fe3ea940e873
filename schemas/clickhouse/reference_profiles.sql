-- ReferenceProfile JSON per model version (from the model event that carried it);
-- the latest one wins.
CREATE TABLE IF NOT EXISTS ${database}.reference_profiles
(
    model_name LowCardinality(String),
    model_version String,
    profile String CODEC(ZSTD(3)),
    event_id String,
    created_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (model_name, model_version)
