"""The distributed runtime (streams/kafka_runtime.py) on a real Kafka 4.x broker.

Every worker runs as a subprocess (`driftline worker`) with its own chDB store, read
back after it exits. The yardstick is the embedded runtime: the same input, processed
in-process by the same processors, must give the same aggregates — uninterrupted, after
a SIGKILL, across a broker restart, and split over two workers.
"""

from __future__ import annotations

import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient
from support.chdb_dump import table_rows
from support.kafka_worker import (
    COMPARED,
    WorkerProcess,
    kill_leftovers,
    processed,
    produce,
    produce_raw,
    wait_processed,
    wait_until,
)
from support.serve import free_port
from support.stream_data import HOUR, T0, predictions, profile

from driftline.settings import load_settings
from schemas.codec import SINGLE_OBJECT_MAGIC, AvroCodec
from schemas.columns import PredictionColumns
from schemas.topics import Topic
from streams.embedded import EmbeddedRuntime, processor_config
from streams.kafka_runtime import DEAD_LETTER_HEADERS, PartitionTask
from streams.kafka_topics import TopicNames, ensure_topics
from streams.store import ClickHouseStore

MODELS = (
    "churn",
    "fraud",
    "ltv",
)  # murmur2 over 4 partitions: 1, 2, 3 (both halves of a 2-worker group)
N_WINDOWS, PER_WINDOW, DRIFT_FROM = 6, 300, 3


# --------------------------------------------------------------------------- data


def model_events() -> list[dict]:
    profile_json = profile().to_json()
    return [
        {
            "event_id": f"reg-{m}",
            "model_name": m,
            "model_version": "1",
            "event_type": "registered",
            "timestamp": T0,
            "reference_profile": profile_json,
        }
        for m in MODELS
    ]


def all_predictions() -> list[dict]:
    """Predictions of the three models; ltv's have numbers only (no city, a missing value
    for its profile), so the worker decodes their runs into columns
    (``schemas.columns.PredictionColumns``) while churn and fraud go record by record."""
    out: list[dict] = []
    for i, m in enumerate(MODELS):
        batch = predictions(N_WINDOWS, PER_WINDOW, drift_from=DRIFT_FROM, seed=i + 1, model=m)
        if m == "ltv":
            for p in batch:
                del p["features"]["city"]
        out += batch
    out.sort(key=lambda r: (r["timestamp"], r["prediction_id"]))  # models interleaved, as live
    return out


def all_labels(preds: list[dict]) -> list[dict]:
    """Ground truth for every other prediction, 10 min later; from the drift on, the concept
    flips (label 0 whatever the model says), so ADWIN fires."""
    drift_start = T0 + DRIFT_FROM * HOUR
    labels = [
        {
            "prediction_id": p["prediction_id"],
            "model_name": p["model_name"],
            "label": "0"
            if p["timestamp"] >= drift_start
            else ("1" if p["features"]["age"] > 45 else "0"),
            "timestamp": p["timestamp"] + 600_000,
        }
        for p in preds[::2]
    ]
    labels.sort(key=lambda r: (r["timestamp"], r["prediction_id"]))
    return labels


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    """A test that fails half-way must not leave its worker subprocess running."""
    yield
    kill_leftovers()


@pytest.fixture(scope="module")
def data() -> dict[str, list[dict]]:
    preds = all_predictions()
    return {"events": model_events(), "predictions": preds, "labels": all_labels(preds)}


@pytest.fixture(scope="module")
def reference(
    chdb_client: Any, tmp_path_factory: pytest.TempPathFactory, data: dict[str, list[dict]]
) -> dict[str, list[str]]:
    """The embedded runtime's aggregates on the same input (model events, predictions, labels)."""
    database = f"ref_{uuid.uuid4().hex[:12]}"
    store = ClickHouseStore(chdb_client, database=database)
    store.migrate()
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("embedded"),
        window_seconds=3600,
        allowed_lateness_seconds=0,
    )
    runtime = EmbeddedRuntime(settings, store=store, columns=False)  # records, the reference
    try:
        for topic, key in (
            (Topic.MODEL_EVENTS, "events"),
            (Topic.PREDICTIONS, "predictions"),
            (Topic.LABELS, "labels"),
        ):
            position = runtime.publish(topic, [dict(r) for r in data[key]])
        assert runtime.wait_for(position, timeout=180)
    finally:
        runtime.stop()
    rows = table_rows(chdb_client, database, [*COMPARED, "dead_letters"])
    chdb_client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    assert not rows.pop("dead_letters")
    for table in COMPARED:  # the comparison is only worth something if every table has rows
        assert rows[table], f"the reference run produced no {table}"
    return rows


def fresh_names() -> TopicNames:
    return TopicNames(prefix=f"t{uuid.uuid4().hex[:10]}.")


