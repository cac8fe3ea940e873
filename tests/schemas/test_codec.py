"""Tests of schemas/codec.py: fingerprints, round trips, every DecodeError and EncodeError
reason, Confluent framing, batching, dead letters and a fuzz test on arbitrary bytes."""

from __future__ import annotations

import doctest
import io
import math
import time
from typing import Any

import fastavro
import pytest
from avro_records import SCHEMA_NAMES, records, schema_json, typed, with_defaults
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas.codec
import schemas.ddl
import schemas.rows
from schemas.codec import (
    CRC64_AVRO_EMPTY,
    DEAD_LETTER_RAW_LIMIT,
    AvroCodec,
    DecodeError,
    EncodeError,
    crc64_avro,
    dead_letter_record,
    schema_fingerprint,
)
from schemas.topics import TOPIC_SCHEMAS

CODEC = AvroCodec()

PREDICTION: dict[str, Any] = {
    "prediction_id": "p-1",
    "model_name": "churn",
    "model_version": "3",
    "timestamp": 1_700_000_000_123,
    "features": {"age": 42, "income": 1234.5, "city": "Lyon", "member": True, "gap": None},
    "prediction": 0.83,
}
LABEL: dict[str, Any] = {
    "prediction_id": "p-1",
    "model_name": "churn",
    "label": 1.0,
    "timestamp": 1_700_000_360_000,
}
DEAD_LETTER = dead_letter_record("driftline.labels", b"xyz", ValueError("nope"), 1, 2, 3)


def raw_body(schema: Any, record: dict[str, Any]) -> bytes:
    """Avro binary body of ``record`` written by fastavro directly, without our checks."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


def stripped_schema(name: str) -> Any:
    """Current schema without logical types, so raw bodies take int timestamps."""
    return schemas.codec._strip_logical_types(schema_json(name))


def single_object(name: str, body: bytes) -> bytes:
    return b"\xc3\x01" + CODEC.fingerprint(name) + body


# --- fingerprints --------------------------------------------------------------------


def _crc64_bitwise(data: bytes) -> int:
    """CRC-64-AVRO bit by bit, straight from the spec's definition (no table)."""
    fp = CRC64_AVRO_EMPTY
    for byte in data:
        fp ^= byte
        for _ in range(8):
            fp = (fp >> 1) ^ (CRC64_AVRO_EMPTY & -(fp & 1))
    return fp


def test_crc64_known_vectors() -> None:
    # Values from Apache Avro's Ruby test_fingerprints.rb (schema "int": 8247732601305521295)
    # and linkedin/goavro crc64avro_test.go ("string").
    assert crc64_avro(b'"int"') == 0x7275D51A3F395C8F == 8247732601305521295
    assert crc64_avro(b'"string"') == 0x8F014872634503C7
    assert crc64_avro(b"") == CRC64_AVRO_EMPTY


def test_single_object_header_known_vector() -> None:
    # Apache Avro Ruby test_single_object_encoding_header for schema "int".
    header = b"\xc3\x01" + schema_fingerprint("int")
    assert header == bytes([0xC3, 0x01, 0x8F, 0x5C, 0x39, 0x3F, 0x1A, 0xD5, 0x75, 0x72])


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_crc64_table_matches_bitwise_definition(data: bytes) -> None:
    assert crc64_avro(data) == _crc64_bitwise(data)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_fingerprint_matches_fastavro(name: str) -> None:
    canonical = to_parsing_canonical_form(schema_json(name))
    # fastavro's hex is the little-endian byte order, i.e. the bytes on the wire.
    assert CODEC.fingerprint(name).hex() == fastavro_fingerprint(canonical, "CRC-64-AVRO")
    assert CODEC.fingerprint(name) == crc64_avro(canonical.encode()).to_bytes(8, "little")


def test_fingerprint_ignores_docs_defaults_and_logical_types() -> None:
    canonical = to_parsing_canonical_form(schema_json("prediction"))
    assert canonical.startswith('{"name":"driftline.v1.Prediction","type":"record","fields":[')
    for absent in ('"doc"', '"logicalType"', '"default"', '"namespace"'):
        assert absent not in canonical
    assert len(set(map(CODEC.fingerprint, SCHEMA_NAMES))) == len(SCHEMA_NAMES)


