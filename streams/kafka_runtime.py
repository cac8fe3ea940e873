"""The distributed runtime: the topology's processors behind a Kafka consumer group.

``KafkaWorker`` consumes the input topics (predictions, labels, alert acks, model
events), hands decoded records to the processors of ``streams.topology`` —
the same ``build_processors`` / ``run_to_completion`` the embedded runtime uses —,
publishes what they return on the output topics (Avro single-object encoding, keyed
by model name) and writes inputs and outputs to ClickHouse through
``streams.store.ClickHouseStore``.

Partitions are the unit of everything:

- Every topic is keyed by model name and the input topics have the same partition
  count, so partition *p* of each input topic holds the same models. The consumer
  uses the range assignor, which gives partition *p* of every input topic to one
  worker; that worker runs one :class:`PartitionTask` for *p*: its own processors,
  duplicate filter and offsets.
- Within a task, records of the four input topics are merged into one sequence by
  (broker append time, topic rank, offset). A record is released only when every
  other input topic of the partition either has a later record buffered or is known
  to be caught up (its high watermark, queried after the record's time, equals our
  position). The order is therefore a property of the log, not of fetch timing:
  a replay after a crash processes the same records in the same order.
- Every ``checkpoint_interval`` seconds (and when partitions are revoked, and at
  shutdown) the worker flushes its outputs, then writes one message per task to the
  compacted state topic: the processors' snapshots *together with the offsets they
  cover* — one message, so state and offsets are atomic by construction — and then
  commits those offsets to the group (for lag monitoring). A task assigned to a
  worker restores the last snapshot of its partition and seeks to its offsets.
  The periodic checkpoint runs in the background: the step that takes it only
  serialises the snapshots; they are sent once the store writer has stored every write
  queued before them and every output produced before them is acknowledged, while
  the following steps go on (:class:`_Checkpoint`).
  After a crash (even SIGKILL) nothing is lost and nothing is counted twice: the
  records after the snapshot are replayed in the same order, and the store's
  ReplacingMergeTree keys make the rewrites idempotent. Output topics may see the
  records produced since the last checkpoint a second time (same deterministic ids).
- A record that cannot be decoded, or that a processor rejects, becomes a dead letter:
  a ``dead_letters`` row and a message on the dead-letter topic whose headers carry
  the reason. The worker keeps consuming.

Why not faust: see ``docs/distributed.md`` (faust's at-least-once commits acked
offsets independently of table changelogs, its agents interleave topics in fetch
order, and a table touched in a ``stream.take`` batch raises).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import pickle
import socket
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any, Final, cast

from schemas.codec import AvroCodec, DecodeError, EncodeError, dead_letter_record
from schemas.columns import PredictionColumns, join_groups
from schemas.topics import INPUT_TOPICS, Topic
from streams.dedup import Deduplicator
from streams.gcpause import YOUNG_THRESHOLD, gc_paused, raise_young_threshold
from streams.kafka_topics import DEFAULT_GROUP, TopicNames, ensure_topics, read_watermarks
from streams.processor import Emit
from streams.store import ClickHouseStore, StoreError, StoreWriter
from streams.topology import (
    ProcessorConfig,
    build_processors,
    checkpoint_due,
    run_to_completion,
)

__all__ = [
    "DEAD_LETTER_HEADERS",
    "KafkaWorker",
    "PartitionTask",
    "WorkerConfig",
    "WorkerError",
    "WorkerMetrics",
]

log = logging.getLogger("driftline.kafka")

_SNAPSHOT_VERSION: Final = 1

# Tie-break of the merge for records appended in the same millisecond: a version's
# registration before its predictions, predictions before their labels.
_RANK: Final[dict[Topic, int]] = {
    Topic.MODEL_EVENTS: 0,
    Topic.PREDICTIONS: 1,
    Topic.LABELS: 2,
    Topic.ALERT_ACKS: 3,
}

DEAD_LETTER_HEADERS: Final = (
    "driftline-reason",
    "driftline-error-type",
    "driftline-source-topic",
    "driftline-source-partition",
    "driftline-source-offset",
)
"""Headers of every message on the dead-letter topic (UTF-8 text)."""

_UNKNOWN: Final = -(2**62)  # merge bound of a topic whose position is not known yet

# An entry waiting in a task's merge queue:
# (timestamp ms, rank, offset, record or None, DecodeError or None, payload, message key)
Entry = tuple[int, int, int, dict[str, Any] | None, DecodeError | None, bytes | None, bytes | None]
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_BROKER_TIME = itemgetter(1)  # of Message.timestamp(): (type, ms)
# an output record, its message key (None: from the record) and headers (dead letters)
Produced = tuple[Emit, bytes | None, list[tuple[str, bytes]] | None]


class WorkerError(RuntimeError):
    """The worker cannot go on without a person: the cluster refused something for good."""


class ConsumerFailed(WorkerError):
    """The group consumer hit a fatal error (e.g. fenced); the worker rejoins with a new one."""


@dataclass
class WorkerConfig:
    """How a worker talks to Kafka (processing settings live in ``ProcessorConfig``).

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,host:port...]``.
    names
        Topic names (prefix) and consumer group.
    partitions, replication
        For topics the worker creates at start (``create_topics``).
    batch_size
        Most records taken from the consumer per step.
    poll_timeout
        Seconds a step waits for records when there are none.
    checkpoint_interval
        Seconds between checkpoints (snapshots + offsets).
    order_slack_ms
        How far (ms) a broker's clock may be behind this worker's: a topic counts as
        caught up to time *t* only when its high watermark was read after ``t + slack``.
        Records wait at least this long when another input topic of their partition is idle.
    merge_bucket_ms
        Granularity of the merge's time (``PartitionTask``'s ``bucket_ms``): within a
        bucket a partition's predictions are processed before its labels, as one batch
        each. Larger: bigger batches (live traffic spreads a partition's records over
        many milliseconds), labels held back up to this much longer.
    worker_id
        Stable identity of this worker (``group.instance.id``: static membership, so a
        restarted worker gets its partitions back without waiting for a session timeout);
        None: dynamic membership.
    metrics_host, metrics_port
        Prometheus endpoint; ``metrics_port=None`` disables it, 0 picks a free port.
    registry_ids
        Confluent Schema Registry id -> schema name, to accept that framing.
    create_topics
        Create missing topics at start.
    session_timeout_ms
        Consumer group session timeout: how long a dead worker keeps its partitions.
    flush_timeout
        Seconds a checkpoint waits for Kafka to acknowledge outputs and snapshots.
    max_queued
        Records of one topic partition held back by the merge before its fetching pauses.
    store_linger, store_batch_rows
        How long the store writer waits for more processed batches to write them as one
        insert, and how many records end the wait (``streams.store.StoreWriter``).
    gc_young_threshold
        Generation-0 threshold of the cyclic garbage collector while the worker runs
        (``streams.gcpause.raise_young_threshold``); 0 leaves it as is.
    client_config
        Extra librdkafka settings for every client (security, ...).
    """

    bootstrap_servers: str
    names: TopicNames = field(default_factory=TopicNames)
    partitions: int = 4
    replication: int = 1
    batch_size: int = 50_000
    poll_timeout: float = 0.1
    checkpoint_interval: float = 5.0
    order_slack_ms: int = 500
    merge_bucket_ms: int = 100
    worker_id: str | None = None
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = 9464
    registry_ids: Mapping[int, str] | None = None
    create_topics: bool = True
    session_timeout_ms: int = 10_000
    flush_timeout: float = 30.0
    max_queued: int = 50_000
    store_linger: float = 0.2
    store_batch_rows: int = 20_000
    gc_young_threshold: int = YOUNG_THRESHOLD
    client_config: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> WorkerConfig:
        """Kafka bootstrap, partitions, replication and checkpoint interval from ``Settings``.

        ``overrides`` set any other field (``None`` values are ignored); ``topic_prefix``
        and ``group`` build :attr:`names`.
        """
        bootstrap = overrides.pop("bootstrap_servers", None) or settings.kafka_bootstrap_servers
        if not bootstrap:
            raise WorkerError(
                "no Kafka bootstrap servers: set DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS "
                "(or kafka_bootstrap_servers in the settings file, or --bootstrap)"
            )
        prefix = overrides.pop("topic_prefix", None) or ""
        group = overrides.pop("group", None) or DEFAULT_GROUP
        values: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "names": TopicNames(prefix=prefix, group=group),
            "partitions": settings.kafka_partitions,
            "replication": settings.kafka_replication_factor,
            "checkpoint_interval": float(settings.checkpoint_interval_seconds),
            "store_linger": float(settings.store_linger_seconds),
            "store_batch_rows": settings.store_batch_rows,
            "gc_young_threshold": settings.gc_young_threshold,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class WorkerMetrics:
    """The worker's Prometheus metrics, on a registry of its own.

    ``driftline_worker_events_total{topic}``, ``driftline_worker_events_per_second``,
    ``driftline_worker_dead_letters_total{source_topic}``,
    ``driftline_worker_outputs_total{topic}``,
    ``driftline_worker_consumer_lag{topic,partition}`` (records not yet processed),
    ``driftline_worker_assigned_partitions``, ``driftline_worker_checkpoints_total``,
    ``driftline_worker_store_errors_total``, ``driftline_worker_batch_seconds``.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "driftline_worker_events", "Input records processed.", ["topic"], registry=r
        )
        self.events_per_second = Gauge(
            "driftline_worker_events_per_second",
            "Input records processed per second (over the last few seconds).",
            registry=r,
        )
        self.dead_letters = Counter(
            "driftline_worker_dead_letters",
            "Dead letters written (undecodable, invalid or duplicate inputs).",
            ["source_topic"],
            registry=r,
        )
        self.outputs = Counter(
            "driftline_worker_outputs", "Records produced to output topics.", ["topic"], registry=r
        )
        self.lag = Gauge(
            "driftline_worker_consumer_lag",
            "Records in the partition not processed yet (high watermark - processed offset).",
            ["topic", "partition"],
            registry=r,
        )
        self.partitions = Gauge(
            "driftline_worker_assigned_partitions", "Input partitions this worker owns.", registry=r
        )
        self.checkpoints = Counter(
            "driftline_worker_checkpoints", "Snapshots written with their offsets.", registry=r
        )
        self.store_errors = Counter(
            "driftline_worker_store_errors",
            "ClickHouse writes that failed (the worker rewinds and retries).",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "driftline_worker_batch_seconds", "Time to process one step's records.", registry=r
        )
        self._window: deque[tuple[float, int]] = deque()

    def count_events(self, n: int) -> None:
        """Record ``n`` processed events for the events-per-second gauge."""
        now = time.monotonic()
        self._window.append((now, n))
        while self._window and self._window[0][0] < now - 5.0:
            self._window.popleft()
        span = max(now - self._window[0][0], 1.0)
        self.events_per_second.set(sum(k for _, k in self._window) / span)

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint (``/metrics``) in a thread; returns the bound port."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)


