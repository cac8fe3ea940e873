"""Duplicate suppression for prediction and label events.

A publisher that retries after a timeout may deliver the same event twice (the
first attempt was accepted, but the answer was lost). Counting it twice would
skew every window, so both runtimes pass inputs through ``Deduplicator`` first:
a prediction or label whose ``prediction_id`` was already seen recently becomes a
dead letter with the reason, instead of being counted again.

Memory is bounded: the most recent ``capacity`` ids per topic are remembered
(retries come within seconds or minutes, far inside that horizon).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from schemas.native import driftline_native
from schemas.topics import Topic
from streams.processor import Emit, invalid

_KEYED = (Topic.PREDICTIONS, Topic.LABELS)


def _digest(value: str) -> bytes:
    return hashlib.blake2b(value.encode(), digest_size=12).digest()


def _digests(ids: list[str]) -> list[bytes]:
    """``_digest`` of each id, in one native call when the extension is installed."""
    if driftline_native is not None:
        out: list[bytes] | None = driftline_native.blake2b_each(ids, 12)
        if out is not None:
            return out
    return [_digest(i) for i in ids]


class Deduplicator:
    """Drop (as dead letters) predictions and labels whose id was seen recently.

    Examples
    --------
    >>> d = Deduplicator(capacity=10)
    >>> kept, dead = d.filter(Topic.PREDICTIONS, [{"prediction_id": "a"}, {"prediction_id": "a"}])
    >>> len(kept), len(dead), dead[0][1]["reason"]
    (1, 1, "duplicate prediction_id 'a' on driftline.predictions: already received")
    """

    def __init__(self, capacity: int = 200_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._seen: dict[Topic, OrderedDict[bytes, None]] = {t: OrderedDict() for t in _KEYED}
        self.duplicates = 0

    def filter(self, topic: Topic, records: list[dict]) -> tuple[list[dict], list[Emit]]:
        """Records not seen before, and a dead letter for each duplicate."""
        if topic not in _KEYED:
            return records, []
        seen = self._seen[topic]
        kept: list[dict] = []
        dead: list[Emit] = []
        ids: list[Any] = [rec.get("prediction_id") for rec in records]
        if all(type(pid) is str for pid in ids):
            keys: list[bytes | None] = list(_digests(ids))
        else:
            keys = [_digest(pid) if isinstance(pid, str) else None for pid in ids]
        if None not in keys and seen.keys().isdisjoint(keys) and len(set(keys)) == len(keys):
            # The common batch, no duplicate in it: every record is kept (same result as
            # the loop below, without a Python step per record).
            seen.update(dict.fromkeys(keys))
            kept.extend(records)
        else:
            for rec, pid, key in zip(records, ids, keys, strict=True):
                if key is None:
                    kept.append(rec)  # the processors dead-letter it with the precise reason
                    continue
                if key in seen:
                    self.duplicates += 1
                    reason = f"duplicate prediction_id '{pid}' on {topic}: already received"
                    dead.append(invalid(topic, rec, reason))
                    continue
                seen[key] = None
                kept.append(rec)
        while len(seen) > self.capacity:
            seen.popitem(last=False)
        return kept, dead

    def state(self) -> dict:
        return {
            "capacity": self.capacity,
            "duplicates": self.duplicates,
            "seen": {t.value: list(s) for t, s in self._seen.items()},
        }

    @classmethod
    def from_state(cls, state: dict) -> Deduplicator:
        d = cls(state["capacity"])
        d.duplicates = state["duplicates"]
        for name, keys in state["seen"].items():
            d._seen[Topic(name)] = OrderedDict.fromkeys(keys)
        return d
