"""The distributed runtime as a faust-streaming app: ``driftline worker --engine faust``.

Status: EXPERIMENTAL (``docs/distributed.md``, "The faust engine"). The default engine,
``driftline worker`` (``streams.kafka_runtime``), stays the production worker: this one is
about 20x slower, restarts take 10-20 s, and it works around faust bugs listed below.

What it reuses: ``PartitionTask`` (processors, duplicate filter, deterministic merge and
snapshots), ``AvroCodec``, ``dead_letter_record``, ``TopicNames`` and ``ClickHouseStore``.

How it keeps the guarantees on top of faust:

- **one agent per input topic** (predictions, labels, alert acks, model events), each
  batching with ``stream.take_events(n, within=...)`` (``--batching take``: the batch
  comes with its events, so partition, offset and broker timestamp are known per record)
  or taking events one by one into the merge queue, the processors still running on
  batches (``--batching events``);
- **determinism**: an agent only *pushes* decoded records into the ``PartitionTask`` of
  their partition; records are released by the task's (time bucket, rank, offset) merge —
  the same code as the confluent-kafka worker — when their place is settled. A timer asks
  for high watermarks of idle topics (order slack) so that the tail gets released too;
- **state in a faust table** (changelog topic ``<group>-tasks-changelog``, compacted,
  co-partitioned with the inputs): one entry per partition, key ``b"<p>"``, value the
  ``PartitionTask`` snapshot (processors + duplicate filter + the offsets they cover). It
  is *not* written through ``table[key] = value`` — that needs a current event
  (``Collection.partition_for_key`` raises ``TypeError: Cannot modify table key from
  outside of stream iteration`` in a ``take`` batch or a timer) and would write the whole
  snapshot per batch. The checkpoint sends it with an explicit partition on the
  partition's transactional producer, and updates ``table.data`` locally;
- **exactly-once** (``processing_guarantee="exactly_once"``): faust keeps one transactional
  producer per input partition (``transactional.id = <group>-<topic group>-<p>``). The
  input topics are declared with ``acks=False``, so faust's own commit never commits them;
  the checkpoint does, for each dirty partition, in ONE transaction of that partition's
  producer: [outputs produced since the last checkpoint] + the snapshot on the changelog +
  ``send_offsets_to_transaction`` (the offsets the snapshot covers) + commit. Outputs go
  through the same producer (explicit ``transactional_id``), so after a SIGKILL the open
  transaction is aborted: read_committed consumers see every output exactly once, the
  table recovers (read_committed) the snapshot matching the committed offsets, and the
  replay recomputes the rest. ClickHouse writes are idempotent rewrites (ReplacingMergeTree)
  as in the confluent-kafka worker.

Where faust itself gets in the way (worked around here, each seen on the test broker):

- under ``exactly_once`` the table recovery may read nothing after a restart (it takes
  the changelog's end from ``last_stable_offset``, None before a first fetch): the task
  reads its snapshot from the changelog itself (:meth:`FaustDriver._load_snapshots`);
- a record can be missing from the stream right after a restart (the first record after
  the first ``take_events`` batch, e.g. ``got offset 628, expected 627``); the task
  detects it (the snapshot's offsets) and seeks back, but faust's consumer then drops the
  re-fetched offsets (below its ``_read_offset``) and the partition may stall;
- recovery of a transactional changelog waits ~10 s ("Aborted tx until highwater").

Run: ``python -m streams.faust_app --bootstrap HOST:PORT --data-dir DIR [--topic-prefix P]``
(``--help``). SIGTERM: final checkpoint, leave the group, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from schemas.codec import AvroCodec, DecodeError
from schemas.topics import INPUT_TOPICS, Topic
from streams.kafka_runtime import (
    _RANK,
    PartitionTask,
    Produced,
    WorkerMetrics,
    encoded_outputs,
    store_writes,
)
from streams.kafka_topics import TopicNames, ensure_topics
from streams.store import ClickHouseStore, StoreWriter
from streams.topology import ProcessorConfig

log = logging.getLogger("driftline.faust")

TABLE: Final = "tasks"
_MIB: Final = 1024 * 1024


class FaustDriver:
    """The faust app and the glue between its agents and the ``PartitionTask`` s."""

    def __init__(
        self,
        bootstrap: str,
        names: TopicNames,
        processors: ProcessorConfig,
        store: ClickHouseStore,
        *,
        partitions: int = 4,
        batch_size: int = 2_000,
        within: float = 0.05,
        checkpoint_interval: float = 1.0,
        order_slack_ms: int = 500,
        merge_bucket_ms: int = 100,
        data_dir: Path | None = None,
        pause_per_batch: float = 0.0,
        batching: str = "take",
        store_linger: float = 0.2,
        store_batch_rows: int = 20_000,
        worker_id: str | None = None,
    ) -> None:
        import faust

        self.bootstrap = bootstrap
        self.names = names
        self.processor_config = processors
        self.store = store
        self.codec = AvroCodec()
        self.batch_size = batch_size
        self.within = within
        self.checkpoint_interval = checkpoint_interval
        self.slack = order_slack_ms
        self.bucket_ms = merge_bucket_ms
        self.data_dir = data_dir
        self.pause_per_batch = pause_per_batch  # tests: slow down to crash mid-stream
        self.batching = batching  # "take": stream.take_events; "events": per event + timer
        self.tasks: dict[int, PartitionTask] = {}
        self.pending: dict[int, int] = defaultdict(int)  # outputs sent since the checkpoint
        self.by_name = {names.name(t): t for t in INPUT_TOPICS}
        self.lock = asyncio.Lock()  # processing + sending vs checkpoint
        self.watermark_reader: Any = None
        self.counters: dict[str, int] = defaultdict(int)
        # the default engine's Prometheus metrics (events, dead letters, outputs, lag, ...)
        self.metrics = WorkerMetrics()
        self.seeking: dict[tuple[Topic, int], tuple[int, float]] = {}
        self._progress_at = 0.0
        # ClickHouse inserts from a thread of their own, coalesced (as in the default
        # engine): an insert costs 2-8 ms whatever its size, and take_events batches are
        # small. A checkpoint commits offsets only once every write before it is stored.
        self.writer = StoreWriter(
            store, max_pending=8, min_rows=store_batch_rows, linger=store_linger
        )
        self.exit: Any = os._exit  # on a failed store write (replaced in tests)

        app = faust.App(
            names.group_id,
            broker=f"kafka://{bootstrap}",
            processing_guarantee="exactly_once",
            topic_partitions=partitions,
            topic_replication_factor=1,
            store="memory://",
            web_enabled=False,
            stream_wait_empty=False,
            # the confluent-kafka worker's 10 s: a SIGKILLed member keeps its partitions that long
            broker_session_timeout=10.0,
            broker_heartbeat_interval=1.0,
            # static membership (the default engine's --worker-id): a restarted worker
            # rejoins as itself and gets its partitions back without that wait
            consumer_group_instance_id=worker_id,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=checkpoint_interval,
            producer_max_request_size=64 * _MIB + 4096,
            consumer_max_fetch_size=64 * _MIB,
            stream_buffer_maxsize=4 * batch_size,
            table_standby_replicas=0,
            datadir=str(data_dir / "faust") if data_dir else None,
            topic_allow_declare=True,
        )
        self.app = app
        self.table = app.Table(
            TABLE,
            default=None,
            key_type=bytes,  # -> the "raw" serializer (Collection._serializer_from_type)
            value_type=bytes,
            partitions=partitions,
            extra_topic_configs={"max.message.bytes": str(64 * _MIB)},
        )
        for topic in INPUT_TOPICS:
            channel = app.topic(
                names.name(topic),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                acks=False,  # faust must never commit these: the checkpoint does
                internal=False,
            )
            app.agent(channel, name=f"driftline-{topic.value}")(self._agent(topic))
        app.timer(max(0.1, order_slack_ms / 1000 / 2))(self._release_timer)
        app.timer(checkpoint_interval)(self._checkpoint_timer)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    # -- agents ---------------------------------------------------------------------------

    def _agent(self, topic: Topic) -> Any:
        rank = _RANK[topic]
        schema = topic.schema_name
        driver = self

        async def take(event: Any) -> int | None:
            """Queue one event in its task's merge; its partition, or None if not taken."""
            msg = event.message
            task = driver._task(msg.partition)
            offset = msg.offset
            if offset < task.fetched[topic]:
                return None  # before the snapshot: already in its state
            if offset > task.fetched[topic]:
                # faust handed over a later record than the next one: a record was
                # skipped (seen after a restart, see _gap). Do not take it; go back.
                await driver._gap(topic, msg.partition, offset, task.fetched[topic])
                return None
            payload = msg.value
            try:
                record, failure = driver.codec.decode_as(schema, payload), None
            except DecodeError as exc:
                record, failure = None, exc
            ts = round(msg.timestamp * 1000)  # faust: seconds (ms / 1000.0)
            task.queues[topic].append((ts, rank, offset, record, failure, payload, msg.key))
            task.fetched[topic] = offset + 1
            return int(msg.partition)

        async def agent_take(stream: Any) -> None:
            # stream.take_events: faust's batching (the design)
            async for events in stream.take_events(driver.batch_size, within=driver.within):
                touched: set[int] = set()
                for event in events:
                    p = await take(event)
                    if p is not None:
                        touched.add(p)
                if touched:
                    await driver._release(touched, ask=False)
                if driver.pause_per_batch:
                    await asyncio.sleep(driver.pause_per_batch)

        async def agent_events(stream: Any) -> None:
            # one event at a time into the merge queue (cheap); the processors still run
            # on batches: every batch_size events here, and from the release timer
            touched: set[int] = set()
            n = 0
            async for event in stream.events():
                p = await take(event)
                if p is None:
                    continue
                touched.add(p)
                n += 1
                if n >= driver.batch_size:
                    await driver._release(touched, ask=False)
                    touched, n = set(), 0
                    if driver.pause_per_batch:
                        await asyncio.sleep(driver.pause_per_batch)

        agent = agent_take if driver.batching == "take" else agent_events
        agent.__name__ = f"agent_{topic.name.lower()}"
        return agent

    async def _gap(self, topic: Topic, p: int, got: int, expected: int) -> None:
        """Seek back to the first record not taken yet.

        Why records go missing: ``Stream._py_aiter`` (faust/streams.py) silently skips an
        event whose ``message.generation_id != app.consumer_generation_id`` or that arrives
        while ``flow_control`` is inactive (during a rebalance/recovery), counting on
        at-least-once redelivery after the next restart; the records after it are still
        delivered. Seen right after a restart: ``got offset 922, expected 921``.
        A seek is repeated by the release timer until the record arrives, because faust's
        consumer drops re-fetched offsets below its ``_read_offset`` when records fetched
        before the seek were still in flight (``DROPPED MESSAGE ROFF``).
        """
        key = (topic, p)
        if key in self.seeking and self.seeking[key][0] == expected:
            return  # already asked; records still in flight from before the seek
        self.counters["gaps"] += 1
        log.warning(
            "gap on %s/%d: got offset %d, expected %d; seeking back to %d",
            topic.value,
            p,
            got,
            expected,
            expected,
        )
        await self._seek(topic, p, expected)

    async def _seek(self, topic: Topic, p: int, offset: int) -> None:
        from faust.types import TP

        self.seeking[(topic, p)] = (offset, time.monotonic())
        await self.app.consumer.seek(TP(self.names.name(topic), p), offset)

    async def _retry_seeks(self) -> None:
        for (topic, p), (offset, when) in list(self.seeking.items()):
            task = self.tasks.get(p)
            if task is None or task.fetched[topic] > offset:
                del self.seeking[(topic, p)]  # the missing record arrived
            elif time.monotonic() - when > 1.0:
                log.info("re-seeking %s/%d to %d", topic.value, p, offset)
                self.counters["reseeks"] += 1
                await self._seek(topic, p, offset)

    def _task(self, p: int) -> PartitionTask:
        task = self.tasks.get(p)
        if task is not None:
            return task
        # Every assigned partition without a task is set up now, its snapshot read with the
        # others' in one pass over the changelog: a consumer per partition cost ~1 s each,
        # so a restart with 12 partitions spent 12 s here before its first record.
        assigned = {
            tp.partition for tp in self.app.consumer.assignment() if tp.topic in self.by_name
        }
        todo = sorted(({p} | assigned) - set(self.tasks))
        # faust's recovery may have read nothing (see _load_snapshots): read them ourselves
        snapshots = self._load_snapshots(todo)
        for q in todo:
            self.tasks[q] = self._new_task(q, snapshots.get(q))
        return self.tasks[p]

    def _new_task(self, p: int, direct: bytes | None) -> PartitionTask:
        """Partition ``p``'s task from its last committed snapshot ``direct`` (read from the
        changelog), or at its inputs' start without one."""
        data = self.table.data.get(str(p).encode())
        if direct != (bytes(data) if data else None):
            self.counters["table_recovery_wrong"] += 1
            log.warning(
                "partition %d: faust's recovered table %s the changelog's last committed "
                "snapshot; using the latter",
                p,
                "lacks" if not data else "differs from",
            )
        if direct:
            task = PartitionTask.from_snapshot(
                p, self.processor_config, direct, bucket_ms=self.bucket_ms
            )
            log.info("partition %d: restored snapshot at %s", p, _show(task.offsets))
        else:
            start = {t: self._read_watermarks(self.names.name(t), p)[0] for t in INPUT_TOPICS}
            task = PartitionTask(p, self.processor_config, start, bucket_ms=self.bucket_ms)
            log.info("partition %d: no snapshot, starting at %s", p, _show(task.offsets))
        return task

    def _load_snapshots(self, partitions: list[int]) -> dict[int, bytes]:
        """The last committed value of key ``p`` in partition ``p`` of the changelog, for
        each of ``partitions`` that has one, read in one pass by one consumer.

        Needed because faust's table recovery under ``exactly_once`` takes the changelog's
        end from ``AIOKafkaConsumer.last_stable_offset(tp)``
        (faust/transport/drivers/aiokafka.py ``Consumer._highwaters``), which is None until
        the partition has been fetched once; recovery then treats the changelog as empty
        ("Highwater ... -1", "Recovery complete" at once) and the table comes up empty.
        Seen on a restart after SIGKILL.
        """
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        name = self.table.changelog_topic.get_topic_name()
        found: dict[int, bytes] = {}
        if not partitions:
            return found
        reader = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"{self.names.group_id}-faust-snapshot-reader",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "fetch.max.bytes": 128 * _MIB,
                "max.partition.fetch.bytes": 128 * _MIB,
            }
        )
        keys = {str(p).encode(): p for p in partitions}
        at_end: set[int] = set()
        try:
            reader.assign([TopicPartition(name, p, 0) for p in partitions])
            deadline = time.monotonic() + 30
            while len(at_end) < len(partitions):
                if time.monotonic() > deadline:
                    missing = sorted(set(partitions) - at_end)
                    raise RuntimeError(f"could not read {name}{missing} to its end")
                for msg in reader.consume(256, timeout=0.5):
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            at_end.add(msg.partition())
                        continue
                    p = keys.get(msg.key())
                    if p == msg.partition() and msg.value():
                        found[p] = msg.value()
        finally:
            reader.close()
        return found

    # -- merge, processing, outputs -------------------------------------------------------

    async def _release(self, partitions: set[int] | None, *, ask: bool) -> int:
        async with self.lock:
            n = 0
            for p in sorted(self.tasks if partitions is None else partitions):
                task = self.tasks.get(p)
                if task is None:
                    continue
                entries = task.release(self.slack)
                if ask and task.blocked and await self._ask_watermarks(task):
                    entries.extend(task.release(self.slack))
                if entries:
                    n += await self._process(task, entries)
            if n and (
                time.monotonic() - self._progress_at > 0.1
                or not any(q for t in self.tasks.values() for q in t.queues.values())
            ):
                self._write_progress()
            return n

    async def _ask_watermarks(self, task: PartitionTask) -> bool:
        """Fresh high watermarks of the topics that hold the merge back (order slack)."""
        from faust.types import TP

        now = int(time.time() * 1000)
        asked = False
        for topic, waiting_ts in list(task.blocked.items()):
            if now - self.slack <= waiting_ts:
                continue
            name = self.names.name(topic)
            cached = self.app.consumer.highwater(TP(name, task.partition))
            if cached is not None and cached > task.fetched[topic]:
                continue  # records are on their way
            high = await asyncio.get_running_loop().run_in_executor(
                None, self._read_high, name, task.partition
            )
            if high is None:
                continue
            task.watermarks[topic] = (now, high)
            asked = True
        return asked

    def _read_high(self, name: str, partition: int) -> int | None:
        from confluent_kafka import KafkaException

        try:
            return self._read_watermarks(name, partition)[1]
        except KafkaException:
            return None

    def _read_watermarks(self, name: str, partition: int) -> tuple[int, int]:
        from confluent_kafka import Consumer, TopicPartition

        if self.watermark_reader is None:
            self.watermark_reader = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": f"{self.names.group_id}-faust-watermarks",
                    "enable.auto.commit": False,
                }
            )
        low, high = self.watermark_reader.get_watermark_offsets(
            TopicPartition(name, partition), timeout=5.0
        )
        return int(low), int(high)

    async def _process(self, task: PartitionTask, entries: list[tuple[Topic, Any]]) -> int:
        """Released entries, as runs of one topic, through the processors; store; send."""
        started = time.perf_counter()
        p = task.partition
        inputs: dict[Topic, list[Any]] = defaultdict(list)  # groups of records per topic
        produced: list[Produced] = []
        for topic, n in task.process(entries, inputs, produced).items():
            self.metrics.events.labels(topic=topic.value).inc(n)
        self.metrics.count_events(len(entries))
        # store (idempotent rewrites, from the writer thread), then the outputs on this
        # partition's transaction; the batch's time is observed once it is stored
        self._raise_store_failure()
        self.writer.put(
            store_writes(inputs, produced),
            lambda: self.metrics.batch_seconds.observe(time.perf_counter() - started),
        )
        await self._send(p, produced)
        self.counters["events"] += len(entries)
        return len(entries)

    def _tid(self, p: int) -> str:
        group = self.app.assignor.group_for_topic(self.names.name(Topic.PREDICTIONS))
        return f"{self.app.conf.id}-{group}-{p}"

    def _transactional(self, tid: str) -> Any:
        """faust's AIOKafkaProducer for ``tid`` (private: ``Producer._transaction_producers``)."""
        producer: Any = self.app.producer
        return producer._transaction_producers.get(tid)

    async def _send(self, p: int, produced: list[Produced]) -> None:
        if not produced:
            return
        tid = self._tid(p)
        producer = self._transactional(tid)
        if producer is None:
            raise RuntimeError(f"no transactional producer {tid!r} (partition revoked?)")
        for topic, value, key, headers in encoded_outputs(self.codec, self.metrics, produced):
            # aiokafka's producer (Java murmur2 partitioner): keyed by model name
            await producer.send(self.names.name(topic), value, key=key, headers=headers)
            self.pending[p] += 1
            self.metrics.outputs.labels(topic=topic.value).inc()

    # -- checkpoints ----------------------------------------------------------------------

    async def _release_timer(self) -> None:
        if self.seeking:
            await self._retry_seeks()
        await self._release(None, ask=True)

    async def _checkpoint_timer(self) -> None:
        await self.checkpoint()

    def _raise_store_failure(self) -> None:
        """A failed store write ends the process (:attr:`exit`): a restart resumes from the
        last commit, whose writes were all stored. This engine has no rewind, and an
        exception would not do: faust restarts a crashed agent, whose tasks have moved past
        the lost writes, and a later checkpoint would commit past them."""
        failure = self.writer.failure
        if failure is not None:
            log.critical("store write failed, exiting (a restart resumes): %r", failure)
            self.exit(1)
            raise RuntimeError(f"the store writer failed: {failure!r}") from failure

    async def _stored(self) -> None:
        """Wait until every write queued so far is stored (no lingering meanwhile)."""

        def join() -> None:
            with self.writer.hurried():
                self.writer.join()

        await asyncio.get_running_loop().run_in_executor(None, join)
        self._raise_store_failure()

    async def checkpoint(self, partitions: set[int] | None = None, *, end: bool = False) -> int:
        """Per dirty partition, one transaction: snapshot on the changelog + offsets + commit,
        once every store write of what the snapshots cover is stored."""
        from aiokafka import TopicPartition

        done = 0
        async with self.lock:
            dirty = [
                (p, task)
                for p in sorted(self.tasks if partitions is None else partitions)
                if (task := self.tasks.get(p)) is not None and (task.dirty or self.pending.get(p))
            ]
            if dirty:
                await self._stored()
            producer_service: Any = self.app.producer  # faust's aiokafka Producer
            for p, task in dirty:
                tid = self._tid(p)
                producer = producer_service._transaction_producers.get(tid)
                if producer is None:
                    log.warning("checkpoint of %d skipped: no producer %s", p, tid)
                    continue
                data = task.snapshot()
                key = str(p).encode()
                async with producer_service._trn_locks[tid]:
                    await producer.send(
                        self.table.changelog_topic.get_topic_name(), data, key=key, partition=p
                    )
                    offsets = {
                        TopicPartition(self.names.name(t), p): o for t, o in task.offsets.items()
                    }
                    await producer.send_offsets_to_transaction(offsets, self.app.conf.id)
                    await producer.commit_transaction()
                    if not end:
                        await producer.begin_transaction()
                self.table.data[key] = data
                task.last_snapshot = data
                task.dirty = False
                self.pending[p] = 0
                done += 1
        if done:
            log.info(
                "checkpoint: %d partitions, processed %d",
                done,
                sum(sum(t.offsets.values()) for t in self.tasks.values()),
            )
            self.counters["checkpoints"] += done
            self.metrics.checkpoints.inc(done)
            self._write_progress()
        self._update_lag()
        return done

    def _update_lag(self) -> None:
        """Assigned partitions, and the consumer lag per input partition that has a task
        (high watermark - next offset to process)."""
        try:
            assigned = {tp.partition for tp in self.app.consumer.assignment()}
        except Exception:  # not started or rebalancing: what the tasks cover
            assigned = set(self.tasks)
        self.metrics.partitions.set(len(assigned))
        for p, task in list(self.tasks.items()):
            for topic, offset in task.offsets.items():
                name = self.names.name(topic)
                try:
                    _low, high = self._read_watermarks(name, p)
                except Exception as exc:  # broker away: keep the last values, ask no more now
                    log.debug("watermark of %s/%d: %s", name, p, exc)
                    return
                self.metrics.lag.labels(topic=topic.value, partition=str(p)).set(
                    max(high - offset, 0)
                )

    def _write_progress(self) -> None:
        self._progress_at = time.monotonic()
        if self.data_dir is None:
            return
        state = {
            "processed": {
                f"{t.value}/{p}": o
                for p, task in self.tasks.items()
                for t, o in task.offsets.items()
            },
            "counters": dict(self.counters),
        }
        tmp = self.data_dir / "progress.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.data_dir / "progress.json")

    async def _on_revoked(self, app: Any, revoked: Any, **_kw: Any) -> None:
        partitions = {tp.partition for tp in revoked if tp.topic in self.by_name}
        if not partitions:
            return
        try:
            await self.checkpoint(partitions)
        except Exception:  # the next owner replays from the previous snapshot: still exact
            log.exception("checkpoint of revoked partitions %s failed", sorted(partitions))
        for p in partitions:
            self.tasks.pop(p, None)
        log.info("partitions %s revoked", sorted(partitions))

    async def _on_assigned(self, app: Any, assigned: Any, **_kw: Any) -> None:
        log.info("assigned: %s", sorted({(tp.topic, tp.partition) for tp in assigned}))

    async def stop_checkpoint(self) -> None:
        await self._release(None, ask=True)
        await self.checkpoint()


