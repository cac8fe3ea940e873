"""The processor protocol and the helpers every processor shares.

This module owns the contract between the runtimes (embedded bus, Kafka) and the
domain processors: ``Emit`` (an output topic and record), the ``Processor``
protocol, deterministic ids (``stable_id``), event time of a record
(``event_time``), field validation (``check_fields``) and dead letters for
records a processor rejects (``invalid``). Nothing here touches Kafka, HTTP, a
clock or a database.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from schemas.codec import DEAD_LETTER_RAW_LIMIT
from schemas.topics import Topic

Emit = tuple[Topic, dict[str, Any]]
"""An output topic and the record to publish on it."""

FieldKind = Literal["str", "int", "number", "bool"]
"""What ``check_fields`` accepts: ``int`` excludes bool; ``number`` is a finite int or float."""

INVALID_RECORD = "InvalidRecord"
"""``error_type`` of the dead letters written by ``invalid``."""

_REASON_LIMIT = 4096  # as schemas.codec.dead_letter_record: a dead letter must stay encodable

EVENT_TIME_FIELDS: dict[Topic, str] = {
    Topic.PREDICTIONS: "timestamp",
    Topic.LABELS: "timestamp",
    Topic.DRIFT_METRICS: "window_end",
    Topic.PERFORMANCE_METRICS: "window_end",
    Topic.DRIFT_DETECTIONS: "detected_at",
    Topic.ALERTS: "updated_at",
    Topic.ALERT_ACKS: "timestamp",
    Topic.RETRAIN_REQUESTS: "requested_at",
    Topic.MODEL_EVENTS: "timestamp",
    Topic.DEAD_LETTERS: "received_at",
}
"""The field holding each topic's event time (epoch ms)."""


class Processor(Protocol):
    """Pure, synchronous, deterministic stream processor.

    Both runtimes hand decoded records to ``process`` and publish what it returns.
    Time comes only from the records' event timestamps, so the same input always
    yields the same output, and a processor restored from ``snapshot()`` continues
    exactly as the original would have.
    """

    def process(self, topic: Topic, records: list[dict[str, Any]]) -> list[Emit]:
        """Consume a batch of records from ``topic``; return the records to emit."""
        ...

    def flush(self) -> list[Emit]:
        """Close everything still open (end of a finite stream)."""
        ...

    def snapshot(self) -> bytes:
        """Serialise the processor's state."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the processor's state with one taken by ``snapshot``."""
        ...


def _id_part(part: object) -> bytes:
    # A type tag keeps 1, "1" and None apart; the length prefix added by the caller
    # keeps ("a|b",) apart from ("a", "b").
    if part is None:
        return b"n"
    if isinstance(part, bytes | bytearray | memoryview):
        return b"b" + bytes(part)
    if isinstance(part, str):
        return b"s" + str(part).encode("utf-8")
    if isinstance(part, bool):
        return b"?1" if part else b"?0"
    if isinstance(part, numbers.Integral):
        return b"i" + str(int(part)).encode()
    if isinstance(part, numbers.Real):
        return b"f" + repr(float(part)).encode()
    if isinstance(part, Mapping | list | tuple):
        return b"j" + canonical_json(part)
    return b"o" + str(part).encode("utf-8")


def stable_id(*parts: object) -> str:
    """Deterministic id of a tuple of values: blake2b, 32 hex characters.

    Each part is tagged with its type and prefixed with its length before hashing,
    so no choice of values can make two different tuples collide by concatenation
    (``("a|b",)`` vs ``("a", "b")``, ``1`` vs ``"1"``, ``None`` vs ``""``).

    Parameters
    ----------
    *parts
        Strings, integers, floats, booleans, bytes, ``None`` (lists and dicts are
        hashed as canonical JSON).

    Returns
    -------
    str
        32 lowercase hex characters.

    Examples
    --------
    >>> stable_id("model", "1", 1_700_000_000_000) == stable_id("model", "1", 1_700_000_000_000)
    True
    >>> stable_id("a|b") != stable_id("a", "b")
    True
    >>> len(stable_id())
    32
    """
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        encoded = _id_part(part)
        h.update(str(len(encoded)).encode())
        h.update(b":")
        h.update(encoded)
    return h.hexdigest()


def _json_default(obj: object) -> object:
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).hex()
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    return repr(obj)


