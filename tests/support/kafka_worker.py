"""`driftline worker` as a subprocess, and the Kafka plumbing its tests share.

chDB allows one engine path per process: each worker subprocess gets its own store
(``chdb://<its data dir>/clickhouse``), read back after it exits through
``tests/support/chdb_dump.py`` run as another subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from schemas.codec import AvroCodec
from schemas.topics import Topic
from streams.kafka_topics import TopicNames

REPO = Path(__file__).resolve().parents[2]
COMPARED = ["drift_metrics", "performance_metrics", "drift_detections", "alerts"]
"""The aggregate tables a run is judged by."""

_RUNNING: list[subprocess.Popen[bytes]] = []


def kill_leftovers() -> int:
    """SIGKILL worker subprocesses a failed test left running; returns how many."""
    killed = 0
    while _RUNNING:
        proc = _RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
            killed += 1
    return killed


class WorkerProcess:
    """One ``driftline worker`` subprocess with its own data dir and chDB store."""

    def __init__(
        self,
        bootstrap: str,
        names: TopicNames,
        data_dir: Path,
        *,
        worker_id: str | None = None,
        metrics_port: int | None = None,
        batch_size: int = 2_000,
        checkpoint_interval: float = 0.5,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.names = names
        self.data_dir = data_dir
        self.worker_id = worker_id
        self.metrics_port = metrics_port
        self.batch_size = batch_size
        self.checkpoint_interval = checkpoint_interval
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "worker.log"
        self.starts = 0

    @property
    def chdb_path(self) -> Path:
        return self.data_dir / "clickhouse"

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "driftline.cli",
            "worker",
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
            "--checkpoint-interval",
            str(self.checkpoint_interval),
            "--order-slack-ms",
            "100",
            "--metrics-host",
            "127.0.0.1",
        ]
        if self.metrics_port is None:
            args.append("--no-metrics")
        else:
            args += ["--metrics-port", str(self.metrics_port)]
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

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (checkpoint and leave); returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"worker did not stop within {timeout}s:\n{self.log_tail()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: no checkpoint, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def dump(self, tables: list[str] | None = None) -> dict[str, list[str]]:
        """The worker's store (it must have exited), read by a helper subprocess."""
        assert not self.alive(), "stop the worker first: chDB allows one process per path"
        out = subprocess.run(
            [
                sys.executable,
                str(REPO / "tests" / "support" / "chdb_dump.py"),
                str(self.chdb_path),
                "driftline",
                *(tables or COMPARED),
            ],
            cwd=REPO,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr.decode(errors="replace")[-3000:]
        return dict(json.loads(out.stdout))


def produce(
    bootstrap: str,
    names: TopicNames,
    topic: Topic,
    records: Iterable[dict[str, Any]],
    *,
    codec: AvroCodec | None = None,
) -> int:
    """Avro-encode ``records`` and produce them keyed by model name; returns the count."""
    codec = codec or AvroCodec()
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "message.max.bytes": 4 * 1024 * 1024,
        }
    )
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    n = 0
    for record in records:
        value = codec.encode(topic.schema_name, record)
        producer.produce(
            names.name(topic), key=record["model_name"].encode(), value=value, on_delivery=delivered
        )
        producer.poll(0)
        n += 1
    assert producer.flush(60) == 0, "records still in flight after 60 s"
    assert not errors, errors[:3]
    return n


def produce_raw(bootstrap: str, topic: str, items: Iterable[tuple[bytes, bytes | None]]) -> None:
    """Produce (key, value) pairs as they are (garbage included)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "message.max.bytes": 4 * 1024 * 1024,
        }
    )
    for key, value in items:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(60) == 0


_COORDINATOR_ERRORS = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
)


def processed(bootstrap: str, names: TopicNames) -> tuple[int, int]:
    """(committed, end) offsets summed over every input partition of the group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": names.group_id,
            "enable.auto.commit": False,
            # Not read_committed (librdkafka's default): its offset fetch asks for stable
            # offsets, which the broker refuses while a killed transactional worker's (the
            # faust engine's) offsets sit in an open transaction — until that is aborted.
            # This way the committed offsets are read as they are, the pending ones not.
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        committed = end = 0
        tps: list[TopicPartition] = []
        meta = consumer.list_topics(timeout=10).topics
        for name in names.inputs:
            for p in meta[name].partitions:
                tps.append(TopicPartition(name, p))
        for tp in tps:
            end += consumer.get_watermark_offsets(tp, timeout=10)[1]
        deadline = time.monotonic() + 30
        while True:
            try:
                offsets = consumer.committed(tps, timeout=10)
                break
            except KafkaException as exc:
                # the group coordinator moving or still loading (right after a broker start
                # or restart): retriable, asked again
                if exc.args[0].code() not in _COORDINATOR_ERRORS or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for tp in offsets:
            committed += max(tp.offset, 0)
        return committed, end
    finally:
        consumer.close()


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    workers: Iterable[WorkerProcess] = (),
    interval: float = 0.25,
) -> None:
    """Poll ``condition``; fail early (with the log) if a worker died."""
    workers = list(workers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for w in workers:
            if not w.alive():
                raise AssertionError(
                    f"worker exited ({w.proc and w.proc.returncode}) while waiting for {what}:\n{w.log_tail()}"
                )
        time.sleep(interval)
    tails = "\n\n".join(w.log_tail() for w in workers)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}")


def wait_processed(
    bootstrap: str, names: TopicNames, workers: Iterable[WorkerProcess], timeout: float = 90.0
) -> None:
    """Until the group's committed offsets reach the end of every input partition."""

    def done() -> bool:
        committed, end = processed(bootstrap, names)
        return end > 0 and committed >= end

    wait_until(done, timeout, "the worker to process every input", workers)
