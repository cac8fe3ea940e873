"""DriftWindowProcessor: event-time windows, watermark, lateness, drift verdicts, state."""

from __future__ import annotations

import random

import pytest
from support.stream_data import HOUR, T0, predictions, profile

from schemas.codec import AvroCodec
from schemas.topics import DATASET_FEATURE, PREDICTION_FEATURE, Topic
from streams.windows import DriftWindowProcessor


def make(**kw) -> DriftWindowProcessor:
    kw.setdefault("allowed_lateness_ms", 0)
    return DriftWindowProcessor({("churn", "1"): profile()}, window_ms=HOUR, **kw)


def metrics(emits):
    return [r for t, r in emits if t == Topic.DRIFT_METRICS]


def summaries(emits):
    return sorted(
        (r for r in metrics(emits) if r["feature"] == DATASET_FEATURE),
        key=lambda r: r["window_start"],
    )


def primary(emits, feature):
    rows = [r for r in metrics(emits) if r["feature"] == feature and r["primary"]]
    return sorted(rows, key=lambda r: r["window_start"])


def test_known_drift_point_is_detected_and_clean_windows_are_not() -> None:
    proc = make()
    events = predictions(12, 400, drift_from=6)
    out = proc.process(Topic.PREDICTIONS, events) + proc.flush()
    ds = summaries(out)
    assert len(ds) == 12
    assert [r["drift"] for r in ds] == [False] * 6 + [True] * 6
    age = primary(out, "age")
    assert [r["metric"] for r in age] == ["psi"] * 12
    assert all(r["value"] < 0.2 for r in age[:6]) and all(r["value"] >= 0.2 for r in age[6:])
    city = primary(out, "city")
    assert {r["metric"] for r in city} == {"jensenshannon"}
    assert all(not r["drift"] for r in city[:6]) and all(r["drift"] for r in city[6:])
    income = primary(out, "income")
    assert not any(r["drift"] for r in income)
    # prediction drift follows the age shift
    pred = primary(out, PREDICTION_FEATURE)
    assert (
        len(pred) == 12
        and all(r["drift"] for r in pred[6:])
        and not any(r["drift"] for r in pred[:6])
    )
    assert proc.stats()["windows_closed"] == 12


def test_no_drift_stream_raises_nothing() -> None:
    proc = make()
    out = (
        proc.process(Topic.PREDICTIONS, predictions(8, 400, drift_from=None, seed=3)) + proc.flush()
    )
    assert len(summaries(out)) == 8
    assert not any(r["drift"] for r in metrics(out) if r["primary"])


def test_windows_close_on_the_watermark_not_before() -> None:
    proc = DriftWindowProcessor(
        {("churn", "1"): profile()}, window_ms=HOUR, allowed_lateness_ms=600_000
    )
    events = predictions(3, 50)
    first = [e for e in events if e["timestamp"] < T0 + HOUR]
    assert summaries(proc.process(Topic.PREDICTIONS, first)) == []
    # an event 5 minutes into the next window: watermark = +5 min - 10 min lateness: still open
    nxt = dict(events[60], timestamp=T0 + HOUR + 300_000, prediction_id="x1")
    assert summaries(proc.process(Topic.PREDICTIONS, [nxt])) == []
    # 11 minutes in: the watermark passes the first window's end
    nxt2 = dict(events[61], timestamp=T0 + HOUR + 660_000, prediction_id="x2")
    closed = summaries(proc.process(Topic.PREDICTIONS, [nxt2]))
    assert [r["window_start"] for r in closed] == [T0]
    assert closed[0]["n_current"] == len(first)
    assert closed[0]["window_end"] == T0 + HOUR


