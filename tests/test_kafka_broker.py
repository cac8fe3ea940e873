"""Smoke tests of the test tooling's real Kafka broker (tests/support/kafka_broker.py).

They also pin down what the streaming runtime relies on: idempotent acks=all producers,
stable key -> partition mapping, consumer groups, and data that survives a broker restart.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.kafka

PARTITIONS = 4


def _producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def _key(msg: Message) -> str:
    key = msg.key()
    assert isinstance(key, bytes)
    return key.decode()


def _value(msg: Message) -> int:
    value = msg.value()
    assert isinstance(value, bytes)
    return int(value)


def _partition(msg: Message) -> int:
    partition = msg.partition()
    assert partition is not None
    return partition


def _produce(producer: Producer, topic: str, items: list[tuple[str, str]]) -> dict[str, set[int]]:
    """Produce (key, value) pairs, flush, and return key -> partitions the broker acked."""
    acked: dict[str, set[int]] = defaultdict(set)
    errors: list[Any] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked[_key(msg)].add(_partition(msg))

    for key, value in items:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    assert not errors, errors[:5]
    return acked


def _consume(consumer: Consumer, n: int, timeout: float = 30.0) -> list[Message]:
    """Poll until ``n`` messages arrived (fails after ``timeout``), then commit."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=500, timeout=0.5):
            assert msg.error() is None, msg.error()
            got.append(msg)
    assert len(got) == n, f"consumed {len(got)} of {n} messages in {timeout:.0f}s"
    consumer.commit(asynchronous=False)
    return got


def test_produce_consume_keyed_messages(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory(partitions=PARTITIONS)
    md = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == PARTITIONS

    keys = [f"model-{i}" for i in range(50)]
    items = [(keys[i % len(keys)], f"{i}") for i in range(1000)]
    producer = _producer(kafka_bootstrap)
    acked = _produce(producer, topic, items)
    # Each key was acked on exactly one partition, and the keys spread over all partitions.
    assert all(len(parts) == 1 for parts in acked.values())
    assert {p for parts in acked.values() for p in parts} == set(range(PARTITIONS))

    consumer = _consumer(kafka_bootstrap, f"smoke-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    try:
        got = _consume(consumer, len(items))
    finally:
        consumer.close()

    assert sorted(_value(m) for m in got) == list(range(1000))  # all, none twice
    per_key: dict[str, list[int]] = defaultdict(list)
    for m in got:
        key = _key(m)
        assert {m.partition()} == acked[key]  # consumed where it was produced
        per_key[key].append(_value(m))
    assert Counter({k: len(v) for k, v in per_key.items()}) == Counter(dict.fromkeys(keys, 20))
    assert all(v == sorted(v) for v in per_key.values())  # per-key order kept


def test_data_survives_broker_restart(
    kafka_restartable_broker: Any, kafka_topic_factory: Callable[..., str]
) -> None:
    broker = kafka_restartable_broker
    bootstrap = broker.bootstrap_servers
    topic = kafka_topic_factory(partitions=PARTITIONS)
    group = f"restart-{uuid.uuid4().hex[:8]}"

    producer = _producer(bootstrap)
    _produce(producer, topic, [(f"k{i % 10}", f"{i}") for i in range(200)])
    consumer = _consumer(bootstrap, group)
    consumer.subscribe([topic])
    try:
        assert len(_consume(consumer, 200)) == 200  # and commits the group's offsets
    finally:
        consumer.close()

    broker.restart()
    assert broker.bootstrap_servers == bootstrap  # same port: clients keep their config

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == PARTITIONS

    # The producer made before the restart reconnects and keeps producing.
    _produce(producer, topic, [(f"k{i % 10}", f"{i}") for i in range(200, 250)])

    # The group resumes from its committed offsets: only the 50 new messages.
    consumer = _consumer(bootstrap, group)
    consumer.subscribe([topic])
    try:
        fresh = _consume(consumer, 50)
        assert sorted(_value(m) for m in fresh) == list(range(200, 250))
        assert not consumer.consume(num_messages=10, timeout=1.0)
    finally:
        consumer.close()

    # Every message written before the restart is still on disk.
    reader = _consumer(bootstrap, f"reader-{uuid.uuid4().hex[:8]}")
    reader.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    try:
        values = sorted(_value(m) for m in _consume(reader, 250))
    finally:
        reader.close()
    assert values == list(range(250))
