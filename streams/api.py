"""The HTTP API of ``driftline serve``: a thin layer over the runtime and the store.

This module owns the routes, their request and response shapes (documented in the
OpenAPI schema at ``/openapi.json``, browsable at ``/docs``), bearer-token auth, the
request limits and the Prometheus metrics of the API. Validation of events, the durable
log, processing and dead letters of rejected events stay in the runtime; the queries
stay in the store. Build the app with :func:`create_app` and serve it with uvicorn.

Routes
------
============================  ==========================================================
``POST /v1/predictions``      publish prediction events (JSON or Avro single-object)
``POST /v1/labels``           publish label events (JSON or Avro single-object)
``GET  /v1/models``           model versions seen (``store.models()``)
``GET  /v1/models/{name}/drift``  drift, dataset drift and performance series
``GET  /v1/alerts``           alerts in their latest revision (``state``, ``model``, ``limit``)
``GET  /v1/alerts/{id}``      one alert (404 if unknown)
``POST /v1/alerts/{id}/ack``  acknowledge an open alert (409 if acknowledged or resolved)
``POST /v1/alerts/{id}/resolve``  resolve an alert (409 if resolved)
``GET  /healthz``             liveness and store reachability (no auth; 503 if the store fails)
``GET  /metrics``             Prometheus text format (no auth)
============================  ==========================================================

Ingest bodies are one event object, ``{"events": [...]}`` or a JSON array
(``Content-Type: application/json``, or none), one Avro single-object encoded record
(``application/avro``, ``application/vnd.apache.avro+binary`` or ``avro/binary``), or an
Avro batch of them (``application/vnd.driftline.avro-batch``: an Avro array of bytes,
each item one single-object encoded event; see ``schemas/batch.py``). A batch whose
framing breaks is read up to the break; the rest is one rejected "event" (the index after
the last item read) and one dead letter.
JSON timestamps are int epoch milliseconds or ISO-8601 strings (naive means UTC), and
must lie in 1900-01-01 .. 2299-12-31, the range of ClickHouse's ``DateTime64``. The
answer is ``{"accepted": n, "rejected": [{"index": i, "reason": ...}], "position": p,
"processed": ...}``: 202 when at least one event was accepted, 422 (plus ``"detail"``)
when none was. ``?wait=true`` waits (up to ``wait_timeout`` seconds) until the runtime
has processed the accepted events; ``processed`` says whether it had.

Every rejected event ends up as a dead letter: events the runtime's ``submit`` rejects
are dead-lettered by the runtime; inputs the API rejects before they reach it
(malformed JSON, a body of the wrong shape, undecodable Avro, an unparseable or
out-of-range timestamp, an event that is not an object) are written by the API itself,
straight to the store (``store.write(Topic.DEAD_LETTERS, ...)``), with the topic the
input was meant for as ``source_topic``. Not dead-lettered: requests refused before
their body is read (401, 403, 413, 415) and empty batches.

Auth
----
Bearer tokens come from ``settings.api_tokens`` (token, role, name); the token's name is
the actor recorded on acknowledgements. Any valid token may read (models, drift,
alerts); ``publisher`` and ``admin`` may publish events; ``responder`` and ``admin`` may
acknowledge and resolve alerts. ``/healthz``, ``/metrics``, ``/openapi.json`` and
``/docs`` need no token. A missing or unknown token is a 401 with
``WWW-Authenticate: Bearer``; a token whose role may not do the thing is a 403.

With no token configured the API is open (every caller acts as ``"anonymous"`` with the
admin role), which :func:`create_app` allows only when ``settings.api_host`` is a
loopback address (``127.0.0.0/8``, ``::1``, ``localhost``) and logs a warning; on any
other address it raises :class:`ApiConfigError`.

Limits and errors
-----------------
A body above ``settings.max_body_bytes`` is a 413, by ``Content-Length`` or, without
one, as soon as the streamed body passes the limit; more than ``settings.max_batch_size``
events in one request is a 413 naming the limit. Every error answer is JSON with a
``"detail"`` string that names the field (or query parameter) and the reason where
known. Client input never causes a 5xx; a failing store is a 503.

The runtime
-----------
``runtime`` is duck-typed (:class:`Runtime`), per ``docs/core-api.md``:
``submit(topic, records) -> PublishResult(accepted, rejected, position)``,
``wait_for(position, timeout=...) -> bool``, ``store`` (a
:class:`streams.store.ClickHouseStore`) and ``stats() -> dict``. ``/metrics`` reads
these keys of ``runtime.stats()`` (a missing or non-numeric key counts as 0):

==================  ====================================  =================================
key                 value                                 exported as
==================  ====================================  =================================
``events_in``       ``{topic: n}`` events taken in        ``driftline_events_in_total{topic}``
``windows_closed``  ``n`` windows closed                  ``driftline_windows_closed_total``
``alerts_open``     ``n`` alerts open now                 ``driftline_alerts_open``
``dead_letters``    ``n`` dead letters written            ``driftline_dead_letters_total``
``lag_bytes``       input log bytes not yet processed     ``driftline_log_lag_bytes``
                    and stored
==================  ====================================  =================================

The app adds its own measurements: ``driftline_ingest_latency_seconds{topic}`` (time to
answer ``POST /v1/predictions`` and ``/v1/labels``), ``driftline_ingest_events_total{topic,
outcome}`` (``accepted`` / ``rejected`` through the API) and
``driftline_api_dead_letters_total{topic}`` (dead letters the API wrote itself, not
counted in the runtime's ``dead_letters``). Each app has its own ``CollectorRegistry``.
"""

# No ``from __future__ import annotations``: FastAPI resolves string annotations against
# module globals only, and the routes' dependencies are locals of ``create_app``.
import hashlib
import hmac
import importlib.metadata
import ipaddress
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, Protocol, Self

import msgspec
import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas import batch as avro_batch
from schemas.codec import AvroCodec, DecodeError, EncodeError, dead_letter_record
from schemas.columns import PredictionColumns
from schemas.topics import Topic
from streams.store import ClickHouseStore, StoreError

__all__ = [
    "ACK_WAIT_SECONDS",
    "AVRO_BATCH_CONTENT_TYPE",
    "AVRO_CONTENT_TYPES",
    "MAX_TIMESTAMP_MS",
    "MIN_TIMESTAMP_MS",
    "ApiConfigError",
    "ApiSettings",
    "PublishOutcome",
    "Runtime",
    "create_app",
    "parse_time",
]

logger = logging.getLogger(__name__)

ACK_WAIT_SECONDS: Final = 10.0
"""How long acknowledge / resolve wait for the runtime to apply the action."""

AVRO_CONTENT_TYPES: Final = frozenset(
    {"application/avro", "application/vnd.apache.avro+binary", "avro/binary"}
)
"""Content types of an ingest body holding one Avro single-object encoded record."""

