"""RetrainPolicy: alert and performance triggers, schedule, one request in flight, timeout."""

from __future__ import annotations

import doctest
import json
from typing import Any

import pytest

import streams.retrain_policy
from schemas.codec import AvroCodec
from schemas.topics import Topic
from streams.alerts import AlertLifecycle
from streams.processor import Emit, stable_id
from streams.retrain_policy import RetrainPolicy

H = 3_600_000
DAY = 24 * H


def alert(
    t: int,
    *,
    alert_id: str = "a1",
    severity: str = "critical",
    kind: str = "data_drift",
    state: str = "open",
    revision: int = 1,
    model: str = "churn",
    version: str = "3",
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "model_name": model,
        "model_version": version,
        "kind": kind,
        "feature": "age",
        "state": state,
        "severity": severity,
        "opened_at": t,
        "updated_at": t,
        "revision": revision,
        "value": 0.5,
        "threshold": 0.2,
        "occurrences": 1,
        "message": "data drift",
        "acknowledged_by": None,
        "resolved_by": None,
        "note": None,
    }


def perf(
    t: int,
    value: float,
    *,
    name: str = "accuracy",
    n_labels: int = 500,
    model: str = "churn",
    version: str = "3",
) -> dict[str, Any]:
    return {
        "metric_id": stable_id(model, version, t - H, name),
        "model_name": model,
        "model_version": version,
        "window_start": t - H,
        "window_end": t,
        "metric": name,
        "value": value,
        "n_labels": n_labels,
    }


def model_event(
    t: int,
    event_type: str = "registered",
    *,
    request_id: str | None = None,
    version: str = "4",
    model: str = "churn",
) -> dict[str, Any]:
    return {
        "event_id": stable_id(model, version, event_type, t),
        "model_name": model,
        "model_version": version,
        "event_type": event_type,
        "timestamp": t,
        "request_id": request_id,
        "run_id": None,
        "reference_profile": None,
        "message": None,
    }


def one_request(emits: list[Emit]) -> dict[str, Any]:
    assert [topic for topic, _ in emits] == [Topic.RETRAIN_REQUESTS], emits
    return emits[0][1]


def policy(**kwargs: Any) -> RetrainPolicy:
    kwargs.setdefault("performance_floors", {"accuracy": 0.8})
    kwargs.setdefault("performance_ceilings", {"rmse": 12.0})
    return RetrainPolicy(**kwargs)


# -- triggers ---------------------------------------------------------------------------


def test_critical_alert_triggers_a_request() -> None:
    p = policy()
    request = one_request(p.process(Topic.ALERTS, [alert(5 * H)]))
    assert request == {
        "request_id": stable_id("churn", "3", "alert", 5 * H),
        "model_name": "churn",
        "model_version": "3",
        "reason": "alert",
        "alert_id": "a1",
        "requested_at": 5 * H,
        "details": {
            "kind": "data_drift",
            "severity": "critical",
            "feature": "age",
            "value": "0.5",
            "threshold": "0.2",
            "revision": "1",
        },
    }
    assert p.in_flight() == {"churn": request}
    assert p.stats()["requests_alert"] == 1


@pytest.mark.parametrize(
    "record",
    [
        alert(H, severity="warning"),
        alert(H, kind="prediction_drift"),
        alert(H, state="resolved"),
    ],
)
def test_alerts_below_the_bar_trigger_nothing(record: dict[str, Any]) -> None:
    p = policy()
    assert p.process(Topic.ALERTS, [record]) == []
    assert p.in_flight() == {}


def test_min_severity_and_kinds_are_configurable() -> None:
    p = policy(min_severity="warning", trigger_kinds=frozenset({"prediction_drift"}))
    assert p.process(Topic.ALERTS, [alert(H, kind="data_drift")]) == []
    request = one_request(
        p.process(
            Topic.ALERTS, [alert(H, alert_id="a2", kind="prediction_drift", severity="warning")]
        )
    )
    assert request["alert_id"] == "a2"


def test_alert_escalated_to_critical_triggers_once() -> None:
    p = policy(request_timeout_ms=H)
    assert p.process(Topic.ALERTS, [alert(H, severity="warning")]) == []
    request = one_request(p.process(Topic.ALERTS, [alert(2 * H, severity="critical", revision=2)]))
    assert request["requested_at"] == 2 * H
    # later revisions of the same alert (even after the request timed out) do not trigger again
    assert p.process(Topic.ALERTS, [alert(5 * H, state="acknowledged", revision=3)]) == []
    assert p.stats()["requests"] == 1 and p.stats()["suppressed_in_flight"] == 0


