"""driftline.Publisher against a real `driftline serve` stack (embedded runtime + HTTP API over
loopback) and against a real flaky HTTP server for the retry path."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest
import uvicorn
from support.serve import running_api

from driftline import Publisher
from driftline.publisher import PublishError
from schemas import batch as avro_batch
from schemas.codec import AvroCodec

AVRO_BATCH = "application/vnd.driftline.avro-batch"


def body_events(content_type: str, body: bytes) -> list[dict]:
    """The events of a request body, JSON or an Avro batch of predictions."""
    if content_type == AVRO_BATCH:
        split = avro_batch.split(body)
        assert split.error is None, split.error
        return [AvroCodec().decode_as("prediction", frame) for frame in split.frames]
    return json.loads(body)["events"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("encoding", ["avro", "json"])
def test_batches_reach_the_store(tmp_path, chdb_client, ch_database, encoding) -> None:
    with running_api(tmp_path, chdb_client, ch_database) as (url, runtime):
        with Publisher(url, batch_size=100, encoding=encoding) as pub:
            assert pub.encoding == encoding
            ids = [
                pub.predict("m", "1", {"x": float(i), "c": "a", "n": None}, prediction=0.5)
                for i in range(250)
            ]
            for pid in ids[:40]:
                pub.label(pid, "m", label=1.0)
            report = pub.flush(wait=True)
        assert report.accepted == 290 and report.rejected == []
        assert report.requests == 4  # 100 + 100 + 50 predictions, 40 labels
        counts = runtime.store.counts()
        assert counts["predictions"] == 250 and counts["labels"] == 40
        assert len(set(ids)) == 250


def test_server_side_rejections_are_reported_not_retried(
    tmp_path, chdb_client, ch_database
) -> None:
    with running_api(tmp_path, chdb_client, ch_database) as (url, runtime):
        pub = Publisher(url, batch_size=10)
        # valid JSON, but an event time in the year 33658: the server rejects it, naming the field
        pub.predict("m", "1", {"x": 1.0}, prediction=1.0, prediction_id="far", timestamp=10**15)
        pub.predict("m", "1", {"x": 2.0}, prediction=1.0, prediction_id="fine")
        report = pub.flush(wait=True)
        pub.close()
        assert report.accepted == 1 and report.retries == 0
        assert len(report.rejected) == 1 and report.rejected[0]["index"] == 0
        assert "timestamp" in report.rejected[0]["reason"]
        assert any("timestamp" in d["reason"] for d in runtime.store.dead_letters())


def test_a_batch_with_an_event_avro_cannot_carry_goes_as_json_and_the_server_names_it(
    tmp_path, chdb_client, ch_database
) -> None:
    with running_api(tmp_path, chdb_client, ch_database) as (url, runtime):
        pub = Publisher(url, batch_size=10, encoding="avro")
        pub.predict("m", "1", {"x": 1.0}, prediction=1.0, prediction_id=12345)  # not a string
        pub.predict("m", "1", {"x": 2.0}, prediction=1.0, prediction_id="fine")
        report = pub.flush(wait=True)
        pub.close()
        assert pub.encoding == "avro"  # only that batch went as JSON
        assert report.accepted == 1 and [r["index"] for r in report.rejected] == [0]
        assert "prediction_id" in report.rejected[0]["reason"]
        assert [r["prediction_id"] for r in runtime.store.raw_predictions("m", "1")] == ["fine"]


def test_client_side_type_errors_are_immediate() -> None:
    pub = Publisher("http://127.0.0.1:9", batch_size=10)
    with pytest.raises(TypeError, match="feature values must be"):
        pub.predict("m", "1", {"x": [1, 2]}, prediction=1.0)
    with pytest.raises(ValueError, match="prediction must be a finite number or a string"):
        pub.predict("m", "1", {"x": 1}, prediction=float("nan"))
    with pytest.raises(ValueError, match="timezone-aware"):
        from datetime import datetime

        pub.predict("m", "1", {"x": 1}, prediction=1.0, timestamp=datetime(2024, 1, 1))
    for bad in (True, "1700000000000", 1.7e12 + 0j):
        with pytest.raises(TypeError, match="datetime or epoch milliseconds"):
            pub.predict("m", "1", {"x": 1}, prediction=1.0, timestamp=bad)  # type: ignore[arg-type]


def test_timestamps_are_epoch_milliseconds() -> None:
    """An int passes as it is, a float is truncated, an aware datetime converted; no
    timestamp is now."""
    from datetime import UTC, datetime

    from driftline.publisher import _ms

    assert _ms(1_700_000_000_123) == 1_700_000_000_123
    assert _ms(1_700_000_000_123.9) == 1_700_000_000_123
    assert _ms(datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)) == 1_700_000_000_123
    before = int(time.time() * 1000)
    assert before <= _ms(None) <= int(time.time() * 1000)


def test_predictions_and_labels_are_finite_numbers_or_strings() -> None:
    import numpy as np

    from driftline.publisher import _target

    assert _target("label", "yes") == "yes" and _target("label", 0.25) == 0.25
    converted = _target("prediction", np.float64(0.5))
    assert converted == 0.5 and type(converted) is float  # numpy scalars as Python values
    assert _target("prediction", np.int64(3)) == 3 and _target("prediction", 2) == 2
    for bad in (float("nan"), float("-inf"), np.float64("nan"), True, None, [1]):
        with pytest.raises(ValueError, match="prediction must be a finite number or a string"):
            _target("prediction", bad)


class _FakeServer(BaseHTTPRequestHandler):
    """A real HTTP server's handler: :meth:`answer` turns each POST (content type and
    body) into a status and a JSON answer."""

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        status, answer = self.answer(self.headers["Content-Type"], data)
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def answer(self, content_type: str, data: bytes) -> tuple[int, dict]:
        raise NotImplementedError

    def log_message(self, *args: object) -> None:
        pass


class _Flaky(_FakeServer):
    """Answers 503 twice, then accepts (stands in for a restarting server)."""

    calls: ClassVar[list[int]] = []

    def answer(self, content_type: str, data: bytes) -> tuple[int, dict]:
        events = body_events(content_type, data)
        self.calls.append(len(events))
        if len(self.calls) <= 2:
            return 503, {"detail": "busy"}
        return 202, {"accepted": len(events), "rejected": [], "position": 1}


def test_retries_with_backoff_on_503_then_succeeds() -> None:
    _Flaky.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pub = Publisher(f"http://127.0.0.1:{server.server_port}", batch_size=5, backoff=0.01)
        for i in range(5):
            pub.predict("m", "1", {"x": i}, prediction=1.0)
        pub.flush()  # the full batch went out from the background sender
        assert pub.report.accepted == 5 and pub.report.retries == 2
        assert _Flaky.calls == [5, 5, 5]
    finally:
        server.shutdown()


def test_gives_up_with_a_clear_error_and_keeps_the_events() -> None:
    port = _free_port()  # nothing listens there
    pub = Publisher(f"http://127.0.0.1:{port}", batch_size=100, max_retries=2, backoff=0.01)
    pub.predict("m", "1", {"x": 1.0}, prediction=1.0)
    t = time.monotonic()
    with pytest.raises(PublishError, match=r"cannot reach .*\(gave up after 3 attempts\)"):
        pub.flush()
    assert time.monotonic() - t < 5
    assert len(pub._buffers["predictions"]) == 1  # not lost: a later flush sends it


def test_uvicorn_is_importable_for_serve() -> None:
    assert uvicorn.Config  # `driftline serve` and the demo run the API on uvicorn


def test_send_record_takes_predictions_or_labels_only() -> None:
    from driftline.publisher import send_record

    pub = Publisher("http://127.0.0.1:9", batch_size=10)
    send_record(
        pub, "labels", {"prediction_id": "p", "model_name": "m", "label": "1", "timestamp": 5}
    )
    assert pub._buffers["labels"][0]["label"] == "1" and pub._buffers["labels"][0]["timestamp"] == 5
    with pytest.raises(ValueError, match="kind must be 'predictions' or 'labels'"):
        send_record(pub, "alerts", {})


class _RefusesFirst(_FakeServer):
    """Refuses the first request (400: not retried), then accepts."""

    batches: ClassVar[list[list[str]]] = []

    def answer(self, content_type: str, data: bytes) -> tuple[int, dict]:
        events = body_events(content_type, data)
        self.batches.append([e["prediction_id"] for e in events])
        if len(self.batches) == 1:
            return 400, {"detail": "no"}
        return 202, {"accepted": len(events), "rejected": [], "position": 1}


def test_a_background_failure_surfaces_at_the_next_send_and_loses_nothing() -> None:
    _RefusesFirst.batches = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusesFirst)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pub = Publisher(f"http://127.0.0.1:{server.server_port}", batch_size=5)
        for i in range(9):  # the first 5 go out in the background and are refused
            pub.predict("m", "1", {"x": i}, prediction=1.0, prediction_id=f"p{i}")
        with pytest.raises(PublishError, match="answered 400: no"):
            pub.predict("m", "1", {"x": 9}, prediction=1.0, prediction_id="p9")
        # the refused batch is back in front of the buffer, in order; nothing was sent twice
        assert [e["prediction_id"] for e in pub._buffers["predictions"]] == [
            f"p{i}" for i in range(10)
        ]
        report = pub.flush()
        pub.close()
        assert report.accepted == 10
        assert _RefusesFirst.batches == [[f"p{i}" for i in range(5)], [f"p{i}" for i in range(10)]]
    finally:
        server.shutdown()


def test_request_bodies_are_what_json_dumps_sends() -> None:
    """The body of a batch built by predict/label (encoded by msgspec without re-checking
    every value) and of one with caller-given maps (checked) parse to what json.dumps of
    the same events gives; numpy values, NaN and odd ids are normalised or checked first."""
    import math

    import httpx
    import numpy as np

    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        n = len(json.loads(request.content)["events"])
        return httpx.Response(202, json={"accepted": n, "rejected": []})

    pub = Publisher(
        "http://x",
        batch_size=3,
        transport=httpx.MockTransport(handler),
        background=False,
        encoding="json",
    )
    pub.predict(
        "m", "1", {"x": 1.5, "n": None, "c": "é", "b": True, "i": 3}, 0.25, prediction_id="a"
    )
    pub.predict("m", 2, {"x": np.float32(2.5), "nan": math.nan}, "yes", prediction_id="b")
    pub.predict("m", "1", {"x": 1e308}, 1, prediction_id="c", scores={"yes": 0.5})
    pub.label("a", "m", 1.0)
    pub.flush()
    expected_predictions = [
        {
            "prediction_id": "a",
            "model_name": "m",
            "model_version": "1",
            "features": {"x": 1.5, "n": None, "c": "é", "b": True, "i": 3},
            "prediction": 0.25,
        },
        {
            "prediction_id": "b",
            "model_name": "m",
            "model_version": "2",
            "features": {"x": 2.5, "nan": None},
            "prediction": "yes",
        },
        {
            "prediction_id": "c",
            "model_name": "m",
            "model_version": "1",
            "features": {"x": 1e308},
            "prediction": 1,
            "scores": {"yes": 0.5},
        },
    ]
    predictions = json.loads(bodies[0])["events"]
    for event in predictions:
        assert type(event.pop("timestamp")) is int
    assert predictions == expected_predictions
    labels = json.loads(bodies[1])["events"]
    assert labels[0]["prediction_id"] == "a" and labels[0]["label"] == 1.0
    assert pub.report.accepted == 4


def test_avro_request_bodies_decode_to_the_events_json_would_carry() -> None:
    """An Avro batch body (the default with the native extension) holds each event in the
    event contract's encoding; decoded, the events are those of the JSON body, with
    numbers as the schema types them (an integral prediction is a double)."""
    import math

    import httpx
    import numpy as np

    from schemas.native import NATIVE

    seen: list[tuple[str, bytes, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.content, request.headers["content-type"]))
        n = len(avro_batch.split(request.content).frames)
        return httpx.Response(202, json={"accepted": n, "rejected": []})

    pub = Publisher(
        "http://x", batch_size=3, transport=httpx.MockTransport(handler), background=False
    )
    assert pub.encoding == ("avro" if NATIVE else "json")
    pub = Publisher(
        "http://x",
        batch_size=3,
        transport=httpx.MockTransport(handler),
        background=False,
        encoding="avro",
    )

    def predict_three(pub: Publisher) -> None:
        features = {"x": 1.5, "n": None, "c": "é", "b": True, "i": 3}
        pub.predict("m", "1", features, 0.25, prediction_id="a", timestamp=1_700_000_000_000)
        features = {"x": np.float32(2.5), "nan": math.nan}
        pub.predict("m", 2, features, "yes", prediction_id="b", timestamp=1_700_000_000_001)
        scores = {"yes": 0.5}
        pub.predict("m", "1", {"x": 1e308}, 1, prediction_id="c", scores=scores, timestamp=7)

    predict_three(pub)
    pub.label("a", "m", 1.0, model_version="1")
    pub.flush()
    assert [(path, kind) for path, _, kind in seen] == [
        ("/v1/predictions", AVRO_BATCH),
        ("/v1/labels", AVRO_BATCH),
    ]
    codec = AvroCodec()
    predictions = [codec.decode_as("prediction", f) for f in avro_batch.split(seen[0][1]).frames]
    assert [event.pop("timestamp") for event in predictions] == [
        1_700_000_000_000,
        1_700_000_000_001,
        7,
    ]
    assert predictions == [
        {
            "prediction_id": "a",
            "model_name": "m",
            "model_version": "1",
            "features": {"x": 1.5, "n": None, "c": "é", "b": True, "i": 3},
            "prediction": 0.25,
            "scores": None,
            "segment": None,
        },
        {
            "prediction_id": "b",
            "model_name": "m",
            "model_version": "2",
            "features": {"x": 2.5, "nan": None},
            "prediction": "yes",
            "scores": None,
            "segment": None,
        },
        {
            "prediction_id": "c",
            "model_name": "m",
            "model_version": "1",
            "features": {"x": 1e308},
            "prediction": 1.0,
            "scores": {"yes": 0.5},
            "segment": None,
        },
    ]
    (label,) = [codec.decode_as("label", f) for f in avro_batch.split(seen[1][1]).frames]
    assert label["prediction_id"] == "a" and label["label"] == 1.0
    assert label["model_version"] == "1"
    assert pub.report.accepted == 4
    # without the native extension (fastavro encodes): the same bytes
    python = Publisher(
        "http://x",
        batch_size=3,
        transport=httpx.MockTransport(handler),
        background=False,
        encoding="avro",
    )
    python._codec = AvroCodec(native=False)
    predict_three(python)
    assert len(seen) == 3 and seen[2][2] == AVRO_BATCH and seen[2][1] == seen[0][1]
    with pytest.raises(ValueError, match="encoding must be 'auto', 'avro' or 'json'"):
        Publisher("http://x", encoding="xml")  # type: ignore[arg-type]


class _JsonOnly(_FakeServer):
    """Takes JSON bodies only (415 otherwise): stands in for a driftline server from
    before Avro batches."""

    seen: ClassVar[list[str]] = []

    def answer(self, content_type: str, data: bytes) -> tuple[int, dict]:
        self.seen.append(content_type)
        if content_type != "application/json":
            return 415, {"detail": "unsupported Content-Type"}
        return 202, {"accepted": len(json.loads(data)["events"]), "rejected": []}


def test_a_server_without_avro_batches_gets_json_from_then_on(caplog) -> None:
    _JsonOnly.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JsonOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pub = Publisher(f"http://127.0.0.1:{server.server_port}", batch_size=2, encoding="avro")
        for i in range(5):
            pub.predict("m", "1", {"x": i}, prediction=1.0)
        report = pub.flush()
        pub.close()
        assert report.accepted == 5 and report.retries == 0 and report.requests == 3
        assert pub.encoding == "json"
        assert _JsonOnly.seen == [AVRO_BATCH] + ["application/json"] * 3
        assert "does not take Avro batches" in caplog.text
    finally:
        server.shutdown()


def _typed(value: object) -> object:
    """A value with its exact type, for comparisons where 1 == 1.0 == True will not do."""
    if isinstance(value, dict):
        return (type(value), [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, float) and value != value:
        return (float, "nan")
    return (type(value), value)


class _Dict(dict):
    """A dict subclass: the Python path, never the native copy."""


def test_features_checked_natively_equal_the_python_check(monkeypatch) -> None:
    """``_features`` with the native check (``plain_features``) returns what the Python
    check returns, value types and key order included, or raises the same error."""
    import math

    import numpy as np
    from hypothesis import given, settings
    from hypothesis import strategies as st

    import driftline.publisher as publisher

    assert publisher._plain_features is not None  # the extension is part of the dev install
    native = publisher._features
    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.sampled_from([np.float32(1.5), np.int64(3), np.bool_(True), math.nan]),
    )
    keys = st.one_of(st.text(max_size=4), st.integers(0, 3))
    dicts = st.dictionaries(keys, values, max_size=8)

    def python(features: dict) -> object:
        with monkeypatch.context() as mp:
            mp.setattr(publisher, "_plain_features", None)
            return outcome(features)

    def outcome(features: dict) -> object:
        try:
            return _typed(publisher._features(features))
        except TypeError as exc:
            return ("TypeError", str(exc))

    @settings(max_examples=400, deadline=None)
    @given(features=dicts, subclass=st.booleans())
    def check(features: dict, subclass: bool) -> None:
        given_features = _Dict(features) if subclass else features
        expected = python(given_features)
        assert outcome(given_features) == expected
        got = native(given_features) if expected[0] != "TypeError" else None
        if got is not None:
            assert got is not given_features  # a copy, never the caller's dict

    check()
    with pytest.raises(TypeError, match="feature values must be"):
        native({"x": [1, 2]})


# --------------------------------------------------------------------------- predict_many


def _offline(**kwargs: object) -> Publisher:
    """A publisher that only buffers (nothing is sent: one batch holds everything)."""
    return Publisher("http://127.0.0.1:9", batch_size=10**9, background=False, **kwargs)  # type: ignore[arg-type]


def _loop_body(rows: list[tuple], encoding: str = "avro") -> bytes:
    """The request body of ``predict`` called once per row ``(features, prediction, id, ts)``."""
    pub = _offline(encoding=encoding)
    for features, prediction, pid, ts in rows:
        pub.predict("m", "7", features, prediction, prediction_id=pid, timestamp=ts)
    return pub._body("predictions", pub._buffers["predictions"])[0]


def _columns_case(kind: str):  # type: ignore[no-untyped-def]
    """Columns, and the same predictions as rows for ``predict``."""
    import numpy as np

    rng = np.random.default_rng(7)
    n = 57
    x = rng.normal(size=n) * 1e6
    x[[3, 9, 11]] = [np.nan, np.inf, -np.inf]
    x[5] = -0.0
    y = rng.normal(size=n).astype(np.float32)
    preds = [float(v) if i % 3 else f"class-{i % 2}" for i, v in enumerate(rng.normal(size=n))]
    ids = [f"id-{i}-é" for i in range(n)]
    ts = [1_700_000_000_000 + 37 * i for i in range(n)]
    columns: dict = {"x": x, "y": y}
    row_features = [{"x": x[i], "y": y[i]} for i in range(n)]
    if kind == "lists":
        columns = {"x": x.tolist(), "y": y.astype(np.float64).tolist()}
        row_features = [{"x": float(x[i]), "y": float(y[i])} for i in range(n)]
    elif kind == "strings":  # not all floats: the rows go one by one through predict
        columns["city"] = np.array(["paris", "oslo", "lima"] * 19)
        for i, f in enumerate(row_features):
            f["city"] = columns["city"][i]
    elif kind == "ints":
        columns["age"] = np.arange(n, dtype=np.int64)
        for i, f in enumerate(row_features):
            f["age"] = columns["age"][i]
    elif kind == "none":
        columns = {}
        row_features = [{} for _ in range(n)]
    rows = list(zip(row_features, preds, ids, ts, strict=True))
    return columns, preds, ids, ts, rows


@pytest.mark.parametrize("kind", ["arrays", "lists", "dataframe", "strings", "ints", "none"])
@pytest.mark.parametrize("encoding", ["avro", "json"])
def test_predict_many_sends_what_predict_sends_row_by_row(kind: str, encoding: str) -> None:
    """The request body of ``predict_many`` over columns is byte for byte the body of
    ``predict`` called per row (float columns encoded natively from the columns, the
    others row by row; NaN and ±inf are missing values either way; Avro and JSON)."""
    import numpy as np
    import pandas as pd

    columns, preds, ids, ts, rows = _columns_case("arrays" if kind == "dataframe" else kind)
    features = pd.DataFrame(columns) if kind == "dataframe" else columns
    pub = _offline(encoding=encoding)
    got = pub.predict_many(
        "m", 7, features, np.array(preds, dtype=object), prediction_ids=ids, timestamps=np.array(ts)
    )
    assert got == ids
    if encoding == "avro" and kind in ("arrays", "lists", "dataframe", "none"):
        assert all(type(e) is bytes for e in pub._buffers["predictions"])  # the native path
    assert pub._body("predictions", pub._buffers["predictions"])[0] == _loop_body(rows, encoding)


def test_predict_many_events_mix_with_predict_and_fall_back_to_json() -> None:
    """Encoded events and dicts share a batch in call order; a server without Avro batches
    (415) gets them as the JSON ``predict`` would have sent."""
    columns, preds, ids, ts, rows = _columns_case("arrays")
    pub = _offline(encoding="avro")

    def many(a: int, b: int) -> None:
        features = {k: v[a:b] for k, v in columns.items()}
        pub.predict_many(
            "m", "7", features, preds[a:b], prediction_ids=ids[a:b], timestamps=ts[a:b]
        )

    many(0, 10)
    pub.predict("m", "7", *rows[10][:2], prediction_id=rows[10][2], timestamp=rows[10][3])
    many(11, len(rows))
    events = pub._buffers["predictions"]
    assert [type(e) for e in events] == [bytes] * 10 + [dict] + [bytes] * (len(rows) - 11)
    assert pub._body("predictions", events)[0] == _loop_body(rows)
    pub._codec = None  # as after a 415
    assert pub._body("predictions", events)[0] == _loop_body(rows, "json")


def test_predict_many_ids_timestamps_and_errors() -> None:
    import numpy as np

    pub = _offline(encoding="avro")
    before = int(time.time() * 1000)
    ids = pub.predict_many("m", "1", {"x": [1.0, 2.0, 3.0]}, [0.1, 0.2, 0.3])
    assert len(set(ids)) == 3 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    stamps = [
        AvroCodec().decode_as("prediction", e)["timestamp"] for e in pub._buffers["predictions"]
    ]
    assert len(set(stamps)) == 1 and before <= stamps[0] <= int(time.time() * 1000)
    pub.predict_many("m", "1", {"x": [1.0]}, ["a"], timestamps=1_700_000_000_000)
    assert (
        AvroCodec().decode_as("prediction", pub._buffers["predictions"][-1])["timestamp"]
        == 1_700_000_000_000
    )
    with pytest.raises(ValueError, match="feature 'x' has 2 values for 3 predictions"):
        pub.predict_many("m", "1", {"x": [1.0, 2.0]}, [1, 2, 3])
    with pytest.raises(ValueError, match="prediction must be a finite number or a string"):
        pub.predict_many("m", "1", {"x": [1.0, 2.0]}, np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match="feature names must be strings"):
        pub.predict_many("m", "1", {3: [1.0]}, [1])
    with pytest.raises(TypeError, match="prediction_ids must be strings"):
        pub.predict_many("m", "1", {"x": [1.0]}, [1], prediction_ids=[5])
    with pytest.raises(ValueError, match="2 prediction_ids for 1 predictions"):
        pub.predict_many("m", "1", {"x": [1.0]}, [1], prediction_ids=["a", "b"])
    with pytest.raises(ValueError, match="2 timestamps for 1 predictions"):
        pub.predict_many("m", "1", {"x": [1.0]}, [1], timestamps=[1, 2])
    with pytest.raises(TypeError, match="datetime or epoch milliseconds"):
        pub.predict_many("m", "1", {"x": [1.0]}, [1], timestamps=["2024-01-01"])
    assert len(pub._buffers["predictions"]) == 4  # the failed calls buffered nothing


def test_predict_many_reaches_the_store_in_batches(tmp_path, chdb_client, ch_database) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    with running_api(tmp_path, chdb_client, ch_database) as (url, runtime):
        with Publisher(url, batch_size=100) as pub:
            assert pub.encoding == "avro"
            ids = pub.predict_many(
                "m", "1", {"x": rng.normal(size=250), "z": rng.normal(size=250)},
                np.where(rng.normal(size=250) > 0, "yes", "no"),
            )  # fmt: skip
            for pid in ids[:40]:
                pub.label(pid, "m", label="yes")
            report = pub.flush(wait=True)
        assert report.accepted == 290 and report.rejected == []
        assert report.requests == 4  # 100 + 100 + 50 predictions, 40 labels
        counts = runtime.store.counts()
        assert counts["predictions"] == 250 and counts["labels"] == 40


@pytest.mark.parametrize("encoding", ["avro", "json"])
def test_label_many_sends_what_label_sends_row_by_row(encoding: str) -> None:
    import numpy as np
    import pandas as pd

    ids = [f"p{i}" for i in range(40)]
    values = ["yes" if i % 3 else 0.25 * i for i in range(40)]
    stamps = [1_700_000_000_000 + i for i in range(40)]
    many, loop = _offline(encoding=encoding), _offline(encoding=encoding)
    many.label_many(
        pd.Series(ids), "m", np.array(values, dtype=object), timestamps=np.array(stamps)
    )
    many.label_many(ids[:3], "m", ["a", "b", "c"], timestamps=7, model_version=2)
    for pid, value, ts in zip(ids, values, stamps, strict=True):
        loop.label(pid, "m", value, timestamp=ts)
    for pid, value in zip(ids[:3], "abc", strict=True):
        loop.label(pid, "m", value, timestamp=7, model_version="2")
    assert many._body("labels", many._buffers["labels"]) == loop._body(
        "labels", loop._buffers["labels"]
    )
    with pytest.raises(ValueError, match="2 prediction_ids for 3 labels"):
        many.label_many(["a", "b"], "m", [1, 2, 3])
    with pytest.raises(ValueError, match="label must be a finite number or a string"):
        many.label_many(["a"], "m", [float("inf")])
    with pytest.raises(ValueError, match="1 timestamps for 2 labels"):
        many.label_many(["a", "b"], "m", [1, 2], timestamps=[5])
    assert len(many._buffers["labels"]) == 43  # the failed calls buffered nothing


class _Recorder(_FakeServer):
    """Accepts everything; records each request's prediction ids (and refuses, with 400,
    the requests whose first id starts with "refuse")."""

    batches: ClassVar[list[list[str]]] = []

    def answer(self, content_type: str, data: bytes) -> tuple[int, dict]:
        ids = [e["prediction_id"] for e in body_events(content_type, data)]
        self.batches.append(ids)
        if ids[0].startswith("refuse"):
            return 400, {"detail": "refused"}
        return 202, {"accepted": len(ids), "rejected": [], "position": 1}


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.batches = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_partly_filled_batch_goes_out_once_its_oldest_event_has_lingered(recorder) -> None:
    pub = Publisher(recorder, batch_size=1_000, linger=0.2)
    ids = [pub.predict("m", "1", {"x": float(i)}, prediction=1.0) for i in range(3)]
    sent = time.monotonic()
    # no flush: the timer thread sends the three once the first has waited 0.2 s
    assert _wait_for(lambda: _Recorder.batches == [ids])
    assert time.monotonic() - sent >= 0.15
    assert pub._buffers["predictions"] == []
    pub.close()
    assert _Recorder.batches == [ids] and pub.report.accepted == 3


def test_without_linger_only_full_batches_and_flush_send(recorder) -> None:
    pub = Publisher(recorder, batch_size=1_000, linger=None)
    ids = [pub.predict("m", "1", {"x": float(i)}, prediction=1.0) for i in range(3)]
    time.sleep(0.5)
    assert _Recorder.batches == []
    pub.flush()
    assert _Recorder.batches == [ids]
    pub.close()


def test_without_the_background_thread_a_stale_batch_goes_at_the_next_call(recorder) -> None:
    pub = Publisher(recorder, batch_size=1_000, linger=0.05, background=False)
    first = pub.predict("m", "1", {"x": 1.0}, prediction=1.0)
    time.sleep(0.2)
    assert _Recorder.batches == []  # no thread of its own: nothing is sent behind the caller
    second = pub.predict("m", "1", {"x": 2.0}, prediction=1.0)
    assert _Recorder.batches == [[first, second]]
    pub.close()


def test_a_lingered_batch_that_fails_raises_at_the_next_call_and_loses_nothing(
    recorder,
) -> None:
    pub = Publisher(recorder, batch_size=1_000, linger=0.1)
    pub.predict("m", "1", {"x": 1.0}, prediction=1.0, prediction_id="refuse-1")
    # the timer sends it and it is refused (400, not retried) ...
    assert _wait_for(lambda: _Recorder.batches == [["refuse-1"]])
    assert _wait_for(lambda: pub._deferred is not None)
    # ... the caller hears of it at its next call, and the event is back in the buffer
    with pytest.raises(PublishError, match="answered 400: refused"):
        pub.predict("m", "1", {"x": 2.0}, prediction=1.0, prediction_id="p2")
    assert [e["prediction_id"] for e in pub._buffers["predictions"]] == ["refuse-1", "p2"]
    pub._buffers["predictions"][0]["prediction_id"] = "p1"  # (the server takes it now)
    assert pub.flush().accepted == 2
    pub.close()


@pytest.mark.parametrize("linger", [0, -1.0, float("nan")])
def test_linger_must_be_positive_or_none(linger: float) -> None:
    with pytest.raises(ValueError, match="linger must be a positive number of seconds or None"):
        Publisher("http://127.0.0.1:9", linger=linger)


@pytest.mark.parametrize("encoding", ["avro", "json"])
def test_a_batch_over_the_servers_limit_goes_in_halves(
    tmp_path, chdb_client, ch_database, encoding
) -> None:
    """The real API with max_batch_size=4: a batch of 10 (one of them invalid) is refused
    with 413, sent again in halves (5: again 413, so 2 + 3), everything valid stored and
    the invalid event reported at its index in the whole batch (a time out of range); the
    publisher's later batches are no larger than what was taken."""
    with running_api(tmp_path, chdb_client, ch_database, max_batch_size=4) as (url, runtime):
        pub = Publisher(url, batch_size=10, encoding=encoding, linger=None)
        for i in range(10):
            # event 7's time is in the year 33658: the server rejects that one (422 for it)
            pub.predict(
                "m",
                "1",
                {"x": float(i)},
                prediction=1.0,
                prediction_id=f"p{i}",
                timestamp=10**15 if i == 7 else None,
            )
        report = pub.flush(wait=True)
        pub.close()
        assert report.accepted == 9
        assert [r["index"] for r in report.rejected] == [7]
        assert runtime.store.counts()["predictions"] == 9
        assert pub.batch_size == 2  # 10 refused, then 5: later batches fit at once


