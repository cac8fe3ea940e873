"""AlertLifecycle: open, de-duplicate, escalate, acknowledge, resolve, cooldown, auto-resolve."""

from __future__ import annotations

import doctest
import json
from typing import Any

import pytest

import streams.alerts
import streams.processor
from schemas.codec import DEAD_LETTER_RAW_LIMIT, AvroCodec
from schemas.topics import DATASET_FEATURE, PREDICTION_FEATURE, Topic
from streams.alerts import AlertLifecycle
from streams.processor import Emit, invalid, stable_id

H = 3_600_000  # one window, one hour of event time
DAY = 24 * H


def metric(
    window: int,
    *,
    feature: str = "age",
    drift: bool = True,
    value: float = 0.3,
    threshold: float = 0.2,
    name: str = "psi",
    primary: bool = True,
    model: str = "churn",
    version: str = "1",
    segment: str | None = None,
) -> dict[str, Any]:
    """A drift_metric row for window number ``window`` (window_end = (window + 1) h)."""
    start = window * H
    return {
        "metric_id": stable_id(model, version, segment or "", start, feature, name),
        "model_name": model,
        "model_version": version,
        "window_start": start,
        "window_end": start + H,
        "feature": feature,
        "metric": name,
        "value": value,
        "pvalue": None,
        "threshold": threshold,
        "drift": drift,
        "primary": primary,
        "n_reference": 1000,
        "n_current": 500,
        "missing_rate": 0.0,
        "out_of_range_rate": 0.0,
        "late_events": 0,
        "segment": segment,
    }


def detection(
    t: int,
    *,
    kind: str = "concept_drift",
    value: float = 0.4,
    severity: str | None = "critical",
    model: str = "churn",
    version: str = "1",
    detector: str = "adwin",
    detection_id: str | None = None,
) -> dict[str, Any]:
    return {
        "detection_id": detection_id or stable_id(model, version, kind, detector, t),
        "model_name": model,
        "model_version": version,
        "kind": kind,
        "detector": detector,
        "feature": None,
        "detected_at": t,
        "value": value,
        "threshold": None,
        "severity": severity,
        "details": {},
    }


def ack(
    alert_id: str, action: str, t: int, actor: str = "ana", note: str | None = None
) -> dict[str, Any]:
    return {"alert_id": alert_id, "action": action, "actor": actor, "timestamp": t, "note": note}


def alerts_of(emits: list[Emit]) -> list[dict[str, Any]]:
    assert all(topic == Topic.ALERTS for topic, _ in emits), emits
    return [record for _, record in emits]


def one_alert(emits: list[Emit]) -> dict[str, Any]:
    records = alerts_of(emits)
    assert len(records) == 1, records
    return records[0]


def one_dead_letter(emits: list[Emit]) -> dict[str, Any]:
    assert [topic for topic, _ in emits] == [Topic.DEAD_LETTERS], emits
    return emits[0][1]


def open_age_alert(lc: AlertLifecycle, window: int = 0, value: float = 0.3) -> dict[str, Any]:
    return one_alert(lc.process(Topic.DRIFT_METRICS, [metric(window, value=value)]))


# -- opening ----------------------------------------------------------------------------


def test_first_drifting_window_opens_an_alert() -> None:
    lc = AlertLifecycle()
    alert = open_age_alert(lc)
    message = alert.pop("message")
    assert alert == {
        "alert_id": stable_id("churn", "1", "data_drift", "age", H),
        "model_name": "churn",
        "model_version": "1",
        "kind": "data_drift",
        "feature": "age",
        "state": "open",
        "severity": "warning",  # 0.3 / 0.2 = 1.5
        "opened_at": H,
        "updated_at": H,
        "revision": 1,
        "value": 0.3,
        "threshold": 0.2,
        "occurrences": 1,
        "acknowledged_by": None,
        "resolved_by": None,
        "note": None,
    }
    assert "'age'" in message and "psi 0.3" in message and "churn v1" in message
    assert lc.open_alerts() == [{**alert, "message": message}]
    assert lc.stats()["opened"] == 1


