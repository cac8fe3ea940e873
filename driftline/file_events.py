"""Rows of a CSV, Parquet or JSON-lines file as prediction or label events.

``driftline publish FILE`` sends these to Kafka. The file is read with pandas (the
edge where it is allowed); each row becomes one record shaped like
``schemas/avro/prediction.avsc`` or ``label.avsc``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from driftline.errors import UsageError

EventKind = Literal["predictions", "labels"]

_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl")


def read_frame(path: Path) -> Any:
    """The file as a pandas DataFrame (``UsageError`` when missing, empty or unreadable)."""
    import pandas as pd

    if not path.exists():
        raise UsageError(f"file '{path}' does not exist")
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise UsageError(
            f"file '{path}': unsupported format '{suffix or '(none)'}'; use one of {', '.join(_SUFFIXES)}"
        )
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix == ".jsonl":
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_parquet(path)
    except Exception as exc:  # pandas and pyarrow raise many error classes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"file '{path}' could not be read: {first}") from None
    if frame.shape[0] == 0:
        raise UsageError(f"file '{path}' has no rows")
    return frame


def _timestamps(frame: Any, column: str | None, path: Path) -> list[int]:
    import pandas as pd
    from pandas.api import types as ptypes

    now = int(time.time() * 1000)
    if column is None:
        return [now] * len(frame)
    if column not in frame.columns:
        raise UsageError(f"file '{path}' has no column '{column}'")
    series = frame[column]
    if ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_bool_dtype(series.dtype):
        if series.isna().any():
            raise UsageError(f"column '{column}' has missing timestamps")
        return [int(v) for v in series]  # epoch milliseconds
    try:
        parsed = pd.to_datetime(series, utc=True)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"column '{column}': timestamps must be epoch ms or ISO 8601 ({exc})"
        ) from None
    if parsed.isna().any():
        raise UsageError(f"column '{column}' has missing timestamps")
    return [int(v.value // 1_000_000) for v in parsed]


def _plain(value: Any) -> Any:
    """numpy scalars and NaN as plain values (NaN -> None: a missing value)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def events_from_file(
    path: Path,
    kind: EventKind,
    model_name: str,
    model_version: str | None = None,
    *,
    id_column: str = "prediction_id",
    timestamp_column: str | None = "timestamp",
    prediction_column: str = "prediction",
    label_column: str = "label",
    exclude: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One event per row.

    Parameters
    ----------
    path
        CSV, Parquet or JSON-lines file.
    kind
        ``"predictions"``: every column but the id, timestamp, prediction and excluded
        ones is a feature; ``"labels"``: the id and label columns are used.
    model_name, model_version
        The model the events belong to (``model_version`` is required for predictions).
    id_column
        ``prediction_id``; without that column predictions get random ids (their labels
        then cannot be joined), and labels are refused.
    timestamp_column
        Epoch milliseconds or ISO 8601 strings; absent (or None): the current time.
    prediction_column, label_column
        The model output, and the ground truth.
    exclude
        Columns that are not features.

    Raises
    ------
    UsageError
        A required column is missing or a value does not fit.
    """
    frame = read_frame(path)
    columns = [str(c) for c in frame.columns]
    ts_column = timestamp_column if timestamp_column in columns else None
    stamps = _timestamps(frame, ts_column, path)
    has_ids = id_column in columns
    if kind == "labels":
        for needed in (id_column, label_column):
            if needed not in columns:
                raise UsageError(f"file '{path}' has no column '{needed}' (needed for labels)")
        events = []
        for row, ts in zip(
            frame[[id_column, label_column]].itertuples(index=False), stamps, strict=True
        ):
            label = _plain(row[1])
            if label is None:
                raise UsageError(f"a row of '{path}' has no label (prediction {row[0]!r})")
            event: dict[str, Any] = {
                "prediction_id": str(_plain(row[0])),
                "model_name": model_name,
                "label": label if isinstance(label, str) else float(label),
                "timestamp": ts,
            }
            if model_version is not None:
                event["model_version"] = model_version
            events.append(event)
        return events
    if model_version is None:
        raise UsageError("predictions need a model version (--version)")
    if prediction_column not in columns:
        raise UsageError(f"file '{path}' has no column '{prediction_column}' (the model output)")
    skip = {id_column, prediction_column, *exclude}
    if ts_column is not None:
        skip.add(ts_column)
    features = [c for c in columns if c not in skip]
    events = []
    for i, record in enumerate(frame.to_dict("records")):
        pred = _plain(record[prediction_column])
        if pred is None:
            raise UsageError(f"row {i} of '{path}' has no prediction")
        events.append(
            {
                "prediction_id": str(_plain(record[id_column])) if has_ids else uuid.uuid4().hex,
                "model_name": model_name,
                "model_version": model_version,
                "timestamp": stamps[i],
                "features": {name: _plain(record[name]) for name in features},
                "prediction": pred if isinstance(pred, str) else float(pred),
            }
        )
    return events
