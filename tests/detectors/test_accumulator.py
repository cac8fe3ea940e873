"""WindowAccumulator: counts, missing, out-of-range, bottom-k sample, exact merge, state."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.accumulator import PREDICTION_FEATURE, WindowAccumulator
from detectors.binning import bin_counts
from detectors.columns import UnsupportedColumnError
from detectors.profile import ReferenceProfile

CATS = np.array(["a", "b", "c", "new", None], dtype=object)


def _profile(prediction: bool = False) -> ReferenceProfile:
    rng = np.random.default_rng(0)
    return ReferenceProfile.from_columns(
        {"x": rng.normal(0, 1, 2_000), "c": rng.choice(["a", "b", "c"], 2_000)},
        bins=5,
        prediction=rng.random(2_000) if prediction else None,
    )


PROFILE = _profile()


def _batch(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    x = rng.normal(0.3, 1.5, n)
    x[rng.random(n) < 0.05] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    return {"x": x, "c": CATS[rng.integers(0, len(CATS), n)]}


def test_counts_missing_and_out_of_range_match_direct_computation() -> None:
    rng = np.random.default_rng(1)
    batches = [_batch(rng, n) for n in (10, 1_000, 1, 333)]
    acc = WindowAccumulator(PROFILE, reservoir_size=50)
    for b in batches:
        acc.update(b, rng.integers(0, 2**64 - 1, len(b["x"]), dtype=np.uint64))
    x = np.concatenate([b["x"] for b in batches])
    c = np.concatenate([b["c"] for b in batches])
    fx = x[np.isfinite(x)]
    num = PROFILE.features["x"]
    assert acc.n_events == x.size
    assert acc.counts("x").tolist() == bin_counts(fx, num.edges).tolist()  # type: ignore[union-attr]
    assert acc.missing("x") == int((~np.isfinite(x)).sum())
    assert acc.out_of_range("x") == int(((fx < num.min) | (fx > num.max)).sum())  # type: ignore[union-attr]
    expected = [int((c == k).sum()) for k in ("a", "b", "c", "new")]
    assert acc.counts("c").tolist() == expected
    assert acc.out_of_range("c") == expected[-1]
    assert acc.missing("c") == int(sum(v is None for v in c))
    assert acc.sample("x").size == 50


def test_absent_column_counts_as_missing_and_unknown_columns_are_ignored() -> None:
    acc = WindowAccumulator(PROFILE)
    acc.update({"x": np.array([0.0, 1.0]), "other": np.array([1, 2])}, np.array([1, 2], np.uint64))
    assert acc.missing("c") == 2
    assert acc.counts("c").sum() == 0
    assert acc.missing("x") == 0


def test_categorical_values_are_compared_as_text_and_nan_is_missing() -> None:
    # an integer code column that pandas made float because of a missing value
    profile = ReferenceProfile.from_columns(
        {"k": np.array([1.0, 2.0, 2.0, np.nan])}, categorical={"k"}
    )
    assert profile.features["k"].categories == ["1", "2"]  # type: ignore[union-attr]
    acc = WindowAccumulator(profile)
    values = np.array([1, "2", 2, 3, float("nan"), None, float("inf"), 2.5], dtype=object)
    for _ in range(3):  # the memo of known values must give the same answer each time
        acc.update({"k": values}, np.arange(8, dtype=np.uint64))
    assert acc.counts("k").tolist() == [3, 6, 6]  # "1", "2", unseen "3" and "2.5"
    assert acc.missing("k") == 9
    assert all(v == v for v in acc._categorical["k"].memo)  # no NaN kept in the memo


def test_prediction_is_accumulated_under_its_pseudo_feature() -> None:
    profile = _profile(prediction=True)
    acc = WindowAccumulator(profile)
    acc.update({PREDICTION_FEATURE: np.array([0.1, 2.0])}, np.array([5, 6], np.uint64))
    assert PREDICTION_FEATURE == "__prediction__"
    assert acc.counts(PREDICTION_FEATURE).sum() == 2
    assert acc.out_of_range(PREDICTION_FEATURE) == 1


def test_reservoir_is_the_bottom_k_by_key() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=5_000)
    keys = rng.permutation(5_000).astype(np.uint64) * np.uint64(7)
    acc = WindowAccumulator(PROFILE, reservoir_size=100)
    for lo in range(0, 5_000, 640):
        acc.update({"x": x[lo : lo + 640]}, keys[lo : lo + 640])
    expected = np.sort(x[np.argsort(keys)[:100]])
    assert np.array_equal(acc.sample("x"), expected)


def test_reservoir_holds_everything_when_large_enough() -> None:
    x = np.array([3.0, np.nan, 1.0, 2.0])
    acc = WindowAccumulator(PROFILE, reservoir_size=10)
    acc.update({"x": x}, np.array([9, 8, 7, 6], np.uint64))
    assert sorted(acc.sample("x").tolist()) == [1.0, 2.0, 3.0]


events = st.lists(
    st.tuples(
        st.integers(0, 40),  # key: a small range forces ties
        st.one_of(st.floats(-5, 5), st.just(float("nan"))),
        st.sampled_from(["a", "b", "zz", None]),
        st.booleans(),  # which worker sees the event
    ),
    max_size=120,
)


@given(events, st.integers(1, 15), st.integers(1, 7), st.integers(1, 7))
@settings(max_examples=150, deadline=None)
def test_merge_of_disjoint_accumulators_equals_one_over_the_union(
    evs: list[tuple[int, float, str | None, bool]], size: int, batch_a: int, batch_b: int
) -> None:
    def feed(
        acc: WindowAccumulator, rows: list[tuple[int, float, str | None, bool]], step: int
    ) -> None:
        for lo in range(0, len(rows), step):
            part = rows[lo : lo + step]
            acc.update(
                {
                    "x": np.array([r[1] for r in part], dtype=np.float64),
                    "c": np.array([r[2] for r in part], dtype=object),
                },
                np.array([r[0] for r in part], dtype=np.uint64),
            )

    whole = WindowAccumulator(PROFILE, reservoir_size=size)
    feed(whole, evs, 1_000)
    a = WindowAccumulator(PROFILE, reservoir_size=size)
    b = WindowAccumulator(PROFILE, reservoir_size=size)
    feed(a, [e for e in evs if e[3]], batch_a)
    feed(b, [e for e in evs if not e[3]], batch_b)
    a.merge(b)
    assert a.to_state() == whole.to_state()


def _numeric_profile(bins: int) -> ReferenceProfile:
    rng = np.random.default_rng(3)
    return ReferenceProfile.from_columns(
        {
            "x": rng.normal(0, 1, 500),
            "y": rng.normal(0, 2, 500),
            "empty": np.full(500, np.nan),  # no reference values: NaN bounds, no edges
            "one": np.ones(500),  # a single edge
            "c": rng.choice(["a", "b"], 500),
        },
        bins=bins,
    )


# bins=5: bins by comparing with each edge; bins=40 (over 32 edges): by searchsorted
NUMERIC_PROFILES = {5: _numeric_profile(5), 40: _numeric_profile(40)}
value = st.one_of(
    st.floats(-6, 6),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1.0, 0.0]),
)


@given(
    st.lists(st.tuples(st.integers(0, 60), st.tuples(value, value, value, value)), max_size=150),
    st.sampled_from([5, 40]),
    st.booleans(),
    st.integers(1, 20),
    st.integers(1, 60),
)
@settings(max_examples=200, deadline=None)
def test_all_numeric_columns_at_once_equal_one_column_at_a_time(
    rows: list[tuple[int, tuple[float, float, float, float]]],
    bins: int,
    finite_only: bool,
    size: int,
    step: int,
) -> None:
    """A batch with every numeric column is added by the block path (binned by edge
    comparisons or searchsorted, reservoirs chosen once for all columns when they share
    keys); the per-column ``_NumericState.add`` is the reference: the same counts,
    missing, out-of-range and the same reservoir arrays, in the same order."""
    profile = NUMERIC_PROFILES[bins]
    names = ["x", "y", "empty", "one"]
    if finite_only:
        rows = [(k, tuple(v if np.isfinite(v) else 0.5 for v in vs)) for k, vs in rows]
    block = WindowAccumulator(profile, reservoir_size=size)
    reference = WindowAccumulator(profile, reservoir_size=size)
    for lo in range(0, len(rows), step):
        if lo and lo // step == 2:  # a restart: both restored from their snapshots
            block = WindowAccumulator.from_state(profile, block.to_state())
            reference = WindowAccumulator.from_state(profile, reference.to_state())
        part = rows[lo : lo + step]
        keys = np.array([r[0] for r in part], dtype=np.uint64)
        columns = {
            n: np.array([r[1][j] for r in part], dtype=np.float64) for j, n in enumerate(names)
        }
        block.update({**columns, "c": np.array(["a"] * len(part), dtype=object)}, keys)
        for name in names:
            reference._numeric[name].add(columns[name], keys, size)
    for name in names:
        got, want = block._numeric[name], reference._numeric[name]
        assert got.counts.tolist() == want.counts.tolist(), name
        assert (got.missing, got.out_of_range) == (want.missing, want.out_of_range), name
        assert got.res_keys.tolist() == want.res_keys.tolist(), name
        np.testing.assert_array_equal(got.res_vals, want.res_vals)
        assert int(got.res_max) == int(want.res_max)


@pytest.mark.parametrize("bins", [5, 40])
def test_reservoirs_that_diverged_are_not_chosen_together_later(bins: int) -> None:
    """Missing values in one column make its reservoir differ from the others'; a later
    batch without missing values must still update each reservoir on its own keys."""
    profile = NUMERIC_PROFILES[bins]
    names = ["x", "y", "empty", "one"]
    rng = np.random.default_rng(11)
    block = WindowAccumulator(profile, reservoir_size=5)
    reference = WindowAccumulator(profile, reservoir_size=5)
    for batch in range(6):
        size = 40 if batch == 0 else 8
        keys = rng.integers(0, 2**63, size=size).astype(np.uint64)
        columns = {n: rng.normal(size=size) for n in names}
        if batch == 0:
            columns["x"][::2] = np.nan  # x's reservoir takes other events than y's
        block.update({**columns, "c": np.array(["a"] * size, dtype=object)}, keys)
        for name in names:
            reference._numeric[name].add(columns[name], keys, 5)
        for name in names:
            got, want = block._numeric[name], reference._numeric[name]
            assert got.res_keys.tolist() == want.res_keys.tolist(), (batch, name)
            np.testing.assert_array_equal(got.res_vals, want.res_vals)
        if batch == 1:  # (a clean batch met reservoirs that differ)
            assert reference._numeric["x"].res_keys.tolist() != (
                reference._numeric["y"].res_keys.tolist()
            )


def test_merge_rejects_incompatible_accumulators() -> None:
    with pytest.raises(ValueError, match="reservoir"):
        WindowAccumulator(PROFILE, 10).merge(WindowAccumulator(PROFILE, 20))
    other = ReferenceProfile.from_columns({"x": np.arange(10.0), "c": np.array(["a"] * 10)}, bins=5)
    with pytest.raises(ValueError, match="edges"):
        WindowAccumulator(PROFILE).merge(WindowAccumulator(other))


def test_state_round_trips_through_json_and_pickle_and_stays_small() -> None:
    rng = np.random.default_rng(3)
    acc = WindowAccumulator(PROFILE, reservoir_size=64)
    for _ in range(20):
        acc.update(_batch(rng, 500), rng.integers(0, 2**64 - 1, 500, dtype=np.uint64))
    state = acc.to_state()
    text = json.dumps(state, allow_nan=False)
    back = WindowAccumulator.from_state(PROFILE, json.loads(text))
    assert back.to_state() == state
    assert (
        WindowAccumulator.from_state(PROFILE, pickle.loads(pickle.dumps(state))).to_state() == state
    )
    assert len(text) < 5_000  # O(bins + reservoir), not O(10 000 events)

    # a restored accumulator continues exactly like the original
    nxt = _batch(rng, 700), rng.integers(0, 2**64 - 1, 700, dtype=np.uint64)
    acc.update(*nxt)
    back.update(*nxt)
    assert back.to_state() == acc.to_state()


def test_state_of_another_profile_is_rejected() -> None:
    state = WindowAccumulator(PROFILE).to_state()
    other = ReferenceProfile.from_columns({"y": np.arange(5.0)})
    with pytest.raises(ValueError, match="columns"):
        WindowAccumulator.from_state(other, state)
    state["state_version"] = 99
    with pytest.raises(ValueError, match="state_version"):
        WindowAccumulator.from_state(PROFILE, state)


def test_bad_batches_raise_clear_errors() -> None:
    acc = WindowAccumulator(PROFILE)
    with pytest.raises(ValueError, match="3 values for 2 keys"):
        acc.update({"x": np.zeros(3)}, np.array([1, 2], np.uint64))
    with pytest.raises(UnsupportedColumnError, match="'x'"):
        acc.update({"x": np.array(["a", "b"], dtype=object)}, np.array([1, 2], np.uint64))
    unhashable = np.empty(2, dtype=object)
    unhashable[0], unhashable[1] = [1], {"a": 1}
    before = acc.to_state()
    with pytest.raises(UnsupportedColumnError, match="'c'"):
        acc.update({"x": np.zeros(2), "c": unhashable}, np.array([1, 2], np.uint64))
    assert acc.to_state() == before  # a rejected batch changes nothing
    with pytest.raises(KeyError):
        acc.counts("nope")
    with pytest.raises(ValueError, match="reservoir_size"):
        WindowAccumulator(PROFILE, reservoir_size=0)


@pytest.mark.parametrize("size", [7, 300])
def test_block_state_stays_exact_through_merges_and_restores(size: int) -> None:
    """The block path keeps the columns' counts in one array and the shared reservoirs in
    one matrix, updated in place; a merge or a restore between batches replaces a
    column's arrays, and the next batch must notice. Fed in small batches with a merge
    and a restore among them, the state equals that of one accumulator fed every event
    in one batch (bottom-k and counts depend on the set of events only)."""
    profile = NUMERIC_PROFILES[5]
    names = ["x", "y", "empty", "one"]
    rng = np.random.default_rng(5)

    def batch(n: int, lo: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        cols = {name: rng.normal(size=n) for name in names}
        cols["y"][rng.random(n) < 0.1] = 3.5  # out of range, now and then
        keys = rng.permutation(np.arange(lo, lo + n, dtype=np.uint64) * 7919 % 100_003)
        return cols, keys.astype(np.uint64)

    parts = [batch(n, lo) for n, lo in ((40, 0), (3, 40), (600, 43), (5, 643), (50, 648))]
    acc = WindowAccumulator(profile, reservoir_size=size)
    acc.update(*parts[0])
    acc.update(*parts[1])
    other = WindowAccumulator(profile, reservoir_size=size)
    other.update(*parts[2])
    acc.merge(other)  # counts added in place, reservoirs replaced column by column
    acc.update(*parts[3])
    acc = WindowAccumulator.from_state(profile, acc.to_state())
    acc.update(*parts[4])
    whole = WindowAccumulator(profile, reservoir_size=size)
    whole.update(
        {name: np.concatenate([p[0][name] for p in parts]) for name in names},
        np.concatenate([p[1] for p in parts]),
    )
    assert acc.to_state() == whole.to_state()
    assert acc.counts("y").sum() == whole.n_events == 698
    # what the accumulator handed out is not changed by later batches (updates in place)
    sample = acc.sample("x")
    kept = sample.copy()
    acc.update(*batch(30, 10_000))
    np.testing.assert_array_equal(sample, kept)
