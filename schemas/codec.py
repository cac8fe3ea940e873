"""The Avro codec of the event contract: every record on every topic goes through here.

This module owns the wire format and the checks around it:

- loading ``schemas/avro/*.avsc`` (the current schema of each topic) and
  ``schemas/avro/history/<name>.<n>.avsc`` (older versions that stay readable);
- CRC-64-AVRO fingerprints of the schemas' Parsing Canonical Form;
- Avro single-object encoding (``C3 01`` + 8-byte little-endian fingerprint + body)
  on output, and on input also Confluent Schema Registry framing (``00`` + 4-byte
  big-endian schema id + body) when the codec knows the registry's ids;
- validation on both sides, with one exception class per direction
  (:class:`EncodeError`, :class:`DecodeError`) whose ``reason`` names the cause and,
  where there is one, the field;
- the dead-letter record that carries a rejected input and its reason.

The ``prediction`` and ``label`` schemas, by far the most frequent, also have a native
path (``schemas.native``, the Rust extension ``driftline_native``) that encodes and decodes
their common shape byte for byte as fastavro does; it answers None for anything else, and
the Python path below then runs, so results and error messages do not depend on it.
``AvroCodec(native=False)`` turns it off; :data:`NATIVE` says whether it is installed.

Timestamps (``timestamp-millis``) are ``int`` epoch milliseconds in memory: the codec
reads and writes with the logical types stripped, which leaves the binary encoding
and the fingerprints unchanged (both ignore logical types).

Examples
--------
>>> codec = AvroCodec()
>>> record = {
...     "prediction_id": "p-1",
...     "model_name": "churn",
...     "model_version": "3",
...     "timestamp": 1_700_000_000_000,
...     "features": {"age": 42, "city": "Lyon", "income": None},
...     "prediction": 0.83,
... }
>>> data = codec.encode("prediction", record)
>>> data[:2].hex()
'c301'
>>> name, decoded = codec.decode(data)
>>> name, decoded["timestamp"], decoded["features"]["age"], decoded["segment"]
('prediction', 1700000000000, 42, None)
>>> codec.decode(data[:-1])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
schemas.codec.DecodeError: truncated body: ...
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import reprlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias, cast

import fastavro
import fastavro.validation
from fastavro.read import SchemaResolutionError
from fastavro.schema import to_parsing_canonical_form

from schemas.columns import PredictionColumns
from schemas.native import NATIVE, driftline_native

__all__ = [
    "CRC64_AVRO_EMPTY",
    "DEAD_LETTER_RAW_LIMIT",
    "DEFAULT_MAX_BYTES",
    "FINITE_FIELDS",
    "NATIVE",
    "SCHEMA_DIR",
    "SINGLE_OBJECT_MAGIC",
    "AvroCodec",
    "DecodeError",
    "EncodeError",
    "Payload",
    "crc64_avro",
    "dead_letter_record",
    "schema_fingerprint",
]

Payload: TypeAlias = bytes | bytearray | memoryview
"""Input the decoder accepts (Kafka and HTTP frameworks hand over any of these)."""

SCHEMA_DIR: Final = Path(__file__).parent / "avro"
"""Directory of the current schemas; ``history/`` below it holds the older versions."""

SINGLE_OBJECT_MAGIC: Final = b"\xc3\x01"
CONFLUENT_MAGIC: Final = 0x00
_SINGLE_OBJECT_HEADER: Final = 10  # magic (2) + fingerprint (8)
_CONFLUENT_HEADER: Final = 5  # magic (1) + schema id (4)

DEFAULT_MAX_BYTES: Final = 1 << 20
# model_event carries a reference profile; everything else is an event of a few KB.
DEFAULT_SCHEMA_LIMITS: Final[Mapping[str, int]] = {"model_event": 32 << 20}
"""Largest payload (header included) the codec encodes or decodes: 1 MiB, Kafka's default."""

DEAD_LETTER_RAW_LIMIT: Final = 512 * 1024
"""Raw bytes kept in a dead letter; larger inputs are cut so the dead letter still encodes."""

_REASON_LIMIT: Final = 4096

CRC64_AVRO_EMPTY: Final = 0xC15D213AA4D7A795
"""Initial value of CRC-64-AVRO (the Avro specification's ``EMPTY``)."""

FINITE_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "prediction": ("features", "prediction"),
    "label": ("label",),
}
"""Fields (or maps of values) of model inputs and outputs where NaN and ±inf are refused.

Missing values are ``null``; a NaN that reached the wire would be counted as data
by some consumers and as missing by others.
"""


