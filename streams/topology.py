"""Which processor reads which topic — declared once, used by both runtimes.

The embedded bus and the faust app build their wiring from ``ROUTES``: every
record published on a topic is handed to the processors listed for it, and
every record a processor returns is published on its own topic (and so reaches
the processors downstream and the store).

::

    predictions ──► windows ──► drift-metrics ──► alerts ──► alerts ──► retrain ──► retrain-requests
         └────────► labels ──► performance-metrics ──────────────────────┘
    labels ───────► labels ──► drift-detections ──► alerts
    alert-acks ───► alerts
    model-events ─► windows, retrain
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.drift import DriftConfig
from detectors.profile import ReferenceProfile
from schemas.topics import Topic
from streams.alerts import AlertLifecycle
from streams.labels import LabelJoinProcessor
from streams.processor import Processor
from streams.retrain_policy import RetrainPolicy
from streams.windows import DriftWindowProcessor

# processor name -> the topics it reads
ROUTES: dict[str, tuple[Topic, ...]] = {
    "windows": (Topic.MODEL_EVENTS, Topic.PREDICTIONS),
    "labels": (Topic.PREDICTIONS, Topic.LABELS),
    "alerts": (Topic.DRIFT_METRICS, Topic.DRIFT_DETECTIONS, Topic.ALERT_ACKS),
    "retrain": (Topic.MODEL_EVENTS, Topic.ALERTS, Topic.PERFORMANCE_METRICS),
}


def readers(topic: Topic) -> list[str]:
    """Names of the processors that read ``topic``, in a fixed order."""
    return [name for name, topics in ROUTES.items() if topic in topics]


@dataclass
class ProcessorConfig:
    """Everything the processors are built from (filled from ``driftline.settings``)."""

    window_ms: int = 3_600_000
    allowed_lateness_ms: int = 300_000
    drift: DriftConfig = field(default_factory=DriftConfig)
    segment_by: str | None = None
    label_ttl_ms: int = 7 * 24 * 3_600_000
    concept_detector: str = "adwin"
    concept_params: Mapping[str, Any] = field(default_factory=dict)
    tasks: Mapping[str, Any] = field(default_factory=dict)
    alert_cooldown_ms: int = 3_600_000
    auto_resolve_windows: int = 3
    performance_floors: Mapping[str, float] = field(default_factory=dict)
    performance_ceilings: Mapping[str, float] = field(default_factory=dict)
    retrain_schedule_ms: int | None = None


def build_processors(
    config: ProcessorConfig | None = None,
    profiles: Mapping[tuple[str, str], ReferenceProfile] | None = None,
) -> dict[str, Processor]:
    """The processors named in ``ROUTES``, configured."""
    c = config or ProcessorConfig()
    return {
        "windows": DriftWindowProcessor(
            profiles,
            window_ms=c.window_ms,
            allowed_lateness_ms=c.allowed_lateness_ms,
            config=c.drift,
            segment_by=c.segment_by,
        ),
        "labels": LabelJoinProcessor(
            ttl_ms=c.label_ttl_ms,
            window_ms=c.window_ms,
            allowed_lateness_ms=c.allowed_lateness_ms,
            detector=c.concept_detector,
            detector_params=c.concept_params,
            tasks=c.tasks,
        ),
        "alerts": AlertLifecycle(
            cooldown_ms=c.alert_cooldown_ms,
            auto_resolve_windows=c.auto_resolve_windows,
        ),
        "retrain": RetrainPolicy(
            performance_floors=dict(c.performance_floors),
            performance_ceilings=dict(c.performance_ceilings),
            schedule_ms=c.retrain_schedule_ms,
        ),
    }


def run_to_completion(
    processors: Mapping[str, Processor],
    topic: Topic,
    records: list[dict],
) -> list[tuple[Topic, dict]]:
    """Feed ``records`` on ``topic`` through the topology until nothing more is produced.

    Returns every record produced on the way (not the inputs), in order. This is
    the embedded runtime's dispatch loop; the Kafka runtime gets the same effect by
    publishing outputs to their topics, where the downstream agents read them.
    """
    produced: list[tuple[Topic, dict]] = []
    queue: list[tuple[Topic, list[dict]]] = [(topic, records)]
    while queue:
        t, recs = queue.pop(0)
        for name in readers(t):
            out = processors[name].process(t, recs)
            if not out:
                continue
            produced.extend(out)
            queue.extend(topic_runs(out))
    return produced


def flush_all(processors: Mapping[str, Processor]) -> list[tuple[Topic, dict]]:
    """Close everything still open and let the outputs run downstream."""
    produced: list[tuple[Topic, dict]] = []
    for name in ROUTES:
        out = processors[name].flush()
        produced.extend(out)
        for t, recs in topic_runs(out):
            produced.extend(run_to_completion(processors, t, recs))
    return produced


def topic_runs(emits: list[tuple[Topic, dict]]) -> list[tuple[Topic, list[dict]]]:
    """Consecutive records of the same topic as one batch each, in order (so processors
    get batches in order)."""
    groups: list[tuple[Topic, list[dict]]] = []
    for t, rec in emits:
        if groups and groups[-1][0] == t:
            groups[-1][1].append(rec)
        else:
            groups.append((t, [rec]))
    return groups


CHECKPOINT_BUDGET = 0.05
"""Share of the processing time checkpoints may take at most (both runtimes).

A checkpoint serialises the processors' whole state, which grows with what the label
join holds (up to 1M pending predictions: ~0.7 s at 500k on this project's machine),
while processing stops. So after a checkpoint that took *d* seconds the next one waits
at least ``d / CHECKPOINT_BUDGET - d`` seconds, even when the configured interval is
shorter (like Flink's minimum pause between checkpoints); a restart then replays a
little more of the log."""


def checkpoint_due(now: float, last: float, duration: float, interval: float) -> bool:
    """Whether a checkpoint is due at ``now`` (monotonic seconds) after one that started
    at ``last`` and took ``duration`` seconds, with ``interval`` configured.

    >>> checkpoint_due(now=105.0, last=100.0, duration=0.01, interval=5.0)
    True
    >>> checkpoint_due(now=105.0, last=100.0, duration=0.5, interval=5.0)  # waits 9.5 s
    False
    """
    pause = max(interval, duration / CHECKPOINT_BUDGET - duration)
    return now - last >= pause