AVRO_BATCH_CONTENT_TYPE: Final = avro_batch.MEDIA_TYPE
"""Content type of an ingest body holding an Avro batch (``schemas.batch``)."""

_BodyKind = Literal["json", "avro", "avro-batch"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TIMESTAMP_MS: Final = -2_208_988_800_000
"""1900-01-01T00:00:00Z, the earliest instant ClickHouse's ``DateTime64`` holds."""
MAX_TIMESTAMP_MS: Final = 10_413_792_000_000
"""2300-01-01T00:00:00Z (exclusive), the end of ClickHouse's ``DateTime64`` range."""

_ANONYMOUS: Final = "anonymous"
_READERS: Final = frozenset({"publisher", "responder", "admin"})
_PUBLISHERS: Final = frozenset({"publisher", "admin"})
_RESPONDERS: Final = frozenset({"responder", "admin"})
_ADMINS: Final = frozenset({"admin"})
_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiConfigError(ValueError):
    """The settings do not allow serving the API (e.g. no token on a public address)."""


# --------------------------------------------------------------------------- interfaces


class _SecretLike(Protocol):
    def get_secret_value(self) -> str: ...


class _TokenLike(Protocol):
    @property
    def token(self) -> _SecretLike: ...

    @property
    def role(self) -> str: ...

    @property
    def name(self) -> str: ...


class ApiSettings(Protocol):
    """What the API reads of ``driftline.settings.Settings`` (streams does not import driftline)."""

    @property
    def api_host(self) -> str: ...

    @property
    def api_tokens(self) -> Sequence[_TokenLike]: ...

    @property
    def max_body_bytes(self) -> int: ...

    @property
    def max_batch_size(self) -> int: ...


class PublishOutcome(Protocol):
    """``PublishResult`` of ``runtime.submit``: indices into the submitted list."""

    @property
    def accepted(self) -> Sequence[int]: ...

    @property
    def rejected(self) -> Sequence[tuple[int, str]]: ...

    @property
    def position(self) -> int: ...


class Runtime(Protocol):
    """The part of ``streams.embedded.EmbeddedRuntime`` (or any runtime) the API uses.

    Optional: a runtime with a ``backlogged`` attribute must also take
    ``submit(..., wait_for_room=False)`` (return without waiting for back-pressure); while
    it is not backlogged, small batches are then ingested in the event loop itself. A
    runtime without it is always called from a worker thread.

    Optional too: ``submit_encoded(topic, payloads, records, wait_for_room=...)``, which
    takes Avro events as they came (each payload in the current schema's single-object
    encoding, with the record ``AvroCodec.decode_all`` decoded from it) without encoding
    them again. Without it, Avro events are submitted as records.
    """

    @property
    def store(self) -> ClickHouseStore: ...

    def submit(self, topic: Topic, records: list[dict[str, Any]]) -> PublishOutcome: ...

    def wait_for(self, position: int, timeout: float = ...) -> bool: ...

    def stats(self) -> dict[str, Any]: ...


# --------------------------------------------------------------------------- models

_TIME_DOC = (
    "Event time: int epoch milliseconds (UTC) or an ISO-8601 date-time string "
    "(without an offset it is taken as UTC); 1900-01-01 .. 2299-12-31."
)

EventTime = Annotated[
    Annotated[int, Field(ge=MIN_TIMESTAMP_MS, lt=MAX_TIMESTAMP_MS)]
    | Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})],
    Field(description=_TIME_DOC),
]


class PredictionEvent(BaseModel):
    """One model prediction (``schemas/avro/prediction.avsc`` is the authority)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "prediction_id": "p-1",
                    "model_name": "churn",
                    "model_version": "3",
                    "timestamp": "2024-05-01T12:00:00Z",
                    "features": {"age": 42, "city": "Lyon", "income": None},
                    "prediction": 0.83,
                }
            ]
        },
    )

    prediction_id: str = Field(description="Unique id; labels join on it.")
    model_name: str = Field(description="Registered model name.")
    model_version: str = Field(description="Model version that made the prediction.")
    timestamp: EventTime
    features: dict[str, bool | int | float | str | None] = Field(
        description="Model inputs by feature name; null means missing."
    )
    prediction: float | str = Field(description="Model output: a number or a class label.")
    scores: dict[str, float] | None = Field(
        default=None, description="Optional class probabilities or raw scores."
    )
    segment: dict[str, str] | None = Field(
        default=None, description="Optional segment tags (region, tenant, ...)."
    )


class LabelEvent(BaseModel):
    """Ground truth for an earlier prediction (``schemas/avro/label.avsc`` is the authority)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "prediction_id": "p-1",
                    "model_name": "churn",
                    "label": 1.0,
                    "timestamp": 1_714_568_400_000,
                }
            ]
        },
    )

    prediction_id: str = Field(description="Id of the prediction this label belongs to.")
    model_name: str = Field(description="Registered model name.")
    label: float | str = Field(description="True value: a number or a class label.")
    timestamp: EventTime
    model_version: str | None = Field(
        default=None, description="Model version, when the publisher knows it."
    )


class PredictionBatch(BaseModel):
    """Several prediction events in one request."""

    model_config = ConfigDict(extra="forbid")
    events: list[PredictionEvent]


class LabelBatch(BaseModel):
    """Several label events in one request."""

    model_config = ConfigDict(extra="forbid")
    events: list[LabelEvent]


class RejectedEvent(BaseModel):
    """An event of the request that was not accepted (it is kept as a dead letter)."""

    index: int = Field(description="Position of the event in the request, from 0.")
    reason: str = Field(description="Why, naming the field where known.")


class ProcessedResult(BaseModel):
    """Whether the events before a log position are processed."""

    position: int = Field(description="The log position asked about.")
    processed: bool = Field(
        description="Whether everything before it was processed and stored (waited for "
        "up to the API's wait timeout)."
    )


class IngestResult(BaseModel):
    """Outcome of a publish request."""

    accepted: int = Field(description="Events accepted into the runtime's log.")
    rejected: list[RejectedEvent] = Field(description="Events not accepted, by index.")
    position: int | None = Field(
        description="Log position to wait for; null when nothing reached the runtime."
    )
    processed: bool | None = Field(
        default=None,
        description="With ?wait=true: whether processing finished in time; else null.",
    )


class IngestError(IngestResult):
    """Outcome of a publish request none of whose events was accepted."""

    detail: str = Field(description="What was wrong.")


class ErrorResponse(BaseModel):
    """Every error answer."""

    detail: str = Field(description="What was wrong, naming the field where known.")


class ModelSummary(BaseModel):
    """A model version seen in predictions, alerts or model events."""

    model_name: str
    model_version: str
    predictions: int = Field(description="Raw prediction events still kept.")
    first_seen: int | None = Field(description="Epoch ms of the first prediction kept.")
    last_seen: int | None = Field(description="Epoch ms of the last prediction kept.")
    open_alerts: int
    acknowledged_alerts: int
    last_event: str | None = Field(description="Latest model event type, e.g. registered.")
    last_event_at: int | None


