"""EmbeddedRuntime: input log, processing into the store (real chDB engine), checkpoints, replay."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from support.stream_data import T0, labels_for, predictions, profile

from driftline.settings import load_settings
from schemas.codec import AvroCodec
from schemas.rows import COLUMNS
from schemas.topics import Topic
from streams.embedded import EmbeddedRuntime
from streams.log import InputLog
from streams.store import ClickHouseStore

TABLES = (
    "drift_metrics",
    "performance_metrics",
    "drift_detections",
    "alerts",
    "dead_letters",
    "predictions",
    "labels",
)


def model_event() -> dict:
    return {
        "event_id": "reg-1",
        "model_name": "churn",
        "model_version": "1",
        "event_type": "registered",
        "timestamp": T0,
        "reference_profile": profile().to_json(),
    }


def make_runtime(tmp: Path, store: ClickHouseStore, **kw) -> EmbeddedRuntime:
    settings = load_settings(data_dir=tmp, window_seconds=3600, allowed_lateness_seconds=0, **kw)
    return EmbeddedRuntime(settings, store=store)


def snapshot_tables(client, db: str) -> dict[str, list[str]]:
    """Every stored row (FINAL: what a query sees), in a canonical order."""
    out = {}
    for table in TABLES:
        cols = ", ".join(f"`{c}`" for c in COLUMNS[table])
        rows = client.query(f"SELECT {cols} FROM {db}.{table} FINAL").result_rows
        out[table] = sorted(map(repr, rows))
    return out


@pytest.fixture
def store(chdb_client, ch_database) -> ClickHouseStore:
    s = ClickHouseStore(chdb_client, database=ch_database)
    s.migrate()
    return s


def operations(
    events: list[dict], labels: list[dict], chunk: int = 97
) -> list[tuple[Topic, list[dict]]]:
    """The input sequence: prediction batches, each followed by the labels that became known meanwhile."""
    ops: list[tuple[Topic, list[dict]]] = []
    pending = sorted(labels, key=lambda r: r["timestamp"])
    for i in range(0, len(events), chunk):
        batch = events[i : i + chunk]
        ops.append((Topic.PREDICTIONS, batch))
        now = batch[-1]["timestamp"]
        known = [lb for lb in pending if lb["timestamp"] <= now]
        pending = pending[len(known) :]
        if known:
            ops.append((Topic.LABELS, known))
    if pending:
        ops.append((Topic.LABELS, pending))
    return ops


def feed(rt: EmbeddedRuntime, ops: list[tuple[Topic, list[dict]]]) -> None:
    for topic, batch in ops:
        rt.submit(topic, batch)


def uninterrupted_run(
    tmp: Path, client, database: str, ops: list[tuple[Topic, list[dict]]]
) -> dict[str, list[str]]:
    """Every stored row after ``ops`` went through a runtime that was never interrupted
    (in its own database, dropped afterwards): the reference of the replay tests."""
    store = ClickHouseStore(client, database=database)
    store.migrate()
    try:
        ref = make_runtime(tmp, store)
        ref.submit(Topic.MODEL_EVENTS, [model_event()])
        feed(ref, ops)
        ref.drain()
        expected = snapshot_tables(client, database)
        ref.stop()
        return expected
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")


def test_stream_through_the_runtime_into_the_store(tmp_path, store) -> None:
    rt = make_runtime(tmp_path, store)
    rt.submit(Topic.MODEL_EVENTS, [model_event()])
    events = predictions(6, 200, drift_from=3)
    feed(rt, operations(events, labels_for(events)))
    bad = dict(events[0], prediction_id="bad", features={"age": float("nan")})
    result = rt.submit(Topic.PREDICTIONS, [bad, dict(events[1], prediction_id="ok-extra")])
    assert result.accepted == [1] and result.rejected[0][0] == 0
    assert "NaN not allowed" in result.rejected[0][1]
    rt.drain()
    rt.flush()
    counts = store.counts()
    assert counts["predictions"] == len(events) + 1
    assert counts["labels"] == len(events) // 2
    dataset = store.dataset_drift_series("churn", "1")
    assert [r["drift"] for r in dataset] == [False, False, False, True, True, True]
    assert store.alerts(state="open", model="churn"), "drift should open alerts"
    assert store.performance_series("churn", "1")
    dead = store.dead_letters()
    assert any("NaN not allowed" in d["reason"] for d in dead)
    stats = rt.stats()
    assert stats["events_in"][Topic.PREDICTIONS.value] == len(events) + 1
    assert stats["windows_closed"] == 6 and stats["lag_bytes"] == 0
    rt.stop()


def test_background_thread_and_wait_for(tmp_path, store) -> None:
    rt = make_runtime(tmp_path, store).start()
    rt.submit(Topic.MODEL_EVENTS, [model_event()])
    pos = rt.submit(Topic.PREDICTIONS, predictions(3, 50)).position
    assert rt.wait_for(pos, timeout=30)
    assert store.counts()["predictions"] == 150
    assert (
        len(store.dataset_drift_series("churn", "1")) == 2
    )  # windows 0, 1 closed by window 2's events
    rt.stop()


def test_duplicates_are_dead_lettered_not_counted_twice(tmp_path, store) -> None:
    rt = make_runtime(tmp_path, store)
    rt.submit(Topic.MODEL_EVENTS, [model_event()])
    events = predictions(2, 50)
    rt.submit(Topic.PREDICTIONS, events[:30])
    rt.submit(Topic.PREDICTIONS, events[20:])  # a retry that overlaps by 10
    rt.drain()
    rt.flush()
    first = store.dataset_drift_series("churn", "1")[0]
    assert first["n_current"] == 50
    assert rt.stats()["duplicates"] == 10
    assert sum("duplicate prediction_id" in d["reason"] for d in store.dead_letters()) == 10
    rt.stop()


def test_crash_and_replay_equal_an_uninterrupted_run(tmp_path, chdb_client, ch_database) -> None:
    events = predictions(8, 150, drift_from=4, seed=9)
    labels = labels_for(events, every=3)

    ops = operations(events, labels)
    expected = uninterrupted_run(tmp_path / "ref", chdb_client, ch_database + "_ref", ops)

    store = ClickHouseStore(chdb_client, database=ch_database)
    store.migrate()
    a = make_runtime(tmp_path / "run", store)
    a.submit(Topic.MODEL_EVENTS, [model_event()])
    third = len(ops) // 3
    feed(a, ops[:third])
    a.drain()
    a.checkpoint()
    feed(a, ops[third : 2 * third])
    a.drain()  # processed and written after the checkpoint, then "killed": no stop(), no checkpoint
    a.log.close()

    b = make_runtime(tmp_path / "run", store)  # restores the checkpoint, replays from its position
    assert b.position < b.log.end
    feed(b, ops[2 * third :])
    b.drain()
    assert snapshot_tables(chdb_client, ch_database) == expected
    assert expected["drift_metrics"] and expected["alerts"] and expected["performance_metrics"]
    b.stop()


def test_submit_encoded_equals_submit_and_replays_from_the_log(
    tmp_path, chdb_client, ch_database
) -> None:
    """Avro events appended as they came (``submit_encoded``, the API's path for an Avro
    batch) give the store exactly what ``submit`` of the same records gives: processed
    from the records handed over, and, after a kill without a checkpoint, from the
    payloads decoded from the log."""
    events = predictions(6, 120, drift_from=3, seed=4)
    ops = operations(events, labels_for(events, every=2))
    codec = AvroCodec()

    def feed_encoded(rt: EmbeddedRuntime, ops: list[tuple[Topic, list[dict]]]) -> None:
        for topic, batch in ops:
            payloads = [codec.encode(topic.schema_name, record) for record in batch]
            records = codec.decode_all(topic.schema_name, payloads)
            assert records is not None
            result = rt.submit_encoded(topic, payloads, records)
            assert result.accepted == list(range(len(batch))) and result.rejected == []

    expected = uninterrupted_run(tmp_path / "ref", chdb_client, ch_database + "_ref", ops)

    store = ClickHouseStore(chdb_client, database=ch_database)
    store.migrate()
    a = make_runtime(tmp_path / "run", store)
    a.submit(Topic.MODEL_EVENTS, [model_event()])
    half = len(ops) // 2
    feed_encoded(a, ops[:half])
    a.drain()
    a.log.close()  # "killed": no checkpoint, so b processes everything from the log
    b = make_runtime(tmp_path / "run", store)
    assert b.position == 0 < b.log.end
    feed_encoded(b, ops[half:])
    b.drain()
    assert snapshot_tables(chdb_client, ch_database) == expected
    assert expected["drift_metrics"] and expected["performance_metrics"]
    with pytest.raises(ValueError, match="takes records"):
        b.submit_encoded(Topic.MODEL_EVENTS, [b"x"], [{}])
    with pytest.raises(ValueError, match="1 payloads but 0 records"):
        b.submit_encoded(Topic.PREDICTIONS, [b"x"], [])
    b.stop()


def test_log_recovers_from_a_torn_tail(tmp_path) -> None:
    log = InputLog(tmp_path / "input.log")
    end = log.append([(Topic.PREDICTIONS, b"abc"), (Topic.LABELS, b"defg")])
    log.close()
    with open(tmp_path / "input.log", "ab") as f:
        f.write(b"\x00\x00\x01\x00\x01partial")  # a frame cut short by a crash
    log = InputLog(tmp_path / "input.log")
    assert log.end == end
    entries, pos = log.read(0)
    assert entries == [(Topic.PREDICTIONS, b"abc"), (Topic.LABELS, b"defg")] and pos == end
    assert log.append([(Topic.ALERT_ACKS, b"x")]) == end + 6
    log.close()


def test_log_syncs_each_append_and_its_directory_once(tmp_path, monkeypatch) -> None:
    """Every append is synced (``fdatasync``, after its bytes are written, before its
    span is reported); the directory entry of a new log file is synced when the file is
    created, not when an existing log is reopened; ``fsync=False`` syncs nothing."""
    import stat

    calls: list[tuple[str, str, int]] = []  # (call, file type, file size when called)
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def record(name: str, real):
        def sync(fd: int) -> None:
            st = os.fstat(fd)
            calls.append((name, "dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_size))
            real(fd)

        return sync

    monkeypatch.setattr(os, "fsync", record("fsync", real_fsync))
    monkeypatch.setattr(os, "fdatasync", record("fdatasync", real_fdatasync))
    path = tmp_path / "logs" / "input.log"
    log = InputLog(path)
    assert calls == [("fsync", "dir", calls[0][2])]  # the new file's entry in logs/
    calls.clear()
    spans: list[tuple[int, int, int]] = []  # (start, end, syncs made by then)
    end = log.append([(Topic.PREDICTIONS, b"abc")], lambda a, b: spans.append((a, b, len(calls))))
    assert calls == [("fdatasync", "file", end)] and spans == [(0, end, 1)]
    calls.clear()
    end = log.append_run(Topic.LABELS, [b"de", b"f"])
    assert calls == [("fdatasync", "file", end)]
    log.close()
    calls.clear()
    log = InputLog(path)  # reopened: nothing new in the directory
    log.append([(Topic.LABELS, b"g")])
    assert [c[:2] for c in calls] == [("fdatasync", "file")]
    log.close()
    calls.clear()
    unsynced = InputLog(tmp_path / "unsynced.log", fsync=False)
    unsynced.append([(Topic.LABELS, b"h")])
    unsynced.close()
    assert calls == []


def test_a_failed_store_write_rewinds_instead_of_counting_twice(
    tmp_path, chdb_client, ch_database
) -> None:
    """The store fails once mid-stream (fault injected around the real chDB store): the runtime
    goes back to its checkpoint and replays; the result equals a run without the failure."""
    from streams.store import StoreError

    events = predictions(4, 150, drift_from=2, seed=5)
    ops = operations(events, labels_for(events, every=2))
    ref_db = ch_database + "_ref"
    ref_store = ClickHouseStore(chdb_client, database=ref_db)
    ref_store.migrate()

    class FailsOnce(ClickHouseStore):
        calls = 0

        def write(self, topic, records):  # type: ignore[override]
            FailsOnce.calls += 1
            if FailsOnce.calls == 9:
                raise StoreError("ClickHouse went away (injected)")
            return super().write(topic, records)

    try:
        ref = make_runtime(tmp_path / "ref", ref_store)
        ref.submit(Topic.MODEL_EVENTS, [model_event()])
        feed(ref, ops)
        ref.drain()
        expected = snapshot_tables(chdb_client, ref_db)
        ref.stop()

        store = FailsOnce(chdb_client, database=ch_database)
        store.migrate()
        rt = make_runtime(tmp_path / "run", store)
        rt.submit(Topic.MODEL_EVENTS, [model_event()])
        feed(rt, ops[:3])
        rt.drain()
        rt.checkpoint()
        feed(rt, ops[3:])
        with pytest.raises(StoreError, match="injected"):
            rt.drain()
        rt.drain()  # the retry, from the checkpoint
        assert FailsOnce.calls > 9
        assert snapshot_tables(chdb_client, ch_database) == expected
        rt.stop()
    finally:
        chdb_client.command(f"DROP DATABASE IF EXISTS {ref_db} SYNC")


def test_the_writer_thread_failing_rewinds_and_the_result_is_exact(
    tmp_path, chdb_client, ch_database
) -> None:
    """Started runtime (processing thread + store-writer thread): a write fails once in the
    writer (fault injected around the real chDB store) while later batches are already
    processed and queued. The runtime goes back to its checkpoint, replays, and the stored
    result equals a run without the failure; positions waited for are really stored."""
    from streams.store import StoreError

    events = predictions(4, 150, drift_from=2, seed=6)
    ops = operations(events, labels_for(events, every=2))
    ref_db = ch_database + "_ref"
    ref_store = ClickHouseStore(chdb_client, database=ref_db)
    ref_store.migrate()

    class FailsOnce(ClickHouseStore):
        # Armed after the checkpoint: the first write after it fails. (Counting calls was
        # fragile: the writer coalesces queued batches, fewer on a slow machine.)
        armed = False
        calls_after = 0  # writes after the failure (the replay)
        failed = False

        def write(self, topic, records):  # type: ignore[override]
            if FailsOnce.armed and not FailsOnce.failed:
                FailsOnce.failed = True
                raise StoreError("ClickHouse went away (injected)")
            if FailsOnce.failed:
                FailsOnce.calls_after += 1
            return super().write(topic, records)

    try:
        ref = make_runtime(tmp_path / "ref", ref_store)
        ref.submit(Topic.MODEL_EVENTS, [model_event()])
        feed(ref, ops)
        ref.drain()
        expected = snapshot_tables(chdb_client, ref_db)
        ref.stop()

        store = FailsOnce(chdb_client, database=ch_database)
        store.migrate()
        rt = make_runtime(tmp_path / "run", store, checkpoint_interval_seconds=3600)
        rt.start()
        rt.submit(Topic.MODEL_EVENTS, [model_event()])
        position = 0
        for topic, records in ops[:4]:
            position = rt.submit(topic, records).position
        assert rt.wait_for(position, timeout=60)
        rt._writer.join()
        rt.checkpoint()
        FailsOnce.armed = True
        for topic, records in ops[4:]:
            position = rt.submit(topic, records).position
        assert rt.wait_for(position, timeout=120)
        assert FailsOnce.failed and FailsOnce.calls_after > 0
        assert rt.stats()["position"] == rt.log.end
        assert snapshot_tables(chdb_client, ch_database) == expected
        rt.stop()
    finally:
        chdb_client.command(f"DROP DATABASE IF EXISTS {ref_db} SYNC")


def test_publishers_wait_while_the_backlog_is_full(tmp_path, store) -> None:
    """Back-pressure: with processing held up, a submit beyond ``max_backlog`` records returns
    only once the processing thread has taken the backlog; then everything is stored."""
    import threading

    events = predictions(1, 120, seed=4)
    rt = make_runtime(tmp_path, store)
    rt.max_backlog = 50
    held = threading.Event()
    process = rt._process_records

    def slow_process(records, produced=None):
        held.wait(30)
        return process(records, produced)

    rt._process_records = slow_process  # type: ignore[method-assign]
    rt.start()
    rt.submit(Topic.MODEL_EVENTS, [model_event()])
    rt.submit(Topic.PREDICTIONS, events[:40])  # within the backlog: returns at once
    second = threading.Thread(target=rt.submit, args=(Topic.PREDICTIONS, events[40:]))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # 120 > 50 records wait: the publisher waits too
    assert rt.log.end > 0 and rt.position == 0
    assert rt.backlogged  # over half the backlog: the API ingests in a worker thread then
    # a caller that must not block (the API's event loop) is not held
    before = rt.log.end
    extra = [{**e, "prediction_id": f"extra-{i}"} for i, e in enumerate(predictions(1, 3, seed=5))]
    results: list = []
    third = threading.Thread(
        target=lambda: results.append(rt.submit(Topic.PREDICTIONS, extra, wait_for_room=False))
    )
    third.start()
    third.join(5)
    assert not third.is_alive() and rt.position == 0  # returned while processing is held
    assert results[0].position > before and results[0].accepted == [0, 1, 2]
    held.set()
    second.join(30)
    assert not second.is_alive()
    rt.drain()
    assert store.counts()["predictions"] == 123
    assert not rt.backlogged
    rt.stop()


def test_log_append_reports_the_span_before_readers_see_it(tmp_path) -> None:
    log = InputLog(tmp_path / "input.log")
    first = log.append([(Topic.PREDICTIONS, b"abc")])
    seen: list[tuple[int, int, int, int]] = []

    def on_durable(start: int, end: int) -> None:
        entries, _ = log.read(start)
        seen.append((start, end, log.end, len(entries)))

    end = log.append([(Topic.LABELS, b"de"), (Topic.LABELS, b"f")], on_durable)
    # called with the new span, while readers still end at the old end
    assert seen == [(first, end, first, 0)]
    assert end == first + 2 * 5 + 3
    assert [p for _, p in log.read(first)[0]] == [b"de", b"f"]


def test_log_append_run_writes_the_frames_of_append(tmp_path, monkeypatch) -> None:
    """``append_run`` (one topic's payloads, framed by the native extension) writes the
    bytes ``append`` writes, reports its span the same way, and falls back to ``append``
    without the extension."""
    import streams.log as log_module

    payloads = [b"abc", b"", bytes(range(256)) * 3]
    plain = InputLog(tmp_path / "plain.log")
    plain.append([(Topic.LABELS, p) for p in payloads])
    native = InputLog(tmp_path / "native.log")
    spans: list[tuple[int, int]] = []
    assert log_module.driftline_native is not None
    end = native.append_run(Topic.LABELS, payloads, lambda a, b: spans.append((a, b)))
    assert spans == [(0, end)] and end == plain.end
    assert (tmp_path / "native.log").read_bytes() == (tmp_path / "plain.log").read_bytes()
    assert native.read(0)[0] == [(Topic.LABELS, p) for p in payloads]
    assert native.append_run(Topic.LABELS, []) == end
    monkeypatch.setattr(log_module, "driftline_native", None)
    fallback = InputLog(tmp_path / "fallback.log")
    fallback.append_run(Topic.LABELS, payloads)
    assert (tmp_path / "fallback.log").read_bytes() == (tmp_path / "plain.log").read_bytes()


def test_slow_checkpoints_are_spaced_out(tmp_path, store) -> None:
    """A checkpoint that takes d seconds is followed by a pause of at least d / 5% - d
    (``streams.topology.CHECKPOINT_BUDGET``), however short the configured interval."""
    import time

    rt = make_runtime(tmp_path, store, checkpoint_interval_seconds=0.01)
    times: list[float] = []
    checkpoint = rt.checkpoint

    def slow_checkpoint() -> None:
        times.append(time.monotonic())
        checkpoint()
        time.sleep(0.05)  # (counted: the duration is measured around the whole call)
        rt._checkpoint_seconds = time.monotonic() - times[-1]

    rt.checkpoint = slow_checkpoint  # type: ignore[method-assign]
    rt.start()
    rt.submit(Topic.MODEL_EVENTS, [model_event()])
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        rt.submit(Topic.PREDICTIONS, predictions(1, 5, seed=len(times)))
        time.sleep(0.05)
    rt.checkpoint = checkpoint  # type: ignore[method-assign]
    rt.stop()
    assert 1 <= len(times) <= 3, times  # every 0.06 s without the pause: ~40
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.9 for gap in gaps), gaps


def test_a_running_runtime_shortens_the_switch_interval_and_puts_it_back(tmp_path, store) -> None:
    import sys

    before = sys.getswitchinterval()
    rt = make_runtime(tmp_path / "a", store, gil_switch_interval_seconds=0.0005).start()
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    rt.stop()
    assert sys.getswitchinterval() == before
    rt = make_runtime(tmp_path / "b", store, gil_switch_interval_seconds=0).start()
    assert sys.getswitchinterval() == before  # 0: left as it is
    rt.stop()
    sys.setswitchinterval(0.0001)  # already shorter: left as it is, and not put back
    try:
        rt = make_runtime(tmp_path / "c", store).start()
        assert sys.getswitchinterval() == pytest.approx(0.0001)
        rt.stop()
        assert sys.getswitchinterval() == pytest.approx(0.0001)
    finally:
        sys.setswitchinterval(before)
