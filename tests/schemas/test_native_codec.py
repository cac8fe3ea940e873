"""Tests of the native fast path (native/, schemas/native.py and its use in schemas/codec.py).

Differential throughout: the Rust extension must produce exactly what the Python path
produces (fastavro bytes, fastavro records with the same value types and key order,
``schemas.rows`` rows through the real ClickHouse engine), and answer None wherever it
does not, so that the codec's results and error messages never depend on it.
"""

from __future__ import annotations

import io
import math
import random
import re
import struct
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import driftline_native  # the extension is part of the dev install (make venv)
import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas.codec
import schemas.native
from schemas.codec import SINGLE_OBJECT_MAGIC, AvroCodec, DecodeError, EncodeError
from schemas.ddl import table_ddl
from schemas.rows import COLUMNS, ms_to_datetime, to_rows, topic_rows
from schemas.topics import Topic

PY = AvroCodec(native=False)
NAT = AvroCodec()
HEADER = {name: SINGLE_OBJECT_MAGIC + PY.fingerprint(name) for name in ("prediction", "label")}
ENCODE: dict[str, Callable[[bytes, Any], bytes | None]] = {
    "prediction": driftline_native.encode_prediction,
    "label": driftline_native.encode_label,
}
DECODE: dict[str, Callable[[bytes, int], dict[str, Any] | None]] = {
    "prediction": driftline_native.decode_prediction,
    "label": driftline_native.decode_label,
}
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
TS_MIN, TS_MAX = -62_135_596_800_000, 253_402_300_799_999  # what ms_to_datetime accepts

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
    "label": "yes",
    "timestamp": 1_700_000_360_000,
}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def strict(value: Any) -> Any:
    """``value`` with every leaf tagged by its exact type, floats by their bits, and dict
    key order kept: equal only when the values, types and orders all are."""
    if type(value) is dict:
        return ("dict", [(strict(k), strict(v)) for k, v in value.items()])
    if type(value) in (list, tuple):
        return (type(value).__name__, [strict(item) for item in value])
    if type(value) is float:
        return ("float", struct.pack("<d", value).hex())
    return (type(value).__name__, value)


def outcome(call: Callable[..., Any], *args: Any) -> Any:
    """What ``call`` returned (strictly tagged), or the error class and message it raised
    (object addresses in fastavro's messages blanked)."""
    try:
        return ("ok", strict(call(*args)))
    except (EncodeError, DecodeError) as exc:
        return (type(exc).__name__, re.sub(r" at 0x[0-9a-f]+", " at 0x", str(exc)))


def fastavro_body(name: str, record: dict[str, Any]) -> bytes:
    """The Avro body fastavro writes for ``record``, without the codec around it."""
    buffer = io.BytesIO()
    schema = PY._entry(name, ValueError).writer
    fastavro.schemaless_writer(buffer, schema, record, disable_tuple_notation=True)
    return buffer.getvalue()


# --- strategies ---------------------------------------------------------------------------

chars = st.characters(codec="utf-8")  # no lone surrogates: those cannot be encoded
texts = st.one_of(
    st.text(chars, max_size=10),
    st.text(st.characters(min_codepoint=0x80, codec="utf-8"), min_size=40, max_size=90),
    st.text(chars, min_size=130, max_size=300),  # lengths of 2-byte varints
)
longs = st.one_of(
    st.integers(LONG_MIN, LONG_MAX),
    st.sampled_from([0, -1, 1, 63, -64, 64, LONG_MIN, LONG_MIN + 1, LONG_MAX, LONG_MAX - 1]),
    st.sampled_from([2**53 + 1, -(2**53) - 1, 2**62, -(2**62)]),
)
doubles = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]),
)
feature_values = st.one_of(st.none(), longs, doubles, texts, st.booleans())
numbers_or_texts = st.one_of(doubles, longs, texts)
timestamps = st.one_of(longs, st.integers(TS_MIN, TS_MAX), st.sampled_from([TS_MIN, TS_MAX]))
optional_scores = st.one_of(
    st.none(), st.dictionaries(texts, st.one_of(doubles, longs), max_size=4)
)
optional_segment = st.one_of(st.none(), st.dictionaries(texts, texts, max_size=4))


def prediction_records(
    ts: st.SearchStrategy[int] = timestamps,
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "prediction_id": texts,
            "model_name": texts,
            "model_version": texts,
            "timestamp": ts,
            "features": st.dictionaries(texts, feature_values, max_size=25),
            "prediction": numbers_or_texts,
        },
        optional={"scores": optional_scores, "segment": optional_segment},
    )


def label_records(ts: st.SearchStrategy[int] = timestamps) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"prediction_id": texts, "model_name": texts, "label": numbers_or_texts, "timestamp": ts},
        optional={"model_version": st.one_of(st.none(), texts)},
    )


RECORDS = {"prediction": prediction_records(), "label": label_records()}
named_records = st.one_of(
    [st.tuples(st.just(name), strategy) for name, strategy in RECORDS.items()]
)


# --- encode ---------------------------------------------------------------------------------


@FAST
@given(named_records)
def test_encode_is_byte_identical_to_fastavro(item: tuple[str, dict[str, Any]]) -> None:
    name, record = item
    expected = PY.encode(name, record)
    assert ENCODE[name](HEADER[name], record) == expected
    assert NAT.encode(name, record) == expected
    assert expected == HEADER[name] + fastavro_body(name, record)


@FAST
@given(st.lists(prediction_records(), max_size=5), st.lists(label_records(), max_size=5))
def test_batch_encode(predictions: list[dict[str, Any]], labels: list[dict[str, Any]]) -> None:
    header = HEADER["prediction"]
    assert driftline_native.encode_predictions(header, predictions) == [
        PY.encode("prediction", r) for r in predictions
    ]
    assert driftline_native.encode_labels(HEADER["label"], labels) == [
        PY.encode("label", r) for r in labels
    ]
    assert driftline_native.encode_predictions(header, [PREDICTION, {}, 3]) == [
        PY.encode("prediction", PREDICTION),
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("value", "body"),
    [
        # fastavro takes the first branch whose validator accepts the value:
        (None, "00"),
        (7, "020e"),  # long
        (True, "0801"),  # boolean, not long: a bool is no long for fastavro
        (False, "0800"),
        (1.0, "04000000000000f03f"),  # double, even when integral
        (-0.0, "040000000000000080"),
        ("é", "0604c3a9"),  # string, UTF-8 length
    ],
)
def test_feature_union_branches(value: Any, body: str) -> None:
    record = {**PREDICTION, "features": {"f": value}}
    encoded = ENCODE["prediction"](HEADER["prediction"], record)
    assert encoded == PY.encode("prediction", record)
    assert encoded is not None and ("020266" + body + "00") in encoded.hex()


