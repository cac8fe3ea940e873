"""Event-time drift windows: predictions in, drift metrics out.

``DriftWindowProcessor`` owns tumbling event-time windows per (model, version[,
segment]). A window closes when the watermark (max event time seen for that key
minus the allowed lateness) passes its end; it then emits one ``drift_metric``
per feature and statistic, the prediction's drift and a dataset summary (share
of drifted features). Events for a window that has already closed are *late*:
they are counted and reported on the next dataset summary, never merged.

The processor never touches Kafka, HTTP, a clock or a database, so both runtimes
drive it and tests feed it plain lists of records.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import operator
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.accumulator import WindowAccumulator
from detectors.drift import DatasetDrift, DriftConfig, evaluate_window
from detectors.profile import CategoricalProfile, ReferenceProfile
from schemas.columns import PredictionColumns
from schemas.native import driftline_native, feature_columns
from schemas.topics import DATASET_FEATURE, PREDICTION_FEATURE, Topic
from streams.processor import Emit, invalid, stable_id

ModelKey = tuple[str, str, str | None]  # model, version, segment

# 2: reference profiles pickled as objects (1: as their JSON, which took ~80 ms per
# 20-feature profile at every checkpoint; still read)
_SNAPSHOT_VERSION = 2


def event_keys(ids: Iterable[str]) -> np.ndarray:
    """Stable 64-bit keys per event id (bottom-k reservoirs merge exactly on them):
    BLAKE2b-64 of the id's UTF-8, little-endian (one native call per batch when the
    extension is installed; the same numbers either way).

    >>> event_keys(["p-1"]).tolist() == [
    ...     int.from_bytes(hashlib.blake2b(b"p-1", digest_size=8).digest(), "little")]
    True
    """
    batch = ids if type(ids) is list else list(ids)
    if driftline_native is not None:
        data = driftline_native.blake2b_concat(batch, 8)
        if data is not None:
            return np.frombuffer(data, dtype="<u8").astype(np.uint64)
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little")
            for i in batch
        ),
        dtype=np.uint64,
        count=len(batch),
    )


@dataclass
class _KeyState:
    max_event_ms: int | None = None
    closed_until_ms: int | None = None  # windows starting before this have closed
    open: dict[int, WindowAccumulator] = field(default_factory=dict)
    late_by_window: dict[int, int] = field(default_factory=dict)  # window start -> late events
    late_total: int = 0


class DriftWindowProcessor:
    """Tumbling event-time windows of predictions, compared to each version's reference profile.

    Parameters
    ----------
    profiles
        Reference profile per (model name, model version). More arrive later as
        ``model_event`` records of type ``registered`` that carry a profile.
    window_ms
        Window length in event-time milliseconds (default one hour).
    allowed_lateness_ms
        How far behind the newest event an event may be and still land in its window.
    config
        Tests and thresholds (``detectors.drift.DriftConfig``).
    segment_by
        Optional segment tag: windows are then kept per tag value as well.
    reservoir_size
        Bounded sample per numeric feature and window, for KS and Wasserstein.
    """

    def __init__(
        self,
        profiles: Mapping[tuple[str, str], ReferenceProfile] | None = None,
        *,
        window_ms: int = 3_600_000,
        allowed_lateness_ms: int = 300_000,
        config: DriftConfig | None = None,
        segment_by: str | None = None,
        reservoir_size: int = 2_000,
    ) -> None:
        if window_ms <= 0:
            raise ValueError(f"window_ms must be positive, got {window_ms}")
        if allowed_lateness_ms < 0:
            raise ValueError(f"allowed_lateness_ms must be >= 0, got {allowed_lateness_ms}")
        self.window_ms = int(window_ms)
        self.allowed_lateness_ms = int(allowed_lateness_ms)
        self.config = config or DriftConfig()
        self.segment_by = segment_by
        self.reservoir_size = int(reservoir_size)
        self._profiles: dict[tuple[str, str], ReferenceProfile] = dict(profiles or {})
        self._keys: dict[ModelKey, _KeyState] = {}
        self.windows_closed = 0

    # -- inputs ---------------------------------------------------------------------------

    def set_profile(self, model_name: str, model_version: str, profile: ReferenceProfile) -> None:
        """Register (or replace) the reference profile of a model version."""
        self._profiles[(model_name, model_version)] = profile

    def process(self, topic: Topic, records: list[dict]) -> list[Emit]:
        if topic == Topic.PREDICTIONS:
            return self._predictions(records)
        if topic == Topic.MODEL_EVENTS:
            return self._model_events(records)
        return []

    def flush(self) -> list[Emit]:
        """Close every open window (end of a finite stream)."""
        out: list[Emit] = []
        for key, state in self._keys.items():
            for start in sorted(state.open):
                out.extend(self._close(key, state, start))
            if state.max_event_ms is not None:
                last = state.max_event_ms - state.max_event_ms % self.window_ms
                state.closed_until_ms = max(state.closed_until_ms or last, last + self.window_ms)
        return out

    # -- model events ---------------------------------------------------------------------

    def _model_events(self, records: list[dict]) -> list[Emit]:
        out: list[Emit] = []
        for rec in records:
            if rec.get("event_type") != "registered" or not rec.get("reference_profile"):
                continue
            try:
                profile = profile_from_json(rec["reference_profile"])
                self.set_profile(str(rec["model_name"]), str(rec["model_version"]), profile)
            except (KeyError, TypeError, ValueError) as exc:
                out.append(
                    invalid(
                        Topic.MODEL_EVENTS, rec, f"reference_profile could not be loaded: {exc}"
                    )
                )
        return out

    # -- predictions ----------------------------------------------------------------------

    def _predictions(self, records: list[dict] | PredictionColumns) -> list[Emit]:
        if type(records) is PredictionColumns:
            done = self._ingest_batch(records)
            if done is not None:
                return done
            records = records.records()
        if self.segment_by is None and records:
            model_version = _one_model(records)
            if model_version is not None and model_version in self._profiles:
                # The common batch: one model version, every record well-typed.
                return self._ingest((*model_version, None), records)
        out: list[Emit] = []
        groups: dict[ModelKey, list[dict]] = {}
        for rec in records:
            try:
                model, version = rec["model_name"], rec["model_version"]
                ts = rec["timestamp"]
                # exact types first (the decoded common case), then the general checks
                if type(ts) is not int and (not isinstance(ts, int) or isinstance(ts, bool)):
                    raise TypeError("timestamp must be integer epoch milliseconds")
                features = rec["features"]
                if type(features) is not dict and not isinstance(features, Mapping):
                    raise TypeError("features must be a map")
                if not isinstance(rec["prediction_id"], str):
                    raise TypeError("prediction_id must be a string")
            except (KeyError, TypeError) as exc:
                out.append(invalid(Topic.PREDICTIONS, rec, f"invalid prediction: {_reason(exc)}"))
                continue
            if (model, version) not in self._profiles:
                out.append(
                    invalid(
                        Topic.PREDICTIONS,
                        rec,
                        f"no reference profile for model '{model}' version '{version}'; "
                        "register the version with its training data first",
                    )
                )
                continue
            segment = None
            if self.segment_by is not None:
                segment = (rec.get("segment") or {}).get(self.segment_by)
            groups.setdefault((model, version, segment), []).append(rec)
        for key, recs in groups.items():
            out.extend(self._ingest(key, recs))
        return out

    def _ingest_batch(self, batch: PredictionColumns) -> list[Emit] | None:
        """:meth:`_predictions` of a batch decoded into columns, without its records; None
        when its records are needed (segments, no profile, a categorical feature among
        the batch's numbers, a prediction that does not fit the profile)."""
        key = (batch.model_name, batch.model_version, None)
        profile = self._profiles.get((batch.model_name, batch.model_version))
        if self.segment_by is not None or profile is None or not len(batch):
            return None
        columns = _batch_columns(profile, batch)
        if columns is None:
            return None
        return self._ingest_columns(key, profile, columns, batch.timestamps, batch.ids, [])

    def _ingest(self, key: ModelKey, recs: list[dict]) -> list[Emit]:
        profile = self._profiles[(key[0], key[1])]
        out: list[Emit] = []
        columns, bad = _columns(profile, recs)
        for i, reason in bad.items():
            out.append(invalid(Topic.PREDICTIONS, recs[i], reason))
        ts = np.fromiter((r["timestamp"] for r in recs), dtype=np.int64, count=len(recs))
        ids = [r["prediction_id"] for r in recs]
        return self._ingest_columns(key, profile, columns, ts, ids, list(bad), out)

    def _ingest_columns(
        self,
        key: ModelKey,
        profile: ReferenceProfile,
        columns: dict[str, np.ndarray],
        ts: np.ndarray,
        ids: list[str],
        bad: list[int],
        out: list[Emit] | None = None,
    ) -> list[Emit]:
        """Add a batch of one key (its feature columns, times and ids; ``bad``: the indexes
        of events left out, dead-lettered already) to its windows and close those the
        watermark passed."""
        out = [] if out is None else out
        state = self._keys.setdefault(key, _KeyState())
        ok = np.ones(len(ts), dtype=bool)
        if bad:
            ok[bad] = False
        starts = ts - ts % self.window_ms
        first_open = self._closed_before_each(state, ts, ok)
        late = ok & (starts < first_open)
        if late.any():
            # A late event is reported on the first window still open when it arrived:
            # decided per event, so it does not depend on how the stream was batched.
            late_starts, counts = np.unique(first_open[late], return_counts=True)
            for start, n in zip(late_starts.tolist(), counts.tolist(), strict=True):
                state.late_by_window[start] = state.late_by_window.get(start, 0) + n
                if start not in state.open:
                    state.open[start] = WindowAccumulator(
                        profile, reservoir_size=self.reservoir_size
                    )
            state.late_total += int(late.sum())
            ok &= ~late
        if ok.any():
            keys = event_keys(ids)
            for start in np.unique(starts[ok]).tolist():
                sel = ok & (starts == start)
                acc = state.open.get(start)
                if acc is None:
                    acc = WindowAccumulator(profile, reservoir_size=self.reservoir_size)
                    state.open[start] = acc
                if sel.all():  # the whole batch in one window: no copies
                    acc.update(columns, keys)
                else:
                    acc.update({name: col[sel] for name, col in columns.items()}, keys[sel])
            newest = int(ts[ok].max())
            if state.max_event_ms is None or newest > state.max_event_ms:
                state.max_event_ms = newest
        out.extend(self._advance(key, state))
        return out

    def _closed_before_each(self, state: _KeyState, ts: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """For each event, the start of the first window still open when it arrived.

        Lateness is decided per event against the events before it — not at batch
        boundaries — so the same stream gives the same windows however it is batched
        (a replay after a crash batches differently).
        """
        floor = state.closed_until_ms if state.closed_until_ms is not None else -(2**62)
        seen = np.where(ok, ts, np.iinfo(np.int64).min)
        prior_max = np.maximum.accumulate(seen)
        # the maximum *before* each event: shift right by one
        before = np.empty_like(prior_max)
        before[0] = np.iinfo(np.int64).min
        before[1:] = prior_max[:-1]
        if state.max_event_ms is not None:
            before = np.maximum(before, state.max_event_ms)
        valid = before > np.iinfo(np.int64).min
        watermark = np.where(valid, before, 0) - self.allowed_lateness_ms
        boundary = np.where(valid, watermark - watermark % self.window_ms, floor)
        return np.maximum(boundary, floor)

    def _advance(self, key: ModelKey, state: _KeyState) -> list[Emit]:
        if state.max_event_ms is None:
            return []
        watermark = state.max_event_ms - self.allowed_lateness_ms
        out: list[Emit] = []
        for start in sorted(state.open):
            if start + self.window_ms <= watermark:
                out.extend(self._close(key, state, start))
        # Every window that ends at or before the watermark is closed, whether or not it saw events.
        boundary = watermark - watermark % self.window_ms
        if boundary > (state.closed_until_ms if state.closed_until_ms is not None else -(2**62)):
            state.closed_until_ms = boundary
        return out

    def _close(self, key: ModelKey, state: _KeyState, start: int) -> list[Emit]:
        acc = state.open.pop(start)
        model, version, segment = key
        profile = self._profiles[(model, version)]
        result = evaluate_window(profile, acc, self.config)
        self.windows_closed += 1
        late = state.late_by_window.pop(start, 0)
        return list(
            _metric_records(
                model,
                version,
                segment,
                start,
                start + self.window_ms,
                result,
                acc,
                late,
                self.config,
            )
        )

    # -- state ----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        return {
            "windows_open": sum(len(s.open) for s in self._keys.values()),
            "windows_closed": self.windows_closed,
            "late_events": sum(s.late_total for s in self._keys.values()),
        }

    def snapshot(self) -> bytes:
        state = {
            "version": _SNAPSHOT_VERSION,
            "profiles": dict(self._profiles),
            "windows_closed": self.windows_closed,
            "keys": {
                key: {
                    "max_event_ms": s.max_event_ms,
                    "closed_until_ms": s.closed_until_ms,
                    "late_by_window": s.late_by_window,
                    "late_total": s.late_total,
                    "open": {start: acc.to_state() for start, acc in s.open.items()},
                }
                for key, s in self._keys.items()
            },
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, data: bytes) -> None:
        state = pickle.loads(data)
        version = state.get("version")
        if version not in (1, _SNAPSHOT_VERSION):
            raise ValueError(f"unsupported DriftWindowProcessor snapshot version {version}")
        self._profiles = {
            k: profile_from_json(v) if version == 1 else v for k, v in state["profiles"].items()
        }
        self.windows_closed = state["windows_closed"]
        self._keys = {}
        for key, s in state["keys"].items():
            profile = self._profiles[(key[0], key[1])]
            self._keys[key] = _KeyState(
                max_event_ms=s["max_event_ms"],
                closed_until_ms=s["closed_until_ms"],
                late_by_window=s["late_by_window"],
                late_total=s["late_total"],
                open={
                    start: WindowAccumulator.from_state(profile, acc)
                    for start, acc in s["open"].items()
                },
            )


@functools.lru_cache(maxsize=8)  # (each entry holds a profile and its JSON: MBs)
def profile_from_json(text: str | bytes) -> ReferenceProfile:
    """``ReferenceProfile.from_json``, parsed once per distinct text: the processors of every
    partition (and a replay of the model events) share one (never mutated) profile object
    instead of parsing ~2 MB of JSON each."""
    return ReferenceProfile.from_json(text)


def _one_model(records: list[dict]) -> tuple[str, str] | None:
    """(model, version) when every record is a well-typed prediction of that one model
    version (exact types, as decoded), else None: then each record is checked on its own."""
    first = records[0]
    model, version = first.get("model_name"), first.get("model_version")
    for rec in records:
        if (
            rec.get("model_name") != model
            or rec.get("model_version") != version
            or type(rec.get("timestamp")) is not int
            or type(rec.get("features")) is not dict
            or type(rec.get("prediction_id")) is not str
        ):
            return None
    if type(model) is not str or type(version) is not str:
        return None
    return model, version


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)


