"""Tests of streams/store.py on the real ClickHouse engine (chDB through clickhouse-connect).

Every test uses the session's engine (``chdb_client``) and a database of its own
(``ch_database``); the tests that need an engine on another path run in a subprocess.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import DecodeError, dead_letter_record
from schemas.ddl import TABLES
from schemas.native import NATIVE
from schemas.rows import TOPIC_TABLES, topic_rows
from schemas.topics import DATASET_FEATURE, PREDICTION_FEATURE, Topic
from streams.store import _TIME_COLUMNS, ClickHouseStore, StoreError, mask_dsn

REPO = Path(__file__).resolve().parents[2]
NOW = (time.time_ns() // 1_000_000 // 1000) * 1000  # recent, so the raw-event TTL keeps it
HOUR = 3_600_000
HOSTILE = "churn'; DROP TABLE predictions; --"


class InsertSpy:
    """A client that counts ``insert`` calls and passes everything on."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.inserts: list[tuple[str, int]] = []

    def insert(self, table: str, data: Any, **kwargs: Any) -> Any:
        self.inserts.append((table, len(data)))
        return self._client.insert(table, data, **kwargs)

    def raw_insert(self, table: str, column_names: Any = None, **kwargs: Any) -> Any:
        self.inserts.append((table.rsplit(".", 1)[-1], kwargs.get("fmt")))
        return self._client.raw_insert(table, column_names, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def store(chdb_client: Any, ch_database: str) -> ClickHouseStore:
    """A migrated store on the test's database."""
    store = ClickHouseStore(chdb_client, database=ch_database)
    store.migrate()
    return store


def alert_record(revision: int, state: str, alert_id: str = "a-1", **fields: Any) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "model_name": "churn",
        "model_version": "3",
        "kind": "data_drift",
        "feature": "age",
        "state": state,
        "severity": "warning",
        "opened_at": NOW - HOUR,
        "updated_at": NOW - HOUR + revision * 1000,
        "revision": revision,
        "value": 0.3,
        "threshold": 0.2,
        "occurrences": 1 + revision,
        "message": "PSI 0.3 > 0.2",
        "acknowledged_by": "ana" if state != "open" else None,
        **fields,
    }