@pytest.mark.parametrize("value", [1, -(2**53) - 1, 2**53 + 1, LONG_MAX, LONG_MIN, 0.5, "yes"])
@pytest.mark.parametrize("name", ["prediction", "label"])
def test_double_or_string_unions(name: str, value: Any) -> None:
    # An int in ["double", "string"] is written as the double float(int) (round half even).
    field = "prediction" if name == "prediction" else "label"
    record = {**(PREDICTION if name == "prediction" else LABEL), field: value}
    assert ENCODE[name](HEADER[name], record) == PY.encode(name, record)
    decoded = PY.decode_as(name, PY.encode(name, record))[field]
    assert strict(decoded) == strict(value if type(value) is str else float(value))


def test_map_blocks() -> None:
    # One block (count, entries) then 0; an empty map is a single 0; scores present/absent.
    for scores in ({}, {"a": 1.0}, {"a": 1.0, "b": 2}, None):
        record = {**PREDICTION, "features": {}, "scores": scores}
        assert ENCODE["prediction"](HEADER["prediction"], record) == PY.encode("prediction", record)
    record = {**PREDICTION, "features": {}, "scores": {"a": 1.0, "b": 2}}
    assert (
        PY.encode("prediction", record)
        .hex()
        .endswith(
            "02" + "04" + "0261" + "000000000000f03f" + "0262" + "0000000000000040" + "00" + "00"
        )
    )


class Text(str):
    pass


class Record(dict[str, Any]):
    pass


def _refused(name: str) -> list[dict[str, Any]]:
    base = PREDICTION if name == "prediction" else LABEL
    target = "prediction" if name == "prediction" else "label"
    cases = [
        {**base, target: math.nan},
        {**base, target: math.inf},
        {**base, target: True},
        {**base, target: None},
        {**base, target: Text("yes")},
        {**base, "timestamp": 1.0},
        {**base, "timestamp": True},
        {**base, "timestamp": 2**63},
        {**base, "timestamp": LONG_MIN - 1},
        {**base, "prediction_id": Text("p")},
        {**base, "prediction_id": b"p"},
        {**base, "model_name": "\ud800"},  # lone surrogate: not encodable as UTF-8
        {**base, "extra": 1},
        {**base, Text("extra"): 1},
        {k: v for k, v in base.items() if k != "timestamp"},
        {k: v for k, v in base.items() if k != "prediction_id"},
        Record(base),
        OrderedDict(base),
    ]
    if name == "prediction":
        cases += [
            {**base, "features": {"x": math.nan}},
            {**base, "features": {"x": -math.inf}},
            {**base, "features": {"x": [1]}},
            {**base, "features": {"x": Text("a")}},
            {**base, "features": {Text("x"): 1.0}},
            {**base, "features": {1: 1.0}},
            {**base, "features": OrderedDict(x=1.0)},
            {**base, "features": None},
            {**base, "features": {"x": 2**63}},  # fastavro writes it as a double
            {**base, "features": {"x": -(2**63) - 1}},
            {**base, "prediction": 2**63},  # fastavro writes float(2**63)
            {**base, "prediction": 2**1100},  # float() overflows: EncodeError
            {**base, "scores": {"a": math.nan}},  # not a finite field: encoded by Python
            {**base, "scores": {"a": 2**64}},
            {**base, "scores": {"a": True}},
            {**base, "scores": {"a": "x"}},
            {**base, "scores": []},
            {**base, "segment": {"a": 1}},
            {**base, "segment": OrderedDict(a="b")},
            {**base, "model_version": None},
        ]
    else:
        cases += [{**base, "model_version": 3}, {**base, "model_version": Text("3")}]
    return cases


@pytest.mark.parametrize("name", ["prediction", "label"])
def test_native_encode_declines_everything_outside_the_common_shape(name: str) -> None:
    records: list[Any] = [*_refused(name), [], None, "x", 1]
    for record in records:
        assert ENCODE[name](HEADER[name], record) is None, record
        # The codec then runs the Python path: the same bytes or the same error.
        assert outcome(NAT.encode, name, record) == outcome(PY.encode, name, record)
    base = PREDICTION if name == "prediction" else LABEL
    assert outcome(NAT.encode, name, {**base, "x": 1}) == (
        "EncodeError",
        f"unknown field 'x' for schema '{name}'",
    )


def test_size_limit_applies_to_native_encoding() -> None:
    small_py, small_nat = AvroCodec(max_bytes=64, native=False), AvroCodec(max_bytes=64)
    record = {**PREDICTION, "features": {f"f{i}": float(i) for i in range(10)}}
    assert small_nat.native_schemas == ("label", "prediction")
    assert outcome(small_nat.encode, "prediction", record) == outcome(
        small_py.encode, "prediction", record
    )
    assert outcome(small_nat.encode, "prediction", record)[0] == "EncodeError"


# --- decode ---------------------------------------------------------------------------------


@FAST
@given(named_records)
def test_decode_equals_fastavro(item: tuple[str, dict[str, Any]]) -> None:
    name, record = item
    data = PY.encode(name, record)
    expected = strict(PY.decode_as(name, data))
    native = DECODE[name](data, 10)
    assert native is not None
    assert strict(native) == expected
    assert strict(NAT.decode_as(name, data)) == expected
    assert strict(NAT.decode(data)) == strict(PY.decode(data))


