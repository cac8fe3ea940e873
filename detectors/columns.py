"""Columns at the edge of ``detectors``: kinds, missing values, tables.

Everything in ``detectors`` works on a *table*: a ``dict`` of column name to
1-D numpy array, all of the same length. This module owns the few rules that
turn raw arrays into what the statistics consume:

* **kind** — a column is ``"numeric"`` when its dtype is a numeric one other
  than ``bool`` (or it is an object array whose present values are all ``int``
  or ``float``); bool, string and other object arrays are ``"categorical"``.
  An explicit ``categorical=`` set overrides the inference. Datetimes,
  complex numbers, bytes-as-void, multi-dimensional arrays and unhashable
  values raise :class:`UnsupportedColumnError`.
* **missing** — ``None``, NaN and ±inf are missing. They are excluded from
  every statistic and only ever reported as a rate.
* **categories** are compared as text (:func:`category_key`): ``"a"`` is
  ``"a"``, ``True`` is ``"True"``, and ``3`` and ``3.0`` are both ``"3"`` — an
  integer code column that pandas turned into floats because of a missing
  value still matches the integers a service publishes. Values that Python
  considers equal (``1``, ``1.0`` and ``True``) count as one category, named
  after the first one seen; don't mix booleans and numbers in one column.

A pandas ``DataFrame`` is accepted wherever a table is, converted by
:func:`as_columns` without importing pandas (duck typing on ``.columns`` and
``.to_numpy``).

Examples
--------
>>> import numpy as np
>>> from detectors.columns import as_columns, infer_kind, numeric_values
>>> table = as_columns({"age": [31, 45, None], "city": ["Oslo", None, "Rome"]})
>>> infer_kind("age", table["age"]), infer_kind("city", table["city"])
('numeric', 'categorical')
>>> values, n_missing = numeric_values("age", np.array([1.0, np.nan, np.inf, 2.0]))
>>> values.tolist(), n_missing
([1.0, 2.0], 2)

"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any, Literal

import numpy as np

Kind = Literal["numeric", "categorical"]

# Name under which the model output is monitored next to the features. It is the
# same literal as ``schemas.topics.PREDICTION_FEATURE``; ``detectors`` may not
# import ``schemas`` (see docs/core-api.md), so it is spelled out here.
PREDICTION_FEATURE = "__prediction__"

__all__ = [
    "PREDICTION_FEATURE",
    "Kind",
    "UnsupportedColumnError",
    "as_columns",
    "as_float",
    "category_counts",
    "category_key",
    "infer_kind",
    "is_missing",
    "numeric_values",
]


class UnsupportedColumnError(ValueError):
    """A column cannot be profiled or compared.

    Parameters
    ----------
    column
        Name of the offending column.
    reason
        What is wrong with it and, where possible, what to do about it.

    """

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"column {column!r}: {reason}")
        self.column = column
        self.reason = reason


def as_columns(data: Any) -> dict[str, np.ndarray]:
    """Turn a table into a ``dict`` of 1-D numpy arrays.

    Parameters
    ----------
    data
        A mapping of column name to array-like, or a pandas ``DataFrame``
        (anything with ``.columns`` and per-column ``.to_numpy``). Pandas
        missing markers (``pd.NA``, ``NaT``) become ``None`` / NaN; nullable
        integer and float columns become ``float64`` with NaN.

    Returns
    -------
    dict[str, numpy.ndarray]
        Object arrays for non-numeric data (with ``None`` for missing),
        numeric arrays otherwise.

    Raises
    ------
    ValueError
        When the columns do not all have the same length.

    """
    out: dict[str, np.ndarray] = {}
    if isinstance(data, Mapping):
        for name, values in data.items():
            out[str(name)] = _as_array(str(name), values)
    elif hasattr(data, "columns") and hasattr(data, "__getitem__"):
        for name in data.columns:
            out[str(name)] = _series_to_numpy(data[name])
    else:
        raise TypeError(
            f"expected a dict of arrays or a pandas DataFrame, got {type(data).__name__}"
        )
    lengths = {len(values) for values in out.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    return out


def _as_array(name: str, values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy") and hasattr(values, "dtype"):
        return _series_to_numpy(values)
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise UnsupportedColumnError(name, f"expected a 1-D array, got shape {arr.shape}")
    return arr


def _series_to_numpy(series: Any) -> np.ndarray:
    dtype = series.dtype
    kind = getattr(dtype, "kind", "O")
    if isinstance(dtype, np.dtype):
        if kind == "O":
            # object columns may hold np.nan or pd.NA for missing: normalise to None
            return np.asarray(series.to_numpy(dtype=object, na_value=None))
        return np.asarray(series.to_numpy())
    # pandas extension dtypes: nullable Int64/Float64, boolean, string, category
    if kind in "iuf":
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.asarray(series.to_numpy(dtype=object, na_value=None))


def infer_kind(name: str, values: np.ndarray, categorical: Collection[str] | None = None) -> Kind:
    """Decide whether a column is numeric or categorical.

    Parameters
    ----------
    name
        Column name, used for the ``categorical`` override and in errors.
    values
        The column.
    categorical
        Names that are categorical whatever their dtype (e.g. integer codes).

    Raises
    ------
    UnsupportedColumnError
        For datetime, timedelta, complex, void and multi-dimensional arrays.

    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise UnsupportedColumnError(name, f"expected a 1-D array, got shape {arr.shape}")
    if categorical is not None and name in categorical:
        return "categorical"
    kind = arr.dtype.kind
    if kind in "iuf":
        return "numeric"
    if kind in "bUS":
        return "categorical"
    if kind == "O":
        present = [v for v in _uniques(name, arr) if not is_missing(v)]
        if present and all(
            isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            for v in present
        ):
            return "numeric"
        return "categorical"
    if kind in "mM":
        reason = "datetime/timedelta columns are not supported; convert them to numbers (e.g. epoch seconds or an age) first"
    elif kind == "c":
        reason = "complex numbers are not supported"
    else:
        reason = f"dtype {arr.dtype} is not supported"
    raise UnsupportedColumnError(name, reason)


