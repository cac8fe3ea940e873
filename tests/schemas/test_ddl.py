"""Tests of schemas/ddl.py, schemas/clickhouse/*.sql and schemas/rows.py, on the real
ClickHouse engine (chDB through clickhouse-connect)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from avro_records import FIXTURE_DIR, load_record

from schemas.codec import AvroCodec, dead_letter_record
from schemas.ddl import RAW_TABLES, SQL_DIR, TABLES, table_ddl
from schemas.rows import COLUMNS, SOURCE_SCHEMAS, ms_to_datetime, to_row, to_rows

CODEC = AvroCodec()
NOW = (time.time_ns() // 1_000_000 // 1000) * 1000  # recent, so the raw-event TTL keeps it
HOUR = 3_600_000


def sample_records(now: int = NOW) -> dict[str, list[dict[str, Any]]]:
    """Two or three distinct records per table, timestamps around ``now``."""
    prediction = {
        "prediction_id": "p-1",
        "model_name": "churn",
        "model_version": "3",
        "timestamp": now,
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
    alert = {
        "alert_id": "a-1",
        "model_name": "churn",
        "model_version": "3",
        "kind": "data_drift",
        "feature": "age",
        "state": "open",
        "severity": "warning",
        "opened_at": now - HOUR,
        "updated_at": now - HOUR,
        "revision": 0,
        "value": 0.3,
        "occurrences": 1,
        "message": "PSI 0.3 > 0.2",
    }
    event = {
        "event_id": "e-1",
        "model_name": "churn",
        "model_version": "4",
        "event_type": "registered",
        "timestamp": now,
        "reference_profile": '{"format_version": 1}',
    }
    return {
        "predictions": [
            prediction,
            {**prediction, "prediction_id": "p-2", "prediction": 0.4, "scores": None},
            {**prediction, "prediction_id": "p-3", "timestamp": now + 1, "segment": None},
        ],
        "labels": [
            {"prediction_id": "p-1", "model_name": "churn", "label": "yes", "timestamp": now},
            {
                "prediction_id": "p-2",
                "model_name": "churn",
                "label": 1.0,
                "timestamp": now,
                "model_version": "3",
            },
        ],
        "drift_metrics": [
            metric,
            {**metric, "metric_id": "m-2", "metric": "ks", "pvalue": 0.01, "primary": False},
            {**metric, "metric_id": "m-3", "segment": "eu"},
        ],
        "performance_metrics": [
            {
                "metric_id": f"pm-{m}",
                "model_name": "churn",
                "model_version": "3",
                "window_start": now - HOUR,
                "window_end": now,
                "metric": m,
                "value": 0.9,
                "n_labels": 10,
            }
            for m in ("accuracy", "f1")
        ],
        "drift_detections": [
            {
                "detection_id": f"d-{i}",
                "model_name": "churn",
                "model_version": "3",
                "kind": "data_drift",
                "detector": "psi",
                "feature": "age",
                "detected_at": now + i,
                "value": 0.3,
                "threshold": 0.2,
                "severity": "warning",
                "details": {"n": str(i)},
            }
            for i in range(2)
        ],
        "alerts": [alert, {**alert, "alert_id": "a-2", "feature": None}],
        "alert_acks": [
            {"alert_id": "a-1", "action": "acknowledge", "actor": "alice", "timestamp": now},
            {
                "alert_id": "a-1",
                "action": "resolve",
                "actor": "alice",
                "timestamp": now + 1,
                "note": "fixed",
            },
        ],
        "model_versions": [
            event,
            {
                **event,
                "event_id": "e-2",
                "event_type": "promoted",
                "timestamp": now + 1,
                "reference_profile": None,
            },
        ],
        "reference_profiles": [event, {**event, "event_id": "e-3", "model_version": "5"}],
        "dead_letters": [
            dead_letter_record("driftline.predictions", b"\x00\xff", ValueError("x"), 0, 1, now),
            dead_letter_record("/v1/labels", b"{}", KeyError("label"), received_at=now),
        ],
    }


def create_tables(client: Any, database: str, raw_ttl_days: int = 30) -> None:
    for statement in table_ddl(database, raw_ttl_days=raw_ttl_days):
        client.command(statement)


def insert(client: Any, database: str, table: str, rows: list[tuple[Any, ...]]) -> None:
    client.insert(f"{database}.{table}", rows, column_names=list(COLUMNS[table]))


def count(client: Any, database: str, table: str, final: bool = True) -> int:
    return int(client.command(f"SELECT count() FROM {database}.{table}{' FINAL' if final else ''}"))


# --- statements ------------------------------------------------------------------------


def test_one_sql_file_per_table() -> None:
    assert sorted(p.stem for p in SQL_DIR.glob("*.sql")) == sorted(TABLES)
    assert set(COLUMNS) == set(SOURCE_SCHEMAS) == set(TABLES)
    assert set(SOURCE_SCHEMAS.values()) <= set(CODEC.schema_names)


def test_table_ddl_statements() -> None:
    statements = table_ddl("dl_test", raw_ttl_days=7)
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS dl_test"
    assert len(statements) == 1 + len(TABLES)
    for table, statement in zip(TABLES, statements[1:], strict=True):
        assert statement.startswith(f"CREATE TABLE IF NOT EXISTS dl_test.{table}\n(")
        assert "ENGINE = ReplacingMergeTree" in statement
        assert "${" not in statement and "--" not in statement
        assert ("INTERVAL 7 DAY" in statement) == (table in RAW_TABLES)
    assert "ReplacingMergeTree(revision)" in statements[1 + TABLES.index("alerts")]
    assert table_ddl() == table_ddl("driftline", 30)
    assert "INTERVAL 30 DAY" in table_ddl()[1]


@pytest.mark.parametrize(
    ("database", "days", "message"),
    [
        ("drift line", 30, "database name 'drift line' is not a plain identifier"),
        ("x; DROP TABLE y", 30, "database name 'x; DROP TABLE y' is not a plain identifier"),
        ("", 30, "database name '' is not a plain identifier"),
        ("ok", 0, "raw_ttl_days must be a positive int, got 0"),
        ("ok", True, "raw_ttl_days must be a positive int, got True"),
        ("ok", 1.5, "raw_ttl_days must be a positive int, got 1.5"),
    ],
)
def test_table_ddl_refuses_bad_arguments(database: str, days: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        table_ddl(database, raw_ttl_days=days)


# --- on the engine -----------------------------------------------------------------------


def test_ddl_runs_and_is_idempotent(chdb_client: Any, ch_database: str) -> None:
    create_tables(chdb_client, ch_database)
    create_tables(chdb_client, ch_database)  # IF NOT EXISTS: a restart re-runs it
    rows = chdb_client.query(
        "SELECT name, engine FROM system.tables WHERE database = {db:String} ORDER BY name",
        parameters={"db": ch_database},
    ).result_rows
    assert rows == sorted((table, "ReplacingMergeTree") for table in TABLES)


@pytest.mark.parametrize("table", TABLES)
def test_columns_match_the_row_converter(chdb_client: Any, ch_database: str, table: str) -> None:
    create_tables(chdb_client, ch_database)
    described = chdb_client.query(f"DESCRIBE TABLE {ch_database}.{table}").result_rows
    # Columns the server fills itself (DEFAULT, e.g. dead_letters.stored_at) are not written.
    assert tuple(row[0] for row in described if row[2] != "DEFAULT") == COLUMNS[table]
    types = {row[0]: row[1] for row in described}
    for column in COLUMNS[table]:
        if column in (
            "timestamp",
            "window_start",
            "window_end",
            "detected_at",
            "opened_at",
            "updated_at",
            "created_at",
            "received_at",
        ):
            assert types[column] == "DateTime64(3, 'UTC')", column


def test_ttl_on_raw_tables_only(chdb_client: Any, ch_database: str) -> None:
    create_tables(chdb_client, ch_database, raw_ttl_days=12)
    for table in TABLES:
        ddl = chdb_client.command(f"SHOW CREATE TABLE {ch_database}.{table}")
        has_ttl = "TTL toDateTime(" in ddl and "toIntervalDay(12)" in ddl
        assert has_ttl == (table in RAW_TABLES), (table, ddl)


@pytest.mark.parametrize("table", TABLES)
def test_reinsert_creates_no_duplicates(chdb_client: Any, ch_database: str, table: str) -> None:
    create_tables(chdb_client, ch_database)
    records = sample_records()[table]
    rows = to_rows(table, records)
    insert(chdb_client, ch_database, table, rows)
    # Replays arrive in other batches: one by one and reversed, so the engine's
    # identical-block deduplication cannot be what saves us; the sorting key must.
    for row in reversed(rows):
        insert(chdb_client, ch_database, table, [row])
    assert count(chdb_client, ch_database, table) == len(records)
    chdb_client.command(f"OPTIMIZE TABLE {ch_database}.{table} FINAL")
    assert count(chdb_client, ch_database, table, final=False) == len(records)


def test_alerts_keep_the_highest_revision(chdb_client: Any, ch_database: str) -> None:
    create_tables(chdb_client, ch_database)
    base = sample_records()["alerts"][0]
    revisions = [
        {**base, "revision": 2, "state": "resolved", "resolved_by": "auto", "updated_at": NOW + 2},
        {**base, "revision": 0},
        {
            **base,
            "revision": 1,
            "state": "acknowledged",
            "acknowledged_by": "alice",
            "updated_at": NOW + 1,
        },
    ]
    for record in revisions:  # out of order, one insert each
        insert(chdb_client, ch_database, "alerts", [to_row("alerts", record)])
    rows = chdb_client.query(
        f"SELECT alert_id, revision, state, acknowledged_by, resolved_by "
        f"FROM {ch_database}.alerts FINAL"
    ).result_rows
    assert rows == [("a-1", 2, "resolved", None, "auto")]


def test_prediction_survives_codec_and_store(chdb_client: Any, ch_database: str) -> None:
    create_tables(chdb_client, ch_database)
    record = sample_records()["predictions"][0]
    decoded = CODEC.decode_as("prediction", CODEC.encode("prediction", record))
    insert(chdb_client, ch_database, "predictions", [to_row("predictions", decoded)])
    result = chdb_client.query(f"SELECT * FROM {ch_database}.predictions")
    row = dict(zip(result.column_names, result.result_rows[0], strict=True))
    stored_ts = row.pop("timestamp")
    if stored_ts.tzinfo is None:
        stored_ts = stored_ts.replace(tzinfo=UTC)
    assert stored_ts == ms_to_datetime(record["timestamp"])
    assert row == {
        "prediction_id": "p-1",
        "model_name": "churn",
        "model_version": "3",
        "features_num": {"age": 42.0, "income": 10.5},
        "features_cat": {"city": "Lyon", "member": "false"},
        "features_missing": ["gap"],
        "prediction_num": None,
        "prediction_cat": "yes",
        "scores": {"yes": 0.7, "no": 0.3},
        "segment": {"region": "eu"},
    }
    # Features are queryable in SQL.
    assert (
        chdb_client.command(f"SELECT features_num['age'] + 1 FROM {ch_database}.predictions")
        == 43.0
    )


def test_fixture_records_convert_for_every_table() -> None:
    # The committed v1 records convert with the current converters.
    for table, schema_name in SOURCE_SCHEMAS.items():
        record = load_record((FIXTURE_DIR / f"{schema_name}.v1.json").read_text("utf-8"))
        decoded = CODEC.decode_as(schema_name, CODEC.encode(schema_name, record))
        assert len(to_row(table, decoded)) == len(COLUMNS[table])


# --- row converters ---------------------------------------------------------------------


def test_ms_to_datetime_is_exact_utc() -> None:
    assert ms_to_datetime(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert ms_to_datetime(1_700_000_000_123) == datetime(
        2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC
    )
    assert ms_to_datetime(-1).microsecond == 999000
    with pytest.raises(ValueError, match="out of range"):
        ms_to_datetime(2**62)


def test_feature_split() -> None:
    record = sample_records()["predictions"][0]
    record = {
        **record,
        "features": {"a": 1, "b": 2.5, "c": "x", "d": True, "e": None, "f": float("nan")},
    }
    row = dict(zip(COLUMNS["predictions"], to_row("predictions", record), strict=True))
    assert row["features_num"] == {"a": 1.0, "b": 2.5}
    assert row["features_cat"] == {"c": "x", "d": "true"}
    assert row["features_missing"] == ["e", "f"]
    assert row["prediction_num"] is None and row["prediction_cat"] == "yes"


def test_absent_optionals_become_empty_or_null() -> None:
    label = {"prediction_id": "p", "model_name": "m", "label": 2, "timestamp": 0}
    assert to_row("labels", label)[2:5] == (None, 2.0, None)
    metric = {k: v for k, v in sample_records()["drift_metrics"][0].items() if k != "primary"}
    row = dict(zip(COLUMNS["drift_metrics"], to_row("drift_metrics", metric), strict=True))
    assert (row["segment"], row["primary"], row["missing_rate"], row["late_events"]) == (
        "",
        False,
        0.0,
        0,
    )


@pytest.mark.parametrize(
    ("table", "record", "message"),
    [
        ("nope", {}, "unknown table 'nope'"),
        (
            "reference_profiles",
            sample_records()["model_versions"][1],
            "carries no reference_profile",
        ),
        ("alerts", {**sample_records()["alerts"][0], "revision": -1}, "revision must be >= 0"),
    ],
)
def test_to_row_refuses(table: str, record: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_row(table, record)