@FAST
@given(st.lists(named_records, max_size=8), st.data())
def test_batch_decode_and_decode_many(items: list[tuple[str, dict[str, Any]]], data: Any) -> None:
    payloads: list[Any] = [PY.encode(name, record) for name, record in items]
    predictions = [p for (name, _), p in zip(items, payloads, strict=True) if name == "prediction"]
    assert [strict(r) for r in driftline_native.decode_predictions(predictions, 10)] == [
        strict(PY.decode_as("prediction", p)) for p in predictions
    ]
    labels = [p for (name, _), p in zip(items, payloads, strict=True) if name == "label"]
    assert [strict(r) for r in driftline_native.decode_labels(labels, 10)] == [
        strict(PY.decode_as("label", p)) for p in labels
    ]
    # decode_many on a mixed batch: other schemas, bad input, bytearray/memoryview inputs.
    extras = [
        b"",
        b"\xc3",
        HEADER["prediction"],
        HEADER["label"] + b"\x00",
        PY.encode("prediction", PREDICTION)[:-1],
        PY.encode("prediction", PREDICTION) + b"\x00",
        bytearray(PY.encode("label", LABEL)),
        memoryview(PY.encode("prediction", PREDICTION)),
        PY.encode(
            "alert_ack", {"alert_id": "a", "action": "acknowledge", "actor": "me", "timestamp": 1}
        ),
        "not bytes",
    ]
    for extra in extras:
        payloads.insert(data.draw(st.integers(0, len(payloads))), extra)

    def tagged(results: list[Any]) -> list[Any]:
        return [strict(r) if isinstance(r, tuple) else (type(r), str(r)) for r in results]

    assert tagged(NAT.decode_many(payloads)) == tagged(PY.decode_many(payloads))
    assert tagged(NAT.decode_many(iter(payloads))) == tagged(PY.decode_many(payloads))
    assert (
        driftline_native.decode_predictions([b"", "x", None, bytearray(b"\x00")], 0) == [None] * 4
    )


def _mutants(data: bytes, rnd: random.Random) -> list[bytes]:
    """Damaged copies of ``data``: flipped bytes, appended bytes, cut tails, varint bombs."""
    body = bytearray(data)
    out = [data + bytes([rnd.randrange(256)]), data + b"\x00" * 3, data[: rnd.randrange(len(data))]]
    for _ in range(6):
        copy = bytearray(body)
        position = rnd.randrange(10, len(copy))
        copy[position] = rnd.randrange(256)
        out.append(bytes(copy))
    for bomb in (
        b"\xff" * 9 + b"\x01",  # -2**63
        b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f",  # 2**62 - 1
        b"\xff" * 10 + b"\x00",  # 11 bytes: longer than a long
        b"\x80" * 9 + b"\x02",  # 10th byte overflows 64 bits
        b"\x01",  # -1: a negative length or count
        b"\x0a",  # union index 5: out of range
        b"\x03",  # union index -2: fastavro indexes from the end
    ):
        position = rnd.randrange(10, len(body) + 1)
        out.append(bytes(body[:position]) + bomb + bytes(body[position:]))
        out.append(bytes(body[:position]) + bomb + bytes(body[position + 1 :]))
    return out


def check_decode(name: str, data: bytes) -> None:
    """The native decoder gives the Python result or None, None where Python raises; and
    the codec with the native path behaves exactly as the codec without it."""
    try:
        expected: Any = strict(PY.decode_as(name, data))
    except DecodeError:
        expected = None
    if data[:10] == HEADER[name]:
        native = DECODE[name](data, 10)
        assert native is None or strict(native) == expected
    assert outcome(NAT.decode, data) == outcome(PY.decode, data)


@FAST
@given(named_records, st.randoms(use_true_random=False))
def test_damaged_payloads(item: tuple[str, dict[str, Any]], rnd: random.Random) -> None:
    name, record = item
    data = PY.encode(name, record)
    for mutant in _mutants(data, rnd):
        check_decode(name, mutant)


@pytest.mark.parametrize("name", ["prediction", "label"])
def test_every_truncation(name: str) -> None:
    base = PREDICTION if name == "prediction" else LABEL
    records = [base, {**base, "scores": {"a": 1.0}, "segment": {"b": "c"}, "timestamp": -1}]
    if name == "label":
        records = [base, {**base, "model_version": "7", "label": -2.5, "timestamp": LONG_MIN}]
    for record in records:
        data = PY.encode(name, record)
        for cut in range(len(data)):
            check_decode(name, data[:cut])
            assert DECODE[name](data[:cut], 10) is None
        for start in (0, 9, 11, len(data), len(data) + 1, 2**40):
            assert DECODE[name](data, start) is None


def test_unusual_bodies_are_left_to_fastavro() -> None:
    # Bodies fastavro accepts but the native decoder declines (the codec falls back, so
    # the result is fastavro's): over-long varints, negative union indexes and map block
    # counts, NaN in scores.
    header = HEADER["prediction"]
    plain = fastavro_body("prediction", {**PREDICTION, "features": {}})
    prefix = plain[: plain.index(b"\x31") + 1]  # up to model_version "3"
    suffix = plain[len(prefix) + 6 :]  # after the 6-byte timestamp varint
    ts = PREDICTION["timestamp"]
    cases = {
        "11-byte timestamp": b"\x80" * 10 + b"\x00",
        "10th byte overflows": b"\x80" * 9 + b"\x7e",
    }
    for why, varint in cases.items():
        data = header + prefix + varint + suffix
        assert driftline_native.decode_prediction(data, 10) is None, why
        assert strict(NAT.decode(data)) == strict(PY.decode(data)), why
    # union index -1 (zig-zag 0x01) is "boolean" for fastavro's list indexing
    data = PY.encode("prediction", {**PREDICTION, "features": {"x": True}})
    odd = data.replace(b"\x02\x02x\x08\x01", b"\x02\x02x\x01\x01")
    assert driftline_native.decode_prediction(odd, 10) is None
    assert PY.decode(odd) == NAT.decode(odd) == ("prediction", {**PY.decode(data)[1]})
    # negative map block count (-1, then a byte size), which fastavro never writes
    negative = data.replace(b"\x02\x02x\x08\x01\x00", b"\x01\x04\x02x\x08\x01\x00")
    assert driftline_native.decode_prediction(negative, 10) is None
    assert strict(NAT.decode(negative)) == strict(PY.decode(negative))
    nan_scores = PY.encode("prediction", {**PREDICTION, "scores": {"a": math.nan}})
    assert driftline_native.decode_prediction(nan_scores, 10) is None
    assert math.isnan(NAT.decode(nan_scores)[1]["scores"]["a"])
    # a boolean byte other than 0/1 reads as True, as in fastavro
    two = data.replace(b"\x02\x02x\x08\x01", b"\x02\x02x\x08\x02")
    assert strict(driftline_native.decode_prediction(two, 10)) == strict(PY.decode(two)[1])
    assert ts == PY.decode(data)[1]["timestamp"]