class PartitionTask:
    """Processors, duplicate filter, offsets and merge queues of one input partition.

    Parameters
    ----------
    partition
        The partition number (the same in every input topic).
    config
        Processor configuration.
    offsets
        Next offset to process, per input topic.
    bucket_ms
        Granularity (ms) of the merge's time: records are processed in the order of
        (broker time rounded down to a multiple of ``bucket_ms``, topic rank, offset), so
        within a bucket a partition's registrations come first, then its predictions, its
        labels, its acks — as runs of one topic, which the processors take as batches.
        1 orders by the millisecond (live traffic then gives runs of a record or two, each
        paying the processors' fixed per-batch cost); larger buckets give larger runs and
        hold a record back up to ``bucket_ms`` longer for the topics ranked before it.
    """

    def __init__(
        self,
        partition: int,
        config: ProcessorConfig,
        offsets: Mapping[Topic, int],
        *,
        bucket_ms: int = 1,
    ):
        if bucket_ms < 1:
            raise ValueError(f"bucket_ms must be at least 1, got {bucket_ms}")
        self.partition = partition
        self.config = config
        self.bucket_ms = int(bucket_ms)
        self.processors = build_processors(config)
        self.dedup = Deduplicator()
        self.offsets: dict[Topic, int] = {t: int(offsets.get(t, 0)) for t in INPUT_TOPICS}
        self.start_offsets: dict[Topic, int] = dict(
            self.offsets
        )  # where a rewind goes without a snapshot
        self.fetched: dict[Topic, int] = dict(self.offsets)
        self.queues: dict[Topic, deque[Entry]] = {t: deque() for t in INPUT_TOPICS}
        # topic -> (wall-clock ms just before the query, high watermark then)
        self.watermarks: dict[Topic, tuple[int, int]] = {}
        self.blocked: dict[Topic, int] = {}
        self.last_snapshot: bytes | None = None
        self.dirty = False

    # -- state ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Processors, duplicate filter and the offsets they cover, as one blob."""
        return pickle.dumps(
            {
                "version": _SNAPSHOT_VERSION,
                "partition": self.partition,
                "offsets": {t.value: o for t, o in self.offsets.items()},
                "processors": {name: p.snapshot() for name, p in self.processors.items()},
                "dedup": self.dedup.state(),
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @classmethod
    def from_snapshot(
        cls, partition: int, config: ProcessorConfig, data: bytes, *, bucket_ms: int = 1
    ) -> PartitionTask:
        """A task restored from :meth:`snapshot`; it resumes at the offsets it covers."""
        state = pickle.loads(data)
        if state.get("version") != _SNAPSHOT_VERSION:
            raise WorkerError(
                f"snapshot of partition {partition} has version {state.get('version')}; "
                f"this driftline reads version {_SNAPSHOT_VERSION}"
            )
        if state["partition"] != partition:
            raise WorkerError(
                f"the state topic's partition {partition} holds partition "
                f"{state['partition']}'s snapshot; was the state topic repartitioned?"
            )
        task = cls(
            partition,
            config,
            {Topic(t): o for t, o in state["offsets"].items()},
            bucket_ms=bucket_ms,
        )
        for name, blob in state["processors"].items():
            task.processors[name].restore(blob)
        task.dedup = Deduplicator.from_state(state["dedup"])
        task.last_snapshot = data
        return task

    # -- processing -----------------------------------------------------------------------

    def process(
        self,
        entries: list[tuple[Topic, Entry]],
        inputs: dict[Topic, list[list[dict[str, Any]] | PredictionColumns]],
        produced: list[Produced],
        codec: AvroCodec | None = None,
    ) -> dict[Topic, int]:
        """Feed released entries, as runs of one topic, through dedup and the processors.

        Appends the records to store to ``inputs`` (a group per run: records, or the
        predictions of a run decoded into columns) and the outputs (with their message key
        and headers, for dead letters of undecodable records) to ``produced``; advances
        :attr:`offsets`. Returns the records taken in per topic.

        An entry with neither record nor failure is undecoded (the worker defers decoding
        predictions to here): ``codec`` decodes the run's, into columns when the run is of
        the common shape (``AvroCodec.decode_prediction_columns``), else record by record.
        """
        p = self.partition
        taken: dict[Topic, int] = {}
        i = 0
        while i < len(entries):
            topic = entries[i][0]
            j = i
            while j < len(entries) and entries[j][0] is topic:
                j += 1
            run = entries[i:j]
            group: list[dict[str, Any]] | PredictionColumns | None = None
            outcomes: dict[int, dict[str, Any] | DecodeError] = {}
            undecoded = [k for k, (_, e) in enumerate(run) if e[3] is None and e[4] is None]
            if undecoded:
                if codec is None:
                    raise ValueError("undecoded records reached a task without a codec")
                payloads = [run[k][1][5] for k in undecoded]
                if topic == Topic.PREDICTIONS and len(undecoded) == len(run):
                    group = codec.decode_prediction_columns(payloads)
                if group is None:
                    decoded = codec.decode_many_as(topic.schema_name, payloads)
                    outcomes = dict(zip(undecoded, decoded, strict=True))
            if group is None:
                records: list[dict[str, Any]] = []
                for k, (_, (ts, _rank, offset, record, failure, payload, key)) in enumerate(run):
                    if k in outcomes:
                        outcome = outcomes[k]
                        if isinstance(outcome, DecodeError):
                            failure = outcome
                        else:
                            record = outcome
                    if failure is not None:
                        dl = dead_letter_record(
                            str(topic),
                            payload or b"",
                            failure,
                            partition=p,
                            offset=offset,
                            received_at=ts,
                        )
                        produced.append(((Topic.DEAD_LETTERS, dl), key, _dead_headers(dl)))
                    elif record is not None:
                        records.append(record)
                group = records
            self.offsets[topic] = entries[j - 1][1][2] + 1
            kept, dead = self.dedup.filter(topic, group)
            produced.extend((emit, None, None) for emit in dead)
            if kept:
                inputs[topic].append(kept)
                taken[topic] = taken.get(topic, 0) + len(kept)
                for emit in run_to_completion(self.processors, topic, kept):
                    produced.append((emit, None, None))
            i = j
        self.dirty = True
        return taken

    # -- merge ----------------------------------------------------------------------------

    def push(self, topic: Topic, entry: Entry) -> bool:
        """Queue a fetched record; False (and ignored) if it was fetched before."""
        offset = entry[2]
        if offset < self.fetched[topic]:
            return False
        self.queues[topic].append(entry)
        self.fetched[topic] = offset + 1
        return True

    def _bound(self, topic: Topic, slack_ms: int) -> int:
        """Every record that may still arrive on an empty ``topic`` has a time >= this."""
        mark = self.watermarks.get(topic)
        if mark is None or self.fetched[topic] < mark[1]:
            return _UNKNOWN
        return mark[0] - slack_ms

    def release(self, slack_ms: int) -> list[tuple[Topic, Entry]]:
        """Take the records whose place in the merged order is settled, in that order.

        The order is that of the keys (time rounded down to :attr:`bucket_ms`, rank,
        offset), each topic's records taken in offset order. Afterwards :attr:`blocked`
        maps each empty topic that held the merge back to the latest bound that would
        still hold it back (a high watermark read after that time plus the slack would
        not: see :meth:`_bound`).
        """
        out: list[tuple[Topic, Entry]] = []
        self.blocked = {}
        queues = self.queues
        b = self.bucket_ms
        while True:
            head_topic: Topic | None = None
            head: tuple[int, int, int] | None = None
            for topic, queue in queues.items():
                if queue:
                    ts, rank, offset = queue[0][:3]
                    key = (ts - ts % b, rank, offset)
                    if head is None or key < head:
                        head, head_topic = key, topic
            if head_topic is None or head is None:
                return out
            limit: tuple[int, int, int] | None = None
            waiting: list[tuple[Topic, int]] = []
            for topic, queue in queues.items():
                if topic is head_topic:
                    continue
                if queue:
                    ts, rank, offset = queue[0][:3]
                    other = (ts - ts % b, rank, offset)
                else:
                    # every record still to come on `topic` has a time >= bound, so a key
                    # above (bound's bucket, the topic's rank, -1)
                    bound = self._bound(topic, slack_ms)
                    other = (bound - bound % b, _RANK[topic], -1)
                    if other < head:
                        # the latest bound still below the head: its bucket's last ms if
                        # the topic ranks before the head's, else the bucket before
                        hold = head[0] + b - 1 if other[1] < head[1] else head[0] - 1
                        waiting.append((topic, hold))
                if limit is None or other < limit:
                    limit = other
            queue = queues[head_topic]
            taken = 0
            append = out.append
            popleft = queue.popleft
            if limit is None:
                while queue:
                    append((head_topic, popleft()))
                    taken += 1
            else:
                # (bucket, rank, offset) < limit for the records of head_topic, whose rank
                # is not the limit's (one rank per topic): a bucket before the limit's, or
                # the limit's bucket and a lower rank. Buckets are multiples of b: compare
                # the times.
                cut = limit[0] + b if head[1] < limit[1] else limit[0]
                while queue and queue[0][0] < cut:
                    append((head_topic, popleft()))
                    taken += 1
            if not taken:
                for topic, hold in waiting:
                    self.blocked[topic] = hold
                return out


def encoded_outputs(
    codec: AvroCodec, metrics: WorkerMetrics, produced: Iterable[Produced]
) -> Iterator[tuple[Topic, bytes, bytes | None, list[tuple[str, bytes]] | None]]:
    """Each output record as ``(topic, Avro value, key, headers)``, for both engines'
    producers: keyed by model name, dead letters with their reason headers (and counted in
    ``metrics``). A record that does not encode — a processor bug; the store has it — is
    logged and skipped."""
    for (topic, record), key, headers in produced:
        if topic == Topic.DEAD_LETTERS:
            headers = headers or _dead_headers(record)
            metrics.dead_letters.labels(source_topic=record["source_topic"]).inc()
        try:
            value = codec.encode(topic.schema_name, record)
        except EncodeError as exc:
            log.error("cannot encode a %s record: %s", topic.schema_name, exc)
            continue
        yield topic, value, _emit_key(record, key), headers or None


def _emit_key(record: Mapping[str, Any], fallback: bytes | None) -> bytes | None:
    model = record.get("model_name")
    if isinstance(model, str):
        return model.encode("utf-8")
    return fallback


@dataclass
class _Checkpoint:
    """A periodic checkpoint under way in the background (the synchronous checkpoint
    sends its snapshots through one too, and waits).

    The step that starts it serialises the chosen tasks' snapshots (with the offsets they
    cover) and queues a barrier behind the store writes; the snapshots are produced once
    the barrier is reached (every write queued before them is stored) and every output
    produced before them (``epoch`` and earlier) is acknowledged; the offsets are
    committed once the broker has acknowledged the snapshots. Meanwhile the worker goes
    on with the next steps: only the serialisation holds the processing loop up.
    """

    tasks: list[tuple[PartitionTask, bytes, dict[Topic, int]]]
    epoch: int
    started: float  # time.monotonic()
    stored: threading.Event = field(default_factory=threading.Event)
    produced: bool = False
    answered: int = 0
    errors: list[str] = field(default_factory=list)


class KafkaWorker:
    """One worker of the consumer group: consume, process, store, produce, checkpoint.

    Parameters
    ----------
    config
        Kafka side (``WorkerConfig``).
    processors
        Processor configuration (``streams.embedded.processor_config(settings)``).
    store
        The ClickHouse store inputs and outputs are written to.
    codec
        The Avro codec; default one built with ``config.registry_ids``.
    """

    def __init__(
        self,
        config: WorkerConfig,
        processors: ProcessorConfig,
        store: ClickHouseStore,
        *,
        codec: AvroCodec | None = None,
    ) -> None:
        self.config = config
        self.processor_config = processors
        self.store = store
        self.codec = codec or AvroCodec(registry_ids=config.registry_ids)
        self.names = config.names
        self.metrics = WorkerMetrics()
        self.metrics_port: int | None = None
        self.tasks: dict[int, PartitionTask] = {}
        self._by_name = {self.names.name(t): t for t in INPUT_TOPICS}
        # topic name -> (topic, merge rank, schema name): one lookup per consumed message
        self._routes = {name: (t, _RANK[t], t.schema_name) for name, t in self._by_name.items()}
        self._stop = threading.Event()
        self._broken = False
        self._paused: set[tuple[str, int]] = set()
        self._delivery_errors: list[str] = []
        # Outputs are counted per epoch until acknowledged; a background checkpoint bumps
        # the epoch when it takes its snapshots and waits for its epoch's outputs.
        self._epoch = 0
        self._unacked: Counter[int] = Counter()
        self._delivered = functools.partial(self._on_delivery, 0)
        self._pending_checkpoint: _Checkpoint | None = None
        self._last_checkpoint = time.monotonic()
        self._checkpoint_seconds = 0.0  # how long the last checkpoint took
        self._consumer: Any = None
        self._producer: Any = None
        self._state_reader: Any = None
        self.counters: Counter[str] = Counter()
        # The store-writer thread: ClickHouse inserts (which run without the GIL) overlap
        # the next step. A checkpoint waits until every queued write is stored.
        self._writer: StoreWriter | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its step, checkpoint and leave (thread- and signal-safe)."""
        self._stop.set()

    def run(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Create missing topics, join the group and process until :meth:`stop`.

        Raises
        ------
        WorkerError
            Kafka refused something for good (a fatal client error, outputs that could
            not be delivered): the last checkpoint stays valid; restart after fixing it.
        TopicsError
            Topics cannot be created or have an unusable layout.
        """
        c = self.config
        if c.create_topics:
            created = ensure_topics(
                c.bootstrap_servers,
                self.names,
                c.partitions,
                c.replication,
                client_config=c.client_config,
            )
            if created:
                log.info("created topics: %s", ", ".join(created))
        if c.metrics_port is not None:
            self.metrics_port = self.metrics.serve(c.metrics_host, c.metrics_port)
            log.info("metrics on http://%s:%d/metrics", c.metrics_host, self.metrics_port)
        self._open_clients()
        self._writer = StoreWriter(
            self.store,
            max_pending=8,
            min_rows=c.store_batch_rows,
            linger=c.store_linger,
        )
        self._subscribe()
        if on_ready is not None:
            on_ready()
        backoff = 0.5
        rejoins: list[float] = []
        restore_gc = raise_young_threshold(c.gc_young_threshold)
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                    backoff = 0.5
                except ConsumerFailed as exc:
                    # e.g. a static member fenced after a broker restart. Nothing of this step
                    # was processed yet, so every task still matches its last snapshot: drop the
                    # tasks, rejoin with a new consumer, and the assignment restores them.
                    rejoins = [t for t in rejoins if time.monotonic() - t < 300] + [
                        time.monotonic()
                    ]
                    if len(rejoins) > 5:
                        raise WorkerError(f"{exc} (5 rejoins within 5 minutes; giving up)") from exc
                    log.warning("%s: rejoining the group from the last checkpoints", exc)
                    self._rejoin()
                    self._stop.wait(backoff)
                    continue
                except StoreError as exc:
                    self.metrics.store_errors.inc()
                    log.warning("store write failed, rewinding; retry in %.1fs: %s", backoff, exc)
                    if self._writer is not None:  # it dropped what was queued behind the failure
                        self._writer.take_failure()
                    self._rewind()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                if self._pending_checkpoint is not None:
                    self._advance_checkpoint()
                elif checkpoint_due(
                    time.monotonic(),
                    self._last_checkpoint,
                    self._checkpoint_seconds,
                    c.checkpoint_interval,
                ):
                    self._begin_checkpoint()
            self.checkpoint(sync=True)
        except BaseException:
            # A step that failed half-way left processors ahead of their offsets: no snapshot
            # of that state may be written (not even by the revocation on close).
            self._broken = True
            raise
        finally:
            restore_gc()
            self._stop_writer()
            self._close_clients()

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer = None

    def _raise_write_failure(self) -> None:
        failure = self._writer.failure if self._writer is not None else None
        if failure is not None:
            if isinstance(failure, StoreError):
                raise failure
            raise WorkerError(f"the store writer failed: {failure!r}") from failure

    def _client_id(self) -> str:
        return self.config.worker_id or f"{socket.gethostname()}-{os.getpid()}"

    def _open_clients(self) -> None:
        from confluent_kafka import Consumer, Producer

        c = self.config
        common = {"bootstrap.servers": c.bootstrap_servers, **c.client_config}
        consumer_config: dict[str, Any] = {
            **common,
            "group.id": self.names.group_id,
            "client.id": self._client_id(),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # Range gives partition p of every input topic to the same member.
            "partition.assignment.strategy": "range",
            "session.timeout.ms": c.session_timeout_ms,
            "heartbeat.interval.ms": max(500, c.session_timeout_ms // 4),
            "max.partition.fetch.bytes": 4 * 1024 * 1024,
            "fetch.max.bytes": 64 * 1024 * 1024,
            # Once librdkafka's queue holds 64 MB it postpones the next fetch, by 1 s by
            # default: a worker draining a backlog would find its queue empty meanwhile.
            "fetch.queue.backoff.ms": 10,
        }
        if c.worker_id:
            consumer_config["group.instance.id"] = c.worker_id
        self._consumer_config = consumer_config
        self._consumer = Consumer(consumer_config, logger=log)
        self._producer = Producer(
            {
                **common,
                "client.id": self._client_id(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "compression.type": "lz4",
                "partitioner": "murmur2_random",  # Java's default: same key, same partition
                "message.max.bytes": 64 * 1024 * 1024 + 4096,
            },
            logger=log,
        )
        self._state_reader = Consumer(
            {
                **common,
                "group.id": f"{self.names.group_id}-state-reader",
                "enable.auto.commit": False,
                "fetch.max.bytes": 128 * 1024 * 1024,
                "max.partition.fetch.bytes": 128 * 1024 * 1024,
            },
            logger=log,
        )

    def _subscribe(self) -> None:
        self._consumer.subscribe(
            self.names.inputs,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _rejoin(self) -> None:
        """A new group consumer after a fatal consumer error; tasks come back from snapshots."""
        from confluent_kafka import Consumer

        self._abandon_checkpoint()
        self.tasks.clear()  # nothing to checkpoint on the way out: their snapshots are current
        self._paused.clear()
        self.metrics.partitions.set(0)
        old, self._consumer = self._consumer, None
        try:
            old.close()
        except Exception as exc:  # closing after a fatal error may fail too
            log.debug("closing the failed consumer: %s", exc)
        self._consumer = Consumer(self._consumer_config, logger=log)
        self._subscribe()

    def _close_clients(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.config.flush_timeout)
        for consumer in (self._consumer, self._state_reader):
            if consumer is not None:
                try:
                    consumer.close()
                except Exception as exc:  # closing after a fatal error may fail too
                    log.debug("closing a consumer: %s", exc)
        self._consumer = self._state_reader = self._producer = None

    # -- rebalances -----------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for tp in partitions:
            by_partition[tp.partition].append(tp)
        snapshots = self._load_snapshots(sorted(by_partition))
        for p, tps in sorted(by_partition.items()):
            topics = {self._by_name[tp.topic] for tp in tps}
            if topics != set(INPUT_TOPICS):
                log.error(
                    "partition %d assigned for %s only: the input topics are not "
                    "co-partitioned (same partition count?)",
                    p,
                    ", ".join(sorted(topics)),
                )
            data = snapshots.get(p)
            if data is not None:
                task = PartitionTask.from_snapshot(
                    p, self.processor_config, data, bucket_ms=self.config.merge_bucket_ms
                )
                log.info("partition %d: restored snapshot at %s", p, _show(task.offsets))
            else:
                start = {t: self._low_watermark(self.names.name(t), p) for t in INPUT_TOPICS}
                task = PartitionTask(
                    p, self.processor_config, start, bucket_ms=self.config.merge_bucket_ms
                )
                log.info("partition %d: no snapshot, starting at %s", p, _show(task.offsets))
            for tp in tps:
                tp.offset = task.offsets[self._by_name[tp.topic]]
            self.tasks[p] = task
        consumer.assign(partitions)
        self._paused.clear()
        self.metrics.partitions.set(len(self.tasks))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = sorted({tp.partition for tp in partitions})
        tasks = [self.tasks[p] for p in revoked if p in self.tasks]
        if tasks:
            try:
                self.checkpoint(tasks, sync=True, force=True)
            except Exception:  # the next owner replays from the previous snapshot: still exact
                log.exception("checkpoint of revoked partitions %s failed", revoked)
        for p in revoked:
            self.tasks.pop(p, None)
        consumer.unassign()
        self._paused.clear()
        self.metrics.partitions.set(len(self.tasks))
        log.info("partitions %s revoked", revoked)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        lost = sorted({tp.partition for tp in partitions})
        self._abandon_checkpoint()
        for p in lost:
            self.tasks.pop(p, None)
        consumer.unassign()
        self._paused.clear()
        self.metrics.partitions.set(len(self.tasks))
        log.warning("partitions %s lost (session timed out): dropped without checkpoint", lost)

    def _low_watermark(self, topic: str, partition: int) -> int:
        from confluent_kafka import TopicPartition

        low, _high = read_watermarks(
            self._state_reader, TopicPartition(topic, partition), self.config.flush_timeout
        )
        return low

    def _load_snapshots(self, partitions: list[int]) -> dict[int, bytes]:
        """The last snapshot of each partition in the state topic (compacted: one key each)."""
        from confluent_kafka import TopicPartition

        reader = self._state_reader
        timeout = self.config.flush_timeout
        wanted: dict[int, int] = {}
        for p in partitions:
            low, high = read_watermarks(reader, TopicPartition(self.names.state, p), timeout)
            if high > low:
                wanted[p] = high
        if not wanted:
            return {}
        # The last message is the newest snapshot; scan back a little in case the tail holds
        # transaction markers or another key.
        reader.assign(
            [TopicPartition(self.names.state, p, max(0, h - 16)) for p, h in wanted.items()]
        )
        found: dict[int, bytes] = {}
        done: set[int] = set()
        deadline = time.monotonic() + timeout
        try:
            while len(done) < len(wanted) and time.monotonic() < deadline:
                for msg in reader.consume(64, timeout=0.5):
                    if msg.error() is not None:
                        continue
                    p = msg.partition()
                    if msg.key() == str(p).encode() and msg.value():
                        found[p] = msg.value()
                    if msg.offset() + 1 >= wanted[p]:
                        done.add(p)
        finally:
            reader.unassign()
        if len(done) < len(wanted):
            raise WorkerError(
                f"could not read the state topic {self.names.state!r} within {timeout:.0f}s"
            )
        return found

    # -- processing -----------------------------------------------------------------------

    def _step(self) -> int:
        """One batch: consume, merge, process, store, produce. Returns records processed.

        The cyclic garbage collector is paused for the step: a step allocates hundreds of
        thousands of (acyclic) objects, decoded records and rows, freed by reference
        counting, while the processors' state keeps the heap large, so automatic runs
        would walk that whole heap many times per step. It runs at most once afterwards.
        """
        with gc_paused():
            return self._step_batch()

    def _step_batch(self) -> int:
        self._raise_write_failure()
        consumer = self._consumer
        messages = consumer.consume(self.config.batch_size, timeout=self.config.poll_timeout)
        started = time.perf_counter()
        from confluent_kafka import Message

        if any(map(Message.error, messages)):
            self._queue_one_by_one(messages)  # (raises a fatal error once the rest is queued)
        else:
            self._queue_runs(messages)
        released = self._release()
        self._backpressure()
        if not released:
            return 0
        inputs: dict[Topic, list[list[dict[str, Any]] | PredictionColumns]] = defaultdict(list)
        produced: list[Produced] = []
        n = 0
        for task, entries in released:
            n += self._process(task, entries, inputs, produced)
        self._write(inputs, produced)
        self._produce(produced)
        self.metrics.count_events(n)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return n

    def _queue_runs(self, messages: list[Any]) -> None:
        """Queue fetched records (no error among them) a run at a time.

        ``consume`` returns each partition's records in runs (a fetch response's batch of
        one topic-partition), offsets increasing along a run. So the lookups, the
        fetched-before check and the decoding of the non-prediction records happen per
        run, and a run's fields are read with ``map`` over the messages, not in a Python
        loop per record; what is queued, and in which order, is what
        :meth:`_queue_one_by_one` queues. Predictions are queued undecoded (decoded when
        processed, a run at a time, into columns when the run is of the common shape:
        PartitionTask.process); the other records decoded in one call per run.
        """
        from confluent_kafka import Message

        tasks, routes = self.tasks, self._routes
        names = zip(map(Message.topic, messages), map(Message.partition, messages), strict=True)
        keyed = zip(names, messages, strict=True)
        for (name, partition), group in itertools.groupby(keyed, key=_FIRST):
            task = tasks.get(partition)
            route = routes.get(name)
            if task is None or route is None:
                continue
            topic, rank, schema_name = route
            run = list(map(_SECOND, group))
            offsets = cast(list[int], list(map(Message.offset, run)))
            fetched = task.fetched[topic]
            if offsets[0] < fetched:  # fetched before (a rewind): ignored, not decoded again
                keep = []
                for k, offset in enumerate(offsets):  # (as _queue_one_by_one checks them)
                    if offset >= fetched:
                        keep.append(k)
                        fetched = offset + 1
                run = [run[k] for k in keep]
                offsets = [offsets[k] for k in keep]
                if not run:
                    continue
            task.fetched[topic] = offsets[-1] + 1  # (offsets increase along a partition)
            times = list(map(_BROKER_TIME, map(Message.timestamp, run)))
            payloads = list(map(Message.value, run))
            keys = map(Message.key, run)
            queue = task.queues[topic]
            if topic is Topic.PREDICTIONS:
                queue.extend(
                    zip(times, repeat(rank), offsets, repeat(None), repeat(None), payloads, keys)
                )
                continue
            decoded = self.codec.decode_many_as(schema_name, payloads)
            queue.extend(
                (ts, rank, offset, None, result, payload, key)
                if isinstance(result, DecodeError)
                else (ts, rank, offset, result, None, payload, key)
                for ts, offset, result, payload, key in zip(
                    times, offsets, decoded, payloads, keys, strict=True
                )
            )

    def _queue_one_by_one(self, messages: list[Any]) -> None:
        """Queue fetched records one message at a time (a batch holding an error event).

        Errors are logged and skipped, except a fatal one: the records fetched before it
        are queued, then it is raised as :class:`ConsumerFailed`.
        """
        from confluent_kafka import KafkaError

        tasks = self.tasks
        routes = self._routes
        # schema -> [(queue, broker time, rank, offset, payload, key)], decoded per schema
        others: dict[str, list[tuple[deque[Entry], int, int, int, Any, Any]]] = {}
        failed: ConsumerFailed | None = None
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                # A fatal client error reaches consume() as an event with code _FATAL whose
                # own fatal() flag may be False (seen: a fenced static member). Raised once
                # the records fetched before it are queued.
                if error.fatal() or error.code() == KafkaError._FATAL:
                    failed = ConsumerFailed(f"Kafka consumer failed: {error.str()}")
                    break
                log.warning("consumer: %s", error.str())
                continue
            task = tasks.get(msg.partition())
            route = routes.get(msg.topic())
            if task is None or route is None:
                continue
            topic, rank, schema_name = route
            offset = msg.offset()
            fetched = task.fetched
            if offset < fetched[topic]:
                continue
            fetched[topic] = offset + 1
            if topic is Topic.PREDICTIONS:
                task.queues[topic].append(
                    (msg.timestamp()[1], rank, offset, None, None, msg.value(), msg.key())
                )
            else:
                others.setdefault(schema_name, []).append(
                    (task.queues[topic], msg.timestamp()[1], rank, offset, msg.value(), msg.key())
                )
        for schema_name, items in others.items():
            decoded = self.codec.decode_many_as(schema_name, [item[4] for item in items])
            for (queue, ts, rank, offset, payload, key), result in zip(items, decoded, strict=True):
                if isinstance(result, DecodeError):
                    queue.append((ts, rank, offset, None, result, payload, key))
                else:
                    queue.append((ts, rank, offset, result, None, payload, key))
        if failed is not None:
            raise failed

    def _backpressure(self) -> None:
        """Pause partitions whose records pile up waiting for another topic; resume later."""
        from confluent_kafka import TopicPartition

        high = self.config.max_queued
        pause: list[Any] = []
        resume: list[Any] = []
        for task in self.tasks.values():
            for topic, queue in task.queues.items():
                key = (self.names.name(topic), task.partition)
                if len(queue) >= high and key not in self._paused:
                    self._paused.add(key)
                    pause.append(TopicPartition(*key))
                elif len(queue) < high // 2 and key in self._paused:
                    self._paused.discard(key)
                    resume.append(TopicPartition(*key))
        if pause:
            self._consumer.pause(pause)
        if resume:
            self._consumer.resume(resume)

    def _release(self) -> list[tuple[PartitionTask, list[tuple[Topic, Entry]]]]:
        from confluent_kafka import KafkaException, TopicPartition

        slack = self.config.order_slack_ms
        out: list[tuple[PartitionTask, list[tuple[Topic, Entry]]]] = []
        for task in self.tasks.values():
            entries = task.release(slack)
            if task.blocked:
                now = int(time.time() * 1000)
                asked = False
                for topic, waiting_ts in task.blocked.items():
                    if now - slack <= waiting_ts:
                        continue  # no watermark read now could vouch for that record yet
                    tp = TopicPartition(self.names.name(topic), task.partition)
                    _low, cached = self._consumer.get_watermark_offsets(tp, cached=True)
                    if cached > task.fetched[topic]:
                        continue  # records are on their way: wait for them, ask nobody
                    try:
                        # The idle reader answers in a round trip; the group consumer would
                        # wait for its long-poll fetch to return first (~fetch.wait.max.ms).
                        _low, high = self._state_reader.get_watermark_offsets(tp, timeout=5.0)
                    except KafkaException as exc:  # broker away: wait for data instead
                        log.debug("watermark of %s/%d: %s", topic, task.partition, exc)
                        continue
                    task.watermarks[topic] = (now, int(high))
                    asked = True
                if asked:
                    entries.extend(task.release(slack))
            if entries:
                out.append((task, entries))
        return out

    def _process(
        self,
        task: PartitionTask,
        entries: list[tuple[Topic, Entry]],
        inputs: dict[Topic, list[list[dict[str, Any]] | PredictionColumns]],
        produced: list[Produced],
    ) -> int:
        """Feed released entries through the task's processors (see PartitionTask.process)."""
        for topic, n in task.process(entries, inputs, produced, self.codec).items():
            self.metrics.events.labels(topic=topic.value).inc(n)
        return len(entries)

    def _write(
        self,
        inputs: Mapping[Topic, list[list[dict[str, Any]] | PredictionColumns]],
        produced: list[Produced],
    ) -> None:
        """Queue the step's inputs and outputs for the store (in the calling thread when the
        writer is not running)."""
        writes = store_writes(inputs, produced)
        if self._writer is None:
            for topic, records in writes:
                self.store.write(topic, records)
            return
        self._writer.put(writes)

    def _produce(self, produced: list[Produced]) -> None:
        producer = self._producer
        for topic, value, key, headers in encoded_outputs(self.codec, self.metrics, produced):
            kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": self._delivered}
            if headers:
                kwargs["headers"] = headers
            name = self.names.name(topic)
            while True:
                try:
                    producer.produce(name, **kwargs)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.1)
            self._unacked[self._epoch] += 1
            self.metrics.outputs.labels(topic=topic.value).inc()
        producer.poll(0)

    def _on_delivery(self, epoch: int, error: Any, msg: Any) -> None:
        # (called from poll and flush, in the processing thread)
        left = self._unacked[epoch] - 1
        if left > 0:
            self._unacked[epoch] = left
        else:
            del self._unacked[epoch]
        if error is not None:
            self._delivery_errors.append(f"{msg.topic()}: {error.str()}")

    # -- checkpoints ----------------------------------------------------------------------

    def checkpoint(
        self,
        tasks: Iterable[PartitionTask] | None = None,
        *,
        sync: bool = False,
        force: bool = False,
    ) -> bool:
        """Flush outputs, write each task's snapshot and offsets, then commit the offsets.

        Returns False (and changes nothing) when Kafka did not acknowledge in time; the
        previous checkpoint stays the one a restart resumes from.

        Raises
        ------
        WorkerError
            Outputs could not be delivered (after the producer's own retries): going on
            would skip them for good.
        """
        self._last_checkpoint = started = time.monotonic()
        try:
            return self._checkpoint(tasks, sync=sync, force=force)
        finally:
            self._checkpoint_seconds = time.monotonic() - started

    def _checkpoint(
        self, tasks: Iterable[PartitionTask] | None, *, sync: bool, force: bool
    ) -> bool:
        if self._broken:
            return False
        self._abandon_checkpoint()  # this one is newer
        if self._writer is not None:
            self._writer.join()  # a snapshot covers stored output only
            if self._writer.failure is not None:
                return False  # the processing loop rewinds to the previous snapshots instead
        chosen = [t for t in (self.tasks.values() if tasks is None else tasks) if t.dirty or force]
        self._update_lag()
        if not chosen:
            return True
        producer = self._producer
        timeout = self.config.flush_timeout
        if producer.flush(timeout) > 0:
            log.warning("outputs not acknowledged within %.0fs; checkpoint postponed", timeout)
            return False
        self._raise_delivery_errors()
        snapshots = _Checkpoint(
            [(t, t.snapshot(), dict(t.offsets)) for t in chosen], self._epoch, time.monotonic()
        )
        self._send_snapshots(snapshots)
        if producer.flush(timeout) > 0 or snapshots.errors:
            log.warning(
                "snapshots not acknowledged (%s); checkpoint postponed", snapshots.errors[:1]
            )
            return False
        for task in chosen:
            task.dirty = False
        self._finish_checkpoint(snapshots.tasks, sync=sync)
        return True

    def _raise_delivery_errors(self) -> None:
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise WorkerError(
                f"{len(errors)} output records could not be delivered (first: {errors[0]}); "
                "the last checkpoint is kept, restart the worker once Kafka accepts them"
            )

    def _begin_checkpoint(self) -> None:
        """The periodic checkpoint, in the background (see :class:`_Checkpoint`): serialise
        the dirty tasks' snapshots now, send them once what came before is stored and
        acknowledged (:meth:`_advance_checkpoint`, called after each step)."""
        writer = self._writer
        if writer is None:
            self.checkpoint()
            return
        self._last_checkpoint = started = time.monotonic()
        try:
            if self._broken or writer.failure is not None:
                return  # the processing loop rewinds to the previous snapshots instead
            self._update_lag()
            chosen = [t for t in self.tasks.values() if t.dirty]
            if not chosen:
                return
            pending = _Checkpoint(
                [(t, t.snapshot(), dict(t.offsets)) for t in chosen], self._epoch, started
            )
            for task in chosen:
                task.dirty = False  # (set again by the next records it processes)
            self._epoch += 1
            self._delivered = functools.partial(self._on_delivery, self._epoch)
            writer.put([], pending.stored.set)  # a barrier: set once the writes before are stored
            self._pending_checkpoint = pending
        finally:
            self._checkpoint_seconds = time.monotonic() - started

    def _advance_checkpoint(self) -> None:
        """Move the background checkpoint on, without waiting: produce its snapshots once
        the store and the outputs before them are done; commit once they are acknowledged."""
        pending = self._pending_checkpoint
        if pending is None:
            return
        producer = self._producer
        producer.poll(0)  # delivery reports
        timeout = self.config.flush_timeout
        late = time.monotonic() - pending.started > timeout
        if not pending.produced:
            if not pending.stored.is_set():
                return  # (a failed write drops the barrier: the loop rewinds and abandons this)
            if any(epoch <= pending.epoch for epoch in self._unacked):
                if late:
                    log.warning(
                        "outputs not acknowledged within %.0fs; checkpoint postponed", timeout
                    )
                    self._abandon_checkpoint()
                return
            self._raise_delivery_errors()
            self._send_snapshots(pending)
            pending.produced = True
            producer.poll(0)
        if pending.answered < len(pending.tasks):
            if late:
                log.warning(
                    "snapshots not acknowledged within %.0fs; checkpoint postponed", timeout
                )
                self._abandon_checkpoint()
            return
        self._pending_checkpoint = None
        if pending.errors:
            log.warning("snapshots not acknowledged (%s); checkpoint postponed", pending.errors[:1])
            for task, _data, _offsets in pending.tasks:
                task.dirty = True
            return
        current = [
            entry for entry in pending.tasks if self.tasks.get(entry[0].partition) is entry[0]
        ]
        self._finish_checkpoint(current, sync=False)

    def _send_snapshots(self, checkpoint: _Checkpoint) -> None:
        """Produce a checkpoint's snapshots to the state topic (keyed and partitioned by
        their partition); their acks are counted in ``checkpoint``."""
        on_delivery = functools.partial(self._on_checkpoint_delivery, checkpoint)
        for task, data, _offsets in checkpoint.tasks:
            p = task.partition
            self._producer.produce(
                self.names.state, data, str(p).encode(), p, on_delivery=on_delivery
            )

    def _on_checkpoint_delivery(self, pending: _Checkpoint, error: Any, msg: Any) -> None:
        pending.answered += 1
        if error is not None:
            pending.errors.append(f"{msg.topic()}[{msg.partition()}]: {error.str()}")

    def _abandon_checkpoint(self) -> None:
        """Drop the background checkpoint (a rewind, a rebalance or a newer checkpoint came):
        its tasks are dirty again. Snapshots it may have produced already cover stored,
        acknowledged work only, so one of them landing in the state topic is still right."""
        pending, self._pending_checkpoint = self._pending_checkpoint, None
        if pending is not None:
            for task, _data, _offsets in pending.tasks:
                task.dirty = True

    def _finish_checkpoint(
        self, done: list[tuple[PartitionTask, bytes, dict[Topic, int]]], *, sync: bool
    ) -> None:
        """Snapshots acknowledged: remember them (for a rewind) and commit their offsets."""
        from confluent_kafka import KafkaException, TopicPartition

        offsets: list[Any] = []
        for task, data, covered in done:
            task.last_snapshot = data
            offsets.extend(
                TopicPartition(self.names.name(t), task.partition, o) for t, o in covered.items()
            )
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=not sync)
            except KafkaException as exc:  # the state topic is the truth; offsets show lag
                log.info("offset commit failed (snapshots are written): %s", exc)
        self.metrics.checkpoints.inc()

    def _update_lag(self) -> None:
        from confluent_kafka import TopicPartition

        for task in self.tasks.values():
            for topic, offset in task.offsets.items():
                name = self.names.name(topic)
                try:
                    _low, high = self._consumer.get_watermark_offsets(
                        TopicPartition(name, task.partition), cached=True
                    )
                except Exception:  # no fetch yet for this partition
                    continue
                if high >= 0:
                    self.metrics.lag.labels(topic=topic.value, partition=str(task.partition)).set(
                        max(0, high - offset)
                    )

    def _rewind(self) -> None:
        """Back to each task's last snapshot (a failed store write left state ahead of it)."""
        from confluent_kafka import KafkaException, TopicPartition

        self._abandon_checkpoint()  # (its barrier was dropped with the failed write)
        positions: list[Any] = []
        for p, task in list(self.tasks.items()):
            if task.last_snapshot is not None:
                fresh = PartitionTask.from_snapshot(
                    p, self.processor_config, task.last_snapshot, bucket_ms=task.bucket_ms
                )
            else:
                fresh = PartitionTask(
                    p, self.processor_config, task.start_offsets, bucket_ms=task.bucket_ms
                )
            self.tasks[p] = fresh
            positions.extend(
                TopicPartition(self.names.name(t), p, o) for t, o in fresh.offsets.items()
            )
        if not positions:
            return
        try:
            for tp in positions:
                self._consumer.seek(tp)  # librdkafka drops what it had prefetched
        except KafkaException:  # not fetching yet: assigning with offsets does the same
            self._consumer.assign(positions)


def store_writes(
    inputs: Mapping[Topic, list[list[dict[str, Any]] | PredictionColumns]],
    produced: list[Produced],
) -> list[tuple[Topic, list[dict[str, Any]] | PredictionColumns]]:
    """What a step stores: its input records (``inputs``: groups per topic, in order), then
    its outputs per topic (retrain requests have no table: the training worker consumes
    them)."""
    writes: list[tuple[Topic, list[dict[str, Any]] | PredictionColumns]] = [
        (topic, join_groups(groups)) for topic, groups in inputs.items() if groups
    ]
    outputs: dict[Topic, list[dict[str, Any]]] = defaultdict(list)
    for (topic, record), _key, _headers in produced:
        if topic != Topic.RETRAIN_REQUESTS:
            outputs[topic].append(record)
    writes.extend(outputs.items())
    return writes


def _dead_headers(record: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    values = (
        record.get("reason", ""),
        record.get("error_type", ""),
        record.get("source_topic", ""),
        "" if record.get("partition") is None else str(record["partition"]),
        "" if record.get("offset") is None else str(record["offset"]),
    )
    return [
        (name, str(v).encode("utf-8")) for name, v in zip(DEAD_LETTER_HEADERS, values, strict=True)
    ]


def _show(offsets: Mapping[Topic, int]) -> str:
    return ", ".join(f"{t.value.rsplit('.', 1)[-1]}={o}" for t, o in offsets.items())
