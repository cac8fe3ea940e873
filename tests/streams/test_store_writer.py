"""The store-writer thread of both runtimes (``streams.store.StoreWriter``) on the real
ClickHouse engine (chDB through clickhouse-connect): coalescing queued batches into one
insert per table, lingering for more, hurrying for waiting readers, dropping after a failure.

Failures and slow inserts are injected around the real store (a subclass that raises or
blocks before calling it); every row is written to and counted in chDB."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from schemas.topics import Topic
from streams.store import ClickHouseStore, StoreError, StoreWriter

NOW = (time.time_ns() // 1_000_000 // 1000) * 1000  # recent, so the raw-event TTL keeps it


def labels(start: int, n: int) -> list[dict[str, Any]]:
    return [
        {
            "prediction_id": f"p{i}",
            "model_name": "m",
            "label": "yes" if i % 2 else "no",
            "timestamp": NOW + i,
            "model_version": "1",
        }
        for i in range(start, start + n)
    ]


class CountingStore(ClickHouseStore):
    """The real store; counts ``write`` calls, can block them or fail one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes: list[tuple[Topic, int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_next = False

    def write(self, topic, records):  # type: ignore[override]
        self.gate.wait(30)
        if self.fail_next:
            self.fail_next = False
            raise StoreError("ClickHouse went away (injected)")
        self.writes.append((topic, len(records)))
        return super().write(topic, records)


@pytest.fixture
def store(chdb_client: Any, ch_database: str) -> CountingStore:
    store = CountingStore(chdb_client, database=ch_database)
    store.migrate()
    return store


def stored_labels(store: ClickHouseStore) -> int:
    return store.counts()["labels"]


def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_batches_queued_behind_a_slow_insert_are_written_as_one(store: CountingStore) -> None:
    done: list[int] = []
    writer = StoreWriter(store, max_pending=8, linger=0)
    store.gate.clear()  # the first insert hangs: the next batches queue up behind it
    writer.put([(Topic.LABELS, labels(0, 10))], lambda: done.append(0))
    wait_until(lambda: not writer._items)  # taken by the writer, which is now blocked
    for k in range(1, 5):
        writer.put(
            [(Topic.LABELS, labels(10 * k, 10)), (Topic.DEAD_LETTERS, [])],
            lambda k=k: done.append(k),
        )
    store.gate.set()
    writer.join()
    assert [n for topic, n in store.writes if topic == Topic.LABELS] == [10, 40]
    assert done == [0, 1, 2, 3, 4]
    assert stored_labels(store) == 50
    assert writer.batches == 5
    writer.stop()


def test_the_writer_lingers_until_it_holds_min_rows(store: CountingStore) -> None:
    done: list[int] = []
    writer = StoreWriter(store, max_pending=8, min_rows=30, linger=60)
    for k in range(3):
        writer.put([(Topic.LABELS, labels(10 * k, 10))], lambda k=k: done.append(k))
    wait_until(lambda: len(done) == 3)  # well before the minute of lingering is up
    assert store.writes == [(Topic.LABELS, 30)]
    assert stored_labels(store) == 30
    writer.stop()


def test_lingering_ends_at_its_deadline(store: CountingStore) -> None:
    done: list[int] = []
    writer = StoreWriter(store, min_rows=1_000, linger=0.3)
    writer.put([(Topic.LABELS, labels(0, 5))], lambda: done.append(0))
    wait_until(lambda: done == [0])
    assert store.writes == [(Topic.LABELS, 5)]
    writer.stop()


def test_a_waiting_reader_is_not_kept_waiting_by_the_linger(store: CountingStore) -> None:
    done = threading.Event()
    writer = StoreWriter(store, min_rows=1_000, linger=3_600)
    writer.put([(Topic.LABELS, labels(0, 5))], done.set)
    with writer.hurried():
        assert done.wait(30)
    writer.put([(Topic.LABELS, labels(5, 5))])
    writer.join()  # join hurries too
    assert stored_labels(store) == 10
    writer.stop()


def test_max_rows_bounds_a_coalesced_insert(store: CountingStore) -> None:
    writer = StoreWriter(store, max_pending=8, max_rows=25, linger=0)
    store.gate.clear()
    writer.put([(Topic.LABELS, labels(0, 10))])
    wait_until(lambda: not writer._items)
    for k in range(1, 6):
        writer.put([(Topic.LABELS, labels(10 * k, 10))])
    writer.put([(Topic.LABELS, labels(60, 40))])  # larger than max_rows: written alone
    store.gate.set()
    writer.join()
    assert [n for _, n in store.writes] == [10, 20, 20, 10, 40]
    assert stored_labels(store) == 100
    writer.stop()


def test_a_failed_insert_drops_its_batches_and_those_behind_it(store: CountingStore) -> None:
    done: list[int] = []
    writer = StoreWriter(store, max_pending=8, linger=0)
    store.gate.clear()
    writer.put([(Topic.LABELS, labels(0, 10))], lambda: done.append(0))
    wait_until(lambda: not writer._items)
    store.fail_next = True
    for k in range(1, 4):
        writer.put([(Topic.LABELS, labels(10 * k, 10))], lambda k=k: done.append(k))
    store.gate.set()
    writer.join()
    assert done == []  # the failed insert held batch 0; 1-3 were dropped behind it
    failure = writer.take_failure()
    assert isinstance(failure, StoreError)
    assert writer.failure is None
    writer.put([(Topic.LABELS, labels(40, 10))], lambda: done.append(4))
    writer.join()
    assert done == [4]
    assert stored_labels(store) == 10
    writer.stop()


def test_stop_writes_what_is_queued(store: CountingStore) -> None:
    done: list[int] = []
    writer = StoreWriter(store, max_pending=8, min_rows=1_000, linger=3_600)
    for k in range(3):
        writer.put([(Topic.LABELS, labels(10 * k, 10))], lambda k=k: done.append(k))
    writer.stop(timeout=30)
    assert done == [0, 1, 2]
    assert stored_labels(store) == 30


@pytest.mark.parametrize(
    "kwargs", [{"max_pending": 0}, {"max_rows": 0}, {"min_rows": -1}, {"linger": -0.1}]
)
def test_bad_arguments_are_refused(store: CountingStore, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="at least"):
        StoreWriter(store, **kwargs)