def sample_batches(now: int = NOW) -> dict[Topic, list[dict[str, Any]]]:
    """A batch of valid records for every stored topic, timestamps around ``now``."""
    prediction = {
        "prediction_id": "p-1",
        "model_name": "churn",
        "model_version": "3",
        "timestamp": now - 2000,
        "features": {"age": 42, "income": 10.5, "city": "Lyon", "member": False, "gap": None},
        "prediction": "yes",
        "scores": {"yes": 0.7, "no": 0.3},
        "segment": {"region": "eu"},
    }
    metric = {
        "metric_id": "m-1",
        "model_name": "churn",
        "model_version": "3",
        "window_start": now - HOUR,
        "window_end": now,
        "feature": "age",
        "metric": "psi",
        "value": 0.3,
        "pvalue": None,
        "threshold": 0.2,
        "drift": True,
        "primary": True,
        "n_reference": 100,
        "n_current": 50,
    }
    return {
        Topic.PREDICTIONS: [
            prediction,
            {**prediction, "prediction_id": "p-2", "prediction": 0.4, "scores": None},
            {**prediction, "prediction_id": "p-3", "timestamp": now - 1000, "segment": None},
            {**prediction, "prediction_id": "p-9", "model_version": "4", "timestamp": now},
        ],
        Topic.LABELS: [
            {"prediction_id": "p-1", "model_name": "churn", "label": "yes", "timestamp": now},
            {
                "prediction_id": "p-2",
                "model_name": "churn",
                "label": 1.0,
                "timestamp": now,
                "model_version": "3",
            },
        ],
        Topic.DRIFT_METRICS: [
            metric,
            {**metric, "metric_id": "m-2", "metric": "ks", "pvalue": 0.01, "primary": False},
            {**metric, "metric_id": "m-3", "segment": "eu"},
            {
                **metric,
                "metric_id": "m-4",
                "feature": DATASET_FEATURE,
                "metric": "share_drifted",
                "value": 0.5,
                "threshold": 0.5,
            },
            {**metric, "metric_id": "m-5", "feature": PREDICTION_FEATURE, "drift": False},
            {
                **metric,
                "metric_id": "m-6",
                "window_start": now - 2 * HOUR,
                "window_end": now - HOUR,
                "value": 0.05,
                "drift": False,
            },
        ],
        Topic.PERFORMANCE_METRICS: [
            {
                "metric_id": f"pm-{name}-{start}",
                "model_name": "churn",
                "model_version": "3",
                "window_start": start,
                "window_end": start + HOUR,
                "metric": name,
                "value": 0.9,
                "n_labels": 10,
            }
            for name in ("accuracy", "f1")
            for start in (now - 2 * HOUR, now - HOUR)
        ],
        Topic.DRIFT_DETECTIONS: [
            {
                "detection_id": f"d-{i}",
                "model_name": "churn",
                "model_version": "3",
                "kind": "data_drift" if i < 2 else "concept_drift",
                "detector": "psi" if i < 2 else "adwin",
                "feature": "age" if i < 2 else None,
                "detected_at": now - 10_000 + i,
                "value": 0.3,
                "threshold": 0.2,
                "severity": "warning",
                "details": {"n": str(i)},
            }
            for i in range(3)
        ],
        Topic.ALERTS: [alert_record(0, "open"), alert_record(0, "open", alert_id="a-2")],
        Topic.ALERT_ACKS: [
            {"alert_id": "a-1", "action": "acknowledge", "actor": "ana", "timestamp": now},
        ],
        Topic.MODEL_EVENTS: [
            {
                "event_id": "e-1",
                "model_name": "churn",
                "model_version": "4",
                "event_type": "registered",
                "timestamp": now - HOUR,
                "reference_profile": '{"format_version": 1}',
            },
            {
                "event_id": "e-2",
                "model_name": "churn",
                "model_version": "4",
                "event_type": "promoted",
                "timestamp": now,
                "run_id": "r-1",
            },
        ],
        Topic.DEAD_LETTERS: [
            dead_letter_record(
                str(Topic.PREDICTIONS),
                b"\xc3\x01\xff\x00junk",
                DecodeError("truncated body"),
                received_at=now,
            ),
            dead_letter_record(
                str(Topic.LABELS), b"{", DecodeError("not avro"), received_at=now + 1
            ),
        ],
    }


def expected_counts(batches: dict[Topic, list[dict[str, Any]]]) -> dict[str, int]:
    counts = dict.fromkeys(TABLES, 0)
    for topic, records in batches.items():
        for table, rows in topic_rows(topic, records).items():
            counts[table] += len(rows)
    return counts


def snapshot(store: ClickHouseStore) -> dict[str, Any]:
    """Every query's answer, to compare before and after a replay."""
    return {
        "counts": store.counts(),
        "models": store.models(),
        "drift": store.drift_series("churn"),
        "performance": store.performance_series("churn"),
        "detections": store.detections(),
        "alerts": store.alerts(),
        "dead_letters": store.dead_letters(),
        "profile": store.reference_profile("churn", "4"),
        "predictions": store.raw_predictions("churn", "3"),
    }


# --- migrations --------------------------------------------------------------------------


def tables_of(client: Any, database: str) -> list[str]:
    rows = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
        parameters={"db": database},
    ).result_rows
    return [row[0] for row in rows]


def test_migrate_twice_is_a_no_op(chdb_client: Any, ch_database: str) -> None:
    store = ClickHouseStore(chdb_client, database=ch_database)
    assert store.current_version() == 0
    assert store.migrate() == [1]
    assert store.current_version() == 1
    assert tables_of(chdb_client, ch_database) == sorted([*TABLES, "schema_migrations"])
    assert store.migrate() == []
    assert ClickHouseStore(chdb_client, database=ch_database).migrate() == []
    assert store.current_version() == 1
    rows = chdb_client.query(
        f"SELECT version, name FROM {ch_database}.schema_migrations"
    ).result_rows
    assert rows == [(1, "create tables")]


def test_migrate_creates_a_missing_database(chdb_client: Any, ch_database: str) -> None:
    database = f"{ch_database}_new"
    store = ClickHouseStore(chdb_client, database=database)
    try:
        assert store.current_version() == 0
        assert store.migrate() == [1]
        assert "predictions" in tables_of(chdb_client, database)
    finally:
        chdb_client.command(f"DROP DATABASE IF EXISTS {database} SYNC")