def test_performance_below_floor_triggers() -> None:
    p = policy()
    assert p.process(Topic.PERFORMANCE_METRICS, [perf(H, 0.85), perf(2 * H, 0.8)]) == []
    request = one_request(p.process(Topic.PERFORMANCE_METRICS, [perf(3 * H, 0.72)]))
    assert (request["reason"], request["alert_id"], request["requested_at"]) == (
        "performance",
        None,
        3 * H,
    )
    assert request["request_id"] == stable_id("churn", "3", "performance", 3 * H)
    assert request["details"] == {
        "metric": "accuracy",
        "value": "0.72",
        "floor": "0.8",
        "n_labels": "500",
        "window_start": str(2 * H),
        "window_end": str(3 * H),
    }


def test_error_metric_above_ceiling_triggers() -> None:
    p = policy()
    assert p.process(Topic.PERFORMANCE_METRICS, [perf(H, 11.0, name="rmse")]) == []
    request = one_request(p.process(Topic.PERFORMANCE_METRICS, [perf(2 * H, 13.5, name="rmse")]))
    assert request["details"]["ceiling"] == "12.0" and "floor" not in request["details"]


def test_unwatched_metrics_and_thin_windows_trigger_nothing() -> None:
    p = policy(min_labels=100)
    records = [perf(H, 0.1, name="f1"), perf(2 * H, 0.1, n_labels=99)]
    assert p.process(Topic.PERFORMANCE_METRICS, records) == []


def test_replayed_performance_window_does_not_trigger_again() -> None:
    p = policy()
    request = one_request(p.process(Topic.PERFORMANCE_METRICS, [perf(H, 0.5)]))
    p.process(Topic.MODEL_EVENTS, [model_event(2 * H, request_id=request["request_id"])])
    assert p.process(Topic.PERFORMANCE_METRICS, [perf(H, 0.5)]) == []
    assert p.stats()["stale"] == 1


# -- schedule ---------------------------------------------------------------------------


def test_schedule_requests_after_the_period() -> None:
    p = policy(schedule_ms=DAY)
    assert p.process(Topic.PERFORMANCE_METRICS, [perf(H, 0.9), perf(DAY, 0.9)]) == []
    request = one_request(p.process(Topic.PERFORMANCE_METRICS, [perf(DAY + H, 0.9)]))
    assert (request["reason"], request["model_version"], request["requested_at"]) == (
        "schedule",
        "3",
        DAY + H,
    )
    assert request["details"] == {"schedule_ms": str(DAY), "due_at": str(DAY + H)}

    # answered by a new version: the next period counts from its registration
    p.process(Topic.MODEL_EVENTS, [model_event(DAY + 3 * H, request_id=request["request_id"])])
    assert p.process(Topic.PERFORMANCE_METRICS, [perf(2 * DAY + 2 * H, 0.9)]) == []
    again = one_request(p.process(Topic.PERFORMANCE_METRICS, [perf(2 * DAY + 3 * H, 0.9)]))
    assert again["reason"] == "schedule"


def test_schedule_per_model() -> None:
    p = policy(schedule_ms={"fraud": H})
    assert p.process(Topic.PERFORMANCE_METRICS, [perf(H, 0.9), perf(9 * H, 0.9)]) == []
    fraud = [perf(H, 0.9, model="fraud"), perf(2 * H, 0.9, model="fraud")]
    assert one_request(p.process(Topic.PERFORMANCE_METRICS, fraud))["model_name"] == "fraud"


def test_failed_retrain_waits_a_full_period() -> None:
    p = policy(schedule_ms=10 * H)
    p.process(Topic.PERFORMANCE_METRICS, [perf(H, 0.9)])
    request = one_request(p.process(Topic.PERFORMANCE_METRICS, [perf(11 * H, 0.9)]))
    failed = model_event(12 * H, "retrain_failed", request_id=request["request_id"], version="3")
    assert p.process(Topic.MODEL_EVENTS, [failed]) == []
    assert p.in_flight() == {}
    assert p.process(Topic.PERFORMANCE_METRICS, [perf(21 * H, 0.9)]) == []
    assert (
        one_request(p.process(Topic.PERFORMANCE_METRICS, [perf(22 * H, 0.9)]))["reason"]
        == "schedule"
    )


# -- one request in flight --------------------------------------------------------------


