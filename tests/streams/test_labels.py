"""LabelJoinProcessor: the join, windowed performance metrics, ADWIN on the loss, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from support.stream_data import HOUR, T0

from schemas.codec import AvroCodec
from schemas.columns import PredictionColumns
from schemas.topics import Topic
from streams.labels import LabelJoinProcessor


def pred(i: int, ts: int, p, model: str = "m", version: str = "1") -> dict:
    return {
        "prediction_id": f"p{i}",
        "model_name": model,
        "model_version": version,
        "timestamp": ts,
        "features": {},
        "prediction": p,
    }


def label(i: int, ts: int, y, model: str = "m") -> dict:
    return {"prediction_id": f"p{i}", "model_name": model, "label": y, "timestamp": ts}


def perf(emits) -> dict[tuple[int, str], dict]:
    return {(r["window_start"], r["metric"]): r for t, r in emits if t == Topic.PERFORMANCE_METRICS}


def test_classification_metrics_equal_sklearn_and_join_works_in_both_orders() -> None:
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    p = np.where(rng.random(n) < 0.8, y, 1 - y)
    proc = LabelJoinProcessor(window_ms=HOUR, allowed_lateness_ms=0, tasks={"m": "classification"})
    out = []
    for i in range(n):
        ts = T0 + i * 1000
        if i % 3 == 0:  # label first, prediction later
            out += proc.process(Topic.LABELS, [label(i, ts + 500, float(y[i]))])
            out += proc.process(Topic.PREDICTIONS, [pred(i, ts, float(p[i]))])
        else:
            out += proc.process(Topic.PREDICTIONS, [pred(i, ts, float(p[i]))])
            out += proc.process(Topic.LABELS, [label(i, ts + 500, float(y[i]))])
    out += proc.flush()
    m = perf(out)
    assert m[(T0, "accuracy")]["value"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    assert m[(T0, "precision")]["value"] == pytest.approx(precision_score(y, p), abs=1e-12)
    assert m[(T0, "recall")]["value"] == pytest.approx(recall_score(y, p), abs=1e-12)
    assert m[(T0, "f1")]["value"] == pytest.approx(f1_score(y, p), abs=1e-12)
    assert m[(T0, "accuracy")]["n_labels"] == n
    assert proc.stats()["joined"] == n and proc.stats()["pending_labels"] == 0


def test_multiclass_is_macro_averaged() -> None:
    rng = np.random.default_rng(1)
    classes = np.array(["cat", "dog", "emu"])
    y = rng.choice(classes, 300)
    p = np.where(rng.random(300) < 0.7, y, rng.choice(classes, 300))
    proc = LabelJoinProcessor(window_ms=HOUR, allowed_lateness_ms=0)
    out = proc.process(Topic.PREDICTIONS, [pred(i, T0 + i, str(p[i])) for i in range(300)])
    out += (
        proc.process(Topic.LABELS, [label(i, T0 + i, str(y[i])) for i in range(300)]) + proc.flush()
    )
    m = perf(out)
    assert m[(T0, "f1")]["value"] == pytest.approx(
        2
        * precision_score(y, p, average="macro")
        * recall_score(y, p, average="macro")
        / (precision_score(y, p, average="macro") + recall_score(y, p, average="macro")),
        abs=1e-12,
    )
    assert m[(T0, "accuracy")]["value"] == pytest.approx(accuracy_score(y, p), abs=1e-12)


def test_regression_mae_rmse() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=200)
    p = y + rng.normal(0, 0.3, 200)
    proc = LabelJoinProcessor(window_ms=HOUR, allowed_lateness_ms=0)
    out = proc.process(Topic.PREDICTIONS, [pred(i, T0 + i, float(p[i])) for i in range(200)])
    out += (
        proc.process(Topic.LABELS, [label(i, T0 + i, float(y[i])) for i in range(200)])
        + proc.flush()
    )
    m = perf(out)
    assert m[(T0, "mae")]["value"] == pytest.approx(np.mean(np.abs(p - y)), abs=1e-12)
    assert m[(T0, "rmse")]["value"] == pytest.approx(np.sqrt(np.mean((p - y) ** 2)), abs=1e-12)


def _error_stream(n: int, change_at: int | None, seed: int) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    preds, labels = [], []
    for i in range(n):
        err_rate = 0.45 if change_at is not None and i >= change_at else 0.1
        y = int(rng.integers(0, 2))
        p = y if rng.random() > err_rate else 1 - y
        ts = T0 + i * 10_000
        preds.append(pred(i, ts, str(p)))
        labels.append(label(i, ts + 3_600_000, str(y)))  # labels arrive an hour later
    return preds, labels


def test_adwin_detects_concept_drift_after_the_change_and_not_before() -> None:
    preds, labels = _error_stream(6000, change_at=3000, seed=3)
    proc = LabelJoinProcessor(window_ms=HOUR)
    out = []
    for i in range(0, 6000, 250):
        out += proc.process(Topic.PREDICTIONS, preds[i : i + 250])
        out += proc.process(
            Topic.LABELS, labels[max(0, i - 360) : i + 250 - 360] if i >= 360 else []
        )
    out += proc.process(Topic.LABELS, labels[6000 - 360 :])
    det = [r for t, r in out if t == Topic.DRIFT_DETECTIONS]
    assert det, "ADWIN did not fire on a jump of the error rate from 10% to 45%"
    first = min(r["detected_at"] for r in det)
    change_ts = labels[3000]["timestamp"]
    assert first >= change_ts
    assert first - change_ts < 600 * 10_000  # within 600 events of the change
    assert det[0]["kind"] == "concept_drift" and det[0]["detector"] == "adwin"


def test_no_concept_drift_on_a_stationary_stream() -> None:
    preds, labels = _error_stream(4000, change_at=None, seed=4)
    proc = LabelJoinProcessor(window_ms=HOUR)
    out = proc.process(Topic.PREDICTIONS, preds) + proc.process(Topic.LABELS, labels)
    assert [r for t, r in out if t == Topic.DRIFT_DETECTIONS] == []


def test_unmatched_labels_expire_into_dead_letters_and_memory_is_capped() -> None:
    proc = LabelJoinProcessor(ttl_ms=HOUR, max_pending=100, window_ms=HOUR)
    out = proc.process(Topic.LABELS, [label(999, T0, "1")])
    out += proc.process(Topic.PREDICTIONS, [pred(i, T0 + 2 * HOUR + i, "1") for i in range(150)])
    dead = [r for t, r in out if t == Topic.DEAD_LETTERS]
    assert (
        len(dead) == 1
        and "p999" in dead[0]["reason"]
        and "within the join TTL" in dead[0]["reason"]
    )
    s = proc.stats()
    assert s["pending_predictions"] == 100 and s["predictions_evicted"] == 50
    assert s["labels_unmatched"] == 1


def test_invalid_labels_are_dead_lettered() -> None:
    proc = LabelJoinProcessor()
    out = proc.process(Topic.LABELS, [{"prediction_id": "x", "model_name": "m", "timestamp": T0}])
    out += proc.process(Topic.LABELS, [label(1, T0, float("nan"))])
    reasons = [r["reason"] for t, r in out if t == Topic.DEAD_LETTERS]
    assert len(reasons) == 2
    assert "missing field 'label'" in reasons[0]
    assert "finite" in reasons[1]


def test_a_regression_join_without_two_finite_numbers_is_dead_lettered() -> None:
    """A regression model's prediction that is missing, NaN, text or beyond float's range
    gets a dead letter on its label; the numbers around it are joined."""
    proc = LabelJoinProcessor(window_ms=HOUR)
    odd = [None, float("nan"), float("inf"), "3.5", 10**400]
    preds = [pred(0, T0, 1.5)] + [pred(i + 1, T0, p) for i, p in enumerate(odd)]
    out = proc.process(Topic.PREDICTIONS, preds)
    out += proc.process(Topic.LABELS, [label(i, T0 + 1, 2.0) for i in range(len(preds))])
    reasons = [r["reason"] for t, r in out if t == Topic.DEAD_LETTERS]
    assert len(reasons) == len(odd)
    assert all("regression model but the label or prediction is not a finite" in r for r in reasons)
    assert proc.counters["joined"] == 1
    mae = {m: r["value"] for (_, m), r in perf(proc.flush()).items()}["mae"]
    assert mae == 0.5


def test_snapshot_restore_equals_uninterrupted() -> None:
    preds, labels = _error_stream(3000, change_at=1500, seed=5)

    def run(proc, ps, ls):
        return proc.process(Topic.PREDICTIONS, ps) + proc.process(Topic.LABELS, ls)

    a = LabelJoinProcessor(window_ms=HOUR)
    ref = run(a, preds, labels) + a.flush()
    b = LabelJoinProcessor(window_ms=HOUR)
    out = run(b, preds[:1000], labels[:700])
    c = LabelJoinProcessor(window_ms=HOUR)
    c.restore(b.snapshot())
    out += run(c, preds[1000:], labels[700:]) + c.flush()
    assert out == ref


def test_outputs_are_schema_valid() -> None:
    codec = AvroCodec()
    preds, labels = _error_stream(3000, change_at=1500, seed=6)
    proc = LabelJoinProcessor(window_ms=HOUR)
    out = proc.process(Topic.PREDICTIONS, preds) + proc.process(Topic.LABELS, labels) + proc.flush()
    assert any(t == Topic.DRIFT_DETECTIONS for t, _ in out)
    for topic, rec in out:
        assert codec.decode_as(topic.schema_name, codec.encode(topic.schema_name, rec)) == rec


class _PerRecord(LabelJoinProcessor):
    """The reference: every prediction batch and every label through the per-record loop."""

    def _remember_all(self, records):
        return False

    def _on_labels(self, records):
        out: list = []
        for rec in records:
            self._on_label(rec, out)
        return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["p", "l"]),  # a batch of predictions or of labels
            st.lists(
                st.tuples(
                    st.integers(0, 15),  # id: a small range repeats ids within and across batches
                    st.integers(0, 3 * HOUR),  # with a 2 h TTL: some expire, some labels are late
                    st.sampled_from(["yes", "no", 1, 1.0, 2.5, True, None]),
                    st.sampled_from(["m", "r"]),  # two models (one may turn out a regression)
                ),
                max_size=12,
            ),
        ),
        max_size=10,
    )
)
def test_the_common_batch_paths_equal_the_per_record_loop(batches) -> None:
    """``_remember_all`` (well-typed predictions with no label waiting, kept in a few C-level
    passes) and the direct join of common labels in ``_on_labels`` end in the state the
    per-record loops do: the same pending predictions in the same order, the same outputs,
    the same snapshot."""
    fast = LabelJoinProcessor(window_ms=HOUR, ttl_ms=2 * HOUR, max_pending=20)
    loop = _PerRecord(window_ms=HOUR, ttl_ms=2 * HOUR, max_pending=20)
    used = 0
    original = fast._remember_all

    def counting(records):
        nonlocal used
        kept = original(records)
        used += kept
        return kept

    fast._remember_all = counting  # type: ignore[method-assign]
    for kind, rows in batches:
        if kind == "p":
            records = [pred(i, T0 + ts, p, model=m) for i, ts, p, m in rows]
            topic = Topic.PREDICTIONS
        else:
            records = [label(i, T0 + ts, p, model=m) for i, ts, p, m in rows]
            topic = Topic.LABELS
        assert fast.process(topic, records) == loop.process(topic, records)
        assert list(fast._predictions.items()) == list(loop._predictions.items())
    assert fast.flush() == loop.flush()
    assert fast.snapshot() == loop.snapshot()
    if any(kind == "p" and rows for kind, rows in batches[:1]):
        assert used  # the first prediction batch (nothing waits yet) took the fast path


def _count_runs(proc: LabelJoinProcessor) -> list[int]:
    """The sizes of the runs ``proc`` joins together (``_join_common`` calls), as they come."""
    sizes: list[int] = []
    join_common = proc._join_common

    def counting(key, state, pids, *rest):
        sizes.append(len(pids))
        join_common(key, state, pids, *rest)

    proc._join_common = counting  # type: ignore[method-assign]
    return sizes


def test_common_labels_are_joined_directly_with_the_loops_results() -> None:
    """A stream whose labels all take the direct join gives the per-record loop's outputs;
    all but the first label (its model's state is made by the loop) are joined in runs."""
    preds, labels = _error_stream(3000, change_at=1500, seed=7)  # (text classes)
    fast, loop = LabelJoinProcessor(window_ms=HOUR), _PerRecord(window_ms=HOUR)
    calls, in_runs = 0, _count_runs(fast)
    per_label = fast._on_label

    def counting(rec, out):
        nonlocal calls
        calls += 1
        per_label(rec, out)

    fast._on_label = counting  # type: ignore[method-assign]
    out = fast.process(Topic.PREDICTIONS, preds) + fast.process(Topic.LABELS, labels)
    ref = loop.process(Topic.PREDICTIONS, preds) + loop.process(Topic.LABELS, labels)
    assert out == ref and fast.flush() == loop.flush()
    assert fast.snapshot() == loop.snapshot()
    assert any(t == Topic.DRIFT_DETECTIONS for t, _ in out)
    assert calls == 1
    assert sum(in_runs) == len(labels) - 1


@st.composite
def _label_streams(draw):
    """Predictions with times drifting forward (up to ~13 h: windows close, the 2 h TTL
    expires predictions), most followed by a text label a little later or earlier (late
    labels, labels before their prediction), a few labels of unknown or repeated ids,
    mostly one model; merged by time and cut into batches of one kind."""
    n = draw(st.integers(1, 80))
    events: list[tuple[int, int, str, dict]] = []
    t = T0
    for i in range(n):
        t += draw(st.integers(0, 10 * 60_000))
        model = draw(st.sampled_from(["m", "m", "m", "n"]))
        events.append((t, 0, "p", pred(i, t, draw(st.sampled_from(["yes", "no", 1, True])), model)))
        if draw(st.integers(0, 9)) < 8:
            lt = t + draw(st.integers(-5 * 60_000, 40 * 60_000))
            y = draw(st.sampled_from(["yes", "no", "maybe"]))
            events.append((lt, 1, "l", label(i, lt, y, model)))
        if draw(st.integers(0, 19)) == 0:  # an unknown id, or one labelled twice
            j = draw(st.sampled_from([n + i, i]))
            events.append((t, 1, "l", label(j, t, "yes", model)))
    return _cut(draw, events, 30)


def _cut(
    draw, events: list[tuple[int, int, str, dict]], largest: int, *, one_model: bool = False
) -> list[tuple[Topic, list[dict]]]:
    """``(time, order, "p" or "l", record)`` events, merged by time and cut into batches of
    one kind of at most a drawn size up to ``largest`` (``one_model``: prediction batches
    of one model, as columns hold one model version)."""
    events.sort(key=lambda e: e[:2])
    batches: list[tuple[Topic, list[dict]]] = []
    for _, _, kind, rec in events:
        topic = Topic.PREDICTIONS if kind == "p" else Topic.LABELS
        joins = bool(batches) and batches[-1][0] == topic
        if joins and one_model and topic == Topic.PREDICTIONS:
            joins = batches[-1][1][0]["model_name"] == rec["model_name"]
        if joins and len(batches[-1][1]) < draw(st.integers(1, largest)):
            batches[-1][1].append(rec)
        else:
            batches.append((topic, [rec]))
    return batches


@settings(max_examples=300, deadline=None)
@given(_label_streams())
def test_runs_of_common_labels_equal_the_per_record_loop(batches) -> None:
    """Text labels joined in runs (``_join_run``: one model, windows open, predictions
    waiting and unexpired; a run ends where the watermark moves into a new window) end
    where the per-label loop does: the same outputs in the same order (detections with
    their joined counts, closed windows' metrics), pending predictions and snapshots
    (open windows' classes in first-seen order)."""
    fast = LabelJoinProcessor(window_ms=HOUR, ttl_ms=2 * HOUR, max_pending=60)
    loop = _PerRecord(window_ms=HOUR, ttl_ms=2 * HOUR, max_pending=60)
    for topic, records in batches:
        assert fast.process(topic, records) == loop.process(topic, records)
        assert fast.snapshot() == loop.snapshot()
    assert fast.flush() == loop.flush()
    assert fast.snapshot() == loop.snapshot()


def _columns(records: list[dict]) -> PredictionColumns:
    """Predictions of one model version as the columns they decode into (no features)."""
    n = len(records)
    return PredictionColumns(
        ids=[r["prediction_id"] for r in records],
        model_name=records[0]["model_name"],
        model_version=records[0]["model_version"],
        timestamps=np.array([r["timestamp"] for r in records], dtype=np.int64),
        feature_names=[],
        features=np.empty((0, n)),
        predictions=[r["prediction"] for r in records],
        rows=b"",
        payloads=[b""] * n,
        decode=lambda payloads: records,
    )


@st.composite
def _early_label_streams(draw):
    """Most labels before their predictions (by up to 40 min; some after), times drifting
    forward for hours (windows close, the 2 h TTL expires labels), a few ids repeated,
    two models (text classes; numbers, which may make a regression); merged by time and
    cut into batches of one kind, prediction batches split per model."""
    n = draw(st.integers(2, 80))
    events: list[tuple[int, int, str, dict]] = []
    t = T0
    for i in range(n):
        t += draw(st.integers(0, 10 * 60_000))
        model = draw(st.sampled_from(["m", "m", "m", "r"]))
        value = draw(st.sampled_from(["yes", "no"] if model == "m" else [1.0, 2.5]))
        j = i if draw(st.integers(0, 29)) else max(i - 1, 0)  # now and then a repeated id
        events.append((t, 1, "p", pred(j, t, value, model)))
        if draw(st.integers(0, 9)) < 8:
            lt = t + draw(st.integers(-40 * 60_000, 5 * 60_000))
            y = draw(st.sampled_from(["yes", "no"] if model == "m" else [1.0, 3.0]))
            events.append((lt, 0, "l", label(j, lt, y, model)))
    return _cut(draw, events, 40, one_model=True)


@settings(max_examples=300, deadline=None)
@given(_early_label_streams())
def test_predictions_meeting_waiting_labels_in_columns_equal_the_per_record_loop(
    batches,
) -> None:
    """Predictions decoded into columns whose labels came first are joined a run of
    labels at a time (``_join_waiting``: distinct ids, none pending, nothing past the TTL)
    and end where the per-record loop over their records does: the same outputs in the
    same order, pending predictions and labels, snapshots."""
    fast = LabelJoinProcessor(window_ms=HOUR, ttl_ms=2 * HOUR, max_pending=60)
    loop = _PerRecord(window_ms=HOUR, ttl_ms=2 * HOUR, max_pending=60)
    for topic, records in batches:
        batch = _columns(records) if topic == Topic.PREDICTIONS else records
        assert fast.process(topic, batch) == loop.process(topic, records)
        assert list(fast._predictions.items()) == list(loop._predictions.items())
        assert list(fast._labels) == list(loop._labels)
        assert fast.snapshot() == loop.snapshot()
    assert fast.flush() == loop.flush()


def test_waiting_labels_are_joined_in_runs_when_their_predictions_come_as_columns() -> None:
    """A batch of columns meeting many waiting labels joins them in runs (not one by one),
    with the loop's results; a repeated id in the batch, or a label past the TTL, sends
    the batch the per-prediction way."""
    n = 400
    preds = [pred(i, T0 + i * 1000, "yes" if i % 3 else "no") for i in range(n)]
    labels = [label(i, T0 + i * 1000 - 500, "yes" if i % 4 else "no") for i in range(n)]
    for case in ("runs", "repeated id", "expired label"):
        fast = LabelJoinProcessor(window_ms=HOUR, ttl_ms=2 * HOUR)
        loop = _PerRecord(window_ms=HOUR, ttl_ms=2 * HOUR)
        sizes = _count_runs(fast)
        batch_labels, batch_preds = labels, preds
        if case == "repeated id":
            batch_preds = [*preds, pred(0, T0 + n * 1000, "no")]
        elif case == "expired label":
            batch_preds = [*preds, pred(n, T0 + 3 * HOUR, "no")]
        for proc in (fast, loop):
            out = proc.process(Topic.LABELS, batch_labels)
            assert out == [] and len(proc._labels) == n
        ref = loop.process(Topic.PREDICTIONS, batch_preds)
        assert fast.process(Topic.PREDICTIONS, _columns(batch_preds)) == ref
        assert fast.snapshot() == loop.snapshot() and fast.flush() == loop.flush()
        if case == "runs":
            assert fast.stats()["joined"] == n and sum(sizes) >= n - 1 and max(sizes) > 100
        else:
            assert sizes == []  # one by one, through _on_prediction


def test_label_runs_cover_window_closes_detections_and_breaks() -> None:
    """The run join on a stream that needs every part of it: labels spanning window
    boundaries (the watermark closes windows inside a batch), a concept drift detected
    inside a run, labels whose prediction has not arrived, a late label, a repeated id
    and a second model. Outputs, pending predictions and snapshots equal the loop's."""
    rng = np.random.default_rng(3)
    n = 6000
    ts = T0 + np.arange(n) * 2_000  # 2 s apart: ~3.3 h
    preds = [pred(i, int(ts[i]), "yes" if i % 3 else "no") for i in range(n)]
    wrong = np.where(np.arange(n) < n // 2, 0.05, 0.6)  # the error rate jumps halfway
    labels = []
    for i in range(n):
        y = preds[i]["prediction"]
        if rng.random() < wrong[i]:
            y = "no" if y == "yes" else "yes"
        labels.append(label(i, int(ts[i]) + 60_000, y))
    labels[100]["prediction_id"] = "not-yet"  # waits for its prediction
    labels.insert(2000, dict(labels[1990]))  # a repeated id: a duplicate label
    labels.insert(4000, labels.pop(50))  # late: its window closed long before it comes
    labels.insert(4500, label(7, int(ts[4500]), "no", model="other"))  # no such prediction
    fast, loop = LabelJoinProcessor(window_ms=HOUR), _PerRecord(window_ms=HOUR)
    in_runs = _count_runs(fast)
    out, ref = fast.process(Topic.PREDICTIONS, preds), loop.process(Topic.PREDICTIONS, preds)
    for i in range(0, len(labels), 1000):
        out += fast.process(Topic.LABELS, labels[i : i + 1000])
        ref += loop.process(Topic.LABELS, labels[i : i + 1000])
        assert fast.snapshot() == loop.snapshot()
    assert out == ref
    assert list(fast._predictions.items()) == list(loop._predictions.items())
    assert fast.flush() == loop.flush() and fast.snapshot() == loop.snapshot()
    kinds = [t for t, _ in out]
    assert Topic.DRIFT_DETECTIONS in kinds and Topic.PERFORMANCE_METRICS in kinds
    # the repeated id, the early label and the other model's wait for their predictions
    assert {"p1990", "not-yet", "p7"} <= set(fast._labels)
    assert fast.counters["late_labels"] == 1
    assert sum(in_runs) > n * 0.9


def test_a_batch_whose_runs_keep_breaking_is_tried_a_few_times_then_joined_one_by_one() -> None:
    """Labels alternating between a waiting prediction and none (labels ahead of their
    predictions) make runs of one: after four such tries the rest of the batch goes through
    the per-label loop — each try costs passes over the rest of the batch, so trying at
    every label would be quadratic. The outcome equals the loop's."""
    preds = [pred(i, T0 + i * 1000, "yes") for i in range(0, 2000, 2)]
    labels = [label(i, T0 + i * 1000 + 1, "no" if i % 6 == 0 else "yes") for i in range(1, 2000)]
    fast, loop = LabelJoinProcessor(window_ms=HOUR), _PerRecord(window_ms=HOUR)
    tries, join_run = 0, fast._join_run

    def counting(records, out):
        nonlocal tries
        tries += 1
        return join_run(records, out)

    fast._join_run = counting  # type: ignore[method-assign]
    for p in (fast, loop):
        p.process(Topic.PREDICTIONS, preds[:1])
        p.process(Topic.LABELS, [label(0, T0 + 1, "yes")])  # the model's state exists
        p.process(Topic.PREDICTIONS, preds[1:])
    tries = 0
    assert fast.process(Topic.LABELS, labels) == loop.process(Topic.LABELS, labels)
    assert fast.snapshot() == loop.snapshot()
    assert tries <= 4
    assert len(fast._labels) == 1000  # the odd ids wait for their predictions


@pytest.mark.parametrize("base", [(1 << 63) - 10 * HOUR, -(1 << 63) + 10 * HOUR])
def test_times_near_the_int64_limits_leave_the_runs_to_the_per_label_loop(base: int) -> None:
    """A run's arithmetic is int64 (running maxima, TTL horizon, window starts, watermark);
    label and prediction times beyond +-2**61, where it could wrap, go through the per-label
    loop (Python ints): the loop's outcome, no run taken."""
    preds = [pred(i, base + i, "yes") for i in range(10)]
    labels = [label(i, base + 100 + i, "yes" if i % 2 else "no") for i in range(10)]
    fast, loop = LabelJoinProcessor(window_ms=HOUR), _PerRecord(window_ms=HOUR)
    in_runs = _count_runs(fast)
    for p in (fast, loop):
        p.process(Topic.PREDICTIONS, preds)
    assert fast.process(Topic.LABELS, labels) == loop.process(Topic.LABELS, labels)
    assert fast.snapshot() == loop.snapshot() and fast.flush() == loop.flush()
    assert not in_runs and fast.counters["joined"] == 10