def _crc64_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE: Final = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO of ``data``, as the Avro specification defines it.

    Parameters
    ----------
    data
        Bytes to fingerprint, normally the UTF-8 Parsing Canonical Form of a schema.

    Returns
    -------
    int
        Unsigned 64-bit fingerprint.

    Examples
    --------
    >>> hex(crc64_avro(b'"int"'))
    '0x7275d51a3f395c8f'
    """
    fp = CRC64_AVRO_EMPTY
    table = _CRC64_TABLE
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def schema_fingerprint(schema: Any) -> bytes:
    """Eight-byte little-endian CRC-64-AVRO fingerprint of a schema, as written on the wire.

    Parameters
    ----------
    schema
        Schema as loaded from JSON (a ``dict``, ``list`` or type-name ``str``).

    Returns
    -------
    bytes
        The fingerprint bytes that follow ``C3 01`` in single-object encoding.

    Examples
    --------
    >>> schema_fingerprint("int").hex()
    '8f5c393f1ad57572'
    """
    canonical = to_parsing_canonical_form(schema)
    return crc64_avro(canonical.encode("utf-8")).to_bytes(8, "little")


class DecodeError(ValueError):
    """Input bytes that are not a valid record of a known schema.

    ``reason`` (and ``str(error)``) says what is wrong: ``"empty input"``,
    ``"truncated: ..."``, ``"bad magic ..."``, ``"unknown schema fingerprint ..."``,
    ``"truncated body: ..."``, ``"invalid body: ..."``, ``"trailing bytes: ..."``,
    ``"schema violation: ..."``, ``"field 'features.x': NaN not allowed"``,
    ``"payload of N bytes exceeds limit M"``, ...

    Parameters
    ----------
    reason
        Human-readable cause, naming the field where known.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EncodeError(ValueError):
    """A record that does not fit its schema; nothing was encoded.

    Parameters
    ----------
    reason
        Human-readable cause, naming the field where known.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# fastavro's stub for the compiled validator lacks ``disable_tuple_notation``.
_fastavro_validate = cast(Callable[..., bool], fastavro.validation.validate)


def _valid(record: Any, parsed: Any) -> bool:
    return _fastavro_validate(record, parsed, raise_errors=False, disable_tuple_notation=True)


@dataclass(frozen=True, slots=True)
class _SchemaVersion:
    """One known writer schema and how to read it into the current shape."""

    name: str
    version: str  # "current" or the history number
    fingerprint: bytes
    writer: Any  # parsed, logical types stripped
    reader: Any  # parsed current schema when it differs from ``writer``, else None
    current: Any  # parsed current schema (for validation after decoding)
    current_json: Any  # current schema as JSON, logical types stripped (for messages)
    field_names: frozenset[str]
    finite_fields: tuple[str, ...]
    header: bytes
    range_checked: bool  # the current schema has "int" fields, which fastavro reads unchecked


@dataclass(frozen=True, slots=True)
class _Native:
    """The native encoder and decoders of one current schema (see ``schemas.native``)."""

    encode: Callable[[bytes, Any], bytes | None]
    decode: Callable[[bytes, int], dict[str, Any] | None]
    decode_many: Callable[[list[bytes], int], list[dict[str, Any] | None]]
    encode_many: Callable[[bytes, list[Any]], list[bytes | None]]
    decode_all: Callable[[list[Any], bytes, int], list[dict[str, Any]] | None]


# Schema name → (fingerprint, encode, decode, batch decode, batch encode, whole-batch
# decode) attributes of driftline_native, and the optional fields whose default (null)
# the native encoder writes when absent.
_NATIVE_API: Final[dict[str, tuple[tuple[str, str, str, str, str, str], tuple[str, ...]]]] = {
    "prediction": (
        (
            "PREDICTION_FINGERPRINT",
            "encode_prediction",
            "decode_prediction",
            "decode_predictions",
            "encode_predictions",
            "decode_predictions_all",
        ),
        ("scores", "segment"),
    ),
    "label": (
        (
            "LABEL_FINGERPRINT",
            "encode_label",
            "decode_label",
            "decode_labels",
            "encode_labels",
            "decode_labels_all",
        ),
        ("model_version",),
    ),
}


def _native_codecs(current: Mapping[str, _SchemaVersion]) -> dict[str, _Native]:
    """Native codecs of the current schemas the installed extension implements exactly.

    A schema qualifies only when its fingerprint is the one the extension was built for
    and its optional fields default to null (a ``schema_dir`` of other schemas, or a
    newer schema than the extension, stays on the Python path).
    """
    module = driftline_native
    if module is None:
        return {}
    out: dict[str, _Native] = {}
    for name, ((fingerprint, *functions), optional) in _NATIVE_API.items():
        entry = current.get(name)
        if entry is None or entry.fingerprint != getattr(module, fingerprint, None):
            continue
        defaults = {f["name"]: f.get("default", ...) for f in entry.current_json["fields"]}
        if any(defaults.get(field, ...) is not None for field in optional):
            continue
        out[name] = _Native(*(getattr(module, function) for function in functions))
    return out


class AvroCodec:
    """Encode and decode the event records of every topic.

    Parameters
    ----------
    max_bytes
        Largest payload, header included, that is encoded or decoded.
    schema_limits
        Per-schema exceptions to ``max_bytes``. By default ``model_event`` may be up
        to 32 MiB, since it carries a version's reference profile (bin edges plus a
        bounded sample per feature: about 100 KB a feature).
    registry_ids
        Confluent Schema Registry ids and the schema name each one stands for. Input in
        Confluent framing (``00`` + 4-byte id) is accepted only for these ids and is read
        with the current schema of that name. Without it such input is a
        :class:`DecodeError`.
    schema_dir
        Directory of ``<name>.avsc`` files, with older versions in
        ``history/<name>.<n>.avsc``; defaults to the package's ``schemas/avro``.
    native
        Use the native encoder/decoder (``schemas.native``) for the schemas it implements,
        when it is installed. False runs everything in Python (same results, slower).

    Raises
    ------
    ValueError
        A history file of an unknown schema, a badly named history file, two schemas
        with the same fingerprint, or a registry id mapped to an unknown schema.
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        schema_limits: Mapping[str, int] | None = None,
        registry_ids: Mapping[int, str] | None = None,
        schema_dir: Path | None = None,
        native: bool = True,
    ) -> None:
        if max_bytes < _SINGLE_OBJECT_HEADER:
            raise ValueError(f"max_bytes must be at least {_SINGLE_OBJECT_HEADER}")
        self._max_bytes = max_bytes
        self._limits = {**DEFAULT_SCHEMA_LIMITS, **(schema_limits or {})}
        self._hard_max = max([max_bytes, *self._limits.values()])
        self._current, self._by_fingerprint = _load_schemas(schema_dir or SCHEMA_DIR)
        registry = dict(registry_ids or {})
        unknown = sorted(n for n in registry.values() if n not in self._current)
        if unknown:
            raise ValueError(f"registry_ids name unknown schemas: {', '.join(unknown)}")
        self._registry_ids = registry
        self._native = _native_codecs(self._current) if native else {}
        # Single-object header → (schema name, size limit, batch decoder), for decode_many.
        self._native_headers = {
            self._current[name].header: (name, self.limit(name), codec.decode_many)
            for name, codec in self._native.items()
        }

    @property
    def native_schemas(self) -> tuple[str, ...]:
        """Schemas encoded and decoded on the native path (empty without the extension)."""
        return tuple(sorted(self._native))

    @property
    def schema_names(self) -> tuple[str, ...]:
        """Names of the current schemas (``schemas/avro/<name>.avsc``), sorted."""
        return tuple(sorted(self._current))

    def limit(self, schema_name: str) -> int:
        """Largest payload of this schema, header included."""
        return self._limits.get(schema_name, self._max_bytes)

    @property
    def max_bytes(self) -> int:
        """Largest payload, header included, that is encoded or decoded."""
        return self._max_bytes

    def fingerprint(self, schema_name: str) -> bytes:
        """Wire fingerprint (8 bytes, little-endian CRC-64-AVRO) of a current schema.

        Parameters
        ----------
        schema_name
            Name of a current schema.

        Returns
        -------
        bytes
            The bytes that follow ``C3 01`` in records encoded with this schema.
        """
        return self._entry(schema_name, ValueError).fingerprint

    def encode(self, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """Validate ``record`` and encode it in Avro single-object encoding.

        Parameters
        ----------
        schema_name
            Name of the current schema, e.g. ``"prediction"`` (see ``Topic.schema_name``).
        record
            Record shaped like the schema; optional fields may be absent; timestamps are
            ``int`` epoch milliseconds.

        Returns
        -------
        bytes
            ``C3 01`` + fingerprint + Avro binary body.

        Raises
        ------
        EncodeError
            Unknown schema, unknown or missing field, wrong type, NaN/inf in a model
            input or output, or an encoded size above ``max_bytes``.
        """
        entry = self._entry(schema_name, EncodeError)
        native = self._native.get(schema_name)
        if native is not None:
            # None: not the strict common shape; the checks below explain or encode it.
            encoded = native.encode(entry.header, record)
            if encoded is not None:
                limit = self.limit(schema_name)
                if len(encoded) > limit:
                    raise EncodeError(f"payload of {len(encoded)} bytes exceeds limit {limit}")
                return encoded
        if not isinstance(record, Mapping):
            raise EncodeError(f"record must be a mapping, got {type(record).__name__}")
        unknown = [key for key in record if key not in entry.field_names]
        if unknown:
            names = ", ".join(repr(key) for key in unknown)
            raise EncodeError(f"unknown field {names} for schema '{schema_name}'")
        quick = _QUICK_CHECKS.get(schema_name)
        if quick is None or not quick(record):
            # The general check: fastavro's validator, then a message naming the field.
            try:
                valid = _valid(record, entry.writer)
                reason = (
                    _explain_invalid(record, entry.current_json, schema_name)
                    if not valid
                    else _non_finite(record, entry.finite_fields)
                )
            except Exception as exc:  # exotic values (numpy arrays, ...) can break comparisons
                raise EncodeError(f"cannot validate '{schema_name}' record: {exc!r}") from exc
            if reason is not None:
                raise EncodeError(reason)
        buffer = io.BytesIO()
        buffer.write(entry.header)
        try:
            fastavro.schemaless_writer(buffer, entry.writer, record, disable_tuple_notation=True)
        except Exception as exc:  # the validator passed; keep the one error type anyway
            raise EncodeError(f"cannot encode '{schema_name}': {exc}") from exc
        data = buffer.getvalue()
        limit = self.limit(schema_name)
        if len(data) > limit:
            raise EncodeError(f"payload of {len(data)} bytes exceeds limit {limit}")
        return data

    def encode_all(self, schema_name: str, records: list[dict[str, Any]]) -> list[bytes] | None:
        """Every record's encoding when the native extension encodes all of them within the
        size limit (the common batch, without a Python step per record); else None, and
        :meth:`encode_many` says which records fail and why.

        Raises
        ------
        EncodeError
            Unknown schema.
        """
        entry = self._entry(schema_name, EncodeError)
        native = self._native.get(schema_name)
        if native is None or type(records) is not list:
            return None
        encoded: list[Any] = native.encode_many(entry.header, records)  # bytes | None each
        return encoded if _all_within(encoded, self.limit(schema_name)) else None

    def encode_prediction_rows(
        self,
        ids: list[str],
        model_name: str,
        model_version: str,
        timestamps: Any,
        names: list[str],
        values: Any,
        predictions: list[Any],
    ) -> list[bytes] | None:
        """Predictions given as columns, encoded natively: per row the bytes
        ``encode("prediction", ...)`` gives the record ``{prediction_id: ids[i], model_name,
        model_version, timestamp: timestamps[i], features: {names[j]: values[i, j]},
        prediction: predictions[i]}`` (no scores or segment), where a NaN or ±inf value is
        a null (missing) feature.

        ``timestamps`` is a column of epoch milliseconds and ``values`` an
        ``(len(ids), len(names))`` array of numbers (both anything numpy converts to int64
        and float64). None when the native extension is not installed or a column is
        outside that shape (lengths, an id, name or prediction of another type, a payload
        over the size limit): the caller then encodes the records one by one.
        """
        entry = self._entry("prediction", EncodeError)
        if "prediction" not in self._native or driftline_native is None:
            return None
        import numpy as np

        stamps = np.ascontiguousarray(timestamps, dtype="<i8")
        matrix = np.ascontiguousarray(values, dtype="<f8")
        if stamps.shape != (len(ids),) or matrix.shape != (len(ids), len(names)):
            return None
        if not (type(ids) is list and type(names) is list and type(predictions) is list):
            return None
        encoded: list[bytes] | None = driftline_native.encode_prediction_rows(
            entry.header,
            ids,
            model_name,
            model_version,
            stamps.tobytes(),
            names,
            matrix.tobytes(),
            predictions,
        )
        if encoded is None or not _all_within(encoded, self.limit("prediction")):
            return None
        return encoded

    def encode_many(
        self, schema_name: str, records: Iterable[Mapping[str, Any]]
    ) -> list[bytes | EncodeError]:
        """Encode a batch; each failure is returned in place instead of raised.

        The same bytes and errors as :meth:`encode` per record, in one native call for the
        schemas the extension implements (the rest, and every record outside its common
        shape, take :meth:`encode`).

        Parameters
        ----------
        schema_name
            Name of a current schema.
        records
            Records shaped like the schema.

        Returns
        -------
        list
            For each record, its encoded bytes or the :class:`EncodeError`.

        Raises
        ------
        EncodeError
            Unknown schema (nothing of the batch is encoded).
        """
        entry = self._entry(schema_name, EncodeError)
        batch = records if type(records) is list else list(records)
        native = self._native.get(schema_name)
        encoded: list[Any] = (  # bytes | None each
            native.encode_many(entry.header, batch) if native is not None else [None] * len(batch)
        )
        limit = self.limit(schema_name)
        if _all_within(encoded, limit):
            return encoded  # (all encoded natively, within the limit)
        out: list[bytes | EncodeError] = []
        append = out.append
        for record, data in zip(batch, encoded, strict=True):
            if data is None or len(data) > limit:
                try:
                    data = self.encode(schema_name, record)
                except EncodeError as exc:
                    append(exc)
                    continue
            append(data)
        return out

    def decode(self, data: Payload) -> tuple[str, dict[str, Any]]:
        """Decode one payload of any known schema.

        Parameters
        ----------
        data
            Single-object encoded bytes (or Confluent-framed bytes when ``registry_ids``
            were given).

        Returns
        -------
        tuple[str, dict]
            Schema name and record in the current schema's shape (fields added since
            the writer's version carry their defaults).

        Raises
        ------
        DecodeError
            For every kind of bad input; no other exception escapes.
        """
        return self._decode(data, None)

    def decode_as(self, schema_name: str, data: Payload) -> dict[str, Any]:
        """Decode one payload that must be a record of ``schema_name``.

        Parameters
        ----------
        schema_name
            Expected current schema name.
        data
            Encoded bytes.

        Returns
        -------
        dict
            The record.

        Raises
        ------
        DecodeError
            As :meth:`decode`, and when the payload is a record of another schema.
        ValueError
            ``schema_name`` is not a known schema (a programming error, not bad input).
        """
        self._entry(schema_name, ValueError)
        return self._decode(data, schema_name)[1]

    def decode_many(
        self, items: Iterable[Payload]
    ) -> list[tuple[str, dict[str, Any]] | DecodeError]:
        """Decode a batch; each failure is returned in place instead of raised.

        Parameters
        ----------
        items
            Encoded payloads.

        Returns
        -------
        list
            For each payload, ``(schema_name, record)`` or the :class:`DecodeError`.
        """
        batch = items if type(items) is list else list(items)
        out: list[tuple[str, dict[str, Any]] | DecodeError | None] = [None] * len(batch)
        if self._native_headers:
            self._decode_native_runs(batch, out)
        decode = self._decode
        for index, data in enumerate(batch):
            if out[index] is None:
                try:
                    out[index] = decode(data, None)
                except DecodeError as exc:
                    out[index] = exc
        return cast(list[tuple[str, dict[str, Any]] | DecodeError], out)

    def decode_all(self, schema_name: str, payloads: list[Any]) -> list[dict[str, Any]] | None:
        """Every record, when every payload is exact ``bytes`` in the *current*
        ``schema_name`` schema's single-object encoding, within its limit, and the native
        extension decodes them all (the common batch, checked and decoded in one call);
        else None, and :meth:`decode_many_as` says what each payload holds.

        Each record is what :meth:`decode_as` returns for its payload (so a payload kept,
        e.g. in a log, decodes to the same record again later).

        Raises
        ------
        ValueError
            ``schema_name`` is not a known schema (a programming error, not bad input).
        """
        entry = self._entry(schema_name, ValueError)
        native = self._native.get(schema_name)
        if native is None or type(payloads) is not list:
            return None
        records: list[dict[str, Any]] | None = native.decode_all(
            payloads, entry.header, self.limit(schema_name)
        )
        return records

    def decode_prediction_columns(self, payloads: list[Any]) -> PredictionColumns | None:
        """A batch of predictions decoded into columns (:class:`schemas.columns.PredictionColumns`),
        when every payload is what :meth:`decode_all` decodes and the events share one model
        version, the same numeric features in the same order and no segment; else None
        (then :meth:`decode_all` or :meth:`decode_many_as`).

        Its :meth:`~schemas.columns.PredictionColumns.records` are :meth:`decode_all`'s.
        """
        native = self._native.get("prediction")
        module = driftline_native
        if (
            native is None
            or module is None
            or type(payloads) is not list
            or not hasattr(module, "decode_prediction_columns")
        ):
            return None
        entry = self._entry("prediction", ValueError)
        decoded = module.decode_prediction_columns(payloads, entry.header, self.limit("prediction"))
        if decoded is None:
            return None
        return PredictionColumns.from_native(
            decoded, payloads, lambda p: self.decode_all("prediction", p)
        )

    def decode_many_as(
        self, schema_name: str, items: Iterable[Payload]
    ) -> list[dict[str, Any] | DecodeError]:
        """Like :meth:`decode_as` per payload, in one native call for the common case; each
        failure is returned in place instead of raised.

        Parameters
        ----------
        schema_name
            Expected current schema name.
        items
            Encoded payloads.

        Returns
        -------
        list
            For each payload, the record or the :class:`DecodeError` :meth:`decode_as` raises.

        Raises
        ------
        ValueError
            ``schema_name`` is not a known schema (a programming error, not bad input).
        """
        batch = items if type(items) is list else list(items)
        records = self.decode_all(schema_name, batch)
        if records is not None:
            return cast(list[dict[str, Any] | DecodeError], records)
        found: list[tuple[str, dict[str, Any]] | DecodeError | None] = [None] * len(batch)
        if self._native_headers:
            self._decode_native_runs(batch, found)
        out: list[dict[str, Any] | DecodeError] = []
        append = out.append
        decode = self._decode
        for data, hit in zip(batch, found, strict=True):
            if hit is not None and type(hit) is tuple and hit[0] == schema_name:
                append(hit[1])
                continue
            try:  # everything else, with decode_as's checks and messages
                append(decode(data, schema_name)[1])
            except DecodeError as exc:
                append(exc)
        return out

    def _decode_native_runs(
        self, batch: list[Payload], out: list[tuple[str, dict[str, Any]] | DecodeError | None]
    ) -> None:
        """Fill ``out`` for the payloads the native batch decoders accept.

        Only ``bytes`` in single-object encoding of a native schema, within its size
        limit, are tried (exactly those that ``_decode`` would hand to the native decoder);
        the rest, and the payloads the native decoder declines, stay None for ``_decode``.
        """
        headers = self._native_headers
        groups: dict[bytes, list[int]] = {}
        for index, data in enumerate(batch):
            if type(data) is bytes:
                header = data[:_SINGLE_OBJECT_HEADER]
                known = headers.get(header)
                if known is not None and len(data) <= known[1]:
                    groups.setdefault(header, []).append(index)
        for header, indexes in groups.items():
            name, _, decode_many = headers[header]
            records = decode_many([cast(bytes, batch[i]) for i in indexes], _SINGLE_OBJECT_HEADER)
            for index, record in zip(indexes, records, strict=True):
                if record is not None:
                    out[index] = (name, record)

    def _entry(self, schema_name: str, error: type[Exception]) -> _SchemaVersion:
        entry = self._current.get(schema_name)
        if entry is None:
            known = ", ".join(sorted(self._current))
            raise error(f"unknown schema '{schema_name}' (known: {known})")
        return entry

    def _decode(self, data: Payload, expected: str | None) -> tuple[str, dict[str, Any]]:
        if not isinstance(data, bytes):
            if not isinstance(data, bytearray | memoryview):
                raise DecodeError(f"expected bytes, got {type(data).__name__}")
            data = bytes(data)
        size = len(data)
        if size == 0:
            raise DecodeError("empty input")
        if size > self._hard_max:
            raise DecodeError(f"payload of {size} bytes exceeds limit {self._max_bytes}")

        entry: _SchemaVersion | None
        if data[:2] == SINGLE_OBJECT_MAGIC or data == SINGLE_OBJECT_MAGIC[:1]:
            if size < _SINGLE_OBJECT_HEADER:
                raise DecodeError(
                    f"truncated: {size} bytes, the single-object header needs {_SINGLE_OBJECT_HEADER}"
                )
            fingerprint = data[2:_SINGLE_OBJECT_HEADER]
            entry = self._by_fingerprint.get(fingerprint)
            if entry is None:
                raise DecodeError(
                    f"unknown schema fingerprint {fingerprint.hex()} "
                    "(CRC-64-AVRO, little-endian; not a current or history schema)"
                )
            start = _SINGLE_OBJECT_HEADER
        elif data[0] == CONFLUENT_MAGIC:
            if size < _CONFLUENT_HEADER:
                raise DecodeError(
                    f"truncated: {size} bytes, the Confluent header needs {_CONFLUENT_HEADER}"
                )
            schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER], "big")
            if not self._registry_ids:
                raise DecodeError(
                    f"Confluent Schema Registry framing (schema id {schema_id}) but the codec "
                    "has no registry_ids mapping"
                )
            name = self._registry_ids.get(schema_id)
            if name is None:
                raise DecodeError(f"unknown Confluent schema id {schema_id}")
            entry = self._current[name]
            start = _CONFLUENT_HEADER
        else:
            raise DecodeError(
                f"bad magic {data[:2].hex()}: expected c301 (Avro single-object) "
                "or 00 (Confluent framing)"
            )

        if expected is not None and entry.name != expected:
            raise DecodeError(f"schema mismatch: expected '{expected}', got '{entry.name}'")
        if size > self.limit(entry.name):
            raise DecodeError(f"payload of {size} bytes exceeds limit {self.limit(entry.name)}")

        native = self._native.get(entry.name)
        if native is not None and entry.version == "current":
            # None: invalid or unusual body; fastavro below decodes it or says what is wrong.
            native_record = native.decode(data, start)
            if native_record is not None:
                return entry.name, native_record

        buffer = io.BytesIO(data)
        buffer.seek(start)
        try:
            record = fastavro.schemaless_reader(buffer, entry.writer, entry.reader)
        except EOFError as exc:
            message = str(exc)
            if message.startswith("Expected -"):
                raise DecodeError(f"invalid body: negative length ({message})") from exc
            raise DecodeError(f"truncated body: {message}") from exc
        except SchemaResolutionError as exc:
            raise DecodeError(f"schema violation: {exc}") from exc
        except Exception as exc:  # garbage makes fastavro fail in many ways
            raise DecodeError(f"invalid body: {type(exc).__name__}: {exc}") from exc
        consumed = buffer.tell()
        if consumed != size:
            raise DecodeError(
                f"trailing bytes: {size - consumed} bytes after the '{entry.name}' record"
            )
        if not isinstance(record, dict):
            raise DecodeError(f"schema violation: '{entry.name}' body is not a record")
        # fastavro does not range-check varints: an "int" can come back as 2**40.
        if entry.range_checked and not _valid(record, entry.current):
            explanation = _explain_invalid(record, entry.current_json, entry.name)
            raise DecodeError(f"schema violation: {explanation}")
        reason = _non_finite(record, entry.finite_fields)
        if reason is not None:
            raise DecodeError(reason)
        return entry.name, record


