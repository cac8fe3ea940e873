"""Our statistics against Evidently 0.7 itself, on the same generated data.

``psi_stat_test`` & co. are Evidently's stattest entry points; they expect the
NaN/inf dropping that Evidently's ``get_one_column_drift`` does first, so the
direct calls get cleaned series. ``ColumnDriftMetric`` in a legacy ``Report``
runs Evidently's whole path (type detection, cleaning, stattest) and is used
for the end-to-end cases.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

st_evidently = pytest.importorskip("evidently.legacy.calculations.stattests")
from evidently.legacy.core import ColumnType  # noqa: E402
from evidently.legacy.metrics import ColumnDriftMetric  # noqa: E402
from evidently.legacy.report import Report  # noqa: E402

from detectors.columns import Kind  # noqa: E402
from detectors.drift import DriftConfig, compare_columns  # noqa: E402
from detectors.evidently import (  # noqa: E402
    evidently_binned,
    evidently_jensenshannon,
    evidently_psi,
    evidently_wasserstein,
)
from detectors.stats import chi2  # noqa: E402

TOL = 1e-9
NUM, CAT = ColumnType.Numerical, ColumnType.Categorical


def _clean(x: np.ndarray) -> pd.Series:
    """What Evidently's get_one_column_drift does before a stattest."""
    return pd.Series(x).replace([-np.inf, np.inf], np.nan).dropna()


def _theirs(test: object, ref: np.ndarray, cur: np.ndarray, kind: ColumnType) -> float:
    return float(test(_clean(ref), _clean(cur), kind, None).drift_score)  # type: ignore[operator]


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray, ColumnType]]:
    rng = np.random.default_rng(2024)
    nan_inf = rng.normal(0, 1, 3_000)
    nan_inf[rng.random(3_000) < 0.1] = np.nan
    nan_inf[:7] = np.inf
    nan_inf[7:9] = -np.inf
    cur_nan = rng.normal(0.2, 1.2, 2_000)
    cur_nan[::13] = np.nan
    cur_nan[::101] = -np.inf
    rare = np.array(["common"] * 19_999 + ["rare"], dtype=object)  # rare share 5e-5 <= 1e-4
    return {
        "continuous": (rng.normal(0, 1, 5_000), rng.normal(0.3, 1.1, 4_000), NUM),
        "continuous_far_tail": (rng.normal(0, 1, 5_000), rng.normal(3.0, 1, 300), NUM),
        "few_distinct": (
            rng.integers(0, 8, 3_000).astype(float),
            rng.integers(2, 11, 2_500).astype(float),
            NUM,
        ),
        "twenty_distinct": (
            rng.integers(0, 20, 3_000).astype(float),
            rng.integers(0, 25, 1_000).astype(float),
            NUM,
        ),
        "twenty_one_distinct": (
            rng.integers(0, 21, 3_000).astype(float),
            rng.integers(0, 21, 1_000).astype(float),
            NUM,
        ),
        "nan_and_inf": (nan_inf, cur_nan, NUM),
        "categorical": (
            rng.choice(
                np.array(["a", "b", "c", "d"], dtype=object), 4_000, p=[0.5, 0.3, 0.15, 0.05]
            ),
            rng.choice(np.array(["a", "b", "c", "e"], dtype=object), 3_000, p=[0.3, 0.3, 0.3, 0.1]),
            CAT,
        ),
        "categorical_tiny_share": (
            rare,
            rng.choice(np.array(["common", "other"], dtype=object), 1_000, p=[0.9, 0.1]),
            CAT,
        ),
        "empty_bins_both_sides": (
            rng.uniform(0, 1, 2_000),
            rng.uniform(5, 6, 2_000),
            NUM,
        ),
    }


CASES = _cases()


def _kind(kind: ColumnType) -> Kind:
    return "numeric" if kind == NUM else "categorical"


@pytest.mark.parametrize("case", list(CASES))
def test_psi_equals_evidently(case: str) -> None:
    ref, cur, kind = CASES[case]
    theirs = _theirs(st_evidently.psi_stat_test, ref, cur, kind)
    assert math.isclose(evidently_psi(ref, cur, _kind(kind)), theirs, rel_tol=TOL, abs_tol=TOL)
    table = compare_columns({"f": ref}, {"f": cur}, DriftConfig(binning="evidently"))
    ours = table.column("f").metrics["psi"][0]
    assert math.isclose(ours, theirs, rel_tol=TOL, abs_tol=TOL)


def test_tiny_share_triggers_the_min_over_a_million_fill() -> None:
    ref, cur, _ = CASES["categorical_tiny_share"]
    r, _c = evidently_binned(ref, cur, "categorical")
    assert r.min() == pytest.approx(5e-5 / 1e6)


@pytest.mark.parametrize("case", list(CASES))
def test_jensenshannon_equals_evidently_in_natural_log(case: str) -> None:
    ref, cur, kind = CASES[case]
    theirs = _theirs(st_evidently.jensenshannon_stat_test, ref, cur, kind)
    assert math.isclose(
        evidently_jensenshannon(ref, cur, _kind(kind)), theirs, rel_tol=TOL, abs_tol=TOL
    )
    ours_base2 = compare_columns({"f": ref}, {"f": cur}, DriftConfig(binning="evidently"))
    assert math.isclose(
        ours_base2.column("f").metrics["jensenshannon"][0] * math.sqrt(math.log(2)),
        theirs,
        rel_tol=TOL,
        abs_tol=TOL,
    )


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][2] == NUM])
@pytest.mark.parametrize("binning", ["quantile", "evidently"])
def test_ks_and_wasserstein_equal_evidently(case: str, binning: str) -> None:
    ref, cur, _ = CASES[case]
    fd = compare_columns({"f": ref}, {"f": cur}, DriftConfig(binning=binning)).column("f")
    ks_p = _theirs(st_evidently.ks_stat_test, ref, cur, NUM)
    assert math.isclose(fd.metrics["ks"][1] or 0.0, ks_p, rel_tol=TOL, abs_tol=TOL)
    wd = _theirs(st_evidently.wasserstein_stat_test, ref, cur, NUM)
    assert math.isclose(fd.metrics["wasserstein"][0], wd, rel_tol=TOL, abs_tol=TOL)
    assert math.isclose(evidently_wasserstein(ref, cur), wd, rel_tol=TOL, abs_tol=TOL)


