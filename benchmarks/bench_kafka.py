"""Benchmark: the distributed runtime (`driftline worker`) on a real Apache Kafka broker.

20-feature prediction events (plus labels for half of them) for a few models, Avro
single-object encoded, keyed by model name, produced with an idempotent producer
(``acks=all``, the SDK's settings). Everything is measured in one run, against references
measured in the same run on the same topic, and printed — never a pass/fail:

- ``produce``: the producer's rate, from the first ``produce()`` to the last acknowledgement;
- ``raw consume`` (the ceiling on this machine): a confluent-kafka consumer that only
  polls (``consume(num_messages=...)``) the predictions topic from its beginning to its end;
  and the same loop over the predictions and the labels topics together (``CEILING 2``,
  the ceiling of the worker's events/s: its input is both);
- ``consume + decode``: the same loop plus ``AvroCodec.decode`` of every message;
- ``worker``: ONE ``driftline worker`` subprocess (its own data dir and chDB store; the
  default engine, or ``--engine faust`` for the experimental faust-streaming one) started
  on the already-filled topics; timed from the moment it owns its partitions until its
  Prometheus endpoint shows every input record processed (and the step that processed the
  last ones finished: ClickHouse write included). Rate = predictions / that time (the
  worker handles the labels in the same time too); and events / that time, events being
  predictions + labels, against ``CEILING 2`` (like for like: every record the worker
  consumes counted on both sides);
- ``latency``: with the worker caught up and running, predictions (and labels for half
  of them) are produced at a steady rate with event time = wall clock; see the printed
  notes for exactly what is measured;
- the worker's CPU time per prediction while catching up (all its threads, from
  ``/proc``): steadier than its rate on a busy machine, what to compare between versions;
- the worker's peak resident memory (``VmHWM`` of the subprocess).

Starts its own single-node Kafka (``tests/support/kafka_broker.py``, jars cached in
``.cache/``; ``make kafka-jars`` fetches them) in a temp folder, or uses the cluster in
``KAFKA_BOOTSTRAP_SERVERS`` (topics get a unique prefix and are deleted at the end).

Run: ``.venv/bin/python benchmarks/bench_kafka.py [--events N] [--rate R --duration S]``.
"""

from __future__ import annotations

import argparse
import bisect
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from proc_cpu import proc_cpu_seconds

from detectors.profile import ReferenceProfile
from schemas.codec import AvroCodec
from schemas.topics import Topic
from streams.kafka_runtime import WorkerConfig
from streams.kafka_topics import TopicNames, ensure_topics

REPO = Path(__file__).resolve().parents[1]
N_FEATURES = 20
HOUR = 3_600_000
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
MIB = 1024 * 1024

# The SDK's producer (driftline.publisher.KafkaPublisher).
PRODUCER_CONFIG: dict[str, Any] = {
    "linger.ms": 20,
    "compression.type": "lz4",
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    "acks": "all",
}
# What the worker's consumer fetches with (streams/kafka_runtime.py), for a fair ceiling.
FETCH_CONFIG: dict[str, Any] = {
    "max.partition.fetch.bytes": 4 * MIB,
    "fetch.max.bytes": 64 * MIB,
    # librdkafka's default (1 s) postpones a partition's next fetch once 64 MB are queued:
    # a bare loop over 200k 20-feature predictions (~76 MB) then read 150-160k msg/s
    # instead of 430-450k.
    "fetch.queue.backoff.ms": 10,
}


# --------------------------------------------------------------------------- helpers


