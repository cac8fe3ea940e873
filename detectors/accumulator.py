"""Window accumulators: the O(bins + reservoir) state of one window of traffic.

A :class:`WindowAccumulator` summarises the events of one window against a
:class:`~detectors.profile.ReferenceProfile`, batch by batch, so the window
never has to be kept in memory:

* per numeric feature: counts per reference quantile bin, missing count,
  out-of-range count (value below the reference min or above its max), and a
  bounded sample of the values for KS and Wasserstein;
* per categorical feature: counts per reference category plus the "unseen"
  slot (which is also its out-of-range count), and the missing count;
* the model output under ``"__prediction__"`` when the profile has one.

The sample is a *bottom-k* sample: each event carries a stable 64-bit key (a
hash of its id), and the reservoir keeps the ``reservoir_size`` values with the
smallest keys (ties broken by the smaller value). Because the keys are hashes,
that is a uniform sample without replacement, and it is a pure function of the
set of events: accumulators of disjoint events fed to different workers, in any
order and batching, merge (:meth:`WindowAccumulator.merge`) into exactly the
accumulator of their union — the property a replay after a crash relies on.

Examples
--------
>>> import numpy as np
>>> from detectors.profile import ReferenceProfile
>>> from detectors.accumulator import WindowAccumulator
>>> rng = np.random.default_rng(1)
>>> profile = ReferenceProfile.from_columns(
...     {"x": rng.normal(size=1_000), "c": rng.choice(["a", "b"], 1_000)}, bins=4
... )
>>> acc = WindowAccumulator(profile, reservoir_size=3)
>>> acc.update(
...     {"x": np.array([-9.0, 0.0, np.nan, 9.0]), "c": np.array(["a", "z", None, "a"], object)},
...     keys=np.array([40, 10, 30, 20], dtype=np.uint64),
... )
>>> acc.n_events, acc.counts("x").tolist(), acc.missing("x"), acc.out_of_range("x")
(4, [1, 0, 1, 1], 1, 2)
>>> acc.counts("c").tolist(), acc.out_of_range("c")
([2, 0, 1], 1)
>>> acc.sample("x").tolist()  # the values of the 3 smallest keys (10, 20, 40), sorted
[-9.0, 0.0, 9.0]

"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from detectors.binning import bin_counts
from detectors.columns import (
    PREDICTION_FEATURE,
    UnsupportedColumnError,
    as_float,
    category_key,
    is_missing,
)
from detectors.profile import CategoricalProfile, NumericProfile, ReferenceProfile

__all__ = ["PREDICTION_FEATURE", "WindowAccumulator"]

STATE_VERSION = 1
# Distinct raw values remembered per categorical column (high-cardinality junk must not grow it forever).
_MEMO_LIMIT = 65_536


def _bottom_k_mask(keys: np.ndarray, values: np.ndarray | None, k: int) -> np.ndarray | None:
    """Which of ``keys`` (more than ``k``) are the ``k`` that come first in (key, value)
    order, as a mask; None when ``values`` is None and keys tie at the k-th place (the
    values would decide)."""
    kth = np.partition(keys, k - 1)[k - 1]
    chosen = keys < kth
    tied = np.flatnonzero(keys == kth)
    need = k - int(np.count_nonzero(chosen))
    if tied.size > need:
        if values is None:
            return None
        tied = tied[np.argsort(values[tied], kind="stable")[:need]]
    chosen[tied] = True
    return chosen


def _slots(old_size: int, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the entrants go when a reservoir of ``old_size`` entries takes the bottom-k
    ``chosen`` of (its entries, then the offered ones): the slots of the entries that
    leave, in order, then the slots after the old ones; and which offered entries enter,
    in order. The entries that stay keep their slots, so an update writes only what
    changes — O(entrants), not O(reservoir) — and the layout is a function of the
    reservoir's history (the set is the bottom-k whatever the batching; its order is
    never seen: samples are sorted, snapshots ordered by key)."""
    leaving = np.flatnonzero(~chosen[:old_size])
    entering = np.flatnonzero(chosen[old_size:])
    grown = entering.size - leaving.size
    if grown:
        leaving = np.concatenate([leaving, np.arange(old_size, old_size + grown)])
    return leaving, entering