def _all_within(encoded: list[Any], limit: int) -> bool:
    """Whether every native encoding of a batch succeeded (no None) within ``limit`` bytes."""
    return None not in encoded and (not encoded or max(map(len, encoded)) <= limit)


def dead_letter_record(
    source_topic: str,
    raw: Payload,
    error: BaseException,
    partition: int | None = None,
    offset: int | None = None,
    received_at: int | None = None,
) -> dict[str, Any]:
    """Build the ``dead_letter`` record for an input that was rejected.

    Parameters
    ----------
    source_topic
        Topic (or API route) the input came from.
    raw
        The input as received. Only its first :data:`DEAD_LETTER_RAW_LIMIT` bytes are
        kept, so that the dead letter itself stays encodable; the reason says so.
    error
        The rejection; its class name becomes ``error_type`` and ``str(error)`` the reason.
    partition, offset
        Kafka position, when the input came from Kafka.
    received_at
        Rejection time in epoch milliseconds; defaults to the current wall-clock time.

    Returns
    -------
    dict
        A record of ``schemas/avro/dead_letter.avsc``. ``dead_letter_id`` is the blake2b
        hash (32 hex characters) of topic, partition, offset and the full raw bytes, so
        a replay of the same input produces the same id.

    Examples
    --------
    >>> dl = dead_letter_record("driftline.predictions", b"oops", DecodeError("bad magic 6f6f"),
    ...                         partition=0, offset=7, received_at=0)
    >>> dl["error_type"], dl["reason"], len(dl["dead_letter_id"])
    ('DecodeError', 'bad magic 6f6f', 32)
    """
    data = bytes(raw)
    topic = str(source_topic)
    digest = hashlib.blake2b(digest_size=16)
    for part in (
        topic.encode("utf-8"),
        b"" if partition is None else str(partition).encode(),
        b"" if offset is None else str(offset).encode(),
        data,
    ):
        # Length prefixes keep ("a|b", "c") and ("a", "b|c") apart.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    reason = str(error) or type(error).__name__
    if len(reason) > _REASON_LIMIT:
        reason = reason[: _REASON_LIMIT - 1] + "…"
    kept = data
    if len(data) > DEAD_LETTER_RAW_LIMIT:
        kept = data[:DEAD_LETTER_RAW_LIMIT]
        reason += f" (raw cut to its first {DEAD_LETTER_RAW_LIMIT} of {len(data)} bytes)"
    return {
        "dead_letter_id": digest.hexdigest(),
        "source_topic": topic,
        "raw": kept,
        "reason": reason,
        "error_type": type(error).__name__,
        "received_at": time.time_ns() // 1_000_000 if received_at is None else received_at,
        "partition": partition,
        "offset": offset,
    }