def test_secondary_statistics_and_clean_windows_open_nothing() -> None:
    lc = AlertLifecycle()
    out = lc.process(
        Topic.DRIFT_METRICS,
        [metric(0, primary=False, name="ks"), metric(0, drift=False), metric(1, drift=False)],
    )
    assert out == []
    assert lc.open_alerts() == []


def test_prediction_and_dataset_rows_have_their_kinds() -> None:
    lc = AlertLifecycle()
    rows = [
        metric(0, feature=PREDICTION_FEATURE, value=0.5),
        # the dataset summary decides even when not flagged primary
        metric(0, feature=DATASET_FEATURE, name="share_drifted", value=0.6, threshold=0.5)
        | {"primary": False},
    ]
    prediction, dataset = alerts_of(lc.process(Topic.DRIFT_METRICS, rows))
    assert (prediction["kind"], prediction["feature"], prediction["severity"]) == (
        "prediction_drift",
        PREDICTION_FEATURE,
        "critical",  # 0.5 / 0.2 = 2.5
    )
    assert (dataset["kind"], dataset["feature"], dataset["severity"]) == (
        "data_drift",
        DATASET_FEATURE,
        "warning",  # 0.6 / 0.5 = 1.2
    )
    assert "60% of features drifted" in dataset["message"]


def test_severity_from_ratio_thresholds_are_configurable() -> None:
    lc = AlertLifecycle(critical_ratio=1.2, warning_ratio=1.1)
    rows = [
        metric(0, feature="a", value=0.25),  # 1.25
        metric(0, feature="b", value=0.23),  # 1.15
        metric(0, feature="c", value=0.1),  # 0.5: a p-value verdict with a small statistic
    ]
    severities = [a["severity"] for a in alerts_of(lc.process(Topic.DRIFT_METRICS, rows))]
    assert severities == ["critical", "warning", "info"]


def test_segments_get_their_own_alerts() -> None:
    lc = AlertLifecycle()
    rows = [metric(0, segment="eu"), metric(0, segment="us"), metric(0)]
    eu, us, whole = alerts_of(lc.process(Topic.DRIFT_METRICS, rows))
    assert len({eu["alert_id"], us["alert_id"], whole["alert_id"]}) == 3
    assert "segment eu" in eu["message"] and "segment us" in us["message"]
    assert "segment" not in whole["message"]


# -- de-duplication and escalation ------------------------------------------------------


def test_repeated_detections_fold_into_the_open_alert() -> None:
    lc = AlertLifecycle()
    opened = open_age_alert(lc)
    assert lc.process(Topic.DRIFT_METRICS, [metric(1, value=0.31), metric(2, value=0.35)]) == []
    assert lc.stats()["deduplicated"] == 2
    assert lc.open_alerts() == [opened]  # unpublished folds are not shown

    # the folds ride along on the next revision
    acked = one_alert(lc.process(Topic.ALERT_ACKS, [ack(opened["alert_id"], "acknowledge", 4 * H)]))
    assert acked["alert_id"] == opened["alert_id"]
    assert (acked["revision"], acked["occurrences"], acked["value"]) == (2, 3, 0.35)


def test_higher_severity_emits_a_revision_and_never_goes_down() -> None:
    lc = AlertLifecycle()
    opened = open_age_alert(lc)
    escalated = one_alert(lc.process(Topic.DRIFT_METRICS, [metric(1, value=0.5)]))
    assert escalated["alert_id"] == opened["alert_id"]
    assert (escalated["severity"], escalated["revision"], escalated["occurrences"]) == (
        "critical",
        2,
        2,
    )
    assert escalated["updated_at"] == 2 * H and escalated["opened_at"] == H
    assert "severity raised to critical" in escalated["message"]

    assert lc.process(Topic.DRIFT_METRICS, [metric(2, value=0.25)]) == []
    resolved = one_alert(lc.process(Topic.ALERT_ACKS, [ack(opened["alert_id"], "resolve", 4 * H)]))
    assert (resolved["severity"], resolved["value"], resolved["occurrences"]) == (
        "critical",
        0.25,
        3,
    )


