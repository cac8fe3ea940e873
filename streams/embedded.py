"""The embedded runtime: every processor in one process, no external services.

Inputs are validated with the Avro codec, appended to the durable input log
(``streams.log``) and answered; a background thread reads the log in batches,
drops duplicates and hands the records to the processors of ``streams.topology``;
a second thread writes the inputs and everything the processors produce to the
store (ClickHouse engine in-process through clickhouse-connect's chDB backend, or
a ClickHouse server — only the DSN differs), so the engine's insert work, which
runs without the GIL, overlaps the next batch's processing. A log position counts
as done (``wait_for``) once its writes are stored.

Every ``checkpoint_interval_seconds`` — once the writes in flight are stored —
the processors' snapshots and the log position they cover are written atomically to ``<data dir>/runtime/checkpoint``.
After a crash the runtime restores the checkpoint and replays the log from its
position; processing is deterministic and the store's keys make rewrites
idempotent, so the aggregates equal those of an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.drift import DriftConfig
from schemas.codec import AvroCodec, DecodeError, EncodeError, dead_letter_record
from schemas.columns import PredictionColumns, PredictionRows, join_groups, merge_runs
from schemas.native import normalized
from schemas.topics import INPUT_TOPICS, Topic
from streams.dedup import Deduplicator
from streams.gcpause import gc_paused, raise_young_threshold
from streams.log import InputLog
from streams.processor import Emit
from streams.store import ClickHouseStore, StoreError, StoreWriter
from streams.topology import (
    ProcessorConfig,
    build_processors,
    checkpoint_due,
    flush_all,
    run_to_completion,
    topic_runs,
)

log = logging.getLogger("driftline.embedded")

_CHECKPOINT_VERSION = 1

# records of one topic for the store
_Write = tuple[Topic, list[dict] | PredictionColumns | PredictionRows]
# consecutive input records of one topic (the predictions of an Avro batch as columns)
_Run = tuple[Topic, list[dict] | PredictionColumns]


@dataclass
class PublishResult:
    """What ``EmbeddedRuntime.submit`` did with a request's records."""

    accepted: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    position: int = 0


def processor_config(settings: Any) -> ProcessorConfig:
    """Processor configuration from ``driftline.settings.Settings``."""
    return ProcessorConfig(
        window_ms=settings.window_seconds * 1000,
        allowed_lateness_ms=settings.allowed_lateness_seconds * 1000,
        drift=DriftConfig(
            test=settings.drift_test,
            drift_share=settings.drift_share,
            ks_method=settings.drift_ks_method,
        ),
        label_ttl_ms=settings.label_ttl_seconds * 1000,
        concept_detector=settings.concept_detector,
        alert_cooldown_ms=settings.alert_cooldown_seconds * 1000,
        auto_resolve_windows=settings.auto_resolve_windows,
        performance_floors=dict(settings.performance_floors),
    )