def _show(offsets: Mapping[Topic, int]) -> str:
    return ", ".join(f"{t.value.rsplit('.', 1)[-1]}={o}" for t, o in offsets.items())


def main(argv: list[str] | None = None) -> int:
    from driftline.errors import member_id, positive_int

    parser = argparse.ArgumentParser(
        prog="python -m streams.faust_app", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--group", default="driftline-worker")
    parser.add_argument(
        "--worker-id",
        type=member_id,
        help="stable id of this worker (static group membership: a restart gets its "
        "partitions back at once); default: none",
    )
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=positive_int, default=2_000)
    parser.add_argument("--within", type=float, default=0.05)
    parser.add_argument("--checkpoint-interval", type=float, default=1.0)
    parser.add_argument("--order-slack-ms", type=int, default=500)
    parser.add_argument("--merge-bucket-ms", type=positive_int, default=100)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--metrics-port", type=int, help="Prometheus endpoint port (0: any; default: none)"
    )
    parser.add_argument("--metrics-host", default="0.0.0.0", help="Prometheus endpoint address")
    parser.add_argument("--pause-per-batch", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--batching",
        choices=["take", "events"],
        default="take",
        help="take: stream.take_events (loses a record after a restart, see _gap); "
        "events: per event into the merge queue, processors on batches",
    )
    args = parser.parse_args(argv)

    import faust

    from driftline.settings import load_settings
    from streams.embedded import processor_config

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args.data_dir.mkdir(parents=True, exist_ok=True)
    settings = load_settings(data_dir=args.data_dir)
    names = TopicNames(prefix=args.topic_prefix, group=args.group)
    ensure_topics(args.bootstrap, names, args.partitions, 1)
    store = ClickHouseStore.connect(
        settings.clickhouse_dsn,
        database=settings.clickhouse_database,
        raw_ttl_days=settings.raw_ttl_days,
    )
    driver = FaustDriver(
        args.bootstrap,
        names,
        processor_config(settings),
        store,
        partitions=args.partitions,
        batch_size=args.batch_size,
        within=args.within,
        checkpoint_interval=args.checkpoint_interval,
        order_slack_ms=args.order_slack_ms,
        merge_bucket_ms=args.merge_bucket_ms,
        data_dir=args.data_dir,
        pause_per_batch=args.pause_per_batch,
        batching=args.batching,
        store_linger=settings.store_linger_seconds,
        store_batch_rows=settings.store_batch_rows,
        worker_id=args.worker_id,
    )
    app = driver.app
    if args.metrics_port is not None:
        port = driver.metrics.serve(args.metrics_host, args.metrics_port)
        log.info("metrics on http://%s:%d/metrics", args.metrics_host, port)

    original_on_stop = app.on_stop

    async def on_stop() -> None:  # final checkpoint while the transactional producers live
        try:
            await driver.stop_checkpoint()
        except Exception:
            log.exception("final checkpoint failed")
        await original_on_stop()

    app.on_stop = on_stop  # type: ignore[method-assign]
    worker = faust.Worker(app, loglevel=args.log_level.upper(), override_logging=False)
    print(
        f"driftline faust worker: group {names.group_id} on {args.bootstrap}",
        file=sys.stderr,
        flush=True,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        driver.writer.stop()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