def _offered(
    keys: np.ndarray, values: np.ndarray, new_keys: np.ndarray, new_values: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The bottom-k reservoir (at most ``k`` pairs first in (key, value) order) of a
    reservoir and offered pairs, laid out as :func:`_slots` says; new arrays."""
    m, total = keys.size, keys.size + new_keys.size
    if total <= k:
        return np.concatenate([keys, new_keys]), np.concatenate([values, new_values])
    chosen = _bottom_k_mask(
        np.concatenate([keys, new_keys]), np.concatenate([values, new_values]), k
    )
    assert chosen is not None  # (with values, ties are broken)
    slots, entering = _slots(m, chosen)
    out_keys = np.empty(k, dtype=keys.dtype)
    out_values = np.empty(k, dtype=values.dtype)
    out_keys[:m], out_values[:m] = keys, values
    out_keys[slots], out_values[slots] = new_keys[entering], new_values[entering]
    return out_keys, out_values


def _by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((values, keys))
    return keys[order], values[order]


class _NumericState:
    __slots__ = (
        "counts",
        "edges",
        "hi",
        "lo",
        "missing",
        "out_of_range",
        "res_keys",
        "res_max",
        "res_vals",
    )

    def __init__(self, profile: NumericProfile) -> None:
        self.edges = profile.edges
        self.lo = profile.min
        self.hi = profile.max
        self.counts = np.zeros(profile.edges.size + 1, dtype=np.int64)
        self.missing = 0
        self.out_of_range = 0
        self.res_keys = np.empty(0, dtype=np.uint64)
        self.res_vals = np.empty(0, dtype=np.float64)
        self.res_max = 0

    def add(self, x: np.ndarray, keys: np.ndarray, size: int) -> None:
        """Add a batch already converted by :func:`as_float`."""
        finite = np.isfinite(x)
        n_missing = x.size - int(np.count_nonzero(finite))
        if n_missing:
            x, keys = x[finite], keys[finite]
        self.missing += n_missing
        self.counts += bin_counts(x, self.edges)
        # NaN bounds (empty reference) compare False: every value counts as out of range.
        self.out_of_range += x.size - int(np.count_nonzero((x >= self.lo) & (x <= self.hi)))
        self.offer(keys, x, size)

    def offer(self, keys: np.ndarray, values: np.ndarray, size: int) -> None:
        if self.res_keys.size >= size:
            # Only keys up to the current k-th smallest can enter the bottom-k.
            keep = keys <= self.res_max
            keys, values = keys[keep], values[keep]
        if keys.size:
            self.set_reservoir(*_offered(self.res_keys, self.res_vals, keys, values, size))

    def set_reservoir(self, keys: np.ndarray, values: np.ndarray) -> None:
        self.res_keys, self.res_vals = keys, values
        self.res_max = keys.max() if keys.size else 0


class _NumericBlock:
    """:meth:`_NumericState.add` of several numeric columns of one batch at once.

    The same state as adding the columns one by one — the same bins (one
    ``searchsorted`` per column, counted by one ``bincount`` over all of them), the
    same missing and out-of-range counts and the same reservoir candidates in the same
    order — with the per-column numpy calls (a dozen each, ~1 µs apiece) done once on
    the ``(columns, events)`` matrix. A reservoir is only touched when one of its
    candidates (a finite value whose key can still enter the bottom-k) is in the batch.
    """

    __slots__ = (
        "_buffer",
        "_matrix",
        "_rows",
        "dump",
        "edges",
        "hi",
        "lo",
        "offsets",
        "sizes",
        "states",
    )

    # Up to this many inner edges per column, a value's bin is counted as the number of
    # edges below it, one comparison per edge on the whole matrix; beyond, searchsorted.
    MAX_COMPARED_EDGES = 32

    def __init__(self, states: list[_NumericState]) -> None:
        self.states = states
        # the shared reservoirs' values, one row per state (see _offer_shared)
        self._matrix: np.ndarray | None = None
        self._rows: list[np.ndarray] | None = None
        self._buffer: np.ndarray | None = None  # every state's counts (_counts_buffer)
        self.sizes = [s.counts.size for s in states]
        self.offsets = np.cumsum([0, *self.sizes[:-1]]).astype(np.intp)
        self.dump = int(sum(self.sizes))  # the bin of non-finite values (not counted)
        self.lo = np.array([s.lo for s in states], dtype=np.float64)
        self.hi = np.array([s.hi for s in states], dtype=np.float64)
        # Edges padded with +inf to one (columns, edges) matrix: for a finite value,
        # searchsorted(edges, v, side="left") is the number of edges e < v, and no value
        # is above the padding. Only for sorted, NaN-free edges (a reference profile's).
        width = max(s.edges.size for s in states)
        self.edges: np.ndarray | None = None
        if width <= self.MAX_COMPARED_EDGES and all(
            not np.isnan(s.edges).any() and bool(np.all(s.edges[:-1] <= s.edges[1:]))
            for s in states
        ):
            self.edges = np.full((len(states), width), np.inf)
            for j, state in enumerate(states):
                self.edges[j, : state.edges.size] = state.edges

    def add(self, x: np.ndarray, keys: np.ndarray, size: int) -> None:
        k, n = x.shape
        finite = np.isfinite(x)
        n_finite = np.count_nonzero(finite, axis=1).tolist()
        if self.edges is not None:
            below = np.zeros((k, n), dtype=np.uint8)
            above = np.empty((k, n), dtype=bool)
            for e in range(self.edges.shape[1]):
                np.greater(x, self.edges[:, e : e + 1], out=above)
                below += above.view(np.uint8)
            idx = below.astype(np.intp)
        else:
            idx = np.empty((k, n), dtype=np.intp)
            for j, state in enumerate(self.states):
                idx[j] = np.searchsorted(state.edges, x[j], side="left")
        idx += self.offsets[:, None]
        idx[~finite] = self.dump
        counts = np.bincount(idx.ravel(), minlength=self.dump + 1)
        # NaN bounds (empty reference) compare False: every value counts as out of range.
        in_range = (x >= self.lo[:, None]) & (x <= self.hi[:, None]) & finite
        n_in_range = np.count_nonzero(in_range, axis=1).tolist()
        states = self.states
        buffer = self._counts_buffer()
        buffer += counts[: self.dump]  # (every state's counts are views of it)
        if sum(n_finite) != k * n or n_in_range != n_finite:
            for j, state in enumerate(states):
                state.missing += n - n_finite[j]
                state.out_of_range += n_finite[j] - n_in_range[j]
        first = states[0].res_keys
        shared = all(s.res_keys is first for s in states)
        if shared:  # (one filter for all)
            # _NumericState.offer's filter: once full, only keys up to the k-th smallest
            if first.size >= size:
                candidates = finite & (keys <= states[0].res_max)[None, :]
            else:
                candidates = finite
        else:
            full = np.array([s.res_keys.size >= size for s in states])
            res_max = np.array([s.res_max for s in states], dtype=np.uint64)
            candidates = finite & ((keys[None, :] <= res_max[:, None]) | ~full[:, None])
        offered = np.flatnonzero(candidates.any(axis=1)).tolist()
        if not offered or self._offer_shared(x, keys, candidates, size, shared):
            return
        for j in offered:
            state, take = self.states[j], candidates[j]
            state.set_reservoir(
                *_offered(state.res_keys, state.res_vals, keys[take], x[j][take], size)
            )

    def _counts_buffer(self) -> np.ndarray:
        """One array holding every state's bin counts, each state's ``counts`` a view of
        its slice (so a batch's counts are added in one call); made again, from the
        states' counts, if one was replaced since."""
        buffer = self._buffer
        states = self.states
        if buffer is None or not all(s.counts.base is buffer for s in states):
            buffer = np.concatenate([s.counts for s in states]).astype(np.int64)
            for j, state in enumerate(states):
                state.counts = buffer[self.offsets[j] : self.offsets[j] + self.sizes[j]]
            self._buffer = buffer
        return buffer

    def _offer_shared(
        self, x: np.ndarray, keys: np.ndarray, candidates: np.ndarray, size: int, shared: bool
    ) -> bool:
        """The reservoirs' update when they all hold the same keys, in the same layout, and
        every column offers the same events (no missing values): the bottom-k of the keys
        and the slots (:func:`_slots`) are chosen once and applied to every column's
        values — what :func:`_offered` does per column, unless keys tie at the k-th place
        (then ties are broken by each column's values: False, nothing changed).

        The values live in one (columns, reservoir) matrix whose rows are the states'
        ``res_vals``; a full reservoir is updated in place, entrants only. ``shared``: the
        states hold one keys array (else they are compared)."""
        states = self.states
        first = states[0].res_keys
        if not shared and not all(np.array_equal(s.res_keys, first) for s in states):
            return False  # (equal but not shared: empty, or restored from a snapshot)
        take = candidates[0]
        if not (candidates == take).all():
            return False
        new_keys = keys[take]
        m = first.size
        total = m + new_keys.size
        rows, current = self._rows, self._matrix
        matrix: np.ndarray
        if (
            rows is not None
            and current is not None
            and all(s.res_vals is r for s, r in zip(states, rows, strict=True))
        ):
            matrix = current
        else:  # (first shared update, or a column went its own way since)
            matrix = np.stack([s.res_vals for s in states]) if m else np.empty((len(states), 0))
        if total <= size:
            out_keys = np.concatenate([first, new_keys])
            matrix = np.concatenate([matrix, x[:, take]], axis=1)
        else:
            chosen = _bottom_k_mask(np.concatenate([first, new_keys]), None, size)
            if chosen is None:
                return False
            slots, entering = _slots(m, chosen)
            if m < size:  # growing to full: the last copy
                grown = np.empty((len(states), size))
                grown[:, :m] = matrix
                matrix = grown
                out_keys = np.empty(size, dtype=first.dtype)
                out_keys[:m] = first
            else:
                out_keys = first.copy()  # (the old array may be held elsewhere)
            out_keys[slots] = new_keys[entering]
            matrix[:, slots] = x[:, take][:, entering]
        res_max = out_keys.max() if out_keys.size else 0
        self._matrix = matrix
        self._rows = rows = list(matrix)
        for state, row in zip(states, rows, strict=True):
            state.res_keys, state.res_vals, state.res_max = out_keys, row, res_max
        return True


class _CategoricalState:
    """Counts per category slot; the last slot is "unseen", missing values are counted apart.

    Values are mapped to slots with a memo of raw value -> slot, so a batch of
    known values is counted by one C-level pass (``map(dict.get)`` into
    ``np.fromiter``) and a ``bincount``; only values never met before go through
    the Python rules (missing? :func:`~detectors.columns.category_key` in the profile?).
    """

    __slots__ = ("counts", "memo", "missing", "profile")

    def __init__(self, profile: CategoricalProfile) -> None:
        self.profile = profile
        self.counts = np.zeros(len(profile.categories) + 1, dtype=np.int64)
        self.missing = 0
        self.memo: dict[Any, int] = {}

    def slots(self, name: str, column: np.ndarray) -> np.ndarray:
        """Slot per value: a category, the unseen slot, or ``len(counts)`` for missing."""
        arr = np.asarray(column)
        if arr.ndim != 1:
            raise UnsupportedColumnError(name, f"expected a 1-D array, got shape {arr.shape}")
        values = arr.tolist()
        try:
            return np.fromiter(map(self.memo.get, values), dtype=np.intp, count=len(values))
        except TypeError:  # a value not in the memo yet (or NaN, or unhashable)
            return self._learn(name, values)

    def add(self, slots: np.ndarray) -> None:
        """Add a batch already mapped by :meth:`slots`."""
        missing_slot = self.counts.size
        per_slot = np.bincount(slots, minlength=missing_slot + 1)
        self.counts += per_slot[:missing_slot]
        self.missing += int(per_slot[missing_slot])

    def _learn(self, name: str, values: list[Any]) -> np.ndarray:
        try:
            distinct = Counter(values)
        except TypeError as exc:
            raise UnsupportedColumnError(name, f"values must be scalars ({exc})") from None
        missing_slot = self.counts.size
        batch: dict[Any, int] = {}
        for value in distinct:
            slot = self.memo.get(value)
            if slot is None:
                missing = is_missing(value)
                slot = missing_slot if missing else self.profile.index(category_key(value))
                # A float NaN never equals itself, so it cannot be looked up again: don't keep it.
                if not (missing and isinstance(value, float)) and len(self.memo) < _MEMO_LIMIT:
                    self.memo[value] = slot
            batch[value] = slot
        return np.fromiter(map(batch.__getitem__, values), dtype=np.intp, count=len(values))


class WindowAccumulator:
    """Counts, missing, out-of-range and a bottom-k sample per monitored column.

    Parameters
    ----------
    profile
        The reference profile whose bins and categories the counts follow.
    reservoir_size
        Maximum number of values kept per numeric column for KS and
        Wasserstein. 2 000 gives a KS statistic within about ±0.03 of the
        full-window value (95 %).

    """

    def __init__(self, profile: ReferenceProfile, reservoir_size: int = 2_000) -> None:
        if reservoir_size < 1:
            raise ValueError(f"reservoir_size must be >= 1, got {reservoir_size}")
        self.profile = profile
        self.reservoir_size = int(reservoir_size)
        self.n_events = 0
        self._numeric: dict[str, _NumericState] = {}
        self._categorical: dict[str, _CategoricalState] = {}
        for name, fp in profile.monitored().items():
            if isinstance(fp, NumericProfile):
                self._numeric[name] = _NumericState(fp)
            else:
                self._categorical[name] = _CategoricalState(fp)
        self._block: _NumericBlock | None = None  # built on the first batch that has them all

    def update(self, columns: dict[str, np.ndarray], keys: np.ndarray) -> None:
        """Add one batch of events.

        Parameters
        ----------
        columns
            Column name to 1-D array, one entry per event: numeric columns as
            ``float64`` with NaN for missing, categorical ones as object
            arrays with ``None`` for missing. A monitored column absent from
            the batch counts as missing for every event; columns the profile
            does not know are ignored. The model output goes under
            ``"__prediction__"``.
        keys
            ``uint64`` stable per-event hashes (e.g. of the prediction id),
            one per event. They choose the sample, so the same event must
            always get the same key.

        Raises
        ------
        ValueError
            When a column's length differs from ``len(keys)``.
        UnsupportedColumnError
            When a numeric column holds values that are not numbers, or a
            categorical one holds unhashable values. The accumulator is then
            left unchanged.

        """
        keys = np.asarray(keys)
        if keys.dtype != np.uint64:
            keys = keys.astype(np.uint64)
        n = keys.size
        for name, column in columns.items():
            if (name in self._numeric or name in self._categorical) and len(column) != n:
                raise ValueError(f"column {name!r} has {len(column)} values for {n} keys")
        # Convert every column before touching any count: a bad column leaves the
        # accumulator as it was, so the caller can reject the batch as a whole.
        numeric = {name: as_float(name, columns[name]) for name in self._numeric if name in columns}
        categorical = {
            name: cat.slots(name, columns[name])
            for name, cat in self._categorical.items()
            if name in columns
        }
        if len(numeric) > 1 and len(numeric) == len(self._numeric):
            # every numeric column present (the common batch): all of them at once
            if self._block is None:
                self._block = _NumericBlock(list(self._numeric.values()))
            self._block.add(np.stack(list(numeric.values())), keys, self.reservoir_size)
        else:
            for name, num in self._numeric.items():
                if name in numeric:
                    num.add(numeric[name], keys, self.reservoir_size)
                else:
                    num.missing += n
        for name, cat in self._categorical.items():
            if name in categorical:
                cat.add(categorical[name])
            else:
                cat.missing += n
        self.n_events += n

    def merge(self, other: WindowAccumulator) -> None:
        """Add another accumulator of *disjoint* events into this one, exactly.

        Raises
        ------
        ValueError
            When the two were built on profiles with different bins or
            categories, or with different reservoir sizes.

        """
        self._check_compatible(other)
        self.n_events += other.n_events
        for name, num in self._numeric.items():
            o = other._numeric[name]
            num.counts += o.counts
            num.missing += o.missing
            num.out_of_range += o.out_of_range
            num.offer(o.res_keys, o.res_vals, self.reservoir_size)
        for name, cat in self._categorical.items():
            c = other._categorical[name]
            cat.counts += c.counts
            cat.missing += c.missing

    def _check_compatible(self, other: WindowAccumulator) -> None:
        if other.reservoir_size != self.reservoir_size:
            raise ValueError(
                f"cannot merge accumulators with reservoir sizes {self.reservoir_size} "
                f"and {other.reservoir_size}"
            )
        if set(other._numeric) != set(self._numeric) or set(other._categorical) != set(
            self._categorical
        ):
            raise ValueError("cannot merge accumulators of profiles with different columns")
        for name, num in self._numeric.items():
            if not np.array_equal(num.edges, other._numeric[name].edges):
                raise ValueError(f"cannot merge: column {name!r} has different bin edges")
        for name, cat in self._categorical.items():
            if cat.profile.categories != other._categorical[name].profile.categories:
                raise ValueError(f"cannot merge: column {name!r} has different categories")

    def _state(self, feature: str) -> _NumericState | _CategoricalState:
        state = self._numeric.get(feature) or self._categorical.get(feature)
        if state is None:
            raise KeyError(f"{feature!r} is not a monitored column of this profile")
        return state

    def counts(self, feature: str) -> np.ndarray:
        """Counts per reference bin (numeric) or per category + unseen slot (categorical)."""
        return self._state(feature).counts.copy()

    def missing(self, feature: str) -> int:
        """Number of events where the column was missing (None, NaN, ±inf or absent)."""
        return int(self._state(feature).missing)

    def out_of_range(self, feature: str) -> int:
        """Present values outside the reference range (numeric) or unseen categories."""
        state = self._state(feature)
        if isinstance(state, _NumericState):
            return int(state.out_of_range)
        return int(state.counts[-1])

    def sample(self, feature: str) -> np.ndarray:
        """The bottom-k sample of a numeric column, sorted ascending."""
        if feature not in self._numeric:
            raise KeyError(f"{feature!r} is not a numeric monitored column of this profile")
        return np.sort(self._numeric[feature].res_vals)

    def to_state(self) -> dict[str, Any]:
        """Snapshot as plain ``dict``/``list``/``int``/``float`` (JSON- and pickle-able).

        Its size is O(bins + reservoir) per column, independent of the
        number of events.
        """
        columns: dict[str, Any] = {}
        for name, num in self._numeric.items():
            res_keys, res_vals = _by_key(num.res_keys, num.res_vals)
            columns[name] = {
                "counts": num.counts.tolist(),
                "missing": int(num.missing),
                "out_of_range": int(num.out_of_range),
                "reservoir_keys": res_keys.tolist(),
                "reservoir_values": res_vals.tolist(),
            }
        for name, cat in self._categorical.items():
            columns[name] = {"counts": cat.counts.tolist(), "missing": int(cat.missing)}
        return {
            "state_version": STATE_VERSION,
            "reservoir_size": self.reservoir_size,
            "n_events": self.n_events,
            "columns": columns,
        }

    @classmethod
    def from_state(cls, profile: ReferenceProfile, state: dict[str, Any]) -> WindowAccumulator:
        """Rebuild an accumulator from :meth:`to_state` and the same profile.

        Raises
        ------
        ValueError
            When the state does not fit the profile (other columns or bins).

        """
        if state.get("state_version") != STATE_VERSION:
            raise ValueError(
                f"unsupported accumulator state_version {state.get('state_version')!r}"
            )
        acc = cls(profile, reservoir_size=int(state["reservoir_size"]))
        acc.n_events = int(state["n_events"])
        expected = set(acc._numeric) | set(acc._categorical)
        if set(state["columns"]) != expected:
            raise ValueError("accumulator state does not match the profile's columns")
        for name, col in state["columns"].items():
            target = acc._state(name)
            counts = np.asarray(col["counts"], dtype=np.int64)
            if counts.shape != target.counts.shape:
                raise ValueError(
                    f"column {name!r}: state has {counts.size} bins, profile {target.counts.size}"
                )
            target.counts = counts
            target.missing = int(col["missing"])
            if isinstance(target, _NumericState):
                target.out_of_range = int(col["out_of_range"])
                target.set_reservoir(
                    np.asarray(col["reservoir_keys"], dtype=np.uint64),
                    np.asarray(col["reservoir_values"], dtype=np.float64),
                )
        return acc
