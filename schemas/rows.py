"""Record → ClickHouse row conversion for every table of ``schemas.ddl``.

This module owns the mapping from a decoded record (a dict shaped like its Avro
schema, timestamps in int epoch milliseconds) to an insert row for clickhouse-connect::

    rows = [to_row("predictions", record) for record in records]
    client.insert(f"{database}.predictions", rows, column_names=COLUMNS["predictions"])

Timestamps become timezone-aware UTC ``datetime`` for the ``DateTime64(3, 'UTC')``
columns; optional maps become empty maps; prediction features are split into
``features_num`` / ``features_cat`` / ``features_missing``. :data:`TOPIC_TABLES` says
which tables each topic fills, and :func:`topic_rows` converts one batch of a topic into
the rows of each of them.

Examples
--------
>>> row = to_row("labels", {"prediction_id": "p-1", "model_name": "churn",
...                         "label": "yes", "timestamp": 1_700_000_000_123})
>>> dict(zip(COLUMNS["labels"], row))["timestamp"]
datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from schemas.topics import Topic

__all__ = [
    "COLUMNS",
    "SOURCE_SCHEMAS",
    "TOPIC_TABLES",
    "ms_to_datetime",
    "to_row",
    "to_rows",
    "topic_rows",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

Record = Mapping[str, Any]
Row = tuple[Any, ...]

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "predictions": (
        "prediction_id",
        "model_name",
        "model_version",
        "timestamp",
        "features_num",
        "features_cat",
        "features_missing",
        "prediction_num",
        "prediction_cat",
        "scores",
        "segment",
    ),
    "labels": (
        "prediction_id",
        "model_name",
        "model_version",
        "label_num",
        "label_cat",
        "timestamp",
    ),
    "drift_metrics": (
        "metric_id",
        "model_name",
        "model_version",
        "segment",
        "window_start",
        "window_end",
        "feature",
        "metric",
        "value",
        "pvalue",
        "threshold",
        "drift",
        "primary",
        "n_reference",
        "n_current",
        "missing_rate",
        "out_of_range_rate",
        "late_events",
    ),
    "performance_metrics": (
        "metric_id",
        "model_name",
        "model_version",
        "window_start",
        "window_end",
        "metric",
        "value",
        "n_labels",
    ),
    "drift_detections": (
        "detection_id",
        "model_name",
        "model_version",
        "kind",
        "detector",
        "feature",
        "detected_at",
        "value",
        "threshold",
        "severity",
        "details",
    ),
    "alerts": (
        "alert_id",
        "model_name",
        "model_version",
        "kind",
        "feature",
        "state",
        "severity",
        "opened_at",
        "updated_at",
        "revision",
        "value",
        "threshold",
        "occurrences",
        "message",
        "acknowledged_by",
        "resolved_by",
        "note",
    ),
    "alert_acks": ("alert_id", "action", "actor", "timestamp", "note"),
    "model_versions": (
        "model_name",
        "model_version",
        "event_type",
        "timestamp",
        "event_id",
        "request_id",
        "run_id",
        "message",
    ),
    "reference_profiles": ("model_name", "model_version", "profile", "event_id", "created_at"),
    "dead_letters": (
        "dead_letter_id",
        "source_topic",
        "raw",
        "reason",
        "error_type",
        "received_at",
        "partition",
        "offset",
    ),
}
"""Insert columns of each table, in the order of the tuples :func:`to_row` returns."""

SOURCE_SCHEMAS: Final[dict[str, str]] = {
    "predictions": "prediction",
    "labels": "label",
    "drift_metrics": "drift_metric",
    "performance_metrics": "performance_metric",
    "drift_detections": "drift_detection",
    "alerts": "alert",
    "alert_acks": "alert_ack",
    "model_versions": "model_event",
    "reference_profiles": "model_event",
    "dead_letters": "dead_letter",
}
"""Avro schema whose records fill each table."""

TOPIC_TABLES: Final[dict[Topic, tuple[str, ...]]] = {
    Topic.PREDICTIONS: ("predictions",),
    Topic.LABELS: ("labels",),
    Topic.DRIFT_METRICS: ("drift_metrics",),
    Topic.PERFORMANCE_METRICS: ("performance_metrics",),
    Topic.DRIFT_DETECTIONS: ("drift_detections",),
    Topic.ALERTS: ("alerts",),
    Topic.ALERT_ACKS: ("alert_acks",),
    Topic.MODEL_EVENTS: ("model_versions", "reference_profiles"),
    Topic.DEAD_LETTERS: ("dead_letters",),
}
"""Tables each stored topic fills; retrain requests are not stored (they live on the bus).

