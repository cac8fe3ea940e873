"""Avro batches: many single-object encoded events in one body.

The body of ``POST /v1/predictions`` and ``POST /v1/labels`` with ``Content-Type:
application/vnd.driftline.avro-batch`` (:data:`MEDIA_TYPE`) is the Avro binary encoding of
an array of bytes, ``{"type": "array", "items": "bytes"}`` (:data:`SCHEMA`), each item one
event in Avro single-object encoding (``C3 01``, the writer schema's fingerprint, the
record) — what a Kafka message of the same event holds. Any Avro library writes it: in
Python ``fastavro.schemaless_writer(out, SCHEMA, payloads)``; the SDK uses :func:`join`.

Each item has its own length, so one bad event does not hide the others: the server
answers for each, and a body whose framing breaks is read up to where it breaks.

Examples
--------
>>> body = join([b"a", b"bc"])
>>> body
b'\\x04\\x02a\\x04bc\\x00'
>>> split(body)
Split(frames=[b'a', b'bc'], error=None, rest=7)
>>> split(body[:-1])
Split(frames=[b'a', b'bc'], error='the array ends without its end marker (a 0 count)', rest=6)
"""

from __future__ import annotations

from typing import Final, NamedTuple

from schemas.native import driftline_native

__all__ = ["MEDIA_TYPE", "SCHEMA", "Split", "join", "split"]

MEDIA_TYPE: Final = "application/vnd.driftline.avro-batch"
"""Content type of an Avro batch."""

SCHEMA: Final = {"type": "array", "items": "bytes"}
"""The Avro schema of the body (its items are single-object encoded events)."""


class Split(NamedTuple):
    """What :func:`split` read from a body."""

    frames: list[bytes]
    """The items read, in order: every item when ``error`` is None."""
    error: str | None
    """Why the body could not be read past ``rest``; None when it was read to its end."""
    rest: int
    """Offset of the first byte not part of ``frames`` (``len(body)`` without error)."""


def join(payloads: list[bytes]) -> bytes:
    """The body of an Avro batch holding ``payloads`` (one block, then the end marker).

    Raises
    ------
    TypeError
        An item is not ``bytes``.
    """
    if driftline_native is not None and type(payloads) is list:
        data: bytes | None = driftline_native.join_bytes_array(payloads)
        if data is not None:
            return data
    parts = [_long(len(payloads))] if payloads else []
    for payload in payloads:
        if not isinstance(payload, bytes):
            raise TypeError(f"batch items must be bytes, got {type(payload).__name__}")
        parts.append(_long(len(payload)))
        parts.append(payload)
    parts.append(b"\x00")
    return b"".join(parts)


def split(body: bytes) -> Split:
    """The items of an Avro batch ``body``; where it is malformed, the items before that
    point, the reason and the offset of the rest (which the server dead-letters)."""
    if driftline_native is not None and type(body) is bytes:
        frames: list[bytes] | None = driftline_native.split_bytes_array(body)
        if frames is not None:
            return Split(frames, None, len(body))
    return _split(body)


def _split(body: bytes) -> Split:
    """:func:`split` in Python: also what says where and why a body is malformed."""
    frames: list[bytes] = []
    size = len(body)
    pos = 0
    while True:
        block = pos
        count, pos = _read_long(body, pos)
        if count is None:
            reason = (
                "the array ends without its end marker (a 0 count)"
                if block == size
                else f"malformed block count at byte {block}"
            )
            return Split(frames, reason, block)
        if count == 0:
            break
        if count < 0:  # the byte-size form: the block's size in bytes follows
            length, pos = _read_long(body, pos)
            if length is None or length < 0:
                return Split(frames, f"malformed block size at byte {block}", block)
            count = -count
        for _ in range(count):
            item = pos
            length, pos = _read_long(body, pos)
            if length is None or length < 0:
                return Split(frames, f"malformed length of item {len(frames)}", item)
            if pos + length > size:
                reason = (
                    f"item {len(frames)} is truncated: its length says {length} bytes, "
                    f"{size - pos} are left"
                )
                return Split(frames, reason, item)
            frames.append(body[pos : pos + length])
            pos += length
    if pos != size:
        return Split(frames, f"{size - pos} bytes after the end of the array", pos)
    return Split(frames, None, size)


def _read_long(data: bytes, pos: int) -> tuple[int | None, int]:
    """An Avro ``long`` at ``pos`` and the offset after it; None for a truncated varint or
    one longer than 10 bytes or beyond 64 bits (as the native reader refuses them)."""
    n = 0
    shift = 0
    size = len(data)
    while pos < size:
        b = data[pos]
        pos += 1
        if shift == 63 and b > 1:
            return None, pos
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
        if shift > 63:
            return None, pos
    return None, pos


def _long(n: int) -> bytes:
    """``n`` (non-negative) as an Avro ``long``."""
    n <<= 1  # zig-zag of a non-negative number
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
