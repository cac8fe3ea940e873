"""Tests of streams/api.py: every route, auth, limits and bodies, over a real chDB store.

The app runs in-process (FastAPI's ``TestClient``) on :class:`FakeRuntime`, which
implements the runtime interface of ``docs/core-api.md`` over a real
:class:`~streams.store.ClickHouseStore` (the session's chDB engine, a database per test).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from driftline.settings import ApiToken, Settings
from schemas import batch as avro_batch
from schemas.codec import AvroCodec, EncodeError, dead_letter_record
from schemas.columns import PredictionColumns
from schemas.topics import DATASET_FEATURE, Topic
from streams.api import (
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    ApiConfigError,
    create_app,
    parse_time,
)
from streams.store import ClickHouseStore

NOW = (time.time_ns() // 1_000_000 // 1000) * 1000  # recent, so the raw-event TTL keeps it
HOUR = 3_600_000

TOKENS = {
    "publisher": "pub-token-0123456789",
    "responder": "resp-token-0123456789",
    "admin": "admin-token-0123456789",
}
NAMES = {"publisher": "svc-churn", "responder": "ana", "admin": "root"}


# --------------------------------------------------------------------------- the fake runtime


@dataclass
class PublishResult:
    """As ``streams.embedded.PublishResult``: indices into the submitted list."""

    accepted: list[int]
    rejected: list[tuple[int, str]]
    position: int


@dataclass
class FakeRuntime:
    """Stands in for ``streams.embedded.EmbeddedRuntime``, which is being built in parallel.

    Implements the interface the API uses (``docs/core-api.md``): ``submit`` validates
    each record with the real :class:`~schemas.codec.AvroCodec` (an ``EncodeError`` rejects
    it with its reason), writes accepted records and the dead letters of rejected ones
    straight to the real store, and applies alert acknowledgements the way the alert
    lifecycle does, as a new alert revision. Processing is synchronous, so ``wait_for``
    is true at once; ``defer=True`` holds processing back (``wait_for`` false, acks not
    applied) and ``refuse_acks=True`` makes the lifecycle reject every ack.
    """

    store: ClickHouseStore
    defer: bool = False
    refuse_acks: bool = False
    codec: AvroCodec = field(default_factory=AvroCodec)
    position: int = 0
    processed: int = 0
    events_in: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    submitted: list[tuple[Topic, list[dict[str, Any]]]] = field(default_factory=list)

    def submit(self, topic: Topic, records: list[dict[str, Any]]) -> PublishResult:
        self.submitted.append((topic, records))
        accepted, rejected, good, letters = [], [], [], []
        for index, record in enumerate(records):
            try:
                self.codec.encode(topic.schema_name, record)
            except EncodeError as exc:
                rejected.append((index, exc.reason))
                raw = json.dumps(record, default=repr).encode()
                letters.append(dead_letter_record(topic, raw, exc))
            else:
                accepted.append(index)
                good.append(record)
        self.position += 1
        if good:
            self.store.write(topic, good)
            self.events_in[str(topic)] += len(good)
        self._dead_letter(letters)
        if not self.defer:
            if topic == Topic.ALERT_ACKS:
                for ack in good:
                    self._apply_ack(ack)
            self.processed = self.position
        return PublishResult(accepted, rejected, self.position)

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        return position <= self.processed

    def stats(self) -> dict[str, Any]:
        return {
            "events_in": dict(self.events_in),
            "windows_closed": 7,
            "alerts_open": 2,
            "dead_letters": self.dead_letters,
            "lag_bytes": 4096,
        }

    def _dead_letter(self, letters: list[dict[str, Any]]) -> None:
        if letters:
            self.store.write(Topic.DEAD_LETTERS, letters)
            self.dead_letters += len(letters)

    def _apply_ack(self, ack: dict[str, Any]) -> None:
        alert = self.store.alert(ack["alert_id"])
        if self.refuse_acks or alert is None or alert["state"] == "resolved":
            reason = EncodeError(f"cannot {ack['action']} alert {ack['alert_id']}")
            self._dead_letter([dead_letter_record(Topic.ALERT_ACKS, b"{}", reason)])
            return
        revision = {**alert, "revision": alert["revision"] + 1, "updated_at": ack["timestamp"]}
        if ack.get("note") is not None:
            revision["note"] = ack["note"]
        if ack["action"] == "resolve":
            revision.update(state="resolved", resolved_by=ack["actor"])
        else:
            revision.update(state="acknowledged", acknowledged_by=ack["actor"])
        self.store.write(Topic.ALERTS, [revision])


# --------------------------------------------------------------------------- fixtures and data


def make_settings(**overrides: Any) -> Settings:
    """Settings with one token per role (names in ``NAMES``)."""
    tokens = [
        ApiToken.model_validate({"token": secret, "role": role, "name": NAMES[role]})
        for role, secret in TOKENS.items()
    ]
    return Settings(**{"api_tokens": tokens, **overrides})


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture
def store(chdb_client: Any, ch_database: str) -> ClickHouseStore:
    store = ClickHouseStore(chdb_client, database=ch_database)
    store.migrate()
    return store


@pytest.fixture
def runtime(store: ClickHouseStore) -> FakeRuntime:
    return FakeRuntime(store)


@pytest.fixture
def app(runtime: FakeRuntime) -> FastAPI:
    return create_app(runtime, make_settings(max_body_bytes=64_000, max_batch_size=50))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def prediction(i: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "prediction_id": f"p-{i}",
        "model_name": "churn",
        "model_version": "3",
        "timestamp": NOW - 1000 * i,
        "features": {"age": 30 + i, "city": "Lyon", "member": True, "gap": None},
        "prediction": 0.8,
        **fields,
    }


def label(i: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "prediction_id": f"p-{i}",
        "model_name": "churn",
        "label": 1.0,
        "timestamp": NOW,
        **fields,
    }


def alert(alert_id: str = "a-1", state: str = "open", revision: int = 0) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "model_name": "churn",
        "model_version": "3",
        "kind": "data_drift",
        "feature": "age",
        "state": state,
        "severity": "warning",
        "opened_at": NOW - HOUR,
        "updated_at": NOW - HOUR + revision,
        "revision": revision,
        "value": 0.3,
        "threshold": 0.2,
        "occurrences": 1,
        "message": "PSI 0.3 > 0.2",
    }


def stored_ids(store: ClickHouseStore) -> list[str]:
    return [row["prediction_id"] for row in store.raw_predictions("churn", "3")]


def dead_letters(store: ClickHouseStore, topic: Topic = Topic.PREDICTIONS) -> list[dict[str, Any]]:
    return store.dead_letters(source_topic=str(topic))


# --------------------------------------------------------------------------- health, metrics, docs


def test_healthz_needs_no_token(client: TestClient, store: ClickHouseStore) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["store"]["database"] == store.database
    assert body["store"]["schema_version"] == 1
    assert body["version"]


def test_healthz_is_503_when_the_store_fails(chdb_client: Any, ch_database: str) -> None:
    broken = ClickHouseStore(chdb_client, database=ch_database)
    broken.close()  # every query now raises StoreError
    with TestClient(create_app(FakeRuntime(broken), make_settings())) as client:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        assert "store is closed" in response.json()["detail"]
        # Other routes: a store failure is a JSON 503, not a 500.
        response = client.get("/v1/models", headers=auth("admin"))
        assert response.status_code == 503
        assert response.json()["detail"].startswith("store unavailable")


def test_metrics_exports_runtime_stats_and_ingest_latency(client: TestClient) -> None:
    client.post("/v1/predictions", json=prediction(), headers=auth("publisher"))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'driftline_events_in_total{topic="driftline.predictions"} 1.0' in text
    assert "driftline_windows_closed_total 7.0" in text
    assert "driftline_alerts_open 2.0" in text
    assert "driftline_dead_letters_total 0.0" in text
    assert "driftline_log_lag_bytes 4096.0" in text
    assert 'driftline_ingest_latency_seconds_count{topic="driftline.predictions"} 1.0' in text
    assert (
        'driftline_ingest_events_total{outcome="accepted",topic="driftline.predictions"} 1.0'
        in text
    )
    assert "driftline_api_dead_letters_total" in text


def test_metrics_treat_missing_or_bad_stats_as_zero(store: ClickHouseStore) -> None:
    class Quiet(FakeRuntime):
        def stats(self) -> dict[str, Any]:
            return {"events_in": "n/a", "alerts_open": float("nan")}

    with TestClient(create_app(Quiet(store), make_settings())) as client:
        text = client.get("/metrics").text
    assert "driftline_windows_closed_total 0.0" in text
    assert "driftline_alerts_open 0.0" in text
    assert "driftline_dead_letters_total 0.0" in text
    assert "driftline_log_lag_bytes 0.0" in text


def test_metrics_survive_a_failing_stats(store: ClickHouseStore) -> None:
    class Failing(FakeRuntime):
        def stats(self) -> dict[str, Any]:
            raise RuntimeError("stopping")

    with TestClient(create_app(Failing(store), make_settings())) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert "driftline_ingest_latency_seconds" in response.text
    assert "driftline_alerts_open" not in response.text


def test_each_app_has_its_own_registry(runtime: FakeRuntime) -> None:
    first = create_app(runtime, make_settings())
    second = create_app(runtime, make_settings())  # the global registry would raise here
    with TestClient(first) as a, TestClient(second) as b:
        a.post("/v1/predictions", json=prediction(), headers=auth("publisher"))
        assert 'latency_seconds_count{topic="driftline.predictions"} 1.0' in a.get("/metrics").text
        assert 'latency_seconds_count{topic="driftline.predictions"}' not in b.get("/metrics").text


def test_openapi_documents_event_shapes_and_docs_are_served(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert {"PredictionEvent", "LabelEvent", "PredictionBatch", "IngestResult", "Alert"} <= set(
        components
    )
    assert set(components["PredictionEvent"]["required"]) >= {
        "prediction_id",
        "model_name",
        "timestamp",
        "features",
        "prediction",
    }
    body = schema["paths"]["/v1/predictions"]["post"]["requestBody"]["content"]
    assert {
        "application/json",
        "application/avro",
        "application/vnd.apache.avro+binary",
        "application/vnd.driftline.avro-batch",
    } <= set(body)
    assert "bearer" in json.dumps(schema["components"]["securitySchemes"]).lower()
    assert client.get("/docs").status_code == 200


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    response = client.get("/v1/nothing", headers=auth("admin"))
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


# --------------------------------------------------------------------------- auth

ROUTES = [
    ("POST", "/v1/predictions", {"publisher", "admin"}),
    ("POST", "/v1/labels", {"publisher", "admin"}),
    ("GET", "/v1/processed?position=0", {"publisher", "admin"}),
    ("GET", "/v1/models", {"publisher", "responder", "admin"}),
    ("GET", "/v1/models/churn/drift", {"publisher", "responder", "admin"}),
    ("GET", "/v1/alerts", {"publisher", "responder", "admin"}),
    ("GET", "/v1/alerts/a-1", {"publisher", "responder", "admin"}),
    ("POST", "/v1/alerts/a-1/ack", {"responder", "admin"}),
    ("POST", "/v1/alerts/a-1/resolve", {"responder", "admin"}),
]


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    if path == "/v1/predictions":
        return client.post(path, json=prediction(), headers=headers)
    if path == "/v1/labels":
        return client.post(path, json=label(), headers=headers)
    return client.request(method, path, headers=headers)


@pytest.mark.parametrize(("method", "path", "allowed"), ROUTES, ids=[r[1] for r in ROUTES])
def test_auth_matrix(
    client: TestClient, store: ClickHouseStore, method: str, path: str, allowed: set[str]
) -> None:
    store.write(Topic.ALERTS, [alert("a-1")])
    refused: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-a-token-0123456789"},
        {"Authorization": f"Basic {TOKENS['admin']}"},
    ]
    for headers in refused:
        response = _call(client, method, path, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["detail"]
    for revision, role in enumerate(TOKENS, start=1):
        store.write(Topic.ALERTS, [alert("a-1", revision=100 * revision)])  # open again
        response = _call(client, method, path, auth(role))
        if role in allowed:
            assert response.status_code < 300, (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            detail = response.json()["detail"]
            assert f"role '{role}'" in detail and NAMES[role] in detail


def test_open_api_without_tokens_on_loopback(
    runtime: FakeRuntime, store: ClickHouseStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.write(Topic.ALERTS, [alert("a-1")])
    with caplog.at_level(logging.WARNING, logger="streams.api"):
        app = create_app(runtime, Settings(api_tokens=[], api_host="127.0.0.1"))
    assert "open" in caplog.text
    with TestClient(app) as client:
        assert client.post("/v1/predictions", json=prediction()).status_code == 202
        response = client.post("/v1/alerts/a-1/ack")
        assert response.status_code == 200
        assert response.json()["acknowledged_by"] == "anonymous"


@pytest.mark.parametrize("host", ["localhost", "::1", "127.0.0.5"])
def test_loopback_hosts_allow_an_open_api(runtime: FakeRuntime, host: str) -> None:
    create_app(runtime, Settings(api_tokens=[], api_host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "api.example.com"])
def test_no_tokens_on_a_public_address_is_refused(runtime: FakeRuntime, host: str) -> None:
    with pytest.raises(ApiConfigError, match="DRIFTLINE_API_TOKENS"):
        create_app(runtime, Settings(api_tokens=[], api_host=host))


# --------------------------------------------------------------------------- ingest: JSON


def test_single_prediction(client: TestClient, store: ClickHouseStore) -> None:
    response = client.post("/v1/predictions", json=prediction(), headers=auth("publisher"))
    assert response.status_code == 202
    body = response.json()
    assert body == {"accepted": 1, "rejected": [], "position": 1, "processed": None}
    assert stored_ids(store) == ["p-1"]


@pytest.mark.parametrize("shape", ["envelope", "array"])
def test_batch_of_predictions(client: TestClient, store: ClickHouseStore, shape: str) -> None:
    events = [prediction(i) for i in range(1, 6)]
    payload: Any = {"events": events} if shape == "envelope" else events
    response = client.post("/v1/predictions", json=payload, headers=auth("admin"))
    assert response.status_code == 202
    assert response.json()["accepted"] == 5
    assert sorted(stored_ids(store)) == [f"p-{i}" for i in range(1, 6)]


@dataclass
class InlineRuntime(FakeRuntime):
    """A FakeRuntime with the embedded runtime's back-pressure interface: ``backlogged`` and
    ``submit(..., wait_for_room=...)`` (each call's flag is recorded)."""

    backlogged: bool = False
    room_flags: list[bool] = field(default_factory=list)

    def submit(
        self, topic: Topic, records: list[dict[str, Any]], *, wait_for_room: bool = True
    ) -> PublishResult:
        self.room_flags.append(wait_for_room)
        return super().submit(topic, records)


def test_common_batches_are_ingested_in_the_event_loop(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small batch without ``wait`` is ingested in the event loop (no worker-thread hop)
    and its submit does not wait for room; a body over INLINE_MAX_BYTES, ``wait=true`` or a
    backlogged runtime take the worker thread and the waiting submit. Same answers."""
    import streams.api as api

    hops: list[str] = []
    real_hop = api.run_in_threadpool

    async def counting_hop(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", ""))
        return await real_hop(func, *args, **kwargs)

    monkeypatch.setattr(api, "run_in_threadpool", counting_hop)
    runtime = InlineRuntime(store)
    with TestClient(create_app(runtime, make_settings())) as client:

        def post(events: list[dict[str, Any]], **params: str) -> Any:
            response = client.post(
                "/v1/predictions", json=events, headers=auth("publisher"), params=params
            )
            assert response.status_code == 202, response.text
            return response.json()

        inline = post([prediction(1), prediction(2)])
        assert [h for h in hops if h == "_ingest"] == [] and runtime.room_flags == [False]
        assert post([prediction(3)], wait="true")["processed"] is True
        assert hops.count("_ingest") == 1 and runtime.room_flags[-1] is True
        runtime.backlogged = True
        threaded = post([prediction(4), prediction(5)])
        assert hops.count("_ingest") == 2 and runtime.room_flags[-1] is True
        runtime.backlogged = False
        monkeypatch.setattr(api, "INLINE_MAX_BYTES", 10)
        post([prediction(6)])
        assert hops.count("_ingest") == 3 and runtime.room_flags[-1] is True
    assert {k: v for k, v in inline.items() if k != "position"} == {
        k: v for k, v in threaded.items() if k != "position"
    }
    assert sorted(stored_ids(store)) == [f"p-{i}" for i in range(1, 7)]


def test_bad_input_ingested_in_the_event_loop_gets_the_same_answers(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Malformed JSON, a wrong envelope and an invalid event on the event-loop path: the
    same 400 / 422 answers and dead letters as through the worker thread, no hop taken."""
    import streams.api as api

    hops: list[Any] = []
    real_hop = api.run_in_threadpool

    async def counting_hop(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await real_hop(func, *args, **kwargs)

    monkeypatch.setattr(api, "run_in_threadpool", counting_hop)
    runtime = InlineRuntime(store)
    headers = {**auth("publisher"), "Content-Type": "application/json"}
    with TestClient(create_app(runtime, make_settings())) as client:
        malformed = client.post("/v1/predictions", content=b'{"events": [', headers=headers)
        assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["detail"]
        envelope = client.post("/v1/predictions", content=b'{"events": 3}', headers=headers)
        assert (
            envelope.status_code == 422
            and "'events' must be an array" in (envelope.json()["detail"])
        )
        mixed = client.post(
            "/v1/predictions",
            json=[prediction(1), prediction(2, timestamp="yesterday")],
            headers=auth("publisher"),
        )
        assert mixed.status_code == 202, mixed.text  # the rest of the batch is accepted
        body = mixed.json()
        assert body["accepted"] == 1 and [r["index"] for r in body["rejected"]] == [1]
    assert [h for h in hops if getattr(h, "__name__", "") == "_ingest"] == []
    assert len(dead_letters(store)) == 3
    assert stored_ids(store) == ["p-1"]


def test_labels(client: TestClient, store: ClickHouseStore, runtime: FakeRuntime) -> None:
    response = client.post(
        "/v1/labels", json=[label(1), label(2, label="yes")], headers=auth("publisher")
    )
    assert response.status_code == 202
    assert response.json()["accepted"] == 2
    assert store.counts()["labels"] == 2
    assert runtime.submitted[-1][0] == Topic.LABELS


def test_iso_timestamps_become_epoch_ms(client: TestClient, store: ClickHouseStore) -> None:
    moment = datetime.fromtimestamp(NOW / 1000, tz=UTC)
    events = [
        prediction(1, timestamp=moment.isoformat().replace("+00:00", "Z")),
        prediction(2, timestamp=moment.astimezone().isoformat()),  # local offset
        prediction(3, timestamp=moment.replace(tzinfo=None).isoformat()),  # naive = UTC
        prediction(4, timestamp=str(NOW)),  # digits = epoch ms
    ]
    response = client.post("/v1/predictions", json=events, headers=auth("publisher"))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 4
    stored = {row["prediction_id"]: row["timestamp"] for row in store.raw_predictions("churn", "3")}
    assert stored == dict.fromkeys(["p-1", "p-2", "p-3", "p-4"], NOW)


def test_missing_timestamp_is_422_with_a_dead_letter(
    client: TestClient, store: ClickHouseStore
) -> None:
    event = prediction()
    del event["timestamp"]
    response = client.post("/v1/predictions", json=event, headers=auth("publisher"))
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 0
    assert body["rejected"] == [{"index": 0, "reason": "field 'timestamp' is required"}]
    assert "timestamp" in body["detail"]
    assert len(dead_letters(store)) == 1
    assert stored_ids(store) == []


def test_partial_batch_accepts_the_valid_events(client: TestClient, store: ClickHouseStore) -> None:
    events = [
        prediction(1),
        prediction(2, timestamp="not a time"),  # rejected by the API
        prediction(3),
        prediction(4, features={"age": float("nan")}),  # rejected by the runtime (codec)
        "not an object",  # rejected by the API
        prediction(6, unknown_field=1),  # rejected by the runtime
    ]
    content = json.dumps(events)  # json.dumps writes NaN, which Python's parser reads back
    response = client.post(
        "/v1/predictions",
        content=content,
        headers={**auth("publisher"), "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2
    rejected = {r["index"]: r["reason"] for r in body["rejected"]}
    assert list(rejected) == [1, 3, 4, 5]
    assert "ISO-8601" in rejected[1] and "timestamp" in rejected[1]
    assert "NaN" in rejected[3] and "features.age" in rejected[3]
    assert "JSON object" in rejected[4]
    assert "unknown_field" in rejected[5]
    assert sorted(stored_ids(store)) == ["p-1", "p-3"]
    letters = dead_letters(store)
    assert len(letters) == 4
    assert {letter["reason"] for letter in letters} == set(rejected.values())
    assert all(letter["raw"] for letter in letters)


def test_all_events_invalid_is_422(client: TestClient, store: ClickHouseStore) -> None:
    events = [prediction(1, timestamp=True), prediction(2, timestamp=10**16)]
    response = client.post("/v1/predictions", json=events, headers=auth("publisher"))
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 0
    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert "outside 1900-01-01 .. 2299-12-31" in body["rejected"][1]["reason"]
    assert body["detail"].startswith("all 2 events were rejected")
    assert len(dead_letters(store)) == 2


@pytest.mark.parametrize(
    ("content", "status", "fragment"),
    [
        (b'{"prediction_id": ', 400, "malformed JSON"),
        (b"\xff\xfe\x00garbage", 400, "malformed JSON"),
        (b"[" * 60_000, 400, "malformed JSON"),  # too deep for the parser: still no 500
        (b"42", 422, "got number"),
        (b'"text"', 422, "got string"),
        (b'{"events": 5}', 422, "'events' must be an array"),
        (b'{"events": [], "extra": 1}', 422, "unknown field 'extra'"),
    ],
)
def test_malformed_bodies_are_dead_lettered(
    client: TestClient, store: ClickHouseStore, content: bytes, status: int, fragment: str
) -> None:
    response = client.post(
        "/v1/predictions",
        content=content,
        headers={**auth("publisher"), "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    letters = dead_letters(store)
    assert len(letters) == 1
    assert letters[0]["raw"] == content[: len(letters[0]["raw"])]
    assert letters[0]["error_type"] == "DecodeError"


def test_empty_batch_is_422(client: TestClient, store: ClickHouseStore) -> None:
    response = client.post("/v1/predictions", json=[], headers=auth("publisher"))
    assert response.status_code == 422
    assert response.json()["detail"] == "the request holds no events"
    assert dead_letters(store) == []


def test_unsupported_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/v1/predictions",
        content=b"a,b,c",
        headers={**auth("publisher"), "Content-Type": "text/csv"},
    )
    assert response.status_code == 415
    assert "text/csv" in response.json()["detail"]


def test_json_content_type_variants(client: TestClient, store: ClickHouseStore) -> None:
    for i, content_type in enumerate(
        ["application/json; charset=utf-8", "application/vnd.driftline+json", None], start=1
    ):
        headers = auth("publisher")
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = client.post(
            "/v1/predictions", content=json.dumps(prediction(i)).encode(), headers=headers
        )
        assert response.status_code == 202, (content_type, response.text)
    assert len(stored_ids(store)) == 3


# --------------------------------------------------------------------------- ingest: limits


def test_body_above_max_body_bytes_is_413(client: TestClient, store: ClickHouseStore) -> None:
    big = [prediction(1, features={"blob": "x" * 70_000})]
    response = client.post("/v1/predictions", json=big, headers=auth("publisher"))
    assert response.status_code == 413
    assert "64000 bytes (max_body_bytes)" in response.json()["detail"]
    assert dead_letters(store) == []


def test_streamed_body_above_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the body arrives chunked
        yield b'{"events": ['
        for _ in range(200):
            yield json.dumps(prediction(1)).encode() + b", " + b" " * 500
        yield b"]}"

    response = client.post(
        "/v1/predictions",
        content=chunks(),
        headers={**auth("publisher"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "max_body_bytes" in response.json()["detail"]


def test_bad_content_length_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/predictions",
        content=b"{}",
        headers={**auth("publisher"), "Content-Length": "lots"},
    )
    assert response.status_code == 400
    assert "content-length" in response.json()["detail"]


def test_batch_above_max_batch_size_is_413(client: TestClient, store: ClickHouseStore) -> None:
    events = [prediction(i) for i in range(51)]
    response = client.post("/v1/predictions", json=events, headers=auth("publisher"))
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "51 events" in detail and "limit of 50 (max_batch_size)" in detail
    assert stored_ids(store) == []
    ok = client.post("/v1/predictions", json=events[:50], headers=auth("publisher"))
    assert ok.status_code == 202


# --------------------------------------------------------------------------- ingest: Avro


@pytest.mark.parametrize("content_type", ["application/avro", "application/vnd.apache.avro+binary"])
def test_avro_prediction(client: TestClient, store: ClickHouseStore, content_type: str) -> None:
    data = AvroCodec().encode("prediction", prediction())
    response = client.post(
        "/v1/predictions", content=data, headers={**auth("publisher"), "Content-Type": content_type}
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1
    assert stored_ids(store) == ["p-1"]


def test_avro_label(client: TestClient, store: ClickHouseStore) -> None:
    data = AvroCodec().encode("label", label())
    response = client.post(
        "/v1/labels",
        content=data,
        headers={**auth("publisher"), "Content-Type": "application/avro"},
    )
    assert response.status_code == 202
    assert store.counts()["labels"] == 1


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\xc3\x01\x00\x01\x02garbage-bytes", "unknown schema fingerprint"),
        (b"definitely not avro", "bad magic"),
        (AvroCodec().encode("label", label()), "label"),  # a record of another schema
        (AvroCodec().encode("prediction", prediction())[:-3], "truncated"),
    ],
    ids=["unknown-fingerprint", "no-magic", "wrong-schema", "truncated"],
)
def test_undecodable_avro_is_422_with_a_dead_letter(
    client: TestClient, store: ClickHouseStore, data: bytes, fragment: str
) -> None:
    response = client.post(
        "/v1/predictions",
        content=data,
        headers={**auth("publisher"), "Content-Type": "application/avro"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 0 and body["position"] is None
    assert body["rejected"][0]["index"] == 0
    assert fragment in body["detail"]
    letters = dead_letters(store)
    assert len(letters) == 1
    assert letters[0]["raw"] == data
    assert letters[0]["error_type"] == "DecodeError"
    assert stored_ids(store) == []


# --------------------------------------------------------------------------- ingest: Avro batches

AVRO_BATCH = {**auth("publisher"), "Content-Type": "application/vnd.driftline.avro-batch"}


@dataclass
class EncodedRuntime(FakeRuntime):
    """:class:`FakeRuntime` that also takes Avro events as they came (``submit_encoded``,
    the embedded runtime's fast path): it records each call and stores the records."""

    encoded: list[tuple[Topic, list[bytes], list[dict[str, Any]]]] = field(default_factory=list)

    def submit_encoded(
        self,
        topic: Topic,
        payloads: list[bytes],
        records: list[dict[str, Any]],
        wait_for_room: bool = True,
    ) -> PublishResult:
        self.encoded.append((topic, payloads, records))
        self.store.write(topic, records)
        self.events_in[str(topic)] += len(records)
        self.position += 1
        self.processed = self.position
        return PublishResult(list(range(len(records))), [], self.position)


def test_avro_batch_of_predictions_and_labels(client: TestClient, store: ClickHouseStore) -> None:
    codec = AvroCodec()
    body = avro_batch.join([codec.encode("prediction", prediction(i)) for i in range(1, 4)])
    response = client.post("/v1/predictions", content=body, headers=AVRO_BATCH)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 3 and response.json()["rejected"] == []
    assert sorted(stored_ids(store)) == ["p-1", "p-2", "p-3"]
    body = avro_batch.join([codec.encode("label", label(i)) for i in range(1, 3)])
    response = client.post("/v1/labels", content=body, headers=AVRO_BATCH)
    assert response.status_code == 202 and response.json()["accepted"] == 2
    assert store.counts()["labels"] == 2


def test_avro_batch_rejects_each_bad_event_with_its_index_and_a_dead_letter(
    client: TestClient, runtime: FakeRuntime, store: ClickHouseStore
) -> None:
    codec = AvroCodec()
    frames = [
        codec.encode("prediction", prediction(1)),
        b"not avro at all",
        codec.encode("label", label(2)),  # a record of another schema
        codec.encode("prediction", prediction(3, timestamp=MAX_TIMESTAMP_MS)),  # beyond 2299
        codec.encode("prediction", prediction(4)),
    ]
    tail = b"\x40" + b"x" * 5  # a sixth item whose length (32) overruns the body
    body = avro_batch.join(frames)[:-1] + b"\x02" + tail  # (a second block of one item)
    response = client.post("/v1/predictions", content=body, headers=AVRO_BATCH)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    reasons = {r["index"]: r["reason"] for r in answer["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 5]
    assert "bad magic" in reasons[1] and "not a 'prediction' record" in reasons[1]
    assert "label" in reasons[2]
    assert "timestamp" in reasons[3] and "2299" in reasons[3]
    assert reasons[5].startswith("malformed Avro batch: item 5 is truncated")
    assert sorted(stored_ids(store)) == ["p-1", "p-4"]
    letters = {letter["raw"]: letter for letter in dead_letters(store)}
    assert set(letters) == {frames[1], frames[2], frames[3], tail}
    assert letters[tail]["error_type"] == "DecodeError"
    assert "malformed Avro batch" in letters[tail]["reason"]
    assert [len(records) for _, records in runtime.submitted] == [2]


def test_avro_batch_framing_errors_and_limits(client: TestClient, store: ClickHouseStore) -> None:
    empty = client.post("/v1/predictions", content=b"\x00", headers=AVRO_BATCH)
    assert empty.status_code == 422 and "no events" in empty.json()["detail"]
    nothing = client.post("/v1/predictions", content=b"", headers=AVRO_BATCH)
    assert nothing.status_code == 422
    assert "malformed Avro batch: the array ends without its end marker" in nothing.text
    garbage = client.post("/v1/predictions", content=b"\xff" * 12, headers=AVRO_BATCH)
    assert garbage.status_code == 422 and "malformed block count" in garbage.text
    assert {letter["raw"] for letter in dead_letters(store)} == {b"", b"\xff" * 12}
    frame = AvroCodec().encode("prediction", prediction())
    too_many = client.post(
        "/v1/predictions", content=avro_batch.join([frame] * 51), headers=AVRO_BATCH
    )
    assert too_many.status_code == 413 and "51 events" in too_many.json()["detail"]
    assert stored_ids(store) == []
    unsupported = client.post(
        "/v1/predictions", content=b"x", headers={**auth("publisher"), "Content-Type": "text/csv"}
    )
    assert unsupported.status_code == 415
    assert "application/vnd.driftline.avro-batch" in unsupported.json()["detail"]


def test_avro_batch_goes_to_submit_encoded_whole_when_every_event_is_current_and_valid(
    store: ClickHouseStore,
) -> None:
    runtime = EncodedRuntime(store)
    codec = AvroCodec()
    frames = [codec.encode("prediction", prediction(i)) for i in range(1, 4)]
    with TestClient(create_app(runtime, make_settings())) as client:
        ok = client.post(
            "/v1/predictions",
            content=avro_batch.join(frames),
            headers=AVRO_BATCH,
            params={"wait": "true"},
        )
        assert ok.status_code == 202 and ok.json()["accepted"] == 3
        assert ok.json()["processed"] is True
        assert len(runtime.encoded) == 1 and runtime.submitted == []
        topic, payloads, records = runtime.encoded[0]
        assert topic == Topic.PREDICTIONS and payloads == frames
        assert records == [codec.decode_as("prediction", f) for f in frames]
        # one event out of range: the batch goes the general way (records, each checked)
        late = codec.encode("prediction", prediction(4, timestamp=MIN_TIMESTAMP_MS - 1))
        mixed = client.post(
            "/v1/predictions", content=avro_batch.join([frames[0], late]), headers=AVRO_BATCH
        )
        assert mixed.json()["accepted"] == 1 and mixed.json()["rejected"][0]["index"] == 1
        assert len(runtime.encoded) == 1 and len(runtime.submitted) == 1
    assert sorted(stored_ids(store)) == ["p-1", "p-2", "p-3"]  # (p-1 twice: kept once)


def test_avro_batch_of_numeric_predictions_goes_to_submit_encoded_as_columns(
    store: ClickHouseStore,
) -> None:
    """The SDK's common batch (one model version, the same numeric features) is decoded
    into columns, not records; one event out of range sends it the general way."""
    runtime = EncodedRuntime(store)
    codec = AvroCodec()
    numeric = [prediction(i, features={"age": 30.0 + i, "income": 1.5}) for i in range(1, 4)]
    frames = [codec.encode("prediction", p) for p in numeric]
    with TestClient(create_app(runtime, make_settings())) as client:
        ok = client.post("/v1/predictions", content=avro_batch.join(frames), headers=AVRO_BATCH)
        assert ok.status_code == 202 and ok.json()["accepted"] == 3
        topic, payloads, columns = runtime.encoded[0]
        assert topic == Topic.PREDICTIONS and payloads == frames
        assert isinstance(columns, PredictionColumns)
        assert columns.records() == [codec.decode_as("prediction", f) for f in frames]
        assert columns.feature_names == ["age", "income"]
        late = codec.encode(
            "prediction", dict(numeric[0], prediction_id="p-9", timestamp=MAX_TIMESTAMP_MS)
        )
        mixed = client.post(
            "/v1/predictions", content=avro_batch.join([frames[0], late]), headers=AVRO_BATCH
        )
        assert mixed.json()["accepted"] == 1 and mixed.json()["rejected"][0]["index"] == 1
        assert len(runtime.encoded) == 1 and len(runtime.submitted) == 1
    assert sorted(stored_ids(store)) == ["p-1", "p-2", "p-3"]


# --------------------------------------------------------------------------- ingest: wait


def test_wait_true_waits_for_processing(client: TestClient) -> None:
    response = client.post(
        "/v1/predictions", params={"wait": "true"}, json=prediction(), headers=auth("publisher")
    )
    assert response.status_code == 202
    assert response.json()["processed"] is True


def test_wait_reports_unfinished_processing(store: ClickHouseStore) -> None:
    runtime = FakeRuntime(store, defer=True)
    app = create_app(runtime, make_settings(), wait_timeout=0.01)
    with TestClient(app) as client:
        response = client.post(
            "/v1/predictions", params={"wait": True}, json=prediction(), headers=auth("publisher")
        )
    assert response.status_code == 202
    assert response.json()["processed"] is False


def test_wait_must_be_a_boolean(client: TestClient) -> None:
    response = client.post(
        "/v1/predictions", params={"wait": "perhaps"}, json=prediction(), headers=auth("publisher")
    )
    assert response.status_code == 422
    assert "query parameter 'wait'" in response.json()["detail"]


# --------------------------------------------------------------------------- models and drift


def test_models(client: TestClient, store: ClickHouseStore) -> None:
    client.post("/v1/predictions", json=[prediction(1), prediction(2)], headers=auth("publisher"))
    response = client.get("/v1/models", headers=auth("responder"))
    assert response.status_code == 200
    (model,) = response.json()["models"]
    assert (model["model_name"], model["model_version"], model["predictions"]) == ("churn", "3", 2)
    assert model["last_seen"] == NOW - 1000


def _metric(metric_id: str, start: int, **fields: Any) -> dict[str, Any]:
    return {
        "metric_id": metric_id,
        "model_name": "churn",
        "model_version": "3",
        "window_start": start,
        "window_end": start + HOUR,
        "feature": "age",
        "metric": "psi",
        "value": 0.3,
        "pvalue": None,
        "threshold": 0.2,
        "drift": True,
        "primary": True,
        "n_reference": 100,
        "n_current": 50,
        **fields,
    }


def test_drift_report(client: TestClient, store: ClickHouseStore) -> None:
    early, late = NOW - 2 * HOUR, NOW - HOUR
    store.write(
        Topic.DRIFT_METRICS,
        [
            _metric("m-1", early),
            _metric("m-2", late),
            _metric("m-3", late, metric="ks", pvalue=0.01, primary=False),
            _metric("m-4", late, feature="city", metric="jensenshannon"),
            _metric("m-5", late, feature=DATASET_FEATURE, metric="share_drifted", value=0.5),
            _metric("m-6", late, model_version="4"),
        ],
    )
    store.write(
        Topic.PERFORMANCE_METRICS,
        [
            {
                "metric_id": "pm-1",
                "model_name": "churn",
                "model_version": "3",
                "window_start": late,
                "window_end": late + HOUR,
                "metric": "accuracy",
                "value": 0.9,
                "n_labels": 10,
            }
        ],
    )
    response = client.get(
        "/v1/models/churn/drift", params={"version": "3"}, headers=auth("responder")
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == "churn" and body["model_version"] == "3"
    assert {row["metric_id"] for row in body["drift"]} == {"m-1", "m-2", "m-3", "m-4", "m-5"}
    assert [row["metric_id"] for row in body["dataset_drift"]] == ["m-5"]
    assert [(row["metric"], row["value"]) for row in body["performance"]] == [("accuracy", 0.9)]

    def ids(**params: Any) -> set[str]:
        response = client.get(
            "/v1/models/churn/drift", params={"version": "3", **params}, headers=auth("admin")
        )
        assert response.status_code == 200, response.text
        return {row["metric_id"] for row in response.json()["drift"]}

    assert ids(feature="age") == {"m-1", "m-2", "m-3"}
    assert ids(feature="age", metric="ks") == {"m-3"}
    assert ids(since=str(late)) == {"m-2", "m-3", "m-4", "m-5"}
    iso = datetime.fromtimestamp(late / 1000, tz=UTC).isoformat()
    assert ids(until=iso) == {"m-1"}
    assert ids(since=iso, until=str(late + 1)) == {"m-2", "m-3", "m-4", "m-5"}
    everything = client.get("/v1/models/churn/drift", headers=auth("admin")).json()
    assert "m-6" in {row["metric_id"] for row in everything["drift"]}
    assert everything["model_version"] is None


def test_drift_of_an_unknown_model_is_empty(client: TestClient) -> None:
    response = client.get("/v1/models/nope/drift", headers=auth("admin"))
    assert response.status_code == 200
    assert response.json()["drift"] == response.json()["performance"] == []


def test_drift_rejects_bad_times(client: TestClient) -> None:
    response = client.get(
        "/v1/models/churn/drift", params={"since": "last tuesday"}, headers=auth("admin")
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("query parameter 'since':")


def test_non_finite_values_are_served_as_null(client: TestClient, store: ClickHouseStore) -> None:
    store.write(Topic.DRIFT_METRICS, [_metric("m-nan", NOW - HOUR, value=float("nan"))])
    response = client.get("/v1/models/churn/drift", headers=auth("admin"))
    assert response.status_code == 200
    assert response.json()["drift"][0]["value"] is None


# --------------------------------------------------------------------------- alerts


def test_alert_listing_and_lookup(client: TestClient, store: ClickHouseStore) -> None:
    store.write(
        Topic.ALERTS,
        [alert("a-1"), alert("a-2", state="acknowledged"), alert("a-3", state="resolved")],
    )
    headers = auth("responder")
    everything = client.get("/v1/alerts", headers=headers).json()["alerts"]
    assert {a["alert_id"] for a in everything} == {"a-1", "a-2", "a-3"}
    opened = client.get("/v1/alerts", params={"state": "open"}, headers=headers).json()
    assert [a["alert_id"] for a in opened["alerts"]] == ["a-1"]
    assert client.get("/v1/alerts", params={"model": "other"}, headers=headers).json() == {
        "alerts": []
    }
    assert len(client.get("/v1/alerts", params={"limit": 2}, headers=headers).json()["alerts"]) == 2
    one = client.get("/v1/alerts/a-2", headers=headers)
    assert one.status_code == 200
    assert one.json()["state"] == "acknowledged"
    assert one.json()["threshold"] == 0.2


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"state": "closed"}, "query parameter 'state'"),
        ({"limit": 0}, "query parameter 'limit'"),
        ({"limit": "many"}, "query parameter 'limit'"),
        ({"limit": 100_000}, "query parameter 'limit'"),
    ],
)
def test_alert_listing_validates_its_parameters(
    client: TestClient, params: dict[str, Any], fragment: str
) -> None:
    response = client.get("/v1/alerts", params=params, headers=auth("responder"))
    assert response.status_code == 422
    assert response.json()["detail"].startswith(fragment)


def test_unknown_alert_is_404(client: TestClient) -> None:
    for method, path in [
        ("GET", "/v1/alerts/nope"),
        ("POST", "/v1/alerts/nope/ack"),
        ("POST", "/v1/alerts/nope/resolve"),
    ]:
        response = client.request(method, path, headers=auth("responder"))
        assert response.status_code == 404
        assert response.json()["detail"] == "no alert 'nope'"


def test_acknowledge_then_resolve(
    client: TestClient, store: ClickHouseStore, runtime: FakeRuntime
) -> None:
    store.write(Topic.ALERTS, [alert("a-1")])
    response = client.post(
        "/v1/alerts/a-1/ack", json={"note": "looking into it"}, headers=auth("responder")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "acknowledged"
    assert body["acknowledged_by"] == "ana"
    assert body["note"] == "looking into it"
    assert body["pending"] is False
    topic, (ack,) = runtime.submitted[-1]
    assert topic == Topic.ALERT_ACKS
    assert ack["action"] == "acknowledge" and ack["actor"] == "ana"
    assert abs(ack["timestamp"] - time.time() * 1000) < 60_000

    again = client.post("/v1/alerts/a-1/ack", headers=auth("admin"))
    assert again.status_code == 409
    assert "already acknowledged (by ana)" in again.json()["detail"]

    resolved = client.post("/v1/alerts/a-1/resolve", headers=auth("admin"))
    assert resolved.status_code == 200
    assert resolved.json()["state"] == "resolved"
    assert resolved.json()["resolved_by"] == "root"
    assert resolved.json()["note"] == "looking into it"

    for action in ("ack", "resolve"):
        response = client.post(f"/v1/alerts/a-1/{action}", headers=auth("responder"))
        assert response.status_code == 409
        assert "already resolved (by root)" in response.json()["detail"]
    assert store.counts()["alert_acks"] == 2
    assert client.get("/v1/alerts/a-1", headers=auth("publisher")).json()["state"] == "resolved"


def test_resolve_an_open_alert_directly(client: TestClient, store: ClickHouseStore) -> None:
    store.write(Topic.ALERTS, [alert("a-1")])
    response = client.post("/v1/alerts/a-1/resolve", json={}, headers=auth("responder"))
    assert response.status_code == 200
    assert response.json()["state"] == "resolved"


def test_ack_is_202_pending_when_processing_lags(store: ClickHouseStore) -> None:
    store.write(Topic.ALERTS, [alert("a-1")])
    app = create_app(FakeRuntime(store, defer=True), make_settings(), wait_timeout=0.01)
    with TestClient(app) as client:
        response = client.post("/v1/alerts/a-1/ack", headers=auth("responder"))
    assert response.status_code == 202
    assert response.json()["pending"] is True
    assert response.json()["state"] == "open"


def test_ack_refused_by_the_runtime_is_409(store: ClickHouseStore) -> None:
    store.write(Topic.ALERTS, [alert("a-1")])
    app = create_app(FakeRuntime(store, refuse_acks=True), make_settings())
    with TestClient(app) as client:
        response = client.post("/v1/alerts/a-1/ack", headers=auth("responder"))
    assert response.status_code == 409
    assert "did not acknowledge" in response.json()["detail"]
    assert "driftline.alert-acks" in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"note": 5}', "body field 'note'"),
        (b'{"note": "x", "by": "me"}', "body field 'by'"),
        (b'{"note": ', "malformed JSON"),
    ],
)
def test_ack_body_is_validated(
    client: TestClient, store: ClickHouseStore, content: bytes, fragment: str
) -> None:
    store.write(Topic.ALERTS, [alert("a-1")])
    response = client.post(
        "/v1/alerts/a-1/ack",
        content=content,
        headers={**auth("responder"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert fragment in response.json()["detail"]
    assert client.get("/v1/alerts/a-1", headers=auth("responder")).json()["state"] == "open"


# --------------------------------------------------------------------------- parse_time


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (1_714_564_800_000.0, 1_714_564_800_000),
        ("1714564800000", 1_714_564_800_000),
        ("-1000", -1000),
        ("2024-05-01", 1_714_521_600_000),
        ("2024-05-01T12:00:00.123+00:00", 1_714_564_800_123),
    ],
)
def test_parse_time(value: Any, expected: int) -> None:
    assert parse_time(value, "t") == expected


@pytest.mark.parametrize(
    "value",
    [True, 1.5, math.inf, "", "12:00", "2024-13-01", None, [1], 2**70, "9999-12-31T23:59:59-14:00"],
)
def test_parse_time_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match="field 't'"):
        parse_time(value, "t")


def test_lone_surrogates_are_rejected_not_a_500(client: TestClient, store: ClickHouseStore) -> None:
    content = (
        '[{"prediction_id": "p-\\ud800", "model_name": "churn", "model_version": "3", '
        '"timestamp": "\\udfff", "features": {}, "prediction": 1.0}, '
        f'{{"prediction_id": "p-\\ud800", "model_name": "churn", "model_version": "3", '
        f'"timestamp": {NOW}, "features": {{}}, "prediction": 1.0}}]'
    )
    response = client.post(
        "/v1/predictions",
        content=content.encode(),
        headers={**auth("publisher"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert [r["index"] for r in response.json()["rejected"]] == [0, 1]
    assert len(dead_letters(store)) == 2


def test_odd_characters_in_ack_inputs(client: TestClient, store: ClickHouseStore) -> None:
    store.write(Topic.ALERTS, [alert("a-1")])
    response = client.post(
        "/v1/alerts/a-1/ack",
        content=b'{"note": "\\ud800"}',
        headers={**auth("responder"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "rejected" in response.json()["detail"]
    assert client.get("/v1/alerts/%ED%A0%80%00", headers=auth("responder")).status_code == 404


# ---------------------------------------------------------------- model events


def test_model_event_registration_is_admin_only(client: TestClient, store: ClickHouseStore) -> None:
    body = {
        "model_name": "churn",
        "model_version": "7",
        "event_type": "registered",
        "reference_profile": '{"format_version": 1}',
    }
    for role in ("publisher", "responder"):
        assert client.post("/v1/model-events", json=body, headers=auth(role)).status_code == 403
    assert client.post("/v1/model-events", json=body).status_code == 401
    resp = client.post("/v1/model-events", json=body, headers=auth("admin"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["processed"] is True and len(resp.json()["event_id"]) == 32
    assert store.reference_profile("churn", "7") == '{"format_version": 1}'


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"event_type": "deleted"}, "event_type"),
        ({"timestamp": ""}, "timestamp"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"model_name": ""}, "model_name"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_model_events_are_422(client: TestClient, patch: dict[str, Any], needle: str) -> None:
    body = {"model_name": "m", "model_version": "1", "event_type": "registered", **patch}
    resp = client.post("/v1/model-events", json=body, headers=auth("admin"))
    assert resp.status_code == 422 and needle in resp.json()["detail"]
