"""`driftline publish`, `driftline topics`, the Kafka publisher and the registry lookup."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.cli import main
from driftline.publisher import KafkaPublisher
from schemas.codec import AvroCodec
from schemas.topics import Topic
from streams.kafka_topics import TopicNames, TopicsError, ensure_topics
from streams.schema_registry import SchemaRegistryError, registry_ids


def _read(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, dict]]:
    codec = AvroCodec()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[tuple[bytes, dict]] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            out.append((msg.key(), codec.decode(msg.value())[1]))
    finally:
        consumer.close()
    return out


@pytest.fixture(autouse=True)
def _no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DRIFTLINE_CONFIG", raising=False)


@pytest.mark.kafka
def test_publish_sends_file_rows_as_avro_events(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}."
    csv = tmp_path / "preds.csv"
    csv.write_text(
        "prediction_id,timestamp,age,city,prediction\n"
        "a1,2024-05-01T10:00:00Z,41,Lyon,0.8\n"
        "a2,2024-05-01T10:00:01Z,,Paris,0.1\n"
    )
    base = ["--bootstrap", kafka_bootstrap, "--topic-prefix", prefix]
    assert (
        main(
            [
                "publish",
                str(csv),
                "--topic",
                "predictions",
                "--model",
                "churn",
                "--version",
                "2",
                *base,
            ]
        )
        == 0
    )
    got = _read(kafka_bootstrap, f"{prefix}driftline.predictions", 2)
    assert [k for k, _ in got] == [b"churn", b"churn"]
    records = {r["prediction_id"]: r for _, r in got}
    assert records["a1"]["features"] == {"age": 41.0, "city": "Lyon"}
    assert records["a2"]["features"]["age"] is None  # missing stays missing
    assert records["a1"]["timestamp"] == 1_714_557_600_000
    assert records["a1"]["model_version"] == "2" and records["a1"]["prediction"] == 0.8

    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        json.dumps({"prediction_id": "a1", "label": 1, "timestamp": 1_714_560_000_000}) + "\n"
    )
    assert main(["publish", str(labels), "--topic", "labels", "--model", "churn", *base]) == 0
    [(key, label)] = _read(kafka_bootstrap, f"{prefix}driftline.labels", 1)
    assert key == b"churn"
    assert label["prediction_id"] == "a1" and label["label"] == 1.0
    assert label["timestamp"] == 1_714_560_000_000


def test_publish_needs_a_bootstrap_and_a_version(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("prediction_id,prediction\na,1\n")
    assert (
        main(["publish", str(csv), "--topic", "predictions", "--model", "m", "--version", "1"]) == 2
    )
    assert "no Kafka bootstrap servers" in capsys.readouterr().err
    code = main(
        [
            "publish",
            str(csv),
            "--topic",
            "predictions",
            "--model",
            "m",
            "--bootstrap",
            "127.0.0.1:1",
        ]
    )
    assert code == 2
    assert "model version" in capsys.readouterr().err


@pytest.mark.kafka
def test_topics_create_then_describe(kafka_bootstrap: str, capsys: pytest.CaptureFixture) -> None:
    prefix = f"c{uuid.uuid4().hex[:8]}."
    base = ["--bootstrap", kafka_bootstrap, "--topic-prefix", prefix]
    assert main(["topics", "describe", *base, "--json"]) == 1  # nothing there yet
    capsys.readouterr()
    assert main(["topics", "create", *base, "--partitions", "3"]) == 0
    assert "11 topics created" in capsys.readouterr().out
    assert main(["topics", "describe", *base, "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert len(infos) == 11 and all(i["exists"] and not i["problems"] for i in infos)
    assert {i["partitions"] for i in infos} == {3}
    state = next(i for i in infos if i["role"] == "state")
    assert state["name"] == f"{prefix}driftline-worker-state"
    assert state["config"]["cleanup.policy"] == "compact"
    preds = next(i for i in infos if i["name"] == f"{prefix}driftline.predictions")
    assert preds["config"]["message.timestamp.type"] == "LogAppendTime"
    assert main(["topics", "create", *base]) == 0  # idempotent
    assert "0 topics created" in capsys.readouterr().out


@pytest.mark.kafka
def test_topics_refuse_input_topics_that_are_not_co_partitioned(kafka_bootstrap: str) -> None:
    names = TopicNames(prefix=f"x{uuid.uuid4().hex[:8]}.")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics(
        [NewTopic(names.name(Topic.PREDICTIONS), 4, 1), NewTopic(names.name(Topic.LABELS), 2, 1)]
    )
    for future in futures.values():
        future.result(30)
    with pytest.raises(TopicsError, match="co-partitioned"):
        ensure_topics(kafka_bootstrap, names, 4, 1)


@pytest.mark.kafka
def test_kafka_publisher_delivers_and_reports(kafka_bootstrap: str) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap, TopicNames(prefix=prefix), 2, 1)
    with KafkaPublisher(kafka_bootstrap, topic_prefix=prefix) as pub:
        pid = pub.predict("churn", "1", {"age": 30, "vip": True}, prediction="yes", timestamp=1_000)
        pub.label(pid, "churn", "no", timestamp=2_000)
        pub.label(42, "churn", "no")  # not a string id: refused before it reaches Kafka
        report = pub.flush()
    assert report.accepted == 2
    assert len(report.rejected) == 1 and "prediction_id" in report.rejected[0]["reason"]
    [(key, record)] = _read(kafka_bootstrap, f"{prefix}driftline.predictions", 1)
    assert key == b"churn" and record["prediction_id"] == pid and record["features"]["vip"] is True
    [(_, label)] = _read(kafka_bootstrap, f"{prefix}driftline.labels", 1)
    assert label["prediction_id"] == pid and label["label"] == "no"


@pytest.mark.kafka
def test_kafka_publisher_predict_many_and_label_many_produce_each_row_keyed_by_model(
    kafka_bootstrap: str,
) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap, TopicNames(prefix=prefix), 2, 1)
    with KafkaPublisher(kafka_bootstrap, topic_prefix=prefix) as pub:
        ids = pub.predict_many(
            "fraud", "3", {"amount": [12.5, float("nan"), 7.0]}, [0.1, 0.9, 0.4],
            timestamps=[1_000, 2_000, 3_000],
        )  # fmt: skip
        pub.label_many(ids[:2], "fraud", ["ok", "fraud"], timestamps=4_000)
        report = pub.flush()
    assert report.accepted == 5 and report.rejected == []
    labels = _read(kafka_bootstrap, f"{prefix}driftline.labels", 2)
    assert {key for key, _ in labels} == {b"fraud"}
    assert sorted((r["prediction_id"], r["label"]) for _, r in labels) == sorted(
        zip(ids[:2], ["ok", "fraud"], strict=True)
    )
    got = _read(kafka_bootstrap, f"{prefix}driftline.predictions", 3)
    assert {key for key, _ in got} == {b"fraud"}
    by_id = {record["prediction_id"]: record for _, record in got}
    assert set(by_id) == set(ids)
    assert [by_id[i]["features"]["amount"] for i in ids] == [12.5, None, 7.0]
    assert [by_id[i]["timestamp"] for i in ids] == [1_000, 2_000, 3_000]


def test_registry_ids_map_subjects_to_schemas() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/subjects/driftline.predictions-value/versions":
            return httpx.Response(200, json=[1, 2])
        if path.startswith("/subjects/driftline.predictions-value/versions/"):
            version = int(path.rsplit("/", 1)[1])
            return httpx.Response(200, json={"id": 100 + version, "version": version})
        return httpx.Response(404, json={"error_code": 40401})

    ids = registry_ids("http://registry", TopicNames(), transport=httpx.MockTransport(handler))
    assert ids == {101: "prediction", 102: "prediction"}
    codec = AvroCodec(registry_ids=ids)
    body = AvroCodec().encode(
        "prediction",
        {
            "prediction_id": "p",
            "model_name": "m",
            "model_version": "1",
            "timestamp": 0,
            "features": {},
            "prediction": 1.0,
        },
    )[10:]
    assert codec.decode(b"\x00" + (102).to_bytes(4, "big") + body)[0] == "prediction"

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="boom")

    with pytest.raises(SchemaRegistryError, match="500"):
        registry_ids("http://registry", TopicNames(), transport=httpx.MockTransport(broken))


def test_worker_engine_faust_refuses_what_it_does_not_support(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The options only the default engine has fail clearly instead of being ignored (the faust
    engine itself runs in tests/streams/test_faust_app.py)."""
    argv = [
        "worker",
        "--engine",
        "faust",
        "--bootstrap",
        "127.0.0.1:1",
        "--data-dir",
        str(tmp_path),
    ]
    assert main([*argv, "--no-create-topics"]) == 2
    assert "--engine faust does not support --no-create-topics" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["worker", "--engine", "kafka-streams"])
    assert exc.value.code == 2
    assert "invalid choice: 'kafka-streams'" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-5", "ten"])