class ModelList(BaseModel):
    """Every model version known to the store."""

    models: list[ModelSummary]


class DriftMetricPoint(BaseModel):
    """One statistic of one feature in one window (a row of ``drift_metrics``)."""

    metric_id: str
    model_name: str
    model_version: str
    segment: str = Field(description="Segment; empty for unsegmented windows.")
    window_start: int = Field(description="Epoch ms.")
    window_end: int = Field(description="Epoch ms.")
    feature: str = Field(description="Feature, __prediction__ or __dataset__.")
    metric: str = Field(description="psi, ks, chi2, jensenshannon, wasserstein, ...")
    value: float | None
    pvalue: float | None
    threshold: float | None
    drift: bool
    primary: bool = Field(description="The statistic deciding the feature's verdict.")
    n_reference: int
    n_current: int
    missing_rate: float | None
    out_of_range_rate: float | None
    late_events: int


class PerformancePoint(BaseModel):
    """Model quality in one window (a row of ``performance_metrics``)."""

    metric_id: str
    model_name: str
    model_version: str
    window_start: int = Field(description="Epoch ms.")
    window_end: int = Field(description="Epoch ms.")
    metric: str = Field(description="accuracy, f1, rmse, mae, ...")
    value: float | None
    n_labels: int


class DriftReport(BaseModel):
    """Drift and performance of a model over time."""

    model_name: str
    model_version: str | None = Field(description="The version filter; null: all versions.")
    drift: list[DriftMetricPoint] = Field(description="Per-feature drift statistics.")
    dataset_drift: list[DriftMetricPoint] = Field(description="Dataset-level drift per window.")
    performance: list[PerformancePoint] = Field(description="Windowed model quality.")


class Alert(BaseModel):
    """An alert in its latest revision (a row of ``alerts``)."""

    alert_id: str
    model_name: str
    model_version: str
    kind: str = Field(description="data_drift, prediction_drift, concept_drift or performance.")
    feature: str | None
    state: str = Field(description="open, acknowledged or resolved.")
    severity: str = Field(description="info, warning or critical.")
    opened_at: int = Field(description="Epoch ms.")
    updated_at: int = Field(description="Epoch ms.")
    revision: int
    value: float | None
    threshold: float | None
    occurrences: int
    message: str
    acknowledged_by: str | None
    resolved_by: str | None
    note: str | None


class AlertList(BaseModel):
    """Alerts, most recently updated first."""

    alerts: list[Alert]


class AlertActionResult(Alert):
    """The alert as stored after an acknowledge or resolve."""

    pending: bool = Field(
        description="True when the runtime had not applied the action within the wait; "
        "the alert is then shown as it was."
    )


class AlertAction(BaseModel):
    """Optional body of acknowledge and resolve."""

    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, description="Note recorded with the action.")


class ModelEventBody(BaseModel):
    """A model registry event: ``registered`` (with the version's reference profile), ``promoted``,
    ``archived`` or ``retrain_failed``."""

    model_config = ConfigDict(extra="forbid")
    model_name: str = Field(min_length=1, description="Registered model name.")
    model_version: str = Field(min_length=1, description="Model version.")
    event_type: Literal["registered", "promoted", "archived", "retrain_failed"]
    timestamp: int | str | None = Field(
        default=None, description="Event time: epoch ms or ISO-8601; default now."
    )
    reference_profile: str | None = Field(
        default=None, description="ReferenceProfile JSON (detectors.profile) of this version."
    )
    run_id: str | None = None
    request_id: str | None = None
    message: str | None = None


class ModelEventResult(BaseModel):
    """What became of a model event."""

    event_id: str
    position: int
    processed: bool


class StoreHealth(BaseModel):
    """Reachability of the store."""

    database: str
    schema_version: int | None = None
    error: str | None = None


class Health(BaseModel):
    """Answer of ``/healthz``."""

    status: Literal["ok", "unavailable"]
    store: StoreHealth
    version: str
    detail: str | None = None


# --------------------------------------------------------------------------- helpers