class EmbeddedRuntime:
    """Processors, input log, checkpoints and store in one process.

    Parameters
    ----------
    settings
        ``driftline.settings.Settings`` (data dir, DSN, windows, checkpoints).
    store
        An open store to use instead of connecting to ``settings.clickhouse_dsn``
        (tests share one chDB engine per process).
    config
        Processor configuration; default from ``settings``.
    batch_size
        Log entries processed per batch at most.
    max_backlog
        Accepted records waiting for the processing thread at most: beyond it ``submit``
        returns only once the processing thread has caught up (back-pressure; the records
        are appended to the log already). Bounds memory when publishers outrun processing.
    columns
        Hand batches of predictions of the common shape (one model version, the same
        numeric features, no segment) to the processing thread decoded into columns
        (``schemas.columns``) rather than as records: the same results, a third of the
        work. False keeps records (the reference the tests compare the columns with).
    """

    def __init__(
        self,
        settings: Any,
        *,
        store: ClickHouseStore | None = None,
        config: ProcessorConfig | None = None,
        batch_size: int = 5_000,
        max_backlog: int = 50_000,
        columns: bool = True,
    ) -> None:
        self.settings = settings
        self.columns = columns
        self.codec = AvroCodec()
        self.runtime_dir = Path(settings.data_dir) / "runtime"
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self._own_store = store is None
        self.store = store or ClickHouseStore.connect(
            settings.clickhouse_dsn,
            database=settings.clickhouse_database,
            raw_ttl_days=settings.raw_ttl_days,
        )
        self.config = config or processor_config(settings)
        self.batch_size = batch_size
        self.checkpoint_interval = float(settings.checkpoint_interval_seconds)
        self.log = InputLog(self.runtime_dir / "input.log")
        self.processors = build_processors(self.config)
        self.dedup = Deduplicator()
        self.position = 0  # everything before it is processed and stored
        self._cursor = 0  # everything before it is processed (its writes may be in flight)
        self.counters: Counter[str] = Counter()
        self._checkpoint_path = self.runtime_dir / "checkpoint"
        self._append_lock = threading.Lock()
        # appended spans not processed yet: (start, end, runs of records per topic)
        self._inflight: deque[tuple[int, int, list[_Run]]] = deque()
        self._inflight_records = 0
        self.max_backlog = max_backlog
        self._room = threading.Condition(self._append_lock)  # the backlog went down
        self._restore()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer: StoreWriter | None = None  # started with the processing thread
        self._restore_gc: Callable[[], None] = _nothing  # the collector's threshold, once stopped
        self._last_checkpoint = time.monotonic()
        self._checkpoint_seconds = 0.0  # how long the last checkpoint took
        self.error: BaseException | None = None

    # -- public API -----------------------------------------------------------------------

    @property
    def alerts(self) -> Any:
        return self.processors["alerts"]

    def start(self) -> EmbeddedRuntime:
        """Start the background processing and store-writer threads."""
        if self._thread is None:
            restore_gc = raise_young_threshold(self.settings.gc_young_threshold)
            restore_switch = _shorten_switch_interval(self.settings.gil_switch_interval_seconds)

            def restore() -> None:
                restore_switch()
                restore_gc()

            self._restore_gc = restore
            self._writer = StoreWriter(
                self.store,
                max_pending=16,
                min_rows=self.settings.store_batch_rows,
                linger=self.settings.store_linger_seconds,
            )
            self._thread = threading.Thread(
                target=self._loop, name="driftline-embedded", daemon=True
            )
            self._thread.start()
        return self

    def submit(
        self, topic: Topic, records: list[dict], *, wait_for_room: bool = True
    ) -> PublishResult:
        """Validate ``records`` for ``topic``, append them (and dead letters for the invalid ones).

        Returns once they are durable and, with ``wait_for_room`` (the default), once the
        backlog allows more (back-pressure, see ``max_backlog``); a caller that must not
        block (an event loop) passes False and checks :attr:`backlogged` first.
        """
        if topic not in INPUT_TOPICS:
            raise ValueError(f"{topic} is not an input topic; inputs are {', '.join(INPUT_TOPICS)}")
        with gc_paused():
            result = self._submit(topic, records)
        if wait_for_room:
            self._wait_for_room()
        return result

    @property
    def backlogged(self) -> bool:
        """Whether the records waiting for the processing thread are over half ``max_backlog``."""
        return self._inflight_records > self.max_backlog // 2

    def _submit(self, topic: Topic, records: list[dict]) -> PublishResult:
        result = PublishResult()
        payloads: list[bytes] | None = None
        if self.columns and topic == Topic.PREDICTIONS:
            payloads = self.codec.encode_all(topic.schema_name, records)
            columns = None if payloads is None else self.codec.decode_prediction_columns(payloads)
            if payloads is not None and columns is not None:
                # The common batch of predictions: encoded, and decoded into columns
                # (decoding what was just encoded is what normalizes it).
                result.accepted.extend(range(len(records)))
                result.position = self._append_run(topic, payloads, columns)
                return result
        normalize = _NORMALIZE.get(topic)
        fast = normalized(topic.schema_name, records) if normalize is not None else None
        if fast is not None and None not in fast:
            if payloads is None:
                payloads = self.codec.encode_all(topic.schema_name, records)
            if payloads is not None:
                # The common batch: every record valid, encoded and normalized natively.
                result.accepted.extend(range(len(records)))
                result.position = self._append_run(topic, payloads, fast)
                return result
        entries: list[tuple[Topic, bytes]] = []
        decoded: list[tuple[Topic, dict]] = []
        now = int(time.time() * 1000)
        accepted = result.accepted
        for i, (rec, data) in enumerate(
            zip(records, self.codec.encode_many(topic.schema_name, records), strict=True)
        ):
            if isinstance(data, EncodeError):
                result.rejected.append((i, data.reason))
                dl = dead_letter_record(str(topic), _raw_json(rec), data, received_at=now)
                entries.append((Topic.DEAD_LETTERS, self.codec.encode("dead_letter", dl)))
                decoded.append((Topic.DEAD_LETTERS, dl))
                continue
            entries.append((topic, data))
            accepted.append(i)
            if normalize is not None:
                record = fast[i] if fast is not None else None
                decoded.append((topic, record if record is not None else normalize(rec)))
        # Predictions and labels are handed to the processing thread as validated records
        # as well, so it need not decode what was just encoded; after a restart the same
        # records are decoded from the log, and _NORMALIZE makes both identical.
        result.position = self._append(
            entries, topic_runs(decoded) if normalize is not None else None
        )
        return result

    def publish(self, topic: Topic, records: list[dict]) -> int:
        """Like ``submit``; returns the log position to ``wait_for``."""
        return self.submit(topic, records).position

    def submit_encoded(
        self,
        topic: Topic,
        payloads: list[bytes],
        records: list[dict[str, Any]] | PredictionColumns,
        *,
        wait_for_room: bool = True,
    ) -> PublishResult:
        """Accept Avro events as they came, without encoding them again (``submit`` of
        records encodes each).

        ``payloads`` are predictions or labels in the *current* schema's single-object
        encoding, and ``records`` what ``AvroCodec.decode_all`` decoded from them, or for
        predictions what ``AvroCodec.decode_prediction_columns`` decoded: that call is the
        check that every payload is a valid event (it returns None for a batch holding
        any other, whose events go through ``submit`` as records instead). The payloads
        are appended durably as they are; the processing thread takes the records (or
        columns), and after a restart decodes the same records from the log.
        Back-pressure as in ``submit``.
        """
        if topic not in _NORMALIZE:
            raise ValueError(
                f"{topic} takes records (submit); encoded events go to "
                f"{' or '.join(map(str, _NORMALIZE))}"
            )
        if len(payloads) != len(records):
            raise ValueError(f"{len(payloads)} payloads but {len(records)} records")
        if type(records) is PredictionColumns and topic != Topic.PREDICTIONS:
            raise ValueError(f"columns of predictions submitted to {topic}")
        result = PublishResult()
        with gc_paused():
            result.accepted.extend(range(len(records)))
            result.position = self._append_run(topic, payloads, records)
        if wait_for_room:
            self._wait_for_room()
        return result

    def _append(self, entries: list[tuple[Topic, bytes]], decoded: list[_Run] | None) -> int:
        """Append durably; remember the decoded records of this span for the fast path."""
        end = self.log.append(entries, None if decoded is None else self._registrar(decoded))
        self._wake()
        return end

    def _append_run(
        self, topic: Topic, payloads: list[bytes], records: list[dict] | PredictionColumns
    ) -> int:
        """``_append`` of one topic's accepted records (framed natively)."""
        end = self.log.append_run(topic, payloads, self._registrar([(topic, records)]))
        self._wake()
        return end

    def _registrar(self, decoded: list[_Run]) -> Callable[[int, int], None]:
        # The log serialises appends itself (write + fsync) and registers the span for the
        # processing thread (under a short lock of ours) before readers see it; the
        # processing thread never waits for a disk.
        count = sum(len(group) for _, group in decoded)

        def register(start: int, end: int) -> None:
            with self._append_lock:
                self._inflight.append((start, end, decoded))
                self._inflight_records += count

        return register

    def _wait_for_room(self) -> None:
        """Back-pressure: while more than ``max_backlog`` accepted records wait for the
        processing thread, publishers wait (their records are appended already), so memory
        stays bounded when they outrun processing."""
        with self._room:
            while (
                self._inflight_records > self.max_backlog
                and self._thread is not None
                and self.error is None
                and not self._stop.is_set()
            ):
                self._room.wait(0.5)

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        """Block until everything up to ``position`` is processed and stored."""
        deadline = time.monotonic() + timeout
        writer = self._writer
        with writer.hurried() if writer is not None else nullcontext(), self._cond:
            while self.position < position:
                if self.error is not None:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if self._thread is None:
                    self._cond.release()
                    try:
                        self.step()
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait(min(remaining, 0.5))
            return True

    def step(self) -> int:
        """Process one batch from the log; returns entries processed.

        Without the background threads (:meth:`start`) the batch's writes are stored in
        the calling thread; with them they go to the writer thread.
        """
        with gc_paused():
            return self._step()

    def _step(self) -> int:
        fast, stop = self._take_inflight()
        if fast is not None:
            runs, next_pos = fast
            writes = self._process_records(runs)
            n = sum(len(group) for _, group in runs)
        else:
            # up to the next span that the fast path can take, if any
            entries, next_pos = self.log.read(self._cursor, self.batch_size, stop=stop)
            if not entries:
                return 0
            produced: list[Emit] = []
            runs = topic_runs(_decode(self.codec, entries, produced))
            writes = self._process_records(runs, produced)
            n = len(entries)
        self._cursor = next_pos
        if self._writer is not None:
            self._writer.put(writes, lambda: self._stored(next_pos))
            return n
        try:
            self._store(writes)
        except StoreError:
            # The processors have taken this batch in but the store has not: retrying it on
            # the updated state would count it twice. Go back to the last checkpoint and
            # replay the log from there instead.
            self._rewind()
            raise
        self._stored(next_pos)
        return n

    def _stored(self, position: int) -> None:
        with self._cond:
            self.position = position
            self._cond.notify_all()

    def _take_inflight(self) -> tuple[tuple[list[_Run], int] | None, int | None]:
        """Decoded records of the spans that start exactly at the current position, if any;
        else None and where the next such span starts (the log read stops there)."""
        with self._append_lock:
            while self._inflight and self._inflight[0][1] <= self._cursor:
                # processed (replay)
                self._inflight_records -= sum(len(g) for _, g in self._inflight.popleft()[2])
                self._room.notify_all()
            if not self._inflight:
                return None, None
            if self._inflight[0][0] != self._cursor:
                start = self._inflight[0][0]
                return None, start if start > self._cursor else None
            grouped: list[tuple[Topic, list[list[dict] | PredictionColumns]]] = []
            taken = 0
            end = self._cursor
            while self._inflight and self._inflight[0][0] == end and taken < self.batch_size:
                _, end, decoded = self._inflight.popleft()
                for topic, group in decoded:
                    taken += len(group)
                    if grouped and grouped[-1][0] == topic:  # consecutive records of one topic
                        grouped[-1][1].append(group)
                    else:
                        grouped.append((topic, [group]))
            self._inflight_records -= taken
            self._room.notify_all()
        # few runs per topic change (outside the lock: joining copies)
        runs: list[_Run] = [
            (topic, group) for topic, groups in grouped for group in merge_runs(groups)
        ]
        return (runs, end), None

    def drain(self) -> None:
        """Process everything appended so far (in the calling thread when not started)."""
        self.wait_for(self.log.end, timeout=3600)

    def flush(self) -> None:
        """Close every open window now (end of a finite stream, e.g. the demo) and store the results."""
        self.drain()
        with self._cond:
            produced = flush_all(self.processors)
            self._store(self._outputs(produced))

    def checkpoint(self) -> None:
        """Write the processors' state and the log position they cover, atomically.

        Called from the processing thread (or with the threads stopped): it first waits
        until the writes in flight are stored, so the position covers stored output only.
        """
        started = time.monotonic()
        if self._writer is not None:
            self._writer.join()
            if self._writer.failure is not None:
                return  # the processing loop rewinds to the previous checkpoint instead
        with self._cond:
            state = {
                "version": _CHECKPOINT_VERSION,
                "position": self.position,
                "processors": {name: p.snapshot() for name, p in self.processors.items()},
                "dedup": self.dedup.state(),
                "counters": dict(self.counters),
            }
        tmp = self._checkpoint_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._checkpoint_path)
        self._last_checkpoint = time.monotonic()
        self._checkpoint_seconds = self._last_checkpoint - started

    def stats(self) -> dict[str, Any]:
        windows = self.processors["windows"]
        labels = self.processors["labels"]
        alerts = self.processors["alerts"]
        events_in = {t.value: self.counters.get(f"in:{t.value}", 0) for t in INPUT_TOPICS}
        return {
            "events_in": events_in,
            "windows_closed": windows.stats().get("windows_closed", 0),
            "late_events": windows.stats().get("late_events", 0),
            "alerts_open": len(alerts.open_alerts()),
            "dead_letters": self.counters.get(f"out:{Topic.DEAD_LETTERS.value}", 0)
            + self.counters.get(f"in:{Topic.DEAD_LETTERS.value}", 0),
            "duplicates": self.dedup.duplicates,
            "labels": labels.stats(),
            "log_end": self.log.end,
            "position": self.position,
            "lag_bytes": self.log.end - self.position,
        }

    def stop(self, *, checkpoint: bool = True) -> None:
        """Drain the log, stop the threads, checkpoint and close."""
        if self._thread is not None:
            self.drain()
            self._stop.set()
            self._wake()
            self._thread.join(timeout=30)
            self._thread = None
        if self._writer is not None:
            self._writer.stop(timeout=30)
            self._writer = None
        self._restore_gc()
        self._restore_gc = _nothing
        if checkpoint and self.error is None:
            self.checkpoint()
        self.log.close()
        if self._own_store:
            self.store.close()

    def __enter__(self) -> EmbeddedRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the processing loop --------------------------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            if self._writer is not None and self._writer.failure is not None:
                failure = self._writer.take_failure()
                if not isinstance(failure, StoreError):
                    # a bug in a write: stop, keep the log, say so loudly
                    log.error("store writer stopped", exc_info=failure)
                    self.error = failure
                    self._wake()
                    return
                # ClickHouse unavailable: the writer dropped the failed batch and the ones
                # queued behind it. Back to the last checkpoint (whose position covers stored
                # output only) and replay from there once the store answers again.
                self._rewind()
                log.warning("store write failed, retrying in %.1fs: %s", backoff, failure)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            try:
                n = self.step()
                if n:
                    backoff = 0.5
            except StoreError as exc:  # (not started: stored in this thread)
                log.warning("store write failed, retrying in %.1fs: %s", backoff, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except Exception as exc:  # a bug: stop processing, keep the log, say so loudly
                log.exception("processing stopped")
                self.error = exc
                self._wake()
                return
            if checkpoint_due(
                time.monotonic(),
                self._last_checkpoint,
                self._checkpoint_seconds,
                self.checkpoint_interval,
            ):
                self.checkpoint()
            if n == 0:
                with self._cond:
                    if self._cursor >= self.log.end and not self._stop.is_set():
                        self._cond.wait(0.2)

    def _process_records(
        self, runs: list[_Run], produced: list[Emit] | None = None
    ) -> list[_Write]:
        """Run a batch (runs of records per topic, in order) through dedup and the
        processors; the store writes it calls for."""
        produced = produced if produced is not None else []
        inputs: dict[Topic, list[list[dict] | PredictionColumns]] = {}
        for topic, group in runs:
            kept, dead = self.dedup.filter(topic, group)
            produced.extend(dead)
            self.counters[f"in:{topic.value}"] += len(kept)
            if kept:
                inputs.setdefault(topic, []).append(kept)
            if kept and topic != Topic.DEAD_LETTERS:
                produced.extend(run_to_completion(self.processors, topic, kept))
        writes: list[_Write] = [(topic, join_groups(groups)) for topic, groups in inputs.items()]
        writes.extend(self._outputs(produced))
        return writes

    def _outputs(self, produced: list[Emit]) -> list[_Write]:
        """Processor outputs grouped per topic (counted), without the unstored topics."""
        by_topic: dict[Topic, list[dict]] = {}
        for topic, rec in produced:
            by_topic.setdefault(topic, []).append(rec)
        writes: list[_Write] = []
        for topic, records in by_topic.items():
            self.counters[f"out:{topic.value}"] += len(records)
            if topic == Topic.RETRAIN_REQUESTS:
                continue  # no table: the training worker consumes them (Kafka runtime) — kept in stats
            writes.append((topic, records))
        return writes

    def _store(self, writes: list[_Write]) -> None:
        for topic, records in writes:
            self.store.write(topic, records)

    def _rewind(self) -> None:
        """Processors, dedup and position as of the last checkpoint (or the start of the log)."""
        with self._cond:
            self.processors = build_processors(self.config)
            self.dedup = Deduplicator()
            self.counters = Counter()
            self.position = self._cursor = 0
            self._restore()
        log.warning("rewound to log position %d after a store failure", self.position)

    def _restore(self) -> None:
        if not self._checkpoint_path.exists():
            return
        with open(self._checkpoint_path, "rb") as f:
            state = pickle.load(f)
        if state.get("version") != _CHECKPOINT_VERSION:
            raise RuntimeError(
                f"checkpoint {self._checkpoint_path} has version {state.get('version')}; "
                f"this driftline reads version {_CHECKPOINT_VERSION}"
            )
        for name, data in state["processors"].items():
            self.processors[name].restore(data)
        self.dedup = Deduplicator.from_state(state["dedup"])
        self.counters = Counter(state["counters"])
        self.position = self._cursor = int(state["position"])
        log.info("restored checkpoint at log position %d", self.position)


def _nothing() -> None:
    pass


def _shorten_switch_interval(seconds: float) -> Callable[[], None]:
    """Shorten Python's thread switch interval to ``seconds`` (process-wide) when that is
    shorter than it is; returns a function that puts it back unless somebody changed it
    meanwhile. ``seconds <= 0`` changes nothing.

    A thread that waits for the GIL (the API's event loop, woken by a request's bytes)
    waits until the holder drops it, which a busy thread (the processing thread) does
    only when the interval forces it: up to 5 ms by default, several times per request.

    Examples
    --------
    >>> import sys
    >>> before = sys.getswitchinterval()
    >>> restore = _shorten_switch_interval(0.0005)
    >>> sys.getswitchinterval()
    0.0005
    >>> restore()
    >>> sys.getswitchinterval() == before
    True
    """
    before = sys.getswitchinterval()
    if seconds <= 0 or seconds >= before:
        return _nothing
    sys.setswitchinterval(seconds)
    ours = sys.getswitchinterval()

    def restore() -> None:
        if sys.getswitchinterval() == ours:
            sys.setswitchinterval(before)

    return restore


def _decode(
    codec: AvroCodec, entries: list[tuple[Topic, bytes]], produced: list[Emit]
) -> list[tuple[Topic, dict]]:
    """Decode log entries (as written by ``submit``: trusted, but never crash on them)."""
    records: list[tuple[Topic, dict]] = []
    for topic, payload in entries:
        try:
            records.append((topic, codec.decode_as(topic.schema_name, payload)))
        except DecodeError as exc:  # cannot happen for entries we validated; never crash on it
            produced.append(
                (Topic.DEAD_LETTERS, dead_letter_record(str(topic), payload, exc, received_at=0))
            )
    return records


def _double(value: Any) -> Any:
    """What an Avro ``double`` (or ``double | string``) gives back for a value."""
    return float(value) if type(value) is int else value


def _normalize_prediction(r: Mapping[str, Any]) -> dict:
    """The record exactly as ``AvroCodec.decode`` returns it after ``encode`` (defaults filled,
    ints in double fields as floats), without the round trip."""
    scores = r.get("scores")
    segment = r.get("segment")
    return {
        "prediction_id": r["prediction_id"],
        "model_name": r["model_name"],
        "model_version": r["model_version"],
        "timestamp": r["timestamp"],
        "features": dict(r["features"]),
        "prediction": _double(r["prediction"]),
        "scores": None if scores is None else {k: float(v) for k, v in scores.items()},
        "segment": None if segment is None else dict(segment),
    }


def _normalize_label(r: Mapping[str, Any]) -> dict:
    return {
        "prediction_id": r["prediction_id"],
        "model_name": r["model_name"],
        "label": _double(r["label"]),
        "timestamp": r["timestamp"],
        "model_version": r.get("model_version"),
    }


_NORMALIZE = {Topic.PREDICTIONS: _normalize_prediction, Topic.LABELS: _normalize_label}


def _raw_json(record: Mapping[str, Any] | Any) -> bytes:
    import json

    try:
        return json.dumps(record, sort_keys=True, default=repr, allow_nan=True).encode()
    except (TypeError, ValueError):
        return repr(record).encode()