def test_replayed_window_is_not_counted_twice() -> None:
    lc = AlertLifecycle()
    open_age_alert(lc)
    assert lc.process(Topic.DRIFT_METRICS, [metric(0), metric(0, drift=False)]) == []
    assert lc.stats()["stale"] == 2
    assert lc.stats()["deduplicated"] == 0


# -- acknowledgements -------------------------------------------------------------------


def test_acknowledge_then_resolve() -> None:
    lc = AlertLifecycle()
    alert_id = open_age_alert(lc)["alert_id"]

    acked = one_alert(
        lc.process(Topic.ALERT_ACKS, [ack(alert_id, "acknowledge", 2 * H, "ana", "looking")])
    )
    assert (acked["state"], acked["acknowledged_by"], acked["note"], acked["revision"]) == (
        "acknowledged",
        "ana",
        "looking",
        2,
    )
    assert acked["updated_at"] == 2 * H and acked["resolved_by"] is None
    assert lc.open_alerts() == [acked]

    resolved = one_alert(lc.process(Topic.ALERT_ACKS, [ack(alert_id, "resolve", 3 * H, "bo")]))
    assert (resolved["state"], resolved["resolved_by"], resolved["acknowledged_by"]) == (
        "resolved",
        "bo",
        "ana",
    )
    assert resolved["note"] == "looking"  # the last note is kept when a later ack has none
    assert (resolved["revision"], resolved["updated_at"]) == (3, 3 * H)
    assert lc.open_alerts() == []


def test_resolve_straight_from_open() -> None:
    lc = AlertLifecycle()
    alert_id = open_age_alert(lc)["alert_id"]
    resolved = one_alert(
        lc.process(Topic.ALERT_ACKS, [ack(alert_id, "resolve", 2 * H, "bo", "false alarm")])
    )
    assert (resolved["state"], resolved["resolved_by"], resolved["acknowledged_by"]) == (
        "resolved",
        "bo",
        None,
    )
    assert resolved["note"] == "false alarm"


@pytest.mark.parametrize(
    ("setup", "bad", "reason"),
    [
        ([], ack("no-such-alert", "acknowledge", 2 * H), "unknown alert_id 'no-such-alert'"),
        (
            [("resolve", 2 * H)],
            ack("{id}", "acknowledge", 3 * H),
            "cannot acknowledge alert {id}: already resolved by ana",
        ),
        (
            [("resolve", 2 * H)],
            ack("{id}", "resolve", 3 * H),
            "cannot resolve alert {id}: already resolved by ana",
        ),
        (
            [("acknowledge", 2 * H)],
            ack("{id}", "acknowledge", 3 * H, "bo", "me too"),
            "cannot acknowledge alert {id}: already acknowledged by ana",
        ),
        ([], ack("{id}", "snooze", 2 * H), "field 'action' must be 'acknowledge' or 'resolve'"),
        ([], ack("{id}", "resolve", 2 * H, actor=""), "field 'actor' must not be empty"),
        ([], {"alert_id": "{id}", "action": "resolve", "actor": "ana"}, "field 'timestamp'"),
    ],
)
def test_bad_acks_become_dead_letters(
    setup: list[tuple[str, int]], bad: dict[str, Any], reason: str
) -> None:
    lc = AlertLifecycle()
    alert_id = open_age_alert(lc)["alert_id"]
    for action, t in setup:
        one_alert(lc.process(Topic.ALERT_ACKS, [ack(alert_id, action, t)]))
    before = lc.open_alerts()
    record = {k: v.format(id=alert_id) if isinstance(v, str) else v for k, v in bad.items()}

    dead = one_dead_letter(lc.process(Topic.ALERT_ACKS, [record]))

    assert dead["reason"].startswith(reason.format(id=alert_id)), dead["reason"]
    assert dead["source_topic"] == Topic.ALERT_ACKS.value
    assert dead["error_type"] == "InvalidRecord"
    assert json.loads(dead["raw"]) == record
    assert dead["received_at"] == record.get("timestamp", 0)
    assert lc.open_alerts() == before  # state untouched, note included
    assert lc.stats()["dead_letters"] == 1