def test_one_event_over_the_servers_limit_is_a_clear_error(
    tmp_path, chdb_client, ch_database
) -> None:
    with running_api(tmp_path, chdb_client, ch_database, max_body_bytes=64) as (url, _runtime):
        pub = Publisher(url, batch_size=10, linger=None)
        pub.predict("m", "1", {"x": 1.0}, prediction=1.0)
        with pytest.raises(PublishError, match="answered 413"):
            pub.flush()
        assert len(pub._buffers["predictions"]) == 1  # kept for a later flush


def test_flush_wait_also_waits_for_batches_sent_before(tmp_path, chdb_client, ch_database) -> None:
    """Every batch went out full (from the background thread, without ?wait): flush(wait=True)
    has nothing left to send, and still returns only once the server has processed and
    stored them (GET /v1/processed, the highest position of the answers)."""
    with running_api(tmp_path, chdb_client, ch_database) as (url, runtime):
        pub = Publisher(url, batch_size=3, linger=None)
        for i in range(6):
            pub.predict("m", "1", {"x": float(i)}, prediction=1.0, prediction_id=f"p{i}")
        assert pub._buffers["predictions"] == []
        pub.flush(wait=True)
        assert runtime.store.counts()["predictions"] == 6
        pub.close()
        with httpx.Client(base_url=url) as client:
            beyond = client.get("/v1/processed", params={"position": 10**12})
            assert beyond.status_code == 422
            assert "beyond the log's end" in beyond.json()["detail"]
            assert client.get("/v1/processed", params={"position": -1}).status_code == 422
            done = client.get("/v1/processed", params={"position": pub._position})
            assert done.json() == {"position": pub._position, "processed": True}


def test_a_publisher_dropped_without_close_is_collected_and_its_timer_ends() -> None:
    import gc
    import weakref

    pub = Publisher("http://127.0.0.1:9", linger=0.05)
    timer, ref = pub._lingerer, weakref.ref(pub)
    assert timer is not None and timer.is_alive()
    del pub
    gc.collect()
    assert ref() is None  # the timer thread holds it weakly
    timer.join(5)
    assert not timer.is_alive()