def _columns(
    profile: ReferenceProfile, recs: list[dict]
) -> tuple[dict[str, np.ndarray], dict[int, str]]:
    """Feature columns of a batch as numpy arrays, and the events that do not fit the profile.

    A numeric feature takes numbers (bool counts as 0/1); a missing key, null, NaN or
    inf is a missing value. A string in a numeric feature is a type error: that event
    is dead-lettered with the feature named.
    """
    feats = [r["features"] for r in recs]
    columns: dict[str, np.ndarray] = {}
    bad: dict[int, str] = {}
    numeric = [n for n, fp in profile.features.items() if not isinstance(fp, CategoricalProfile)]
    if len(numeric) > 1:
        # The common case in one pass: every event has every numeric feature and only
        # numbers (or None) in them. The same conversion as _numeric (None to NaN, bool to
        # 0/1), so the columns are identical: in the native extension when installed, else
        # in Python; None (a feature missing somewhere, text in a numeric feature): per
        # column below.
        matrix = feature_columns(feats, numeric)
        if matrix is None:
            matrix = _python_feature_columns(feats, numeric)
        if matrix is not None:
            for j, name in enumerate(numeric):
                columns[name] = matrix[j]
    for name, fp in profile.features.items():
        if name in columns:
            continue
        values = [f.get(name) for f in feats]
        if isinstance(fp, CategoricalProfile):
            columns[name] = _categorical(values)
        else:
            columns[name] = _numeric(values, name, bad)
    if profile.prediction is not None:
        preds = [r.get("prediction") for r in recs]
        if isinstance(profile.prediction, CategoricalProfile):
            columns[PREDICTION_FEATURE] = _categorical(preds)
        else:
            columns[PREDICTION_FEATURE] = _numeric(preds, "prediction", bad)
    return columns, bad


