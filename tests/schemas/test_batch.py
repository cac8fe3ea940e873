"""Tests of schemas/batch.py: the Avro batch body (an Avro array of bytes).

Differential: :func:`schemas.batch.join` must write what fastavro writes for the schema
``{"type": "array", "items": "bytes"}``, :func:`schemas.batch.split` must read what
fastavro reads (blocks in both count forms), and the native and Python paths must agree
on every body, well-formed or not.
"""

from __future__ import annotations

import io
from typing import Any

import driftline_native  # the extension is part of the dev install (make venv)
import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas.batch
from schemas.batch import SCHEMA, Split, join, split

PARSED = fastavro.parse_schema(SCHEMA)
ITEMS = st.lists(st.binary(max_size=300), max_size=12)


def fastavro_body(items: list[bytes]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, PARSED, items)
    return out.getvalue()


def long(n: int) -> bytes:
    """An Avro long (zig-zag varint), written independently of the module under test."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def sized_blocks(blocks: list[list[bytes]]) -> bytes:
    """A body in the byte-size block form: -count, size in bytes, items; then 0."""
    out = bytearray()
    for items in blocks:
        data = b"".join(long(len(i)) + i for i in items)
        out += long(-len(items)) + long(len(data)) + data
    return bytes(out + b"\x00")


@pytest.fixture(params=["native", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(schemas.batch, "driftline_native", None)
    return str(request.param)


@settings(max_examples=200, deadline=None)
@given(items=ITEMS)
def test_join_writes_what_fastavro_writes_and_split_reads_it_back(items: list[bytes]) -> None:
    body = join(items)
    assert body == fastavro_body(items)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schemas.batch, "driftline_native", None)
        assert join(items) == body  # the Python path
        assert split(body) == Split(items, None, len(body))
    assert split(body) == Split(items, None, len(body))
    assert driftline_native.split_bytes_array(body) == items


@settings(max_examples=100, deadline=None)
@given(blocks=st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=5), max_size=4))
def test_split_reads_blocks_with_byte_sizes_as_fastavro_does(blocks: list[list[bytes]]) -> None:
    body = sized_blocks(blocks)
    expected = [item for items in blocks for item in items]
    assert fastavro.schemaless_reader(io.BytesIO(body), PARSED, None) == expected
    assert split(body) == Split(expected, None, len(body))
    assert schemas.batch._split(body) == Split(expected, None, len(body))


@settings(max_examples=400, deadline=None)
@given(items=ITEMS, data=st.data())
def test_native_and_python_agree_on_damaged_bodies(items: list[bytes], data: Any) -> None:
    body = bytearray(join(items))
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    cut = bytes(body[: data.draw(st.integers(0, len(body)))]) + data.draw(st.binary(max_size=3))
    python = schemas.batch._split(cut)
    native = driftline_native.split_bytes_array(cut)
    if native is None:
        assert python.error is not None
        assert python.rest <= len(cut)
    else:
        assert python == Split(native, None, len(cut))
    # whatever the damage, what was read is whole items and the rest starts after them
    assert split(cut) == python
    consumed = sum(len(f) for f in python.frames)
    assert consumed <= python.rest


@pytest.mark.parametrize(
    ("body", "frames", "error", "rest"),
    [
        (b"", [], "the array ends without its end marker (a 0 count)", 0),
        (b"\x00", [], None, 1),
        (b"\x04\x02a\x04bc", [b"a", b"bc"], "the array ends without its end marker", 6),
        (b"\x04\x02a\x08bc\x00", [b"a"], "item 1 is truncated: its length says 4 bytes, 3", 3),
        (b"\x04\x02a\x03bc\x00", [b"a"], "malformed length of item 1", 3),
        (b"\x02\x02a\x00junk", [b"a"], "4 bytes after the end of the array", 4),
        (b"\x01\x7f", [], "malformed block size at byte 0", 0),
        (b"\xff" * 11, [], "malformed block count at byte 0", 0),
        (b"\x02\x02a\x80", [b"a"], "malformed block count at byte 3", 3),
        # a count far beyond the body: the items that are there, then where it broke
        (long(10**9) + long(1) + b"a", [b"a"], "malformed length of item 1", 7),
    ],
    ids=[
        "empty",
        "no-items",
        "no-end",
        "overrun",
        "negative-length",
        "trailing",
        "negative-size",
        "overlong-varint",
        "truncated-varint",
        "huge-count",
    ],
)
def test_malformed_bodies_say_where_and_why(
    path: str, body: bytes, frames: list[bytes], error: str | None, rest: int
) -> None:
    got = split(body)
    assert got.frames == frames and got.rest == rest
    if error is None:
        assert got.error is None
    else:
        assert got.error is not None and got.error.startswith(error), got.error


def test_join_refuses_what_is_not_bytes(path: str) -> None:
    with pytest.raises(TypeError, match="batch items must be bytes, got str"):
        join([b"a", "b"])  # type: ignore[list-item]
    assert join([]) == b"\x00"