def test_ack_of_a_superseded_alert_names_the_new_one() -> None:
    lc = AlertLifecycle(cooldown_ms=0)
    first = open_age_alert(lc)["alert_id"]
    one_alert(lc.process(Topic.ALERT_ACKS, [ack(first, "resolve", 2 * H)]))
    second = open_age_alert(lc, window=2)["alert_id"]
    dead = one_dead_letter(lc.process(Topic.ALERT_ACKS, [ack(first, "acknowledge", 4 * H)]))
    assert first in dead["reason"] and second in dead["reason"]


# -- cooldown ---------------------------------------------------------------------------


def test_cooldown_suppresses_then_a_new_alert_opens() -> None:
    lc = AlertLifecycle(cooldown_ms=3 * H)
    first = open_age_alert(lc)
    one_alert(lc.process(Topic.ALERT_ACKS, [ack(first["alert_id"], "resolve", 2 * H)]))

    # windows ending at 3 h and 4 h fall within 2 h + 3 h
    assert lc.process(Topic.DRIFT_METRICS, [metric(2), metric(3, value=0.9)]) == []
    assert lc.stats()["suppressed_cooldown"] == 2
    assert lc.open_alerts() == []

    reopened = one_alert(lc.process(Topic.DRIFT_METRICS, [metric(4)]))  # ends at 5 h
    assert reopened["alert_id"] == stable_id("churn", "1", "data_drift", "age", 5 * H)
    assert reopened["alert_id"] != first["alert_id"]
    assert (reopened["state"], reopened["revision"], reopened["occurrences"]) == ("open", 1, 1)
    assert reopened["opened_at"] == 5 * H
    assert lc.stats()["suppressed_cooldown"] == 2


def test_cooldown_applies_per_key() -> None:
    lc = AlertLifecycle(cooldown_ms=DAY)
    alert_id = open_age_alert(lc)["alert_id"]
    lc.process(Topic.ALERT_ACKS, [ack(alert_id, "resolve", 2 * H)])
    other = one_alert(lc.process(Topic.DRIFT_METRICS, [metric(2, feature="income")]))
    assert other["feature"] == "income"


# -- auto-resolve -----------------------------------------------------------------------


def test_auto_resolve_after_consecutive_clean_windows() -> None:
    lc = AlertLifecycle(auto_resolve_windows=3)
    alert_id = open_age_alert(lc)["alert_id"]
    # a drifting window in between restarts the count
    for window, drift in [(1, False), (2, False), (3, True), (4, False), (5, False)]:
        assert lc.process(Topic.DRIFT_METRICS, [metric(window, drift=drift)]) == []

    resolved = one_alert(lc.process(Topic.DRIFT_METRICS, [metric(6, drift=False)]))
    assert resolved["alert_id"] == alert_id
    assert (resolved["state"], resolved["resolved_by"], resolved["updated_at"]) == (
        "resolved",
        "auto",
        7 * H,
    )
    assert (resolved["revision"], resolved["occurrences"]) == (2, 2)
    assert "auto-resolved after 3 clean windows" in resolved["message"]
    assert lc.stats()["auto_resolved_windows"] == 1
    # more clean windows do nothing
    assert lc.process(Topic.DRIFT_METRICS, [metric(7, drift=False)]) == []


def test_acknowledged_alert_auto_resolves_too() -> None:
    lc = AlertLifecycle(auto_resolve_windows=1)
    alert_id = open_age_alert(lc)["alert_id"]
    lc.process(Topic.ALERT_ACKS, [ack(alert_id, "acknowledge", H + 1)])
    resolved = one_alert(lc.process(Topic.DRIFT_METRICS, [metric(1, drift=False)]))
    assert (resolved["state"], resolved["acknowledged_by"], resolved["resolved_by"]) == (
        "resolved",
        "ana",
        "auto",
    )


