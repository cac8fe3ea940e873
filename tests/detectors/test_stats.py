"""detectors.stats against scipy on the same arrays (hypothesis + fixed seeds)."""

from __future__ import annotations

import math
import warnings

import driftline_native
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial import distance
from scipy.stats import _ksstats

from detectors.stats import (
    Chi2Result,
    KSResult,
    _ecdfs,
    _gap_stats,
    _pelz_good_cdf,
    chi2,
    cramers_v,
    jensenshannon,
    ks,
    ks_and_wasserstein,
    kstwo_sf,
    psi,
    wasserstein,
)

TOL = 1e-9
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
# few distinct values so that ties (the hard case for KS and Wasserstein) are common
tied = st.sampled_from([-2.0, -0.5, 0.0, 0.0, 1.0, 3.25])
samples = st.one_of(
    arrays(np.float64, st.integers(1, 60), elements=finite),
    arrays(np.float64, st.integers(1, 60), elements=tied),
)
counts = st.lists(st.integers(0, 500), min_size=1, max_size=12)
weights = st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=12)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOL, abs_tol=TOL)


# --- psi -------------------------------------------------------------------------------------


def test_psi_is_zero_for_equal_distributions() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4])
    assert psi(p, p) == 0.0


def test_psi_matches_the_formula() -> None:
    r = np.array([0.25, 0.25, 0.25, 0.25])
    c = np.array([0.10, 0.20, 0.30, 0.40])
    expected = float(np.sum((c - r) * np.log(c / r)))
    assert close(psi(r, c), expected)
    assert close(psi(r, c), psi(c, r))  # symmetric


def test_psi_replaces_proportions_below_eps_on_each_side() -> None:
    r = np.array([0.5, 0.5, 0.0])
    c = np.array([0.5, 0.49, 0.01])
    expected = (0.49 - 0.5) * math.log(0.49 / 0.5) + (0.01 - 1e-4) * math.log(0.01 / 1e-4)
    assert close(psi(r, c), expected)
    assert close(psi(r, c, eps=1e-3), (0.49 - 0.5) * math.log(0.98) + 0.009 * math.log(10))
    assert math.isfinite(psi([1.0, 0.0], [0.0, 1.0]))


def test_psi_thresholds_read_as_documented() -> None:
    base = np.full(10, 0.1)
    slight = np.array([0.09, 0.11] * 5)
    strong = np.array([0.02, 0.18] * 5)
    assert psi(base, slight) < 0.1
    assert psi(base, strong) > 0.2


def test_psi_rejects_different_lengths() -> None:
    with pytest.raises(ValueError, match="length"):
        psi([0.5, 0.5], [1.0])


@given(weights, weights)
@settings(max_examples=60, deadline=None)
def test_psi_is_non_negative(a: list[float], b: list[float]) -> None:
    n = min(len(a), len(b))
    r, c = np.array(a[:n]) + 1e-3, np.array(b[:n]) + 1e-3
    assert psi(r / r.sum(), c / c.sum()) >= -1e-12


# --- ks --------------------------------------------------------------------------------------


@given(samples, samples)
@settings(max_examples=200, deadline=None)
def test_ecdf_gaps_counted_by_merging_equal_the_binary_searches(
    ref: np.ndarray, cur: np.ndarray
) -> None:
    """``_ecdfs`` counts along the merge of the two sorted samples; the reference is two
    ``searchsorted`` per pooled point (what scipy evaluates): the same bits, ties included."""
    a, b = np.sort(ref), np.sort(cur)
    pooled, gap = _ecdfs(a, b)
    expected_pooled = np.sort(np.concatenate([a, b]), kind="stable")
    expected = np.searchsorted(a, expected_pooled, side="right") / a.size
    expected -= np.searchsorted(b, expected_pooled, side="right") / b.size
    assert pooled.tobytes() == expected_pooled.tobytes()
    assert gap.tobytes() == expected.tobytes()


