"""Label join: ground truth meets its prediction; performance and concept drift come out.

``LabelJoinProcessor`` keeps recent predictions by ``prediction_id`` (bounded by a
TTL in event time and a memory cap) and joins each label to its prediction —
in either arrival order, since labels may come hours later, or, rarely, first.
Each joined pair yields a per-event loss (0/1 error for classification,
absolute error for regression) that feeds a concept-drift detector (river's
ADWIN by default) per (model, version); tumbling event-time windows over the
label time give accuracy / precision / recall / F1 or MAE / RMSE.

Nothing is dropped silently: predictions evicted by the memory cap and labels
that never find their prediction are counted, and such labels are dead-lettered
with the reason.
"""

from __future__ import annotations

import itertools
import math
import operator
import pickle
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from detectors.concept import ConceptDriftDetector
from schemas.columns import PredictionColumns
from schemas.topics import Topic
from streams.pending import PendingPredictions, check_id, check_timestamp
from streams.processor import Emit, invalid, stable_id

Task = Literal["classification", "regression"]
_PREDICTION_ID = operator.itemgetter("prediction_id")
_PENDING = operator.itemgetter("model_name", "model_version", "timestamp", "prediction")
_LABEL = operator.itemgetter("label")
_TIMESTAMP = operator.itemgetter("timestamp")
_MODEL_NAME = operator.itemgetter("model_name")
_FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)
_PENDING_TIME = operator.itemgetter(2)
_PENDING_PREDICTION = operator.itemgetter(3)
_SAFE_MS = 1 << 61  # times a run's int64 arithmetic handles without overflow (± ~73M years)
ModelVersion = tuple[str, str]

# 2: the waiting predictions as ``PendingPredictions.state()`` (1: an OrderedDict; still read)
_SNAPSHOT_VERSION = 2


@dataclass
class _Window:
    """Sufficient statistics of one performance window: O(classes), not O(events)."""

    n: int = 0
    correct: int = 0
    abs_error: float = 0.0
    sq_error: float = 0.0
    # per class: [true positives, predicted count, actual count]
    classes: dict[str, list[int]] = field(default_factory=dict)

    def add(self, task: Task, pred: Any, label: Any) -> float:
        self.n += 1
        if task == "regression":
            err = float(pred) - float(label)
            self.abs_error += abs(err)
            self.sq_error += err * err
            return abs(err)
        p, y = _class(pred), _class(label)
        classes = self.classes
        predicted = classes.get(p)
        if predicted is None:
            predicted = classes[p] = [0, 0, 0]
        predicted[1] += 1
        actual = classes.get(y)
        if actual is None:
            actual = classes[y] = [0, 0, 0]
        actual[2] += 1
        if p == y:
            self.correct += 1
            actual[0] += 1
            return 0.0
        return 1.0

    def add_classes(self, predicted: list[str], actual: list[str]) -> None:
        """``add("classification", p, y)`` for each pair in order (classes already text)."""
        classes = self.classes
        for name in dict.fromkeys(
            itertools.chain.from_iterable(zip(predicted, actual, strict=True))
        ):
            if name not in classes:
                classes[name] = [0, 0, 0]
        for name, n in Counter(predicted).items():
            classes[name][1] += n
        for name, n in Counter(actual).items():
            classes[name][2] += n
        hits = Counter(itertools.compress(actual, map(operator.eq, predicted, actual)))
        for name, n in hits.items():
            classes[name][0] += n
        self.n += len(predicted)
        self.correct += sum(hits.values())

    def metrics(self, task: Task, positive: str | None) -> dict[str, float]:
        if self.n == 0:
            return {}
        if task == "regression":
            return {"mae": self.abs_error / self.n, "rmse": math.sqrt(self.sq_error / self.n)}
        out = {"accuracy": self.correct / self.n}
        if positive is None and set(self.classes) <= {"0", "1"}:
            positive = "1"
        if positive is not None:
            tp, predicted, actual = self.classes.get(positive, [0, 0, 0])
            precision = tp / predicted if predicted else 0.0
            recall = tp / actual if actual else 0.0
        else:  # multiclass: macro average over the classes seen in the window
            ps, rs = [], []
            for tp, predicted, actual in self.classes.values():
                ps.append(tp / predicted if predicted else 0.0)
                rs.append(tp / actual if actual else 0.0)
            precision, recall = float(np.mean(ps)), float(np.mean(rs))
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.update({"precision": precision, "recall": recall, "f1": f1})
        return out


