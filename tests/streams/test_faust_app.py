"""The experimental faust-streaming engine (streams/faust_app.py, ``driftline worker --engine
faust``) on a real Kafka 4.x broker.

Same yardstick as tests/streams/test_kafka_runtime.py: the embedded runtime's aggregates
on the same input. The faust worker runs as a subprocess (``python -m streams.faust_app``)
with its own chDB store. Besides the aggregates, these tests check what the
confluent-kafka worker does not promise: with ``processing_guarantee="exactly_once"`` the
output topics, read ``read_committed``, hold every output exactly once, even after SIGKILLs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from support.kafka_worker import (
    _RUNNING,
    COMPARED,
    REPO,
    WorkerProcess,
    kill_leftovers,
    processed,
    produce,
    wait_processed,
    wait_until,
)
from support.serve import free_port
from test_kafka_runtime import (  # noqa: F401 - fixtures and data of the worker tests
    check_poison_messages,
    data,
    fresh_names,
    metrics,
    produce_all,
    read_topic,
    reference,
)

from schemas.codec import AvroCodec
from schemas.topics import Topic
from streams.kafka_topics import TopicNames, ensure_topics

OUTPUTS = {
    "drift_metrics": Topic.DRIFT_METRICS,
    "performance_metrics": Topic.PERFORMANCE_METRICS,
    "drift_detections": Topic.DRIFT_DETECTIONS,
    "alerts": Topic.ALERTS,
}


class FaustProcess(WorkerProcess):
    """``python -m streams.faust_app`` instead of ``driftline worker``."""

    def __init__(self, *args: Any, within: float = 0.05, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.within = within
        self.pause = 0.0  # seconds each agent sleeps after a batch (to crash mid-stream)
        self.batching = "take"

    def start(self) -> FaustProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "streams.faust_app",
            "--bootstrap",
            self.bootstrap,
            "--topic-prefix",
            self.names.prefix,
            "--group",
            self.names.group,
            "--data-dir",
            str(self.data_dir),
            "--batch-size",
            str(self.batch_size),
            "--within",
            str(self.within),
            "--checkpoint-interval",
            str(self.checkpoint_interval),
            "--order-slack-ms",
            "100",
            "--pause-per-batch",
            str(self.pause),
            "--batching",
            self.batching,
        ]
        if self.metrics_port is not None:
            args += ["--metrics-host", "127.0.0.1", "--metrics-port", str(self.metrics_port)]
        if self.worker_id:
            args += ["--worker-id", self.worker_id]
        env = {
            **os.environ,
            "DRIFTLINE_WINDOW_SECONDS": "3600",
            "DRIFTLINE_ALLOWED_LATENESS_SECONDS": "0",
            **self.extra_env,
        }
        env.pop("DRIFTLINE_CONFIG", None)
        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        log.write(f"\n--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=log)
        _RUNNING.append(self.proc)
        log.close()
        return self

    def progress(self) -> dict[str, Any]:
        path = self.data_dir / "progress.json"
        return json.loads(path.read_text()) if path.exists() else {}


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    yield
    kill_leftovers()


def committed_of(bootstrap: str, names: TopicNames, topic: Topic) -> int:
    """The group's committed offsets of one input topic, summed over its partitions."""
    consumer = Consumer(
        # (read_uncommitted: committed offsets as they are, see kafka_worker.processed)
        {
            "bootstrap.servers": bootstrap,
            "group.id": names.group_id,
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        name = names.name(topic)
        partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
        tps = consumer.committed([TopicPartition(name, p) for p in partitions], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        consumer.close()


def output_counts(bootstrap: str, names: TopicNames) -> dict[str, int]:
    """Messages per output topic as a read_committed consumer sees them (ids counted once
    would hide duplicates: count messages)."""
    return {
        table: len(read_topic(bootstrap, names.name(topic))) for table, topic in OUTPUTS.items()
    }


def assert_exactly_once_outputs(
    bootstrap: str, names: TopicNames, expected: dict[str, list[str]]
) -> None:
    counts = output_counts(bootstrap, names)
    assert counts == {table: len(expected[table]) for table in OUTPUTS}, counts
    codec = AvroCodec()
    for msg in read_topic(bootstrap, names.name(Topic.DRIFT_METRICS))[:20]:
        record = codec.decode_as("drift_metric", msg.value())
        assert msg.key() == record["model_name"].encode()


@pytest.mark.kafka
@pytest.mark.parametrize("batching", ["take", "events"])
def test_faust_app_matches_the_embedded_runtime(
    batching: str,
    kafka_bootstrap: str,
    tmp_path: Path,
    data: dict[str, list[dict]],  # noqa: F811
    reference: dict[str, list[str]],  # noqa: F811
) -> None:
    names = fresh_names()
    ensure_topics(kafka_bootstrap, names, 4, 1)
    port = free_port()
    worker = FaustProcess(kafka_bootstrap, names, tmp_path / "w", metrics_port=port)
    worker.batching = batching
    worker.start()
    produce_all(kafka_bootstrap, names, data)
    wait_processed(kafka_bootstrap, names, [worker], timeout=120)
    n_inputs = sum(len(v) for v in data.values())
    assert worker.progress()["counters"]["events"] == n_inputs
    # the default engine's Prometheus metrics: events per topic, partitions, lag 0 at the end
    # (the lag gauge is set just after a checkpoint's commit, which wait_processed sees)
    wait_until(
        lambda: all(
            v == 0
            for k, v in metrics(port).items()
            if k.startswith("driftline_worker_consumer_lag")
        ),
        10,
        "the lag gauge after the last checkpoint",
        [worker],
    )
    seen = metrics(port)
    assert sum(v for k, v in seen.items() if k.startswith("driftline_worker_events_total")) == (
        n_inputs
    )
    assert seen["driftline_worker_assigned_partitions"] == 4
    lags = [v for k, v in seen.items() if k.startswith("driftline_worker_consumer_lag")]
    assert lags and all(v == 0 for v in lags)
    assert worker.stop() == 0, worker.log_tail()

    got = worker.dump([*COMPARED, "dead_letters"])
    assert not got.pop("dead_letters")
    assert got == reference
    assert_exactly_once_outputs(kafka_bootstrap, names, reference)


@pytest.mark.kafka
@pytest.mark.parametrize(("batching", "worker_id"), [("take", "faust-1"), ("events", None)])
def test_faust_sigkill_mid_stream_then_restart_equals_an_uninterrupted_run(
    batching: str,
    worker_id: str | None,
    kafka_bootstrap: str,
    tmp_path: Path,
    data: dict[str, list[dict]],  # noqa: F811
    reference: dict[str, list[str]],  # noqa: F811
) -> None:
    """Killed twice (in the predictions, then in the labels), restarted each time: the store
    and the outputs equal an uninterrupted run's. With a ``--worker-id`` (static membership)
    the restarts rejoin as the same member; without one, a new member once the killed one's
    session has timed out."""
    names = fresh_names()
    ensure_topics(kafka_bootstrap, names, 4, 1)
    worker = FaustProcess(
        kafka_bootstrap,
        names,
        tmp_path / "w",
        batch_size=150,
        checkpoint_interval=0.3,
        worker_id=worker_id,
    )
    worker.pause = 0.02
    worker.batching = batching
    worker.start()
    produce(kafka_bootstrap, names, Topic.MODEL_EVENTS, data["events"])
    produce(kafka_bootstrap, names, Topic.PREDICTIONS, data["predictions"])
    total = len(data["events"]) + len(data["predictions"])
    wait_until(
        lambda: processed(kafka_bootstrap, names)[0] >= total // 4,
        90,
        "a first checkpoint",
        [worker],
        0.05,
    )
    worker.kill()
    committed, end = processed(kafka_bootstrap, names)
    assert committed < end, "the worker finished before it was killed: nothing was tested"
    # Second crash, in the labels (label join and ADWIN state live): the labels arrive while
    # the worker runs, after the predictions (broker append order), so they are merged and
    # committed a few at a time, and the kill lands in the middle of them.
    labels = data["labels"]
    third = len(labels) // 3
    produce(kafka_bootstrap, names, Topic.LABELS, labels[:third])
    worker.batch_size = 50
    worker.pause = 0.1
    worker.start()
    wait_until(
        lambda: committed_of(kafka_bootstrap, names, Topic.LABELS) >= third,
        120,
        "the first third of the labels",
        [worker],
        0.05,
    )
    produce(kafka_bootstrap, names, Topic.LABELS, labels[third:])
    wait_until(
        lambda: committed_of(kafka_bootstrap, names, Topic.LABELS) > third,
        60,
        "more labels",
        [worker],
        0.02,
    )
    worker.kill()
    committed, end = processed(kafka_bootstrap, names)
    assert committed < end, "the worker finished before the second kill: nothing was tested"
    worker.batch_size = 2_000
    worker.pause = 0.0
    worker.start()
    wait_processed(kafka_bootstrap, names, [worker], timeout=120)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})  # (kept while it answers)
    group = admin.describe_consumer_groups([names.group_id])[names.group_id].result(10)
    assert [m.group_instance_id for m in group.members] == [worker_id]
    assert worker.stop() == 0, worker.log_tail()
    log = worker.log_path.read_text(errors="replace")
    assert "restored snapshot" in log

    got = worker.dump([*COMPARED, "dead_letters", "predictions", "labels"])
    assert not got.pop("dead_letters"), "a replayed record was taken for a duplicate"
    assert len(got.pop("predictions")) == len(data["predictions"])
    assert len(got.pop("labels")) == len(data["labels"])
    assert got == reference
    # outputs produced after the last commit were aborted with their transaction
    assert_exactly_once_outputs(kafka_bootstrap, names, reference)


@pytest.mark.kafka
def test_faust_sigterm_checkpoints_and_a_restart_resumes(
    kafka_bootstrap: str,
    tmp_path: Path,
    data: dict[str, list[dict]],  # noqa: F811
    reference: dict[str, list[str]],  # noqa: F811
) -> None:
    """Graceful stop half-way (final checkpoint), then the rest with a new process."""
    names = fresh_names()
    ensure_topics(kafka_bootstrap, names, 4, 1)
    worker = FaustProcess(kafka_bootstrap, names, tmp_path / "w").start()
    half = len(data["predictions"]) // 2
    produce(kafka_bootstrap, names, Topic.MODEL_EVENTS, data["events"])
    produce(kafka_bootstrap, names, Topic.PREDICTIONS, data["predictions"][:half])
    wait_processed(kafka_bootstrap, names, [worker], timeout=120)
    assert worker.stop() == 0, worker.log_tail()
    produce(kafka_bootstrap, names, Topic.PREDICTIONS, data["predictions"][half:])
    produce(kafka_bootstrap, names, Topic.LABELS, data["labels"])
    worker.start()
    wait_processed(kafka_bootstrap, names, [worker], timeout=120)
    time.sleep(0.5)
    assert worker.stop() == 0, worker.log_tail()
    assert worker.dump() == reference
    assert_exactly_once_outputs(kafka_bootstrap, names, reference)


@pytest.mark.kafka
def test_faust_poison_messages_go_to_the_dead_letter_topic(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The default engine's poison test, on the faust engine (dead letters inside its
    transactions, read read_committed)."""
    check_poison_messages(kafka_bootstrap, tmp_path, FaustProcess, partitions=4)


def test_faust_engine_exits_on_a_failed_store_write_and_commits_nothing_past_it(
    tmp_path: Path, chdb_client: Any, ch_database: str
) -> None:
    """The engine's store writes go through a writer thread; one that fails (fault injected
    around the real chDB store) ends the process (``FaustDriver.exit``, recorded here
    instead) and a checkpoint raises before any transaction, so no offset is committed past
    the lost write: a restart replays it. Also checked when the next batch is processed.
    No broker needed: the faust app is built, not started."""
    import asyncio
    from types import SimpleNamespace

    from driftline.settings import load_settings
    from streams.embedded import processor_config
    from streams.faust_app import FaustDriver
    from streams.store import ClickHouseStore, StoreError

    class Fails(ClickHouseStore):
        def write(self, topic, records):  # type: ignore[no-untyped-def, override]
            raise StoreError("ClickHouse went away (injected)")

    store = Fails(chdb_client, database=ch_database)
    store.migrate()
    settings = load_settings(data_dir=tmp_path)
    driver = FaustDriver(
        "127.0.0.1:1", TopicNames(prefix="t."), processor_config(settings), store, store_linger=0
    )
    exits: list[int] = []
    driver.exit = exits.append
    try:
        asyncio.run(driver.checkpoint())  # nothing dirty, nothing queued: nothing to do
        assert exits == []
        driver.writer.put([(Topic.LABELS, [{"prediction_id": "p1"}])])
        driver.tasks[0] = SimpleNamespace(dirty=True)  # type: ignore[assignment]
        with pytest.raises(RuntimeError, match=r"store writer failed.*went away"):
            asyncio.run(driver.checkpoint())
        assert exits == [1]
        with pytest.raises(RuntimeError, match="store writer failed"):
            asyncio.run(driver._process(SimpleNamespace(partition=0, process=lambda *a: {}), []))  # type: ignore[arg-type]
        assert exits == [1, 1]
    finally:
        driver.writer.stop()
