"""Duplicate suppression (``streams.dedup.Deduplicator``) against a plain reference model."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.native import driftline_native
from schemas.topics import Topic
from streams.dedup import Deduplicator

ids = st.sampled_from([f"p{i}" for i in range(12)])
batches = st.lists(st.lists(ids, max_size=8), max_size=8)
# the ids memory: the native extension's (as built by `make test`) and the Python one
IMPLEMENTATIONS = [
    pytest.param(True, id="native"),
    pytest.param(False, id="python"),
]


def test_the_native_memory_is_the_default() -> None:
    assert driftline_native is not None and hasattr(driftline_native, "RecentIds")
    assert type(Deduplicator()._seen[Topic.LABELS]).__name__ == "RecentIds"


def reference(capacity: int, batches: list[list[str]]) -> list[tuple[list[str], list[str]]]:
    """Kept and duplicate ids per batch: an id is a duplicate when it is among the last
    ``capacity`` distinct ids kept before it (this batch's included)."""
    seen: OrderedDict[str, None] = OrderedDict()
    out = []
    for batch in batches:
        kept, dup = [], []
        for pid in batch:
            if pid in seen:
                dup.append(pid)
                continue
            seen[pid] = None
            kept.append(pid)
        while len(seen) > capacity:
            seen.popitem(last=False)
        out.append((kept, dup))
    return out


@pytest.mark.parametrize("native", IMPLEMENTATIONS)
@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 10), batches=batches, odd=st.integers(0, 20))
def test_filter_equals_the_reference(
    native: bool, capacity: int, batches: list[list[str]], odd: int
) -> None:
    d = Deduplicator(capacity, native=native)
    other = Deduplicator(capacity, native=not native)
    got = []
    for n, batch in enumerate(batches):
        records: list[dict[str, Any]] = [{"prediction_id": p} for p in batch]
        if n == odd and records:
            # an event without a string id is kept (the processors dead-letter it) and
            # remembers nothing; the batch around it is filtered as usual
            records.insert(len(records) // 2, {"prediction_id": 7})
        kept, dead = d.filter(Topic.PREDICTIONS, records)
        assert other.filter(Topic.PREDICTIONS, records) == (kept, dead)
        kept = [r for r in kept if r["prediction_id"] != 7]
        got.append(([r["prediction_id"] for r in kept], [e[1]["reason"] for e in dead]))
    expected = reference(capacity, batches)
    assert [k for k, _ in got] == [k for k, _ in expected]
    assert [len(r) for _, r in got] == [len(dup) for _, dup in expected]
    for (_, reasons), (_, dup) in zip(got, expected, strict=True):
        for reason, pid in zip(reasons, dup, strict=True):
            assert (
                reason
                == f"duplicate prediction_id '{pid}' on {Topic.PREDICTIONS}: already received"
            )
    assert d.duplicates == sum(len(dup) for _, dup in expected)
    assert d.state() == other.state()
    restored = Deduplicator.from_state(d.state(), native=not native)
    assert restored.state() == d.state()
    # a checkpoint written before the keys were joined (a list of keys) restores the same
    listed = {**d.state(), "seen": {t.value: s.keys() for t, s in d._seen.items()}}
    assert Deduplicator.from_state(listed, native=native).state() == d.state()
    # the restored memory goes on exactly as the original
    tail = [{"prediction_id": f"p{i}"} for i in range(12)]
    assert restored.filter(Topic.PREDICTIONS, tail) == d.filter(Topic.PREDICTIONS, tail)


@pytest.mark.parametrize("native", IMPLEMENTATIONS)
def test_ids_that_are_not_plain_strings(native: bool) -> None:
    class Id(str):
        pass

    d = Deduplicator(native=native)
    records = [
        {"prediction_id": Id("a")},
        {"prediction_id": "a"},  # the same text: a duplicate of the subclass's
        {"prediction_id": "\ud800"},  # a lone surrogate still gets a key
        {"prediction_id": "\ud800"},
        {},
    ]
    kept, dead = d.filter(Topic.PREDICTIONS, records)
    assert kept == [records[0], records[2], records[4]]
    assert [e[1]["reason"] for e in dead] == [
        f"duplicate prediction_id 'a' on {Topic.PREDICTIONS}: already received",
        f"duplicate prediction_id '\ud800' on {Topic.PREDICTIONS}: already received",
    ]


@pytest.mark.parametrize("native", IMPLEMENTATIONS)
def test_memory_bounds_and_bad_arguments(native: bool) -> None:
    d = Deduplicator(capacity=1_000, native=native)
    for start in range(0, 5_000, 500):
        d.filter(Topic.LABELS, [{"prediction_id": f"x{i}"} for i in range(start, start + 500)])
    assert len(d._seen[Topic.LABELS]) == 1_000
    # the oldest are forgotten: the last 1,000 (x4000..x4999) are remembered
    kept, dead = d.filter(Topic.LABELS, [{"prediction_id": "x4000"}, {"prediction_id": "x3999"}])
    assert [r["prediction_id"] for r in kept] == ["x3999"] and len(dead) == 1
    with pytest.raises(ValueError, match="capacity must be positive"):
        Deduplicator(capacity=0, native=native)


def test_the_batch_is_copied_not_shared() -> None:
    records = [{"prediction_id": "a"}, {"prediction_id": "b"}]
    kept, dead = Deduplicator().filter(Topic.LABELS, records)
    assert kept == records and kept is not records and dead == []


def test_the_native_memory_refuses_malformed_keys() -> None:
    """A damaged state (keys of another size, not bytes) is refused with a clear error
    instead of being remembered as something else."""
    recent = driftline_native.RecentIds(10)
    with pytest.raises(ValueError, match="a key is 12 bytes, got 3"):
        recent.extend([b"abc"])
    with pytest.raises(TypeError):
        recent.extend(["not bytes"])
    with pytest.raises(ValueError, match="a key is 12 bytes, got 0"):
        recent.add_keys([None, b""])
    assert len(recent) == 0  # nothing half-remembered
    with pytest.raises(ValueError, match="a key is 12 bytes"):
        Deduplicator.from_state(
            {"capacity": 5, "duplicates": 0, "seen": {Topic.LABELS.value: [b"short"]}}
        )
    with pytest.raises(ValueError, match="hold 13 bytes, not a multiple of the key size"):
        Deduplicator.from_state(
            {"capacity": 5, "duplicates": 0, "seen": {Topic.LABELS.value: b"x" * 13}}
        )