A model event fills ``model_versions`` always and ``reference_profiles`` only when it
carries a ``reference_profile`` (see :func:`topic_rows`).
"""


def ms_to_datetime(ms: int) -> datetime:
    """Epoch milliseconds → timezone-aware UTC ``datetime`` (exact, no float rounding).

    Parameters
    ----------
    ms
        Milliseconds since 1970-01-01T00:00:00Z.

    Returns
    -------
    datetime
        The same instant, ``tzinfo=UTC``.

    Raises
    ------
    ValueError
        ``ms`` is outside the range ``datetime`` can represent.
    """
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError as exc:
        raise ValueError(f"timestamp {ms} ms is out of range") from exc


_FLOAT_ONLY: Final = frozenset({float})


def _number_or_category(value: Any) -> tuple[float | None, str | None]:
    if isinstance(value, str):
        return None, value
    return float(value), None


def _features(features: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str], list[str]]:
    values = features.values()
    # The common case, checked at C speed: every value an exact, finite float (a NaN or an
    # inf makes the sum non-finite; an overflowing sum only sends us the long way).
    if set(map(type, values)) <= _FLOAT_ONLY and math.isfinite(sum(values)):
        return dict(features), {}, []
    numeric: dict[str, float] = {}
    categorical: dict[str, str] = {}
    missing: list[str] = []
    isfinite = math.isfinite
    for name, value in features.items():
        t = type(value)  # exact types first: this runs for every feature of every event
        if t is float:
            # The codec refuses NaN/inf; rows built elsewhere count them as missing,
            # the way the detectors do.
            if isfinite(value):
                numeric[name] = value
            else:
                missing.append(name)
        elif t is int:
            numeric[name] = float(value)
        elif t is str:
            categorical[name] = value
        elif value is None:
            missing.append(name)
        elif isinstance(value, bool):  # before int: bool is an int
            categorical[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            number = float(value)
            if isfinite(number):
                numeric[name] = number
            else:
                missing.append(name)
        else:
            categorical[name] = str(value)
    return numeric, categorical, missing


def _prediction(r: Record) -> Row:
    numeric, categorical, missing = _features(r["features"])
    prediction_num, prediction_cat = _number_or_category(r["prediction"])
    return (
        r["prediction_id"],
        r["model_name"],
        r["model_version"],
        ms_to_datetime(r["timestamp"]),
        numeric,
        categorical,
        missing,
        prediction_num,
        prediction_cat,
        dict(r.get("scores") or {}),
        dict(r.get("segment") or {}),
    )


def _label(r: Record) -> Row:
    label_num, label_cat = _number_or_category(r["label"])
    return (
        r["prediction_id"],
        r["model_name"],
        r.get("model_version"),
        label_num,
        label_cat,
        ms_to_datetime(r["timestamp"]),
    )


def _drift_metric(r: Record) -> Row:
    return (
        r["metric_id"],
        r["model_name"],
        r["model_version"],
        r.get("segment") or "",
        ms_to_datetime(r["window_start"]),
        ms_to_datetime(r["window_end"]),
        r["feature"],
        r["metric"],
        r["value"],
        r.get("pvalue"),
        r["threshold"],
        r["drift"],
        r.get("primary", False),
        r["n_reference"],
        r["n_current"],
        r.get("missing_rate", 0.0),
        r.get("out_of_range_rate", 0.0),
        r.get("late_events", 0),
    )


def _performance_metric(r: Record) -> Row:
    return (
        r["metric_id"],
        r["model_name"],
        r["model_version"],
        ms_to_datetime(r["window_start"]),
        ms_to_datetime(r["window_end"]),
        r["metric"],
        r["value"],
        r["n_labels"],
    )


def _drift_detection(r: Record) -> Row:
    return (
        r["detection_id"],
        r["model_name"],
        r["model_version"],
        r["kind"],
        r["detector"],
        r.get("feature"),
        ms_to_datetime(r["detected_at"]),
        r["value"],
        r.get("threshold"),
        r["severity"],
        dict(r.get("details") or {}),
    )


def _alert(r: Record) -> Row:
    if r["revision"] < 0:
        raise ValueError(f"alert revision must be >= 0, got {r['revision']}")
    return (
        r["alert_id"],
        r["model_name"],
        r["model_version"],
        r["kind"],
        r.get("feature"),
        r["state"],
        r["severity"],
        ms_to_datetime(r["opened_at"]),
        ms_to_datetime(r["updated_at"]),
        r["revision"],
        r["value"],
        r.get("threshold"),
        r["occurrences"],
        r["message"],
        r.get("acknowledged_by"),
        r.get("resolved_by"),
        r.get("note"),
    )


def _alert_ack(r: Record) -> Row:
    return (r["alert_id"], r["action"], r["actor"], ms_to_datetime(r["timestamp"]), r.get("note"))


def _model_version(r: Record) -> Row:
    return (
        r["model_name"],
        r["model_version"],
        r["event_type"],
        ms_to_datetime(r["timestamp"]),
        r["event_id"],
        r.get("request_id"),
        r.get("run_id"),
        r.get("message"),
    )


def _reference_profile(r: Record) -> Row:
    profile = r.get("reference_profile")
    if profile is None:
        raise ValueError(
            f"model event {r['event_id']!r} carries no reference_profile; "
            "only such events belong in reference_profiles"
        )
    return (
        r["model_name"],
        r["model_version"],
        profile,
        r["event_id"],
        ms_to_datetime(r["timestamp"]),
    )


def _dead_letter(r: Record) -> Row:
    return (
        r["dead_letter_id"],
        r["source_topic"],
        bytes(r["raw"]),
        r["reason"],
        r["error_type"],
        ms_to_datetime(r["received_at"]),
        r.get("partition"),
        r.get("offset"),
    )


_CONVERTERS: Final[dict[str, Callable[[Record], Row]]] = {
    "predictions": _prediction,
    "labels": _label,
    "drift_metrics": _drift_metric,
    "performance_metrics": _performance_metric,
    "drift_detections": _drift_detection,
    "alerts": _alert,
    "alert_acks": _alert_ack,
    "model_versions": _model_version,
    "reference_profiles": _reference_profile,
    "dead_letters": _dead_letter,
}


def to_row(table: str, record: Record) -> Row:
    """Convert one record to an insert row of ``table``.

    Parameters
    ----------
    table
        A table of ``schemas.ddl.TABLES``.
    record
        Record of the table's source schema (:data:`SOURCE_SCHEMAS`), e.g. from
        ``AvroCodec.decode``; optional fields may be absent.

    Returns
    -------
    tuple
        Values in the order of ``COLUMNS[table]``.

    Raises
    ------
    ValueError
        Unknown table, a timestamp out of range, a negative alert revision, or a model
        event without a reference profile for ``reference_profiles``.
    KeyError
        A required field is missing from the record.
    """
    converter = _CONVERTERS.get(table)
    if converter is None:
        raise ValueError(f"unknown table {table!r} (known: {', '.join(_CONVERTERS)})")
    return converter(record)


def to_rows(table: str, records: Iterable[Record]) -> list[Row]:
    """Convert many records of one table; see :func:`to_row`.

    Parameters
    ----------
    table
        A table of ``schemas.ddl.TABLES``.
    records
        Records of the table's source schema.

    Returns
    -------
    list[tuple]
        One row per record, ready for ``client.insert(..., column_names=COLUMNS[table])``.
    """
    return [to_row(table, record) for record in records]


def topic_rows(topic: Topic, records: Iterable[Record]) -> dict[str, list[Row]]:
    """Convert one batch of a topic's records into the rows of every table it fills.

    Parameters
    ----------
    topic
        A topic of :data:`TOPIC_TABLES`.
    records
        Records of the topic's schema.

    Returns
    -------
    dict[str, list[tuple]]
        Table name → rows (``COLUMNS[table]`` order), for each table of
        ``TOPIC_TABLES[topic]`` that gets at least one row.

    Raises
    ------
    ValueError
        The topic is not stored, or a record does not convert (a required field is
        missing, see also :func:`to_row`); the message names the record's position.

    Examples
    --------
    >>> event = {"event_id": "e-1", "model_name": "churn", "model_version": "4",
    ...          "event_type": "registered", "timestamp": 0}
    >>> sorted(topic_rows(Topic.MODEL_EVENTS, [event]))
    ['model_versions']
    >>> sorted(topic_rows(Topic.MODEL_EVENTS, [{**event, "reference_profile": "{}"}]))
    ['model_versions', 'reference_profiles']
    """
    tables = TOPIC_TABLES.get(topic)
    if tables is None:
        raise ValueError(f"topic {str(topic)!r} is not stored in ClickHouse")
    batch = list(records)
    out: dict[str, list[Row]] = {}
    for table in tables:
        rows: list[Row] = []
        for index, record in enumerate(batch):
            if table == "reference_profiles" and record.get("reference_profile") is None:
                continue
            try:
                rows.append(to_row(table, record))
            except KeyError as exc:
                raise ValueError(f"record {index} of {topic}: missing field {exc}") from exc
            except (TypeError, ValueError) as exc:
                raise ValueError(f"record {index} of {topic}: {exc}") from exc
        if rows:
            out[table] = rows
    return out