def parse_time(value: Any, field: str) -> int:
    """Epoch milliseconds from an int, an integral float or a string (digits or ISO-8601).

    Parameters
    ----------
    value
        ``int`` epoch ms, a float with no fraction, a string of digits (epoch ms) or an
        ISO-8601 date-time (naive means UTC).
    field
        Name used in the error message (``"timestamp"``, ``"since"``, ...).

    Returns
    -------
    int
        Epoch milliseconds within ``[MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS)``.

    Raises
    ------
    ValueError
        Not a time, or outside the range ClickHouse can store.

    Examples
    --------
    >>> parse_time("2024-05-01T12:00:00Z", "timestamp")
    1714564800000
    >>> parse_time("2024-05-01T14:00:00+02:00", "timestamp")
    1714564800000
    >>> parse_time(1714564800000, "timestamp")
    1714564800000
    >>> parse_time("yesterday", "since")
    Traceback (most recent call last):
    ...
    ValueError: field 'since': 'yesterday' is neither epoch milliseconds nor an ISO-8601 date-time
    """
    where = f"field '{field}'"
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected epoch milliseconds or ISO-8601, got bool {value}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{where}: {value!r} is not a whole number of milliseconds")
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdigit():
            value = int(text)
        else:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                shown = value if len(value) <= 40 else value[:37] + "..."
                raise ValueError(
                    f"{where}: {shown!r} is neither epoch milliseconds nor an ISO-8601 date-time"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            try:
                value = (moment - _EPOCH) // timedelta(milliseconds=1)
            except OverflowError:  # an offset pushed it past datetime's range
                raise ValueError(f"{where}: {text!r} is out of range") from None
    if not isinstance(value, int):
        raise ValueError(
            f"{where}: expected epoch milliseconds or ISO-8601, got {type(value).__name__}"
        )
    if not MIN_TIMESTAMP_MS <= value < MAX_TIMESTAMP_MS:
        raise ValueError(
            f"{where}: {value} ms is outside 1900-01-01 .. 2299-12-31, the range the store holds"
        )
    return value


def _finite(value: Any) -> Any:
    """``value`` with NaN and ±inf floats (nested in dicts and lists) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _package_version() -> str:
    try:
        return importlib.metadata.version("driftline")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _error(status: int, detail: str, headers: Mapping[str, str] | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=detail, headers=dict(headers or {}))


def _describe_location(loc: Sequence[Any]) -> str:
    if not loc:
        return "request"
    where, rest = str(loc[0]), [str(part) for part in loc[1:]]
    path = ".".join(rest)
    if where == "body":
        return f"body field '{path}'" if path else "body"
    if where in ("query", "path", "header", "cookie"):
        return f"{where} parameter '{path}'" if path else where
    return ".".join([where, *rest])


def _validation_detail(errors: Iterable[Mapping[str, Any]]) -> str:
    parts = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            parts.append(f"body: malformed JSON{f' ({reason})' if reason else ''}")
            continue
        parts.append(f"{_describe_location(loc)}: {message}")
    return "; ".join(parts) or "invalid request"


# --------------------------------------------------------------------------- body limit


class _BodyLimit:
    """ASGI middleware: refuse bodies above ``max_bytes`` with a JSON 413.

    ``Content-Length`` is checked before the app runs; a body without it (chunked) is
    counted as it streams in and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = value
        if declared is not None:
            try:
                length = int(declared)
                if length < 0:
                    raise ValueError
            except ValueError:
                await _send_json(send, 400, {"detail": "header 'content-length' is not a size"})
                return
            if length > self.max_bytes:
                await _send_json(send, 413, {"detail": self._message(length)})
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _error(413, self._message(None))
            return message

        await self.app(scope, limited_receive, send)

    def _message(self, length: int | None) -> str:
        size = f"of {length} bytes " if length is not None else ""
        return f"request body {size}exceeds the limit of {self.max_bytes} bytes (max_body_bytes)"


class _JSONResponse(JSONResponse):
    """JSON with ASCII escapes: a lone surrogate echoed from the input cannot break encoding."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# --------------------------------------------------------------------------- auth


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name (the actor of its actions) and its role."""

    name: str
    role: str


_bearer = HTTPBearer(
    auto_error=False,
    description="A token of settings.api_tokens: `Authorization: Bearer <token>`.",
)


class _Authenticator:
    """Bearer-token lookup (constant-time per token) and role checks."""

    def __init__(self, tokens: Sequence[_TokenLike] | None) -> None:
        # None: auth disabled (no token configured, loopback only).
        self._tokens = (
            None
            if tokens is None
            else [
                (token.token.get_secret_value().encode("utf-8"), Principal(token.name, token.role))
                for token in tokens
            ]
        )

    def require(
        self, roles: frozenset[str], action: str
    ) -> Callable[[HTTPAuthorizationCredentials | None], Principal]:
        """A FastAPI dependency admitting the tokens whose role is in ``roles``."""

        def dependency(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        ) -> Principal:
            if self._tokens is None:
                return Principal(_ANONYMOUS, "admin")
            if credentials is None:
                raise _error(
                    401,
                    "missing bearer token: send 'Authorization: Bearer <token>'",
                    {"WWW-Authenticate": "Bearer"},
                )
            principal = self._lookup(credentials.credentials)
            if principal is None:
                raise _error(
                    401,
                    "invalid bearer token",
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            if principal.role not in roles:
                needed = " or ".join(sorted(roles))
                raise _error(
                    403,
                    f"token '{principal.name}' has role '{principal.role}', which may not "
                    f"{action}; that needs role {needed}",
                )
            return principal

        return dependency

    def _lookup(self, secret: str) -> Principal | None:
        assert self._tokens is not None
        given = secret.encode("utf-8")
        found = None
        for expected, principal in self._tokens:  # no early exit: constant time per token
            if hmac.compare_digest(expected, given):
                found = principal
        return found


# --------------------------------------------------------------------------- metrics


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


class _RuntimeCollector(Collector):
    """Exports ``runtime.stats()`` at scrape time (see the module docstring for the keys)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterable[Metric]:
        try:
            stats = self._runtime.stats()
        except Exception:  # a scrape must not fail because the runtime is stopping
            logger.exception("runtime.stats() failed; runtime metrics left out of this scrape")
            return []
        if not isinstance(stats, Mapping):
            stats = {}
        events = CounterMetricFamily(
            "driftline_events_in", "Events taken in by the runtime, per topic.", labels=["topic"]
        )
        events_in = stats.get("events_in")
        for topic, count in events_in.items() if isinstance(events_in, Mapping) else []:
            events.add_metric([str(topic)], _number(count))
        return [
            events,
            CounterMetricFamily(
                "driftline_windows_closed",
                "Event-time windows closed.",
                value=_number(stats.get("windows_closed")),
            ),
            GaugeMetricFamily(
                "driftline_alerts_open", "Alerts open now.", value=_number(stats.get("alerts_open"))
            ),
            CounterMetricFamily(
                "driftline_dead_letters",
                "Dead letters written by the runtime.",
                value=_number(stats.get("dead_letters")),
            ),
            GaugeMetricFamily(
                "driftline_log_lag_bytes",
                "Bytes of the input log not yet processed and stored (0: caught up).",
                value=_number(stats.get("lag_bytes")),
            ),
        ]


@dataclass(frozen=True)
class _ApiMetrics:
    registry: CollectorRegistry
    latency: Histogram
    events: Counter
    dead_letters: Counter

    @classmethod
    def build(cls, runtime: Runtime) -> Self:
        registry = CollectorRegistry()
        registry.register(_RuntimeCollector(runtime))
        return cls(
            registry=registry,
            latency=Histogram(
                "driftline_ingest_latency_seconds",
                "Time to answer POST /v1/predictions and /v1/labels.",
                ["topic"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            events=Counter(
                "driftline_ingest_events",
                "Events received by the HTTP API, by outcome (accepted, rejected).",
                ["topic", "outcome"],
                registry=registry,
            ),
            dead_letters=Counter(
                "driftline_api_dead_letters",
                "Dead letters the API wrote itself (inputs rejected before the runtime).",
                ["topic"],
                registry=registry,
            ),
        )


# --------------------------------------------------------------------------- ingest


@dataclass
class _Rejection:
    index: int
    reason: str


class _Ingest:
    """Reads one publish request, hands its events to the runtime, builds the answer."""

    def __init__(
        self,
        runtime: Runtime,
        codec: AvroCodec,
        metrics: _ApiMetrics,
        max_batch_size: int,
        wait_timeout: float,
    ) -> None:
        self._runtime = runtime
        self._codec = codec
        self._metrics = metrics
        self._max_batch_size = max_batch_size
        self._wait_timeout = wait_timeout

    async def handle(self, request: Request, topic: Topic, wait: bool) -> Response:
        started = time.perf_counter()
        try:
            return await self._handle(request, topic, wait)
        finally:
            self._metrics.latency.labels(topic=str(topic)).observe(time.perf_counter() - started)

    async def _handle(self, request: Request, topic: Topic, wait: bool) -> Response:
        kind = _body_kind(request.headers.get("content-type"))
        body = await request.body()
        if (
            not wait
            and len(body) <= INLINE_MAX_BYTES
            and not getattr(self._runtime, "backlogged", True)
        ):
            # A common batch (up to ~1,600 predictions) is ingested right here: the hop to a
            # worker thread and back costs two GIL handoffs, ~2-5 ms a request against
            # ~10 ms of work for 1,000 predictions (SDK throughput +10%). The loop is never
            # held by back-pressure: only when the backlog is low, and submit does not wait.
            return self._ingest(topic, kind, body, wait, inline=True)
        # Otherwise one hop to a worker thread for everything after the body is read
        # (parsing a 10 MB body, submit and its back-pressure, dead letters, the wait).
        return await run_in_threadpool(self._ingest, topic, kind, body, wait)

    def _ingest(
        self,
        topic: Topic,
        kind: _BodyKind,
        body: bytes,
        wait: bool,
        inline: bool = False,
    ) -> Response:
        events: list[Any]
        raws: list[bytes | None] | None  # raw input per event for dead letters; None: re-serialize
        rejections: list[_Rejection] = []
        letters: list[dict[str, Any]] = []
        if kind == "avro":
            try:
                events, raws = [self._codec.decode_as(topic.schema_name, body)], [body]
            except DecodeError as exc:
                self._dead_letters(topic, [dead_letter_record(topic, body, exc)])
                reason = f"Avro body is not a '{topic.schema_name}' record: {exc.reason}"
                return self._answer(topic, 1, [], [_Rejection(0, reason)], None, None)
        elif kind == "avro-batch":
            frames, broken = self._avro_frames(topic, body)
            submit_encoded = getattr(self._runtime, "submit_encoded", None)
            whole = broken is None and submit_encoded is not None
            batch: list[dict[str, Any]] | PredictionColumns | None = None
            if whole and topic == Topic.PREDICTIONS and getattr(self._runtime, "columns", True):
                # The SDK's batch: one model version, the same numeric features in every
                # event. Decoded into columns, no dict per event (schemas.columns).
                columns = self._codec.decode_prediction_columns(frames)
                if columns is not None and _all_in_range(columns.timestamps):
                    batch = columns
            decoded_all = None
            if batch is None:
                decoded_all = self._codec.decode_all(topic.schema_name, frames)
                if whole and decoded_all is not None and all(map(_in_range, decoded_all)):
                    batch = decoded_all  # every event current, decoded natively
            if batch is not None and submit_encoded is not None:
                # appended as they came, not encoded again
                result = submit_encoded(topic, frames, batch, wait_for_room=not inline)
                return self._submitted(topic, len(frames), result, wait)
            outcomes: Sequence[dict[str, Any] | DecodeError] = (
                decoded_all  # (decoded, but a time out of range or no submit_encoded)
                if decoded_all is not None
                else self._codec.decode_many_as(topic.schema_name, frames)
            )
            events, raws = [], []
            for index, (frame, decoded) in enumerate(zip(frames, outcomes, strict=True)):
                if isinstance(decoded, DecodeError):
                    reason = f"not a '{topic.schema_name}' record: {decoded.reason}"
                    rejections.append(_Rejection(index, reason))
                    letters.append(dead_letter_record(topic, frame, decoded))
                    decoded = None  # a placeholder, skipped below
                events.append(decoded)
                raws.append(frame)
            if broken is not None:
                rejections.append(broken[0])
                letters.append(broken[1])
        else:
            events = self._json_events(topic, body)
            raws = None

        records: list[dict[str, Any]] = []
        origin: list[int] = []  # index in the request of each submitted record
        for index, event in enumerate(events):
            if event is None and kind == "avro-batch":
                continue  # rejected above
            try:
                records.append(_prepare(event))
                origin.append(index)
            except ValueError as exc:
                rejections.append(_Rejection(index, str(exc)))
                raw = raws[index] if raws is not None else None
                letters.append(
                    dead_letter_record(topic, raw or _json_bytes(event), EncodeError(str(exc)))
                )
        if letters:
            self._dead_letters(topic, letters)

        position: int | None = None
        accepted: list[int] = []
        if records:
            result = (
                self._runtime.submit(topic, records, wait_for_room=False)
                if inline
                else self._runtime.submit(topic, records)
            )
            position = int(result.position)
            accepted = [origin[i] for i in result.accepted]
            rejections += [_Rejection(origin[i], str(reason)) for i, reason in result.rejected]
        n_events = max(len(events), max((r.index + 1 for r in rejections), default=0))
        return self._finish(topic, n_events, accepted, rejections, position, wait)

    def _submitted(self, topic: Topic, n_events: int, result: Any, wait: bool) -> Response:
        """The answer to a batch submitted whole (``submit_encoded``)."""
        rejections = [_Rejection(i, str(reason)) for i, reason in result.rejected]
        accepted = list(result.accepted)
        return self._finish(topic, n_events, accepted, rejections, int(result.position), wait)

    def _finish(
        self,
        topic: Topic,
        n_events: int,
        accepted: list[int],
        rejections: list[_Rejection],
        position: int | None,
        wait: bool,
    ) -> Response:
        processed: bool | None = None
        if wait and accepted and position is not None:
            processed = bool(self._runtime.wait_for(position, self._wait_timeout))
        return self._answer(topic, n_events, accepted, rejections, position, processed)

    def _avro_frames(
        self, topic: Topic, body: bytes
    ) -> tuple[list[bytes], tuple[_Rejection, dict[str, Any]] | None]:
        """The events of an Avro batch body, and for a body whose framing breaks, the
        rejection and dead letter of its rest (the index after the last event read)."""
        split = avro_batch.split(body)
        frames = split.frames
        self._check_batch_size(len(frames) + (split.error is not None))
        if split.error is None:
            if not frames:
                raise _error(422, "the request holds no events")
            return frames, None
        reason = f"malformed Avro batch: {split.error}"
        letter = dead_letter_record(topic, body[split.rest :], DecodeError(reason))
        return frames, (_Rejection(len(frames), reason), letter)

    def _answer(
        self,
        topic: Topic,
        n_events: int,
        accepted: list[int],
        rejections: list[_Rejection],
        position: int | None,
        processed: bool | None,
    ) -> Response:
        rejections.sort(key=lambda r: r.index)
        self._metrics.events.labels(topic=str(topic), outcome="accepted").inc(len(accepted))
        self._metrics.events.labels(topic=str(topic), outcome="rejected").inc(len(rejections))
        body: dict[str, Any] = {
            "accepted": len(accepted),
            "rejected": [{"index": r.index, "reason": r.reason} for r in rejections],
            "position": position,
            "processed": processed,
        }
        if accepted:
            return _JSONResponse(body, status_code=202)
        first = rejections[0]
        what = "the event was" if n_events == 1 else f"all {n_events} events were"
        body["detail"] = f"{what} rejected; event {first.index}: {first.reason}"
        return _JSONResponse(body, status_code=422)

    def _json_events(self, topic: Topic, body: bytes) -> list[Any]:
        try:
            document = _loads(body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            message = f"malformed JSON body: {exc}"
            self._dead_letters(topic, [dead_letter_record(topic, body, DecodeError(message))])
            raise _error(400, message) from None
        if isinstance(document, list):
            events = document
        elif isinstance(document, dict) and "events" in document:
            extra = sorted(key for key in document if key != "events")
            reason: str | None = None
            if extra:
                reason = f"unknown field {extra[0]!r} next to 'events' in the batch envelope"
            elif not isinstance(document["events"], list):
                reason = (
                    f"body field 'events' must be an array, got {_json_type(document['events'])}"
                )
            if reason is not None:
                self._dead_letters(topic, [dead_letter_record(topic, body, DecodeError(reason))])
                raise _error(422, reason)
            events = document["events"]
        elif isinstance(document, dict):
            events = [document]
        else:
            reason = (
                'body must be an event object, {"events": [...]} or an array of events, '
                f"got {_json_type(document)}"
            )
            self._dead_letters(topic, [dead_letter_record(topic, body, DecodeError(reason))])
            raise _error(422, reason)
        if not events:
            raise _error(422, "the request holds no events")
        self._check_batch_size(len(events))
        return events

    def _check_batch_size(self, count: int) -> None:
        """413 for a request of more than ``max_batch_size`` events."""
        if count > self._max_batch_size:
            raise _error(
                413,
                f"{count} events in one request exceed the limit of "
                f"{self._max_batch_size} (max_batch_size); split the batch",
            )

    def _dead_letters(self, topic: Topic, letters: list[dict[str, Any]]) -> None:
        try:
            self._runtime.store.write(Topic.DEAD_LETTERS, letters)
        except Exception:  # the client still gets its 4xx; the loss must be visible
            logger.exception("could not write %d dead letters of %s", len(letters), topic)
            return
        self._metrics.dead_letters.labels(topic=str(topic)).inc(len(letters))


def _body_kind(content_type: str | None) -> _BodyKind:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in AVRO_CONTENT_TYPES:
        return "avro"
    if media == AVRO_BATCH_CONTENT_TYPE:
        return "avro-batch"
    if media in ("", "application/json") or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return "json"
    raise _error(
        415,
        f"unsupported Content-Type {media!r}: send application/json, one Avro "
        f"single-object record as {' or '.join(sorted(AVRO_CONTENT_TYPES))}, or an Avro "
        f"batch as {AVRO_BATCH_CONTENT_TYPE}",
    )


def _all_in_range(timestamps: np.ndarray) -> bool:
    """Whether every timestamp is one the store holds (``_in_range`` of each record)."""
    return bool(
        len(timestamps)
        and timestamps.min() >= MIN_TIMESTAMP_MS
        and timestamps.max() < MAX_TIMESTAMP_MS
    )


def _in_range(record: dict[str, Any]) -> bool:
    """Whether a decoded record's timestamp is one the store holds (what ``_prepare``
    checks of an event's)."""
    timestamp = record["timestamp"]
    return type(timestamp) is int and MIN_TIMESTAMP_MS <= timestamp < MAX_TIMESTAMP_MS


def _prepare(event: Any) -> dict[str, Any]:
    """The record to submit: a copy of ``event`` with its timestamp in epoch ms."""
    if not isinstance(event, dict):
        raise ValueError(f"event must be a JSON object, got {_json_type(event)}")
    record = dict(event)
    if "timestamp" in record:  # a missing one is the codec's to report
        timestamp = record["timestamp"]
        # Epoch ms in range (what the SDK sends) is kept as is; the rest is parse_time's.
        if type(timestamp) is not int or not MIN_TIMESTAMP_MS <= timestamp < MAX_TIMESTAMP_MS:
            record["timestamp"] = parse_time(timestamp, "timestamp")
    return record


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


INLINE_MAX_BYTES: Final = 1 << 20
"""Bodies up to this size (and without ``wait``) are ingested in the event loop itself."""

_msgspec_decode: Final = msgspec.json.Decoder().decode


def _loads(body: bytes) -> Any:
    """``json.loads(body)``, by msgspec's faster parser where the two agree.

    Whatever msgspec refuses (NaN and Infinity literals, numbers out of its range,
    lone surrogates, UTF-16/32 bodies, deep nesting, malformed JSON, ...) goes to
    ``json.loads``: it decides, with its own result or error message.
    """
    try:
        return _fast_loads(body)
    except Exception:  # msgspec's DecodeError / ValidationError, UnicodeDecodeError, ...
        return json.loads(body)


def _fast_loads(body: bytes) -> Any:
    # A frame of its own: msgspec then gives up on deep nesting where json.loads does.
    return _msgspec_decode(body)


def _json_bytes(value: Any) -> bytes:
    # ASCII escapes: a lone surrogate from the JSON parser cannot be encoded as UTF-8.
    return json.dumps(value, default=repr).encode("ascii")


# --------------------------------------------------------------------------- the app


def _ingest_body(event: type[BaseModel], batch: type[BaseModel]) -> dict[str, Any]:
    ref = f"#/components/schemas/{event.__name__}"
    avro = {
        "schema": {"type": "string", "format": "binary"},
        "description": "One Avro single-object encoded record (C3 01 + fingerprint + body).",
    }
    batch_body = {
        "schema": {"type": "string", "format": "binary"},
        "description": (
            "An Avro batch: the Avro encoding of an array of bytes "
            '({"type": "array", "items": "bytes"}), each item one single-object encoded '
            "record."
        ),
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            {"$ref": ref},
                            {"$ref": f"#/components/schemas/{batch.__name__}"},
                            {"type": "array", "items": {"$ref": ref}},
                        ]
                    }
                },
                **dict.fromkeys(sorted(AVRO_CONTENT_TYPES), avro),
                AVRO_BATCH_CONTENT_TYPE: batch_body,
            },
        }
    }


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Malformed request (e.g. JSON syntax).",
        401: "Missing or invalid bearer token.",
        403: "The token's role may not do this.",
        404: "No such resource.",
        409: "The alert is not in a state that allows this.",
        413: "Body above max_body_bytes, or more events than max_batch_size.",
        415: "Unsupported Content-Type.",
        422: "Invalid input.",
        503: "The store is unavailable.",
    }
    return {
        status: {"model": ErrorResponse, "description": described[status]} for status in statuses
    }