def test_every_topic_schema_is_loaded() -> None:
    assert set(TOPIC_SCHEMAS.values()) == set(CODEC.schema_names) == set(SCHEMA_NAMES)


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roundtrip(name: str, data: st.DataObject) -> None:
    record = data.draw(records(name))
    encoded = CODEC.encode(name, record)
    assert encoded[:10] == b"\xc3\x01" + CODEC.fingerprint(name)
    decoded_name, decoded = CODEC.decode(encoded)
    assert decoded_name == name
    assert typed(decoded) == typed(with_defaults(name, record))
    assert CODEC.decode_as(name, encoded) == decoded


def test_timestamps_are_int_milliseconds() -> None:
    decoded = CODEC.decode_as("prediction", CODEC.encode("prediction", PREDICTION))
    assert decoded["timestamp"] == 1_700_000_000_123
    assert type(decoded["timestamp"]) is int


def test_feature_values_keep_their_type() -> None:
    features = CODEC.decode_as("prediction", CODEC.encode("prediction", PREDICTION))["features"]
    assert typed(features) == typed(PREDICTION["features"])


def test_integral_prediction_comes_back_as_double() -> None:
    decoded = CODEC.decode_as(
        "prediction", CODEC.encode("prediction", {**PREDICTION, "prediction": 1})
    )
    assert decoded["prediction"] == 1.0 and type(decoded["prediction"]) is float


def test_nan_allowed_outside_model_inputs_and_outputs() -> None:
    metric = {
        "metric_id": "m",
        "model_name": "churn",
        "model_version": "3",
        "window_start": 0,
        "window_end": 1,
        "feature": "age",
        "metric": "ks",
        "value": math.inf,
        "pvalue": math.nan,
        "threshold": 0.05,
        "drift": False,
        "n_reference": 0,
        "n_current": 0,
    }
    decoded = CODEC.decode_as("drift_metric", CODEC.encode("drift_metric", metric))
    assert decoded["value"] == math.inf and math.isnan(decoded["pvalue"])


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = CODEC.encode("label", LABEL)
    assert CODEC.decode(bytearray(data)) == CODEC.decode(memoryview(data)) == CODEC.decode(data)


def test_decode_many_returns_errors_in_place() -> None:
    good = CODEC.encode("label", LABEL)
    out = CODEC.decode_many([good, b"", good[:-1], CODEC.encode("prediction", PREDICTION)])
    assert out[0] == ("label", with_defaults("label", LABEL))
    assert isinstance(out[1], DecodeError) and out[1].reason == "empty input"
    assert isinstance(out[2], DecodeError) and out[2].reason.startswith("truncated body")
    assert isinstance(out[3], tuple) and out[3][0] == "prediction"


# --- decode errors: one class, one reason per cause ------------------------------------


def _nan_feature() -> bytes:
    record = {**PREDICTION, "features": {"age": math.nan}}
    return single_object("prediction", raw_body(stripped_schema("prediction"), record))


def _inf_label() -> bytes:
    return single_object("label", raw_body(stripped_schema("label"), {**LABEL, "label": -math.inf}))


def _int_overflow() -> bytes:
    # Same bytes as an "int" partition, but a value no int32 can hold.
    wide = stripped_schema("dead_letter")
    for field in wide["fields"]:
        if field["name"] == "partition":
            field["type"] = ["null", "long"]
    return single_object("dead_letter", raw_body(wide, {**DEAD_LETTER, "partition": 2**40}))


def _bad_enum_index() -> bytes:
    ack = {"alert_id": "a", "action": "resolve", "actor": "bob", "timestamp": 5}
    body = bytearray(raw_body(stripped_schema("alert_ack"), ack))
    assert body[2] == 2  # after the 1-char string "a" (0x02 'a'): enum index 1 = 0x02
    body[2] = 0x0E  # index 7
    return single_object("alert_ack", bytes(body))


def _bad_utf8() -> bytes:
    body = raw_body(stripped_schema("label"), {**LABEL, "prediction_id": "pp"})
    return single_object("label", body.replace(b"\x04pp", b"\x04\xff\xfe", 1))


