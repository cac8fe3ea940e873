"""The optional native fast path of the event contract: the ``driftline_native`` extension.

``native/`` (Rust, PyO3, built with maturin; ``make venv`` installs it) encodes and
decodes the two high-volume schemas, ``prediction`` and ``label``, byte for byte as
fastavro does, and writes their raw-event rows in ClickHouse RowBinary. It handles only
the strict common shape of a record and answers ``None`` for anything else, so the
callers run the Python path for it: results and error messages are the same with or
without the extension. :class:`schemas.codec.AvroCodec` uses it when it is installed;
without it everything runs in Python.

Examples
--------
>>> rowbinary("alerts", []) is None  # only the raw-event tables have a native writer
True
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, Final

from schemas.rows import COLUMNS

__all__ = [
    "NATIVE",
    "ROWBINARY_TABLES",
    "TABLE_TYPES",
    "driftline_native",
    "feature_columns",
    "native_block",
    "normalized",
    "rowbinary",
]


def _load() -> ModuleType | None:
    try:
        return importlib.import_module("driftline_native")
    except ImportError:
        return None


driftline_native: Final = _load()
"""The extension module, or None when it is not installed."""

NATIVE: Final = driftline_native is not None
"""True when the native fast path is available."""

ROWBINARY_TABLES: Final = ("predictions", "labels")
"""Tables :func:`rowbinary` writes."""

TABLE_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "predictions": (
        "String",
        "LowCardinality(String)",
        "LowCardinality(String)",
        "DateTime64(3, 'UTC')",
        "Map(String, Float64)",
        "Map(String, String)",
        "Array(String)",
        "Nullable(Float64)",
        "Nullable(String)",
        "Map(String, Float64)",
        "Map(String, String)",
    ),
    "labels": (
        "String",
        "LowCardinality(String)",
        "LowCardinality(Nullable(String))",
        "Nullable(Float64)",
        "Nullable(String)",
        "DateTime64(3, 'UTC')",
    ),
}
"""The ClickHouse types of the columns (``schemas.rows.COLUMNS``) of the raw-event
tables, as ``schemas/clickhouse/*.sql`` declares them (a test compares them with the
engine's ``DESCRIBE TABLE``)."""


def rowbinary(table: str, records: Iterable[Mapping[str, Any]]) -> bytes | None:
    """ClickHouse RowBinary rows of ``table`` for a batch of decoded records, or None.

    The rows are those of ``schemas.rows.to_rows(table, records)``, columns in the order
    of ``schemas.rows.COLUMNS[table]``, ready for
    ``client.raw_insert(f"{database}.{table}", COLUMNS[table], insert_block=data,
    fmt="RowBinary")``.

    Parameters
    ----------
    table
        ``"predictions"`` or ``"labels"``; other tables always get None.
    records
        Records shaped as ``AvroCodec.decode`` returns them (exact ``dict``/``str``/``int``
        /``float``/``bool`` values, finite numbers, longs within int64, timestamps that
        ``rows.ms_to_datetime`` accepts).

    Returns
    -------
    bytes or None
        The RowBinary block; None when the extension is missing, the table has no native
        writer, or any record is outside the strict shape. Then build the rows with
        ``schemas.rows.topic_rows`` and ``client.insert`` (which also raises the errors).
    """
    module = driftline_native
    if module is None:
        return None
    if table == "predictions":
        write = module.rowbinary_predictions
    elif table == "labels":
        write = module.rowbinary_labels
    else:
        return None
    batch = records if type(records) is list else list(records)
    data: bytes | None = write(batch)
    return data


def native_block(table: str, rows: bytes) -> bytes | None:
    """The RowBinary ``rows`` of a raw-event table (:func:`rowbinary`'s, or those decoded
    with the columns) as one ClickHouse ``Native`` block of the same rows, for
    ``raw_insert(..., fmt="Native")``; None without the extension, for another table, or
    for rows that do not parse (insert the RowBinary then).

    ClickHouse parses a Native block column by column, several times faster than
    RowBinary's value by value (~0.6 against ~2.4 µs per 20-feature prediction in chDB).
    The extension converts without holding the GIL. ``LowCardinality`` columns are sent
    as their inner type, which ClickHouse casts to the table's ``LowCardinality`` on
    insert, whatever ``input_format_native_allow_types_conversion`` says (tested with it
    off).
    """
    module = driftline_native
    types = TABLE_TYPES.get(table)
    if module is None or types is None or not rows:
        return None
    block: bytes | None = module.rowbinary_to_native(list(COLUMNS[table]), list(types), rows)
    return block


def normalized(schema_name: str, records: list[Any]) -> list[dict[str, Any] | None] | None:
    """Each record as ``AvroCodec.decode(AvroCodec.encode(record))`` would return it, built
    without the round trip (every field in schema order, absent optional fields as None,
    ints of ``double`` fields as floats, maps copied), or None per record outside the
    shape the extension handles; None for the whole batch without the extension or for
    another schema than ``prediction`` and ``label``.

    Only meaningful for records that encode: it checks the record's shape, not its values.
    """
    module = driftline_native
    if module is None or type(records) is not list:
        return None
    if schema_name == "prediction":
        out: list[dict[str, Any] | None] = module.normalize_predictions(records)
    elif schema_name == "label":
        out = module.normalize_labels(records)
    else:
        return None
    return out


def feature_columns(feats: list[Any], names: list[str]) -> Any:
    """Numeric feature columns of a batch as one ``(len(names), len(feats))`` float64 array
    (row ``j`` = feature ``names[j]`` of every event), or None.

    The values are those of ``np.array([[f[n] for n in names] for f in feats],
    dtype=np.float64).T``: floats as they are, ints and bools as numbers, None as NaN.
    None without the extension, or when any features dict misses a name or holds a value
    of another type (a string, a big int, a subclass): convert in Python then.
    """
    module = driftline_native
    if module is None or type(feats) is not list or type(names) is not list:
        return None
    data = module.feature_columns(feats, names)
    if data is None:
        return None
    import numpy as np

    # (a writable copy: callers may treat it like any array they built)
    return np.frombuffer(data, dtype=np.float64).reshape(len(names), len(feats)).copy()