def test_repeated_strings_are_shared() -> None:
    # Feature names, model names and versions come from a bounded cache: the same objects
    # from record to record (equal values either way).
    first = PY.encode("prediction", PREDICTION)
    second = PY.encode("prediction", {**PREDICTION, "prediction_id": "p-2"})
    driftline_native.decode_prediction(first, 10)  # warm
    a = driftline_native.decode_prediction(first, 10)
    b = driftline_native.decode_predictions([second], 10)[0]
    assert a is not None and b is not None
    assert all(x is y for x, y in zip(a["features"], b["features"], strict=True))
    assert a["model_name"] is b["model_name"] and a["model_version"] is b["model_version"]
    assert a["prediction_id"] == "p-1" and b["prediction_id"] == "p-2"
    # many distinct keys (more than the cache holds) still decode right
    many = [{**PREDICTION, "features": {f"k{i}-{j}": 1.0 for j in range(20)}} for i in range(300)]
    payloads = [PY.encode("prediction", r) for r in many]
    assert [strict(r) for r in driftline_native.decode_predictions(payloads, 10)] == [
        strict(PY.decode_as("prediction", p)) for p in payloads
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 90))
def test_arbitrary_bytes_never_crash(data: bytes, start: int) -> None:
    for decode in DECODE.values():
        result = decode(data, start)
        assert result is None or type(result) is dict
    for name in DECODE:
        check_decode(name, HEADER[name] + data)


def test_confluent_framing_uses_the_same_body_decoder() -> None:
    py = AvroCodec(registry_ids={7: "prediction", 8: "label"}, native=False)
    nat = AvroCodec(registry_ids={7: "prediction", 8: "label"})
    for schema_id, name, record in ((7, "prediction", PREDICTION), (8, "label", LABEL)):
        framed = b"\x00" + schema_id.to_bytes(4, "big") + fastavro_body(name, record)
        assert DECODE[name](framed, 5) is not None
        assert strict(nat.decode(framed)) == strict(py.decode(framed))
        for cut in range(len(framed)):
            assert outcome(nat.decode, framed[:cut]) == outcome(py.decode, framed[:cut])


def test_decoded_finite_fields() -> None:
    # NaN/inf in features or prediction: the native decoder declines, fastavro + the
    # codec's check raise the same DecodeError as without the native path.
    for record in (
        {**PREDICTION, "features": {"x": math.nan}},
        {**PREDICTION, "prediction": math.inf},
    ):
        data = HEADER["prediction"] + fastavro_body("prediction", record)
        assert driftline_native.decode_prediction(data, 10) is None
        assert outcome(NAT.decode, data) == outcome(PY.decode, data)
        assert "not allowed" in outcome(NAT.decode, data)[1]
    data = HEADER["label"] + fastavro_body("label", {**LABEL, "label": -math.inf})
    assert driftline_native.decode_label(data, 10) is None
    assert outcome(NAT.decode, data) == ("DecodeError", "field 'label': -inf not allowed")


# --- the codec really uses it -----------------------------------------------------------------


def test_codec_uses_the_native_path(monkeypatch: pytest.MonkeyPatch) -> None:
    assert schemas.codec.NATIVE and schemas.native.NATIVE
    assert NAT.native_schemas == ("label", "prediction")
    assert PY.native_schemas == ()
    calls: dict[str, int] = {}

    def spy(attr: str) -> None:
        real = getattr(driftline_native, attr)

        def wrapper(*args: Any) -> Any:
            result = real(*args)
            calls[attr] = calls.get(attr, 0) + (result is not None)
            return result

        monkeypatch.setattr(driftline_native, attr, wrapper)

    for attr in ("encode_prediction", "encode_label", "decode_prediction", "decode_label"):
        spy(attr)
    spy("decode_predictions")
    codec = AvroCodec()
    data = codec.encode("prediction", PREDICTION)
    label = codec.encode("label", LABEL)
    codec.decode(data)
    codec.decode_as("label", label)
    codec.decode_many([data, label])
    assert calls == {
        "encode_prediction": 1,
        "encode_label": 1,
        "decode_prediction": 1,
        "decode_label": 1,
        "decode_predictions": 1,
    }
    # nothing of it when turned off
    calls.clear()
    plain = AvroCodec(native=False)
    plain.decode_many([plain.encode("prediction", PREDICTION)])
    assert calls == {}