@given(samples, samples)
@settings(max_examples=200, deadline=None)
def test_native_gap_stats_equal_numpys(ref: np.ndarray, cur: np.ndarray) -> None:
    """The native merge (``driftline_native.ecdf_gap_stats``) against ``_ecdfs``: the same
    extremes to the bit, the integral of |gap| within rounding; ties included."""
    a, b = np.sort(ref), np.sort(cur)
    pooled, gap = _ecdfs(a, b)
    found = driftline_native.ecdf_gap_stats(a.tobytes(), b.tobytes())
    assert found is not None
    assert found[:2] == (float(gap.max()), float(gap.min()))
    assert close(found[2], float(np.dot(np.abs(gap[:-1]), np.diff(pooled))))
    assert _gap_stats(a, b) == found


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([], [1.0]),
        ([1.0], []),
        ([2.0, 1.0], [1.0]),  # not sorted
        ([1.0, np.nan], [1.0]),
        ([1.0], [-np.inf, 1.0]),
    ],
)
def test_native_gap_stats_refuse_what_numpy_must_handle(a: list[float], b: list[float]) -> None:
    """Empty, unsorted or non-finite samples are not taken: ``_gap_stats`` falls back to
    numpy for those."""
    x, y = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    assert driftline_native.ecdf_gap_stats(x.tobytes(), y.tobytes()) is None
    assert driftline_native.ecdf_gap_stats(b"\0" * 7, y.tobytes()) is None  # not 8-byte floats
    if a and b and a == sorted(a) and b == sorted(b):
        _pooled, gap = _ecdfs(x, y)
        assert _gap_stats(x, y)[:2] == (float(gap.max()), float(gap.min()))


def test_wasserstein_with_an_infinite_value_is_numpys() -> None:
    """(Inputs are meant to be clean; an infinite value still gets numpy's answer.)"""
    a, b = np.array([1.0, np.inf]), np.array([1.0, 2.0])
    pooled, gap = _ecdfs(a, b)
    expected = float(np.dot(np.abs(gap[:-1]), np.diff(pooled)))
    assert wasserstein(a, b, ref_std=1.0) == expected == math.inf


@pytest.mark.parametrize("n", [141, 1_429, 2_500, 20_000, 100_000])
def test_pelz_good_branch_equals_scipy(n: int) -> None:
    """``kstwo_sf`` sums scipy's Pelz-Good branch (n > 140, n d**1.5 > 1.4, n d**2 < 2.2: an
    undrifted feature between two reservoirs) in floats: scipy's value within 1e-12."""
    lo, hi = (1.4 / n) ** (2 / 3), math.sqrt(2.2 / n)
    for d in np.linspace(lo, hi, 80)[1:-1]:
        expected = float(scipy.stats.kstwo.sf(d, n))
        assert 0.0 < expected < 1.0
        assert abs(kstwo_sf(d, n) - expected) < 1e-12, (n, d)
        assert kstwo_sf(d, n) == pytest.approx(expected, rel=1e-9)
        assert abs(_pelz_good_cdf(float(n), float(d)) - _ksstats._kolmogn_PelzGood(n, d)) < 1e-12


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
@given(samples, samples)
@settings(max_examples=100, deadline=None)
def test_ks_equals_scipy(ref: np.ndarray, cur: np.ndarray) -> None:
    expected = scipy.stats.ks_2samp(ref, cur)
    result = ks(ref, cur)
    assert isinstance(result, KSResult)
    assert close(result.statistic, float(expected.statistic))
    assert close(result.pvalue, float(expected.pvalue))


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "shift"),
    [(5_000, 2_000, 0.1), (30_000, 20_000, 0.0), (100_000, 100_000, 0.02), (12_000, 50_000, 0.3)],
)
def test_ks_equals_scipy_on_large_samples(n_ref: int, n_cur: int, shift: float) -> None:
    rng = np.random.default_rng(11)
    ref, cur = rng.normal(0, 1, n_ref), rng.normal(shift, 1, n_cur)
    expected = scipy.stats.ks_2samp(ref, cur)
    assert close(ks(ref, cur).statistic, float(expected.statistic))
    assert close(ks(ref, cur).pvalue, float(expected.pvalue))


around_100 = arrays(np.float64, st.integers(90, 300), elements=finite)