def test_migrate_refuses_a_newer_schema(store: ClickHouseStore, chdb_client: Any) -> None:
    chdb_client.command(
        f"INSERT INTO {store.database}.schema_migrations VALUES (99, 'future', now64(3))"
    )
    with pytest.raises(StoreError, match="schema version 99, newer than this driftline"):
        store.migrate()


def test_migrate_applies_a_changed_ttl(store: ClickHouseStore, chdb_client: Any) -> None:
    def ttl_days(table: str) -> str:
        return str(chdb_client.command(f"SHOW CREATE TABLE {store.database}.{table}"))

    assert "toIntervalDay(30)" in ttl_days("predictions")
    ClickHouseStore(chdb_client, database=store.database, raw_ttl_days=7).migrate()
    for table in ("predictions", "labels", "dead_letters"):
        assert "toIntervalDay(7)" in ttl_days(table), table
    assert "TTL" not in ttl_days("alerts")


def test_time_columns_are_every_datetime_column(store: ClickHouseStore, chdb_client: Any) -> None:
    rows = chdb_client.query(
        "SELECT DISTINCT name FROM system.columns WHERE database = {db:String} "
        "AND table != 'schema_migrations' AND type LIKE 'DateTime%'",
        parameters={"db": store.database},
    ).result_rows
    assert {row[0] for row in rows} == _TIME_COLUMNS


def test_constructor_checks_its_arguments(chdb_client: Any) -> None:
    with pytest.raises(ValueError, match="not a plain identifier"):
        ClickHouseStore(chdb_client, database="x; DROP DATABASE y")
    with pytest.raises(ValueError, match="raw_ttl_days must be a positive int"):
        ClickHouseStore(chdb_client, raw_ttl_days=0)


# --- writes ------------------------------------------------------------------------------


def test_topic_tables_cover_every_table_and_stored_topic() -> None:
    assert sorted(t for tables in TOPIC_TABLES.values() for t in tables) == sorted(TABLES)
    assert set(TOPIC_TABLES) == set(Topic) - {Topic.RETRAIN_REQUESTS}


def test_write_every_topic_and_count(store: ClickHouseStore) -> None:
    batches = sample_batches()
    written = {topic: store.write(topic, records) for topic, records in batches.items()}
    assert written[Topic.PREDICTIONS] == 4
    assert written[Topic.MODEL_EVENTS] == 3  # two events, one of them with a profile
    assert store.counts() == expected_counts(batches)
    assert store.counts()["reference_profiles"] == 1
    assert store.write(Topic.ALERTS, []) == 0


def test_one_insert_per_table_per_call(chdb_client: Any, ch_database: str) -> None:
    spy = InsertSpy(chdb_client)
    store = ClickHouseStore(spy, database=ch_database)
    store.migrate()
    spy.inserts.clear()
    batches = sample_batches()
    store.write(Topic.PREDICTIONS, batches[Topic.PREDICTIONS])
    store.write(Topic.MODEL_EVENTS, batches[Topic.MODEL_EVENTS])
    raw = ("predictions", "Native") if NATIVE else ("predictions", 4)
    assert spy.inserts == [raw, ("model_versions", 2), ("reference_profiles", 1)]