def _batch_columns(
    profile: ReferenceProfile, batch: PredictionColumns
) -> dict[str, np.ndarray] | None:
    """:func:`_columns` of the batch's records, from its columns: the same arrays; None
    when they would need the records (a categorical feature the batch holds numbers for,
    a prediction of another type than the profile's)."""
    n = len(batch)
    index = {name: j for j, name in enumerate(batch.feature_names)}
    columns: dict[str, np.ndarray] = {}
    for name, fp in profile.features.items():
        j = index.get(name)
        if isinstance(fp, CategoricalProfile):
            if j is not None:
                return None
            columns[name] = _categorical([None] * n)
        elif j is None:
            columns[name] = np.full(n, np.nan)
        else:
            columns[name] = batch.features[j]
    if profile.prediction is not None:
        preds = batch.predictions
        if isinstance(profile.prediction, CategoricalProfile):
            if not all(type(p) is str for p in preds):
                return None
            columns[PREDICTION_FEATURE] = _categorical(preds)
        else:
            if not all(type(p) is float for p in preds):
                return None
            columns[PREDICTION_FEATURE] = np.array(preds, dtype=np.float64)
    return columns


def _python_feature_columns(feats: list[Any], names: list[str]) -> np.ndarray | None:
    """``schemas.native.feature_columns`` without the extension: one C-level item lookup per
    event and ``np.fromiter`` over the rows, transposed to one contiguous row per feature."""
    getter = operator.itemgetter(*names)
    try:
        matrix = np.fromiter(
            itertools.chain.from_iterable(map(getter, feats)),
            dtype=np.float64,
            count=len(feats) * len(names),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return matrix.reshape(len(feats), len(names)).T.copy()


def _numeric(values: list[Any], name: str, bad: dict[int, str]) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)  # None -> NaN
    except (TypeError, ValueError):
        pass
    col = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None or isinstance(v, int | float):
            col[i] = np.nan if v is None else float(v)
        else:
            col[i] = np.nan
            bad.setdefault(
                i, f"feature '{name}' expects a number, got {type(v).__name__} {v!r:.40}"
            )
    return col


