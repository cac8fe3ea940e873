"""PendingPredictions: the label join's waiting predictions, native and Python, against the
``OrderedDict`` they replace; their state bytes; bad input."""

from __future__ import annotations

import math
import pickle
import random
from collections import OrderedDict
from typing import Any

import pytest
from support.stream_data import HOUR, T0

from schemas.topics import Topic
from streams.labels import LabelJoinProcessor
from streams.pending import PendingPredictions

I64_MAX = (1 << 63) - 1


class Model:
    """The reference: the OrderedDict of (model, version, ts, prediction) the label join
    used before, with its operations as that code wrote them."""

    def __init__(self) -> None:
        self.d: OrderedDict[str, tuple] = OrderedDict()

    def put(self, pid, model, version, ts, pred) -> None:
        self.d[pid] = (model, version, ts, pred)
        self.d.move_to_end(pid)

    def expire(self, horizon: int) -> int:
        n = 0
        while self.d and next(iter(self.d.values()))[2] < horizon:
            self.d.popitem(last=False)
            n += 1
        return n

    def evict(self, k: int) -> int:
        n = 0
        while n < k and self.d:
            self.d.popitem(last=False)
            n += 1
        return n


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a float prediction survives the state bytes bit for bit)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def _check(model: Model, *stores: PendingPredictions) -> None:
    expected = list(model.d.items())
    for s in stores:
        assert len(s) == len(expected) and bool(s) == bool(expected)
        assert _same(s.items(), expected)


PREDICTIONS = ["yes", "no", 0.25, float("nan"), -0.0, 3, True, None, "é", "\ud800"]


def test_both_stores_behave_as_the_ordered_dict_on_a_random_history() -> None:
    """20,000 random operations on a few hundred ids (repeats, joins, expiry, eviction: the
    native queue compacts its stale slots many times over): after each, both stores hold
    what the OrderedDict holds, in its order; every answer is the same."""
    rng = random.Random(7)
    model, native, python = (
        Model(),
        PendingPredictions(native=True),
        PendingPredictions(native=False),
    )
    assert native.native and not python.native
    stores = (native, python)
    ids = [f"p{i}" for i in range(300)]
    versions = [("m", "1"), ("m", "2"), ("other", "1")]
    clock = T0
    for step in range(20_000):
        op = rng.random()
        clock += rng.randrange(0, 5_000)
        if op < 0.35:
            k = rng.randrange(1, 40)
            batch = [rng.choice(ids) for _ in range(k)]  # repeats inside a batch too
            m, v = rng.choice(versions)
            times = [clock + rng.randrange(-HOUR, HOUR) for _ in batch]
            preds = [rng.choice(PREDICTIONS) for _ in batch]
            for pid, ts, p in zip(batch, times, preds, strict=True):
                model.put(pid, m, v, ts, p)
            for s in stores:
                if rng.random() < 0.5:
                    s.remember(batch, m, v, times, preds)
                else:
                    s.remember_rows(
                        batch, [(m, v, ts, p) for ts, p in zip(times, preds, strict=True)]
                    )
        elif op < 0.5:
            pid, (m, v), p = rng.choice(ids), rng.choice(versions), rng.choice(PREDICTIONS)
            model.put(pid, m, v, clock, p)
            for s in stores:
                s.put(pid, m, v, clock, p)
        elif op < 0.65:
            pid = rng.choice([*ids, 5, None, "missing"])
            want = model.d.pop(pid, None) if isinstance(pid, str) else None
            assert all(_same(s.pop(pid), want) for s in stores)
        elif op < 0.75:
            batch = rng.sample(ids, 20)
            want = sum(model.d.pop(p, None) is not None for p in batch)
            assert all(s.remove_many(batch) == want for s in stores)
        elif op < 0.85:
            batch = [rng.choice([*ids, 7]) for _ in range(10)]
            want = [model.d.get(p) if isinstance(p, str) else None for p in batch]
            for s in stores:
                assert _same(s.get_many(batch), want) and _same(s.get(batch[0]), want[0])
                assert s.contains_any(batch) == any(w is not None for w in want)
        elif op < 0.95:
            horizon = clock - rng.randrange(0, 2 * HOUR)
            want = model.expire(horizon)
            assert all(s.expire(horizon) == want for s in stores)
        else:
            k = rng.randrange(0, 30)
            want = model.evict(k)
            assert all(s.evict(k) == want for s in stores)
        if step % 97 == 0:
            _check(model, *stores)
    _check(model, *stores)
    assert native.state()["data"] == python.state()["data"]


