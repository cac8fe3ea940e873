"""Reading reference/current data sets from CSV or Parquet into numpy columns.

This is the edge where pandas is allowed: the statistics in ``detectors`` only see
``dict[str, numpy.ndarray]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from driftline.errors import UsageError

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl")


def read_table(path: str | Path, *, role: str) -> dict[str, np.ndarray]:
    """Read a CSV, Parquet or JSON-lines file into numpy columns.

    Numeric columns become ``float64`` (missing as NaN); booleans, strings and
    mixed columns become ``object`` arrays (missing as ``None``).

    Parameters
    ----------
    path
        File to read; the suffix picks the format.
    role
        ``"reference"`` or ``"current"``; used in error messages.

    Raises
    ------
    UsageError
        The file is missing, empty, unreadable, or holds a column of an unsupported type.
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise UsageError(f"{role} file '{p}' does not exist")
    if p.is_dir():
        raise UsageError(f"{role} path '{p}' is a directory, not a file")
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UsageError(
            f"{role} file '{p}': unsupported format '{suffix or '(none)'}'; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if p.stat().st_size == 0:
        raise UsageError(f"{role} file '{p}' is empty")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(p)
        elif suffix == ".jsonl":
            frame = pd.read_json(p, lines=True)
        else:
            frame = pd.read_parquet(p)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{role} file '{p}' could not be read: {first_line}") from None
    except Exception as exc:  # pyarrow raises its own error classes for corrupt files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{role} file '{p}' could not be read: {first_line}") from None
    if frame.shape[1] == 0:
        raise UsageError(f"{role} file '{p}' has no columns")
    if frame.shape[0] == 0:
        raise UsageError(f"{role} file '{p}' has no rows")
    return {str(name): _column(frame[name], str(name), p, role) for name in frame.columns}


def _column(series, name: str, path: Path, role: str) -> np.ndarray:
    import pandas as pd
    from pandas.api import types as ptypes

    if ptypes.is_bool_dtype(series.dtype):
        return series.astype(object).to_numpy()
    if ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_complex_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if ptypes.is_datetime64_any_dtype(series.dtype) or ptypes.is_timedelta64_dtype(series.dtype):
        raise UsageError(
            f"{role} file '{path}': column '{name}' has unsupported type {series.dtype} "
            "(drift is computed on numeric and categorical columns; drop it or cast it)"
        )
    if ptypes.is_object_dtype(series.dtype) or isinstance(
        series.dtype, pd.CategoricalDtype | pd.StringDtype
    ):
        values = series.astype(object).to_numpy()
        kinds = {type(v) for v in values if v is not None and not _is_nan(v)}
        if kinds - {str, bool, int, float, np.bool_}:
            bad = sorted(k.__name__ for k in kinds - {str, bool, int, float, np.bool_})
            raise UsageError(
                f"{role} file '{path}': column '{name}' holds unsupported values of type "
                f"{', '.join(bad)}"
            )
        return np.array([None if _is_nan(v) else v for v in values], dtype=object)
    raise UsageError(f"{role} file '{path}': column '{name}' has unsupported type {series.dtype}")


def _is_nan(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)