def test_wasserstein_constant_reference_matches_evidently_floor() -> None:
    ref, cur = np.full(500, 3.0), np.r_[np.full(400, 3.0), np.full(100, 3.002)]
    theirs = _theirs(st_evidently.wasserstein_stat_test, ref, cur, NUM)
    assert math.isclose(evidently_wasserstein(ref, cur), theirs, rel_tol=TOL)


def test_evidently_chisquare_is_goodness_of_fit_not_homogeneity() -> None:
    """Documented difference: theirs is scipy.stats.chisquare against reference
    proportions taken as exact, ours chi2_contingency on the 2 x K table."""
    rng = np.random.default_rng(3)
    ref = rng.choice(np.array(list("abc"), dtype=object), 600, p=[0.5, 0.3, 0.2])
    cur = rng.choice(np.array(list("abc"), dtype=object), 900, p=[0.45, 0.33, 0.22])
    theirs = _theirs(st_evidently.chi_stat_test, ref, cur, CAT)
    rc = np.array([(ref == k).sum() for k in "abc"], dtype=float)
    cc = np.array([(cur == k).sum() for k in "abc"], dtype=float)
    gof = scipy.stats.chisquare(cc, rc * cc.sum() / rc.sum())
    assert math.isclose(theirs, float(gof.pvalue), rel_tol=TOL)
    ours = chi2(rc, cc).pvalue
    assert ours > theirs  # homogeneity accounts for the reference's noise: less alarm-prone
    fd = compare_columns({"f": ref}, {"f": cur}, DriftConfig(binning="evidently")).column("f")
    assert math.isclose(fd.metrics["chi2"][1] or 0.0, ours, rel_tol=TOL)


@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(["normal", "integers", "strings"]),
    st.floats(0.0, 2.0),
)
@settings(max_examples=25, deadline=None)
def test_psi_equals_evidently_on_random_data(seed: int, shape: str, shift: float) -> None:
    rng = np.random.default_rng(seed)
    n_ref, n_cur = int(rng.integers(30, 800)), int(rng.integers(30, 800))
    if shape == "normal":
        ref, cur, kind = rng.normal(0, 1, n_ref), rng.normal(shift, 1, n_cur), NUM
    elif shape == "integers":
        hi = int(rng.integers(2, 40))
        ref = rng.integers(0, hi, n_ref).astype(float)
        cur = (rng.integers(0, hi, n_cur) + round(shift * 3)).astype(float)
        kind = NUM
    else:
        letters = np.array(list("abcdefg"), dtype=object)
        ref, cur, kind = (
            rng.choice(letters[:5], n_ref),
            rng.choice(letters[round(shift) :], n_cur),
            CAT,
        )
    theirs = _theirs(st_evidently.psi_stat_test, ref, cur, kind)
    assert math.isclose(evidently_psi(ref, cur, _kind(kind)), theirs, rel_tol=TOL, abs_tol=TOL)


def _report_scores(ref: pd.DataFrame, cur: pd.DataFrame, stattest: str) -> dict[str, float]:
    report = Report(
        metrics=[ColumnDriftMetric(column_name=c, stattest=stattest) for c in ref.columns]
    )
    report.run(reference_data=ref, current_data=cur)
    return {
        m["result"]["column_name"]: float(m["result"]["drift_score"])
        for m in report.as_dict()["metrics"]
    }


def test_whole_evidently_report_path_matches_compare_columns() -> None:
    """Evidently decides types and drops NaN/inf itself here: float, int with few
    values, bool and string columns, some with missing values."""
    rng = np.random.default_rng(77)
    n_ref, n_cur = 2_000, 1_500
    x_ref, x_cur = rng.normal(0, 1, n_ref), rng.normal(0.4, 1, n_cur)
    x_ref[::50] = np.nan
    x_cur[::70] = np.inf
    ref = pd.DataFrame(
        {
            "x": x_ref,
            "small_int": rng.integers(0, 4, n_ref),
            "many_int": rng.integers(0, 500, n_ref),
            "flag": rng.random(n_ref) < 0.3,
            "city": rng.choice(np.array(["Oslo", "Rome", "Lima", None], dtype=object), n_ref),
        }
    )
    cur = pd.DataFrame(
        {
            "x": x_cur,
            "small_int": rng.integers(1, 5, n_cur),
            "many_int": rng.integers(100, 700, n_cur),
            "flag": rng.random(n_cur) < 0.5,
            "city": rng.choice(np.array(["Oslo", "Rome", "Pune", None], dtype=object), n_cur),
        }
    )
    ours = compare_columns(ref, cur, DriftConfig(binning="evidently"))
    psi_scores = _report_scores(ref, cur, "psi")
    for name, score in psi_scores.items():
        assert math.isclose(ours.column(name).metrics["psi"][0], score, rel_tol=TOL, abs_tol=TOL), (
            name
        )
    js_scores = _report_scores(ref, cur, "jensenshannon")
    for name, score in js_scores.items():
        ours_js = ours.column(name).metrics["jensenshannon"][0] * math.sqrt(math.log(2))
        assert math.isclose(ours_js, score, rel_tol=TOL, abs_tol=TOL), name
