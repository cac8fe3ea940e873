"""ReferenceProfile: binning, kinds, missing values, sample, JSON (and detectors.columns)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detectors.binning import bin_counts, quantile_edges
from detectors.columns import UnsupportedColumnError, as_columns, infer_kind
from detectors.profile import (
    CategoricalProfile,
    NumericProfile,
    ProfileFormatError,
    ReferenceProfile,
)


def test_edges_are_reference_quantiles_at_i_over_bins() -> None:
    x = np.random.default_rng(0).exponential(2.0, 10_001)
    edges = quantile_edges(x, bins=10)
    assert np.array_equal(edges, np.quantile(x, np.arange(1, 10) / 10))
    profile = NumericProfile.from_values("x", x, bins=10)
    assert profile.proportions.size == 10
    assert profile.proportions == pytest.approx(np.full(10, 0.1), abs=1e-3)
    assert profile.proportions.sum() == pytest.approx(1.0)


def test_tied_quantiles_collapse_edges() -> None:
    x = np.r_[np.zeros(900), np.arange(1.0, 101.0)]  # 90 % zeros
    edges = quantile_edges(x, bins=10)
    assert edges[0] == 0.0
    assert np.all(np.diff(edges) > 0)
    assert edges.size < 9
    profile = NumericProfile.from_values("x", x)
    assert profile.proportions[0] == pytest.approx(0.9)


def test_bins_are_left_open_right_closed_with_open_outer_bins() -> None:
    edges = np.array([1.0, 2.0, 3.0])
    x = np.array([-1e300, 1.0, 1.0000001, 2.0, 3.0, 3.5, 1e300])
    # bin k holds e[k-1] < x <= e[k]
    assert bin_counts(x, edges).tolist() == [2, 2, 1, 2]


@given(
    arrays(np.float64, st.integers(1, 200), elements=st.floats(-1e3, 1e3)),
    st.integers(1, 12),
)
@settings(max_examples=60, deadline=None)
def test_profile_proportions_match_searchsorted(x: np.ndarray, bins: int) -> None:
    p = NumericProfile.from_values("x", x, bins=bins)
    idx = np.searchsorted(p.edges, x, side="left")
    assert np.allclose(p.proportions, np.bincount(idx, minlength=p.edges.size + 1) / x.size)
    assert p.edges.size <= bins - 1
    assert p.count == x.size


def test_missing_values_are_excluded_and_reported() -> None:
    x = np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 3.0, 4.0, np.nan])
    p = NumericProfile.from_values("x", x, bins=2)
    assert p.count == 4
    assert p.missing_rate == pytest.approx(4 / 8)
    assert (p.min, p.max, p.mean) == (1.0, 4.0, 2.5)
    assert p.std == pytest.approx(np.std([1.0, 2.0, 3.0, 4.0]))
    assert np.all(np.isfinite(p.sample)) and p.sample.size == 4

    c = CategoricalProfile.from_values("c", np.array(["a", None, "b", float("nan"), "a"], object))
    assert c.categories == ["a", "b"]
    assert c.count == 3
    assert c.missing_rate == pytest.approx(2 / 5)
    assert c.proportions.tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])


def test_categorical_has_an_unseen_slot_at_zero() -> None:
    c = CategoricalProfile.from_values("c", np.array(["x", "y", "y", "z"]))
    assert c.proportions.size == len(c.categories) + 1
    assert c.proportions[-1] == 0.0
    assert c.index("y") == 1
    assert c.index("never seen") == 3


def test_all_missing_column_profiles_without_crashing() -> None:
    p = NumericProfile.from_values("x", np.full(5, np.nan))
    assert p.count == 0 and p.missing_rate == 1.0
    assert np.isnan(p.mean) and p.edges.size == 0 and p.proportions.tolist() == [0.0]
    c = CategoricalProfile.from_values("c", np.array([None, None], object))
    assert c.count == 0 and c.missing_rate == 1.0 and c.categories == []


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (np.array([1, 2, 3], dtype=np.int64), "numeric"),
        (np.array([1.5, np.nan]), "numeric"),
        (np.array([1, 2], dtype=np.uint8), "numeric"),
        (np.array([True, False]), "categorical"),
        (np.array(["a", "b"]), "categorical"),
        (np.array(["a", None], dtype=object), "categorical"),
        (np.array([1.0, None, 3], dtype=object), "numeric"),
        (np.array([1, "a"], dtype=object), "categorical"),
        (np.array([True, None], dtype=object), "categorical"),
        (np.array([None, None], dtype=object), "categorical"),
    ],
)
def test_kind_inference(values: np.ndarray, kind: str) -> None:
    assert infer_kind("col", values) == kind


def test_explicit_categorical_overrides_inference() -> None:
    profile = ReferenceProfile.from_columns(
        {"zip": np.array([94110, 10001, 94110]), "n": np.array([1, 2, 3])}, categorical={"zip"}
    )
    assert isinstance(profile.features["zip"], CategoricalProfile)
    assert profile.features["zip"].categories == ["10001", "94110"]
    assert isinstance(profile.features["n"], NumericProfile)


@pytest.mark.parametrize(
    "values",
    [
        np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]"),
        np.array([1 + 2j]),
        np.array([[1.0, 2.0]]),
        np.array([[1], {"a": 1}], dtype=object),
    ],
)
def test_unsupported_columns_raise_a_specific_error(values: np.ndarray) -> None:
    with pytest.raises(UnsupportedColumnError) as info:
        ReferenceProfile.from_columns({"bad": values})
    assert info.value.column == "bad"
    assert info.value.reason


def test_sample_is_bounded_seeded_and_drawn_from_the_values() -> None:
    x = np.random.default_rng(1).normal(size=20_000)
    a = NumericProfile.from_values("x", x, sample_size=500, seed=3)
    b = NumericProfile.from_values("x", x, sample_size=500, seed=3)
    c = NumericProfile.from_values("x", x, sample_size=500, seed=4)
    assert a.sample.size == 500
    assert np.array_equal(a.sample, b.sample)
    assert not np.array_equal(a.sample, c.sample)
    assert np.isin(a.sample, x).all()
    assert np.unique(a.sample).size == 500  # without replacement
    full = NumericProfile.from_values("x", x, sample_size=None)
    assert np.array_equal(full.sample, np.sort(x))


def _profile() -> ReferenceProfile:
    rng = np.random.default_rng(2)
    return ReferenceProfile.from_columns(
        {
            "age": np.r_[rng.normal(40, 9, 999), np.nan],
            "city": np.array(["Oslo", "Rome", None, "Lima"] * 250, dtype=object),
            "empty": np.full(1000, np.nan),
            "flag": rng.random(1000) < 0.3,
        },
        sample_size=100,
        prediction=rng.random(1000),
        model_name="churn",
        model_version="7",
    )


def test_json_round_trip_is_exact() -> None:
    profile = _profile()
    text = profile.to_json()
    data = json.loads(text)
    assert data["format_version"] == 1
    assert data["model_name"] == "churn" and data["model_version"] == "7"
    assert "NaN" not in text  # strict JSON: the empty column's stats are null
    back = ReferenceProfile.from_json(text)
    assert back == profile
    assert back.to_json() == text
    assert isinstance(back.prediction, NumericProfile)
    assert np.array_equal(back.features["age"].sample, profile.features["age"].sample)  # type: ignore[union-attr]
    assert list(back.monitored()) == ["age", "city", "empty", "flag", "__prediction__"]


def test_profile_inequality_is_detected() -> None:
    a, b = _profile(), _profile()
    b.features["age"].proportions[0] += 0.01
    assert a != b


@pytest.mark.parametrize("version", [2, 0, None, "1"])
def test_unknown_format_version_is_a_clear_error(version: object) -> None:
    data = _profile().to_dict()
    data["format_version"] = version
    with pytest.raises(ProfileFormatError, match="format_version"):
        ReferenceProfile.from_json(json.dumps(data))


def test_malformed_profiles_are_rejected() -> None:
    with pytest.raises(ProfileFormatError):
        ReferenceProfile.from_json("{not json")
    data = _profile().to_dict()
    data["features"]["age"]["proportions"] = [1.0]
    with pytest.raises(ProfileFormatError, match="len"):
        ReferenceProfile.from_dict(data)


def test_prediction_name_is_reserved() -> None:
    with pytest.raises(ValueError, match="prediction="):
        ReferenceProfile.from_columns({"__prediction__": np.array([1.0])})


def test_dataframe_is_accepted_at_the_edge() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "x": [1.0, None, 3.0],
            "n": pd.array([1, None, 3], dtype="Int64"),
            "s": ["a", None, "b"],
            "b": [True, False, True],
        }
    )
    columns = as_columns(frame)
    assert columns["n"].dtype == np.float64 and np.isnan(columns["n"][1])
    assert columns["s"][1] is None
    profile = ReferenceProfile.from_columns(frame)
    assert isinstance(profile.features["x"], NumericProfile)
    assert isinstance(profile.features["n"], NumericProfile)
    assert profile.features["n"].missing_rate == pytest.approx(1 / 3)
    assert isinstance(profile.features["s"], CategoricalProfile)
    assert profile.features["b"].categories == ["False", "True"]  # type: ignore[union-attr]


def test_columns_of_different_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        as_columns({"a": [1.0, 2.0], "b": [1.0]})


def test_detectors_imports_neither_pandas_nor_streams() -> None:
    # detectors.concept is left out: river itself imports pandas.
    code = (
        "import sys, detectors.drift, detectors.accumulator, detectors.evidently;"
        "bad = [m for m in ('pandas', 'evidently', 'schemas', 'streams') if m in sys.modules];"
        "sys.exit(str(bad) if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