def test_concept_drift_alert_auto_resolves_by_event_time() -> None:
    lc = AlertLifecycle(auto_resolve_ms=DAY)
    opened = one_alert(lc.process(Topic.DRIFT_DETECTIONS, [detection(10 * H)]))
    assert (opened["kind"], opened["feature"], opened["severity"]) == (
        "concept_drift",
        None,
        "critical",
    )
    assert opened["alert_id"] == stable_id("churn", "1", "concept_drift", None, 10 * H)

    # a later detection folds in and moves the deadline
    assert lc.process(Topic.DRIFT_DETECTIONS, [detection(12 * H)]) == []
    # another model's time does not count; this model's metrics do, just short of the deadline
    assert lc.process(Topic.DRIFT_METRICS, [metric(40, model="fraud", drift=False)]) == []
    assert lc.process(Topic.DRIFT_METRICS, [metric(34, feature="x", drift=False)]) == []
    assert [a["alert_id"] for a in lc.open_alerts()] == [opened["alert_id"]]

    resolved = one_alert(lc.process(Topic.DRIFT_METRICS, [metric(35, feature="x", drift=False)]))
    assert (resolved["state"], resolved["resolved_by"]) == ("resolved", "auto")
    assert resolved["updated_at"] == 12 * H + DAY  # the logical resolve time
    assert resolved["occurrences"] == 2
    assert "auto-resolved after 1 d without detections" in resolved["message"]
    assert lc.stats()["auto_resolved_time"] == 1
    assert lc.open_alerts() == []


def test_detection_after_a_long_silence_is_a_new_alert() -> None:
    lc = AlertLifecycle(auto_resolve_ms=DAY, cooldown_ms=H)
    first = one_alert(lc.process(Topic.DRIFT_DETECTIONS, [detection(0)]))
    resolved, reopened = alerts_of(lc.process(Topic.DRIFT_DETECTIONS, [detection(DAY + 2 * H)]))
    assert (resolved["alert_id"], resolved["state"], resolved["updated_at"]) == (
        first["alert_id"],
        "resolved",
        DAY,
    )
    assert (reopened["state"], reopened["opened_at"]) == ("open", DAY + 2 * H)


def test_detections_dedupe_and_ignore_kinds_taken_from_metrics() -> None:
    lc = AlertLifecycle()
    d = detection(H, severity="warning")
    opened = one_alert(lc.process(Topic.DRIFT_DETECTIONS, [d]))
    assert opened["severity"] == "warning"
    assert lc.process(Topic.DRIFT_DETECTIONS, [d]) == []  # replay
    assert lc.stats()["stale"] == 1
    # data drift detections duplicate the metric rows: counted, not alerted
    assert lc.process(Topic.DRIFT_DETECTIONS, [detection(2 * H, kind="data_drift")]) == []
    assert lc.stats()["ignored_detections"] == 1
    escalated = one_alert(lc.process(Topic.DRIFT_DETECTIONS, [detection(3 * H)]))
    assert (escalated["severity"], escalated["occurrences"], escalated["revision"]) == (
        "critical",
        2,
        2,
    )


def test_detection_without_severity_uses_the_ratio() -> None:
    lc = AlertLifecycle()
    rec = detection(H, kind="performance", severity=None, value=0.5) | {"threshold": 0.2}
    alert = one_alert(lc.process(Topic.DRIFT_DETECTIONS, [rec]))
    assert (alert["kind"], alert["severity"], alert["threshold"]) == (
        "performance",
        "critical",
        0.2,
    )