def test_late_events_are_counted_not_merged() -> None:
    proc = make()
    events = predictions(3, 100)
    out = proc.process(Topic.PREDICTIONS, events[:200])  # windows 0 and 1; window 0 closes
    w0 = summaries(out)
    assert [r["window_start"] for r in w0] == [T0] and w0[0]["n_current"] == 100
    late = [dict(e, prediction_id=f"late-{i}") for i, e in enumerate(events[:7])]
    assert summaries(proc.process(Topic.PREDICTIONS, late)) == []
    out2 = proc.process(Topic.PREDICTIONS, events[200:]) + proc.flush()
    s = {r["window_start"]: r for r in summaries(out2)}
    # the late events are reported on window 1 (the first still open when they came) ...
    assert s[T0 + HOUR]["late_events"] == 7
    # ... and not merged into it
    assert s[T0 + HOUR]["n_current"] == 100
    assert proc.stats()["late_events"] == 7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outputs_do_not_depend_on_batching(seed: int) -> None:
    events = predictions(6, 150, drift_from=3)
    rng = random.Random(seed)
    # shuffle within a small horizon so some events are late, some out of order
    for i in range(0, len(events) - 40, 37):
        j = i + rng.randrange(40)
        events[i], events[j] = events[j], events[i]
    events += [dict(events[10], prediction_id="very-late", timestamp=T0 + 5)]
    whole = make()
    ref = whole.process(Topic.PREDICTIONS, events) + whole.flush()
    split = make()
    out, i = [], 0
    while i < len(events):
        n = rng.randint(1, 120)
        out += split.process(Topic.PREDICTIONS, events[i : i + n])
        i += n
    out += split.flush()
    key = lambda r: r["metric_id"]  # noqa: E731
    assert sorted(metrics(out), key=key) == sorted(metrics(ref), key=key)
    assert sum(r["late_events"] for r in summaries(ref)) >= 1


def test_snapshot_restore_mid_stream_equals_uninterrupted() -> None:
    events = predictions(6, 120, drift_from=3)
    a = make()
    ref = a.process(Topic.PREDICTIONS, events) + a.flush()
    b = make()
    out = b.process(Topic.PREDICTIONS, events[:333])
    c = make()
    c.restore(b.snapshot())
    out += c.process(Topic.PREDICTIONS, events[333:]) + c.flush()
    assert sorted(metrics(out), key=lambda r: r["metric_id"]) == sorted(
        metrics(ref), key=lambda r: r["metric_id"]
    )


def test_a_version_1_snapshot_with_json_profiles_still_restores() -> None:
    """Checkpoints written before profiles were pickled as objects (version 1 kept each
    profile as its JSON) restore to the same windows."""
    import pickle

    events = predictions(6, 120, drift_from=3)
    a = make()
    ref = a.process(Topic.PREDICTIONS, events) + a.flush()
    b = make()
    out = b.process(Topic.PREDICTIONS, events[:333])
    state = pickle.loads(b.snapshot())
    assert state["version"] == 2
    state["version"] = 1
    state["profiles"] = {k: p.to_json() for k, p in state["profiles"].items()}
    c = make()
    c.restore(pickle.dumps(state))
    out += c.process(Topic.PREDICTIONS, events[333:]) + c.flush()
    assert sorted(metrics(out), key=lambda r: r["metric_id"]) == sorted(
        metrics(ref), key=lambda r: r["metric_id"]
    )
    state["version"] = 99
    with pytest.raises(ValueError, match="snapshot version 99"):
        make().restore(pickle.dumps(state))


def test_bad_events_become_dead_letters_with_reasons() -> None:
    proc = make()
    good = predictions(1, 5)
    unknown = dict(good[0], model_version="9", prediction_id="u")
    wrong_type = dict(
        good[1], prediction_id="w", features={"age": "old", "income": 1.0, "city": "a"}
    )
    no_ts = {k: v for k, v in good[2].items() if k != "timestamp"}
    out = proc.process(Topic.PREDICTIONS, [unknown, wrong_type, no_ts, *good[3:]])
    dead = [r for t, r in out if t == Topic.DEAD_LETTERS]
    reasons = sorted(r["reason"] for r in dead)
    assert len(dead) == 3
    assert any("no reference profile for model 'churn' version '9'" in r for r in reasons)
    assert any("feature 'age' expects a number" in r for r in reasons)
    assert any("missing field 'timestamp'" in r for r in reasons)
    out2 = proc.flush()
    assert summaries(out2)[0]["n_current"] == 2  # only the two good events counted