@given(st.one_of(samples, around_100), st.one_of(samples, around_100))
@settings(max_examples=100, deadline=None)
def test_ks_asymptotic_method_equals_scipy(ref: np.ndarray, cur: np.ndarray) -> None:
    """scipy's asymptotic p-value from 100 values per side on, its default below."""
    method = "asymp" if min(ref.size, cur.size) >= 100 else "auto"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
        expected = scipy.stats.ks_2samp(ref, cur, method=method)
    result = ks(ref, cur, method="asymp")
    assert close(result.statistic, float(expected.statistic))
    assert close(result.pvalue, float(expected.pvalue))
    together, _ = ks_and_wasserstein(ref, cur, ref_std=1.0, method="asymp")
    assert together == result


@given(
    st.integers(1, 30_000),
    st.floats(0.0, 1.0, allow_nan=False),
)
@settings(max_examples=400, deadline=None)
def test_kstwo_sf_equals_scipy(n: int, d: float) -> None:
    """The KS distribution's survival function: scipy's value within 1e-12, including the
    branch summed here (n > 140, 2.2 <= n d**2 < 370)."""
    assert abs(kstwo_sf(d, n) - float(scipy.stats.kstwo.sf(d, n))) < 1e-12


@pytest.mark.parametrize("n", [141, 1_000, 2_500, 20_000])
def test_kstwo_sf_on_the_summed_branch_equals_scipy(n: int) -> None:
    """Across the whole summed branch, from its lower edge to where the p-value vanishes."""
    lo, hi = math.sqrt(2.2 / n), min(0.499, math.sqrt(370 / n))
    for d in np.linspace(lo, hi, 60):
        expected = float(scipy.stats.kstwo.sf(d, n))
        assert abs(kstwo_sf(d, n) - expected) < 1e-12, (n, d)
        assert kstwo_sf(d, n) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("n_ref", "n_cur", "shift"), [(5_000, 2_000, 0.05), (5_000, 2_000, 0.3)])
def test_ks_asymptotic_method_on_window_sizes(n_ref: int, n_cur: int, shift: float) -> None:
    """The streaming windows' sizes (profile sample vs reservoir): scipy's asymptotic p-value,
    not the exact one (which differs, slightly)."""
    rng = np.random.default_rng(13)
    ref, cur = rng.normal(0, 1, n_ref), rng.normal(shift, 1, n_cur)
    asymp = scipy.stats.ks_2samp(ref, cur, method="asymp")
    exact = scipy.stats.ks_2samp(ref, cur)
    result = ks(ref, cur, method="asymp")
    assert close(result.pvalue, float(asymp.pvalue))
    assert result.pvalue != float(exact.pvalue)
    assert abs(result.pvalue - float(exact.pvalue)) < 2e-3
    with pytest.raises(ValueError, match="unknown KS method 'exact'"):
        ks(ref, cur, method="exact")


def test_ks_pvalue_collapses_at_large_n_while_statistic_stays_small() -> None:
    # the reason drift.py also asks for D >= 0.1
    rng = np.random.default_rng(0)
    result = ks(rng.normal(0, 1, 100_000), rng.normal(0.1, 1, 100_000))
    assert result.pvalue < 1e-6
    assert result.statistic < 0.1


# --- chi2 ------------------------------------------------------------------------------------


@given(counts, counts)
@settings(max_examples=100, deadline=None)
def test_chi2_equals_chi2_contingency(a: list[int], b: list[int]) -> None:
    n = min(len(a), len(b))
    ref, cur = np.array(a[:n]), np.array(b[:n])
    if ref.sum() == 0 or cur.sum() == 0:
        with pytest.raises(ValueError, match="positive total"):
            chi2(ref, cur)
        return
    result = chi2(ref, cur)
    assert isinstance(result, Chi2Result)
    keep = (ref + cur) > 0
    if keep.sum() < 2:
        assert result == Chi2Result(0.0, 1.0, 0)
        return
    expected = scipy.stats.chi2_contingency(np.vstack([ref, cur])[:, keep], correction=False)
    assert close(result.statistic, float(expected.statistic))
    assert close(result.pvalue, float(expected.pvalue))
    assert result.dof == expected.dof == keep.sum() - 1


