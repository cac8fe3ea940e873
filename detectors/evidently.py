"""Evidently 0.7 compatible binning, for users migrating from Evidently.

Evidently's drift statistics (``evidently.legacy.calculations.stattests``,
0.7.x) bin the data differently from our reference-quantile bins. With
``DriftConfig(binning="evidently")`` :func:`detectors.drift.compare_columns`
reproduces Evidently's PSI on the same data (to 1e-9) through the functions
here. What Evidently does, as read in its source (``stattests/utils.py``
``get_binned_data``, ``stattests/psi.py`` and ``calculations/data_drift.py``):

1. NaN and ±inf are dropped from each side separately before any statistic
   (Evidently raises on a side left empty; :mod:`detectors.drift` reports the
   column as ``all_missing`` instead).
2. A *numerical* column with more than 20 distinct reference values is cut
   into equal-width bins with Sturges' rule over reference **and** current
   combined (``numpy.histogram_bin_edges(..., bins="sturges")``); the
   ``n_bins`` argument is ignored. Everything else — categorical columns and
   numerical ones with at most 20 distinct reference values — gets one bin
   per distinct value seen on either side.
3. Proportions are counts divided by each side's number of values.
4. For PSI only, empty bins are filled on each side separately with 0.0001,
   or, when that side's smallest non-zero proportion is itself at most 0.0001,
   with that proportion divided by 10**6.
5. ``PSI = sum((ref - cur) * ln(ref / cur))``; Evidently's default PSI
   threshold is 0.1.

Evidently decides the column type from the pandas dtype: floats are
numerical; integers are numerical unless they have at most 5 distinct values
(then categorical); bool, object and string columns are categorical. For the
binning above only "numerical with more than 20 distinct values" matters, and
integer columns with at most 5 distinct values fall in the per-value branch
either way, so our kind inference (:mod:`detectors.columns`) gives the same
bins — except for object arrays holding only numbers, which we call numeric
and Evidently categorical (pass ``kind="categorical"`` to match it).

The other statistics, compared with Evidently's stattests of the same name:

* ``ks`` — identical (both ``scipy.stats.ks_2samp``); Evidently reports the
  p-value and flags drift at p <= 0.05, we also require ``D >= 0.1``.
* ``wasserstein`` — identical (normed by ``max(std_ref, 0.001)``, ``ddof=0``)
  when the full reference is used, as ``compare_columns`` does.
* ``jensenshannon`` — same binning as PSI without the zero filling, but
  Evidently uses the natural log: its distance is ``sqrt(ln 2) ~ 0.833`` times
  our base-2 distance (:func:`evidently_jensenshannon` gives theirs).
* ``chisquare`` — different test: Evidently's is a goodness-of-fit test of
  the current counts against reference proportions taken as exact
  (``scipy.stats.chisquare``); ours is the test of homogeneity of the 2 x K
  table (``chi2_contingency``), which accounts for the reference's own noise.

Examples
--------
>>> import numpy as np
>>> from detectors.evidently import evidently_binned, evidently_psi
>>> ref = np.array(["a", "a", "b", "b"], dtype=object)
>>> cur = np.array(["a", "b", "b", "c"], dtype=object)
>>> r, c = evidently_binned(ref, cur, fill_zeros=False)
>>> r.tolist(), c.tolist()
([0.5, 0.5, 0.0], [0.25, 0.5, 0.25])
>>> round(evidently_psi(ref, cur), 4)
2.1285

"""

from __future__ import annotations

import math

import numpy as np

from detectors.columns import Kind, category_counts, infer_kind, numeric_values
from detectors.stats import jensenshannon, psi, wasserstein

__all__ = [
    "MAX_DISTINCT_FOR_VALUE_BINS",
    "evidently_binned",
    "evidently_jensenshannon",
    "evidently_psi",
    "evidently_wasserstein",
    "fill_empty_bins",
]

MAX_DISTINCT_FOR_VALUE_BINS = 20
_EMPTY_BIN = 1e-4


