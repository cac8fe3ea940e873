"""Retrain policy: alerts, performance and time in; retrain requests out.

``RetrainPolicy`` owns the decision to ask the training worker for a new model
version: on a severe alert, on a performance metric past its floor (or ceiling,
for error metrics), or on a schedule. It keeps at most one request in flight
per model, cleared by the registry's answer (a ``model_event``) or given up as
lost after a timeout.

Pure and deterministic: time is the records' event time, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from schemas.topics import Topic
from streams.alerts import SEVERITIES, SEVERITY_RANK
from streams.processor import Emit, check_fields, dump_state, invalid, load_state, stable_id

_SNAPSHOT_FORMAT = "driftline.retrain_policy"
_SNAPSHOT_VERSION = 1

_ALERT_STATES = ("open", "acknowledged", "resolved")
_CLEARING_EVENTS = ("registered", "retrain_failed")


@dataclass
class _ModelState:
    clock: int  # max event time seen for the model
    schedule_base: int  # schedule counts from here: first record, last request, last answer
    version: str | None = None  # version a new request would replace
    in_flight: dict[str, Any] | None = None  # the pending retrain_request
    lost_request_id: str | None = None  # timed out; named by the next request
    suppressed: int = 0
    triggered_alerts: list[str] = field(default_factory=list)  # unresolved alerts already used
    perf_seen: dict[str, dict[str, int]] = field(default_factory=dict)  # version → metric → end


def _new_stats() -> dict[str, int]:
    return {
        "records": 0,
        "requests": 0,
        "requests_alert": 0,
        "requests_performance": 0,
        "requests_schedule": 0,
        "suppressed_in_flight": 0,
        "cleared": 0,
        "timed_out": 0,
        "unmatched_model_events": 0,
        "stale": 0,
        "dead_letters": 0,
    }


class RetrainPolicy:
    """Decide when a model needs retraining; at most one request in flight per model.

    Triggers:

    - ``Topic.ALERTS``: the first revision of an alert that is not resolved, has a
      kind in ``trigger_kinds`` and a severity at least ``min_severity`` (an alert
      escalated to critical counts as well as one that opens critical); reason
      ``alert``. Each alert triggers (or is suppressed) once.
    - ``Topic.PERFORMANCE_METRICS``: a window with at least ``min_labels`` labels
      whose metric is below its floor (``performance_floors``) or above its
      ceiling (``performance_ceilings``, for error metrics such as mae, rmse);
      reason ``performance``. A window already seen for that version and metric is
      a replay and triggers nothing.
    - Schedule: when a model's event time (the max over all its records) reaches
      ``schedule_base + schedule_ms``; reason ``schedule``. The base is the first
      record of the model, then the latest of: the last request, the last
      ``registered`` or ``retrain_failed`` event of the model (so a failure is not
      retried before a full period).

    In flight: while a request is pending, triggers emit nothing and are counted
    (``stats()["suppressed_in_flight"]``). A ``model_event`` of type ``registered``
    or ``retrain_failed`` whose ``request_id`` is the pending one clears it. A
    ``registered`` event *without* a request_id clears it too when its version is
    newer than the pending request's (numerically for numeric versions, otherwise
    any other version) and it happened at or after the request: a manual retrain
    answers the need as well. A pending request older than ``request_timeout_ms``
    of the model's event time is considered lost (``stats()["timed_out"]``); the
    next request names it in ``details["replaces_request_id"]``.

    ``requested_at`` is the event time of the triggering record; ``request_id`` is
    ``stable_id(model, version, reason, requested_at)``.

    Parameters
    ----------
    min_severity
        Lowest alert severity that triggers a retrain.
    trigger_kinds
        Alert kinds that trigger a retrain.
    performance_floors
        Metric name → lowest acceptable value (e.g. ``{"accuracy": 0.8}``).
    performance_ceilings
        Metric name → highest acceptable value (e.g. ``{"rmse": 12.0}``).
    min_labels
        Performance windows with fewer labels are too noisy to act on.
    schedule_ms
        Retrain period: one for every model, a mapping model name → period, or None (off).
    request_timeout_ms
        Event time after which a pending request is considered lost.

    Examples
    --------
    >>> policy = RetrainPolicy(performance_floors={"accuracy": 0.8})
    >>> metric = {"model_name": "churn", "model_version": "3", "metric": "accuracy",
    ...           "value": 0.7, "window_start": 0, "window_end": 3_600_000, "n_labels": 500}
    >>> [(t.name, r["reason"], r["details"]["floor"])
    ...  for t, r in policy.process(Topic.PERFORMANCE_METRICS, [metric])]
    [('RETRAIN_REQUESTS', 'performance', '0.8')]
    """

    topics: frozenset[Topic] = frozenset(
        {Topic.ALERTS, Topic.PERFORMANCE_METRICS, Topic.MODEL_EVENTS}
    )
    """Topics this processor consumes; records from other topics are ignored."""

    def __init__(
        self,
        *,
        min_severity: str = "critical",
        trigger_kinds: frozenset[str] = frozenset({"data_drift", "concept_drift", "performance"}),
        performance_floors: Mapping[str, float] | None = None,
        performance_ceilings: Mapping[str, float] | None = None,
        min_labels: int = 1,
        schedule_ms: int | Mapping[str, int] | None = None,
        request_timeout_ms: int = 6 * 3_600_000,
    ) -> None:
        if min_severity not in SEVERITY_RANK:
            raise ValueError(
                f"min_severity must be one of {list(SEVERITIES)}, got {min_severity!r}"
            )
        if request_timeout_ms <= 0:
            raise ValueError(f"request_timeout_ms must be > 0, got {request_timeout_ms}")
        periods = schedule_ms.values() if isinstance(schedule_ms, Mapping) else [schedule_ms]
        if any(p is not None and p <= 0 for p in periods):
            raise ValueError(f"schedule_ms must be > 0, got {schedule_ms}")
        self.min_severity = min_severity
        self.trigger_kinds = frozenset(trigger_kinds)
        self.performance_floors = {k: float(v) for k, v in (performance_floors or {}).items()}
        self.performance_ceilings = {k: float(v) for k, v in (performance_ceilings or {}).items()}
        self.min_labels = int(min_labels)
        self.schedule_ms = schedule_ms
        self.request_timeout_ms = int(request_timeout_ms)
        self._models: dict[str, _ModelState] = {}
        self._stats = _new_stats()

    # -- processor protocol ---------------------------------------------------------------

    def process(self, topic: Topic, records: list[dict[str, Any]]) -> list[Emit]:
        """Consume alerts, performance metrics or model events; return retrain requests."""
        if topic not in self.topics:
            return []
        out: list[Emit] = []
        for record in records:
            self._stats["records"] += 1
            out.extend(self._one(topic, record))
        self._stats["dead_letters"] += sum(1 for t, _ in out if t == Topic.DEAD_LETTERS)
        return out

    def flush(self) -> list[Emit]:
        """Nothing to close at the end of a finite stream."""
        return []

    def snapshot(self) -> bytes:
        """State as JSON bytes (configuration is not included)."""
        state = {
            "models": {model: asdict(s) for model, s in self._models.items()},
            "stats": self._stats,
        }
        return dump_state(_SNAPSHOT_FORMAT, _SNAPSHOT_VERSION, state)

    def restore(self, data: bytes) -> None:
        """Replace the state with one taken by ``snapshot``.

        Raises
        ------
        ValueError
            If ``data`` is not a ``RetrainPolicy`` snapshot of a known version.
        """
        state = load_state(data, _SNAPSHOT_FORMAT, _SNAPSHOT_VERSION, "a RetrainPolicy")
        self._models = {model: _ModelState(**s) for model, s in state["models"].items()}
        self._stats = _new_stats() | {str(k): int(v) for k, v in state["stats"].items()}

    # -- queries --------------------------------------------------------------------------

    def in_flight(self) -> dict[str, dict[str, Any]]:
        """Pending retrain request per model name."""
        return {m: dict(s.in_flight) for m, s in self._models.items() if s.in_flight is not None}

    def stats(self) -> dict[str, int]:
        """Counters since the processor's state began (they survive snapshot/restore)."""
        return dict(self._stats)

    # -- records --------------------------------------------------------------------------

    def _one(self, topic: Topic, rec: dict[str, Any]) -> list[Emit]:
        if topic == Topic.ALERTS:
            reason, time_field = _check_alert(rec), "updated_at"
        elif topic == Topic.PERFORMANCE_METRICS:
            reason, time_field = _check_performance(rec), "window_end"
        else:
            reason, time_field = _check_model_event(rec), "timestamp"
        if reason is not None:
            return [invalid(topic, rec, reason)]

        model, at = rec["model_name"], int(rec[time_field])
        st = self._models.get(model)
        if st is None:
            st = self._models[model] = _ModelState(clock=at, schedule_base=at)
        st.clock = max(st.clock, at)
        out: list[Emit] = []
        if topic == Topic.MODEL_EVENTS:
            # An answer that arrives late still answers: clear before timing out.
            self._model_event(st, rec, at)
            self._expire(st)
        else:
            self._expire(st)
            st.version = rec["model_version"]
            if topic == Topic.ALERTS:
                out.extend(self._alert(st, rec, at))
            else:
                out.extend(self._performance(st, rec, at))
        out.extend(self._schedule(model, st))
        return out

    def _alert(self, st: _ModelState, rec: dict[str, Any], at: int) -> list[Emit]:
        alert_id = rec["alert_id"]
        if rec["state"] == "resolved":
            if alert_id in st.triggered_alerts:
                st.triggered_alerts.remove(alert_id)
            return []
        if (
            rec["kind"] not in self.trigger_kinds
            or SEVERITY_RANK[rec["severity"]] < SEVERITY_RANK[self.min_severity]
            or alert_id in st.triggered_alerts
        ):
            return []
        st.triggered_alerts.append(alert_id)
        details = {"kind": rec["kind"], "severity": rec["severity"]}
        for name in ("feature", "value", "threshold", "revision"):
            if rec.get(name) is not None:
                details[name] = str(rec[name])
        return self._request(
            st, rec["model_name"], rec["model_version"], "alert", at, details, alert_id
        )

    def _performance(self, st: _ModelState, rec: dict[str, Any], at: int) -> list[Emit]:
        version, metric, value = rec["model_version"], rec["metric"], float(rec["value"])
        seen = st.perf_seen.setdefault(version, {})
        if metric in seen and at <= seen[metric]:
            self._stats["stale"] += 1
            return []
        seen[metric] = at
        if rec["n_labels"] < self.min_labels:
            return []
        floor, ceiling = self.performance_floors.get(metric), self.performance_ceilings.get(metric)
        if floor is not None and value < floor:
            limit = {"floor": str(floor)}
        elif ceiling is not None and value > ceiling:
            limit = {"ceiling": str(ceiling)}
        else:
            return []
        details = {"metric": metric, "value": str(value), **limit, "n_labels": str(rec["n_labels"])}
        if rec.get("window_start") is not None:
            details["window_start"] = str(rec["window_start"])
        details["window_end"] = str(at)
        return self._request(st, rec["model_name"], version, "performance", at, details)

    def _model_event(self, st: _ModelState, rec: dict[str, Any], at: int) -> None:
        event_type, version = rec["event_type"], rec["model_version"]
        if event_type == "promoted" or (event_type == "registered" and st.version is None):
            st.version = version
        if event_type not in _CLEARING_EVENTS:
            return
        st.schedule_base = max(st.schedule_base, at)
        pending, request_id = st.in_flight, rec.get("request_id")
        if pending is not None and (
            request_id == pending["request_id"]
            or (
                request_id is None
                and event_type == "registered"
                and at >= pending["requested_at"]
                and _newer(version, pending["model_version"])
            )
        ):
            st.in_flight = None
            self._stats["cleared"] += 1
        elif request_id is not None:
            self._stats["unmatched_model_events"] += 1

    def _expire(self, st: _ModelState) -> None:
        pending = st.in_flight
        if pending is not None and st.clock - pending["requested_at"] >= self.request_timeout_ms:
            st.in_flight = None
            st.lost_request_id = pending["request_id"]
            self._stats["timed_out"] += 1

    def _schedule(self, model: str, st: _ModelState) -> list[Emit]:
        period = (
            self.schedule_ms.get(model)
            if isinstance(self.schedule_ms, Mapping)
            else self.schedule_ms
        )
        if period is None or st.in_flight is not None or st.version is None:
            return []
        due = st.schedule_base + period
        if st.clock < due:
            return []
        details = {"schedule_ms": str(period), "due_at": str(due)}
        return self._request(st, model, st.version, "schedule", st.clock, details)

    def _request(
        self,
        st: _ModelState,
        model: str,
        version: str,
        reason: str,
        at: int,
        details: dict[str, str],
        alert_id: str | None = None,
    ) -> list[Emit]:
        if st.in_flight is not None:
            st.suppressed += 1
            self._stats["suppressed_in_flight"] += 1
            return []
        if st.lost_request_id is not None:
            details["replaces_request_id"] = st.lost_request_id
            st.lost_request_id = None
        request = {
            "request_id": stable_id(model, version, reason, at),
            "model_name": model,
            "model_version": version,
            "reason": reason,
            "alert_id": alert_id,
            "requested_at": at,
            "details": details,
        }
        st.in_flight = dict(request)
        st.schedule_base = max(st.schedule_base, at)
        self._stats["requests"] += 1
        self._stats[f"requests_{reason}"] += 1
        return [(Topic.RETRAIN_REQUESTS, request)]