def test_other_schemas_stay_on_the_python_path(tmp_path: Any) -> None:
    # A prediction schema the extension was not built for (an extra field) is not native.
    for path in schemas.codec.SCHEMA_DIR.glob("*.avsc"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    text = (tmp_path / "prediction.avsc").read_text(encoding="utf-8")
    text = text.replace('"fields": [', '"fields": [{"name": "x", "type": "int", "default": 0},', 1)
    (tmp_path / "prediction.avsc").write_text(text, encoding="utf-8")
    assert AvroCodec(schema_dir=tmp_path).native_schemas == ("label",)


# --- RowBinary --------------------------------------------------------------------------------


class RowBinaryReader:
    """Just enough of a RowBinary parser to read back the two raw-event tables."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        assert len(chunk) == n
        self.pos += n
        return chunk

    def uvarint(self) -> int:
        n = shift = 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return n

    def string(self) -> str:
        return self.take(self.uvarint()).decode("utf-8")

    def f64(self) -> float:
        value: float = struct.unpack("<d", self.take(8))[0]
        return value

    def datetime(self) -> Any:
        return ms_to_datetime(struct.unpack("<q", self.take(8))[0])

    def nullable(self, read: Callable[[], Any]) -> Any:
        return None if self.take(1) == b"\x01" else read()

    def map(self, read: Callable[[], Any]) -> dict[str, Any]:
        return {self.string(): read() for _ in range(self.uvarint())}

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        while self.pos < len(self.data):
            if table == "predictions":
                rows.append(
                    (
                        self.string(),
                        self.string(),
                        self.string(),
                        self.datetime(),
                        self.map(self.f64),
                        self.map(self.string),
                        [self.string() for _ in range(self.uvarint())],
                        self.nullable(self.f64),
                        self.nullable(self.string),
                        self.map(self.f64),
                        self.map(self.string),
                    )
                )
            else:
                rows.append(
                    (
                        self.string(),
                        self.string(),
                        self.nullable(self.string),
                        self.nullable(self.f64),
                        self.nullable(self.string),
                        self.datetime(),
                    )
                )
        return rows


row_timestamps = st.integers(TS_MIN, TS_MAX)


@FAST
@given(
    st.lists(prediction_records(row_timestamps), max_size=6),
    st.lists(label_records(row_timestamps), max_size=6),
)
def test_rowbinary_holds_the_python_rows(
    predictions: list[dict[str, Any]], labels: list[dict[str, Any]]
) -> None:
    for table, records in (("predictions", predictions), ("labels", labels)):
        data = schemas.native.rowbinary(table, records)
        assert data is not None
        expected = to_rows(table, records)
        if table == "predictions":  # ints among the scores are Float64 in the table
            expected = [
                (*row[:9], {k: float(v) for k, v in row[9].items()}, row[10]) for row in expected
            ]
        assert strict(RowBinaryReader(data).rows(table)) == strict(expected)
        # decoded records (all fields present) give the same rows
        name = "prediction" if table == "predictions" else "label"
        decoded = [PY.decode_as(name, PY.encode(name, r)) for r in records]
        assert schemas.native.rowbinary(table, iter(decoded)) == data


def test_rowbinary_declines_records_outside_the_shape() -> None:
    good = [PREDICTION, {**PREDICTION, "prediction_id": "p-2"}]
    assert schemas.native.rowbinary("predictions", good) is not None
    assert schemas.native.rowbinary("predictions", []) == b""
    for bad in (
        {**PREDICTION, "timestamp": TS_MIN - 1},
        {**PREDICTION, "timestamp": TS_MAX + 1},
        {**PREDICTION, "timestamp": 1.0},
        {**PREDICTION, "timestamp": True},
        {**PREDICTION, "features": {"x": math.nan}},
        {**PREDICTION, "features": {"x": 2**63}},
        {**PREDICTION, "features": {"x": Text("a")}},
        {**PREDICTION, "features": OrderedDict(x=1.0)},
        {**PREDICTION, "prediction": True},
        {**PREDICTION, "prediction": math.inf},
        {**PREDICTION, "prediction": None},
        {**PREDICTION, "scores": {"a": math.nan}},
        {**PREDICTION, "scores": 0},
        {**PREDICTION, "segment": {"a": 1}},
        {**PREDICTION, "model_version": None},
        {**PREDICTION, "model_name": "\udc80"},
        {k: v for k, v in PREDICTION.items() if k != "features"},
        Record(PREDICTION),
    ):
        assert schemas.native.rowbinary("predictions", [*good, bad]) is None, bad
    for bad in (
        {**LABEL, "label": math.nan},
        {**LABEL, "label": False},
        {**LABEL, "model_version": 3},
        {**LABEL, "timestamp": TS_MAX + 1},
        {k: v for k, v in LABEL.items() if k != "label"},
    ):
        assert schemas.native.rowbinary("labels", [LABEL, bad]) is None, bad
    # extra keys are ignored, as schemas.rows ignores them
    assert schemas.native.rowbinary("labels", [{**LABEL, "x": 1}]) == schemas.native.rowbinary(
        "labels", [LABEL]
    )
    assert schemas.native.rowbinary("alerts", [LABEL]) is None


def _engine_records(seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Edge cases plus a seeded random batch, in the shape the codec returns."""
    rnd = random.Random(seed)
    words = ["", "a", "é", "日本", "🙂", "x" * 200, "tab\there", "quote'\"", "\x00nul"]
    values: list[Any] = [None, 0, -1, LONG_MAX, LONG_MIN, 2**53 + 1, True, False, 0.0, -0.0]
    values += [5e-324, 1.7976931348623157e308, -2.5, *words]
    # A few months apart at most (one partition a month, at most 100 an insert), and the
    # extremes ms_to_datetime accepts.
    now, edge_times = 1_700_000_000_000, [TS_MIN, TS_MAX, -1, 0, 1, TS_MIN + 1, TS_MAX - 1]
    predictions: list[dict[str, Any]] = []
    for i in range(300):
        n = rnd.randrange(0, 25)
        features = {
            f"{rnd.choice(words)}{j}": rnd.choice([*values, rnd.gauss(0, 1)]) for j in range(n)
        }
        prediction = rnd.choice(
            [rnd.choice(words), rnd.gauss(0, 1), rnd.randrange(-9, 9), LONG_MIN]
        )
        record = {
            "prediction_id": f"p{i:04d}{rnd.choice(words)}",
            "model_name": rnd.choice(["churn", "fraud", "é"]),
            "model_version": rnd.choice(["1", "2", ""]),
            "timestamp": rnd.choice([*edge_times, *([rnd.randrange(now - 2**32, now)] * 4)]),
            "features": features,
            "prediction": prediction,
            "scores": rnd.choice([None, {}, {"yes": 0.25, "no": 0.75}, {w: 1.5 for w in words}]),
            "segment": rnd.choice([None, {}, {"region": "eu"}, {w: w for w in words}]),
        }
        predictions.append(PY.decode_as("prediction", PY.encode("prediction", record)))
    labels: list[dict[str, Any]] = []
    for i in range(200):
        record = {
            "prediction_id": f"p{i:04d}",
            "model_name": rnd.choice(["churn", "é"]),
            "label": rnd.choice([rnd.choice(words), rnd.gauss(0, 1), 3, -0.0]),
            "timestamp": rnd.choice([*edge_times, *([rnd.randrange(now - 2**32, now)] * 4)]),
            "model_version": rnd.choice([None, "1", "", "日本"]),
        }
        labels.append(PY.decode_as("label", PY.encode("label", record)))
    return predictions, labels


@pytest.mark.timeout(120)
def test_rowbinary_insert_equals_python_insert(chdb_client: Any, ch_database: str) -> None:
    """The same records through ``client.insert`` (Python rows) and through ``raw_insert``
    of the native RowBinary land as the same rows in the real engine."""
    client, db = chdb_client, ch_database
    for statement in table_ddl(db):
        client.command(statement)
    predictions, labels = _engine_records()
    for table, records in (("predictions", predictions), ("labels", labels)):
        # No TTL: the edge-case timestamps (year 1, year 9999) must stay put.
        client.command(f"ALTER TABLE {db}.{table} REMOVE TTL")
        client.command(f"CREATE TABLE {db}.{table}_native AS {db}.{table}")
        client.command(f"CREATE TABLE {db}.{table}_block AS {db}.{table}")
        topic = Topic.PREDICTIONS if table == "predictions" else Topic.LABELS
        python_rows = topic_rows(topic, records)[table]  # what ClickHouseStore.write inserts
        client.insert(f"{db}.{table}", python_rows, column_names=list(COLUMNS[table]))
        data = schemas.native.rowbinary(table, records)
        assert data is not None
        client.raw_insert(
            f"{db}.{table}_native", list(COLUMNS[table]), insert_block=data, fmt="RowBinary"
        )
        # The same rows as one Native block (what the store inserts when it can). Its
        # LowCardinality columns are plain: cast on insert even with type conversion off.
        block = schemas.native.native_block(table, data)
        assert block is not None
        client.raw_insert(
            f"{db}.{table}_block",
            list(COLUMNS[table]),
            insert_block=block,
            fmt="Native",
            settings={"input_format_native_allow_types_conversion": 0},
        )
        columns = ", ".join(COLUMNS[table])
        select = (
            f"SELECT {columns}, toUnixTimestamp64Milli(timestamp) FROM {db}.{{}} "
            "ORDER BY prediction_id, timestamp"
        )
        expected = client.query(select.format(table)).result_rows
        actual = client.query(select.format(f"{table}_native")).result_rows
        assert len(expected) == len(records)
        assert strict(actual) == strict(expected)
        assert strict(client.query(select.format(f"{table}_block")).result_rows) == strict(expected)
        assert sorted(row[-1] for row in actual) == sorted(r["timestamp"] for r in records)


def test_table_types_are_the_engines(chdb_client: Any, ch_database: str) -> None:
    """``schemas.native.TABLE_TYPES`` (what the Native block declares) are the types the
    DDL gives the raw-event tables, column by column."""
    client, db = chdb_client, ch_database
    for statement in table_ddl(db):
        client.command(statement)
    for table, types in schemas.native.TABLE_TYPES.items():
        described = client.query(f"DESCRIBE TABLE {db}.{table}").result_rows
        assert [(row[0], row[1]) for row in described] == list(
            zip(COLUMNS[table], types, strict=True)
        )


def test_native_block_refuses_what_it_cannot_convert() -> None:
    """Rows that do not parse to their end, another table, no rows, an unknown or
    unsupported type, names and types that differ in number: None (the store then
    inserts the RowBinary, and ClickHouse reports what is wrong with it)."""
    _, labels = _engine_records()
    rows = schemas.native.rowbinary("labels", labels[:3])
    assert rows is not None
    block = schemas.native.native_block("labels", rows)
    assert block is not None and block[:2] == bytes([6, 3])  # 6 columns, 3 rows
    for bad in (rows[:-1], rows + b"\x00", rows[:5], b"\xff" * 12):
        assert schemas.native.native_block("labels", bad) is None, bad
    assert schemas.native.native_block("alerts", rows) is None
    assert schemas.native.native_block("labels", b"") is None
    convert = driftline_native.rowbinary_to_native
    one = b"\x01a" + (5).to_bytes(8, "little")  # a String, then 8 bytes
    assert convert(["s", "t"], ["String", "Int64"], one) is not None
    assert convert(["s", "t"], ["String", "UInt8"], one) is None  # a type it does not know
    assert convert(["s"], ["String", "Int64"], one) is None
    assert convert(["s", "t"], ["String", "Nullable(Array(String))"], b"\x01a\x00\x00") is None
    assert convert(["n"], ["Nullable(String)"], b"\x02") is None  # a flag other than 0/1
    assert convert(["a"], ["Array(String)"], b"\x05\x00") is None  # 5 values, 1 byte left
    # A NULL is the type's default in the block, after the null map.
    header = b"\x01\x01" + b"\x01n" + b"\x0fNullable(Int64)"  # 1 column, 1 row; name, type
    assert convert(["n"], ["Nullable(Int64)"], b"\x01") == header + b"\x01" + bytes(8)


@pytest.mark.parametrize("name", ["prediction", "label"])
def test_encode_many_equals_encode_record_by_record(name: str) -> None:
    """A batch mixing the common shape, records outside it and invalid ones: each place
    holds what ``encode`` returns or raises, on the native and the Python codec."""
    base = PREDICTION if name == "prediction" else LABEL
    records: list[Any] = [base, *_refused(name), {**base, "prediction_id": "p-2"}, None]
    small = AvroCodec(schema_limits={name: 24})  # the native bytes of base are too big
    for codec in (NAT, PY, small):
        many = codec.encode_many(name, records)
        assert len(many) == len(records)
        for record, got in zip(records, many, strict=True):
            expected = outcome(codec.encode, name, record)
            if isinstance(got, EncodeError):
                assert expected == ("EncodeError", str(got)), record
            else:
                assert expected == ("ok", strict(got)), record
    assert any(isinstance(x, EncodeError) for x in NAT.encode_many(name, records))
    assert all(isinstance(x, EncodeError) for x in small.encode_many(name, [base]))
    with pytest.raises(EncodeError, match="unknown schema"):
        NAT.encode_many("nope", [base])


@pytest.mark.parametrize("name", ["prediction", "label"])
def test_encode_all_is_encode_many_when_everything_encodes_natively(name: str) -> None:
    """``encode_all``: the batch's encodings when every record takes the native path within
    the size limit, else None (then ``encode_many`` says which fail)."""
    base = PREDICTION if name == "prediction" else LABEL
    good = [base, {**base, "prediction_id": "p-2"}]
    assert NAT.encode_all(name, good) == NAT.encode_many(name, good)
    assert NAT.encode_all(name, []) == []
    for refused in _refused(name):
        assert NAT.encode_all(name, [*good, refused]) is None
    assert NAT.encode_all(name, [*good, None]) is None  # type: ignore[list-item]
    assert AvroCodec(schema_limits={name: 24}).encode_all(name, good) is None  # over the limit
    assert PY.encode_all(name, good) is None  # no native path
    with pytest.raises(EncodeError, match="unknown schema"):
        NAT.encode_all("nope", good)


@FAST
@given(st.lists(st.text(), max_size=30), st.integers(1, 64))
def test_blake2b_batches_equal_hashlib(ids: list[str], size: int) -> None:
    """The id digests of the duplicate filter and the windows' event keys."""
    import hashlib

    expected = []
    for i in ids:
        try:
            expected.append(hashlib.blake2b(i.encode(), digest_size=size).digest())
        except UnicodeEncodeError:  # lone surrogates: the native side declines the batch
            assert driftline_native.blake2b_each(ids, size) is None
            assert driftline_native.blake2b_concat(ids, size) is None
            return
    assert driftline_native.blake2b_each(ids, size) == expected
    assert driftline_native.blake2b_concat(ids, size) == b"".join(expected)


def test_blake2b_batches_decline_what_they_cannot_hash() -> None:
    for ids, size in ((["a", 1], 8), (["a", Text("b")], 8), (["a"], 0), (["a"], 65)):
        assert driftline_native.blake2b_each(ids, size) is None
        assert driftline_native.blake2b_concat(ids, size) is None


def test_event_keys_and_dedup_digests_are_the_python_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    import numpy as np

    import streams.dedup
    import streams.windows

    ids = [f"p-{i}-é" for i in range(500)]
    native_keys = streams.windows.event_keys(ids)
    python_keys = [
        int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") for i in ids
    ]
    assert native_keys.dtype == np.uint64 and native_keys.tolist() == python_keys
    native_digests = streams.dedup._digests(ids)
    monkeypatch.setattr(streams.windows, "driftline_native", None)
    monkeypatch.setattr(streams.dedup, "driftline_native", None)
    assert streams.windows.event_keys(ids).tolist() == python_keys
    assert streams.dedup._digests(ids) == native_digests == [streams.dedup._digest(i) for i in ids]


def test_decode_many_as_equals_decode_as_payload_by_payload() -> None:
    """What the Kafka worker decodes a fetched batch with: per payload, decode_as's record
    or its error — wrong schema, garbage, truncation, non-bytes included."""
    good = NAT.encode("prediction", PREDICTION)
    label = NAT.encode("label", LABEL)
    payloads: list[Any] = [
        good,
        label,  # a label on the predictions topic: schema mismatch
        good[:-3],
        b"",
        b"\x00garbage",
        bytearray(good),
        memoryview(good),
        NAT.encode("prediction", {**PREDICTION, "prediction_id": "p-2", "scores": {"a": 0.5}}),
        PY.encode("prediction", {**PREDICTION, "features": {}}),
        42,
    ]
    for codec in (NAT, PY):
        many = codec.decode_many_as("prediction", payloads)
        assert len(many) == len(payloads)
        for data, got in zip(payloads, many, strict=True):
            expected = outcome(codec.decode_as, "prediction", data)
            if isinstance(got, DecodeError):
                message = re.sub(r" at 0x[0-9a-f]+", " at 0x", str(got))
                assert expected == ("DecodeError", message), data
            else:
                assert expected == ("ok", strict(got)), data
    kinds = [isinstance(x, DecodeError) for x in NAT.decode_many_as("prediction", payloads)]
    assert kinds == [False, True, True, True, True, False, False, False, False, True]
    with pytest.raises(ValueError, match="unknown schema"):
        NAT.decode_many_as("nope", [good])


class _Bytes(bytes):
    """A bytes subclass: decoded by the Python path, never by the native one."""


@pytest.mark.parametrize("schema_name", ["prediction", "label"])
def test_decode_many_as_whole_batch_path_and_each_reason_to_leave_it(schema_name: str) -> None:
    """A batch of current-schema payloads is decoded in one native call (``decode_all``),
    equal to decode_as payload by payload; one payload that the per-payload checks would
    send elsewhere — a bytes subclass, over the size limit, another schema's header,
    truncated, trailing bytes, not bytes at all — makes the native call decline the whole
    batch (None), and the general path then gives each payload its own outcome."""
    base = PREDICTION if schema_name == "prediction" else LABEL
    other = "label" if schema_name == "prediction" else "prediction"
    good = [
        NAT.encode(
            schema_name, {**base, "prediction_id": f"p-{i}", "timestamp": base["timestamp"] + i}
        )
        for i in range(20)
    ]
    native = NAT._native[schema_name]
    header, limit = NAT._current[schema_name].header, NAT.limit(schema_name)
    expected = [strict(PY.decode_as(schema_name, data)) for data in good]
    whole = native.decode_all(good, header, limit)
    assert whole is not None and [strict(r) for r in whole] == expected
    assert [strict(r) for r in NAT.decode_many_as(schema_name, good)] == expected
    assert native.decode_all(good, header, max(map(len, good)) - 1) is None  # over the limit
    spoilers: list[Any] = [
        _Bytes(good[3]),
        good[3] + b"\x00",  # a trailing byte
        good[3][:-2],  # truncated
        good[3][:2] + bytes(b ^ 0xFF for b in good[3][2:10]) + good[3][10:],  # unknown fingerprint
        NAT.encode(other, PREDICTION if other == "prediction" else LABEL),
        b"\x00garbage",
        bytearray(good[3]),
        7,
    ]
    rng = random.Random(5)
    for spoiler in spoilers:
        batch = list(good)
        batch.insert(rng.randrange(len(batch) + 1), spoiler)
        assert native.decode_all(batch, header, limit) is None, spoiler
        many = NAT.decode_many_as(schema_name, batch)
        for data, got in zip(batch, many, strict=True):
            reference = outcome(NAT.decode_as, schema_name, data)
            if isinstance(got, DecodeError):
                assert reference[0] == "DecodeError", data
            else:
                assert reference == ("ok", strict(got)), data


# --- normalize ------------------------------------------------------------------------------


@FAST
@given(named_records)
def test_normalized_equals_the_round_trip_and_the_python_normalizer(
    item: tuple[str, dict[str, Any]],
) -> None:
    """The embedded runtime hands the processing thread ``normalized`` records instead of
    decoding what it just encoded: equal to the round trip in values, types, float bits and
    key order, and to the Python normalizer it replaces; the input is not shared."""
    from streams.embedded import _NORMALIZE

    name, record = item
    (got,) = schemas.native.normalized(name, [record])
    assert got is not None
    expected = PY.decode_as(name, PY.encode(name, record))
    assert strict(got) == strict(expected)
    topic = Topic.PREDICTIONS if name == "prediction" else Topic.LABELS
    assert strict(_NORMALIZE[topic](record)) == strict(expected)
    for key, value in got.items():
        if type(value) is dict:
            assert value is not record[key]  # maps are copies


def test_normalized_declines_what_it_does_not_handle() -> None:
    prediction = dict(PREDICTION)
    odd = [
        {**prediction, "extra": 1},  # unknown field
        {k: v for k, v in prediction.items() if k != "features"},  # missing field
        OrderedDict(prediction),  # not an exact dict
        {**prediction, "features": OrderedDict(prediction["features"])},
        {**prediction, "prediction": True},  # a bool is not a double
        {**prediction, "scores": {"yes": "0.5"}},
        3,
    ]
    assert schemas.native.normalized("prediction", odd) == [None] * len(odd)
    assert schemas.native.normalized("prediction", [prediction])[0] is not None
    assert schemas.native.normalized("alert_ack", [prediction]) is None
    assert schemas.native.normalized("prediction", (prediction,)) is None  # lists only


# --- feature columns ------------------------------------------------------------------------

column_values = st.one_of(
    st.none(),
    st.floats(),  # NaN and inf too: the windows count them as missing
    st.integers(LONG_MIN, LONG_MAX),
    st.booleans(),
    st.integers(min_value=2**63, max_value=2**80),  # beyond int64: declined
    st.sampled_from(["1.5", "x"]),  # strings: declined
)


@FAST
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), column_values, max_size=4),
        max_size=12,
    )
)
def test_feature_columns_equal_numpy_or_decline(feats: list[dict[str, Any]]) -> None:
    import numpy as np

    names = ["a", "b", "c"]
    got = schemas.native.feature_columns(feats, names)
    handled = all(
        all(
            name in f
            and (
                f[name] is None
                or type(f[name]) in (float, bool)
                or (type(f[name]) is int and LONG_MIN <= f[name] <= LONG_MAX)
            )
            for name in names
        )
        for f in feats
    )
    if not handled:
        assert got is None
        return
    assert got is not None
    expected = np.array([[f[n] for n in names] for f in feats], dtype=np.float64).reshape(
        len(feats), len(names)
    )
    assert got.shape == (len(names), len(feats))
    assert got.tobytes() == np.ascontiguousarray(expected.T).tobytes()  # bit for bit
    assert got.flags.writeable


