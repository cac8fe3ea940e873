"""Alert lifecycle: detections in, alert revisions out.

``AlertLifecycle`` owns one state machine per alert key (model, version, kind,
feature[, segment]): open → acknowledged → resolved. It turns drift-metric rows
and detections into alerts, folds repeated detections into the open alert
(de-duplication), holds back new alerts during a cooldown after a resolve,
resolves alerts on its own when the drift goes away, and applies responders'
acknowledgements. Every state change is a new revision of the ``alert`` record;
the ClickHouse table keeps the highest revision per ``alert_id``.

Pure and deterministic: time is the records' event time, never the wall clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from schemas.topics import DATASET_FEATURE, PREDICTION_FEATURE, Topic
from streams.processor import Emit, check_fields, dump_state, invalid, load_state, stable_id

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
"""Alert severities, lowest first."""

SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

AlertKey = tuple[str, str, str, str | None, str | None]
"""model name, model version, kind, feature, segment (None when windows are not segmented)."""

_SNAPSHOT_FORMAT = "driftline.alert_lifecycle"
_SNAPSHOT_VERSION = 1

_WINDOWS = "windows"
_DETECTIONS = "detections"


@dataclass
class _KeyState:
    source: str  # "windows" (drift metrics) or "detections"
    alert: dict[str, Any] | None = None  # live alert, including folds not yet published
    published: dict[str, Any] | None = None  # last emitted revision
    summary: str = ""  # what fired last, for the message
    clean_windows: int = 0
    last_window_end: int | None = None
    last_detected_at: int | None = None
    detection_ids: list[str] = field(default_factory=list)  # ids seen at last_detected_at
    last_fired_at: int = 0
    resolved_at: int | None = None
    suppressed: int = 0  # detections held back by the cooldown


def _new_stats() -> dict[str, int]:
    return {
        "records": 0,
        "opened": 0,
        "revisions": 0,
        "deduplicated": 0,
        "suppressed_cooldown": 0,
        "stale": 0,
        "acknowledged": 0,
        "resolved_by_responder": 0,
        "auto_resolved_windows": 0,
        "auto_resolved_time": 0,
        "ignored_detections": 0,
        "dead_letters": 0,
    }


class AlertLifecycle:
    """Alerts per (model, version, kind, feature): open → acknowledged → resolved.

    Inputs:

    - ``Topic.DRIFT_METRICS``: only each feature's *primary* statistic and the
      ``__dataset__`` ``share_drifted`` row count. ``drift=True`` is a detection
      (kind ``prediction_drift`` for ``__prediction__``, else ``data_drift``);
      ``drift=False`` is a clean window for that key. Rows of a window already
      seen for the key (``window_end`` not newer) are replays and are skipped.
      Segmented rows get their own key; the segment is named in the message
      (``alert.avsc`` has no segment field yet).
    - ``Topic.DRIFT_DETECTIONS`` of the kinds in ``detection_kinds`` (concept drift
      and performance by default). Data and prediction drift come from the metric
      rows, which also carry the clean windows; their detections would count twice.
    - ``Topic.ALERT_ACKS``: acknowledge an open alert, or resolve an open or
      acknowledged one.

    De-duplication: while a key's alert is open or acknowledged, a detection bumps
    ``occurrences``, sets ``value``/``threshold`` to the latest and keeps the highest
    severity. A revision is emitted only when the severity rises; the other changes
    ride along on the next emitted revision (ack, resolve, escalation). This keeps
    the alerts topic proportional to changes a responder cares about.

    Auto-resolve: after ``auto_resolve_windows`` consecutive clean windows
    (window-based keys), or, for detection-based keys (no windows), once the
    model's event time is ``auto_resolve_ms`` past the last detection; the model's
    event time advances with every metric row and detection of that model (acks
    are responder time and do not advance it). The resolving revision is stamped
    with the logical time it resolved: the last clean window's end, or the last
    detection + ``auto_resolve_ms``.

    Severity: a detection's own ``severity``; for metric rows (and detections
    without one) the ratio value / threshold: ≥ ``critical_ratio`` critical,
    ≥ ``warning_ratio`` warning, below that info (a verdict decided by a p-value
    can fire with a statistic under the threshold). No usable threshold: warning.

    Parameters
    ----------
    cooldown_ms
        After a resolve, detections for the same key are suppressed (counted in
        ``stats()["suppressed_cooldown"]``) until this much event time has passed.
    auto_resolve_windows
        Consecutive clean windows that resolve a window-based alert.
    auto_resolve_ms
        Event time without a detection that resolves a detection-based alert.
    critical_ratio, warning_ratio
        value / threshold ratios for critical and warning severities.
    detection_kinds
        Kinds taken from ``Topic.DRIFT_DETECTIONS``; detections of other kinds are
        counted in ``stats()["ignored_detections"]``.

    Examples
    --------
    >>> lifecycle = AlertLifecycle()
    >>> row = {"model_name": "churn", "model_version": "3", "feature": "age", "metric": "psi",
    ...        "window_start": 0, "window_end": 3_600_000, "value": 0.5, "threshold": 0.2,
    ...        "drift": True, "primary": True}
    >>> [(topic.name, alert["state"], alert["severity"])
    ...  for topic, alert in lifecycle.process(Topic.DRIFT_METRICS, [row])]
    [('ALERTS', 'open', 'critical')]
    """

    topics: frozenset[Topic] = frozenset(
        {Topic.DRIFT_METRICS, Topic.DRIFT_DETECTIONS, Topic.ALERT_ACKS}
    )
    """Topics this processor consumes; records from other topics are ignored."""

    def __init__(
        self,
        *,
        cooldown_ms: int = 3_600_000,
        auto_resolve_windows: int = 3,
        auto_resolve_ms: int = 86_400_000,
        critical_ratio: float = 2.0,
        warning_ratio: float = 1.0,
        detection_kinds: frozenset[str] = frozenset({"concept_drift", "performance"}),
    ) -> None:
        if cooldown_ms < 0:
            raise ValueError(f"cooldown_ms must be >= 0, got {cooldown_ms}")
        if auto_resolve_windows < 1:
            raise ValueError(f"auto_resolve_windows must be >= 1, got {auto_resolve_windows}")
        if auto_resolve_ms <= 0:
            raise ValueError(f"auto_resolve_ms must be > 0, got {auto_resolve_ms}")
        if not 0 < warning_ratio <= critical_ratio:
            raise ValueError(
                f"need 0 < warning_ratio <= critical_ratio, got {warning_ratio}, {critical_ratio}"
            )
        self.cooldown_ms = int(cooldown_ms)
        self.auto_resolve_windows = int(auto_resolve_windows)
        self.auto_resolve_ms = int(auto_resolve_ms)
        self.critical_ratio = float(critical_ratio)
        self.warning_ratio = float(warning_ratio)
        self.detection_kinds = frozenset(detection_kinds)
        self._keys: dict[AlertKey, _KeyState] = {}
        self._alert_keys: dict[str, AlertKey] = {}  # every alert ever opened
        self._timed: set[AlertKey] = set()  # active detection-based alerts
        self._model_clock: dict[str, int] = {}
        self._stats = _new_stats()

    # -- processor protocol ---------------------------------------------------------------

    def process(self, topic: Topic, records: list[dict[str, Any]]) -> list[Emit]:
        """Consume drift metrics, detections or acks; return alert revisions and dead letters."""
        if topic == Topic.DRIFT_METRICS:
            handle = self._metric
        elif topic == Topic.DRIFT_DETECTIONS:
            handle = self._detection
        elif topic == Topic.ALERT_ACKS:
            handle = self._ack
        else:
            return []
        out: list[Emit] = []
        for record in records:
            self._stats["records"] += 1
            out.extend(handle(record))
        self._stats["dead_letters"] += sum(1 for t, _ in out if t == Topic.DEAD_LETTERS)
        return out

    def flush(self) -> list[Emit]:
        """Nothing to close: the end of a finite stream does not resolve anything."""
        return []

    def snapshot(self) -> bytes:
        """State as JSON bytes (configuration is not included)."""
        state = {
            "keys": [{"key": list(key), **asdict(s)} for key, s in self._keys.items()],
            "alert_keys": [[alert_id, list(key)] for alert_id, key in self._alert_keys.items()],
            "model_clock": self._model_clock,
            "stats": self._stats,
        }
        return dump_state(_SNAPSHOT_FORMAT, _SNAPSHOT_VERSION, state)

    def restore(self, data: bytes) -> None:
        """Replace the state with one taken by ``snapshot``.

        Raises
        ------
        ValueError
            If ``data`` is not an ``AlertLifecycle`` snapshot of a known version.
        """
        state = load_state(data, _SNAPSHOT_FORMAT, _SNAPSHOT_VERSION, "an AlertLifecycle")
        keys: dict[AlertKey, _KeyState] = {}
        for entry in state["keys"]:
            key = _key(entry.pop("key"))
            keys[key] = _KeyState(**entry)
        self._keys = keys
        self._alert_keys = {alert_id: _key(key) for alert_id, key in state["alert_keys"]}
        self._timed = {
            key
            for key, s in keys.items()
            if s.source == _DETECTIONS and s.alert is not None and s.alert["state"] != "resolved"
        }
        self._model_clock = {str(k): int(v) for k, v in state["model_clock"].items()}
        self._stats = _new_stats() | {str(k): int(v) for k, v in state["stats"].items()}

    # -- queries --------------------------------------------------------------------------

    def open_alerts(self) -> list[dict[str, Any]]:
        """Latest emitted revision of every alert that is open or acknowledged.

        Folds not yet published (occurrences, latest value) are not included, so the
        answer matches what the alerts table holds.
        """
        return [
            dict(s.published)
            for s in self._keys.values()
            if s.published is not None and s.published["state"] != "resolved"
        ]

    def stats(self) -> dict[str, int]:
        """Counters since the processor's state began (they survive snapshot/restore)."""
        return dict(self._stats)

    # -- drift metrics --------------------------------------------------------------------

    def _metric(self, rec: dict[str, Any]) -> list[Emit]:
        reason = check_fields(
            rec,
            {"model_name": "str", "model_version": "str", "feature": "str", "metric": "str"},
            {"primary": "bool", "segment": "str"},
        )
        if reason is not None:
            return [invalid(Topic.DRIFT_METRICS, rec, reason)]
        feature, metric = rec["feature"], rec["metric"]
        if not (rec.get("primary") or (feature == DATASET_FEATURE and metric == "share_drifted")):
            return []  # secondary statistics inform dashboards, not alerts
        reason = check_fields(rec, {"window_start": "int", "window_end": "int", "drift": "bool"})
        if reason is None and rec["drift"]:
            # value/threshold only matter when the row fires
            reason = check_fields(rec, {"value": "number", "threshold": "number"})
        if reason is not None:
            return [invalid(Topic.DRIFT_METRICS, rec, reason)]

        model, version, segment = rec["model_name"], rec["model_version"], rec.get("segment")
        t = int(rec["window_end"])
        out = self._advance(model, t)
        kind = "prediction_drift" if feature == PREDICTION_FEATURE else "data_drift"
        key: AlertKey = (model, version, kind, feature, segment)
        state = self._keys.get(key)
        if state is not None and state.last_window_end is not None and t <= state.last_window_end:
            self._stats["stale"] += 1
            return out
        if rec["drift"]:
            if state is None:
                state = self._keys[key] = _KeyState(source=_WINDOWS)
            state.last_window_end = t
            value, threshold = float(rec["value"]), float(rec["threshold"])
            severity = self._severity(value, threshold)
            summary = _metric_summary(key, metric, value, threshold, int(rec["window_start"]), t)
            out.extend(self._fire(key, state, t, value, threshold, severity, summary))
        elif state is not None:
            state.last_window_end = t
            alert = state.alert
            if alert is not None and alert["state"] != "resolved":
                state.clean_windows += 1
                if state.clean_windows >= self.auto_resolve_windows:
                    self._stats["auto_resolved_windows"] += 1
                    note = f"auto-resolved after {state.clean_windows} clean windows"
                    out.append(self._resolve(state, t, "auto", note))
        return out

    # -- detections -----------------------------------------------------------------------

    def _detection(self, rec: dict[str, Any]) -> list[Emit]:
        reason = check_fields(
            rec,
            {
                "detection_id": "str",
                "model_name": "str",
                "model_version": "str",
                "kind": "str",
                "detected_at": "int",
                "value": "number",
            },
            {"feature": "str", "threshold": "number", "severity": "str", "detector": "str"},
        )
        if reason is None and rec.get("severity") not in (None, *SEVERITIES):
            reason = f"field 'severity' must be one of {list(SEVERITIES)}, got {rec['severity']!r}"
        if reason is not None:
            return [invalid(Topic.DRIFT_DETECTIONS, rec, reason)]

        model, t = rec["model_name"], int(rec["detected_at"])
        out = self._advance(model, t)
        if rec["kind"] not in self.detection_kinds:
            self._stats["ignored_detections"] += 1
            return out
        key: AlertKey = (model, rec["model_version"], rec["kind"], rec.get("feature"), None)
        state = self._keys.get(key)
        if state is not None and _seen(state, t, rec["detection_id"]):
            self._stats["stale"] += 1
            return out
        if state is None:
            state = self._keys[key] = _KeyState(source=_DETECTIONS)
        if state.last_detected_at != t:
            state.last_detected_at, state.detection_ids = t, []
        state.detection_ids.append(rec["detection_id"])

        value = float(rec["value"])
        threshold = None if rec.get("threshold") is None else float(rec["threshold"])
        severity = rec.get("severity") or self._severity(value, threshold)
        summary = _detection_summary(key, rec.get("detector"), value, threshold)
        out.extend(self._fire(key, state, t, value, threshold, severity, summary))
        return out

    # -- acknowledgements -----------------------------------------------------------------

    def _ack(self, rec: dict[str, Any]) -> list[Emit]:
        reason = check_fields(
            rec,
            {"alert_id": "str", "action": "str", "actor": "str", "timestamp": "int"},
            {"note": "str"},
        )
        if reason is None and rec["action"] not in ("acknowledge", "resolve"):
            reason = f"field 'action' must be 'acknowledge' or 'resolve', got {rec['action']!r}"
        if reason is not None:
            return [invalid(Topic.ALERT_ACKS, rec, reason)]

        alert_id, action, actor = rec["alert_id"], rec["action"], rec["actor"]
        key = self._alert_keys.get(alert_id)
        if key is None:
            return [invalid(Topic.ALERT_ACKS, rec, f"unknown alert_id {alert_id!r}")]
        state = self._keys[key]
        alert = state.alert
        assert alert is not None  # an indexed key has had an alert
        if alert["alert_id"] != alert_id:
            return [
                invalid(
                    Topic.ALERT_ACKS,
                    rec,
                    f"cannot {action} alert {alert_id}: it was resolved and a newer alert "
                    f"{alert['alert_id']} has opened for the same key",
                )
            ]
        if alert["state"] == "resolved":
            return [
                invalid(
                    Topic.ALERT_ACKS,
                    rec,
                    f"cannot {action} alert {alert_id}: already resolved by {alert['resolved_by']}",
                )
            ]
        if action == "acknowledge" and alert["state"] == "acknowledged":
            return [
                invalid(
                    Topic.ALERT_ACKS,
                    rec,
                    f"cannot acknowledge alert {alert_id}: already acknowledged by "
                    f"{alert['acknowledged_by']}",
                )
            ]
        t = int(rec["timestamp"])
        if rec.get("note") is not None:
            alert["note"] = rec["note"]
        if action == "resolve":
            self._stats["resolved_by_responder"] += 1
            return [self._resolve(state, t, actor, f"resolved by {actor}")]
        alert["state"] = "acknowledged"
        alert["acknowledged_by"] = actor
        self._stats["acknowledged"] += 1
        return [self._emit(state, t, f"{state.summary}; acknowledged by {actor}")]

    # -- state machine --------------------------------------------------------------------

    def _severity(self, value: float, threshold: float | None) -> str:
        if threshold is None or threshold <= 0:
            return "warning"
        ratio = value / threshold
        if ratio >= self.critical_ratio:
            return "critical"
        if ratio >= self.warning_ratio:
            return "warning"
        return "info"

    def _advance(self, model: str, t: int) -> list[Emit]:
        """Move the model's event time to ``t`` and resolve detection alerts gone quiet."""
        clock = max(self._model_clock.get(model, t), t)
        self._model_clock[model] = clock
        due = [
            (self._keys[key].last_fired_at + self.auto_resolve_ms, key)
            for key in self._timed
            if key[0] == model and clock - self._keys[key].last_fired_at >= self.auto_resolve_ms
        ]
        out: list[Emit] = []
        for at, key in sorted(due, key=lambda d: (d[0], _sort_key(d[1]))):
            self._stats["auto_resolved_time"] += 1
            note = f"auto-resolved after {_duration(self.auto_resolve_ms)} without detections"
            out.append(self._resolve(self._keys[key], at, "auto", note))
        return out

    def _fire(
        self,
        key: AlertKey,
        state: _KeyState,
        t: int,
        value: float,
        threshold: float | None,
        severity: str,
        summary: str,
    ) -> list[Emit]:
        """A detection for ``key`` at event time ``t``: open, fold into, or suppress."""
        alert = state.alert
        if alert is not None and alert["state"] != "resolved":
            self._stats["deduplicated"] += 1
            alert["occurrences"] += 1
            alert["value"], alert["threshold"] = value, threshold
            state.summary = summary
            state.clean_windows = 0
            state.last_fired_at = max(state.last_fired_at, t)
            if SEVERITY_RANK[severity] <= SEVERITY_RANK[alert["severity"]]:
                return []
            alert["severity"] = severity
            return [self._emit(state, t, f"{summary}; severity raised to {severity}")]

        model, version, kind, feature, segment = key
        id_parts: tuple[object, ...] = (model, version, kind, feature)
        if segment is not None:
            id_parts += (segment,)
        alert_id = stable_id(*id_parts, t)
        in_cooldown = state.resolved_at is not None and t < state.resolved_at + self.cooldown_ms
        if in_cooldown or alert_id in self._alert_keys:
            state.suppressed += 1
            self._stats["suppressed_cooldown"] += 1
            return []
        state.alert = {
            "alert_id": alert_id,
            "model_name": model,
            "model_version": version,
            "kind": kind,
            "feature": feature,
            "state": "open",
            "severity": severity,
            "opened_at": t,
            "updated_at": t,
            "revision": 0,
            "value": value,
            "threshold": threshold,
            "occurrences": 1,
            "message": "",
            "acknowledged_by": None,
            "resolved_by": None,
            "note": None,
        }
        state.summary = summary
        state.clean_windows = 0
        state.last_fired_at = t
        state.resolved_at = None
        self._alert_keys[alert_id] = key
        if state.source == _DETECTIONS:
            self._timed.add(key)
        self._stats["opened"] += 1
        return [self._emit(state, t, summary)]

    def _resolve(self, state: _KeyState, t: int, by: str, how: str) -> Emit:
        alert = state.alert
        assert alert is not None
        alert["state"] = "resolved"
        alert["resolved_by"] = by
        state.resolved_at = t
        state.clean_windows = 0
        key = self._alert_keys[alert["alert_id"]]
        self._timed.discard(key)
        return self._emit(state, t, f"{state.summary}; {how}")

    def _emit(self, state: _KeyState, t: int, message: str) -> Emit:
        alert = state.alert
        assert alert is not None
        alert["revision"] += 1
        alert["updated_at"] = t
        alert["message"] = message
        state.published = dict(alert)
        self._stats["revisions"] += 1
        return (Topic.ALERTS, dict(alert))