def _categorical(values: list[Any]) -> np.ndarray:
    col = np.empty(len(values), dtype=object)
    if all(type(v) is str for v in values):  # the common case, kept as it is
        col[:] = values
        return col
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and v != v):
            col[i] = None
        elif isinstance(v, str):
            col[i] = v
        elif isinstance(v, bool):
            col[i] = str(v)
        elif isinstance(v, float) and v.is_integer():
            col[i] = str(int(v))
        else:
            col[i] = str(v)
    return col


def _metric_records(
    model: str,
    version: str,
    segment: str | None,
    start: int,
    end: int,
    result: DatasetDrift,
    acc: WindowAccumulator,
    late: int,
    config: DriftConfig,
) -> Iterable[Emit]:
    for col in result.columns:
        for metric, (value, pvalue) in col.metrics.items():
            primary = metric == col.primary_metric
            threshold = col.threshold if primary else config.threshold_for(metric)
            drift = col.drift if primary else config.verdict(metric, value, pvalue)
            yield (
                Topic.DRIFT_METRICS,
                {
                    "metric_id": stable_id(
                        model, version, segment or "", start, col.column, metric
                    ),
                    "model_name": model,
                    "model_version": version,
                    "window_start": start,
                    "window_end": end,
                    "feature": col.column,
                    "metric": metric,
                    "value": float(value),
                    "pvalue": None if pvalue is None else float(pvalue),
                    "threshold": float(threshold),
                    "drift": bool(drift),
                    "primary": primary,
                    "n_reference": int(col.n_reference),
                    "n_current": int(col.n_current),
                    "missing_rate": float(col.missing_rate),
                    "out_of_range_rate": float(col.out_of_range_rate),
                    "late_events": 0,
                    "segment": segment,
                },
            )
    yield (
        Topic.DRIFT_METRICS,
        {
            "metric_id": stable_id(
                model, version, segment or "", start, DATASET_FEATURE, "share_drifted"
            ),
            "model_name": model,
            "model_version": version,
            "window_start": start,
            "window_end": end,
            "feature": DATASET_FEATURE,
            "metric": "share_drifted",
            "value": float(result.share_drifted),
            "pvalue": None,
            "threshold": float(config.drift_share),
            "drift": bool(result.drift),
            "primary": True,
            "n_reference": 0,
            "n_current": int(acc.n_events),
            "missing_rate": 0.0,
            "out_of_range_rate": 0.0,
            "late_events": int(late),
            "segment": segment,
        },
    )