def test_triggers_in_flight_are_counted_and_the_answer_clears() -> None:
    p = policy()
    first = one_request(p.process(Topic.ALERTS, [alert(H)]))
    assert p.process(Topic.ALERTS, [alert(2 * H, alert_id="a2")]) == []
    assert p.process(Topic.PERFORMANCE_METRICS, [perf(2 * H, 0.1)]) == []
    assert p.stats()["suppressed_in_flight"] == 2

    # an answer to some other request does not clear
    assert p.process(Topic.MODEL_EVENTS, [model_event(3 * H, request_id="other")]) == []
    assert p.in_flight() == {"churn": first}
    assert p.stats()["unmatched_model_events"] == 1

    assert p.process(Topic.MODEL_EVENTS, [model_event(4 * H, request_id=first["request_id"])]) == []
    assert p.in_flight() == {} and p.stats()["cleared"] == 1
    second = one_request(p.process(Topic.ALERTS, [alert(5 * H, alert_id="a3")]))
    assert second["alert_id"] == "a3"


def test_in_flight_is_per_model() -> None:
    p = policy()
    one_request(p.process(Topic.ALERTS, [alert(H)]))
    other = one_request(p.process(Topic.ALERTS, [alert(H, alert_id="f1", model="fraud")]))
    assert other["model_name"] == "fraud"
    assert sorted(p.in_flight()) == ["churn", "fraud"]


@pytest.mark.parametrize(
    ("event", "clears"),
    [
        (model_event(2 * H, version="4"), True),  # newer version, no request_id
        (model_event(2 * H, version="10"), True),  # numeric, not lexicographic
        (model_event(2 * H, version="2"), False),  # older version
        (model_event(2 * H, version="3"), False),  # the version being replaced
        (model_event(30 * 60_000, version="4"), False),  # registered before the request
        (model_event(2 * H, "promoted", version="4"), False),
        (model_event(2 * H, "retrain_failed", version="3"), False),  # which request failed?
    ],
)
def test_clearing_without_request_id(event: dict[str, Any], clears: bool) -> None:
    p = policy()
    one_request(p.process(Topic.ALERTS, [alert(H)]))
    assert p.process(Topic.MODEL_EVENTS, [event]) == []
    assert (p.in_flight() == {}) is clears


def test_lost_request_times_out() -> None:
    p = policy(request_timeout_ms=6 * H)
    first = one_request(p.process(Topic.ALERTS, [alert(H)]))
    assert p.process(Topic.PERFORMANCE_METRICS, [perf(7 * H - 1, 0.1)]) == []
    assert p.stats()["suppressed_in_flight"] == 1 and p.stats()["timed_out"] == 0

    second = one_request(p.process(Topic.PERFORMANCE_METRICS, [perf(7 * H, 0.1)]))
    assert second["reason"] == "performance"
    assert second["details"]["replaces_request_id"] == first["request_id"]
    assert p.stats()["timed_out"] == 1

    # the lost request's late answer does not clear the new one
    late = model_event(8 * H, request_id=first["request_id"], version="4")
    assert p.process(Topic.MODEL_EVENTS, [late]) == []
    assert p.in_flight() == {"churn": second}


def test_late_answer_still_counts_before_timing_out() -> None:
    p = policy(request_timeout_ms=6 * H)
    first = one_request(p.process(Topic.ALERTS, [alert(H)]))
    answer = model_event(9 * H, request_id=first["request_id"])
    assert p.process(Topic.MODEL_EVENTS, [answer]) == []
    assert (p.stats()["cleared"], p.stats()["timed_out"]) == (1, 0)


# -- invalid records --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "record", "reason"),
    [
        (Topic.ALERTS, alert(H, severity="urgent"), "field 'severity' must be one of"),
        (Topic.ALERTS, alert(H, state="snoozed"), "field 'state' must be one of"),
        (Topic.ALERTS, {**alert(H), "updated_at": None}, "field 'updated_at' is missing"),
        (Topic.PERFORMANCE_METRICS, perf(H, float("inf")), "field 'value' must be a finite number"),
        (Topic.PERFORMANCE_METRICS, {**perf(H, 0.5), "n_labels": 1.5}, "field 'n_labels' must be an integer"),
        (Topic.MODEL_EVENTS, {**model_event(H), "request_id": 7}, "field 'request_id' must be a string or null"),
        (Topic.MODEL_EVENTS, 42, "record must be a mapping, got int"),
    ],
)  # fmt: skip
def test_invalid_records_become_dead_letters(topic: Topic, record: Any, reason: str) -> None:
    p = policy()
    out = p.process(topic, [record])
    assert [t for t, _ in out] == [Topic.DEAD_LETTERS]
    dead = out[0][1]
    assert dead["reason"].startswith(reason), dead["reason"]
    assert dead["source_topic"] == topic.value
    assert p.stats()["dead_letters"] == 1
    assert p.in_flight() == {}


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="min_severity"):
        RetrainPolicy(min_severity="severe")
    with pytest.raises(ValueError, match="schedule_ms"):
        RetrainPolicy(schedule_ms={"churn": 0})