def read_topic(bootstrap: str, name: str) -> list[Any]:
    """Every committed message of a topic, read until each partition reports its end (a
    transactional topic — the faust engine's outputs — ends in a transaction marker, so
    its high watermark is one past its last message)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
        consumer.assign([TopicPartition(name, p, 0) for p in partitions])
        wanted = set(partitions)
        out: list[Any] = []
        deadline = time.monotonic() + 30
        while wanted and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        wanted.discard(msg.partition())
                    continue
                out.append(msg)
        assert not wanted, f"could not read {name} to its end"
        return out
    finally:
        consumer.close()


def metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("driftline_worker_"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def produce_all(bootstrap: str, names: TopicNames, data: dict[str, list[dict]]) -> None:
    produce(bootstrap, names, Topic.MODEL_EVENTS, data["events"])
    produce(bootstrap, names, Topic.PREDICTIONS, data["predictions"])
    produce(bootstrap, names, Topic.LABELS, data["labels"])


# --------------------------------------------------------------------------- merge (no Kafka)


def _entry(ts: int, topic: Topic, offset: int) -> tuple:
    return (
        ts,
        {Topic.MODEL_EVENTS: 0, Topic.PREDICTIONS: 1, Topic.LABELS: 2, Topic.ALERT_ACKS: 3}[topic],
        offset,
        {},
        None,
        b"",
        None,
    )


def test_merge_orders_a_partition_by_append_time_and_waits_for_idle_topics() -> None:
    task = PartitionTask(0, processor_config(load_settings()), {})
    for offset, ts in enumerate((10, 30, 50)):
        task.push(Topic.PREDICTIONS, _entry(ts, Topic.PREDICTIONS, offset))
    for offset, ts in enumerate((20, 40)):
        task.push(Topic.LABELS, _entry(ts, Topic.LABELS, offset))
    # alert acks and model events are idle and not known to be caught up: nothing is settled
    assert task.release(slack_ms=0) == []
    assert set(task.blocked) == {Topic.ALERT_ACKS, Topic.MODEL_EVENTS}
    # caught up (position == high watermark) as of t=45: records before 45 are settled
    task.watermarks = {Topic.ALERT_ACKS: (45, 0), Topic.MODEL_EVENTS: (45, 0)}
    released = task.release(slack_ms=0)
    assert [(t, e[0]) for t, e in released] == [
        (Topic.PREDICTIONS, 10),
        (Topic.LABELS, 20),
        (Topic.PREDICTIONS, 30),
        (Topic.LABELS, 40),
    ]
    # 50 waits: labels is empty now and its high watermark was never read; a label still
    # to come at 50 would sort after the prediction at 50 (its rank), so a bound of 50 is
    # enough: 49 is the latest that still holds it back
    assert Topic.LABELS in task.blocked and task.blocked[Topic.LABELS] == 49
    task.watermarks[Topic.LABELS] = (60, 2)
    task.watermarks.update({Topic.ALERT_ACKS: (60, 0), Topic.MODEL_EVENTS: (60, 0)})
    assert [e[0] for _, e in task.release(slack_ms=0)] == [50]
    # a record fetched twice (a re-fetch after a rebalance) is queued once
    assert not task.push(Topic.PREDICTIONS, _entry(50, Topic.PREDICTIONS, 2))


def test_merge_by_buckets_takes_a_buckets_predictions_before_its_labels() -> None:
    """With ``bucket_ms`` the merge orders by (time rounded down to the bucket, rank,
    offset): a partition's predictions of a bucket come as one run, then its labels — live
    traffic interleaves them millisecond by millisecond, which would make runs of one."""
    task = PartitionTask(0, processor_config(load_settings()), {}, bucket_ms=100)
    for offset, ts in enumerate((10, 30, 50, 90, 120, 150)):
        task.push(Topic.PREDICTIONS, _entry(ts, Topic.PREDICTIONS, offset))
    for offset, ts in enumerate((20, 40, 95, 130)):
        task.push(Topic.LABELS, _entry(ts, Topic.LABELS, offset))
    task.watermarks = {Topic.ALERT_ACKS: (1_000, 0), Topic.MODEL_EVENTS: (1_000, 0)}
    released = task.release(slack_ms=0)
    # bucket 0: predictions 10..90, then labels 20..95; bucket 100: prediction 120 and 150
    # come before label 130; then label 130 — which waits: a prediction may still come
    # in bucket 100 (the predictions topic is empty, its high watermark never read)
    assert [(t, e[0]) for t, e in released] == [
        (Topic.PREDICTIONS, 10),
        (Topic.PREDICTIONS, 30),
        (Topic.PREDICTIONS, 50),
        (Topic.PREDICTIONS, 90),
        (Topic.LABELS, 20),
        (Topic.LABELS, 40),
        (Topic.LABELS, 95),
        (Topic.PREDICTIONS, 120),
        (Topic.PREDICTIONS, 150),
    ]
    # the latest bound of the predictions topic that still holds label 130 back: 199
    assert task.blocked == {Topic.PREDICTIONS: 199}
    task.watermarks[Topic.PREDICTIONS] = (199, 6)
    assert task.release(slack_ms=0) == []
    task.watermarks[Topic.PREDICTIONS] = (200, 6)
    assert [(t, e[0]) for t, e in task.release(slack_ms=0)] == [(Topic.LABELS, 130)]


def test_merge_by_buckets_holds_a_prediction_for_the_topics_ranked_before_it() -> None:
    task = PartitionTask(0, processor_config(load_settings()), {}, bucket_ms=100)
    task.push(Topic.PREDICTIONS, _entry(150, Topic.PREDICTIONS, 0))
    task.watermarks = {Topic.ALERT_ACKS: (1_000, 0), Topic.LABELS: (1_000, 0)}
    assert task.release(slack_ms=0) == []
    # a registration may still come in bucket 100, and it sorts first: up to 199 holds
    assert task.blocked == {Topic.MODEL_EVENTS: 199}
    task.watermarks[Topic.MODEL_EVENTS] = (199, 0)
    assert task.release(slack_ms=0) == []
    task.watermarks[Topic.MODEL_EVENTS] = (200, 0)
    assert len(task.release(slack_ms=0)) == 1
    # ...while the labels (ranked after) only need a bound within the bucket
    task.push(Topic.PREDICTIONS, _entry(250, Topic.PREDICTIONS, 1))
    task.watermarks = {Topic.ALERT_ACKS: (1_000, 0), Topic.MODEL_EVENTS: (1_000, 0)}
    task.watermarks[Topic.LABELS] = (199, 0)
    assert task.release(slack_ms=0) == [] and task.blocked == {Topic.LABELS: 199}
    task.watermarks[Topic.LABELS] = (200, 0)
    assert len(task.release(slack_ms=0)) == 1


@pytest.mark.parametrize("bucket_ms", [1, 7, 100])
def test_merge_releases_the_same_order_however_the_records_arrive(bucket_ms: int) -> None:
    """Records pushed in random chunks, with releases between, come out in exactly the
    order of a k-way merge of the topics' sequences (each in offset order; times not
    monotonic, as from several producers) on (bucket, rank, offset): nothing is released
    before its place is settled."""
    import random

    rng = random.Random(bucket_ms)
    ranks = {Topic.MODEL_EVENTS: 0, Topic.PREDICTIONS: 1, Topic.LABELS: 2, Topic.ALERT_ACKS: 3}
    for _trial in range(30):
        seqs = {
            t: [_entry(rng.randrange(0, 400), t, o) for o in range(rng.randrange(0, 40))]
            for t in ranks
        }
        # the reference: a k-way merge of the sequences on the bucketed keys
        heads = {t: 0 for t in ranks}
        expected = []
        while any(heads[t] < len(seqs[t]) for t in ranks):
            fronts = {t: seqs[t][heads[t]][:3] for t in ranks if heads[t] < len(seqs[t])}
            t = min(fronts, key=lambda t: (fronts[t][0] - fronts[t][0] % bucket_ms, *fronts[t][1:]))
            expected.append((t, seqs[t][heads[t]][2]))
            heads[t] += 1
        task = PartitionTask(0, processor_config(load_settings()), {}, bucket_ms=bucket_ms)
        got = []
        pushed = {t: 0 for t in ranks}
        while any(pushed[t] < len(seqs[t]) for t in ranks):
            t = rng.choice([t for t in ranks if pushed[t] < len(seqs[t])])
            n = rng.randrange(1, 6)
            for entry in seqs[t][pushed[t] : pushed[t] + n]:
                assert task.push(t, entry)
            pushed[t] = min(len(seqs[t]), pushed[t] + n)
            # each topic caught up with what was pushed, as of the earliest time still to
            # come on it (the tightest bound that holds: the merge must cope with equality)
            task.watermarks = {
                u: (min((e[0] for e in seqs[u][pushed[u] :]), default=10_000), pushed[u])
                for u in ranks
            }
            got += [(u, e[2]) for u, e in task.release(slack_ms=0)]
        task.watermarks = {u: (10_000, len(seqs[u])) for u in ranks}
        got += [(u, e[2]) for u, e in task.release(slack_ms=0)]
        assert got == expected


def test_merge_does_not_trust_a_watermark_the_position_has_not_reached() -> None:
    task = PartitionTask(3, processor_config(load_settings()), {})
    task.push(Topic.PREDICTIONS, _entry(10, Topic.PREDICTIONS, 0))
    caught_up = {t: (100, 0) for t in (Topic.ALERT_ACKS, Topic.MODEL_EVENTS)}
    task.watermarks = {**caught_up, Topic.LABELS: (100, 5)}  # 5 labels exist, none fetched yet
    assert task.release(slack_ms=0) == []
    # slack: a watermark read at 100 vouches only for records before 100 - slack
    task.watermarks[Topic.LABELS] = (100, 0)
    assert task.release(slack_ms=95) == []
    assert len(task.release(slack_ms=50)) == 1


def test_snapshot_carries_state_and_offsets(data: dict[str, list[dict]]) -> None:
    config = processor_config(load_settings(window_seconds=3600, allowed_lateness_seconds=0))
    task = PartitionTask(2, config, {Topic.PREDICTIONS: 7})
    task.offsets[Topic.LABELS] = 11
    task.processors["windows"].process(Topic.MODEL_EVENTS, data["events"][:1])
    restored = PartitionTask.from_snapshot(2, config, task.snapshot())
    assert restored.offsets[Topic.PREDICTIONS] == 7 and restored.offsets[Topic.LABELS] == 11
    assert restored.fetched == restored.offsets
    assert restored.processors["windows"].snapshot() == task.processors["windows"].snapshot()
    with pytest.raises(RuntimeError, match="partition 2's snapshot"):
        PartitionTask.from_snapshot(1, config, task.snapshot())


def test_a_run_of_undecoded_predictions_is_decoded_when_processed(
    data: dict[str, list[dict]],
) -> None:
    """The worker queues predictions undecoded: a clean run reaches the processors and the
    store as columns, a run with a bad payload record by record, the bad one a dead letter
    with its offset; the same windows either way (no Kafka needed)."""
    config = processor_config(load_settings(window_seconds=3600, allowed_lateness_seconds=0))
    codec = AvroCodec()
    numeric = [p for p in data["predictions"] if p["model_name"] == "ltv"][:200]
    payloads = [codec.encode("prediction", p) for p in numeric]

    def run(payloads: list[bytes], codec: AvroCodec | None = codec, decoded: bool = False) -> tuple:
        task = PartitionTask(3, config, {})
        task.processors["windows"].process(Topic.MODEL_EVENTS, data["events"])
        entries = [
            (
                Topic.PREDICTIONS,
                (T0 + i, 1, i, codec.decode_as("prediction", payload), None, payload, b"ltv")
                if decoded and codec is not None
                else (T0 + i, 1, i, None, None, payload, b"ltv"),
            )
            for i, payload in enumerate(payloads)
        ]
        inputs: dict[Topic, list] = {Topic.PREDICTIONS: []}
        produced: list = []
        taken = task.process(entries, inputs, produced, codec)
        return task, taken, inputs[Topic.PREDICTIONS], produced

    clean, taken, groups, produced = run(payloads)
    assert taken == {Topic.PREDICTIONS: 200} and produced == []
    assert [type(g) for g in groups] == [PredictionColumns]
    assert groups[0].records() == [codec.decode_as("prediction", p) for p in payloads]
    assert clean.offsets[Topic.PREDICTIONS] == 200

    damaged = [*payloads[:7], b"garbage", *payloads[8:]]
    task, taken, groups, produced = run(damaged)
    assert taken == {Topic.PREDICTIONS: 199}
    assert [type(g) for g in groups] == [list] and len(groups[0]) == 199
    [((topic, letter), key, headers)] = produced
    assert topic == Topic.DEAD_LETTERS and key == b"ltv"
    assert letter["raw"] == b"garbage" and letter["offset"] == 7 and letter["partition"] == 3
    assert dict(headers)["driftline-source-offset"] == b"7"
    # the same state and outputs as the records decoded when fetched (the faust engine's way)
    for got, good in ((clean, payloads), (task, damaged[:7] + damaged[8:])):
        reference = run(good, decoded=True)[0]
        for name in ("windows", "labels"):
            assert got.processors[name].snapshot() == reference.processors[name].snapshot()
        outputs = got.processors["windows"].flush()
        assert outputs and outputs == reference.processors["windows"].flush()

    with pytest.raises(ValueError, match="without a codec"):
        run(payloads, None)


# --------------------------------------------------------------------------- on Kafka


@pytest.mark.kafka
def test_worker_matches_the_embedded_runtime(
    kafka_bootstrap: str,
    tmp_path: Path,
    data: dict[str, list[dict]],
    reference: dict[str, list[str]],
) -> None:
    names = fresh_names()
    ensure_topics(kafka_bootstrap, names, 4, 1)
    port = free_port()
    worker = WorkerProcess(kafka_bootstrap, names, tmp_path / "w", metrics_port=port).start()
    produce_all(kafka_bootstrap, names, data)
    wait_processed(kafka_bootstrap, names, [worker])
    seen = metrics(port)
    n_inputs = sum(len(v) for v in data.values())
    assert (
        sum(v for k, v in seen.items() if k.startswith("driftline_worker_events_total")) == n_inputs
    )
    assert seen["driftline_worker_assigned_partitions"] == 4
    assert all(v == 0 for k, v in seen.items() if k.startswith("driftline_worker_consumer_lag"))
    assert worker.stop() == 0, worker.log_tail()

    got = worker.dump([*COMPARED, "dead_letters"])
    assert not got.pop("dead_letters")
    assert got == reference
    # the outputs were published too: once each, keyed by model, decodable
    codec = AvroCodec()
    messages = read_topic(kafka_bootstrap, names.name(Topic.DRIFT_METRICS))
    assert len(messages) == len(reference["drift_metrics"])
    for msg in messages[:50]:
        record = codec.decode_as("drift_metric", msg.value())
        assert msg.key() == record["model_name"].encode()


@pytest.mark.kafka
def test_sigkill_mid_stream_then_restart_equals_an_uninterrupted_run(
    kafka_bootstrap: str,
    tmp_path: Path,
    data: dict[str, list[dict]],
    reference: dict[str, list[str]],
) -> None:
    names = fresh_names()
    ensure_topics(kafka_bootstrap, names, 4, 1)
    worker = WorkerProcess(
        kafka_bootstrap,
        names,
        tmp_path / "w",
        worker_id="crashy",
        batch_size=20,  # many small steps: the worker is still busy when it is killed
        checkpoint_interval=0.3,
    ).start()

    def trickle(topic: Topic, records: list[dict]) -> threading.Thread:
        """A quarter of ``records`` now, the rest in slices while the worker runs (the
        stream goes on): the worker is still busy when it is killed, however fast it is."""
        first = len(records) // 4
        produce(kafka_bootstrap, names, topic, records[:first])

        def rest() -> None:
            step = max((len(records) - first) // 12, 1)
            for i in range(first, len(records), step):
                produce(kafka_bootstrap, names, topic, records[i : i + step])
                time.sleep(0.25)

        thread = threading.Thread(target=rest)
        thread.start()
        return thread

    produce(kafka_bootstrap, names, Topic.MODEL_EVENTS, data["events"])
    producer = trickle(Topic.PREDICTIONS, data["predictions"])
    total = len(data["events"]) + len(data["predictions"])
    wait_until(
        lambda: processed(kafka_bootstrap, names)[0] >= total // 4,
        60,
        "a first checkpoint",
        [worker],
        0.05,
    )
    worker.kill()
    committed, _ = processed(kafka_bootstrap, names)
    producer.join(60)
    _, end = processed(kafka_bootstrap, names)  # every prediction is in the log now
    assert committed < end, "the worker finished before it was killed: nothing was tested"
    # Second crash, in the labels (label join, ADWIN state), with both topics in the log:
    # the replay must merge them exactly as the first pass did.
    labels = data["labels"]
    worker.batch_size = 20
    worker.start()
    producer = trickle(Topic.LABELS, labels)
    target = total + len(labels) // 3
    wait_until(lambda: processed(kafka_bootstrap, names)[0] >= target, 60, "labels", [worker], 0.05)
    worker.kill()
    committed, _ = processed(kafka_bootstrap, names)
    producer.join(60)
    _, end = processed(kafka_bootstrap, names)  # every label is in the log now
    assert committed < end, "the worker finished before the second kill: nothing was tested"
    worker.batch_size = 2_000
    worker.start()
    wait_processed(kafka_bootstrap, names, [worker])
    assert worker.stop() == 0, worker.log_tail()
    log = worker.log_path.read_text()
    assert "restored snapshot" in log  # it resumed from a checkpoint, not from scratch

    got = worker.dump([*COMPARED, "dead_letters", "predictions", "labels"])
    assert not got.pop("dead_letters"), "a replayed record was taken for a duplicate"
    assert len(got.pop("predictions")) == len(data["predictions"])
    assert len(got.pop("labels")) == len(data["labels"])
    assert got == reference


@pytest.mark.kafka
def test_broker_restart_mid_stream(
    kafka_restartable_broker: Any,
    tmp_path: Path,
    data: dict[str, list[dict]],
    reference: dict[str, list[str]],
) -> None:
    bootstrap = str(kafka_restartable_broker.bootstrap_servers)
    names = fresh_names()
    ensure_topics(bootstrap, names, 4, 1)
    worker = WorkerProcess(bootstrap, names, tmp_path / "w", worker_id="steady").start()
    half = len(data["predictions"]) // 2
    produce(bootstrap, names, Topic.MODEL_EVENTS, data["events"])
    produce(bootstrap, names, Topic.PREDICTIONS, data["predictions"][:half])
    wait_until(lambda: processed(bootstrap, names)[0] > 0, 60, "first progress", [worker])

    kafka_restartable_broker.stop()
    time.sleep(2)
    assert worker.alive(), worker.log_tail()
    kafka_restartable_broker.start()

    produce(bootstrap, names, Topic.PREDICTIONS, data["predictions"][half:])
    produce(bootstrap, names, Topic.LABELS, data["labels"])
    wait_processed(bootstrap, names, [worker], timeout=150)
    assert worker.stop() == 0, worker.log_tail()
    assert worker.starts == 1  # the same process rode it out
    assert worker.dump() == reference


@pytest.mark.kafka
def test_a_fenced_worker_rejoins_and_stays_exact(
    kafka_bootstrap: str,
    tmp_path: Path,
    data: dict[str, list[dict]],
    reference: dict[str, list[str]],
) -> None:
    """Another consumer takes the worker's static member id (as after a broker restart): the
    broker fences the worker, whose consumer fails fatally; it rejoins and ends exact."""
    from confluent_kafka import Consumer

    names = fresh_names()
    ensure_topics(kafka_bootstrap, names, 4, 1)
    worker = WorkerProcess(kafka_bootstrap, names, tmp_path / "w", worker_id="solo").start()
    half = len(data["predictions"]) // 2
    produce(kafka_bootstrap, names, Topic.MODEL_EVENTS, data["events"])
    produce(kafka_bootstrap, names, Topic.PREDICTIONS, data["predictions"][:half])
    wait_until(lambda: processed(kafka_bootstrap, names)[0] > 0, 60, "first progress", [worker])

    impostor = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": names.group_id,
            "group.instance.id": "solo",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000,
        }
    )
    impostor.subscribe(names.inputs)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not impostor.assignment():
        impostor.poll(0.2)
    impostor.close()

    produce(kafka_bootstrap, names, Topic.PREDICTIONS, data["predictions"][half:])
    produce(kafka_bootstrap, names, Topic.LABELS, data["labels"])
    wait_processed(kafka_bootstrap, names, [worker], timeout=150)
    log_text = worker.log_tail(100_000)
    assert worker.stop() == 0, worker.log_tail()
    assert worker.starts == 1  # the same process rode it out
    assert "rejoining the group from the last checkpoints" in log_text, log_text[-3000:]
    assert worker.dump() == reference


@pytest.mark.kafka
def test_poison_messages_go_to_the_dead_letter_topic(kafka_bootstrap: str, tmp_path: Path) -> None:
    check_poison_messages(kafka_bootstrap, tmp_path, WorkerProcess, partitions=2)


def check_poison_messages(
    kafka_bootstrap: str, tmp_path: Path, engine: type[WorkerProcess], partitions: int
) -> None:
    """Garbage, an unknown fingerprint, the wrong schema and an oversized payload among valid
    predictions: each lands in the dead-letter topic (reason in headers) and the store, the
    valid traffic around them goes through (``engine``: the worker process class to run)."""
    names = fresh_names()
    ensure_topics(kafka_bootstrap, names, partitions, 1)
    port = free_port()
    worker = engine(kafka_bootstrap, names, tmp_path / "w", metrics_port=port).start()
    codec = AvroCodec()
    valid = predictions(1, 40, seed=5)
    label = {"prediction_id": "x", "model_name": "churn", "label": "1", "timestamp": T0}
    good = codec.encode("prediction", valid[0])
    oversized = good + b"\x00" * (codec.max_bytes + 1000)  # a known schema, past the 1 MiB limit
    poison = [
        (b"garbage bytes", "bad magic"),
        (
            SINGLE_OBJECT_MAGIC + b"\x01\x02\x03\x04\x05\x06\x07\x08rest",
            "unknown schema fingerprint",
        ),
        (codec.encode("label", label), "schema mismatch: expected 'prediction', got 'label'"),
        (oversized, f"payload of {len(oversized)} bytes exceeds limit {codec.max_bytes}"),
    ]
    topic = names.name(Topic.PREDICTIONS)
    produce(kafka_bootstrap, names, Topic.MODEL_EVENTS, model_events()[:1])  # churn's profile
    produce(kafka_bootstrap, names, Topic.PREDICTIONS, valid[:20])
    produce_raw(kafka_bootstrap, topic, [(b"churn", raw) for raw, _ in poison])
    produce(kafka_bootstrap, names, Topic.PREDICTIONS, valid[20:])
    wait_processed(kafka_bootstrap, names, [worker])
    seen = metrics(port)
    assert seen['driftline_worker_dead_letters_total{source_topic="driftline.predictions"}'] == 4
    assert worker.stop() == 0, worker.log_tail()

    letters = read_topic(kafka_bootstrap, names.name(Topic.DEAD_LETTERS))
    assert len(letters) == len(poison)
    by_offset = sorted(letters, key=lambda m: int(dict(m.headers())["driftline-source-offset"]))
    for msg, (raw, reason) in zip(by_offset, poison, strict=True):
        headers = {k: v.decode() for k, v in msg.headers()}
        assert set(DEAD_LETTER_HEADERS) <= set(headers)
        assert reason in headers["driftline-reason"]
        assert headers["driftline-error-type"] == "DecodeError"
        assert headers["driftline-source-topic"] == "driftline.predictions"
        record = codec.decode_as("dead_letter", msg.value())
        assert record["reason"] == headers["driftline-reason"]
        assert record["raw"] == raw[: len(record["raw"])]
        assert msg.key() == b"churn"
    stored = worker.dump(["dead_letters", "predictions"])
    assert len(stored["predictions"]) == len(valid)  # the traffic around the poison went through
    assert len(stored["dead_letters"]) == len(poison)


@pytest.mark.kafka
def test_two_workers_split_the_models_and_the_totals_are_exact(
    kafka_bootstrap: str,
    tmp_path: Path,
    data: dict[str, list[dict]],
    reference: dict[str, list[str]],
) -> None:
    names = fresh_names()
    ensure_topics(kafka_bootstrap, names, 4, 1)
    workers = [
        WorkerProcess(kafka_bootstrap, names, tmp_path / name, worker_id=name).start()
        for name in ("alpha", "beta")
    ]
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})

    def balanced() -> bool:
        group = admin.describe_consumer_groups([names.group_id])[names.group_id].result(10)
        owned = [len(m.assignment.topic_partitions) for m in group.members]
        return str(group.state).endswith("STABLE") and owned == [8, 8]  # 4 topics x 2 partitions

    wait_until(balanced, 60, "both workers to own half of the partitions", workers)
    produce_all(kafka_bootstrap, names, data)
    wait_processed(kafka_bootstrap, names, workers)
    for w in workers:
        assert w.stop() == 0, w.log_tail()

    dumps = [w.dump([*COMPARED, "models"]) for w in workers]
    models = [set(d.pop("models")) for d in dumps]
    assert models[0] and models[1] and not models[0] & models[1]
    assert models[0] | models[1] == set(MODELS)
    for table in COMPARED:
        assert not set(dumps[0][table]) & set(dumps[1][table]), table
        assert sorted(dumps[0][table] + dumps[1][table]) == reference[table], table


def in_process_worker(
    kafka_bootstrap: str,
    tmp_path: Path,
    chdb_client: Any,
    store_class: type[ClickHouseStore],
    *,
    checkpoint_interval: float,
    batch_size: int,
) -> tuple[Any, TopicNames, str]:
    """A worker in this process on the real broker (fresh topics), writing to a
    ``store_class`` store on a fresh database of the session's chDB engine; (worker,
    topic names, database)."""
    from streams.kafka_runtime import KafkaWorker, WorkerConfig

    names = fresh_names()
    ensure_topics(kafka_bootstrap, names, 4, 1)
    database = f"w_{uuid.uuid4().hex[:12]}"
    store = store_class(chdb_client, database=database)
    store.migrate()
    settings = load_settings(
        data_dir=tmp_path,
        window_seconds=3600,
        allowed_lateness_seconds=0,
        checkpoint_interval_seconds=checkpoint_interval,
        kafka_bootstrap_servers=kafka_bootstrap,
    )
    config = WorkerConfig.from_settings(
        settings,
        topic_prefix=names.prefix,
        group=names.group,
        batch_size=batch_size,
        order_slack_ms=100,
    )
    config.metrics_port = None
    return KafkaWorker(config, processor_config(settings), store), names, database


def assert_store_equals(chdb_client: Any, database: str, reference: dict[str, list[str]]) -> None:
    """The database holds exactly the embedded runtime's aggregates and no dead letter;
    dropped afterwards."""
    try:
        got = table_rows(chdb_client, database, [*COMPARED, "dead_letters"])
        assert not got.pop("dead_letters")
        assert got == reference
    finally:
        chdb_client.command(f"DROP DATABASE IF EXISTS {database} SYNC")


@pytest.mark.kafka
def test_a_periodic_checkpoint_waits_for_the_store_while_processing_goes_on(
    kafka_bootstrap: str,
    tmp_path: Path,
    chdb_client: Any,
    data: dict[str, list[dict]],
    reference: dict[str, list[str]],
) -> None:
    """An in-process worker on the real broker, its store on the session's chDB engine,
    whose writes are held back for a while (a gate around the real store). The periodic
    checkpoint starts, but no snapshot reaches the state topic while writes queued before
    it are unstored, and the worker goes on processing meanwhile (it only serialised the
    snapshots). Once the store answers, the checkpoint completes and commits, and the
    result is exactly the embedded runtime's."""
    gate = threading.Event()

    class Held(ClickHouseStore):
        def write(self, topic, records):  # type: ignore[override]
            gate.wait(120)
            return super().write(topic, records)

    worker, names, database = in_process_worker(
        kafka_bootstrap, tmp_path, chdb_client, Held, checkpoint_interval=0.2, batch_size=200
    )

    def taken() -> float:
        return sum(worker.metrics.events.labels(topic=t.value)._value.get() for t in Topic)

    begun: list[float] = []  # records processed when the first checkpoint started
    begin = worker._begin_checkpoint

    def begin_and_note() -> None:
        begin()
        if worker._pending_checkpoint is not None and not begun:
            begun.append(taken())

    worker._begin_checkpoint = begin_and_note  # type: ignore[method-assign]

    def state_messages() -> int:
        reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "state-count"})
        try:
            return sum(
                reader.get_watermark_offsets(TopicPartition(names.state, p), timeout=10)[1]
                for p in range(4)
            )
        finally:
            reader.close()

    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        produce_all(kafka_bootstrap, names, data)
        wait_until(
            lambda: bool(begun) and taken() > begun[0],
            60,
            "records processed after a checkpoint started, with the store held",
        )
        time.sleep(1.0)  # five checkpoint intervals
        assert not gate.is_set()
        assert state_messages() == 0, "a snapshot was sent before the writes it covers"
        assert worker.metrics.checkpoints._value.get() == 0
        gate.set()
        wait_processed(kafka_bootstrap, names, [], timeout=120)
        assert worker.metrics.checkpoints._value.get() >= 1
        assert state_messages() >= 1
    finally:
        gate.set()
        worker.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert_store_equals(chdb_client, database, reference)