# --- loading -----------------------------------------------------------------------

_HISTORY_NAME: Final = re.compile(r"(?P<name>[a-z][a-z0-9_]*)\.(?P<version>[0-9]+)\.avsc")


def _strip_logical_types(schema: Any) -> Any:
    """Copy of a JSON schema without ``logicalType`` (binary encoding is unchanged)."""
    if isinstance(schema, dict):
        return {k: _strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical_types(item) for item in schema]
    return schema


def _has_int(schema: Any) -> bool:
    if isinstance(schema, str):
        return schema == "int"
    if isinstance(schema, list):
        return any(_has_int(item) for item in schema)
    if isinstance(schema, dict):
        return any(
            _has_int(v) for k, v in schema.items() if k in ("type", "fields", "items", "values")
        )
    return False


def _parse(schema_json: Any) -> Any:
    return fastavro.parse_schema(schema_json, named_schemas={})


def _load_schemas(
    schema_dir: Path,
) -> tuple[dict[str, _SchemaVersion], dict[bytes, _SchemaVersion]]:
    current: dict[str, _SchemaVersion] = {}
    by_fingerprint: dict[bytes, _SchemaVersion] = {}

    def register(entry: _SchemaVersion) -> None:
        other = by_fingerprint.get(entry.fingerprint)
        if other is None:
            by_fingerprint[entry.fingerprint] = entry
        elif other.name != entry.name:
            raise ValueError(
                f"schemas '{other.name}' and '{entry.name}' have the same fingerprint "
                f"{entry.fingerprint.hex()}"
            )
        # Same name, same canonical form: only docs or defaults changed; one entry reads both.

    paths = sorted(schema_dir.glob("*.avsc"))
    if not paths:
        raise ValueError(f"no *.avsc schemas in {schema_dir}")
    for path in paths:
        name = path.stem
        schema_json = json.loads(path.read_text(encoding="utf-8"))
        stripped = _strip_logical_types(schema_json)
        parsed = _parse(stripped)
        fingerprint = schema_fingerprint(schema_json)
        entry = _SchemaVersion(
            name=name,
            version="current",
            fingerprint=fingerprint,
            writer=parsed,
            reader=None,
            current=parsed,
            current_json=stripped,
            field_names=frozenset(field["name"] for field in stripped["fields"]),
            finite_fields=FINITE_FIELDS.get(name, ()),
            header=SINGLE_OBJECT_MAGIC + fingerprint,
            range_checked=_has_int(stripped),
        )
        current[name] = entry
        register(entry)

    history_dir = schema_dir / "history"
    for path in sorted(history_dir.glob("*.avsc")) if history_dir.is_dir() else []:
        match = _HISTORY_NAME.fullmatch(path.name)
        if match is None:
            raise ValueError(f"history schema {path.name} is not named <schema>.<number>.avsc")
        latest = current.get(match["name"])
        if latest is None:
            raise ValueError(f"history schema {path.name} has no current schema")
        schema_json = json.loads(path.read_text(encoding="utf-8"))
        fingerprint = schema_fingerprint(schema_json)
        if fingerprint == latest.fingerprint:
            continue
        register(
            _SchemaVersion(
                name=latest.name,
                version=match["version"],
                fingerprint=fingerprint,
                writer=_parse(_strip_logical_types(schema_json)),
                reader=latest.current,
                current=latest.current,
                current_json=latest.current_json,
                field_names=latest.field_names,
                finite_fields=latest.finite_fields,
                header=SINGLE_OBJECT_MAGIC + fingerprint,
                range_checked=latest.range_checked,
            )
        )
    return current, by_fingerprint