def test_feature_columns_decline_odd_containers() -> None:
    assert schemas.native.feature_columns([OrderedDict(a=1.0)], ["a"]) is None
    assert schemas.native.feature_columns([{"a": 1.0}, 3], ["a"]) is None
    assert schemas.native.feature_columns(({"a": 1.0},), ["a"]) is None  # lists only
    assert schemas.native.feature_columns([], ["a"]).shape == (1, 0)


def test_prediction_rows_encode_as_their_records_and_refuse_other_shapes() -> None:
    """``AvroCodec.encode_prediction_rows`` (columns, natively) gives per row the bytes of
    ``encode`` of the record; a column outside the strict shape gives None, never a wrong
    payload."""
    import math

    import numpy as np

    codec = AvroCodec()
    rng = np.random.default_rng(3)
    n, names = 40, ["a", "b", "ünï"]
    values = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-300, 300, size=(n, 3))
    values[1, 0], values[2, 1], values[3, 2] = np.nan, np.inf, -np.inf
    ids = [f"p{i}" for i in range(n)]
    stamps = rng.integers(-(2**62), 2**62, size=n)
    preds: list = [float(v) if i % 2 else "yes" for i, v in enumerate(rng.normal(size=n))]
    preds[4] = 3  # an int prediction is a double, as in encode
    rows = codec.encode_prediction_rows(ids, "m", "2", stamps, names, values, preds)
    assert rows is not None and len(rows) == n
    for i, payload in enumerate(rows):
        features = {
            k: (float(v) if math.isfinite(v) else None)
            for k, v in zip(names, values[i], strict=True)
        }
        record = {"prediction_id": ids[i], "model_name": "m", "model_version": "2",
                  "timestamp": int(stamps[i]), "features": features, "prediction": preds[i]}  # fmt: skip
        assert payload == codec.encode("prediction", record)
    ok = (ids, "m", "2", stamps, names, values, preds)
    bad = {
        "an id that is not a str": ([*ids[:-1], 5], *ok[1:]),
        "a bool prediction": (*ok[:6], [*preds[:-1], True]),
        "a None prediction": (*ok[:6], [*preds[:-1], None]),
        "a name that is not a str": (*ok[:4], [*names[:-1], 1], *ok[5:]),
        "fewer predictions": (*ok[:6], preds[:-1]),
        "fewer timestamps": (*ok[:3], stamps[:-1], *ok[4:]),
        "a matrix of another shape": (*ok[:5], values[:, :2], preds),
    }
    for why, args in bad.items():
        assert codec.encode_prediction_rows(*args) is None, why
    assert codec.encode_prediction_rows([], "m", "2", [], names, np.empty((0, 3)), []) == []