def test_the_state_is_the_same_bytes_from_either_store_and_restores_into_either() -> None:
    """Every kind of prediction (text, float with NaN and -0.0, others pickled beside the
    bytes), ids with non-ASCII text; restored natively from the Python bytes and back."""
    pairs = [(f"id-{i}-é", ("m", str(i % 3), T0 + i, p)) for i, p in enumerate(PREDICTIONS)]
    states = []
    for native in (True, False):
        s = PendingPredictions(native=native)
        for pid, (m, v, ts, p) in pairs:
            s.put(pid, m, v, ts, p)
        s.pop("id-0-é")  # (a stale slot in the native queue: not in the state)
        states.append(s.state())
    assert states[0]["data"] == states[1]["data"] and states[0]["versions"] == states[1]["versions"]
    assert _same(states[0]["objects"], [3, True, None, "\ud800"])
    for state in states:
        for native in (True, False):
            back = PendingPredictions.from_state(pickle.loads(pickle.dumps(state)), native=native)
            assert _same(back.items(), pairs[1:])
            back.put("new", "m", "9", T0, "yes")  # a new version after the restored ones
            assert back.get("new") == ("m", "9", T0, "yes")


def test_the_state_lists_only_the_versions_still_waiting_in_first_seen_order() -> None:
    """Two histories that leave the same predictions waiting give the same state (the join's
    snapshots compare so), whatever versions came and went."""
    a, b = PendingPredictions(), PendingPredictions()
    a.put("gone", "old", "0", T0, "yes")
    a.pop("gone")
    for s in (a, b):
        s.put("x", "m", "2", T0, "no")
        s.put("y", "m", "1", T0, "no")
    assert a.state() == b.state() and a.state()["versions"] == [("m", "2"), ("m", "1")]


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize(
    ("pid", "ts", "reason"),
    [
        (5, T0, "prediction_id must be a string"),
        (b"p", T0, "prediction_id must be a string"),
        ("\udcff", T0, "valid Unicode"),
        ("p", 1 << 63, "within int64"),
        ("p", -(1 << 63) - 1, "within int64"),
        ("p", 1.5, "integer epoch milliseconds"),
        ("p", "1", "integer epoch milliseconds"),
    ],
)
def test_a_prediction_it_cannot_keep_is_refused_with_the_reason_and_nothing_changes(
    native: bool, pid: Any, ts: Any, reason: str
) -> None:
    s = PendingPredictions(native=native)
    s.put("a", "m", "1", T0, "yes")
    with pytest.raises(TypeError, match=reason):
        s.put(pid, "m", "1", ts, "no")
    with pytest.raises(TypeError, match=reason):  # one bad row: none of the batch is kept
        s.remember(["b", pid, "c"], "m", "1", [T0, ts, T0], ["no"] * 3)
    with pytest.raises(ValueError, match="differ in length"):
        s.remember(["b", "c"], "m", "1", [T0], ["no"] * 2)
    assert s.items() == [("a", ("m", "1", T0, "yes"))]
    assert s.get(pid) is None and s.pop(pid) is None


@pytest.mark.parametrize("native", [True, False])
def test_a_corrupt_state_is_a_clear_error_not_a_crash(native: bool) -> None:
    s = PendingPredictions()
    s.put("a", "m", "1", T0, "yes")
    s.put("b", "m", "1", T0, 2)
    good = s.state()
    data = good["data"]
    cases = [
        ({**good, "data": data[:-3]}, ValueError, "truncated"),
        ({**good, "data": data + b"\x00"}, ValueError, "bytes after its last"),
        ({**good, "versions": []}, ValueError, "unknown model version index 0"),
        ({**good, "objects": []}, ValueError, "missing object 0"),
        # the first prediction's kind byte (after count, id, version and time) made 9
        ({**good, "data": data[: 8 + 4 + 1 + 4 + 8] + b"\x09" + data[26:]}, ValueError, "kind 9"),
        ({**good, "data": data[:12] + b"\xff" + data[13:]}, ValueError, "invalid UTF-8"),
    ]
    for state, error, match in cases:
        with pytest.raises(error, match=match):
            PendingPredictions.from_state(state, native=native)


