"""Duplicate suppression (``streams.dedup.Deduplicator``) against a plain reference model."""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.topics import Topic
from streams.dedup import Deduplicator

ids = st.sampled_from([f"p{i}" for i in range(12)])
batches = st.lists(st.lists(ids, max_size=8), max_size=8)


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


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10), batches)
def test_filter_equals_the_reference(capacity: int, batches: list[list[str]]) -> None:
    d = Deduplicator(capacity)
    got = []
    for batch in batches:
        kept, dead = d.filter(Topic.PREDICTIONS, [{"prediction_id": p} for p in batch])
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
    restored = Deduplicator.from_state(d.state())
    assert restored.state() == d.state()


def test_the_batch_is_copied_not_shared() -> None:
    records = [{"prediction_id": "a"}, {"prediction_id": "b"}]
    kept, dead = Deduplicator().filter(Topic.LABELS, records)
    assert kept == records and kept is not records and dead == []