def _class(value: Any) -> str:
    """Class labels compare as text; 1, 1.0 and "1" are the same class."""
    if type(value) is str:  # the common case
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class _ModelState:
    task: Task
    detector: ConceptDriftDetector
    max_label_ms: int | None = None
    closed_until_ms: int | None = None
    windows: dict[int, _Window] = field(default_factory=dict)
    joined: int = 0
    late_labels: int = 0


class LabelJoinProcessor:
    """Join labels to predictions; emit performance metrics and concept-drift detections.

    Parameters
    ----------
    ttl_ms
        How long (event time) a prediction waits for its label, and a label for its
        prediction. Default 7 days.
    max_pending
        Memory cap on waiting predictions plus labels; the oldest are evicted first
        and counted.
    window_ms, allowed_lateness_ms
        Tumbling performance windows over label event time, closed by a watermark.
    detector, detector_params
        Concept-drift detector on the per-event loss: ``"adwin"`` (default),
        ``"kswin"`` or ``"page_hinkley"``, with its river parameters.
    tasks
        ``"classification"`` or ``"regression"`` per model name. Unknown models are
        inferred from the first joined pair: a string on either side means
        classification, numbers mean regression.
    positive_labels
        Positive class per model for binary precision / recall / F1; without it, 0/1
        labels use "1" and other label sets are macro-averaged.
    """

    def __init__(
        self,
        *,
        ttl_ms: int = 7 * 24 * 3_600_000,
        max_pending: int = 1_000_000,
        window_ms: int = 3_600_000,
        allowed_lateness_ms: int = 300_000,
        detector: str = "adwin",
        detector_params: Mapping[str, Any] | None = None,
        tasks: Mapping[str, Task] | None = None,
        positive_labels: Mapping[str, str] | None = None,
        native: bool | None = None,
    ) -> None:
        if ttl_ms <= 0 or max_pending <= 0 or window_ms <= 0 or allowed_lateness_ms < 0:
            raise ValueError(
                "ttl_ms, max_pending and window_ms must be positive, allowed_lateness_ms >= 0"
            )
        self.ttl_ms = int(ttl_ms)
        self.max_pending = int(max_pending)
        self.window_ms = int(window_ms)
        self.allowed_lateness_ms = int(allowed_lateness_ms)
        self.detector = detector
        self.detector_params = dict(detector_params or {})
        ConceptDriftDetector(detector, **self.detector_params)  # fail fast on a bad choice
        self.tasks: dict[str, Task] = dict(tasks or {})
        self.positive_labels = dict(positive_labels or {})
        # prediction_id -> (model, version, timestamp, prediction); insertion order ~ arrival
        self._native = native
        self._predictions = PendingPredictions(native=native)
        # prediction_id -> label record waiting for its prediction
        self._labels: OrderedDict[str, dict] = OrderedDict()
        self._models: dict[ModelVersion, _ModelState] = {}
        self._max_event_ms: int | None = None
        self.counters = {
            "joined": 0,
            "predictions_expired": 0,
            "predictions_evicted": 0,
            "labels_unmatched": 0,
            "labels_duplicate": 0,
            "late_labels": 0,
            "concept_drifts": 0,
        }

    # -- inputs ---------------------------------------------------------------------------

    def process(self, topic: Topic, records: list[dict]) -> list[Emit]:
        if topic == Topic.PREDICTIONS:
            out = self._on_predictions(records)
        elif topic == Topic.LABELS:
            out = self._on_labels(records)
        else:
            return []
        out.extend(self._expire())
        out.extend(self._cap())
        return out

    def flush(self) -> list[Emit]:
        """Close every open performance window (end of a finite stream)."""
        out: list[Emit] = []
        for key, state in self._models.items():
            for start in sorted(state.windows):
                out.extend(self._close(key, state, start))
        return out

    def _on_predictions(self, records: list[dict] | PredictionColumns) -> list[Emit]:
        if type(records) is PredictionColumns:
            return self._on_prediction_columns(records)
        if not self._labels and self._remember_all(records):
            return []
        out: list[Emit] = []
        for rec in records:
            try:
                pid, model, version = rec["prediction_id"], rec["model_name"], rec["model_version"]
                ts, pred = rec["timestamp"], rec["prediction"]
                _check_prediction(pid, model, version, ts)
            except (KeyError, TypeError) as exc:
                out.append(invalid(Topic.PREDICTIONS, rec, f"invalid prediction: {_reason(exc)}"))
                continue
            self._on_prediction(pid, model, version, ts, pred, out)
        return out

    def _on_prediction(
        self, pid: str, model: str, version: str, ts: int, pred: Any, out: list[Emit]
    ) -> None:
        """One well-typed prediction: joined to its waiting label or left waiting."""
        self._see(ts)
        waiting = self._labels.pop(pid, None)
        if waiting is not None and self._expired(waiting["timestamp"]):
            out.append(
                self._unmatched(waiting, "no prediction with this id arrived within the join TTL")
            )
            waiting = None
        if waiting is not None:
            out.extend(self._join(model, version, pred, waiting))
        else:
            self._predictions.put(pid, model, version, ts, pred)

    def _on_prediction_columns(self, batch: PredictionColumns) -> list[Emit]:
        """:meth:`_on_predictions` of a batch decoded into columns (well-typed predictions
        of one model version), without its records: the predictions between those whose
        label waits are remembered a stretch at a time (as :meth:`_remember_all`), those
        one by one (as the loop of :meth:`_on_predictions`), in order."""
        ids = batch.ids
        if not ids:
            return []
        model, version = batch.model_name, batch.model_version
        timestamps = batch.timestamps.tolist()
        predictions = batch.predictions
        labels = self._labels
        hits = [i for i, pid in enumerate(ids) if pid in labels] if labels else []
        out: list[Emit] = []
        if len(hits) > 1 and self._join_waiting(batch, timestamps, hits, out):
            return out
        start = 0
        for i in [*hits, len(ids)]:
            if i > start:
                stretch = timestamps[start:i]
                self._predictions.remember(
                    ids[start:i], model, version, stretch, predictions[start:i]
                )
                self._see(max(stretch))
            if i < len(ids):
                self._on_prediction(ids[i], model, version, timestamps[i], predictions[i], out)
            start = i + 1
        return out

    def _join_waiting(
        self, batch: PredictionColumns, timestamps: list[int], hits: list[int], out: list[Emit]
    ) -> bool:
        """The predictions of ``batch`` whose labels wait (at ``hits``) joined as the label
        path joins labels (:meth:`_on_labels`: runs of them together), once the whole batch
        is remembered; False, with nothing changed, unless that ends where the loop of
        :meth:`_on_prediction_columns` does.

        It does when the batch's ids are distinct and none of those is already pending,
        and no hit's prediction or label is older than the TTL by the newest event time
        the batch leaves: then each label finds its prediction waiting and unexpired, and
        is joined as at its prediction's arrival (joins depend on label times, not on the
        predictions remembered around them); the same pending predictions remain, in
        order, and the outputs come in the same order.
        """
        ids = batch.ids
        pending, labels = self._predictions, self._labels
        hit_ids = [ids[i] for i in hits]
        if len(set(ids)) != len(ids) or pending.contains_any(hit_ids):
            return False
        newest = max(timestamps)
        seen = newest if self._max_event_ms is None else max(self._max_event_ms, newest)
        horizon = seen - self.ttl_ms
        waiting = [labels[pid] for pid in hit_ids]
        if min(timestamps[i] for i in hits) < horizon or min(map(_TIMESTAMP, waiting)) < horizon:
            return False
        for pid in hit_ids:
            del labels[pid]
        pending.remember(ids, batch.model_name, batch.model_version, timestamps, batch.predictions)
        self._see(newest)
        out.extend(self._on_labels(waiting))
        return True

    def _remember_all(self, records: list[dict]) -> bool:
        """The common batch — no label waiting, every record well-typed — in one pass.

        The same end state as the loop of :meth:`_on_predictions` (which only differs when a
        label waits for one of the ids, or a record is invalid); False, with nothing changed,
        for any other batch.
        """
        try:
            pids = list(map(_PREDICTION_ID, records))
            pending_values = list(map(_PENDING, records))  # (model, version, ts, prediction)
        except (KeyError, TypeError):
            return False
        if not pids or set(map(type, pids)) != {str}:
            return False
        timestamps = [v[2] for v in pending_values]
        if set(map(type, timestamps)) != {int}:
            return False
        kinds = {*map(type, map(_FIRST, pending_values)), *map(type, map(_SECOND, pending_values))}
        if kinds != {str}:
            return False  # (a model name or version that is not text: the loop says so)
        try:  # (a repeated or already waiting id moves to the end with its last value)
            self._predictions.remember_rows(pids, pending_values)
        except (TypeError, ValueError):  # (a time beyond int64, an id that is not text:
            return False  # nothing changed; the loop dead-letters it)
        self._see(max(timestamps))
        return True

    def _on_labels(self, records: list[dict]) -> list[Emit]:
        out: list[Emit] = []
        i, n, misses = 0, len(records), 0
        while i < n:
            # Runs of common labels joined together (_join_run); the rest one by one. A try
            # costs a few passes over the rest of the batch: after four that joined nothing or
            # a short run (late labels, labels before their predictions, several models) the
            # rest of the batch goes one by one, so no batch costs much more than that.
            if misses < 4:
                taken = self._join_run(records[i:] if i else records, out)
                if taken < 16 and i + taken < n:
                    misses += 1
                if taken:
                    i += taken
                    continue
            end = n if misses >= 4 else i + 1
            self._each_label(records[i:end], out)
            i = end
        return out

    def _join_run(self, records: list[dict], out: list[Emit]) -> int:
        """Join the longest leading run of common labels in one go; how many were joined.

        A common label (as in :meth:`_each_label`'s direct join): text label, integer time,
        its prediction waiting and unexpired, of the run's one classification model whose
        state exists, in a window still open. The run ends before the first label that is
        not, and at the label whose time moves the model's watermark into a new window
        (which closes windows, as :meth:`_new_label_time` does after that label). The same
        end state and outputs as the per-label loop — pending order, window classes in
        first-seen order, detector fed in order, detections with their joined count.
        """
        pending = self._predictions
        try:
            if pending.get(records[0]["prediction_id"]) is None:
                return 0  # (the first label does not join: no run, found at once)
            pids = list(map(_PREDICTION_ID, records))
            labels = list(map(_LABEL, records))
            times = list(map(_TIMESTAMP, records))
            list(map(_MODEL_NAME, records))  # (present: what the per-label checks ask)
        except (KeyError, TypeError):
            return 0
        if set(map(type, labels)) != {str} or set(map(type, times)) != {int}:
            return 0
        if len(set(pids)) != len(pids):  # the run ends before a repeated id
            first: dict[str, None] = {}
            for i, pid in enumerate(pids):
                if pid in first:
                    del pids[i:], labels[i:], times[i:]
                    break
                first[pid] = None
        preds = pending.get_many(pids)
        if None in preds:
            waiting = preds.index(None)  # the run ends before a label with nothing to join
            if waiting == 0:
                return 0
            del pids[waiting:], labels[waiting:], times[waiting:], preds[waiting:]
        models, versions = set(map(_FIRST, preds)), set(map(_SECOND, preds))  # (no tuple each)
        if len(models) != 1 or len(versions) != 1:
            return 0
        key = (models.pop(), versions.pop())
        state = self._models.get(key)
        if state is None or state.task != "classification" or state.closed_until_ms is None:
            return 0
        try:
            ts = np.array(times, dtype=np.int64)
            pred_ts = np.array(list(map(_PENDING_TIME, preds)), dtype=np.int64)
        except (OverflowError, TypeError, ValueError):
            return 0
        if min(ts.min(), pred_ts.min()) < -_SAFE_MS or max(ts.max(), pred_ts.max()) > _SAFE_MS:
            return 0  # (int64 arithmetic below could wrap: the per-label loop's ints do not)
        seen = np.maximum.accumulate(ts)
        if self._max_event_ms is not None:
            np.maximum(seen, self._max_event_ms, out=seen)
        closed = state.closed_until_ms
        starts = ts - ts % self.window_ms
        common = (pred_ts >= seen - self.ttl_ms) & (starts >= closed)
        n = int(np.argmin(common)) if not common.all() else len(pids)
        if n == 0:
            return 0
        newest = np.maximum.accumulate(ts[:n])
        if state.max_label_ms is not None:
            np.maximum(newest, state.max_label_ms, out=newest)
        watermark = newest - self.allowed_lateness_ms
        moves = np.flatnonzero(watermark - watermark % self.window_ms > closed)
        if moves.size:
            n = int(moves[0]) + 1  # that label closes windows after it is counted
        self._join_common(key, state, pids[:n], labels[:n], times[:n], starts[:n], preds[:n], out)
        self._max_event_ms = int(seen[n - 1])
        if state.max_label_ms is None or int(newest[n - 1]) > state.max_label_ms:
            self._new_label_time(key, state, int(newest[n - 1]), out)
        return n

    def _join_common(
        self,
        key: ModelVersion,
        state: _ModelState,
        pids: list[str],
        labels: list[str],
        times: list[int],
        starts: np.ndarray,
        preds: list[tuple[str, str, int, Any]],
        out: list[Emit],
    ) -> None:
        """Count joined classification pairs (labels in open windows, ``starts`` theirs) in
        their windows and the detector, in order: what _add_joined does for each, without
        closing windows."""
        self._predictions.remove_many(pids)
        predicted = list(map(_PENDING_PREDICTION, preds))
        if set(map(type, predicted)) != {str}:
            predicted = list(map(_class, predicted))
        if (starts == starts[0]).all():
            runs = [(int(starts[0]), predicted, labels)]
        else:  # (labels across a window boundary: each window's pairs, in order)
            runs = [
                (
                    start,
                    list(itertools.compress(predicted, mask)),
                    list(itertools.compress(labels, mask)),
                )
                for start in dict.fromkeys(starts.tolist())
                for mask in [(starts == start).tolist()]
            ]
        for start, p, y in runs:
            window = state.windows.get(start)
            if window is None:
                window = state.windows[start] = _Window()
            window.add_classes(p, y)
        losses = [1.0 if wrong else 0.0 for wrong in map(operator.ne, predicted, labels)]
        joined = state.joined
        self.counters["joined"] += len(pids)
        model, version = key
        for i in state.detector.update_many(losses):
            state.joined = joined + i + 1
            self.counters["concept_drifts"] += 1
            out.append(self._detection(model, version, state, times[i], losses[i]))
        state.joined = joined + len(pids)

    def _each_label(self, records: list[dict], out: list[Emit]) -> None:
        pending, models = self._predictions, self._models
        for rec in records:
            # The common label — text, integer time, its prediction waiting and not expired,
            # its model's classification state known, its window open — joined directly: what
            # _on_label does with it, without the checks it passes.
            try:
                pid, label, ts = rec["prediction_id"], rec["label"], rec["timestamp"]
                pred = pending.get(pid)
            except (KeyError, TypeError):
                pred = None
            if pred is not None and type(ts) is int and type(label) is str and "model_name" in rec:
                seen = self._max_event_ms
                if seen is None or ts > seen:
                    seen = ts
                key = (pred[0], pred[1])
                state = models.get(key)
                if (
                    pred[2] >= seen - self.ttl_ms
                    and state is not None
                    and state.task == "classification"
                    and (
                        state.closed_until_ms is None
                        or ts - ts % self.window_ms >= state.closed_until_ms
                    )
                ):
                    self._max_event_ms = seen
                    pending.pop(pid)
                    self._add_joined(key, state, pred[3], label, ts, out)
                    continue
            self._on_label(rec, out)

    def _on_label(self, rec: dict, out: list[Emit]) -> None:
        """One label: checked, joined to its waiting prediction or left waiting."""
        try:
            pid, label, ts = rec["prediction_id"], rec["label"], rec["timestamp"]
            _check_ts(ts)
            check_id(pid)
            rec["model_name"]
            if label is None or (isinstance(label, float) and not math.isfinite(label)):
                raise TypeError("label must be a finite number or a string")
        except (KeyError, TypeError) as exc:
            out.append(invalid(Topic.LABELS, rec, f"invalid label: {_reason(exc)}"))
            return
        self._see(ts)
        pred = self._predictions.pop(pid)
        if pred is not None and self._expired(pred[2]):
            # expired by event time even if the batch-end sweep has not removed it yet,
            # so the join does not depend on how the stream was batched
            self.counters["predictions_expired"] += 1
            pred = None
        if pred is None:
            if pid in self._labels:
                self.counters["labels_duplicate"] += 1
                out.append(invalid(Topic.LABELS, rec, f"duplicate label for prediction '{pid}'"))
                return
            self._labels[pid] = rec
            return
        model, version, _, prediction = pred
        out.extend(self._join(model, version, prediction, rec))

    # -- join, windows, detector ----------------------------------------------------------

    def _join(self, model: str, version: str, prediction: Any, label_rec: dict) -> list[Emit]:
        label, ts = label_rec["label"], label_rec["timestamp"]
        key = (model, version)
        state = self._models.get(key)
        if state is None:
            task = self.tasks.get(model) or _infer_task(prediction, label)
            state = _ModelState(
                task=task, detector=ConceptDriftDetector(self.detector, **self.detector_params)
            )
            self._models[key] = state
        if state.task == "regression" and not (
            _finite_number(prediction) and _finite_number(label)
        ):
            return [
                invalid(
                    Topic.LABELS,
                    label_rec,
                    f"model '{model}' is a regression model but the label or prediction is "
                    "not a finite number",
                )
            ]
        out: list[Emit] = []
        self._add_joined(key, state, prediction, label, ts, out)
        return out

    def _add_joined(
        self,
        key: ModelVersion,
        state: _ModelState,
        prediction: Any,
        label: Any,
        ts: int,
        out: list[Emit],
    ) -> None:
        """Count a joined (prediction, label) in its window and the detector; close the
        windows its watermark passes."""
        model, version = key
        self.counters["joined"] += 1
        state.joined += 1
        start = ts - ts % self.window_ms
        if state.closed_until_ms is not None and start < state.closed_until_ms:
            state.late_labels += 1
            self.counters["late_labels"] += 1
            loss = _loss(state.task, prediction, label)
        else:
            window = state.windows.get(start)
            if window is None:
                window = state.windows[start] = _Window()
            loss = window.add(state.task, prediction, label)
        if state.detector.update(loss):
            self.counters["concept_drifts"] += 1
            out.append(self._detection(model, version, state, ts, loss))
        if state.max_label_ms is None or ts > state.max_label_ms:
            self._new_label_time(key, state, ts, out)

    def _new_label_time(
        self, key: ModelVersion, state: _ModelState, ts: int, out: list[Emit]
    ) -> None:
        """A model's newest label time moved to ``ts``: close the windows its watermark passes."""
        state.max_label_ms = ts
        # Every open window starts at or after closed_until_ms (earlier ones are late), so
        # there is something to close only once the watermark's window boundary moves.
        watermark = ts - self.allowed_lateness_ms
        if (
            state.closed_until_ms is None
            or watermark - watermark % self.window_ms > state.closed_until_ms
        ):
            out.extend(self._advance(key, state))

    def _detection(
        self, model: str, version: str, state: _ModelState, ts: int, loss: float
    ) -> Emit:
        return (
            Topic.DRIFT_DETECTIONS,
            {
                "detection_id": stable_id(
                    model, version, "concept_drift", self.detector, ts, state.joined
                ),
                "model_name": model,
                "model_version": version,
                "kind": "concept_drift",
                "detector": self.detector,
                "feature": None,
                "detected_at": ts,
                "value": float(loss),
                "threshold": None,
                "severity": "critical",
                "details": {"joined_labels": str(state.joined), "task": state.task},
            },
        )

    def _advance(self, key: ModelVersion, state: _ModelState) -> list[Emit]:
        assert state.max_label_ms is not None
        watermark = state.max_label_ms - self.allowed_lateness_ms
        out: list[Emit] = []
        for start in sorted(state.windows):
            if start + self.window_ms <= watermark:
                out.extend(self._close(key, state, start))
        boundary = watermark - watermark % self.window_ms
        if state.closed_until_ms is None or boundary > state.closed_until_ms:
            state.closed_until_ms = boundary
        return out

    def _close(self, key: ModelVersion, state: _ModelState, start: int) -> list[Emit]:
        window = state.windows.pop(start)
        model, version = key
        positive = self.positive_labels.get(model)
        return [
            (
                Topic.PERFORMANCE_METRICS,
                {
                    "metric_id": stable_id(model, version, start, metric),
                    "model_name": model,
                    "model_version": version,
                    "window_start": start,
                    "window_end": start + self.window_ms,
                    "metric": metric,
                    "value": float(value),
                    "n_labels": window.n,
                },
            )
            for metric, value in window.metrics(state.task, positive).items()
        ]

    # -- bounded memory -------------------------------------------------------------------

    def _see(self, ts: int) -> None:
        if self._max_event_ms is None or ts > self._max_event_ms:
            self._max_event_ms = ts

    def _expired(self, ts: int) -> bool:
        return self._max_event_ms is not None and ts < self._max_event_ms - self.ttl_ms

    def _expire(self) -> list[Emit]:
        """Drop predictions and labels older than the TTL (event time); unmatched labels are dead-lettered."""
        if self._max_event_ms is None:
            return []
        horizon = self._max_event_ms - self.ttl_ms
        self.counters["predictions_expired"] += self._predictions.expire(horizon)
        out: list[Emit] = []
        while self._labels:
            pid, rec = next(iter(self._labels.items()))
            if rec["timestamp"] >= horizon:
                break
            del self._labels[pid]
            out.append(
                self._unmatched(rec, "no prediction with this id arrived within the join TTL")
            )
        return out

    def _cap(self) -> list[Emit]:
        out: list[Emit] = []
        over = len(self._predictions) + len(self._labels) - self.max_pending
        if over > 0:
            self.counters["predictions_evicted"] += self._predictions.evict(over)
        while len(self._predictions) + len(self._labels) > self.max_pending:
            _, rec = self._labels.popitem(last=False)  # (predictions went first, above)
            out.append(
                self._unmatched(
                    rec, "evicted by the join's memory cap before its prediction arrived"
                )
            )
        return out

    def _unmatched(self, rec: dict, why: str) -> Emit:
        self.counters["labels_unmatched"] += 1
        return invalid(
            Topic.LABELS, rec, f"label for prediction '{rec['prediction_id']}' not joined: {why}"
        )

    # -- state ----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        return {
            **self.counters,
            "pending_predictions": len(self._predictions),
            "pending_labels": len(self._labels),
        }

    def snapshot(self) -> bytes:
        models = {
            key: {
                "task": s.task,
                "detector": s.detector.snapshot(),
                "max_label_ms": s.max_label_ms,
                "closed_until_ms": s.closed_until_ms,
                "windows": s.windows,
                "joined": s.joined,
                "late_labels": s.late_labels,
            }
            for key, s in self._models.items()
        }
        return pickle.dumps(
            {
                "version": _SNAPSHOT_VERSION,
                "predictions": self._predictions.state(),
                "labels": self._labels,
                "models": models,
                "max_event_ms": self._max_event_ms,
                "counters": self.counters,
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    def restore(self, data: bytes) -> None:
        state = pickle.loads(data)
        version = state.get("version")
        if version not in (1, _SNAPSHOT_VERSION):
            raise ValueError(f"unsupported LabelJoinProcessor snapshot version {version}")
        if version == 1:
            pending = PendingPredictions.from_items(
                state["predictions"].items(), native=self._native
            )
        else:
            pending = PendingPredictions.from_state(state["predictions"], native=self._native)
        self._predictions = pending
        self._labels = state["labels"]
        self._max_event_ms = state["max_event_ms"]
        self.counters = state["counters"]
        self._models = {
            key: _ModelState(
                task=m["task"],
                detector=ConceptDriftDetector.restore(m["detector"]),
                max_label_ms=m["max_label_ms"],
                closed_until_ms=m["closed_until_ms"],
                windows=m["windows"],
                joined=m["joined"],
                late_labels=m["late_labels"],
            )
            for key, m in state["models"].items()
        }


def _finite_number(value: Any) -> bool:
    """What a regression loss can be computed from (bool counts as 0/1)."""
    if not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def _infer_task(prediction: Any, label: Any) -> Task:
    if isinstance(prediction, str | bool) or isinstance(label, str | bool):
        return "classification"
    return "regression"


def _loss(task: Task, prediction: Any, label: Any) -> float:
    if task == "regression":
        return abs(float(prediction) - float(label))
    return 0.0 if _class(prediction) == _class(label) else 1.0


def _check_prediction(pid: Any, model: Any, version: Any, ts: Any) -> None:
    """What a prediction must be to wait for its label (the event contract's types)."""
    check_id(pid)
    if type(model) is not str or type(version) is not str:
        raise TypeError("model_name and model_version must be strings")
    _check_ts(ts)
    check_timestamp(ts)


def _check_ts(ts: Any) -> None:
    if type(ts) is int:  # the common case
        return
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise TypeError("timestamp must be integer epoch milliseconds")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)
