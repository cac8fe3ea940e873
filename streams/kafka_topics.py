"""The Kafka side of ``schemas.topics``: topic names on a cluster, their settings, creation.

This module owns what the distributed runtime needs to know about topics before it
reads a single record:

- :class:`TopicNames`: the name of each :class:`~schemas.topics.Topic` on the cluster
  (an optional prefix keeps several deployments, or tests, apart on one cluster) and
  the name of the worker's state topic (one per consumer group);
- :func:`topic_specs`: partitions, replication and per-topic configuration of every
  topic driftline uses;
- :func:`ensure_topics`: create what is missing, and refuse to start on a layout that
  would break the runtime (input topics with different partition counts, a state topic
  with fewer partitions than the inputs);
- :func:`describe_topics`: what ``driftline topics describe`` prints.

Input topics are created with ``message.timestamp.type=LogAppendTime``: the worker
merges a partition's predictions, labels, acknowledgements and model events in broker
append order, and broker timestamps make that order a property of the data, the same
on every replay (see ``streams.kafka_runtime``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from schemas.codec import DEFAULT_MAX_BYTES
from schemas.topics import INPUT_TOPICS, Topic

__all__ = [
    "DEFAULT_GROUP",
    "OUTPUT_TOPICS",
    "TopicInfo",
    "TopicNames",
    "TopicSpec",
    "TopicsError",
    "describe_topics",
    "ensure_topics",
    "read_watermarks",
    "topic_specs",
]

DEFAULT_GROUP: Final = "driftline-worker"
"""Consumer group of ``driftline worker`` unless told otherwise."""

OUTPUT_TOPICS: Final[tuple[Topic, ...]] = (
    Topic.DRIFT_METRICS,
    Topic.PERFORMANCE_METRICS,
    Topic.DRIFT_DETECTIONS,
    Topic.ALERTS,
    Topic.RETRAIN_REQUESTS,
    Topic.DEAD_LETTERS,
)
"""Topics the worker writes (processor outputs and dead letters)."""

# Inputs accept twice the codec's limit so that an oversized event reaches the worker
# and becomes a dead letter with its reason, instead of failing in the producer only.
_INPUT_MAX_BYTES: Final = 2 * DEFAULT_MAX_BYTES
_MODEL_EVENT_MAX_BYTES: Final = 33 * DEFAULT_MAX_BYTES  # a reference profile: up to 32 MiB
_STATE_MAX_BYTES: Final = 64 * DEFAULT_MAX_BYTES
_KEEP_FOREVER: Final = "-1"


class TopicsError(RuntimeError):
    """The cluster cannot be reached, or its topics do not fit the distributed runtime."""


@dataclass(frozen=True)
class TopicNames:
    """Names of driftline's topics on one Kafka cluster.

    Parameters
    ----------
    prefix
        Put in front of every topic name (``"staging."`` gives
        ``staging.driftline.predictions``); empty by default.
    group
        Consumer group of the workers; the state topic is named after it.

    Examples
    --------
    >>> names = TopicNames(prefix="t1.")
    >>> names.name(Topic.PREDICTIONS), names.state
    ('t1.driftline.predictions', 't1.driftline-worker-state')
    >>> names.topic_of("t1.driftline.labels")
    <Topic.LABELS: 'driftline.labels'>
    """

    prefix: str = ""
    group: str = DEFAULT_GROUP

    def name(self, topic: Topic) -> str:
        """The Kafka name of ``topic``."""
        return f"{self.prefix}{topic.value}"

    def topic_of(self, name: str) -> Topic:
        """The :class:`Topic` a Kafka topic name stands for (``ValueError`` if none)."""
        if not name.startswith(self.prefix):
            raise ValueError(f"topic {name!r} does not start with prefix {self.prefix!r}")
        return Topic(name[len(self.prefix) :])

    @property
    def group_id(self) -> str:
        """The consumer group id on the cluster (prefixed too, so deployments stay apart)."""
        return f"{self.prefix}{self.group}"

    @property
    def state(self) -> str:
        """The worker's state topic: processor snapshots with the offsets they cover."""
        return f"{self.group_id}-state"

    @property
    def inputs(self) -> list[str]:
        """Kafka names of the input topics, in ``schemas.topics.INPUT_TOPICS`` order."""
        return [self.name(t) for t in INPUT_TOPICS]


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is created."""

    name: str
    partitions: int
    replication: int
    config: Mapping[str, str] = field(default_factory=dict)
    role: str = "output"  # input | output | state


def topic_specs(names: TopicNames, partitions: int, replication: int) -> list[TopicSpec]:
    """Every topic the distributed runtime uses, with its configuration.

    Parameters
    ----------
    names
        Topic names on the cluster.
    partitions
        Partitions of every topic (``kafka_partitions``). The state topic gets the same
        count: one snapshot stream per input partition.
    replication
        Replication factor (``kafka_replication_factor``).

    Returns
    -------
    list[TopicSpec]
        Inputs first, then outputs, then the state topic.
    """
    if partitions < 1 or replication < 1:
        raise ValueError("partitions and replication must be at least 1")
    specs: list[TopicSpec] = []
    for topic in INPUT_TOPICS:
        limit = _MODEL_EVENT_MAX_BYTES if topic == Topic.MODEL_EVENTS else _INPUT_MAX_BYTES
        config = {"message.timestamp.type": "LogAppendTime", "max.message.bytes": str(limit)}
        if topic == Topic.MODEL_EVENTS:
            config["retention.ms"] = _KEEP_FOREVER  # a restarted worker needs every profile
        specs.append(TopicSpec(names.name(topic), partitions, replication, config, "input"))
    for topic in OUTPUT_TOPICS:
        config = {"max.message.bytes": str(_INPUT_MAX_BYTES)}
        specs.append(TopicSpec(names.name(topic), partitions, replication, config, "output"))
    state_config = {"cleanup.policy": "compact", "max.message.bytes": str(_STATE_MAX_BYTES)}
    specs.append(TopicSpec(names.state, partitions, replication, state_config, "state"))
    return specs


def _admin(bootstrap_servers: str, extra: Mapping[str, Any] | None = None) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers, **(extra or {})})


def _partition_counts(admin: Any, timeout: float) -> dict[str, int]:
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicsError(f"cannot reach Kafka: {exc.args[0]}") from exc
    return {name: len(md.partitions) for name, md in metadata.topics.items() if md.error is None}


def ensure_topics(
    bootstrap_servers: str,
    names: TopicNames,
    partitions: int,
    replication: int,
    *,
    timeout: float = 30.0,
    client_config: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that are missing; check the layout of those that exist.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,host:port...]``.
    names
        Topic names on the cluster.
    partitions, replication
        For topics created now; existing topics keep theirs.
    timeout
        Seconds to wait for the cluster.
    client_config
        Extra librdkafka settings (security, ...).

    Returns
    -------
    list[str]
        Names of the topics this call created.

    Raises
    ------
    TopicsError
        Kafka cannot be reached or refused a creation; the input topics do not all have
        the same number of partitions (a model's predictions and labels would land on
        different workers); or the state topic has fewer partitions than the inputs.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    admin = _admin(bootstrap_servers, client_config)
    existing = _partition_counts(admin, timeout)
    specs = topic_specs(names, partitions, replication)
    missing = [s for s in specs if s.name not in existing]
    input_counts = {existing[s.name] for s in specs if s.role == "input" and s.name in existing}
    if len(input_counts) > 1:
        raise TopicsError(
            "the input topics have different partition counts "
            f"({_counts(existing, names.inputs)}); they must be co-partitioned: recreate them "
            "with the same count"
        )
    # Missing inputs follow the existing ones, so the set stays co-partitioned.
    source_partitions = input_counts.pop() if input_counts else partitions
    new = [
        NewTopic(
            s.name,
            num_partitions=source_partitions if s.role in ("input", "state") else s.partitions,
            replication_factor=s.replication,
            config=dict(s.config),
        )
        for s in missing
    ]
    created: list[str] = []
    if new:
        futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        for name, future in futures.items():
            try:
                future.result(timeout)
                created.append(name)
            except KafkaException as exc:
                error = exc.args[0]
                if getattr(error, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":
                    continue  # another worker created it meanwhile
                raise TopicsError(f"cannot create topic {name!r}: {error}") from exc
        _wait_for_leaders(admin, [t.topic for t in new], timeout)
    state = _partition_counts(admin, timeout).get(names.state, 0)
    if state < source_partitions:
        raise TopicsError(
            f"state topic {names.state!r} has {state} partitions but the input topics have "
            f"{source_partitions}; it needs at least as many (delete it, or add partitions)"
        )
    return created


def _counts(existing: Mapping[str, int], topics: Iterable[str]) -> str:
    return ", ".join(f"{t}: {existing[t]}" for t in topics if t in existing)


def _wait_for_leaders(admin: Any, topics: list[str], timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    pending = set(topics)
    while pending and time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=timeout).topics
        for name in list(pending):
            md = metadata.get(name)
            if (
                md is not None
                and md.error is None
                and md.partitions
                and all(p.leader >= 0 for p in md.partitions.values())
            ):
                pending.discard(name)
        if pending:
            time.sleep(0.1)
    if pending:
        raise TopicsError(
            f"topics without leaders after {timeout:.0f}s: {', '.join(sorted(pending))}"
        )


def read_watermarks(consumer: Any, tp: Any, timeout: float = 30.0) -> tuple[int, int]:
    """Low and high watermark of a partition, retried while it finds its leader.

    Right after a topic is created (or a broker restarted) a client's metadata may
    still name no leader, or the wrong one, for a while.

    Raises
    ------
    TopicsError
        Still failing after ``timeout`` seconds.
    """
    import time

    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=max(1.0, timeout / 5))
            return int(low), int(high)
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise TopicsError(
                    f"cannot read the offsets of {tp.topic}[{tp.partition}]: {exc.args[0]}"
                ) from exc
            time.sleep(0.2)


@dataclass(frozen=True)
class TopicInfo:
    """One topic as ``driftline topics describe`` shows it."""

    name: str
    role: str
    exists: bool
    partitions: int = 0
    replication: int = 0
    messages: int = 0  # sum over partitions of (high - low watermark)
    config: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


_SHOWN_CONFIG: Final = (
    "cleanup.policy",
    "message.timestamp.type",
    "max.message.bytes",
    "retention.ms",
)


def describe_topics(
    bootstrap_servers: str,
    names: TopicNames,
    *,
    timeout: float = 30.0,
    client_config: Mapping[str, Any] | None = None,
) -> list[TopicInfo]:
    """Partitions, replication, message counts and key settings of every driftline topic.

    ``problems`` names what would hurt the runtime: input topics with different partition
    counts, an input topic without broker timestamps, a state topic that is not compacted
    or has too few partitions.

    Raises
    ------
    TopicsError
        Kafka cannot be reached.
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    from confluent_kafka.admin import ConfigResource, ResourceType

    admin = _admin(bootstrap_servers, client_config)
    try:
        metadata = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise TopicsError(f"cannot reach Kafka: {exc.args[0]}") from exc
    specs = topic_specs(names, 1, 1)
    present = [s for s in specs if s.name in metadata and metadata[s.name].error is None]
    configs: dict[str, dict[str, str]] = {}
    if present:
        resources = [ConfigResource(ResourceType.TOPIC, s.name) for s in present]
        for resource, future in admin.describe_configs(resources).items():
            try:
                entries = future.result(timeout)
            except KafkaException:
                continue
            configs[resource.name] = {
                k: str(v.value) for k, v in entries.items() if k in _SHOWN_CONFIG
            }
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"{names.group_id}-describe",
            "enable.auto.commit": False,
            **(client_config or {}),
        }
    )
    try:
        input_counts = {len(metadata[s.name].partitions) for s in present if s.role == "input"}
        infos: list[TopicInfo] = []
        for spec in specs:
            md = metadata.get(spec.name)
            if md is None or md.error is not None:
                infos.append(TopicInfo(spec.name, spec.role, exists=False))
                continue
            messages = 0
            for p in md.partitions:
                low, high = read_watermarks(consumer, TopicPartition(spec.name, p), timeout)
                messages += max(0, high - low)
            config = configs.get(spec.name, {})
            problems: list[str] = []
            if spec.role == "input":
                if len(input_counts) > 1:
                    problems.append("input topics have different partition counts")
                if config.get("message.timestamp.type") != "LogAppendTime":
                    problems.append("not LogAppendTime: merge order follows producer clocks")
            if spec.role == "state":
                if config.get("cleanup.policy") != "compact":
                    problems.append("state topic is not compacted")
                if input_counts and len(md.partitions) < max(input_counts):
                    problems.append("fewer partitions than the input topics")
            replicas = {len(p.replicas) for p in md.partitions.values()}
            infos.append(
                TopicInfo(
                    spec.name,
                    spec.role,
                    exists=True,
                    partitions=len(md.partitions),
                    replication=min(replicas) if replicas else 0,
                    messages=messages,
                    config=config,
                    problems=tuple(problems),
                )
            )
        return infos
    finally:
        consumer.close()
