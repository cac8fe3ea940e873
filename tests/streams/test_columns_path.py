"""Predictions decoded into columns (``schemas.columns.PredictionColumns``, the API's path
for an SDK's Avro batch) go through dedup, the processors and the store of the embedded
runtime and leave exactly the rows that the same events submitted as records leave: the
drift windows, the label join, dead letters of duplicates and the raw predictions, on the
real ClickHouse engine (chDB)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.profile import ReferenceProfile
from driftline.settings import load_settings
from schemas.codec import AvroCodec
from schemas.columns import PredictionColumns, PredictionRows, join_groups, merge_runs
from schemas.native import NATIVE, rowbinary
from schemas.topics import Topic
from streams.embedded import EmbeddedRuntime
from streams.store import ClickHouseStore
from tests.streams.test_embedded import make_runtime, snapshot_tables
from tests.support.stream_data import HOUR, T0

pytestmark = pytest.mark.skipif(not NATIVE, reason="the columns come from the native extension")

CODEC = AvroCodec()


def profile(seed: int, numeric_prediction: bool) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {
        "x0": rng.normal(size=4000),
        "x1": rng.normal(size=4000),
        "x2": rng.lognormal(size=4000),
        # monitored but never sent: a missing value in every event, on both paths
        "gone": rng.normal(size=4000),
        "kind": rng.choice(["a", "b"], 4000).astype(object),
    }
    pred = cols["x0"] > 0
    prediction = pred.astype(np.float64) if numeric_prediction else np.where(pred, "yes", "no")
    return ReferenceProfile.from_columns(cols, categorical=["kind"], prediction=prediction)


def model_events() -> list[dict]:
    return [
        {
            "event_id": f"reg-{version}",
            "model_name": "num",
            "model_version": version,
            "event_type": "registered",
            "timestamp": T0,
            "reference_profile": profile(int(version), version == "2").to_json(),
        }
        for version in ("1", "2")
    ]


def events(n: int, seed: int = 3) -> list[dict]:
    """Predictions over five hourly windows, drifting from the third, of two model versions
    in runs of 40 (version 2 predicts numbers and sends scores)."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.sort(rng.integers(0, 5 * HOUR, n))
    out = []
    for i in range(n):
        version = "2" if (i // 40) % 3 == 2 else "1"
        x = rng.normal(size=3)
        if ts[i] >= T0 + 2 * HOUR:
            x[0] += 1.0
        yes = bool(x[0] > 0)
        out.append(
            {
                "prediction_id": f"p{i}",
                "model_name": "num",
                "model_version": version,
                "timestamp": int(ts[i]),
                "features": {"x0": float(x[0]), "x1": float(x[1]), "x2": float(np.exp(x[2]))},
                "prediction": float(yes) if version == "2" else ("yes" if yes else "no"),
                "scores": {"yes": 0.8, "no": 0.2} if version == "2" else None,
                "segment": None,
            }
        )
    return out


def operations() -> list[tuple[Topic, list[dict]]]:
    preds = events(1200)
    # a repeat of an earlier id, and a repeat within one batch: dead letters either way
    preds[700] = dict(preds[700], prediction_id=preds[10]["prediction_id"])
    preds[701] = dict(preds[702])
    labels = [
        {
            "prediction_id": p["prediction_id"],
            "model_name": "num",
            "label": p["prediction"] if i % 5 else ("no" if p["model_version"] == "1" else 0.0),
            "timestamp": p["timestamp"] + 600_000,
        }
        for i, p in enumerate(preds[::2])
    ]
    ops: list[tuple[Topic, list[dict]]] = []
    for i in range(0, len(preds), 40):
        batch = preds[i : i + 40]
        ops.append((Topic.PREDICTIONS, batch))
        now = batch[-1]["timestamp"]
        known = [lb for lb in labels if lb["timestamp"] <= now]
        labels = labels[len(known) :]
        if i in (400, 840):  # labels of the next batch's predictions: they wait in the join
            ahead = {p["prediction_id"] for p in preds[i + 40 : i + 80]}
            known += [lb for lb in labels if lb["prediction_id"] in ahead]
            labels = [lb for lb in labels if lb["prediction_id"] not in ahead]
        if known:
            ops.append((Topic.LABELS, known))
    ops.append((Topic.LABELS, labels))
    return ops


def submit(rt: EmbeddedRuntime, ops: list[tuple[Topic, list[dict]]], *, encoded: bool) -> None:
    """Predictions decoded into columns and handed over (``submit_encoded``, the API's
    path), or submitted as records (which a runtime with ``columns`` decodes into columns
    itself); labels as records."""
    for topic, batch in ops:
        if encoded and topic == Topic.PREDICTIONS:
            payloads = [CODEC.encode("prediction", record) for record in batch]
            decoded = CODEC.decode_prediction_columns(payloads)
            assert isinstance(decoded, PredictionColumns)
            result = rt.submit_encoded(topic, payloads, decoded)
            assert result.accepted == list(range(len(batch)))
        else:
            rt.submit(topic, batch)


def run(
    tmp: Path,
    client,
    database: str,
    ops: list[tuple[Topic, list[dict]]],
    *,
    columns: bool,
    started: bool,
    encoded: bool = False,
) -> tuple[dict[str, list[str]], dict[str, int]]:
    store = ClickHouseStore(client, database=database)
    store.migrate()
    settings = load_settings(data_dir=tmp, window_seconds=3600, allowed_lateness_seconds=0)
    rt = EmbeddedRuntime(settings, store=store, columns=columns)
    if started:
        rt.start()
    rt.submit(Topic.MODEL_EVENTS, model_events())
    submit(rt, ops, encoded=encoded)
    rt.drain()
    rt.flush()
    stats = dict(rt.counters)
    rt.stop()
    return snapshot_tables(client, database), stats


@pytest.mark.parametrize("started", [False, True], ids=["in-thread", "started"])
def test_columns_leave_the_rows_records_leave(tmp_path, chdb_client, ch_database, started) -> None:
    ops = operations()
    try:
        expected, expected_stats = run(
            tmp_path / "records",
            chdb_client,
            ch_database + "_rec",
            ops,
            columns=False,
            started=started,
        )
    finally:
        chdb_client.command(f"DROP DATABASE IF EXISTS {ch_database}_rec SYNC")
    for encoded in (True, False):  # the API's path, then submit's
        try:
            got, stats = run(
                tmp_path / f"columns-{encoded}",
                chdb_client,
                ch_database,
                ops,
                columns=True,
                started=started,
                encoded=encoded,
            )
        finally:
            chdb_client.command(f"DROP DATABASE IF EXISTS {ch_database} SYNC")
        assert got == expected
        assert stats == expected_stats
    # the comparison covers what it should: both versions' windows, the join, duplicates
    assert len(expected["predictions"]) == 1198
    duplicates = [row for row in expected["dead_letters"] if "already received" in row]
    assert sum("'driftline.predictions'" in row for row in duplicates) == 2
    assert expected["performance_metrics"]
    versions = {row.split(", ")[2] for row in expected["drift_metrics"]}
    assert versions == {"'1'", "'2'"}, versions


def test_columns_processed_then_replayed_from_the_log_leave_the_same_rows(
    tmp_path, chdb_client, ch_database
) -> None:
    """Killed without a checkpoint after half the batches went through as columns, the
    runtime replays them from the log (decoded as records) and takes the rest as columns:
    the same rows as an uninterrupted run of records."""
    ops = operations()
    try:
        expected, _ = run(
            tmp_path / "records",
            chdb_client,
            ch_database + "_rec",
            ops,
            columns=False,
            started=False,
        )
    finally:
        chdb_client.command(f"DROP DATABASE IF EXISTS {ch_database}_rec SYNC")
    store = ClickHouseStore(chdb_client, database=ch_database)
    store.migrate()
    a = make_runtime(tmp_path / "run", store)
    a.submit(Topic.MODEL_EVENTS, model_events())
    half = len(ops) // 2
    submit(a, ops[:half], encoded=True)
    a.drain()
    a.log.close()  # "killed": no checkpoint, so b processes everything from the log
    b = make_runtime(tmp_path / "run", store)
    assert b.position == 0 < b.log.end
    submit(b, ops[half:], encoded=True)
    b.drain()
    b.flush()
    b.stop()
    assert snapshot_tables(chdb_client, ch_database) == expected


def test_decoded_columns_match_the_records() -> None:
    batch = events(200)[:40]
    payloads = [CODEC.encode("prediction", record) for record in batch]
    cols = CODEC.decode_prediction_columns(payloads)
    records = CODEC.decode_all("prediction", payloads)
    assert cols is not None and records is not None
    assert cols.ids == [r["prediction_id"] for r in records]
    assert (cols.model_name, cols.model_version) == ("num", "1")
    assert cols.timestamps.dtype == np.int64
    assert cols.timestamps.tolist() == [r["timestamp"] for r in records]
    assert cols.feature_names == ["x0", "x1", "x2"]
    assert np.array_equal(
        cols.features, np.array([[r["features"][n] for n in cols.feature_names] for r in records]).T
    )
    assert cols.predictions == [r["prediction"] for r in records]
    assert cols.rows == rowbinary("predictions", records)
    assert cols.records() == records and len(cols) == 40
    scored = [CODEC.encode("prediction", r) for r in events(200)[80:120]]  # version 2, scores
    cols2 = CODEC.decode_prediction_columns(scored)
    assert cols2 is not None
    assert cols2.rows == rowbinary("predictions", CODEC.decode_all("prediction", scored))
    records2 = CODEC.decode_all("prediction", scored)
    # to store: the rows are joined (the columns are not copied), of any model versions
    both = join_groups([cols, cols2])
    assert isinstance(both, PredictionRows) and len(both) == 80
    assert both.rows == cols.rows + cols2.rows and both.records() == records + records2
    same = join_groups([cols, cols])
    assert isinstance(same, PredictionRows) and same.records() == records + records
    assert same.rows == cols.rows * 2 and same.parts == [cols, cols]
    assert join_groups([both, cols]).rows == both.rows + cols.rows  # type: ignore[union-attr]
    assert join_groups([cols, records2]) == records + records2  # records among them
    # to process: consecutive groups as few as they make, in order
    runs = merge_runs([cols, cols, cols2, records, records2, cols])
    assert [type(r).__name__ for r in runs] == [
        "PredictionColumns",
        "PredictionColumns",
        "list",
        "PredictionColumns",
    ]
    assert [len(r) for r in runs] == [80, 40, 80, 40]
    assert runs[2] == records + records2


def _with(record: dict, **changes) -> dict:
    out = dict(record)
    out.update(changes)
    return out


@pytest.mark.parametrize(
    "change",
    [
        lambda r, i: _with(r, model_version="9") if i == 3 else r,
        lambda r, i: _with(r, model_name="other") if i == 3 else r,
        lambda r, i: _with(r, features={**r["features"], "x1": None}) if i == 3 else r,
        lambda r, i: _with(r, features={**r["features"], "x1": 2}) if i == 3 else r,
        lambda r, i: _with(r, features={**r["features"], "x1": "text"}) if i == 3 else r,
        lambda r, i: _with(r, features={"x1": 1.0, "x0": 2.0, "x2": 3.0}) if i == 3 else r,
        lambda r, i: _with(r, features={**r["features"], "x3": 1.0}) if i == 3 else r,
        lambda r, i: _with(r, features={"x0": 1.0, "x1": 1.0}) if i == 3 else r,
        lambda r, i: _with(r, segment={"region": "eu"}) if i == 3 else r,
        lambda r, i: _with(r, features={}) if i == 3 else r,
    ],
    ids=[
        "another version",
        "another model",
        "a null feature",
        "an int feature",
        "a text feature",
        "features in another order",
        "an extra feature",
        "a feature missing",
        "a segment",
        "no features in one event",
    ],
)
def test_a_batch_of_another_shape_is_not_decoded_into_columns(change) -> None:
    """Anything but the common shape goes the record way (which handles every case)."""
    batch = [change(r, i) for i, r in enumerate(events(40))]
    payloads = [CODEC.encode("prediction", record) for record in batch]
    assert CODEC.decode_all("prediction", payloads) is not None  # valid events all the same
    assert CODEC.decode_prediction_columns(payloads) is None


def test_bad_payloads_are_not_decoded_into_columns() -> None:
    payloads = [CODEC.encode("prediction", r) for r in events(40)]
    label = CODEC.encode(
        "label", {"prediction_id": "a", "model_name": "m", "label": "x", "timestamp": T0}
    )
    for bad in (
        [*payloads[:5], payloads[5][:-1], *payloads[6:]],  # truncated
        [*payloads[:5], payloads[5] + b"\x00", *payloads[6:]],  # trailing byte
        [*payloads[:5], label],  # another schema
        [*payloads[:5], bytearray(payloads[5])],  # not bytes
        [],
    ):
        assert CODEC.decode_prediction_columns(bad) is None
