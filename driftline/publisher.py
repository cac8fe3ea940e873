"""The publishing SDK: what a model-serving service imports to report predictions and labels.

::

    from driftline import Publisher

    with Publisher("http://127.0.0.1:8000", token="...") as pub:
        pid = pub.predict("churn", "3", {"age": 41, "plan": "pro"}, prediction=0.82)
        ...
        pub.label(pid, "churn", label=1.0)       # hours later, from another process even

Events are buffered and sent in batches (``batch_size`` events, 10,000 by default; or
once the oldest has waited ``linger`` seconds, 1 s by default; or ``flush()``), with
retries and exponential back-off on connection errors, 429 and 5xx. A batch the server
finds too large (413: its ``max_batch_size`` or ``max_body_bytes``) is sent in halves,
and the following batches are that much smaller. A full batch
is sent by a background thread while the caller goes on (one request in flight, in
order); a batch that finally fails raises :class:`PublishError` from the next call that
sends (``predict``, ``label`` or ``flush``), and its events go back into the buffer.
``flush()`` returns once everything buffered has been answered. An event the server
rejects (422: it names the field and reason) is *not* retried: it is reported in the
``PublishReport`` and the server has dead-lettered it.

Batches go as Avro (``encoding="auto"``, when the native extension is installed): each
event in the event contract's single-object encoding, the batch framed as an Avro array
of bytes (``application/vnd.driftline.avro-batch``, ``schemas/batch.py``) — smaller than
JSON, and the server appends the events as they came. A batch holding an event that does
not encode goes as JSON instead, so the server names the field and reason; a server that
answers 415 (one without Avro batches) gets JSON from then on.

A batch of predictions already held as columns (a DataFrame, or numpy arrays from a batch
inference job) goes through ``predict_many``: the same events as ``predict`` row by row,
encoded natively from the columns when its features are floats::

    ids = pub.predict_many("churn", "3", frame[["age", "income"]], frame["score"])
    pub.label_many(truth["prediction_id"], "churn", truth["churned"])  # later

Retrying a batch whose first attempt did reach the server is safe: the runtime
drops repeated ``prediction_id`` s (as dead letters), so nothing is counted twice.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import httpx
import msgspec

from schemas import batch as avro_batch
from schemas.native import NATIVE, driftline_native

logger = logging.getLogger(__name__)

FeatureValue = float | int | str | bool | None


DEFAULT_BATCH_SIZE: Final = 10_000
"""Events per request by default: the API's default ``max_batch_size``. Its cost per
request (HTTP, the log's sync, GIL handoffs between its threads) is paid once per batch:
through ``driftline serve``, requests of 5,000 read ~1.7x the events/s of 1,000, and of
10,000 up to ~1.3x more (benchmarks/bench_embedded.py). A server that takes fewer events or
bytes per request answers 413, and the publisher goes on with batches half as large."""

DEFAULT_LINGER: Final = 1.0
"""Seconds an event waits in a partly filled batch, by default, before the batch is sent."""


class PublishError(Exception):
    """The server could not be reached, or refused the request, after every retry."""


@dataclass
class PublishReport:
    """What happened to the events sent so far."""

    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    retries: int = 0


def _ms(timestamp: datetime | float | int | None) -> int:
    if type(timestamp) is int:  # epoch ms already (the common case, checked first: ~30x faster)
        return timestamp
    if timestamp is None:
        return int(time.time() * 1000)
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware (e.g. datetime.now(timezone.utc))")
        return int(timestamp.timestamp() * 1000)
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise TypeError(
            f"timestamp must be a datetime or epoch milliseconds, got {type(timestamp).__name__}"
        )
    return int(timestamp)


class Publisher:
    """Buffered, retrying publisher of prediction and label events.

    Parameters
    ----------
    url
        Base URL of ``driftline serve`` (e.g. ``http://127.0.0.1:8000``).
    token
        Bearer token with the ``publisher`` (or ``admin``) role; None when the API is open.
    batch_size
        Events buffered per topic before a request is sent (:data:`DEFAULT_BATCH_SIZE`).
    linger
        Seconds the oldest buffered event of a topic waits before its partly filled batch
        is sent anyway (:data:`DEFAULT_LINGER`), by a timer thread when ``background``,
        else at the next call; None: only full batches and ``flush()``.
    max_retries
        Attempts after the first, for connection errors, 429 and 5xx.
    backoff
        First back-off in seconds; doubles per retry (capped at 10 s).
    timeout
        Per-request timeout in seconds.
    transport
        An ``httpx`` transport (tests pass an ASGI transport to call an app in-process).
    background
        Send full batches from a background thread (default), so building the next batch
        overlaps the request; False sends in the calling thread.
    encoding
        ``"avro"``: batches as Avro (see above); ``"json"``: as JSON; ``"auto"`` (default):
        Avro when the native extension is installed (it encodes a batch faster than JSON),
        else JSON (fastavro alone encodes slower than JSON). :attr:`encoding` says which.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        linger: float | None = DEFAULT_LINGER,
        max_retries: int = 8,
        backoff: float = 0.2,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        background: bool = True,
        encoding: Literal["auto", "avro", "json"] = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if linger is not None and not linger > 0:  # (NaN too)
            raise ValueError(f"linger must be a positive number of seconds or None, got {linger}")
        if encoding not in ("auto", "avro", "json"):
            raise ValueError(f"encoding must be 'auto', 'avro' or 'json', got {encoding!r}")
        self._codec: Any = None  # schemas.codec.AvroCodec when sending Avro
        if encoding == "avro" or (encoding == "auto" and NATIVE):
            from schemas.codec import AvroCodec

            self._codec = AvroCodec()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff = backoff
        # events, as dicts, or as payloads already encoded (predict_many)
        self._buffers: dict[str, list[Any]] = {"predictions": [], "labels": []}
        self._unchecked: set[str] = set()  # buffers holding an event not known to be plain JSON
        self.report = PublishReport()
        self._sender = (
            ThreadPoolExecutor(1, thread_name_prefix="driftline-publisher") if background else None
        )
        # the request in flight: (kind, its events, its answer)
        self._in_flight: tuple[str, list[dict[str, Any]], Future[httpx.Response]] | None = None
        self._position = 0  # the highest log position of an answer (events before it accepted)
        self._waited = 0  # everything before it is known processed (a wait's answer)
        self.linger = linger
        self._lock = threading.RLock()  # the buffers: the caller's thread and the linger timer's
        self._since: dict[str, float] = {}  # kind -> when its oldest buffered event came
        self._deferred: PublishError | None = None  # a linger send's failure, for the caller
        self._closed = threading.Event()
        self._lingerer: threading.Thread | None = None
        if linger is not None and background:
            # (holds the publisher weakly: one dropped without close() is still collected)
            self._lingerer = threading.Thread(
                target=_linger_loop,
                args=(weakref.ref(self), self._closed, min(linger / 4, 0.25)),
                name="driftline-publisher-linger",
                daemon=True,
            )
            self._lingerer.start()

    @property
    def encoding(self) -> Literal["avro", "json"]:
        """How batches are sent now: ``"avro"`` or ``"json"``."""
        return "avro" if self._codec is not None else "json"

    # -- events ---------------------------------------------------------------------------

    def predict(
        self,
        model_name: str,
        model_version: str,
        features: Mapping[str, FeatureValue],
        prediction: float | str,
        *,
        prediction_id: str | None = None,
        timestamp: datetime | float | int | None = None,
        scores: Mapping[str, float] | None = None,
        segment: Mapping[str, str] | None = None,
    ) -> str:
        """Buffer one prediction; returns its ``prediction_id`` (when not given, a random
        one: 32 hex digits)."""
        prediction = _target("prediction", prediction)
        pid = prediction_id or os.urandom(16).hex()  # (as random as uuid4, 4x cheaper)
        event: dict[str, Any] = {
            "prediction_id": pid,
            "model_name": model_name,
            "model_version": str(model_version),
            "timestamp": _ms(timestamp),
            "features": _features(features),
            "prediction": prediction,
        }
        if scores:
            event["scores"] = dict(scores)
        if segment:
            event["segment"] = dict(segment)
        # Built from checked parts: plain JSON unless a caller-given id/name/map is not.
        plain = type(pid) is str and type(model_name) is str and not scores and not segment
        self._add("predictions", event, plain)
        return pid

    def predict_many(
        self,
        model_name: str,
        model_version: str,
        features: Any,
        predictions: Any,
        *,
        prediction_ids: Sequence[str] | None = None,
        timestamps: Any = None,
    ) -> list[str]:
        """Buffer a batch of predictions given as columns; returns their ``prediction_id`` s.

        The same events as :meth:`predict` called row by row, in order. When every feature
        column holds floats (a float numpy array, pandas column or list of floats) and the
        batch goes as Avro, the events are encoded natively from the columns, without a
        dict per row: the fast way to report a batch inference job's output.

        Parameters
        ----------
        model_name, model_version
            The model version that made the predictions.
        features
            Feature name -> column (a list or 1-D array), or a pandas DataFrame; one value
            per prediction in each column. NaN and ±inf are missing values, as in
            :meth:`predict`.
        predictions
            The model's outputs, one per row: finite numbers or strings.
        prediction_ids
            One id per row; random ones (32 hex digits) when None.
        timestamps
            Event times: one per row, or a single one for all (a timezone-aware datetime or
            epoch milliseconds); None: now.

        Raises
        ------
        ValueError
            Columns of different lengths, or a prediction that is not a finite number or a
            string.
        TypeError
            A feature name or id that is not a string, or a timestamp of another type.
        """
        if hasattr(predictions, "tolist"):  # numpy array or pandas Series
            predictions = predictions.tolist()
        preds = [_target("prediction", p) for p in predictions]
        n = len(preds)
        names = list(features.columns if hasattr(features, "columns") else features.keys())
        columns: list[Any] = []
        for name in names:
            if type(name) is not str:
                raise TypeError(f"feature names must be strings, got {name!r}")
            column = features[name]
            column = column.to_numpy() if hasattr(column, "to_numpy") else column
            if len(column) != n:
                raise ValueError(f"feature {name!r} has {len(column)} values for {n} predictions")
            columns.append(column)
        if prediction_ids is None:
            hexes = os.urandom(16 * n).hex()
            ids = [hexes[i : i + 32] for i in range(0, 32 * n, 32)]
        else:
            ids = list(prediction_ids)
            if len(ids) != n:
                raise ValueError(f"{len(ids)} prediction_ids for {n} predictions")
            for pid in ids:
                if type(pid) is not str:
                    raise TypeError(f"prediction_ids must be strings, got {pid!r}")
        stamps = _timestamps(timestamps, n)
        version = str(model_version)
        codec = self._codec
        if codec is not None and type(model_name) is str and all(map(_floats, columns)):
            import numpy as np

            values = (
                np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
                if columns
                else np.empty((n, 0))
            )
            payloads = codec.encode_prediction_rows(
                ids, model_name, version, stamps, names, values, preds
            )
            if payloads is not None:
                self._add_encoded("predictions", payloads, model_name)
                return ids
        rows = [c.tolist() if hasattr(c, "tolist") else list(c) for c in columns]
        for i in range(n):
            self.predict(
                model_name,
                version,
                {name: column[i] for name, column in zip(names, rows, strict=True)},
                preds[i],
                prediction_id=ids[i],
                timestamp=stamps[i],
            )
        return ids

    def label(
        self,
        prediction_id: str,
        model_name: str,
        label: float | str,
        *,
        timestamp: datetime | float | int | None = None,
        model_version: str | None = None,
    ) -> None:
        """Buffer the ground truth of an earlier prediction."""
        label = _target("label", label)
        event: dict[str, Any] = {
            "prediction_id": prediction_id,
            "model_name": model_name,
            "label": label,
            "timestamp": _ms(timestamp),
        }
        if model_version is not None:
            event["model_version"] = str(model_version)
        self._add("labels", event, type(prediction_id) is str and type(model_name) is str)

    def label_many(
        self,
        prediction_ids: Sequence[str],
        model_name: str,
        labels: Any,
        *,
        timestamps: Any = None,
        model_version: str | None = None,
    ) -> None:
        """Buffer the ground truth of a batch of earlier predictions, given as columns.

        The same events as :meth:`label` called row by row, in order: ``prediction_ids``
        and ``labels`` (finite numbers or strings) are columns of one length (lists, numpy
        arrays or pandas Series); ``timestamps`` one per row, or a single one for all
        (None: now).

        Raises
        ------
        ValueError
            Columns of different lengths, or a label that is not a finite number or a
            string.
        TypeError
            A timestamp of another type.
        """
        if hasattr(labels, "tolist"):  # numpy array or pandas Series
            labels = labels.tolist()
        values = [_target("label", v) for v in labels]
        n = len(values)
        ids = prediction_ids.tolist() if hasattr(prediction_ids, "tolist") else list(prediction_ids)
        if len(ids) != n:
            raise ValueError(f"{len(ids)} prediction_ids for {n} labels")
        stamps = _timestamps(timestamps, n, "labels")
        plain = type(model_name) is str and all(type(pid) is str for pid in ids)
        version = None if model_version is None else str(model_version)
        for pid, value, ts in zip(ids, values, stamps, strict=True):
            event: dict[str, Any] = {
                "prediction_id": pid,
                "model_name": model_name,
                "label": value,
                "timestamp": ts,
            }
            if version is not None:
                event["model_version"] = version
            self._add("labels", event, plain)

    def _add(self, kind: str, event: dict[str, Any], plain: bool = False) -> None:
        with self._lock:
            buf = self._buffers[kind]
            if not buf:
                self._since[kind] = time.monotonic()
            if not plain:
                self._unchecked.add(kind)  # the batch's body must be checked before msgspec
            buf.append(event)
            self._raise_deferred()
            if len(buf) >= self.batch_size or (self._lingerer is None and self._stale(kind)):
                self._send(kind)

    def _add_encoded(self, kind: str, payloads: list[bytes], model_name: str) -> None:
        """Buffer events already encoded (single-object Avro), sending full batches."""
        with self._lock:
            start = 0
            while start < len(payloads):
                buf = self._buffers[kind]
                if not buf:
                    self._since[kind] = time.monotonic()
                room = max(self.batch_size - len(buf), 1)
                buf.extend(payloads[start : start + room])
                start += room
                self._raise_deferred()
                if len(buf) >= self.batch_size:
                    self._send(kind)
            if self._lingerer is None and self._stale(kind):
                self._send(kind)

    def _stale(self, kind: str) -> bool:
        """The oldest buffered event of ``kind`` has waited ``linger`` seconds (checked by
        the timer thread, or by each call when there is none)."""
        since = self._since.get(kind)
        return (
            self.linger is not None
            and since is not None
            and time.monotonic() - since >= self.linger
        )

    def _raise_deferred(self) -> None:
        """Raise the failure of a batch the linger timer sent (its events are buffered)."""
        if self._deferred is not None:
            failure, self._deferred = self._deferred, None
            raise failure

    def _linger_tick(self) -> None:
        """Settle the answered request in flight, then send partly filled batches whose
        oldest event has waited ``linger`` seconds; a failure (its events back in the
        buffer) is raised to the caller's next call. Never waits for a request."""
        with self._lock:
            in_flight = self._in_flight
            if self._closed.is_set() or self._deferred is not None:
                return
            if in_flight is not None and not in_flight[2].done():
                return
            try:
                self._settle()
                for kind in ("predictions", "labels"):  # (predictions first, as in flush)
                    if self._stale(kind):
                        self._send(kind)
            except PublishError as exc:
                self._deferred = exc

    # -- sending --------------------------------------------------------------------------

    def flush(self, *, wait: bool = False) -> PublishReport:
        """Send everything buffered (predictions first, so labels find them) and return once
        the server has answered; with ``wait``, once it has also processed it."""
        with self._lock:
            self._raise_deferred()
            self._send("predictions", wait=wait)
            self._send("labels", wait=wait)
            self._settle()
            if wait and self._position > self._waited:
                # batches sent before (full ones, or by the linger timer) without waiting
                self._wait_processed(self._position)
            return self.report

    def _wait_processed(self, position: int) -> None:
        """Ask the server to wait until everything before ``position`` is processed."""
        try:
            resp = self._client.get("/v1/processed", params={"position": position})
        except httpx.TransportError as exc:
            raise PublishError(f"cannot reach {self._client.base_url}: {exc}") from None
        if resp.status_code != 200:
            raise PublishError(f"GET /v1/processed answered {resp.status_code}: {_detail(resp)}")
        if resp.json().get("processed"):
            self._waited = max(self._waited, position)

    def _send(self, kind: str, *, wait: bool = False) -> None:
        if not self._buffers[kind]:
            return
        self._settle()  # one request in flight, in order; raises the last one's failure
        events = self._buffers[kind]
        self._buffers[kind] = []
        self._since.pop(kind, None)
        params = {"wait": "true"} if wait else None
        body, headers = self._body(kind, events)  # once
        if self._sender is None or wait:
            try:
                response = self._post(kind, events, body, headers, params)
            except PublishError:
                self._keep(kind, events)
                raise
            self._record(response)
            return
        answer = self._sender.submit(self._post, kind, events, body, headers, params)
        self._in_flight = (kind, events, answer)
        # Let the sender take the GIL now: otherwise it waits until this thread drops it,
        # which a thread busy building the next batch does only when the interpreter's
        # switch interval (5 ms) forces it, and the request goes out that much later.
        time.sleep(0)

    def _body(self, kind: str, events: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
        """The request body of a batch and its headers: Avro when sending Avro and every
        event encodes, else JSON."""
        codec = self._codec
        if codec is not None:
            schema = _SCHEMAS[kind]
            records = [e for e in events if type(e) is not bytes]  # (the rest: encoded)
            payloads = codec.encode_all(schema, records) if records else []
            if payloads is None:  # no native extension, or an event it does not encode
                encoded = codec.encode_many(schema, records)
                if all(type(item) is bytes for item in encoded):
                    payloads = encoded
            if payloads is not None:
                if len(records) < len(events):
                    fresh = iter(payloads)
                    payloads = [e if type(e) is bytes else next(fresh) for e in events]
                return avro_batch.join(payloads), _AVRO_BATCH_HEADERS
        body = _encode({"events": _records(events)}, checked=kind not in self._unchecked)
        self._unchecked.discard(kind)
        return body, _JSON_HEADERS

    def _keep(self, kind: str, events: list[dict[str, Any]]) -> None:
        """Put a failed batch back in front of the buffer, for a later flush."""
        self._buffers[kind] = events + self._buffers[kind]
        self._since[kind] = time.monotonic()  # (sent again by the timer after linger)
        self._unchecked.add(kind)  # (checked again when it is re-encoded)

    def _settle(self) -> None:
        """Wait for the request in flight; record its answer or raise its failure."""
        if self._in_flight is None:
            return
        kind, events, answer = self._in_flight
        self._in_flight = None
        try:
            response = answer.result()
        except PublishError:
            self._keep(kind, events)
            raise
        self._record(response)

    def _post(
        self,
        kind: str,
        events: list[dict[str, Any]],
        body: bytes,
        headers: dict[str, str],
        params: dict[str, str] | None,
    ) -> httpx.Response:
        """POST one batch, retrying; the answer (200, 202 or 422) or PublishError."""
        delay = self.backoff
        attempt = 0
        while True:
            try:
                resp = self._client.post(
                    f"/v1/{kind}", content=body, headers=headers, params=params
                )
            except httpx.TransportError as exc:
                failure = f"cannot reach {self._client.base_url}: {exc}"
            else:
                if resp.status_code in (200, 202, 422):
                    return resp
                if resp.status_code == 413 and len(events) > 1:
                    # Over the server's max_batch_size or max_body_bytes: in halves.
                    return self._post_halves(kind, events, params)
                if resp.status_code == 415 and headers is _AVRO_BATCH_HEADERS:
                    # A server without Avro batches: JSON from now on (not a retry).
                    logger.warning(
                        "%s does not take Avro batches (415: %s); sending JSON",
                        self._client.base_url,
                        _detail(resp),
                    )
                    self._codec = None
                    body = _encode({"events": _records(events)})
                    headers = _JSON_HEADERS
                    continue
                if resp.status_code not in (429, 500, 502, 503, 504):
                    raise PublishError(
                        f"POST /v1/{kind} answered {resp.status_code}: {_detail(resp)}"
                    )
                failure = f"POST /v1/{kind} answered {resp.status_code}: {_detail(resp)}"
            if attempt == self.max_retries:
                raise PublishError(f"{failure} (gave up after {attempt + 1} attempts)")
            attempt += 1
            self.report.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _post_halves(
        self, kind: str, events: list[dict[str, Any]], params: dict[str, str] | None
    ) -> httpx.Response:
        """:meth:`_post` of each half of a batch; one answer for both (indices of rejected
        events counted from the start of the whole batch)."""
        half = len(events) // 2
        if half < self.batch_size:
            logger.warning(
                "%s refused %d events in one request (413); sending batches of %d",
                self._client.base_url,
                len(events),
                half,
            )
            self.batch_size = half  # (read by the caller's thread: one atomic store)
        combined: dict[str, Any] = {"accepted": 0, "rejected": [], "position": None}
        processed = []
        for offset, part in ((0, events[:half]), (half, events[half:])):
            body, headers = self._body(kind, part)
            answer = self._post(kind, part, body, headers, params).json()
            combined["accepted"] += int(answer.get("accepted", 0))
            combined["rejected"].extend(
                {**r, "index": int(r["index"]) + offset} for r in answer.get("rejected", [])
            )
            if type(answer.get("position")) is int:
                combined["position"] = max(combined["position"] or 0, answer["position"])
                processed.append(answer.get("processed"))
        if processed:
            combined["processed"] = all(processed)
        self.report.requests += 1  # (the other half; _record counts one)
        return httpx.Response(202 if combined["accepted"] else 422, json=combined)

    def _record(self, resp: httpx.Response) -> None:
        self.report.requests += 1
        try:
            body = resp.json()
        except ValueError:
            raise PublishError(
                f"server answered {resp.status_code} with a body that is not JSON"
            ) from None
        self.report.accepted += int(body.get("accepted", 0))
        self.report.rejected.extend(body.get("rejected", []))
        position = body.get("position")
        if type(position) is int:
            self._position = max(self._position, position)
            if body.get("processed"):
                self._waited = max(self._waited, position)

    def close(self) -> None:
        """Flush, then close the connection."""
        self._closed.set()
        if self._lingerer is not None:
            self._lingerer.join()
        try:
            self.flush()
        finally:
            if self._sender is not None:
                self._sender.shutdown(wait=True)
            self._client.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _linger_loop(
    publisher: weakref.ReferenceType[Publisher], closed: threading.Event, tick: float
) -> None:
    """The linger timer's thread: :meth:`Publisher._linger_tick` every ``tick`` seconds
    until the publisher is closed or collected."""
    while not closed.wait(tick):
        pub = publisher()
        if pub is None:
            return
        pub._linger_tick()
        del pub


_JSON_HEADERS: Final = {"Content-Type": "application/json"}
_plain_features: Final = getattr(driftline_native, "plain_features", None)
_AVRO_BATCH_HEADERS: Final = {"Content-Type": avro_batch.MEDIA_TYPE}
_SCHEMAS: Final = {"predictions": "prediction", "labels": "label"}
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_NUMBERS: Final = frozenset({float, int, bool})
_STR: Final = frozenset({str})
_msgspec_encode: Final = msgspec.json.Encoder().encode


def send_record(pub: Publisher, kind: str, record: Mapping[str, Any]) -> None:
    """Buffer one event given as a record shaped like its Avro schema (``kind`` is
    ``"predictions"`` or ``"labels"``) on either publisher."""
    if kind == "predictions":
        pub.predict(
            record["model_name"],
            record["model_version"],
            record["features"],
            record["prediction"],
            prediction_id=record["prediction_id"],
            timestamp=record["timestamp"],
            scores=record.get("scores"),
            segment=record.get("segment"),
        )
    elif kind == "labels":
        pub.label(
            record["prediction_id"],
            record["model_name"],
            record["label"],
            timestamp=record["timestamp"],
            model_version=record.get("model_version"),
        )
    else:
        raise ValueError(f"kind must be 'predictions' or 'labels', got {kind!r}")


def _features(features: Mapping[str, Any]) -> dict[str, FeatureValue]:
    """``{k: _feature(v) ...}``; a dict of plain values and finite floats (the common case,
    which ``_feature`` keeps as is) is just copied (checked natively when the extension
    is installed: a fifth of the cost)."""
    if _plain_features is not None:
        plain: dict[str, FeatureValue] | None = _plain_features(features)
        if plain is not None:
            return plain
    if type(features) is dict:
        copy = dict(features)
        values = copy.values()
        kinds = set(map(type, values))
        if kinds <= _SCALARS:
            floats = values if kinds <= _NUMBERS else [v for v in values if type(v) is float]
            try:
                if math.isfinite(math.fsum(floats)):  # NaN or ±inf anywhere: not finite
                    return copy
            except (OverflowError, ValueError):  # huge, or inf and -inf: _feature decides
                pass
    return {k: _feature(v) for k, v in features.items()}


def _encode(payload: dict[str, list[dict[str, Any]]], *, checked: bool = False) -> bytes:
    """The request body: what ``httpx.post(json=payload)`` sends, by msgspec when the events
    hold nothing but what both encode alike (str keys, finite floats, plain types) —
    ``checked``: the caller built every event from parts it checked to be so."""
    if checked or all(map(_plain, payload["events"])):
        try:
            return _msgspec_encode(payload)
        except (TypeError, ValueError):  # e.g. a lone surrogate: json.dumps says what it says
            pass
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def _plain(event: dict[str, Any]) -> bool:
    """Whether msgspec encodes ``event`` exactly as ``json.dumps`` would.

    Top-level values are scalars or flat dicts of scalars with str keys (features, scores,
    segment); floats are finite. Anything else (a subclass, a UUID, a datetime, a float
    key, ...) is left to ``json.dumps``, which msgspec would encode differently or at all.
    """
    if type(event) is not dict or not set(map(type, event)) <= _STR:
        return False
    for value in event.values():
        kind = type(value)
        if kind is dict:
            if not set(map(type, value)) <= _STR:
                return False
            values = value.values()
            kinds = set(map(type, values))
            if kinds <= _NUMBERS:
                if float in kinds and not _finite(values):
                    return False
            elif not kinds <= _SCALARS or (
                float in kinds and not _finite([v for v in values if type(v) is float])
            ):
                return False
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif kind not in _SCALARS:
            return False
    return True


def _finite(numbers: Iterable[float]) -> bool:
    """Whether no float of ``numbers`` (floats, ints, bools) is NaN or ±inf."""
    try:
        return math.isfinite(math.fsum(numbers))
    except (OverflowError, ValueError):  # overflow, or inf and -inf: check one by one
        return all(math.isfinite(n) for n in numbers if type(n) is float)


def _feature(value: Any) -> FeatureValue:
    """numpy scalars and NaN become plain JSON values (NaN/inf -> null: a missing value)."""
    if value is None or isinstance(value, bool | str):
        return value
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int | float | bool | str):
        return value
    raise TypeError(
        f"feature values must be numbers, strings, booleans or None, got {type(value).__name__}"
    )


def _target(name: str, value: Any) -> float | str:
    """A prediction or label as JSON can carry it: a finite number or a string."""
    if type(value) is str or (type(value) is float and math.isfinite(value)):
        return value  # the common cases, before the slower checks below
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number or a string, got {value!r}")
    return value


def _floats(column: Any) -> bool:
    """Whether a feature column holds floats only (a float array, or a list of floats): its
    values are features ``predict`` keeps as they are (NaN and ±inf: missing)."""
    dtype = getattr(column, "dtype", None)
    if dtype is not None:
        return bool(dtype.kind == "f" and getattr(column, "ndim", 1) == 1)
    return type(column) is list and all(type(v) is float for v in column)


def _timestamps(timestamps: Any, n: int, what: str = "predictions") -> list[int]:
    """Epoch milliseconds per row: one per row given, or one value (None: now) for all."""
    if timestamps is None or isinstance(timestamps, int | float | datetime):
        return [_ms(timestamps)] * n
    if hasattr(timestamps, "tolist"):  # numpy array or pandas Series
        timestamps = timestamps.tolist()
    stamps = [_ms(t) for t in timestamps]
    if len(stamps) != n:
        raise ValueError(f"{len(stamps)} timestamps for {n} {what}")
    return stamps


def _records(events: list[Any]) -> list[Any]:
    """The events as dicts (for JSON): payloads ``predict_many`` encoded are decoded back
    to what ``predict`` would have buffered."""
    if all(type(e) is not bytes for e in events):
        return events
    from schemas.codec import AvroCodec

    codec = AvroCodec()
    out: list[Any] = []
    for event in events:
        if type(event) is bytes:
            record = codec.decode_as("prediction", event)
            event = {k: v for k, v in record.items() if v is not None or k == "features"}
        out.append(event)
    return out


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail", resp.text[:200]))
    except ValueError:
        return resp.text[:200]


class KafkaPublisher(Publisher):
    """Publisher that writes Avro events straight to Kafka, for the distributed runtime.

    Same ``predict`` / ``label`` / ``flush`` / ``close`` API as :class:`Publisher`.
    Events are encoded with the event contract's codec (Avro single-object encoding)
    and produced to ``driftline.predictions`` / ``driftline.labels``, keyed by model
    name, by a confluent-kafka producer with ``enable.idempotence=true`` and
    ``acks=all``: a retried send is never written twice.

    An event that does not fit its schema is not sent; it is listed in
    ``report.rejected`` with the reason (``{"prediction_id": ..., "reason": ...}``).
    ``report.accepted`` counts the events Kafka acknowledged.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,host:port...]``.
    topic_prefix
        Prefix of the topic names (as ``driftline worker --topic-prefix``).
    producer_config
        Extra librdkafka settings (security, ``linger.ms``, ...).
    flush_timeout
        Seconds ``flush`` waits for Kafka's acknowledgements.

    Examples
    --------
    ::

        with KafkaPublisher("kafka:9092") as pub:
            pid = pub.predict("churn", "3", {"age": 41, "plan": "pro"}, prediction=0.82)
            pub.label(pid, "churn", label=1.0)
    """

    def __init__(  # a different transport: Publisher.__init__ opens an HTTP client
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        producer_config: Mapping[str, Any] | None = None,
        flush_timeout: float = 30.0,
    ) -> None:
        from confluent_kafka import Producer

        from schemas.codec import AvroCodec
        from schemas.topics import Topic

        self._codec = AvroCodec()
        self._topics = {
            "predictions": (f"{topic_prefix}{Topic.PREDICTIONS.value}", "prediction"),
            "labels": (f"{topic_prefix}{Topic.LABELS.value}", "label"),
        }
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "linger.ms": 20,
                "compression.type": "lz4",
                # Java clients' default partitioner: a model's events land on the same
                # partition whichever language produced them.
                "partitioner": "murmur2_random",
                **(producer_config or {}),
                "enable.idempotence": True,
                "acks": "all",
            }
        )
        self.flush_timeout = flush_timeout
        self.report = PublishReport()

    def _add(self, kind: str, event: dict[str, Any], plain: bool = False) -> None:
        from schemas.codec import EncodeError

        topic, schema = self._topics[kind]
        try:
            value = self._codec.encode(schema, event)
        except EncodeError as exc:
            self.report.rejected.append(
                {"prediction_id": event.get("prediction_id"), "reason": exc.reason}
            )
            return
        self._produce(topic, str(event["model_name"]).encode("utf-8"), value)
        self._producer.poll(0)

    def _add_encoded(self, kind: str, payloads: list[bytes], model_name: str) -> None:
        topic, _schema = self._topics[kind]
        key = model_name.encode("utf-8")
        for value in payloads:
            self._produce(topic, key, value)
        self._producer.poll(0)

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
                return
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(0.1)

    def _delivered(self, error: Any, msg: Any) -> None:
        if error is None:
            self.report.accepted += 1
        else:
            self.report.rejected.append({"topic": msg.topic(), "reason": error.str()})

    def flush(self, *, wait: bool = False) -> PublishReport:
        """Wait until Kafka acknowledged every event (``wait`` is accepted for API
        compatibility: once acknowledged, an event is durable on the broker)."""
        remaining = self._producer.flush(self.flush_timeout)
        self.report.requests += 1
        if remaining:
            raise PublishError(
                f"{remaining} events not acknowledged by Kafka within {self.flush_timeout:.0f}s"
            )
        return self.report

    def close(self) -> None:
        """Flush (the producer needs no closing)."""
        self.flush()