DECODE_ERRORS: dict[str, tuple[Any, str]] = {
    "empty": (b"", "empty input"),
    "one byte": (b"\xc3", "truncated: 1 bytes, the single-object header needs 10"),
    "short header": (b"\xc3\x01\x00\x01", "truncated: 4 bytes, the single-object header needs 10"),
    "bad magic": (b"\xc3\x02" + bytes(20), "bad magic c302: expected c301"),
    "json": (b'{"prediction_id": 1}', "bad magic 7b22"),
    "unknown fingerprint": (
        b"\xc3\x01" + bytes.fromhex("0011223344556677") + b"\x00",
        "unknown schema fingerprint 0011223344556677",
    ),
    "confluent without mapping": (
        b"\x00\x00\x00\x00\x07" + b"\x00",
        "Confluent Schema Registry framing (schema id 7) but the codec has no registry_ids",
    ),
    "confluent short": (b"\x00\x00\x01", "truncated: 3 bytes, the Confluent header needs 5"),
    "truncated body": (CODEC.encode("prediction", PREDICTION)[:-3], "truncated body:"),
    "header only": (b"\xc3\x01" + CODEC.fingerprint("label"), "truncated body:"),
    "trailing bytes": (
        CODEC.encode("label", LABEL) + b"\x00\x01",
        "trailing bytes: 2 bytes after the 'label' record",
    ),
    "negative length": (single_object("label", b"\x03"), "invalid body: negative length"),
    "bad enum index": (_bad_enum_index(), "invalid body: IndexError"),
    "bad utf-8": (_bad_utf8(), "invalid body: UnicodeDecodeError"),
    "int out of range": (
        _int_overflow(),
        "schema violation: field 'partition': 1099511627776 out of range for int",
    ),
    "nan feature": (_nan_feature(), "field 'features.age': NaN not allowed"),
    "inf label": (_inf_label(), "field 'label': -inf not allowed"),
    "not bytes": ("c3 01", "expected bytes, got str"),
}


@pytest.mark.parametrize("case", DECODE_ERRORS, ids=list(DECODE_ERRORS))
def test_decode_error_reasons(case: str) -> None:
    data, expected = DECODE_ERRORS[case]
    with pytest.raises(DecodeError) as info:
        CODEC.decode(data)
    assert info.value.reason.startswith(expected), info.value.reason
    assert str(info.value) == info.value.reason
    assert isinstance(info.value, ValueError)
    assert info.type is DecodeError


def test_oversized_payload() -> None:
    small = AvroCodec(max_bytes=64)
    data = CODEC.encode("prediction", PREDICTION)
    assert len(data) > 64
    with pytest.raises(DecodeError, match=rf"^payload of {len(data)} bytes exceeds limit 64$"):
        small.decode(data)
    with pytest.raises(EncodeError, match=rf"^payload of {len(data)} bytes exceeds limit 64$"):
        small.encode("prediction", PREDICTION)


def test_default_limit_is_one_mebibyte() -> None:
    assert CODEC.max_bytes == 1 << 20
    header = CODEC.encode("label", LABEL)[:10]
    with pytest.raises(DecodeError, match=r"^payload of 1048577 bytes exceeds limit 1048576$"):
        CODEC.decode(header + bytes((1 << 20) + 1 - len(header)))
    with pytest.raises(DecodeError, match=r"^payload of 33554433 bytes exceeds limit 1048576$"):
        CODEC.decode(b"\xc3\x01" + bytes((32 << 20) - 1))  # beyond every limit: not even parsed


def test_model_events_may_carry_a_large_reference_profile() -> None:
    assert CODEC.limit("model_event") == 32 << 20 and CODEC.limit("label") == 1 << 20
    event = {
        "event_id": "e",
        "model_name": "m",
        "model_version": "1",
        "event_type": "registered",
        "timestamp": 0,
        "reference_profile": "x" * (3 << 20),
    }
    data = CODEC.encode("model_event", event)
    assert len(data) > 3 << 20
    assert CODEC.decode_as("model_event", data)["reference_profile"] == event["reference_profile"]
    with pytest.raises(EncodeError, match="exceeds limit 33554432"):
        CODEC.encode("model_event", {**event, "reference_profile": "x" * (33 << 20)})


def test_decode_as_rejects_another_schema() -> None:
    data = CODEC.encode("label", LABEL)
    with pytest.raises(DecodeError, match=r"^schema mismatch: expected 'prediction', got 'label'$"):
        CODEC.decode_as("prediction", data)
    with pytest.raises(ValueError, match=r"unknown schema 'predictions'") as info:
        CODEC.decode_as("predictions", data)
    assert not isinstance(info.value, DecodeError)


# --- Confluent framing -----------------------------------------------------------------


def test_confluent_framing_with_registry_ids() -> None:
    codec = AvroCodec(registry_ids={42: "label"})
    body = CODEC.encode("label", LABEL)[10:]
    framed = b"\x00" + (42).to_bytes(4, "big") + body
    assert codec.decode(framed) == ("label", with_defaults("label", LABEL))
    with pytest.raises(DecodeError, match=r"^unknown Confluent schema id 43$"):
        codec.decode(b"\x00" + (43).to_bytes(4, "big") + body)
    with pytest.raises(DecodeError, match=r"^schema mismatch: expected 'prediction', got 'label'$"):
        codec.decode_as("prediction", framed)