def _seen(state: _KeyState, t: int, detection_id: str) -> bool:
    """A replayed or out-of-order detection: older than the last, or the same id again."""
    last = state.last_detected_at
    if last is None:
        return False
    return t < last or (t == last and detection_id in state.detection_ids)


def _key(parts: list[Any]) -> AlertKey:
    model, version, kind, feature, segment = parts
    return (model, version, kind, feature, segment)


def _sort_key(key: AlertKey) -> tuple[str, ...]:
    return tuple("" if p is None else p for p in key)


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"


def _subject(key: AlertKey) -> str:
    model, version, _, _, segment = key
    where = f" (segment {segment})" if segment is not None else ""
    return f"{model} v{version}{where}"


def _metric_summary(
    key: AlertKey, metric: str, value: float, threshold: float, start: int, end: int
) -> str:
    _, _, kind, feature, _ = key
    window = f"window [{start}, {end})"
    if feature == DATASET_FEATURE:
        return (
            f"dataset drift on {_subject(key)}: {value:.0%} of features drifted "
            f"(threshold {threshold:.0%}), {window}"
        )
    what = "prediction drift" if kind == "prediction_drift" else f"data drift on {feature!r}"
    return f"{what} of {_subject(key)}: {metric} {value:.4g} (threshold {threshold:.4g}), {window}"


def _detection_summary(
    key: AlertKey, detector: str | None, value: float, threshold: float | None
) -> str:
    _, _, kind, feature, _ = key
    on = f" on {feature!r}" if feature is not None else ""
    by = f" by {detector}" if detector else ""
    limit = f" (threshold {threshold:.4g})" if threshold is not None else ""
    return f"{kind.replace('_', ' ')}{on} of {_subject(key)}{by}: value {value:.4g}{limit}"