# --- checks and messages -------------------------------------------------------------


# --- quick checks of the high-volume schemas ---------------------------------------------
# Exact type tests (``type(x) is ...``) of the shapes a well-formed prediction or label takes.
# True means the record is valid (what fastavro's validator plus the NaN rule would say);
# False means "not sure", and the general check runs and explains. It never says True for a
# record the general check would refuse.

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def _is_long(v: Any) -> bool:
    return type(v) is int and _LONG_MIN <= v <= _LONG_MAX


def _is_finite_number(v: Any) -> bool:
    t = type(v)
    return (t is float and math.isfinite(v)) or (t is int and _LONG_MIN <= v <= _LONG_MAX)


def _quick_features(features: Any) -> bool:
    if type(features) is not dict:
        return False
    for key, v in features.items():
        if type(key) is not str:
            return False
        t = type(v)
        if v is None or t is str or t is bool:
            continue
        if t is float:
            if not math.isfinite(v):
                return False
        elif t is not int or not _LONG_MIN <= v <= _LONG_MAX:
            return False
    return True


def _quick_str_map(value: Any) -> bool:
    return value is None or (
        type(value) is dict and all(type(k) is str and type(v) is str for k, v in value.items())
    )


def _quick_score_map(value: Any) -> bool:
    return value is None or (
        type(value) is dict
        and all(
            type(k) is str
            and (type(v) is float or (type(v) is int and _LONG_MIN <= v <= _LONG_MAX))
            for k, v in value.items()
        )
    )