def test_worker_refuses_a_merge_bucket_below_one_ms(
    value: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["worker", "--bootstrap", "127.0.0.1:1", "--merge-bucket-ms", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --merge-bucket-ms:" in err
    assert ("must be at least 1" in err) if value != "ten" else ("expected an integer" in err)


def test_a_partition_task_refuses_a_bucket_below_one_ms() -> None:
    from driftline.settings import load_settings
    from streams.embedded import processor_config
    from streams.kafka_runtime import PartitionTask

    with pytest.raises(ValueError, match="bucket_ms must be at least 1, got 0"):
        PartitionTask(0, processor_config(load_settings()), {}, bucket_ms=0)


def test_the_faust_engine_refuses_a_merge_bucket_below_one_ms(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from streams import faust_app

    argv = ["--bootstrap", "127.0.0.1:1", "--data-dir", str(tmp_path), "--merge-bucket-ms"]
    with pytest.raises(SystemExit) as exc:
        faust_app.main([*argv, "0"])
    assert exc.value.code == 2
    assert "argument --merge-bucket-ms: must be at least 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_worker_refuses_a_batch_size_below_one(value: str, capsys: pytest.CaptureFixture) -> None:
    """``--batch-size`` (records per step) of either engine: a clear usage error."""
    from streams import faust_app

    with pytest.raises(SystemExit) as exc:
        main(["worker", "--bootstrap", "127.0.0.1:1", "--batch-size", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --batch-size:" in err
    assert ("must be at least 1" in err) if value != "many" else ("expected an integer" in err)
    with pytest.raises(SystemExit) as exc:
        faust_app.main(["--bootstrap", "127.0.0.1:1", "--data-dir", ".", "--batch-size", value])
    assert exc.value.code == 2
    assert "argument --batch-size:" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["", "worker 1", "w/1", "x" * 250])
def test_worker_refuses_a_worker_id_kafka_would(value: str, capsys: pytest.CaptureFixture) -> None:
    """``--worker-id`` (Kafka's group.instance.id) of either engine: 1-249 of a-z A-Z 0-9 . _ -;
    anything else a clear usage error instead of the broker refusing the member later."""
    from streams import faust_app

    for run in (
        lambda: main(["worker", "--bootstrap", "127.0.0.1:1", "--worker-id", value]),
        lambda: faust_app.main(
            ["--bootstrap", "127.0.0.1:1", "--data-dir", "x", "--worker-id", value]
        ),
    ):
        with pytest.raises(SystemExit) as exc:
            run()
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "argument --worker-id: must be 1-249 letters, digits" in err


def test_worker_engine_faust_passes_the_worker_id_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams import faust_app

    seen: list[list[str]] = []
    monkeypatch.setattr(faust_app, "main", lambda argv: seen.append(argv) or 0)
    argv = ["worker", "--engine", "faust", "--bootstrap", "127.0.0.1:1"]
    assert main([*argv, "--data-dir", str(tmp_path), "--worker-id", "pod-0.a_b"]) == 0
    i = seen[0].index("--worker-id")
    assert seen[0][i + 1] == "pod-0.a_b"