def test_profile_arrives_as_model_event() -> None:
    proc = DriftWindowProcessor(window_ms=HOUR, allowed_lateness_ms=0)
    event = {
        "event_id": "e1",
        "model_name": "churn",
        "model_version": "1",
        "event_type": "registered",
        "timestamp": T0,
        "reference_profile": profile().to_json(),
    }
    assert proc.process(Topic.MODEL_EVENTS, [event]) == []
    out = proc.process(Topic.PREDICTIONS, predictions(2, 50)) + proc.flush()
    assert len(summaries(out)) == 2
    # a second processor (another partition's) given the same event shares the parsed,
    # never mutated, profile instead of parsing the JSON again
    other = DriftWindowProcessor(window_ms=HOUR, allowed_lateness_ms=0)
    assert other.process(Topic.MODEL_EVENTS, [dict(event, event_id="e2")]) == []
    assert other._profiles[("churn", "1")] is proc._profiles[("churn", "1")]
    assert other._profiles[("churn", "1")].to_json() == event["reference_profile"]
    broken = dict(event, reference_profile="{not json")
    dead = proc.process(Topic.MODEL_EVENTS, [broken])
    assert dead and "reference_profile could not be loaded" in dead[0][1]["reason"]


def test_every_output_is_schema_valid_and_keys_are_unique() -> None:
    codec = AvroCodec()
    proc = make()
    out = proc.process(Topic.PREDICTIONS, predictions(3, 100, drift_from=1)) + proc.flush()
    for topic, rec in out:
        assert codec.decode_as(topic.schema_name, codec.encode(topic.schema_name, rec)) == rec
    ids = [r["metric_id"] for r in metrics(out)]
    assert len(ids) == len(set(ids))


def test_segments_get_their_own_windows() -> None:
    proc = make(segment_by="region")
    events = predictions(2, 100)
    for i, e in enumerate(events):
        e["segment"] = {"region": "eu" if i % 2 else "us"}
    out = proc.process(Topic.PREDICTIONS, events) + proc.flush()
    ds = summaries(out)
    assert sorted((r["segment"], r["n_current"]) for r in ds) == [
        ("eu", 50),
        ("eu", 50),
        ("us", 50),
        ("us", 50),
    ]


@pytest.mark.parametrize(
    "spoil",
    [
        None,  # every event has every feature: the one-pass matrix path
        lambda f: f.pop("x1"),  # a feature missing in one event
        lambda f: f.update(x1="text"),  # text in a numeric feature
        lambda f: f.update(x1=True, x2=None),  # bool and null are numbers / missing anyway
    ],
)
@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_feature_columns_are_the_same_on_the_fast_and_the_per_column_path(
    spoil, native, monkeypatch
) -> None:
    """_columns' one-pass matrix (built by the native extension, or in Python without it)
    equals the per-column conversion it short-cuts."""
    import numpy as np

    import streams.windows

    if not native:
        monkeypatch.setattr(streams.windows, "feature_columns", lambda feats, names: None)

    from detectors.profile import CategoricalProfile, ReferenceProfile
    from streams.windows import _categorical, _columns, _numeric

    rng = np.random.default_rng(7)
    ref = {"x1": rng.normal(size=500), "x2": rng.normal(size=500), "x3": rng.integers(0, 5, 500)}
    ref["c"] = np.array(["a", "b"] * 250, dtype=object)
    prof = ReferenceProfile.from_columns(ref)
    recs = [
        {
            "features": {
                "x1": float(rng.normal()),
                "x2": None if i % 7 == 0 else float(rng.normal()),
                "x3": int(rng.integers(0, 5)),
                "c": "a" if i % 2 else "b",
            }
        }
        for i in range(50)
    ]
    if spoil is not None:
        spoil(recs[13]["features"])
    columns, bad = _columns(prof, recs)
    expected_bad: dict[int, str] = {}
    for name, fp in prof.features.items():
        values = [r["features"].get(name) for r in recs]
        if isinstance(fp, CategoricalProfile):
            expected = _categorical(values)
            assert columns[name].tolist() == expected.tolist()
        else:
            expected = _numeric(values, name, expected_bad)
            np.testing.assert_array_equal(columns[name], expected)
            assert columns[name].dtype == np.float64
    assert bad == expected_bad