def _numeric_binned(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.unique(ref).size > MAX_DISTINCT_FOR_VALUE_BINS:
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        ref_counts = np.histogram(ref, edges)[0]
        cur_counts = np.histogram(cur, edges)[0]
    else:
        values = np.unique(np.concatenate([ref, cur]))
        ref_counts = np.bincount(np.searchsorted(values, ref), minlength=values.size)
        cur_counts = np.bincount(np.searchsorted(values, cur), minlength=values.size)
    return ref_counts / ref.size, cur_counts / cur.size


def evidently_binned(
    reference: np.ndarray,
    current: np.ndarray,
    kind: Kind | None = None,
    fill_zeros: bool = True,
    column: str = "column",
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current proportions binned the way Evidently 0.7 bins them.

    Parameters
    ----------
    reference, current
        Raw columns; missing values (None, NaN, ±inf) are dropped per side.
    kind
        ``"numeric"`` or ``"categorical"``; inferred from the reference when None.
    fill_zeros
        Fill empty bins as Evidently does for PSI (see the module docstring).
    column
        Name used in error messages.

    Raises
    ------
    ValueError
        When a side has no non-missing value.

    """
    kind = kind or infer_kind(column, reference)
    if kind == "numeric":
        ref, _ = numeric_values(column, reference)
        cur, _ = numeric_values(column, current)
        _require_values(column, ref.size, cur.size)
        r, c = _numeric_binned(ref, cur)
    else:
        ref_counts, _ = category_counts(column, reference)
        cur_counts, _ = category_counts(column, current)
        n_ref, n_cur = sum(ref_counts.values()), sum(cur_counts.values())
        _require_values(column, n_ref, n_cur)
        keys = list(ref_counts) + [k for k in cur_counts if k not in ref_counts]
        r = np.array([ref_counts.get(k, 0) for k in keys], dtype=np.float64) / n_ref
        c = np.array([cur_counts.get(k, 0) for k in keys], dtype=np.float64) / n_cur
    if fill_zeros:
        r, c = fill_empty_bins(r), fill_empty_bins(c)
    return r, c


def _require_values(column: str, n_ref: int, n_cur: int) -> None:
    for side, n in (("reference", n_ref), ("current", n_cur)):
        if n == 0:
            raise ValueError(f"column {column!r} has no non-missing value in the {side} data")


def fill_empty_bins(props: np.ndarray) -> np.ndarray:
    """Evidently's filling of empty bins before PSI, for one side.

    Zeros become 0.0001, unless the smallest non-zero proportion is at most
    0.0001, in which case they become that proportion / 10**6.

    Examples
    --------
    >>> from detectors.evidently import fill_empty_bins
    >>> fill_empty_bins(np.array([0.5, 0.5, 0.0])).tolist()
    [0.5, 0.5, 0.0001]
    >>> fill_empty_bins(np.array([0.99995, 0.00005, 0.0])).tolist()
    [0.99995, 5e-05, 5e-11]

    """
    out = np.array(props, dtype=np.float64)
    empty = out == 0
    if empty.any() and not empty.all():
        smallest = float(out[~empty].min())
        out[empty] = smallest / 1e6 if smallest <= _EMPTY_BIN else _EMPTY_BIN
    return out


def evidently_psi(
    reference: np.ndarray, current: np.ndarray, kind: Kind | None = None, column: str = "column"
) -> float:
    """PSI exactly as Evidently 0.7's ``psi`` stattest computes it (see module docstring)."""
    r, c = evidently_binned(reference, current, kind, fill_zeros=True, column=column)
    return psi(r, c, eps=0.0)


def evidently_jensenshannon(
    reference: np.ndarray,
    current: np.ndarray,
    kind: Kind | None = None,
    base: float = math.e,
    column: str = "column",
) -> float:
    """Jensen-Shannon distance on Evidently's bins; ``base=math.e`` is Evidently's value."""
    r, c = evidently_binned(reference, current, kind, fill_zeros=False, column=column)
    return jensenshannon(r, c, base=base)


def evidently_wasserstein(
    reference: np.ndarray, current: np.ndarray, column: str = "column"
) -> float:
    """Evidently's normed Wasserstein distance: W1 / max(std(reference), 0.001)."""
    ref, _ = numeric_values(column, reference)
    cur, _ = numeric_values(column, current)
    _require_values(column, ref.size, cur.size)
    return wasserstein(ref, cur, ref_std=float(np.std(ref)))