def test_registry_ids_must_name_known_schemas() -> None:
    with pytest.raises(ValueError, match="registry_ids name unknown schemas: nope"):
        AvroCodec(registry_ids={1: "nope"})


# --- encode errors ---------------------------------------------------------------------

ENCODE_ERRORS: dict[str, tuple[str, Any, str]] = {
    "unknown schema": ("predictions", PREDICTION, "unknown schema 'predictions'"),
    "not a mapping": ("label", [("prediction_id", "p")], "record must be a mapping, got list"),
    "unknown field": ("label", {**LABEL, "lable": 1.0}, "unknown field 'lable' for schema 'label'"),
    "missing field": (
        "label",
        {k: v for k, v in LABEL.items() if k != "timestamp"},
        "field 'timestamp' is required",
    ),
    "wrong type": (
        "label",
        {**LABEL, "timestamp": "2024-01-01"},
        "field 'timestamp': expected long, got str '2024-01-01'",
    ),
    "float timestamp": (
        "label",
        {**LABEL, "timestamp": 1.5},
        "field 'timestamp': expected long, got float 1.5",
    ),
    "bad union": (
        "label",
        {**LABEL, "label": True},
        "field 'label': expected double | string, got bool True",
    ),
    "bad feature": (
        "prediction",
        {**PREDICTION, "features": {"age": [1, 2]}},
        "field 'features.age': expected null | long | double | string | boolean, got list",
    ),
    "bad enum": (
        "alert_ack",
        {"alert_id": "a", "action": "escalate", "actor": "x", "timestamp": 1},
        "field 'action': str 'escalate' is not one of acknowledge, resolve",
    ),
    "int range": (
        "dead_letter",
        {**DEAD_LETTER, "partition": 2**31},
        "field 'partition': 2147483648 out of range for int",
    ),
    "nan feature": (
        "prediction",
        {**PREDICTION, "features": {"age": math.nan}},
        "field 'features.age': NaN not allowed",
    ),
    "inf prediction": (
        "prediction",
        {**PREDICTION, "prediction": math.inf},
        "field 'prediction': inf not allowed",
    ),
    "nan label": ("label", {**LABEL, "label": math.nan}, "field 'label': NaN not allowed"),
}


@pytest.mark.parametrize("case", ENCODE_ERRORS, ids=list(ENCODE_ERRORS))
def test_encode_error_reasons(case: str) -> None:
    name, record, expected = ENCODE_ERRORS[case]
    with pytest.raises(EncodeError) as info:
        CODEC.encode(name, record)
    assert info.value.reason.startswith(expected), info.value.reason
    assert str(info.value) == info.value.reason


def test_optional_fields_may_be_absent_or_none() -> None:
    with_none = {**PREDICTION, "scores": None, "segment": None}
    assert CODEC.encode("prediction", PREDICTION) == CODEC.encode("prediction", with_none)


# --- fuzz: nothing but DecodeError escapes ----------------------------------------------

VALID_PAYLOADS = [CODEC.encode("prediction", PREDICTION), CODEC.encode("label", LABEL)]
HEADERS = [b"\xc3\x01" + CODEC.fingerprint(name) for name in SCHEMA_NAMES]
FUZZ_CODEC = AvroCodec(registry_ids={1: "prediction", 2: "dead_letter"}, max_bytes=4096)


def _mutate(data: bytes, position: int, value: int) -> bytes:
    position %= len(data)
    return data[:position] + bytes([value]) + data[position + 1 :]


fuzz_inputs = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from(HEADERS), st.binary(max_size=300)).map(b"".join),
    st.tuples(st.integers(1, 2), st.binary(max_size=300)).map(
        lambda t: b"\x00" + t[0].to_bytes(4, "big") + t[1]
    ),
    st.tuples(st.sampled_from(VALID_PAYLOADS), st.integers(10, 10_000), st.integers(0, 255)).map(
        lambda t: _mutate(*t)
    ),
    st.tuples(st.sampled_from(VALID_PAYLOADS), st.integers(0, 200)).map(lambda t: t[0][: t[1]]),
)