def canonical_json(obj: object) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace; falls back to ``repr`` if unsortable.

    Bytes are written as hex, numpy scalars as numbers, anything else as its ``repr``.
    """
    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
        )
    except (TypeError, ValueError):
        # Mixed key types cannot be sorted; a repr is still deterministic.
        text = repr(obj)
    return text.encode("utf-8", "backslashreplace")  # (a lone surrogate stays visible)


def event_time(topic: Topic, record: object) -> int | None:
    """Event time (epoch ms) of ``record`` read from its topic's time field, or None."""
    field = EVENT_TIME_FIELDS.get(topic)
    if field is None or not isinstance(record, Mapping):
        return None
    value = record.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def invalid(topic: Topic, record: object, reason: str) -> Emit:
    """Dead letter for a record a processor rejects.

    Parameters
    ----------
    topic
        Topic the record came from (``source_topic``).
    record
        The rejected record; ``raw`` is its canonical JSON.
    reason
        Why it was rejected, naming the field where known.

    Returns
    -------
    Emit
        ``(Topic.DEAD_LETTERS, record)`` shaped like ``schemas/avro/dead_letter.avsc``.
        ``dead_letter_id`` is ``stable_id(topic, raw)``. ``received_at`` is the
        record's event time (0 if it has none), never the wall clock, so a replay
        writes the same dead letter with the same id. Like the codec's dead letters,
        ``raw`` keeps at most ``DEAD_LETTER_RAW_LIMIT`` bytes (the id covers all of it).
    """
    raw = canonical_json(record)
    received_at = event_time(topic, record)
    dead_letter_id = stable_id(str(topic), raw)
    if len(reason) > _REASON_LIMIT:
        reason = reason[: _REASON_LIMIT - 1] + "…"
    if len(raw) > DEAD_LETTER_RAW_LIMIT:
        reason += f" (raw cut to its first {DEAD_LETTER_RAW_LIMIT} of {len(raw)} bytes)"
        raw = raw[:DEAD_LETTER_RAW_LIMIT]
    return (
        Topic.DEAD_LETTERS,
        {
            "dead_letter_id": dead_letter_id,
            "source_topic": str(topic),
            "raw": raw,
            "reason": reason,
            "error_type": INVALID_RECORD,
            "received_at": received_at if received_at is not None else 0,
            "partition": None,
            "offset": None,
        },
    )


_KIND_NAMES: dict[str, str] = {
    "str": "a string",
    "int": "an integer",
    "number": "a finite number",
    "bool": "a boolean",
}


def dump_state(fmt: str, version: int, state: Mapping[str, Any]) -> bytes:
    """A processor snapshot as compact JSON, tagged with its format and version."""
    return json.dumps({"format": fmt, "version": version, **state}, separators=(",", ":")).encode()


def load_state(data: bytes, fmt: str, version: int, kind: str) -> dict[str, Any]:
    """The state of a ``dump_state`` snapshot; ``ValueError`` if it is another kind or version."""
    state = json.loads(data)
    if state.get("format") != fmt or state.get("version") != version:
        raise ValueError(
            f"not {kind} snapshot of version {version}: "
            f"format={state.get('format')!r}, version={state.get('version')!r}"
        )
    return dict(state)


def _fits(value: object, kind: FieldKind) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, numbers.Integral)
    return isinstance(value, numbers.Real) and math.isfinite(float(value))


def check_fields(
    record: object,
    required: Mapping[str, FieldKind],
    optional: Mapping[str, FieldKind] | None = None,
) -> str | None:
    """Why ``record`` does not fit, or None when it does.

    Parameters
    ----------
    record
        The record to check (anything: a non-dict is rejected too).
    required
        Fields that must be present, non-null, and of the given kind. A required
        ``str`` must also be non-empty.
    optional
        Fields that may be absent or None but otherwise must be of the given kind.

    Examples
    --------
    >>> check_fields({"a": 1}, {"a": "int"}) is None
    True
    >>> check_fields({"a": True}, {"a": "int"})
    "field 'a' must be an integer, got bool"
    >>> check_fields({}, {"a": "str"})
    "field 'a' is missing"
    """
    if not isinstance(record, Mapping):
        return f"record must be a mapping, got {type(record).__name__}"
    for name, kind in required.items():
        value = record.get(name)
        if value is None:
            return f"field {name!r} is missing"
        if not _fits(value, kind):
            return f"field {name!r} must be {_KIND_NAMES[kind]}, got {_describe(value)}"
        if kind == "str" and not value:
            return f"field {name!r} must not be empty"
    for name, kind in (optional or {}).items():
        value = record.get(name)
        if value is not None and not _fits(value, kind):
            return f"field {name!r} must be {_KIND_NAMES[kind]} or null, got {_describe(value)}"
    return None


def _describe(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return type(value).__name__