# -- invalid records --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "record", "reason"),
    [
        (Topic.DRIFT_METRICS, {k: v for k, v in metric(0).items() if k != "window_end"}, "field 'window_end' is missing"),
        (Topic.DRIFT_METRICS, metric(0) | {"value": float("nan")}, "field 'value' must be a finite number, got nan"),
        (Topic.DRIFT_METRICS, metric(0) | {"drift": "yes"}, "field 'drift' must be a boolean, got str"),
        (Topic.DRIFT_METRICS, metric(0) | {"model_name": None}, "field 'model_name' is missing"),
        (Topic.DRIFT_DETECTIONS, detection(H, severity="urgent"), "field 'severity' must be one of"),
        (Topic.DRIFT_DETECTIONS, detection(H) | {"detected_at": "today"}, "field 'detected_at' must be an integer"),
        (Topic.ALERT_ACKS, ["not", "a", "dict"], "record must be a mapping, got list"),
    ],
)  # fmt: skip
def test_invalid_records_become_dead_letters(topic: Topic, record: Any, reason: str) -> None:
    lc = AlertLifecycle()
    dead = one_dead_letter(lc.process(topic, [record]))
    assert dead["reason"].startswith(reason), dead["reason"]
    assert lc.open_alerts() == []


def test_clean_row_value_is_not_validated() -> None:
    # a statistic that could not be computed is harmless when the verdict is "no drift"
    lc = AlertLifecycle()
    open_age_alert(lc)
    assert lc.process(Topic.DRIFT_METRICS, [metric(1, drift=False, value=float("nan"))]) == []


def test_topics_not_consumed_are_ignored() -> None:
    lc = AlertLifecycle()
    assert lc.process(Topic.PREDICTIONS, [{"anything": 1}]) == []
    assert lc.stats()["records"] == 0


# -- snapshot / restore -----------------------------------------------------------------


def scripted_stream() -> list[tuple[Topic, list[dict[str, Any]]]]:
    """Every transition, in batches; ack ids are known in advance (they are deterministic)."""
    age = stable_id("churn", "1", "data_drift", "age", H)
    income_2 = stable_id("churn", "1", "data_drift", "income", 2 * H)
    return [
        (Topic.DRIFT_METRICS, [metric(0), metric(0, feature="income", drift=False)]),
        (Topic.DRIFT_DETECTIONS, [detection(90 * 60_000, severity="warning")]),
        (Topic.DRIFT_METRICS, [metric(1, value=0.5), metric(1, feature="income")]),
        (Topic.ALERT_ACKS, [ack(age, "acknowledge", 2 * H + 5), ack("nope", "resolve", 2 * H + 6)]),
        (Topic.DRIFT_METRICS, [metric(2, drift=False), metric(2, feature="income")]),
        (Topic.ALERT_ACKS, [ack(income_2, "resolve", 3 * H + 1, "bo", "known issue")]),
        (Topic.DRIFT_METRICS, [metric(3, drift=False), metric(3, feature="income")]),
        (Topic.DRIFT_DETECTIONS, [detection(4 * H)]),
        (Topic.DRIFT_METRICS, [metric(4, drift=False), metric(4, feature="income")]),
        (Topic.DRIFT_METRICS, [metric(5, feature="income"), metric(5, drift=False)]),
        (Topic.DRIFT_METRICS, [metric(30, feature="x", drift=False)]),
        (Topic.ALERT_ACKS, [ack(age, "resolve", 31 * H)]),
        (Topic.DRIFT_DETECTIONS, [detection(31 * H)]),
    ]


def run(lc: AlertLifecycle, batches: list[tuple[Topic, list[dict[str, Any]]]]) -> list[Emit]:
    out: list[Emit] = []
    for topic, records in batches:
        out.extend(lc.process(topic, records))
    return out


def test_scripted_stream_exercises_every_transition() -> None:
    lc = AlertLifecycle()
    out = run(lc, scripted_stream())
    states = {
        (r["feature"] or r["kind"], r["state"], r["resolved_by"])
        for t, r in out
        if t == Topic.ALERTS
    }
    assert ("age", "acknowledged", None) in states
    assert ("age", "resolved", "auto") in states
    assert ("income", "resolved", "bo") in states
    assert ("concept_drift", "resolved", "auto") in states
    stats = lc.stats()
    assert stats["suppressed_cooldown"] >= 1 and stats["dead_letters"] == 2  # "nope", late resolve
    assert stats["deduplicated"] >= 1


