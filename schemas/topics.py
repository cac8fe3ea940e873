"""Every topic (and the Avro schema it carries) is declared here, once.

The embedded bus and the Kafka runtime use the same names; ClickHouse tables are
named after the topics' records (see ``schemas/clickhouse``).
"""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    """Topic names; the value is the name on the bus and on Kafka."""

    PREDICTIONS = "driftline.predictions"
    LABELS = "driftline.labels"
    DRIFT_METRICS = "driftline.drift-metrics"
    PERFORMANCE_METRICS = "driftline.performance-metrics"
    DRIFT_DETECTIONS = "driftline.drift-detections"
    ALERTS = "driftline.alerts"
    ALERT_ACKS = "driftline.alert-acks"
    RETRAIN_REQUESTS = "driftline.retrain-requests"
    MODEL_EVENTS = "driftline.model-events"
    DEAD_LETTERS = "driftline.dead-letters"

    @property
    def schema_name(self) -> str:
        """Name of the ``schemas/avro/<name>.avsc`` file this topic carries."""
        return TOPIC_SCHEMAS[self]


TOPIC_SCHEMAS: dict[Topic, str] = {
    Topic.PREDICTIONS: "prediction",
    Topic.LABELS: "label",
    Topic.DRIFT_METRICS: "drift_metric",
    Topic.PERFORMANCE_METRICS: "performance_metric",
    Topic.DRIFT_DETECTIONS: "drift_detection",
    Topic.ALERTS: "alert",
    Topic.ALERT_ACKS: "alert_ack",
    Topic.RETRAIN_REQUESTS: "retrain_request",
    Topic.MODEL_EVENTS: "model_event",
    Topic.DEAD_LETTERS: "dead_letter",
}

# Topics that come from outside driftline (publishers, responders, the training worker), in
# the order the runtimes merge them (re-exported by streams.topology).
INPUT_TOPICS: tuple[Topic, ...] = (
    Topic.PREDICTIONS,
    Topic.LABELS,
    Topic.ALERT_ACKS,
    Topic.MODEL_EVENTS,
)

# Pseudo-feature names used in drift metrics.
PREDICTION_FEATURE = "__prediction__"
DATASET_FEATURE = "__dataset__"