def test_native_rowbinary_writes_the_same_rows_as_the_python_path(
    chdb_client: Any, ch_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw predictions and labels through the native RowBinary writer (inserted as a
    Native block, and as the RowBinary itself) and through ``topic_rows`` + ``insert``,
    into three databases of the real engine: same tables."""
    import streams.store as store_module

    assert NATIVE, "the native extension is part of the install (make venv builds it)"
    batches = sample_batches()
    raw = {t: batches[t] for t in (Topic.PREDICTIONS, Topic.LABELS)}
    spy = InsertSpy(chdb_client)

    def insert_formats(database: str) -> list[Any]:
        """Write the raw batches through a new store on ``database``: its insert formats."""
        store = ClickHouseStore(spy, database=database)
        store.migrate()
        spy.inserts.clear()
        for topic, records in raw.items():
            store.write(topic, records)
        return [fmt for _, fmt in spy.inserts]

    assert insert_formats(ch_database) == ["Native", "Native"]
    python_db, rowbinary_db = ch_database + "_py", ch_database + "_rb"
    try:
        monkeypatch.setattr(store_module, "native_block", lambda table, rows: None)
        assert insert_formats(rowbinary_db) == ["RowBinary", "RowBinary"]
        monkeypatch.setattr(store_module, "rowbinary", lambda table, records: None)
        python = insert_formats(python_db)  # topic_rows + insert: the row count per insert
        assert len(python) == 2 and all(type(n) is int and n > 0 for n in python)
        for table in ("predictions", "labels"):
            query = f"SELECT * FROM {{db:Identifier}}.{table} ORDER BY prediction_id"
            native_rows = chdb_client.query(query, parameters={"db": ch_database}).result_rows
            python_rows = chdb_client.query(query, parameters={"db": python_db}).result_rows
            rowbinary_rows = chdb_client.query(query, parameters={"db": rowbinary_db}).result_rows
            assert native_rows == python_rows == rowbinary_rows and native_rows
    finally:
        for db in (python_db, rowbinary_db):
            chdb_client.command(f"DROP DATABASE IF EXISTS {db} SYNC")


def test_rewrite_changes_nothing(store: ClickHouseStore) -> None:
    batches = sample_batches()
    for topic, records in batches.items():
        store.write(topic, records)
    before = snapshot(store)
    # A replay after a crash: the same records, in other batches and another order.
    for topic, records in batches.items():
        for record in reversed(records):
            store.write(topic, [record])
        store.write(topic, records)
    assert snapshot(store) == before
    assert before["counts"] == expected_counts(batches)


def test_write_refuses_bad_input_and_inserts_nothing(store: ClickHouseStore) -> None:
    good = sample_batches()[Topic.PREDICTIONS][0]
    broken = {key: value for key, value in good.items() if key != "timestamp"}
    with pytest.raises(ValueError, match=r"record 1 of driftline\.predictions: missing field"):
        store.write(Topic.PREDICTIONS, [good, broken])
    with pytest.raises(ValueError, match="not stored"):
        store.write(Topic.RETRAIN_REQUESTS, [{"request_id": "r"}])
    assert store.counts()["predictions"] == 0


# --- queries -----------------------------------------------------------------------------


@pytest.fixture
def filled(store: ClickHouseStore) -> ClickHouseStore:
    for topic, records in sample_batches().items():
        store.write(topic, records)
    return store


def test_models(filled: ClickHouseStore) -> None:
    filled.write(
        Topic.PREDICTIONS, [{**sample_batches()[Topic.PREDICTIONS][0], "model_version": "10"}]
    )
    models = filled.models()
    assert [(m["model_name"], m["model_version"]) for m in models] == [
        ("churn", "3"),
        ("churn", "4"),
        ("churn", "10"),
    ]
    v3, v4, _ = models
    assert v3 == {
        "model_name": "churn",
        "model_version": "3",
        "predictions": 3,
        "first_seen": NOW - 2000,
        "last_seen": NOW - 1000,
        "open_alerts": 2,
        "acknowledged_alerts": 0,
        "last_event": None,
        "last_event_at": None,
    }
    assert (v4["predictions"], v4["first_seen"], v4["open_alerts"]) == (1, NOW, 0)
    assert (v4["last_event"], v4["last_event_at"]) == ("promoted", NOW)


def test_drift_series_filters(filled: ClickHouseStore) -> None:
    rows = filled.drift_series("churn")
    assert rows[0]["metric_id"] == "m-6"  # oldest window first
    assert len(rows) == 6
    row = next(row for row in rows if row["metric_id"] == "m-1")
    assert row == {
        "metric_id": "m-1",
        "model_name": "churn",
        "model_version": "3",
        "segment": "",
        "window_start": NOW - HOUR,
        "window_end": NOW,
        "feature": "age",
        "metric": "psi",
        "value": 0.3,
        "pvalue": None,
        "threshold": 0.2,
        "drift": True,
        "primary": True,
        "n_reference": 100,
        "n_current": 50,
        "missing_rate": 0.0,
        "out_of_range_rate": 0.0,
        "late_events": 0,
    }

    def ids(**filters: Any) -> list[str]:
        return sorted(row["metric_id"] for row in filled.drift_series("churn", **filters))

    assert ids(metric="ks") == ["m-2"]
    assert ids(feature="age", segment="") == ["m-1", "m-2", "m-6"]
    assert ids(segment="eu") == ["m-3"]
    assert ids(since_ms=NOW - HOUR) == ["m-1", "m-2", "m-3", "m-4", "m-5"]
    assert ids(until_ms=NOW - HOUR) == ["m-6"]
    assert ids(primary_only=True, feature="age") == ["m-1", "m-3", "m-6"]
    assert ids(version="4") == []
    assert filled.drift_series("other") == []
    dataset = filled.dataset_drift_series("churn", "3")
    assert [(row["metric_id"], row["value"]) for row in dataset] == [("m-4", 0.5)]


def test_performance_series(filled: ClickHouseStore) -> None:
    rows = filled.performance_series("churn", "3", metric="f1")
    assert [row["window_start"] for row in rows] == [NOW - 2 * HOUR, NOW - HOUR]
    assert rows[0]["window_end"] == NOW - HOUR and rows[0]["n_labels"] == 10
    assert len(filled.performance_series("churn")) == 4
    assert len(filled.performance_series("churn", since_ms=NOW - HOUR)) == 2


def test_detections_newest_first(filled: ClickHouseStore) -> None:
    rows = filled.detections("churn")
    assert [row["detection_id"] for row in rows] == ["d-2", "d-1", "d-0"]
    assert rows[0]["feature"] is None and rows[0]["details"] == {"n": "2"}
    assert rows[0]["detected_at"] == NOW - 10_000 + 2
    assert [row["detection_id"] for row in filled.detections(kind="data_drift", limit=1)] == ["d-1"]
    assert filled.detections("churn", "4") == []
    with pytest.raises(ValueError, match="limit"):
        filled.detections(limit=0)


def test_alerts_latest_revision_wins(store: ClickHouseStore) -> None:
    # Revisions arrive out of order (two partitions of the alert topic, a replay).
    store.write(Topic.ALERTS, [alert_record(2, "resolved", resolved_by="bob")])
    store.write(Topic.ALERTS, [alert_record(0, "open"), alert_record(0, "open", alert_id="a-2")])
    store.write(Topic.ALERTS, [alert_record(1, "acknowledged")])
    latest = store.alert("a-1")
    assert latest is not None
    assert (latest["revision"], latest["state"], latest["resolved_by"]) == (2, "resolved", "bob")
    assert latest["opened_at"] == NOW - HOUR and latest["updated_at"] == NOW - HOUR + 2000
    assert [a["alert_id"] for a in store.alerts(state="open")] == ["a-2"]
    assert store.alerts(state="acknowledged") == []
    assert [a["alert_id"] for a in store.alerts(state="resolved")] == ["a-1"]
    assert [a["alert_id"] for a in store.alerts()] == ["a-1", "a-2"]  # most recently updated first
    assert [a["alert_id"] for a in store.alerts(limit=1)] == ["a-1"]
    assert store.alerts(model="other") == []
    assert store.alert("a-404") is None
    assert store.counts()["alerts"] == 2
    with pytest.raises(ValueError, match="unknown alert state 'closed'"):
        store.alerts(state="closed")  # type: ignore[arg-type]


def test_dead_letters(filled: ClickHouseStore) -> None:
    rows = filled.dead_letters()
    assert [row["reason"] for row in rows] == ["not avro", "truncated body"]
    assert rows[1]["raw"] == b"\xc3\x01\xff\x00junk"
    assert rows[1]["received_at"] == NOW
    assert filled.dead_letter_count() == 2
    assert filled.dead_letter_count(source_topic=str(Topic.LABELS)) == 1
    only = filled.dead_letters(limit=5, source_topic=str(Topic.PREDICTIONS))
    assert [row["raw"] for row in only] == [b"\xc3\x01\xff\x00junk"]


def test_reference_profile_latest_wins(filled: ClickHouseStore) -> None:
    assert filled.reference_profile("churn", "4") == '{"format_version": 1}'
    assert filled.reference_profile("churn", "3") is None
    newer = {
        "event_id": "e-3",
        "model_name": "churn",
        "model_version": "4",
        "event_type": "profile_rebuilt",
        "timestamp": NOW + 1,
        "reference_profile": json.dumps({"format_version": 1, "bins": 20}),
    }
    filled.write(Topic.MODEL_EVENTS, [newer])
    assert json.loads(filled.reference_profile("churn", "4") or "") == {
        "format_version": 1,
        "bins": 20,
    }


def test_raw_predictions_are_shaped_like_records(filled: ClickHouseStore) -> None:
    rows = filled.raw_predictions("churn", "3")
    assert [row["prediction_id"] for row in rows] == ["p-1", "p-2", "p-3"]
    assert rows[0] == {
        "prediction_id": "p-1",
        "model_name": "churn",
        "model_version": "3",
        "timestamp": NOW - 2000,
        "features": {"age": 42.0, "income": 10.5, "city": "Lyon", "member": "false", "gap": None},
        "prediction": "yes",
        "scores": {"yes": 0.7, "no": 0.3},
        "segment": {"region": "eu"},
    }
    assert rows[1]["prediction"] == 0.4 and rows[1]["scores"] == {}
    window = filled.raw_predictions("churn", "3", since_ms=NOW - 1500, until_ms=NOW, limit=5)
    assert [row["prediction_id"] for row in window] == ["p-3"]
    assert len(filled.raw_predictions("churn", "3", limit=2)) == 2


def test_hostile_input_is_a_value_not_sql(filled: ClickHouseStore, chdb_client: Any) -> None:
    for name in (HOSTILE, "x' OR '1'='1", "a\\'; SELECT 1; --", "{model:String}", '"`;'):
        assert filled.drift_series(name, name, feature=name, metric=name) == []
        assert filled.dataset_drift_series(name) == []
        assert filled.performance_series(name, metric=name) == []
        assert filled.detections(name, kind=name) == []
        assert filled.alerts(model=name, version=name) == []
        assert filled.alert(name) is None
        assert filled.dead_letters(source_topic=name) == []
        assert filled.dead_letter_count(name) == 0
        assert filled.reference_profile(name, name) is None
        assert filled.raw_predictions(name, name) == []
    assert filled.counts()["predictions"] == 4
    assert "predictions" in tables_of(chdb_client, filled.database)
    # ... and such a name is stored and found verbatim.
    record = {**sample_batches()[Topic.PREDICTIONS][0], "model_name": HOSTILE}
    filled.write(Topic.PREDICTIONS, [record])
    assert [row["model_name"] for row in filled.raw_predictions(HOSTILE, "3")] == [HOSTILE]
    assert HOSTILE in {m["model_name"] for m in filled.models()}


# --- opening and closing -----------------------------------------------------------------


def test_clickhouse_failures_become_store_errors(chdb_client: Any, ch_database: str) -> None:
    store = ClickHouseStore(chdb_client, database=ch_database)  # not migrated: no tables
    with pytest.raises(StoreError, match=f"counting rows in database '{ch_database}' failed"):
        store.counts()
    with pytest.raises(StoreError, match=r"writing 1 rows of driftline\.alerts to alerts"):
        store.write(Topic.ALERTS, [alert_record(0, "open")])


def test_close_leaves_a_borrowed_client_open(chdb_client: Any, ch_database: str) -> None:
    with ClickHouseStore(chdb_client, database=ch_database) as store:
        store.migrate()
    with pytest.raises(StoreError, match="closed"):
        store.counts()
    assert chdb_client.query("SELECT 1").result_rows == [(1,)]


def test_connect_to_the_session_engine(chdb_client: Any, ch_database: str) -> None:
    store = ClickHouseStore.connect(f"chdb://{chdb_client.path}", database=ch_database)
    try:
        assert store.current_version() == 1
        assert store.write(Topic.ALERTS, [alert_record(0, "open")]) == 1
    finally:
        store.close()
    store.close()  # idempotent
    # The store closed its own client only; the engine and the session's client live on.
    assert ClickHouseStore(chdb_client, database=ch_database).counts()["alerts"] == 1


def test_connect_to_another_path_in_process(chdb_client: Any, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="already runs the embedded engine on another path"):
        ClickHouseStore.connect(f"chdb://{tmp_path / 'other'}")
    assert chdb_client.query("SELECT 1").result_rows == [(1,)]


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("http://127.0.0.1:1", "cannot reach ClickHouse at http://127.0.0.1:1: connection refused"),
        (
            "https://ops:hunter2@127.0.0.1:1/monitoring",
            "cannot reach ClickHouse at https://ops:***@127.0.0.1:1/monitoring: connection refused",
        ),
        ("http://127.0.0.1:notaport", "malformed ClickHouse DSN 'http://127.0.0.1:notaport'"),
        ("http://", "malformed ClickHouse DSN 'http://': no host"),
        ("http://h:8123/a/b", "the path may name one database"),
        ("http://h:8123/my-db", "database 'my-db' is not a plain identifier"),
        ("ftp://host/x", "unsupported ClickHouse DSN 'ftp://host/x'"),
        ("localhost:8123", "unsupported ClickHouse DSN"),
        ("chdb://relative/path", "use chdb:///absolute/path"),
        ("chdb:///abs/path?x=1", "use chdb:///absolute/path"),
        ("http://[::1", "malformed ClickHouse DSN"),
    ],
)
def test_connect_bad_dsn(chdb_client: Any, dsn: str, message: str) -> None:
    # chdb_client first: a chdb:// DSN that passed the checks must not become the
    # process's engine path.
    with pytest.raises(StoreError) as err:
        ClickHouseStore.connect(dsn)
    assert message in str(err.value)
    assert "hunter2" not in str(err.value)


def test_mask_dsn() -> None:
    assert mask_dsn("http://u:p%40ss@h:8123") == "http://u:***@h:8123"
    assert mask_dsn("http://:p@h") == "http://:***@h"
    assert mask_dsn("http://u@h") == "http://u@h"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_connect_creates_the_data_dir_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "data" / "clickhouse"
    code = f"""
import json, sys
from streams.store import ClickHouseStore
from schemas.topics import Topic
with ClickHouseStore.connect({f"chdb://{path}"!r}, raw_ttl_days=3) as store:
    store.write(Topic.ALERT_ACKS, [{{"alert_id": "a", "action": "acknowledge",
                                     "actor": "ana", "timestamp": 1}}])
with ClickHouseStore.connect({f"chdb://{path}"!r}) as store:  # reopen: still there
    print(json.dumps([store.current_version(), store.counts()["alert_acks"]]))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [1, 1]
    assert path.is_dir()


def test_connect_to_a_path_another_process_holds(chdb_client: Any) -> None:
    code = f"""
from streams.store import ClickHouseStore, StoreError
try:
    ClickHouseStore.connect({f"chdb://{chdb_client.path}"!r})
except StoreError as exc:
    print("StoreError:", exc)
"""
    result = run_python(code)
    assert "StoreError: cannot open the embedded ClickHouse" in result.stdout, result.stderr
    assert "another process probably holds it" in result.stdout


def test_column_types_are_read_once_per_table_and_again_after_a_migration(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output tables are inserted with their column types known: the first insert into a
    table reads them (``create_insert_context`` asks ClickHouse), later ones do not; a
    migration forgets them. Every batch is stored either way."""
    client = store._client
    asked: list[str] = []
    real = client.create_insert_context

    def spy(table: str, *args: Any, **kwargs: Any) -> Any:
        call = inspect.signature(real).bind(table, *args, **kwargs).arguments
        if call.get("column_types") is None and call.get("column_type_names") is None:
            asked.append(table)  # (types unknown: clickhouse-connect asks the server)
        return real(table, *args, **kwargs)

    monkeypatch.setattr(client, "create_insert_context", spy)
    metrics = sample_batches()[Topic.DRIFT_METRICS]
    for i in range(3):
        batch = [{**m, "model_version": f"v{i}"} for m in metrics]  # (distinct rows)
        assert store.write(Topic.DRIFT_METRICS, batch) == len(metrics)
    assert asked == ["drift_metrics"]
    store.migrate()
    store.write(Topic.DRIFT_METRICS, [{**metrics[0], "model_version": "after-migrate"}])
    assert asked == ["drift_metrics", "drift_metrics"]
    assert store.counts()["drift_metrics"] == 3 * len(metrics) + 1
