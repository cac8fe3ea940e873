"""``AvroCodec.decode_prediction_columns`` against the record decoder: on any batch, the
columns are None or hold exactly what ``decode_all``'s records hold (their RowBinary rows
byte for byte what ``rowbinary`` writes for the records), and a batch of the common shape
always decodes into columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from avro_records import records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import AvroCodec
from schemas.native import NATIVE, rowbinary

pytestmark = pytest.mark.skipif(not NATIVE, reason="the columns come from the native extension")

CODEC = AvroCodec()
text = st.text(max_size=8)
finite = st.floats(allow_nan=False, allow_infinity=False)
timestamps = st.integers(-(2**40), 2**42)


@st.composite
def common_batches(draw: Any) -> list[dict[str, Any]]:
    """Predictions of the common shape: one model version, the same finite numeric
    features in the same order, no segment."""
    names = draw(st.lists(text, max_size=6, unique=True))
    model, version = draw(text), draw(text)
    n = draw(st.integers(1, 6))
    out = []
    for _ in range(n):
        out.append(
            {
                "prediction_id": draw(text),
                "model_name": model,
                "model_version": version,
                "timestamp": draw(timestamps),
                "features": {name: draw(finite) for name in names},
                "prediction": draw(st.one_of(finite, text)),
                "scores": draw(st.one_of(st.none(), st.dictionaries(text, finite, max_size=3))),
                "segment": None,
            }
        )
    return out


def check(batch: list[dict[str, Any]]) -> bool:
    """The property; whether the batch decoded into columns."""
    payloads = [CODEC.encode("prediction", record) for record in batch]
    decoded = CODEC.decode_all("prediction", payloads)
    columns = CODEC.decode_prediction_columns(payloads)
    if columns is None:
        return False
    assert decoded is not None
    assert columns.records() == decoded
    assert columns.ids == [r["prediction_id"] for r in decoded]
    assert {columns.model_name} == {r["model_name"] for r in decoded}
    assert {columns.model_version} == {r["model_version"] for r in decoded}
    assert columns.timestamps.tolist() == [r["timestamp"] for r in decoded]
    assert columns.predictions == [r["prediction"] for r in decoded]
    assert all(list(r["features"]) == columns.feature_names for r in decoded)
    expected = np.array(
        [[r["features"][name] for r in decoded] for name in columns.feature_names],
        dtype=np.float64,
    ).reshape(len(columns.feature_names), len(decoded))
    assert np.array_equal(columns.features, expected)
    assert columns.rows == rowbinary("predictions", decoded)
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(common_batches())
def test_a_batch_of_the_common_shape_decodes_into_its_records_columns(batch) -> None:
    assert check(batch)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records("prediction"), min_size=1, max_size=4))
def test_any_batch_decodes_into_its_records_columns_or_none(batch) -> None:
    check(batch)