def create_app(
    runtime: Runtime,
    settings: ApiSettings,
    *,
    codec: AvroCodec | None = None,
    wait_timeout: float = ACK_WAIT_SECONDS,
) -> FastAPI:
    """The FastAPI application of ``driftline serve``.

    Parameters
    ----------
    runtime
        A started runtime (:class:`Runtime`: ``submit``, ``wait_for``, ``store``, ``stats``).
    settings
        ``driftline.settings.Settings`` (or anything with ``api_host``, ``api_tokens``,
        ``max_body_bytes``, ``max_batch_size``).
    codec
        Codec decoding Avro bodies; default: a new :class:`schemas.codec.AvroCodec`.
    wait_timeout
        Seconds ``?wait=true`` and acknowledge / resolve wait for processing.

    Returns
    -------
    FastAPI
        The app; serve it with ``uvicorn.run(app, host=settings.api_host, port=...)``.

    Raises
    ------
    ApiConfigError
        No API token is configured and ``settings.api_host`` is not a loopback address.
    """
    tokens = list(settings.api_tokens)
    if not tokens:
        if not _is_loopback(settings.api_host):
            raise ApiConfigError(
                f"no API token configured, so the HTTP API would be open to anyone reaching "
                f"{settings.api_host}: set DRIFTLINE_API_TOKENS, or bind to 127.0.0.1"
            )
        logger.warning(
            "no API token configured: the HTTP API on %s is open to every local process",
            settings.api_host,
        )
    auth = _Authenticator(tokens or None)
    read = auth.require(_READERS, "read")
    publish = auth.require(_PUBLISHERS, "publish events")
    respond = auth.require(_RESPONDERS, "acknowledge or resolve alerts")
    administer = auth.require(_ADMINS, "register models")
    metrics = _ApiMetrics.build(runtime)
    ingest = _Ingest(runtime, codec or AvroCodec(), metrics, settings.max_batch_size, wait_timeout)
    version = _package_version()

    app = FastAPI(
        default_response_class=_JSONResponse,
        title="driftline",
        version=version,
        description="Publish prediction and label events; read drift, performance and "
        "alerts; acknowledge and resolve alerts.",
    )
    app.add_middleware(_BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _JSONResponse({"detail": _validation_detail(exc.errors())}, status_code=422)

    @app.exception_handler(StoreError)
    async def _store_failed(request: Request, exc: StoreError) -> JSONResponse:
        logger.error("store failure on %s %s: %s", request.method, request.url.path, exc)
        return _JSONResponse({"detail": f"store unavailable: {exc}"}, status_code=503)

    # ---------------------------------------------------------------- ingest

    wait_query = Query(
        description="Wait until the runtime has processed the accepted events "
        f"(at most {wait_timeout:g} s); the answer's 'processed' says whether it had."
    )

    @app.post(
        "/v1/predictions",
        status_code=202,
        response_model=IngestResult,
        responses={
            **_responses(400, 401, 403, 413, 415),
            422: {"model": IngestError, "description": "No event was accepted."},
        },
        openapi_extra=_ingest_body(PredictionEvent, PredictionBatch),
        tags=["ingest"],
        summary="Publish prediction events",
    )
    async def post_predictions(
        request: Request,
        _: Annotated[Principal, Depends(publish)],
        wait: Annotated[bool, wait_query] = False,
    ) -> Response:
        """Publish one prediction, ``{"events": [...]}`` or an array; one Avro record or an
        Avro batch."""
        return await ingest.handle(request, Topic.PREDICTIONS, wait)

    @app.post(
        "/v1/labels",
        status_code=202,
        response_model=IngestResult,
        responses={
            **_responses(400, 401, 403, 413, 415),
            422: {"model": IngestError, "description": "No event was accepted."},
        },
        openapi_extra=_ingest_body(LabelEvent, LabelBatch),
        tags=["ingest"],
        summary="Publish label events",
    )
    async def post_labels(
        request: Request,
        _: Annotated[Principal, Depends(publish)],
        wait: Annotated[bool, wait_query] = False,
    ) -> Response:
        """Publish one label, ``{"events": [...]}`` or an array; one Avro record or an Avro
        batch."""
        return await ingest.handle(request, Topic.LABELS, wait)

    @app.post(
        "/v1/model-events",
        status_code=200,
        response_model=ModelEventResult,
        responses=_responses(401, 403, 413, 422, 503),
        tags=["models"],
        summary="Register a model version (with its reference profile) or record a registry event",
    )
    def post_model_event(
        _: Annotated[Principal, Depends(administer)], body: ModelEventBody
    ) -> dict[str, Any]:
        """Drift windows of a version start once its ``registered`` event (with a reference
        profile) is processed; predictions of an unregistered version are dead-lettered."""
        try:
            ts = _now_ms() if body.timestamp is None else parse_time(body.timestamp, "timestamp")
        except ValueError as exc:
            raise _error(422, str(exc)) from None
        record = {**body.model_dump(), "timestamp": ts}
        record["event_id"] = hashlib.blake2b(
            json.dumps(record, sort_keys=True).encode(), digest_size=16
        ).hexdigest()
        result = runtime.submit(Topic.MODEL_EVENTS, [record])
        if not result.accepted:
            reasons = "; ".join(reason for _, reason in result.rejected) or "rejected"
            raise _error(422, f"the model event was rejected: {reasons}")
        done = bool(runtime.wait_for(int(result.position), wait_timeout))
        return {"event_id": record["event_id"], "position": int(result.position), "processed": done}

    @app.get(
        "/v1/processed",
        response_model=ProcessedResult,
        responses=_responses(401, 403, 422),
        tags=["ingest"],
        summary="Wait until the events before a log position are processed",
    )
    def get_processed(
        _: Annotated[Principal, Depends(publish)],
        position: Annotated[
            int,
            Query(
                ge=0,
                description="A 'position' from publish answers: waits (at most "
                f"{wait_timeout:g} s) until every event before it is processed and stored.",
            ),
        ],
    ) -> dict[str, Any]:
        """What ``?wait=true`` does, for events already accepted (e.g. sent earlier by a
        publisher's background thread)."""
        log = getattr(runtime, "log", None)
        end = getattr(log, "end", None)
        if isinstance(end, int) and position > end:
            raise _error(422, f"position {position} is beyond the log's end ({end})")
        return {"position": position, "processed": bool(runtime.wait_for(position, wait_timeout))}

    # ---------------------------------------------------------------- queries

    @app.get(
        "/v1/models",
        response_model=ModelList,
        responses=_responses(401, 503),
        tags=["models"],
        summary="List model versions",
    )
    def get_models(_: Annotated[Principal, Depends(read)]) -> dict[str, Any]:
        """Every model version seen in predictions, alerts or model events."""
        return {"models": _finite(runtime.store.models())}

    @app.get(
        "/v1/models/{name}/drift",
        response_model=DriftReport,
        responses=_responses(401, 422, 503),
        tags=["models"],
        summary="Drift and performance of a model over time",
    )
    def get_drift(
        _: Annotated[Principal, Depends(read)],
        name: Annotated[str, Path(description="Model name.")],
        version: Annotated[str | None, Query(description="Model version; all if absent.")] = None,
        feature: Annotated[
            str | None, Query(description="One feature (or __prediction__) of the drift series.")
        ] = None,
        metric: Annotated[
            str | None, Query(description="One drift statistic (psi, ks, ...).")
        ] = None,
        since: Annotated[
            str | None,
            Query(description="Windows starting at or after: epoch ms or ISO-8601."),
        ] = None,
        until: Annotated[
            str | None, Query(description="Windows starting before: epoch ms or ISO-8601.")
        ] = None,
    ) -> dict[str, Any]:
        """Drift statistics, dataset drift and performance per window; empty lists if none.

        ``feature`` and ``metric`` filter the per-feature drift series only; the dataset
        drift and performance series cover every metric of the window range.
        """
        since_ms = _time_query(since, "since")
        until_ms = _time_query(until, "until")
        store = runtime.store
        return {
            "model_name": name,
            "model_version": version,
            "drift": _finite(
                store.drift_series(
                    name,
                    version,
                    feature=feature,
                    metric=metric,
                    since_ms=since_ms,
                    until_ms=until_ms,
                )
            ),
            "dataset_drift": _finite(
                store.dataset_drift_series(name, version, since_ms=since_ms, until_ms=until_ms)
            ),
            "performance": _finite(
                store.performance_series(name, version, since_ms=since_ms, until_ms=until_ms)
            ),
        }

    @app.get(
        "/v1/alerts",
        response_model=AlertList,
        responses=_responses(401, 422, 503),
        tags=["alerts"],
        summary="List alerts",
    )
    def get_alerts(
        _: Annotated[Principal, Depends(read)],
        state: Annotated[
            Literal["open", "acknowledged", "resolved"] | None,
            Query(description="Only alerts in this state."),
        ] = None,
        model: Annotated[str | None, Query(description="Only alerts of this model.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    ) -> dict[str, Any]:
        """Alerts in their latest revision, most recently updated first."""
        return {"alerts": _finite(runtime.store.alerts(state=state, model=model, limit=limit))}

    @app.get(
        "/v1/alerts/{alert_id}",
        response_model=Alert,
        responses=_responses(401, 404, 503),
        tags=["alerts"],
        summary="One alert",
    )
    def get_alert(
        _: Annotated[Principal, Depends(read)],
        alert_id: Annotated[str, Path(description="Alert id.")],
    ) -> dict[str, Any]:
        """The latest revision of one alert."""
        return _finite(_existing_alert(runtime.store, alert_id))

    def act(
        alert_id: str,
        action: Literal["acknowledge", "resolve"],
        body: AlertAction | None,
        principal: Principal,
    ) -> Response:
        store = runtime.store
        alert = _existing_alert(store, alert_id)
        state = alert.get("state")
        if state == "resolved":
            raise _error(
                409, f"alert {alert_id} is already resolved (by {alert.get('resolved_by')})"
            )
        if action == "acknowledge" and state == "acknowledged":
            raise _error(
                409,
                f"alert {alert_id} is already acknowledged (by {alert.get('acknowledged_by')}); "
                "resolve it instead",
            )
        record = {
            "alert_id": alert_id,
            "action": action,
            "actor": principal.name,
            "timestamp": _now_ms(),
            "note": body.note if body is not None else None,
        }
        result = runtime.submit(Topic.ALERT_ACKS, [record])
        if not result.accepted:
            reasons = "; ".join(reason for _, reason in result.rejected) or "rejected"
            raise _error(422, f"the {action} record was rejected: {reasons}")
        done = bool(runtime.wait_for(int(result.position), wait_timeout))
        after = store.alert(alert_id) or alert
        expected = ("resolved",) if action == "resolve" else ("acknowledged", "resolved")
        if done and after.get("state") not in expected:
            raise _error(
                409,
                f"the runtime did not {action} alert {alert_id} (it is {after.get('state')}); "
                f"its reason is in the dead letters of {Topic.ALERT_ACKS}",
            )
        return _JSONResponse(
            {**_finite(after), "pending": not done}, status_code=200 if done else 202
        )

    action_responses: dict[int | str, dict[str, Any]] = {
        **_responses(401, 403, 404, 409, 422, 503),
        202: {"model": AlertActionResult, "description": "Submitted, not yet applied."},
    }

    @app.post(
        "/v1/alerts/{alert_id}/ack",
        response_model=AlertActionResult,
        responses=action_responses,
        tags=["alerts"],
        summary="Acknowledge an alert",
    )
    def post_ack(
        principal: Annotated[Principal, Depends(respond)],
        alert_id: Annotated[str, Path(description="Alert id.")],
        body: AlertAction | None = None,
    ) -> Response:
        """Acknowledge an open alert; the token's name is recorded as the actor."""
        return act(alert_id, "acknowledge", body, principal)

    @app.post(
        "/v1/alerts/{alert_id}/resolve",
        response_model=AlertActionResult,
        responses=action_responses,
        tags=["alerts"],
        summary="Resolve an alert",
    )
    def post_resolve(
        principal: Annotated[Principal, Depends(respond)],
        alert_id: Annotated[str, Path(description="Alert id.")],
        body: AlertAction | None = None,
    ) -> Response:
        """Resolve an open or acknowledged alert; the token's name is recorded as the actor."""
        return act(alert_id, "resolve", body, principal)

    # ---------------------------------------------------------------- operations

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "The store query failed."}},
        tags=["operations"],
        summary="Liveness and store reachability",
    )
    def get_health() -> Response:
        """``ok`` when the store answers a query; 503 otherwise. No auth."""
        store = runtime.store
        try:
            schema_version = store.current_version()
        except Exception as exc:  # any failure of the store means unhealthy, not a 500
            error = str(exc) or type(exc).__name__
            return _JSONResponse(
                {
                    "status": "unavailable",
                    "store": {"database": store.database, "schema_version": None, "error": error},
                    "version": version,
                    "detail": f"store unavailable: {error}",
                },
                status_code=503,
            )
        return _JSONResponse(
            {
                "status": "ok",
                "store": {"database": store.database, "schema_version": schema_version},
                "version": version,
            }
        )

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
        tags=["operations"],
        summary="Prometheus metrics",
    )
    def get_metrics() -> Response:
        """Runtime counters and the API's own measurements, Prometheus text format. No auth."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.openapi = _openapi_with_events(app)  # type: ignore[method-assign]
    return app


def _time_query(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value, name)
    except ValueError as exc:
        raise _error(
            422, str(exc).replace(f"field '{name}'", f"query parameter '{name}'")
        ) from None


def _existing_alert(store: ClickHouseStore, alert_id: str) -> dict[str, Any]:
    alert = store.alert(alert_id)
    if alert is None:
        raise _error(404, f"no alert {alert_id!r}")
    return alert


def _openapi_with_events(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` that also lists the event models the ingest bodies refer to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        _, definitions = models_json_schema(
            [
                (model, "validation")
                for model in (PredictionEvent, LabelEvent, PredictionBatch, LabelBatch)
            ],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in definitions.get("$defs", {}).items():
            components.setdefault(name, definition)
        app.openapi_schema = schema
        return schema

    return openapi
