"""Quantile binning of numeric features, fitted once on the reference.

Inner edges are the reference quantiles at ``i / bins`` for ``i = 1 .. bins-1``
(numpy's default ``"linear"`` quantile method). Tied quantiles collapse into one
edge (``np.unique``), so a feature that is 90 % zeros gets fewer, not empty,
bins. The outer bins are open: with inner edges ``e``, bin ``k`` holds
``e[k-1] < x <= e[k]``, bin 0 is ``(-inf, e[0]]`` and the last bin is
``(e[-1], inf)``. A current value outside the reference range therefore lands
in an outer bin instead of being dropped; it is also counted as out of range.

Because the edges depend on the reference only, a window's bin counts are
O(bins) state that can be updated event by event and merged across workers,
which the combined-range binning of Evidently (see :mod:`detectors.evidently`)
cannot be.

Examples
--------
>>> import numpy as np
>>> from detectors.binning import quantile_edges, bin_counts
>>> edges = quantile_edges(np.arange(1.0, 101.0), bins=4)
>>> edges.tolist()
[25.75, 50.5, 75.25]
>>> bin_counts(np.array([-5.0, 25.75, 26.0, 1e9]), edges).tolist()
[2, 1, 0, 1]

"""

from __future__ import annotations

import numpy as np

__all__ = ["bin_counts", "quantile_edges"]


def quantile_edges(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference quantiles ``i / bins``.

    Parameters
    ----------
    values
        Finite reference values (missing values already removed).
    bins
        Number of quantile bins wanted; ties may give fewer. Must be >= 1.

    Returns
    -------
    numpy.ndarray
        Strictly increasing ``float64`` inner edges, at most ``bins - 1`` of
        them; empty when ``values`` is empty or ``bins == 1``.

    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or bins == 1:
        return np.empty(0, dtype=np.float64)
    qs = np.quantile(x, np.arange(1, bins, dtype=np.float64) / bins)
    return np.unique(qs)


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Count finite values per bin of the given inner edges.

    Parameters
    ----------
    values
        Finite values.
    edges
        Inner edges as returned by :func:`quantile_edges`.

    Returns
    -------
    numpy.ndarray
        ``int64`` counts of length ``len(edges) + 1``.

    """
    idx = np.searchsorted(edges, values, side="left")
    return np.bincount(idx, minlength=edges.size + 1).astype(np.int64, copy=False)
