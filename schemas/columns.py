"""A batch of prediction events held as columns, not as a dict per event.

The Avro batches an SDK sends are nearly always of one shape: one model version, the same
numeric features in the same order in every event, no segment. The native extension
decodes such a batch in one pass straight into what the embedded runtime reads from it
(ids, timestamps, a row of values per feature, predictions) and into the RowBinary rows
of the raw ``predictions`` table, without building ~25 Python objects per event
(:meth:`schemas.codec.AvroCodec.decode_prediction_columns`).

The processors and the store take a :class:`PredictionColumns` where they take a list of
prediction records, and give the same results; any of them that needs the records (a
label waiting for one of the predictions, a segmented processor, a duplicate id) calls
:meth:`PredictionColumns.records`, which decodes the payloads as
:meth:`~schemas.codec.AvroCodec.decode_all` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Group",
    "PredictionColumns",
    "PredictionRows",
    "join_groups",
    "merge_runs",
    "records_of",
]


class PredictionColumns:
    """Predictions of one model version, decoded into columns.

    Attributes
    ----------
    ids
        ``prediction_id`` of each event, in order.
    model_name, model_version
        The model version of every event.
    timestamps
        ``timestamp`` of each event (int64 epoch ms).
    feature_names
        The features of every event (each a finite number), in the order written.
    features
        ``(len(feature_names), len(self))`` float64: row ``j`` holds feature
        ``feature_names[j]`` of every event.
    predictions
        ``prediction`` of each event (``float`` or ``str``).
    rows
        The events as RowBinary rows of the raw ``predictions`` table
        (``schemas.rows.COLUMNS["predictions"]``): what ``schemas.native.rowbinary`` writes
        for :meth:`records`.
    payloads
        The single-object encoded events the columns were decoded from.
    """

    __slots__ = (
        "_decode",
        "_records",
        "feature_names",
        "features",
        "ids",
        "model_name",
        "model_version",
        "payloads",
        "predictions",
        "rows",
        "timestamps",
    )

    def __init__(
        self,
        *,
        ids: list[str],
        model_name: str,
        model_version: str,
        timestamps: np.ndarray,
        feature_names: list[str],
        features: np.ndarray,
        predictions: list[Any],
        rows: bytes,
        payloads: list[bytes],
        decode: Callable[[list[bytes]], list[dict[str, Any]] | None],
    ) -> None:
        n = len(ids)
        if not (
            len(timestamps) == len(predictions) == len(payloads) == n
            and features.shape == (len(feature_names), n)
        ):
            raise ValueError("the columns of a PredictionColumns differ in length")
        self.ids = ids
        self.model_name = model_name
        self.model_version = model_version
        self.timestamps = timestamps
        self.feature_names = feature_names
        self.features = features
        self.predictions = predictions
        self.rows = rows
        self.payloads = payloads
        self._decode = decode
        self._records: list[dict[str, Any]] | None = None

    @classmethod
    def from_native(
        cls,
        decoded: tuple[Any, ...],
        payloads: list[bytes],
        decode: Callable[[list[bytes]], list[dict[str, Any]] | None],
    ) -> PredictionColumns:
        """From ``driftline_native.decode_prediction_columns``'s tuple."""
        ids, model, version, ts, names, values, predictions, rows = decoded
        n = len(ids)
        return cls(
            ids=ids,
            model_name=model,
            model_version=version,
            timestamps=np.frombuffer(ts, dtype="<i8").astype(np.int64),
            feature_names=names,
            features=np.frombuffer(values, dtype="<f8").astype(np.float64).reshape(len(names), n),
            predictions=predictions,
            rows=rows,
            payloads=payloads,
            decode=decode,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (
            f"PredictionColumns({len(self)} predictions of {self.model_name!r} version "
            f"{self.model_version!r}, {len(self.feature_names)} features)"
        )

    def records(self) -> list[dict[str, Any]]:
        """The events as records (``AvroCodec.decode_all`` of the payloads), decoded once."""
        if self._records is None:
            records = self._decode(self.payloads)
            if records is None:  # the columns came from these very payloads
                raise RuntimeError("payloads decoded into columns do not decode into records")
            self._records = records
        return self._records

    @classmethod
    def concat(cls, batches: Sequence[PredictionColumns]) -> PredictionColumns | None:
        """The batches one after the other, when they are of one model version with the
        same features; else None (then take their :meth:`records`)."""
        if not batches:
            return None
        first = batches[0]
        if len(batches) == 1:
            return first
        for b in batches[1:]:
            if (
                b.model_name != first.model_name
                or b.model_version != first.model_version
                or b.feature_names != first.feature_names
            ):
                return None
        return cls(
            ids=[i for b in batches for i in b.ids],
            model_name=first.model_name,
            model_version=first.model_version,
            timestamps=np.concatenate([b.timestamps for b in batches]),
            feature_names=first.feature_names,
            features=np.concatenate([b.features for b in batches], axis=1),
            predictions=[p for b in batches for p in b.predictions],
            rows=b"".join(b.rows for b in batches),
            payloads=[p for b in batches for p in b.payloads],
            decode=first._decode,
        )


class PredictionRows:
    """The raw-table rows of several batches of columns (of any model versions), for one
    insert: what a step, or the store writer, joins (``join_groups``)."""

    __slots__ = ("parts", "rows")

    def __init__(self, parts: list[PredictionColumns]) -> None:
        self.parts = parts
        self.rows = b"".join(part.rows for part in parts)

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def __repr__(self) -> str:
        return f"PredictionRows({len(self)} predictions in {len(self.parts)} batches)"

    def records(self) -> list[dict[str, Any]]:
        """Every part's records, in order."""
        return [rec for part in self.parts for rec in part.records()]


Group = list[dict[str, Any]] | PredictionColumns
"""Consecutive records of one topic: a list, or predictions decoded into columns."""


def records_of(group: Sequence[Any] | PredictionColumns | PredictionRows) -> Sequence[Any]:
    """``group`` as records (columns decoded, a list as it is)."""
    if isinstance(group, PredictionColumns | PredictionRows):
        return group.records()
    return group


def merge_runs(groups: Sequence[Group]) -> list[Group]:
    """Consecutive groups of one topic's records as few groups as they make, in order, to
    be processed one after the other: record lists joined, batches of columns of one model
    version and features concatenated (:meth:`PredictionColumns.concat`), the others kept
    apart (processing them one after the other is processing them together: the
    processors give the same results however a stream is batched)."""
    out: list[Group] = []
    for group in groups:
        last = out[-1] if out else None
        if isinstance(group, PredictionColumns):
            if isinstance(last, PredictionColumns):
                joined = PredictionColumns.concat([last, group])
                if joined is not None:
                    out[-1] = joined
                    continue
            out.append(group)
        elif isinstance(last, list):
            out[-1] = last + group
        else:
            out.append(list(group))
    return out


def join_groups(
    groups: Sequence[Group | PredictionRows],
) -> list[dict[str, Any]] | PredictionColumns | PredictionRows:
    """Consecutive groups of one topic's records as one, to be stored in one insert:
    batches of columns have their rows joined (:class:`PredictionRows`: what the store
    inserts; their columns are not copied); with any list of records among them, every
    group's records."""
    if len(groups) == 1:
        return groups[0]
    if all(type(g) is PredictionColumns or type(g) is PredictionRows for g in groups):
        parts: list[PredictionColumns] = []
        for g in groups:
            parts.extend(g.parts if isinstance(g, PredictionRows) else [g])  # type: ignore[list-item]
        return PredictionRows(parts)
    return [rec for g in groups for rec in records_of(g)]