@settings(max_examples=600, deadline=None)
@given(fuzz_inputs)
def test_fuzz_only_decode_error_escapes(data: bytes) -> None:
    try:
        name, record = FUZZ_CODEC.decode(data)
    except DecodeError as exc:
        assert exc.reason
        return
    # What decodes is a valid record: it re-encodes, and re-encoding is stable
    # (compared as bytes, since NaN != NaN where NaN is allowed).
    encoded = FUZZ_CODEC.encode(name, record)
    assert FUZZ_CODEC.encode(*FUZZ_CODEC.decode(encoded)) == encoded


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fuzz_encode_raises_only_encode_error(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(SCHEMA_NAMES))
    fields = [f["name"] for f in schema_json(name)["fields"]]
    valid = data.draw(records(name))
    # A valid record with some fields replaced by arbitrary values, or dropped.
    changes = data.draw(
        st.dictionaries(st.sampled_from([*fields, "extra"]), json_values, max_size=3)
    )
    record = {**valid, **changes}
    try:
        encoded = CODEC.encode(name, record)
    except EncodeError as exc:
        assert exc.reason
        return
    assert CODEC.decode(encoded)[0] == name


# --- dead letters -----------------------------------------------------------------------


def test_dead_letter_record_shape_and_determinism() -> None:
    error = DecodeError("bad magic 6f6f: expected c301 (Avro single-object) or 00")
    first = dead_letter_record("driftline.predictions", b"oops", error, 3, 17, 1_000)
    again = dead_letter_record("driftline.predictions", b"oops", error, 3, 17, 9_999)
    other = dead_letter_record("driftline.predictions", b"oops", error, 3, 18, 1_000)
    assert first["dead_letter_id"] == again["dead_letter_id"] != other["dead_letter_id"]
    assert len(first["dead_letter_id"]) == 32 and int(first["dead_letter_id"], 16) >= 0
    assert first == {
        "dead_letter_id": first["dead_letter_id"],
        "source_topic": "driftline.predictions",
        "raw": b"oops",
        "reason": error.reason,
        "error_type": "DecodeError",
        "received_at": 1_000,
        "partition": 3,
        "offset": 17,
    }
    assert CODEC.decode_as("dead_letter", CODEC.encode("dead_letter", first)) == first


def test_dead_letter_defaults() -> None:
    before = time.time_ns() // 1_000_000
    record = dead_letter_record("/v1/labels", bytearray(b"{}"), KeyError("model_name"))
    after = time.time_ns() // 1_000_000
    assert before <= record["received_at"] <= after
    assert record["partition"] is None and record["offset"] is None
    assert record["error_type"] == "KeyError" and record["reason"] == "'model_name'"
    assert record["raw"] == b"{}" and type(record["raw"]) is bytes


def test_dead_letter_of_oversized_input_stays_encodable() -> None:
    raw = bytes(2 << 20)
    record = dead_letter_record(
        "driftline.predictions", raw, DecodeError("payload too big"), received_at=0
    )
    assert len(record["raw"]) == DEAD_LETTER_RAW_LIMIT
    assert record["reason"].endswith(
        f"(raw cut to its first {DEAD_LETTER_RAW_LIMIT} of {len(raw)} bytes)"
    )
    assert (
        record["dead_letter_id"]
        != dead_letter_record(
            "driftline.predictions", raw[:DEAD_LETTER_RAW_LIMIT], DecodeError("x"), received_at=0
        )["dead_letter_id"]
    )
    assert len(CODEC.encode("dead_letter", record)) <= CODEC.max_bytes


# --- docs --------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [schemas.codec, schemas.ddl, schemas.rows])
def test_docstring_examples_run(module: Any) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- the quick checks of the high-volume schemas agree with the general one -----------------

_odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)


@pytest.mark.parametrize("name", ["prediction", "label"])
@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_quick_check_never_accepts_what_the_general_check_refuses(
    name: str, data: st.DataObject
) -> None:
    from schemas.codec import _QUICK_CHECKS, _non_finite, _valid

    record = dict(data.draw(records(name)))
    field = data.draw(st.sampled_from(sorted(record)))
    if data.draw(st.booleans()):  # corrupt one field, or one feature
        if name == "prediction" and field == "features" and record["features"]:
            key = data.draw(st.sampled_from(sorted(record["features"])))
            record["features"] = {**record["features"], key: data.draw(_odd_values)}
        else:
            record[field] = data.draw(_odd_values)
    entry = CODEC._entry(name, ValueError)
    general_ok = _valid(record, entry.writer) and _non_finite(record, entry.finite_fields) is None
    if _QUICK_CHECKS[name](record):
        assert general_ok, record
    if general_ok:
        assert CODEC.decode_as(name, CODEC.encode(name, record)) is not None
    else:
        with pytest.raises(EncodeError):
            CODEC.encode(name, record)