@pytest.mark.kafka
def test_a_failed_store_write_rewinds_the_worker_and_the_result_is_exact(
    kafka_bootstrap: str,
    tmp_path: Path,
    chdb_client: Any,
    data: dict[str, list[dict]],
    reference: dict[str, list[str]],
) -> None:
    """An in-process worker on the real broker, its store on the session's chDB engine; one
    write fails on the store-writer thread mid-stream (fault injected around the real store)
    while later steps are already queued. The worker rewinds to its snapshots, replays, and
    ends with exactly the embedded runtime's aggregates."""
    import threading

    from streams.store import StoreError

    class FailsOnce(ClickHouseStore):
        calls = 0

        def write(self, topic, records):  # type: ignore[override]
            FailsOnce.calls += 1
            if FailsOnce.calls == 8:
                raise StoreError("ClickHouse went away (injected)")
            return super().write(topic, records)

    worker, names, database = in_process_worker(
        kafka_bootstrap, tmp_path, chdb_client, FailsOnce, checkpoint_interval=0.5, batch_size=300
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        produce_all(kafka_bootstrap, names, data)
        wait_processed(kafka_bootstrap, names, [], timeout=120)
    finally:
        worker.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert FailsOnce.calls > 8 and worker.metrics.store_errors._value.get() == 1
    assert_store_equals(chdb_client, database, reference)


def test_queueing_a_batch_by_runs_equals_queueing_it_message_by_message(
    data: dict[str, list[dict]],
) -> None:
    """The worker queues a fetched batch a topic-partition run at a time (``_queue_runs``);
    a batch holding an error event goes message by message (``_queue_one_by_one``). The
    same entries, in the same order, either way: predictions undecoded, labels decoded (an
    undecodable one carries its DecodeError), records fetched before (a rewind) ignored,
    unknown partitions and topics skipped. Real ``confluent_kafka.Message`` objects, no
    broker needed."""
    from confluent_kafka import Message

    from streams.kafka_runtime import _RANK, KafkaWorker

    codec = AvroCodec()
    names = TopicNames(prefix="q-")
    preds = [codec.encode("prediction", p) for p in data["predictions"][:30]]
    label = {"prediction_id": "p1", "model_name": "churn", "label": "yes", "timestamp": T0}
    labels = [codec.encode("label", {**label, "prediction_id": f"p{i}"}) for i in range(6)]
    labels[3] = b"\x00broken"

    def msg(topic: Topic | str, partition: int, offset: int, value: bytes | None) -> Message:
        name = names.name(topic) if isinstance(topic, Topic) else topic
        return Message(
            topic=name,
            partition=partition,
            offset=offset,
            key=b"churn",
            value=value,
            timestamp=(1, T0 + offset),
        )

    batch = [
        *(msg(Topic.PREDICTIONS, 0, 5 + i, p) for i, p in enumerate(preds[:10])),  # 5..7 refetched
        *(msg(Topic.LABELS, 1, i, v) for i, v in enumerate(labels)),
        *(msg(Topic.PREDICTIONS, 1, 20 + i, p) for i, p in enumerate(preds[10:25])),
        *(msg(Topic.PREDICTIONS, 9, i, p) for i, p in enumerate(preds[25:])),  # not assigned
        msg("someone-elses-topic", 0, 0, b"x"),
        *(msg(Topic.LABELS, 0, 40 + i, v) for i, v in enumerate(labels[:2])),
        msg(Topic.PREDICTIONS, 1, 35, None),  # a tombstone: queued, a dead letter when processed
    ]
    config = processor_config(load_settings())

    def queued(method: str) -> dict[int, dict[Topic, list[tuple]]]:
        worker = object.__new__(KafkaWorker)  # only what queueing reads: tasks, routes, codec
        worker.codec = codec
        worker._routes = {names.name(t): (t, _RANK[t], t.schema_name) for t in _RANK}
        worker.tasks = {p: PartitionTask(p, config, {}) for p in (0, 1)}
        worker.tasks[0].fetched[Topic.PREDICTIONS] = 8
        getattr(worker, method)(batch)
        out = {
            p: {
                t: [(*e[:4], e[4] and str(e[4]), *e[5:]) for e in q] for t, q in task.queues.items()
            }
            for p, task in worker.tasks.items()
        }  # (a DecodeError compared by its message)
        for p, task in worker.tasks.items():
            assert task.fetched[Topic.PREDICTIONS] == {0: 15, 1: 36}[p]
        return out

    by_runs, one_by_one = queued("_queue_runs"), queued("_queue_one_by_one")
    assert by_runs == one_by_one
    p0, p1 = by_runs[0], by_runs[1]
    assert [e[2] for e in p0[Topic.PREDICTIONS]] == list(range(8, 15))
    assert all(e[3] is None and e[4] is None for e in p0[Topic.PREDICTIONS])
    assert [e[2] for e in p1[Topic.PREDICTIONS]] == [*range(20, 35), 35]
    assert [e[0] for e in p1[Topic.LABELS]] == [T0 + i for i in range(6)]
    assert [e[4] is None for e in p1[Topic.LABELS]] == [True, True, True, False, True, True]
    assert "Schema Registry framing" in p1[Topic.LABELS][3][4]  # (b"\x00" + garbage)
    assert p1[Topic.LABELS][0][3]["prediction_id"] == "p0"
    assert [e[2] for e in p0[Topic.LABELS]] == [40, 41]