def _quick_prediction(r: Mapping[str, Any]) -> bool:
    target = r.get("prediction")
    return (
        type(r.get("prediction_id")) is str
        and type(r.get("model_name")) is str
        and type(r.get("model_version")) is str
        and _is_long(r.get("timestamp"))
        and (type(target) is str or _is_finite_number(target))
        and _quick_features(r.get("features"))
        and _quick_score_map(r.get("scores"))
        and _quick_str_map(r.get("segment"))
    )


def _quick_label(r: Mapping[str, Any]) -> bool:
    target = r.get("label")
    version = r.get("model_version")
    return (
        type(r.get("prediction_id")) is str
        and type(r.get("model_name")) is str
        and _is_long(r.get("timestamp"))
        and (type(target) is str or _is_finite_number(target))
        and (version is None or type(version) is str)
    )


_QUICK_CHECKS: Final[dict[str, Callable[[Mapping[str, Any]], bool]]] = {
    "prediction": _quick_prediction,
    "label": _quick_label,
}


def _non_finite(record: Mapping[str, Any], fields: tuple[str, ...]) -> str | None:
    """Reason naming the first NaN/inf in ``fields`` (plain values or maps), or None."""
    isfinite = math.isfinite
    for name in fields:
        value = record.get(name)
        if type(value) is dict:  # the common case, checked without ABC look-ups
            for key, item in value.items():
                if isinstance(item, float) and not isfinite(item):
                    return _non_finite_reason(f"{name}.{key}", item)
        elif isinstance(value, float):
            if not isfinite(value):
                return _non_finite_reason(name, value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(item, float) and not isfinite(item):
                    return _non_finite_reason(f"{name}.{key}", item)
    return None


def _non_finite_reason(path: str, value: float) -> str:
    what = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"field '{path}': {what} not allowed"


_INT32: Final = (-(2**31), 2**31 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)


def _is_integer(value: Any, bounds: tuple[int, int]) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]
    )