@pytest.mark.parametrize("split", range(len(scripted_stream()) + 1))
def test_restored_processor_continues_exactly(split: int) -> None:
    batches = scripted_stream()
    uninterrupted = AlertLifecycle(cooldown_ms=2 * H)
    expected = run(uninterrupted, batches)

    first = AlertLifecycle(cooldown_ms=2 * H)
    head = run(first, batches[:split])
    data = first.snapshot()
    second = AlertLifecycle(cooldown_ms=2 * H)
    second.restore(data)
    tail = run(second, batches[split:])

    assert head + tail == expected
    assert second.stats() == uninterrupted.stats()
    assert second.open_alerts() == uninterrupted.open_alerts()
    assert second.snapshot() == uninterrupted.snapshot()


def test_restore_rejects_another_processors_snapshot() -> None:
    with pytest.raises(ValueError, match="not an AlertLifecycle snapshot"):
        AlertLifecycle().restore(b'{"format": "driftline.retrain_policy", "version": 1}')


def test_flush_closes_nothing() -> None:
    lc = AlertLifecycle()
    open_age_alert(lc)
    assert lc.flush() == []
    assert len(lc.open_alerts()) == 1


# -- shared helpers (streams.processor) -------------------------------------------------


def test_stable_id_is_unambiguous() -> None:
    assert stable_id("a|b") != stable_id("a", "b")
    assert stable_id("ab", "c") != stable_id("a", "bc")
    assert stable_id(1) != stable_id("1")
    assert stable_id(None) != stable_id("") != stable_id()
    assert stable_id("m", 1) == stable_id("m", 1)
    assert len(stable_id("x")) == 32 and int(stable_id("x"), 16) >= 0


def test_invalid_builds_a_deterministic_dead_letter() -> None:
    record = {"timestamp": 1234, "b": b"\x00\xff", "a": [1.5, None]}
    topic, dead = invalid(Topic.ALERT_ACKS, record, "why")
    assert topic == Topic.DEAD_LETTERS
    assert dead == {
        "dead_letter_id": stable_id(Topic.ALERT_ACKS.value, dead["raw"]),
        "source_topic": "driftline.alert-acks",
        "raw": b'{"a":[1.5,null],"b":"00ff","timestamp":1234}',
        "reason": "why",
        "error_type": "InvalidRecord",
        "received_at": 1234,
        "partition": None,
        "offset": None,
    }
    assert invalid(Topic.ALERT_ACKS, dict(reversed(record.items())), "why")[1] == dead
    assert invalid(Topic.LABELS, "garbage", "x")[1]["received_at"] == 0


def test_invalid_cuts_huge_records_but_ids_the_whole() -> None:
    record = {"timestamp": 5, "reference_profile": "x" * (DEAD_LETTER_RAW_LIMIT + 10)}
    _, dead = invalid(Topic.MODEL_EVENTS, record, "too big")
    assert len(dead["raw"]) == DEAD_LETTER_RAW_LIMIT
    assert dead["reason"].startswith("too big (raw cut to its first")
    other = {**record, "reference_profile": record["reference_profile"] + "y"}
    assert (
        invalid(Topic.MODEL_EVENTS, other, "too big")[1]["dead_letter_id"] != dead["dead_letter_id"]
    )


def test_every_emitted_record_fits_its_avro_schema() -> None:
    codec = AvroCodec()
    out = run(AlertLifecycle(cooldown_ms=2 * H), scripted_stream())
    assert {topic for topic, _ in out} == {Topic.ALERTS, Topic.DEAD_LETTERS}
    for topic, record in out:
        assert codec.decode_as(topic.schema_name, codec.encode(topic.schema_name, record)) == record


@pytest.mark.parametrize("module", [streams.alerts, streams.processor])
def test_docstring_examples_run(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