def test_chi2_drops_categories_empty_on_both_sides() -> None:
    assert chi2([10, 0, 5, 0], [3, 0, 9, 0]) == chi2([10, 5], [3, 9])
    assert chi2([10, 0, 5, 0], [3, 0, 9, 0]).dof == 1


def test_cramers_v_is_the_effect_size_of_the_2xk_table() -> None:
    ref, cur = np.array([50, 30, 20]), np.array([30, 30, 40])
    result = chi2(ref, cur)
    assert close(cramers_v(result, 200), math.sqrt(result.statistic / 200))
    assert cramers_v(chi2([10, 0], [0, 10]), 20) == pytest.approx(1.0)
    assert cramers_v(chi2([10, 10], [10, 10]), 40) == 0.0


# --- jensenshannon ---------------------------------------------------------------------------


@given(weights, weights)
@settings(max_examples=100, deadline=None)
def test_jensenshannon_equals_scipy_base2(a: list[float], b: list[float]) -> None:
    n = min(len(a), len(b))
    p, q = np.array(a[:n]), np.array(b[:n])
    if p.sum() == 0 or q.sum() == 0:
        return
    expected = float(distance.jensenshannon(p, q, base=2))
    ours = jensenshannon(p, q)
    if math.isnan(expected):  # scipy's sqrt of a rounding-negative; ours clamps to 0
        assert ours < 1e-6
    else:
        assert close(ours, expected)
    assert 0.0 <= ours <= 1.0 + 1e-12


def test_jensenshannon_bounds_and_base() -> None:
    assert jensenshannon([1, 0], [0, 1]) == 1.0
    assert jensenshannon([0.3, 0.7], [0.3, 0.7]) == 0.0
    natural = jensenshannon([0.5, 0.5], [0.9, 0.1], base=math.e)
    assert close(natural, jensenshannon([0.5, 0.5], [0.9, 0.1]) * math.sqrt(math.log(2)))


# --- wasserstein -----------------------------------------------------------------------------


@given(samples, samples, st.floats(0.01, 100))
@settings(max_examples=100, deadline=None)
def test_wasserstein_equals_scipy_over_std(ref: np.ndarray, cur: np.ndarray, std: float) -> None:
    expected = float(scipy.stats.wasserstein_distance(ref, cur)) / std
    assert close(wasserstein(ref, cur, std), expected)


def test_wasserstein_floors_a_zero_std() -> None:
    assert wasserstein([5.0, 5.0], [5.0, 5.0], ref_std=0.0) == 0.0
    assert close(wasserstein([5.0, 5.0], [5.0, 5.01], ref_std=0.0), 0.005 / 1e-3)
    assert close(wasserstein([5.0], [6.0], ref_std=0.0, min_std=0.5), 2.0)


def test_wasserstein_is_in_reference_standard_deviations() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(10, 4, 20_000)
    cur = ref + 2.0  # half a standard deviation
    assert close(wasserstein(ref, cur, float(np.std(ref))), 2.0 / float(np.std(ref)))
    assert wasserstein(ref, cur, float(np.std(ref))) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("decimals", [None, 1])
def test_ks_and_wasserstein_together_equal_scipy_on_large_samples_with_ties(
    decimals: int | None,
) -> None:
    rng = np.random.default_rng(12)
    ref, cur = rng.normal(0, 1, 40_000), rng.normal(0.05, 1.1, 25_000)
    if decimals is not None:  # heavy ties
        ref, cur = ref.round(decimals), cur.round(decimals)
    ks_result, w = ks_and_wasserstein(ref, cur, ref_std=float(np.std(ref)))
    expected = scipy.stats.ks_2samp(ref, cur)
    assert close(ks_result.statistic, float(expected.statistic))
    assert close(ks_result.pvalue, float(expected.pvalue))
    assert close(w, float(scipy.stats.wasserstein_distance(ref, cur)) / float(np.std(ref)))
    assert ks_result == ks(ref, cur)
    assert close(w, wasserstein(ref, cur, float(np.std(ref))))
