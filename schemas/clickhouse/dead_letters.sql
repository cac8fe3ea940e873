-- Inputs that failed to decode or validate, with the raw bytes and the reason.
-- Kept ${raw_ttl_days} days after it was stored (stored_at, not received_at: a dead letter
-- made by a processor carries its event's time, which may be old — it must not expire on arrival). Not partitioned: a replay rejected in another
-- month must still meet (and replace) its first copy, and the table stays small.
CREATE TABLE IF NOT EXISTS ${database}.dead_letters
(
    dead_letter_id String,
    source_topic LowCardinality(String),
    raw String,
    reason String,
    error_type LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    `partition` Nullable(Int32),
    `offset` Nullable(Int64),
    stored_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (source_topic, dead_letter_id)
TTL toDateTime(stored_at) + INTERVAL ${raw_ttl_days} DAY