# -- the loop: alerts feed the policy ---------------------------------------------------


def test_alert_lifecycle_output_drives_the_policy() -> None:
    lifecycle, p = AlertLifecycle(), policy()
    row = {
        "model_name": "churn",
        "model_version": "3",
        "window_start": 0,
        "window_end": H,
        "feature": "age",
        "metric": "psi",
        "value": 0.2,
        "threshold": 0.2,
        "drift": True,
        "primary": True,
    }
    requests: list[Emit] = []
    for value, window in [(0.2, 0), (0.5, 1), (0.6, 2)]:  # warning, then escalated to critical
        metric = {**row, "value": value, "window_start": window * H, "window_end": (window + 1) * H}
        for topic, record in lifecycle.process(Topic.DRIFT_METRICS, [metric]):
            requests.extend(p.process(topic, [record]))
    request = one_request(requests)
    assert request["alert_id"] == stable_id("churn", "3", "data_drift", "age", H)
    assert request["requested_at"] == 2 * H


# -- snapshot / restore -----------------------------------------------------------------


def scripted_stream() -> list[tuple[Topic, list[dict[str, Any]]]]:
    first = stable_id("churn", "3", "alert", H)
    return [
        (Topic.ALERTS, [alert(H), alert(H, alert_id="f1", model="fraud", severity="warning")]),
        (Topic.PERFORMANCE_METRICS, [perf(2 * H, 0.5), perf(2 * H, 0.5, model="fraud")]),
        (Topic.ALERTS, [alert(3 * H, alert_id="a2"), alert(3 * H, state="resolved", revision=2)]),
        (Topic.MODEL_EVENTS, [model_event(4 * H, request_id=first), model_event(4 * H, "promoted")]),
        (Topic.PERFORMANCE_METRICS, [perf(5 * H, 0.9, version="4"), perf(6 * H, 13.0, name="rmse", version="4")]),
        (Topic.PERFORMANCE_METRICS, [perf(13 * H, 0.1, version="4"), perf(14 * H, 0.9, model="fraud")]),
        (Topic.MODEL_EVENTS, [model_event(15 * H, version="5"), {"model_name": "churn"}]),
        (Topic.PERFORMANCE_METRICS, [perf(40 * H, 0.9, version="5")]),
        (Topic.ALERTS, [alert(41 * H, alert_id="a9", version="5")]),
    ]  # fmt: skip


def run(p: RetrainPolicy, batches: list[tuple[Topic, list[dict[str, Any]]]]) -> list[Emit]:
    out: list[Emit] = []
    for topic, records in batches:
        out.extend(p.process(topic, records))
    return out


def make() -> RetrainPolicy:
    return policy(schedule_ms=DAY)


def test_scripted_stream_exercises_the_policy() -> None:
    p = make()
    out = run(p, scripted_stream())
    reasons = [r["reason"] for t, r in out if t == Topic.RETRAIN_REQUESTS]
    assert reasons == ["alert", "performance", "performance", "performance", "schedule"]
    stats = p.stats()
    assert stats["timed_out"] == 2 and stats["cleared"] == 2 and stats["dead_letters"] == 1
    assert stats["suppressed_in_flight"] == 3


@pytest.mark.parametrize("split", range(len(scripted_stream()) + 1))
def test_restored_policy_continues_exactly(split: int) -> None:
    batches = scripted_stream()
    uninterrupted = make()
    expected = run(uninterrupted, batches)

    first = make()
    head = run(first, batches[:split])
    second = make()
    second.restore(first.snapshot())
    tail = run(second, batches[split:])

    assert head + tail == expected
    assert second.stats() == uninterrupted.stats()
    assert second.in_flight() == uninterrupted.in_flight()
    assert second.snapshot() == uninterrupted.snapshot()
    json.loads(second.snapshot())  # plain JSON, readable by a person


def test_every_emitted_record_fits_its_avro_schema() -> None:
    codec = AvroCodec()
    out = run(make(), scripted_stream())
    assert {topic for topic, _ in out} == {Topic.RETRAIN_REQUESTS, Topic.DEAD_LETTERS}
    for topic, record in out:
        assert codec.decode_as(topic.schema_name, codec.encode(topic.schema_name, record)) == record


def test_restore_rejects_another_processors_snapshot() -> None:
    with pytest.raises(ValueError, match="not a RetrainPolicy snapshot"):
        RetrainPolicy().restore(AlertLifecycle().snapshot())


def test_docstring_examples_run() -> None:
    result = doctest.testmod(streams.retrain_policy)
    assert result.attempted > 0 and result.failed == 0