def _newer(version: str, than: str) -> bool:
    if version.isdigit() and than.isdigit():
        return int(version) > int(than)
    return version != than


def _check_alert(rec: dict[str, Any]) -> str | None:
    reason = check_fields(
        rec,
        {
            "alert_id": "str",
            "model_name": "str",
            "model_version": "str",
            "kind": "str",
            "state": "str",
            "severity": "str",
            "updated_at": "int",
        },
        {"feature": "str", "value": "number", "threshold": "number", "revision": "int"},
    )
    if reason is None and rec["state"] not in _ALERT_STATES:
        reason = f"field 'state' must be one of {list(_ALERT_STATES)}, got {rec['state']!r}"
    if reason is None and rec["severity"] not in SEVERITY_RANK:
        reason = f"field 'severity' must be one of {list(SEVERITIES)}, got {rec['severity']!r}"
    return reason


def _check_performance(rec: dict[str, Any]) -> str | None:
    return check_fields(
        rec,
        {
            "model_name": "str",
            "model_version": "str",
            "metric": "str",
            "value": "number",
            "window_end": "int",
            "n_labels": "int",
        },
        {"window_start": "int"},
    )


def _check_model_event(rec: dict[str, Any]) -> str | None:
    return check_fields(
        rec,
        {"model_name": "str", "model_version": "str", "event_type": "str", "timestamp": "int"},
        {"request_id": "str"},
    )
