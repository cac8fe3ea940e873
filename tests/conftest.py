"""Fixtures shared by every test folder.

chDB runs one embedded ClickHouse engine, on one path, per process (a second path
raises "EmbeddedServer already initialized"). So the whole session shares one client
on one path (``chdb_client``), and each test gets a database of its own
(``ch_database``), dropped afterwards. Do not call ``clickhouse_connect.get_client``
with another ``chdb://`` path in-process; use these fixtures.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def chdb_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """clickhouse-connect client on the session's chDB engine (``chdb:///<tmp>/chdb``)."""
    import clickhouse_connect

    path = tmp_path_factory.mktemp("chdb").resolve()
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    yield client
    client.close()


@pytest.fixture
def ch_database(chdb_client: Any) -> Iterator[str]:
    """Name of a fresh, empty database on ``chdb_client``; dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    chdb_client.command(f"CREATE DATABASE {name}")
    yield name
    chdb_client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


# --------------------------------------------------------------------------- Kafka
# A real Apache Kafka 4.x broker (single KRaft node) from tests/support/kafka_broker.py.
# Started lazily: only a session that requests one of these fixtures pays for it (~5 s;
# the first run on a machine also resolves the jars with Maven, ~35 s). Set
# KAFKA_BOOTSTRAP_SERVERS to run the tests against a cluster of your own instead.


def _kafka_support() -> Any:
    """``tests/support/kafka_broker``, imported as pytest's rootdir/conftest mode allows."""
    try:  # tests/ is no package: pytest put tests/ itself on sys.path for this conftest
        from support import kafka_broker
    except ImportError:  # tests/ is a package: the rootdir is on sys.path
        from tests.support import kafka_broker
    return kafka_broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's Kafka broker, started on first request and stopped at session end.

    A ``KafkaBroker`` (``bootstrap_servers``, ``start()``, ``stop()``, ``restart()`` on the
    same port and data, ``log_tail()``); data and logs under pytest's temp folder
    (``.../kafka0/logs/server.log``). With ``KAFKA_BOOTSTRAP_SERVERS`` set it is an
    ``ExternalKafkaCluster`` instead: nothing is started or stopped, and its
    ``stop()``/``restart()`` raise. Tests that restart the broker use
    ``kafka_restartable_broker``.
    """
    import os

    kb = _kafka_support()
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield kb.ExternalKafkaCluster(external)
        return
    broker = kb.KafkaBroker(tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
    except kb.KafkaBrokerError as exc:
        pytest.fail(f"could not start the test Kafka broker: {exc}", pytrace=False)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Any) -> str:
    """``bootstrap.servers`` of the session's Kafka (ours, or ``KAFKA_BOOTSTRAP_SERVERS``)."""
    return str(kafka_broker.bootstrap_servers)


@pytest.fixture
def kafka_restartable_broker(kafka_broker: Any) -> Iterator[Any]:
    """The session's ``KafkaBroker``, for tests that stop, kill or restart it.

    Skipped (only) when ``KAFKA_BOOTSTRAP_SERVERS`` points at an external cluster, which the
    tests cannot restart. Whatever the test did, the broker is running again afterwards,
    on the same port, for the tests that follow.
    """
    kb = _kafka_support()
    if not isinstance(kafka_broker, kb.KafkaBroker):
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS is set: an external cluster cannot be restarted")
    yield kafka_broker
    if not kafka_broker.is_running:
        kafka_broker.start()


@pytest.fixture
def kafka_topic_factory(kafka_bootstrap: str) -> Any:
    """``make(partitions=1, config=None, prefix="test") -> name``: creates a fresh topic.

    Topic names are unique per call, so tests sharing the session's broker never collide.
    """
    kb = _kafka_support()

    def make(
        partitions: int = 1, config: dict[str, str] | None = None, prefix: str = "test"
    ) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        kb.create_topic(kafka_bootstrap, name, partitions=partitions, config=config)
        return name

    return make