_PRIMITIVES: Final[dict[str, Callable[[Any], bool]]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: _is_integer(v, _INT32),
    "long": lambda v: _is_integer(v, _INT64),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, bytes | bytearray),
}

_short_repr = reprlib.Repr()
_short_repr.maxstring = 40
_short_repr.maxother = 40


def _show(value: Any) -> str:
    return f"{type(value).__name__} {_short_repr.repr(value)}"


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return " | ".join(_type_name(branch) for branch in schema)
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        return f"{kind} {schema['name']}"
    if kind == "map":
        return f"map<{_type_name(schema['values'])}>"
    if kind == "array":
        return f"array<{_type_name(schema['items'])}>"
    return str(kind)


def _explain_invalid(record: Any, schema_json: Any, schema_name: str) -> str:
    """Name the first field where ``record`` departs from the schema (only on failure)."""
    reason = _explain(record, schema_json, "")
    return reason or f"record does not match schema '{schema_name}'"


def _explain(value: Any, schema: Any, path: str) -> str | None:
    where = f"field '{path}': " if path else ""
    if isinstance(schema, list):
        reasons = [_explain(value, branch, path) for branch in schema]
        if None in reasons:
            return None
        # A branch of the right shape with a deeper fault (out of range, a bad map value)
        # says more than "matches no branch".
        mismatch = f"{where}expected "
        precise = [r for r in reasons if r is not None and not r.startswith(mismatch)]
        if precise:
            return precise[0]
        return f"{where}expected {_type_name(schema)}, got {_show(value)}"
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(kind, str) and kind in _PRIMITIVES:
        if _PRIMITIVES[kind](value):
            return None
        if kind in ("int", "long") and isinstance(value, int) and not isinstance(value, bool):
            return f"{where}{value} out of range for {kind}"
        return f"{where}expected {kind}, got {_show(value)}"
    if not isinstance(schema, dict):
        return None  # named-type reference: our schemas define each type inline
    if kind == "record":
        if not isinstance(value, Mapping):
            return f"{where}expected record {schema['name']}, got {_show(value)}"
        for field in schema["fields"]:
            sub = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] not in value:
                if "default" in field:
                    continue
                return f"field '{sub}' is required"
            reason = _explain(value[field["name"]], field["type"], sub)
            if reason is not None:
                return reason
        return None
    if kind == "enum":
        if value in schema["symbols"]:
            return None
        return f"{where}{_show(value)} is not one of {', '.join(schema['symbols'])}"
    if kind == "map":
        if not isinstance(value, Mapping):
            return f"{where}expected {_type_name(schema)}, got {_show(value)}"
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where}map key {_show(key)} is not a string"
            reason = _explain(item, schema["values"], f"{path}.{key}")
            if reason is not None:
                return reason
        return None
    if kind == "array":
        if not isinstance(value, list | tuple):
            return f"{where}expected {_type_name(schema)}, got {_show(value)}"
        for index, item in enumerate(value):
            reason = _explain(item, schema["items"], f"{path}[{index}]")
            if reason is not None:
                return reason
        return None
    if kind == "fixed":
        if isinstance(value, bytes) and len(value) == schema["size"]:
            return None
        return f"{where}expected {schema['size']} bytes, got {_show(value)}"
    return None