def broker_module() -> ModuleType:
    """``tests/support/kafka_broker.py`` (tests/ is no package: load it by path)."""
    path = REPO / "tests" / "support" / "kafka_broker.py"
    spec = importlib.util.spec_from_file_location("driftline_bench_kafka_broker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses/weakref need it registered
    spec.loader.exec_module(module)
    return module


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Java's default partitioner (librdkafka's ``murmur2_random``) picks."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(key)) & mask
    end = len(key) - len(key) % 4
    for i in range(0, end, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = len(key) % 4
    if rest == 3:
        h ^= key[end + 2] << 16
    if rest >= 2:
        h ^= key[end + 1] << 8
    if rest >= 1:
        h ^= key[end]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def model_names(n: int, partitions: int) -> list[str]:
    """``n`` model names spread over as many distinct partitions as possible."""
    names: list[str] = []
    used: set[int] = set()
    i = 0
    while len(names) < n:
        name = f"model-{i}"
        p = murmur2_partition(name.encode(), partitions)
        if p not in used or len(used) >= partitions:
            names.append(name)
            used.add(p)
        i += 1
    return names


def profile(seed: int = 1) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    ref = {name: rng.normal(size=20_000) for name in FEATURES}
    pred = np.where(ref["f0"] > 0, "yes", "no").astype(object)
    return ReferenceProfile.from_columns(ref, prediction=pred)


def registration_messages(
    models: list[str], t0: int, codec: AvroCodec, names: TopicNames
) -> list[tuple[str, bytes, bytes]]:
    """Encoded (topic, key, value) of each model's registration with its profile."""
    return [
        (names.name(Topic.MODEL_EVENTS), e["model_name"].encode(), codec.encode("model_event", e))
        for e in model_events(models, t0)
    ]


def model_events(models: list[str], t0: int) -> list[dict]:
    profile_json = profile().to_json()
    return [
        {
            "event_id": f"bench-{m}",
            "model_name": m,
            "model_version": "1",
            "event_type": "registered",
            "timestamp": t0,
            "reference_profile": profile_json,
        }
        for m in models
    ]


def make_messages(
    n: int, models: list[str], t0: int, span_ms: int, codec: AvroCodec, names: TopicNames
) -> tuple[list[tuple[str, bytes, bytes]], int, float]:
    """Encoded (topic, key, value) in send order: predictions over ``span_ms`` of event time,
    models round-robin, a label 10 min later for every other prediction of each model,
    interleaved by event time. Returns the messages, the label count and the encode rate."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(n, N_FEATURES))
    values[n // 2 :, :4] += 0.5  # drift in four features halfway
    noise = rng.normal(0, 0.5, n)
    pred_topic, label_topic = names.name(Topic.PREDICTIONS), names.name(Topic.LABELS)
    encode = codec.encode
    preds: list[tuple[int, bytes, bytes]] = []
    labels: list[tuple[int, bytes, bytes]] = []
    started = time.perf_counter()
    for i in range(n):
        model = models[i % len(models)]
        key = model.encode()
        ts = t0 + i * span_ms // n
        row = values[i].tolist()
        pid = f"p{i}"
        preds.append(
            (
                ts,
                key,
                encode(
                    "prediction",
                    {
                        "prediction_id": pid,
                        "model_name": model,
                        "model_version": "1",
                        "timestamp": ts,
                        "features": dict(zip(FEATURES, row, strict=True)),
                        "prediction": "yes" if row[0] > 0 else "no",
                    },
                ),
            )
        )
        if (i // len(models)) % 2 == 0:
            label_ts = ts + 600_000
            label = "yes" if row[0] + noise[i] > 0 else "no"
            record = {
                "prediction_id": pid,
                "model_name": model,
                "label": label,
                "timestamp": label_ts,
            }
            labels.append((label_ts, key, encode("label", record)))
    encode_rate = (len(preds) + len(labels)) / (time.perf_counter() - started)
    out: list[tuple[str, bytes, bytes]] = []
    j = 0
    for ts, key, value in preds:  # labels sent once event time reached them, as live
        while j < len(labels) and labels[j][0] <= ts:
            out.append((label_topic, labels[j][1], labels[j][2]))
            j += 1
        out.append((pred_topic, key, value))
    out.extend((label_topic, k, v) for _, k, v in labels[j:])
    return out, len(labels), encode_rate


def new_producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer

    # A registration carries the reference profile (over the 1 MiB default).
    return Producer(
        {"bootstrap.servers": bootstrap, "message.max.bytes": 33 * MIB, **PRODUCER_CONFIG}
    )


def produce_all(producer: Any, messages: list[tuple[str, bytes, bytes]]) -> list[str]:
    """Produce and wait for every acknowledgement; returns delivery errors."""
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for topic, key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120) > 0:
        errors.append("messages still in flight after 120 s")
    return errors


def produce_paced(
    bootstrap: str, messages: list[tuple[str, bytes, bytes]], rate: int, instances: int
) -> tuple[list[str], float]:
    """Produce ``messages`` in order at ``rate`` messages/s of wall-clock time from
    ``instances`` producers (round robin, each with the SDK's settings), as that many
    service instances publishing live would; (delivery errors, achieved rate)."""
    producers = [new_producer(bootstrap) for _ in range(instances)]
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    chunk = max(1, rate // 200)  # paced every 5 ms
    started = time.perf_counter()
    for lo in range(0, len(messages), chunk):
        wait = started + lo / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        for i in range(lo, min(lo + chunk, len(messages))):
            topic, key, value = messages[i]
            producer = producers[i % instances]
            while True:
                try:
                    producer.produce(topic, key=key, value=value, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.01)
        for producer in producers:
            producer.poll(0)
    achieved = len(messages) / (time.perf_counter() - started)
    for producer in producers:
        if producer.flush(120) > 0:
            errors.append("messages still in flight after 120 s")
    return errors, achieved


def consume_topic(bootstrap: str, topic: str | list[str], *, decode: bool) -> tuple[int, float]:
    """Read ``topic`` (or several topics, in one loop) from the beginning to its current
    end; (messages, seconds)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topics = [topic] if isinstance(topic, str) else list(topic)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            **FETCH_CONFIG,
        }
    )
    codec = AvroCodec() if decode else None
    try:
        owned = [
            TopicPartition(name, p)
            for name in topics
            for p in consumer.list_topics(name, timeout=30).topics[name].partitions
        ]
        marks = [consumer.get_watermark_offsets(tp, timeout=30) for tp in owned]
        total = sum(high - low for low, high in marks)
        n = 0
        started = time.perf_counter()
        consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in owned])
        deadline = started + 600
        while n < total:
            messages = consumer.consume(num_messages=5_000, timeout=1.0)
            if codec is not None:
                for msg in messages:
                    codec.decode(msg.value() or b"")
            n += len(messages)
            if time.perf_counter() > deadline:
                raise RuntimeError(f"could not read {', '.join(topics)} to the end within 600 s")
        seconds = time.perf_counter() - started
        return n, seconds
    finally:
        consumer.close()


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("driftline_worker_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def events_in(m: dict[str, float], topic: Topic) -> float:
    return m.get(f'driftline_worker_events_total{{topic="{topic.value}"}}', 0.0)


def total_lag(m: dict[str, float]) -> float | None:
    lags = [v for k, v in m.items() if k.startswith("driftline_worker_consumer_lag{")]
    return sum(lags) if lags else None


def dead_letters(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("driftline_worker_dead_letters_total"))


def proc_status(pid: int, field: str) -> float:
    """A ``/proc/<pid>/status`` memory field in MiB (NaN if unavailable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Worker:
    """One ``driftline worker`` subprocess with default settings and its own chDB store."""

    def __init__(self, bootstrap: str, names: TopicNames, data_dir: Path, args: Any) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "worker.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.cmd = [
            sys.executable,
            "-m",
            "driftline.cli",
            "worker",
            "--bootstrap",
            bootstrap,
            "--topic-prefix",
            names.prefix,
            "--group",
            names.group,
            "--data-dir",
            str(data_dir),
            *(["--worker-id", "bench-1"] if args.engine == "confluent" else ["--engine", "faust"]),
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            str(self.port),
            *(
                ["--batch-size", str(args.worker_batch_size)]
                if args.worker_batch_size is not None
                else []
            ),
            "--order-slack-ms",
            str(args.order_slack_ms),
        ]
        if args.checkpoint_interval is not None:
            self.cmd += ["--checkpoint-interval", str(args.checkpoint_interval)]
        self.cmd += ["--merge-bucket-ms", str(args.merge_bucket_ms)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Default settings: no DRIFTLINE_* from the caller's environment (config file, DSN, ...).
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> dict[str, float] | None:
        if not self.alive():
            raise RuntimeError(f"the worker exited ({self.proc_code()}):\n{self.log_tail()}")
        try:
            return scrape(self.port)
        except OSError:  # endpoint not up yet
            return None

    def proc_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (checkpoint and leave), SIGKILL after ``timeout``; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


_COUNT_SCRIPT = """
import json, sys
import clickhouse_connect
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
out = {}
for table in sys.argv[2:]:
    out[table] = client.query(f"SELECT count() FROM driftline.{table} FINAL").result_rows[0][0]
client.close()
print(json.dumps(out))
"""

STORE_TABLES = (
    "predictions",
    "labels",
    "drift_metrics",
    "performance_metrics",
    "drift_detections",
    "alerts",
    "dead_letters",
)


def store_counts(chdb_path: Path) -> dict[str, int]:
    """Row counts of the worker's store (it must have exited: one chDB process per path)."""
    out = subprocess.run(
        [sys.executable, "-c", _COUNT_SCRIPT, str(chdb_path), *STORE_TABLES],
        cwd=REPO,
        capture_output=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.decode(errors="replace")[-2000:])
    return dict(json.loads(out.stdout))


# --------------------------------------------------------------------------- phases


def wait_for(
    worker: Worker, condition: Any, timeout: float, what: str, interval: float
) -> tuple[float, dict[str, float]]:
    """Poll the worker's metrics until ``condition(metrics)``; (perf_counter time, metrics)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        m = worker.metrics()
        now = time.perf_counter()
        if m is not None and condition(m):
            return now, m
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}\n{worker.log_tail()}")


def catch_up(
    worker: Worker, partitions: int, expected: dict[Topic, int], timeout: float
) -> dict[str, float]:
    """Phase 1: time from 'owns its partitions' to 'every record processed and stored'."""
    spawned = time.perf_counter()
    worker.start()
    t_start, _ = wait_for(
        worker,
        lambda m: m.get("driftline_worker_assigned_partitions", 0) >= partitions,
        120,
        "the worker to own its partitions",
        0.02,
    )
    cpu_start = proc_cpu_seconds(worker.pid)

    def done(m: dict[str, float]) -> bool:
        if dead_letters(m):
            raise RuntimeError(
                f"{dead_letters(m):.0f} dead letters: the input is not what the benchmark "
                f"expects\n{worker.log_tail()}"
            )
        return all(events_in(m, t) >= n for t, n in expected.items())

    t_counted, m = wait_for(worker, done, timeout, "every input record processed", 0.05)
    # The events counter moves before the step writes to ClickHouse and produces its
    # outputs; the step's batch_seconds observation comes after both. If that observation
    # is still missing, wait for it (a step never takes seconds at these batch sizes).
    t_end = t_counted
    batches = m.get("driftline_worker_batch_seconds_count", 0.0)
    deadline = time.perf_counter() + 3.0
    while time.perf_counter() < deadline:
        m2 = worker.metrics() or {}
        if m2.get("driftline_worker_batch_seconds_count", 0.0) > batches:
            t_end = time.perf_counter()
            break
        time.sleep(0.02)
    cpu = proc_cpu_seconds(worker.pid) - cpu_start
    # Lag is refreshed at checkpoints: confirm it reads 0 (not part of the timing).
    _, m = wait_for(worker, lambda m: total_lag(m) == 0, 120, "consumer lag 0", 0.1)
    return {
        "startup": t_start - spawned,
        "seconds": t_end - t_start,
        "cpu": cpu,
        "batches": m.get("driftline_worker_batch_seconds_count", 0.0),
    }


def live_timed_backlog(
    bootstrap: str, tmp: Path, models: list[str], t0: int, args: Any
) -> dict[str, Any]:
    """Phase 3: catch up a backlog that was appended as live traffic is.

    The input topics are LogAppendTime: a record's Kafka time is when the broker appended
    its producer batch. Phase 1's backlog was produced in bulk, so hundreds of records
    share each millisecond, and the worker's merge (by Kafka time, then topic rank) hands
    the processors long runs of one topic. Live traffic from many service instances
    appends small batches, predictions and labels interleaved millisecond by millisecond,
    and a merge by the millisecond then gives short runs, each paying the processors'
    per-batch cost. Here ``--backlog-events`` predictions (and labels for half) are
    produced in real time at ``--backlog-rate`` events/s from ``--backlog-instances``
    producers with the SDK's settings, on topics of their own, with no worker running
    (a backlog, as after an outage); then two fresh workers catch it up in turn:
    ``--merge-bucket-ms 1`` (the merge by the millisecond: the baseline) and the
    configured bucket.
    """
    names = TopicNames(prefix=f"benchlive{uuid.uuid4().hex[:8]}.")
    ensure_topics(bootstrap, names, args.partitions, 1)
    codec = AvroCodec()
    n = args.backlog_events
    messages, n_labels, _ = make_messages(n, models, t0, 6 * HOUR, codec, names)
    registrations = registration_messages(models, t0, codec, names)
    producer = new_producer(bootstrap)
    errors = produce_all(producer, registrations)
    producer = None
    more, achieved = produce_paced(bootstrap, messages, args.backlog_rate, args.backlog_instances)
    if errors or more:
        raise RuntimeError(f"produce failed: {(errors + more)[:3]}")
    expected = {
        Topic.MODEL_EVENTS: len(registrations),
        Topic.PREDICTIONS: n,
        Topic.LABELS: n_labels,
    }
    # this backlog's own ceiling: many small producer batches read slower than bulk ones
    inputs = [names.name(Topic.PREDICTIONS), names.name(Topic.LABELS)]
    raw = []
    for _ in range(2):
        count, seconds = consume_topic(bootstrap, inputs, decode=False)
        if count != n + n_labels:
            raise RuntimeError(f"raw consume read {count} messages, expected {n + n_labels}")
        raw.append(count / seconds)
    out: dict[str, Any] = {
        "events": n,
        "labels": n_labels,
        "produced_rate": achieved,
        "ceiling": max(raw),
        "runs": {},
    }
    for label, bucket in (("by the ms", 1), ("bucketed", args.merge_bucket_ms)):
        run_args = argparse.Namespace(**{**vars(args), "merge_bucket_ms": bucket})
        group = TopicNames(prefix=names.prefix, group=f"bench-live-{bucket}")
        worker = Worker(bootstrap, group, tmp / f"live-{bucket}", run_args)
        try:
            phase = catch_up(worker, args.partitions, expected, max(600.0, n / 50))
        finally:
            worker.stop(30)
        out["runs"][label] = {"bucket": bucket, **phase}
    return out


def live_latency(
    worker: Worker,
    bootstrap: str,
    names: TopicNames,
    models: list[str],
    base: float,
    rate: int,
    duration: float,
    warmup: float,
    batches_per_second: int,
) -> dict[str, Any]:
    """Phase 2: steady production at ``rate``/s, event time = now; per-batch latency.

    The first ``warmup`` seconds are produced the same way but not measured: the first
    live event moves event time ~3 days ahead, which closes the catch-up's last windows
    (a one-off burst of aggregates), and the worker's steps settle to the live rate.
    """
    codec = AvroCodec()
    producer = new_producer(bootstrap)
    pred_topic, label_topic = names.name(Topic.PREDICTIONS), names.name(Topic.LABELS)
    per_batch = max(1, rate // batches_per_second)
    interval = per_batch / rate
    n_batches = max(2, int(duration * rate / per_batch))
    n_warm = int(warmup * rate / per_batch)
    rng = np.random.default_rng(7)
    samples: list[tuple[float, float]] = []  # (perf_counter when the scrape returned, count)
    stop = threading.Event()

    def scraper() -> None:
        while not stop.is_set():
            try:
                m = scrape(worker.port)
                samples.append((time.perf_counter(), events_in(m, Topic.PREDICTIONS)))
            except OSError:
                pass
            stop.wait(0.02)

    before: dict[str, float] = {}
    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    sent_at: list[float] = []
    targets: list[float] = []
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    sent = 0
    start = time.perf_counter()
    try:
        for k in range(n_warm + n_batches):
            wake = start + k * interval
            delay = wake - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if k == n_warm:
                before = worker.metrics() or {}  # step statistics of the measured part only
            now_ms = int(time.time() * 1000)
            values = rng.normal(size=(per_batch, N_FEATURES))
            for j in range(per_batch):
                model = models[j % len(models)]
                row = values[j].tolist()
                pid = f"live-{k}-{j}"
                value = codec.encode(
                    "prediction",
                    {
                        "prediction_id": pid,
                        "model_name": model,
                        "model_version": "1",
                        "timestamp": now_ms,
                        "features": dict(zip(FEATURES, row, strict=True)),
                        "prediction": "yes" if row[0] > 0 else "no",
                    },
                )
                producer.produce(pred_topic, key=model.encode(), value=value, on_delivery=delivered)
            sent_at.append(time.perf_counter())  # the whole batch is in the producer's hands
            sent += per_batch
            targets.append(base + sent)
            for j in range(0, per_batch, 2):  # labels for half of them, right away
                model = models[j % len(models)]
                label = {
                    "prediction_id": f"live-{k}-{j}",
                    "model_name": model,
                    "label": "yes" if values[j, 0] > 0 else "no",
                    "timestamp": now_ms,
                }
                producer.produce(
                    label_topic,
                    key=model.encode(),
                    value=codec.encode("label", label),
                    on_delivery=delivered,
                )
            producer.poll(0)
        # the rate actually kept between the first and the last batch
        measured = sent_at[n_warm:]
        achieved = per_batch * (len(measured) - 1) / max(measured[-1] - measured[0], 1e-9)
        if producer.flush(60) > 0 or errors:
            raise RuntimeError(f"live events not delivered: {errors[:3]}")
        wait_for(
            worker,
            lambda m: events_in(m, Topic.PREDICTIONS) >= base + sent,
            120,
            "the live events to be processed",
            0.05,
        )
        time.sleep(0.1)
    finally:
        stop.set()
        thread.join(5)
    after = worker.metrics() or {}
    times = [t for t, _ in samples]
    counts = [c for _, c in samples]
    latencies: list[float] = []
    for t_sent, target in zip(sent_at[n_warm:], targets[n_warm:], strict=True):
        i = bisect.bisect_left(times, t_sent)  # only scrapes that returned after the send
        while i < len(samples) and counts[i] < target:
            i += 1
        if i < len(samples):
            latencies.append(times[i] - t_sent)
    steps = after.get("driftline_worker_batch_seconds_count", 0.0) - before.get(
        "driftline_worker_batch_seconds_count", 0.0
    )
    step_seconds = after.get("driftline_worker_batch_seconds_sum", 0.0) - before.get(
        "driftline_worker_batch_seconds_sum", 0.0
    )
    gaps = np.diff(times) if len(times) > 1 else np.array([float("nan")])
    return {
        "latencies": np.array(latencies),
        "batches": len(sent_at) - n_warm,
        "warmup_batches": n_warm,
        "per_batch": per_batch,
        "sent": sent,
        "achieved": achieved,
        "step_ms": 1000 * step_seconds / steps if steps else float("nan"),
        "scrape_ms": 1000 * float(np.median(gaps)),
    }


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="Starts its own Kafka broker unless KAFKA_BOOTSTRAP_SERVERS is set.",
    )
    parser.add_argument(
        "--events", type=int, default=200_000, help="predictions produced (default 200000)"
    )
    parser.add_argument("--models", type=int, default=4, help="models (default 4)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions (default 4)")
    parser.add_argument(
        "--rate", type=int, default=2_000, help="live predictions/s, latency phase (default 2000)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="measured seconds of the latency phase (default 10)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of live traffic before the latency is measured (default 3)",
    )
    parser.add_argument(
        "--worker-batch-size",
        type=int,
        default=None,
        help=f"worker --batch-size (default: driftline worker's, {WorkerConfig.batch_size})",
    )
    parser.add_argument(
        "--order-slack-ms", type=int, default=500, help="worker --order-slack-ms (default 500)"
    )
    parser.add_argument(
        "--backlog-events",
        type=int,
        default=100_000,
        help="predictions of the live-timed backlog (phase 3; default 100000; 0: skip it)",
    )
    parser.add_argument(
        "--backlog-rate",
        type=int,
        default=20_000,
        help="events/s at which the phase-3 backlog is produced, in real time (default 20000)",
    )
    parser.add_argument(
        "--backlog-instances",
        type=int,
        default=8,
        help="producers (service instances) the phase-3 backlog comes from (default 8)",
    )
    parser.add_argument(
        "--merge-bucket-ms",
        type=int,
        default=None,
        help=f"worker --merge-bucket-ms (default: the worker's, {WorkerConfig.merge_bucket_ms})",
    )
    parser.add_argument(
        "--engine",
        choices=("confluent", "faust"),
        default="confluent",
        help="worker --engine: confluent (the default engine) or faust (the experimental "
        "faust-streaming one)",
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=None,
        help="worker --checkpoint-interval (default: the worker's, 5 s)",
    )
    args = parser.parse_args()
    if args.events < args.models * 2:
        parser.error("--events must be at least twice --models")
    if args.backlog_events and args.backlog_events < args.models * 2:
        parser.error("--backlog-events must be 0 or at least twice --models")
    if (
        args.backlog_instances < 1
        or args.backlog_rate < 1
        or (args.merge_bucket_ms is not None and args.merge_bucket_ms < 1)
        or (args.worker_batch_size is not None and args.worker_batch_size < 1)
    ):
        parser.error(
            "--backlog-rate, --backlog-instances, --merge-bucket-ms and --worker-batch-size "
            "must be at least 1"
        )
    if args.merge_bucket_ms is None:
        args.merge_bucket_ms = WorkerConfig.merge_bucket_ms

    run_started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="driftline-bench-kafka-"))
    names = TopicNames(prefix=f"bench{uuid.uuid4().hex[:8]}.")
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker: Any = None
    worker: Worker | None = None
    try:
        if external:
            bootstrap, where = external, f"external cluster {external}"
        else:
            kb = broker_module()
            broker = kb.KafkaBroker(tmp / "kafka")
            broker.start()
            bootstrap = broker.bootstrap_servers
            where = (
                f"Apache Kafka {kb.kafka_version()} single KRaft node on {bootstrap} "
                f"(started in {broker.last_start_seconds:.1f}s)"
            )
        ensure_topics(bootstrap, names, args.partitions, 1)
        models = model_names(args.models, args.partitions)
        used = sorted({murmur2_partition(m.encode(), args.partitions) for m in models})

        now = int(time.time() * 1000)
        t0 = now - now % HOUR - 72 * HOUR
        codec = AvroCodec()
        messages, n_labels, encode_rate = make_messages(
            args.events, models, t0, 6 * HOUR, codec, names
        )
        registrations = registration_messages(models, t0, codec, names)
        print(
            f"# driftline distributed runtime benchmark: {args.events:,} {N_FEATURES}-feature "
            f"predictions + {n_labels:,} labels, {args.models} models on partitions {used} of "
            f"{args.partitions}, 1 worker"
        )
        print(f"# {where}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")

        producer = new_producer(bootstrap)
        errors = produce_all(producer, registrations)
        t = time.perf_counter()
        errors += produce_all(producer, messages)
        produce_seconds = time.perf_counter() - t
        producer = None  # closed now: no client left talking to the broker when it stops
        if errors:
            raise RuntimeError(f"produce failed: {errors[:3]}")
        del messages
        produce_rate = (args.events + n_labels) / produce_seconds

        topic = names.name(Topic.PREDICTIONS)
        inputs = [topic, names.name(Topic.LABELS)]
        raw, raw_inputs = [], []
        for _ in range(2):  # best of three (a third after the worker): the ceiling should not
            # be lowered by a noisy moment
            n, seconds = consume_topic(bootstrap, topic, decode=False)
            if n != args.events:
                raise RuntimeError(f"raw consume read {n} messages, expected {args.events}")
            raw.append(n / seconds)
            # the worker's whole input, predictions and labels, read by the same loop: the
            # like-for-like ceiling of its events/s (predictions + labels)
            n, seconds = consume_topic(bootstrap, inputs, decode=False)
            if n != args.events + n_labels:
                raise RuntimeError(
                    f"raw consume read {n} messages, expected {args.events + n_labels}"
                )
            raw_inputs.append(n / seconds)
        ceiling = max(raw)
        n, seconds = consume_topic(bootstrap, topic, decode=True)
        decode_rate = n / seconds

        worker = Worker(bootstrap, names, tmp / "worker", args)
        expected = {
            Topic.MODEL_EVENTS: len(registrations),
            Topic.PREDICTIONS: args.events,
            Topic.LABELS: n_labels,
        }
        phase1 = catch_up(worker, args.partitions, expected, max(600.0, args.events / 200))
        worker_rate = args.events / phase1["seconds"]
        inputs_rate = (args.events + n_labels) / phase1["seconds"]

        live = live_latency(
            worker, bootstrap, names, models, args.events, args.rate, args.duration, args.warmup, 20
        )
        hwm = proc_status(worker.pid, "VmHWM")
        rss = proc_status(worker.pid, "VmRSS")
        code = worker.stop()
        if code != 0:
            raise RuntimeError(f"the worker exited with {code}:\n{worker.log_tail()}")
        # Once more with the worker gone, so that one noisy moment before it cannot lower
        # the ceiling (which would flatter the worker's share).
        n, seconds = consume_topic(bootstrap, topic, decode=False)
        raw.append(n / seconds)
        ceiling = max(raw)
        n, seconds = consume_topic(bootstrap, inputs, decode=False)
        raw_inputs.append(n / seconds)
        # (a label record is several times smaller than a prediction: reading both topics is not
        # slower per record than reading the predictions alone, unless the moment was
        # noisy; the higher of the two is kept, never flattering the worker)
        inputs_ceiling = max(*raw_inputs, ceiling)
        counts = store_counts(worker.data_dir / "clickhouse")
        backlog = (
            live_timed_backlog(bootstrap, tmp, models, t0, args) if args.backlog_events else None
        )

        lat = live["latencies"]
        p50, p99 = (np.percentile(lat, [50, 99]) * 1000) if len(lat) else (np.nan, np.nan)
        rows = [
            ("encode (AvroCodec.encode, this process)", f"{encode_rate:,.0f} msg/s", ""),
            (
                "produce, idempotent acks=all lz4 (preds+labels)",
                f"{produce_rate:,.0f} msg/s",
                "",
            ),
            ("raw consume, predictions topic (CEILING)", f"{ceiling:,.0f} msg/s", "100%"),
            (
                "consume + AvroCodec.decode",
                f"{decode_rate:,.0f} msg/s",
                f"{decode_rate / ceiling:.1%}",
            ),
            (
                "worker end-to-end -> ClickHouse",
                f"{worker_rate:,.0f} predictions/s",
                f"{worker_rate / ceiling:.1%}",
            ),
            (
                "raw consume, predictions + labels topics (CEILING 2)",
                f"{inputs_ceiling:,.0f} msg/s",
                "100%",
            ),
            (
                "worker end-to-end, events (predictions + labels)",
                f"{inputs_rate:,.0f} events/s",
                f"{inputs_rate / inputs_ceiling:.1%} of ceiling 2",
            ),
            (
                "  worker CPU (all threads) per prediction",
                f"{phase1['cpu'] / args.events * 1e6:,.1f} us",
                f"{phase1['cpu'] / phase1['seconds']:.2f} cores busy",
            ),
            (
                f"latency produce -> processed, {live['achieved']:,.0f}/s live",
                f"p50 {p50:,.0f} ms / p99 {p99:,.0f} ms",
                f"max {np.max(lat) * 1000:,.0f} ms" if len(lat) else "",
            ),
            ("worker peak RSS (VmHWM)", f"{hwm:,.0f} MiB", f"now {rss:,.0f} MiB"),
        ]
        if backlog is not None:
            n_in = backlog["events"] + backlog["labels"]
            base = backlog["runs"]["by the ms"]
            rows.append(
                (
                    "live-timed backlog: raw consume, both topics (CEILING 3)",
                    f"{backlog['ceiling']:,.0f} msg/s",
                    "100%",
                )
            )
            for label, run in backlog["runs"].items():
                rate = n_in / run["seconds"]
                rows.append(
                    (
                        f"live-timed backlog, worker, merge {label} ({run['bucket']} ms)",
                        f"{rate:,.0f} events/s",
                        f"{rate / backlog['ceiling']:.1%} of ceiling 3; "
                        f"{base['seconds'] / run['seconds']:.2f}x by the ms; "
                        f"{run['cpu'] / backlog['events'] * 1e6:,.1f} us CPU/prediction",
                    )
                )
        width = max(len(r[0]) for r in rows) + 2
        vwidth = max(len(r[1]) for r in rows) + 2
        print(f"{'measure':<{width}}{'value':<{vwidth}}vs ceiling")
        for label, value, ratio in rows:
            print(f"{label:<{width}}{value:<{vwidth}}{ratio}")
        print()
        print(
            f"worker catch-up: {args.events:,} predictions + {n_labels:,} labels + "
            f"{len(registrations)} registrations in {phase1['seconds']:.2f}s "
            f"({phase1['batches']:.0f} steps), timed from 'owns its {args.partitions} "
            f"partitions' (start-up before that: {phase1['startup']:.1f}s) until the step that "
            f"processed the last record had written ClickHouse and produced its outputs; lag 0 "
            f"confirmed afterwards."
        )
        print("store after stop: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + " rows")
        if backlog is not None:
            print(
                f"live-timed backlog (phase 3): {backlog['events']:,} predictions + "
                f"{backlog['labels']:,} labels on topics of their own, produced in real time "
                f"at {backlog['produced_rate']:,.0f} events/s by {args.backlog_instances} "
                f"producers with the SDK's settings (the topics are LogAppendTime: live "
                f"traffic spreads a partition's records over the milliseconds, where phase 1's "
                f"bulk-produced backlog shares each ms among hundreds), then caught up by a "
                f"fresh worker per merge bucket, timed as phase 1; 'by the ms' "
                f"(--merge-bucket-ms 1) is the baseline."
            )
        print(
            f"latency: {live['batches']} batches of {live['per_batch']} predictions (+ labels for "
            f"half), one every {1000 / 20:.0f} ms, event time = wall clock, measured after "
            f"{live['warmup_batches']} warm-up batches ({args.warmup:g}s). Per batch: (first "
            f"scrape of the worker's Prometheus endpoint, returned after the batch was handed "
            f"to the producer, whose driftline_worker_events_total{{predictions}} covers the "
            f"whole batch) - (when the batch's last produce() returned). 'Processed' = decoded, "
            f"merged and run through the processors (window state updated); that step's "
            f"ClickHouse write and output produce follow within the step (mean step "
            f"{live['step_ms']:.0f} ms in this phase). The aggregate row itself appears only "
            f"when event time passes its window's end + allowed lateness. Includes the "
            f"producer's linger.ms {PRODUCER_CONFIG['linger.ms']}, the worker's consume poll "
            f"(0.1 s) and its --order-slack-ms {args.order_slack_ms} (a record waits for the "
            f"partition's idle topics, alert acks and model events, to be vouched caught up); "
            f"resolution ~{live['scrape_ms']:.0f} ms (scrape period)."
        )
        if len(lat) >= 8:
            q = len(lat) // 4
            first, last = np.median(lat[:q]) * 1000, np.median(lat[-q:]) * 1000
            if last > 1.5 * first + 100:
                trend = "growing: the worker falls behind"
            elif first > 1.5 * last + 100:
                trend = "falling: still settling after the warm-up"
            else:
                trend = "steady"
            print(
                f"latency p50, first / last quarter of the live phase: {first:,.0f} / "
                f"{last:,.0f} ms ({trend} at {live['achieved']:,.0f} predictions/s)"
            )
        print(f"run took {time.perf_counter() - run_started:.0f}s")
        return 0
    finally:
        if worker is not None:
            worker.stop(30)
        if external:
            try:
                from confluent_kafka.admin import AdminClient

                from streams.kafka_topics import topic_specs

                admin = AdminClient({"bootstrap.servers": external})
                specs = topic_specs(names, 1, 1)
                admin.delete_topics([s.name for s in specs], operation_timeout=30)
            except Exception as exc:  # best effort on someone else's cluster
                print(f"could not delete the benchmark topics: {exc}", file=sys.stderr)
        if broker is not None:
            broker.stop(cleanup=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