def _uniques(name: str, arr: np.ndarray) -> list[Any]:
    try:
        return list(Counter(arr.tolist()))
    except TypeError as exc:  # unhashable values: lists, dicts, arrays
        raise UnsupportedColumnError(name, f"values must be scalars ({exc})") from None


def is_missing(value: Any) -> bool:
    """Whether one scalar is a missing value: None, NaN or ±inf."""
    return value is None or (isinstance(value, float | np.floating) and not math.isfinite(value))


def as_float(name: str, values: np.ndarray) -> np.ndarray:
    """A numeric column as ``float64`` (``None`` becomes NaN), without copying if it already is.

    Raises
    ------
    UnsupportedColumnError
        When the values cannot be read as numbers (e.g. strings, datetimes).

    """
    arr = np.asarray(values)
    if arr.dtype.kind in "mMc":
        raise UnsupportedColumnError(name, f"dtype {arr.dtype} is not supported as numeric")
    try:
        x = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UnsupportedColumnError(name, f"expected numbers, {exc}") from None
    if x.ndim != 1:
        raise UnsupportedColumnError(name, f"expected a 1-D array, got shape {x.shape}")
    return x


def numeric_values(name: str, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Split a numeric column into its finite values and a count of missing ones.

    Parameters
    ----------
    name
        Column name, for errors.
    values
        Any array convertible to ``float64``; ``None`` in object arrays is NaN.

    Returns
    -------
    values : numpy.ndarray
        The finite values, ``float64``, in their original order.
    n_missing : int
        How many entries were ``None``, NaN or ±inf.

    Raises
    ------
    UnsupportedColumnError
        When the values cannot be read as numbers (e.g. strings).

    """
    x = as_float(name, values)
    finite = np.isfinite(x)
    n_missing = int(x.size - np.count_nonzero(finite))
    return (x if n_missing == 0 else x[finite]), n_missing


def category_key(value: Any) -> str:
    """The text a categorical value is compared as.

    Examples
    --------
    >>> from detectors.columns import category_key
    >>> category_key("pro"), category_key(3), category_key(3.0), category_key(2.5), category_key(True)
    ('pro', '3', '3', '2.5', 'True')

    """
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.bool_):
        return str(bool(value))
    return str(value)


def category_counts(name: str, values: np.ndarray) -> tuple[dict[str, int], int]:
    """Count the categories of a column.

    Counting goes through a C-level hash table (``collections.Counter``) over
    the values, then a Python step per *distinct* value only.

    Parameters
    ----------
    name
        Column name, for errors.
    values
        Any 1-D array; values are compared as :func:`category_key`.

    Returns
    -------
    counts : dict[str, int]
        Number of occurrences per category, in first-seen order.
    n_missing : int
        How many entries were ``None``, NaN or ±inf.

    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise UnsupportedColumnError(name, f"expected a 1-D array, got shape {arr.shape}")
    try:
        raw = Counter(arr.tolist())
    except TypeError as exc:
        raise UnsupportedColumnError(name, f"values must be scalars ({exc})") from None
    counts: dict[str, int] = {}
    n_missing = 0
    for value, n in raw.items():
        if is_missing(value):
            n_missing += n
        else:
            key = category_key(value)
            counts[key] = counts.get(key, 0) + n
    return counts, n_missing