@pytest.mark.parametrize("native", [True, False])
def test_the_join_keeps_the_same_state_with_either_store(native: bool) -> None:
    """A stream through the label join (both join paths, expiry, the memory cap) leaves the
    same outputs and snapshot bytes with the native store as with the Python one."""
    rng = random.Random(3)
    procs = [
        LabelJoinProcessor(window_ms=HOUR, ttl_ms=2 * HOUR, max_pending=300, native=n)
        for n in (True, False)
    ]
    outs: list[list] = [[], []]
    for step in range(60):
        base = T0 + step * 300_000
        preds = [
            {
                "prediction_id": f"p{step}-{i}",
                "model_name": "m",
                "model_version": "1",
                "timestamp": base + i,
                "features": {},
                "prediction": rng.choice(["yes", "no"]),
            }
            for i in range(40)
        ]
        labels = [
            {
                "prediction_id": f"p{step - rng.randrange(0, 3)}-{i}",
                "model_name": "m",
                "label": rng.choice(["yes", "no"]),
                "timestamp": base + 10 + i,
            }
            for i in range(0, 40, 2)
        ]
        for proc, out in zip(procs, outs, strict=True):
            out += proc.process(Topic.PREDICTIONS, preds) + proc.process(Topic.LABELS, labels)
    assert outs[0] == outs[1] and procs[0].snapshot() == procs[1].snapshot()
    stats = procs[0].stats()
    assert stats["joined"] > 500 and stats["predictions_evicted"] > 0
    restored = LabelJoinProcessor(window_ms=HOUR, ttl_ms=2 * HOUR, max_pending=300, native=native)
    restored.restore(procs[0].snapshot())
    assert restored._predictions.items() == procs[1]._predictions.items()


def test_a_snapshot_of_the_previous_version_is_still_restored() -> None:
    """Version 1 snapshots pickled the OrderedDict itself: a checkpoint written before this
    store restores into it, in its order."""
    proc = LabelJoinProcessor()
    proc.process(
        Topic.PREDICTIONS,
        [
            {
                "prediction_id": f"p{i}",
                "model_name": "m",
                "model_version": "1",
                "timestamp": T0 + i,
                "features": {},
                "prediction": "yes",
            }
            for i in range(5)
        ],
    )
    state = pickle.loads(proc.snapshot())
    old = OrderedDict(proc._predictions.items())
    state.update(version=1, predictions=old)
    restored = LabelJoinProcessor()
    restored.restore(pickle.dumps(state))
    assert restored._predictions.items() == list(old.items())
    with pytest.raises(ValueError, match="snapshot version 9"):
        restored.restore(pickle.dumps({**state, "version": 9}))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"prediction_id": 17}, "prediction_id must be a string"),
        ({"prediction_id": "\ud800"}, "valid Unicode"),
        ({"model_name": None}, "model_name and model_version must be strings"),
        ({"model_version": ["1"]}, "model_name and model_version must be strings"),
        ({"timestamp": I64_MAX + 1}, "within int64"),
    ],
)
def test_a_prediction_the_join_cannot_keep_is_dead_lettered_with_the_reason(
    change: dict, reason: str
) -> None:
    """Not the event contract's types (a prediction that did not come through the codec):
    a dead letter naming the field, the rest of the batch joined as usual."""
    proc = LabelJoinProcessor()
    good = {
        "prediction_id": "ok",
        "model_name": "m",
        "model_version": "1",
        "timestamp": T0,
        "features": {},
        "prediction": "yes",
    }
    out = proc.process(Topic.PREDICTIONS, [good, {**good, **change}])
    dead = [r for t, r in out if t == Topic.DEAD_LETTERS]
    assert len(dead) == 1 and reason in dead[0]["reason"]
    assert proc.stats()["pending_predictions"] == 1 and proc._predictions.get("ok")
    out = proc.process(
        Topic.LABELS, [{"prediction_id": 17, "model_name": "m", "label": "yes", "timestamp": T0}]
    )
    assert ["prediction_id must be a string" in r["reason"] for t, r in out] == [True]
