"""Drift verdicts: defaults, tests, edge cases, and batch == streaming."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from detectors.accumulator import WindowAccumulator
from detectors.columns import UnsupportedColumnError
from detectors.drift import (
    DEFAULT_THRESHOLDS,
    DatasetDrift,
    DriftConfig,
    FeatureDrift,
    compare_columns,
    evaluate_window,
)
from detectors.profile import ReferenceProfile
from detectors.stats import ks

N = 4_000
CITIES = np.array(["Oslo", "Rome", "Lima", "Pune"], dtype=object)


def _table(
    seed: int, shift: float = 0.0, city_p: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(40 + 10 * shift, 10, N),
        "income": rng.lognormal(10, 0.5, N),
        "city": rng.choice(CITIES, N, p=city_p),
    }


REFERENCE = _table(0)
SAME = _table(1)
DRIFTED = _table(2, shift=1.0, city_p=(0.1, 0.2, 0.3, 0.4))


# --- configuration --------------------------------------------------------------------------


def test_config_defaults_and_validation() -> None:
    config = DriftConfig()
    assert config.test == "auto" and config.binning == "quantile" and config.bins == 10
    assert config.thresholds == DEFAULT_THRESHOLDS
    assert DEFAULT_THRESHOLDS["psi"] == 0.2 and DEFAULT_THRESHOLDS["jensenshannon"] == 0.1
    custom = DriftConfig(thresholds={"psi": 0.1})
    assert custom.thresholds["psi"] == 0.1 and custom.thresholds["ks_pvalue"] == 0.05
    for bad in (
        {"test": "anderson"},
        {"binning": "sturges"},
        {"thresholds": {"pvalue": 0.01}},
        {"drift_share": 0.0},
        {"bins": 0},
    ):
        with pytest.raises(ValueError, match=r"unknown|must be"):
            DriftConfig(**bad)


def test_each_metric_has_its_own_threshold_and_verdict() -> None:
    config = DriftConfig(thresholds={"ks_pvalue": 0.01})
    assert config.threshold_for("psi") == 0.2
    assert config.threshold_for("ks") == 0.1
    assert config.threshold_for("chi2") == 0.05  # chi2's bound is on its p-value
    assert config.threshold_for("cramers_v") == 0.1
    assert config.verdict("psi", 0.2) and not config.verdict("psi", 0.19)
    assert config.verdict("ks", 0.2, 0.001) and not config.verdict("ks", 0.2, 0.02)
    assert not config.verdict("ks", 0.05, 1e-9)
    assert config.verdict("chi2", 123.0, 0.01) and not config.verdict("chi2", 123.0, 0.2)
    assert config.verdict("cramers_v", 0.3, 0.01) and not config.verdict("cramers_v", 0.3, 0.5)
    assert not config.verdict("wasserstein", float("nan"))
    with pytest.raises(ValueError, match="unknown metric"):
        config.verdict("kl", 1.0)


def test_feature_verdict_is_the_verdict_of_its_primary_metric() -> None:
    config = DriftConfig(test="chi2")
    for result in (
        compare_columns(REFERENCE, DRIFTED, config),
        compare_columns(REFERENCE, SAME, config),
    ):
        for fd in result.columns:
            value, pvalue = fd.metrics[fd.primary_metric]
            assert (fd.statistic, fd.pvalue) == (value, pvalue)
            assert fd.drift == config.verdict(fd.primary_metric, value, pvalue)
            assert fd.threshold == config.threshold_for(fd.primary_metric)
    assert compare_columns(REFERENCE, DRIFTED, config).column("city").primary_metric == "cramers_v"


def test_auto_uses_psi_for_numeric_and_jensenshannon_for_categorical() -> None:
    config = DriftConfig()
    assert config.test_for("numeric") == ("psi", None)
    assert config.test_for("categorical") == ("jensenshannon", None)


# --- verdicts on synthetic data with known drift ----------------------------------------------


@pytest.mark.parametrize("test", ["auto", "psi", "ks", "chi2", "jensenshannon", "wasserstein"])
@pytest.mark.parametrize("binning", ["quantile", "evidently"])
def test_known_drift_is_detected_and_no_drift_is_not(test: str, binning: str) -> None:
    config = DriftConfig(test=test, binning=binning)
    same = compare_columns(REFERENCE, SAME, config)
    drifted = compare_columns(REFERENCE, DRIFTED, config)
    assert [c.drift for c in same.columns] == [False, False, False]
    assert not same.drift and same.n_drifted == 0
    assert drifted.column("age").drift
    assert drifted.column("city").drift
    assert not drifted.column("income").drift
    assert drifted.n_drifted == 2 and drifted.n_features == 3
    assert drifted.share_drifted == pytest.approx(2 / 3)
    assert drifted.drift


def test_metrics_report_every_applicable_statistic() -> None:
    result = compare_columns(REFERENCE, DRIFTED)
    age, city = result.column("age"), result.column("city")
    assert set(age.metrics) == {"psi", "ks", "jensenshannon", "wasserstein"}
    assert set(city.metrics) == {"psi", "chi2", "cramers_v", "jensenshannon"}
    assert age.kind == "numeric" and city.kind == "categorical"
    assert age.statistic == age.metrics["psi"][0] and age.pvalue is None
    assert age.metrics["ks"][1] is not None and age.metrics["ks"][1] < 1e-10
    assert age.threshold == 0.2 and city.threshold == 0.1
    assert age.n_reference == N and age.n_current == N


def test_ks_needs_an_effect_size_not_only_a_small_pvalue() -> None:
    rng = np.random.default_rng(9)
    ref = {"x": rng.normal(0, 1, 60_000)}
    cur = {"x": rng.normal(0.08, 1, 60_000)}  # tiny shift, huge sample
    fd = compare_columns(ref, cur, DriftConfig(test="ks")).column("x")
    assert fd.test == "ks" and fd.pvalue is not None and fd.pvalue < 1e-6
    assert fd.statistic < 0.1 and not fd.drift
    strict = compare_columns(ref, cur, DriftConfig(test="ks", thresholds={"ks_statistic": 0.01}))
    assert strict.column("x").drift


def test_chi2_is_judged_by_cramers_v_and_pvalue() -> None:
    fd = compare_columns(REFERENCE, DRIFTED, DriftConfig(test="chi2")).column("city")
    assert fd.test == "chi2"
    assert fd.statistic == fd.metrics["cramers_v"][0] >= 0.1
    assert fd.pvalue == fd.metrics["chi2"][1]
    assert fd.pvalue is not None and fd.pvalue < 0.05


@pytest.mark.parametrize(
    ("test", "kind_column", "used"),
    [("ks", "city", "chi2"), ("wasserstein", "city", "jensenshannon"), ("chi2", "age", "ks")],
)
def test_a_test_that_does_not_apply_falls_back_to_its_analogue(
    test: str, kind_column: str, used: str
) -> None:
    fd = compare_columns(REFERENCE, DRIFTED, DriftConfig(test=test)).column(kind_column)
    assert fd.test == used
    assert fd.note is not None and test in fd.note and used in fd.note
    assert fd.drift


def test_missing_and_out_of_range_rates() -> None:
    cur = {k: v.copy() for k, v in SAME.items()}
    cur["age"][:400] = np.nan
    cur["age"][400:600] = 1_000.0
    cur["city"][:100] = None
    cur["city"][100:300] = "Atlantis"
    result = compare_columns(REFERENCE, cur)
    age, city = result.column("age"), result.column("city")
    assert age.missing_rate == pytest.approx(400 / N)
    present = cur["age"][400:]
    outside = (present < REFERENCE["age"].min()) | (present > REFERENCE["age"].max())
    assert outside.sum() >= 200
    assert age.out_of_range_rate == pytest.approx(outside.sum() / (N - 400))
    assert city.missing_rate == pytest.approx(100 / N)
    assert city.out_of_range_rate == pytest.approx(200 / (N - 100))
    assert age.n_current == N - 400


# --- columns that cannot be compared ---------------------------------------------------------


@pytest.mark.parametrize("binning", ["quantile", "evidently"])
def test_all_missing_columns_are_reported_not_crashed_on(binning: str) -> None:
    ref = {**REFERENCE, "empty_ref": np.full(N, np.nan)}
    cur = {**SAME, "empty_ref": np.arange(N, dtype=float)}
    cur["age"] = np.full(N, np.nan)
    cur["city"] = np.full(N, None, dtype=object)
    result = compare_columns(ref, cur, DriftConfig(binning=binning))
    for name, side in (("age", "current"), ("city", "current"), ("empty_ref", "reference")):
        fd = result.column(name)
        assert fd.status == "all_missing"
        assert math.isnan(fd.statistic) and not fd.drift and fd.pvalue is None
        assert fd.note is not None and side in fd.note
    assert result.column("age").missing_rate == 1.0
    assert result.n_features == 1 and result.column("income").status == "ok"
    json.dumps(result.to_dict(), allow_nan=False)


def test_column_absent_from_current_is_all_missing() -> None:
    cur = {k: v for k, v in SAME.items() if k != "income"}
    fd = compare_columns(REFERENCE, cur).column("income")
    assert fd.status == "all_missing" and fd.missing_rate == 1.0 and not fd.drift


def test_empty_window_gives_no_dataset_drift() -> None:
    profile = ReferenceProfile.from_columns(REFERENCE)
    result = evaluate_window(profile, WindowAccumulator(profile))
    assert result.n_features == 0 and result.share_drifted == 0.0 and not result.drift
    assert all(c.status == "all_missing" for c in result.columns)


def test_unsupported_column_raises_a_specific_error() -> None:
    ref = {**REFERENCE, "when": np.arange(N).astype("datetime64[s]")}
    with pytest.raises(UnsupportedColumnError) as info:
        compare_columns(ref, SAME)
    assert info.value.column == "when"
    only = compare_columns(ref, SAME, columns=["age", "city"])
    assert [c.column for c in only.columns] == ["age", "city"]


def test_current_values_of_the_wrong_type_raise() -> None:
    cur = {**SAME, "age": np.array(["old"] * N, dtype=object)}
    with pytest.raises(UnsupportedColumnError, match="'age'"):
        compare_columns(REFERENCE, cur)


# --- batch == streaming ----------------------------------------------------------------------


def _stream(
    profile: ReferenceProfile, table: dict[str, np.ndarray], reservoir: int, batch: int
) -> WindowAccumulator:
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 2**64 - 1, N, dtype=np.uint64)
    acc = WindowAccumulator(profile, reservoir_size=reservoir)
    for lo in range(0, N, batch):
        acc.update({k: v[lo : lo + batch] for k, v in table.items()}, keys[lo : lo + batch])
    return acc


@pytest.mark.parametrize("current", [SAME, DRIFTED], ids=["same", "drifted"])
def test_streaming_window_equals_batch_compare_when_reservoirs_hold_everything(
    current: dict[str, np.ndarray],
) -> None:
    batch = compare_columns(REFERENCE, current)
    profile = ReferenceProfile.from_columns(REFERENCE, sample_size=None)
    window = evaluate_window(profile, _stream(profile, current, reservoir=N, batch=777))
    for b, w in zip(batch.columns, window.columns, strict=True):
        assert b.column == w.column
        assert b.metrics["psi"][0] == pytest.approx(w.metrics["psi"][0], rel=1e-12, abs=1e-12)
        assert b.metrics["jensenshannon"][0] == pytest.approx(
            w.metrics["jensenshannon"][0], rel=1e-12
        )
        if b.kind == "numeric":
            assert b.metrics["ks"] == pytest.approx(w.metrics["ks"], rel=1e-12)
            assert b.metrics["wasserstein"][0] == pytest.approx(
                w.metrics["wasserstein"][0], rel=1e-12
            )
        else:
            assert b.metrics["chi2"] == pytest.approx(w.metrics["chi2"], rel=1e-12)
        assert (b.drift, b.statistic) == (w.drift, pytest.approx(w.statistic, rel=1e-12))
    assert window.to_dict()["dataset"]["n_drifted"] == batch.n_drifted


def test_streaming_with_bounded_samples_is_close_to_the_full_ks() -> None:
    profile = ReferenceProfile.from_columns(REFERENCE, sample_size=2_000)
    window = evaluate_window(profile, _stream(profile, DRIFTED, reservoir=1_000, batch=500))
    full = ks(REFERENCE["age"], DRIFTED["age"]).statistic
    assert window.column("age").metrics["ks"][0] == pytest.approx(full, abs=0.06)
    assert window.column("age").metrics["psi"][0] == pytest.approx(
        compare_columns(REFERENCE, DRIFTED).column("age").metrics["psi"][0], rel=1e-12
    )


def test_evaluate_window_refuses_evidently_binning() -> None:
    profile = ReferenceProfile.from_columns(REFERENCE)
    with pytest.raises(ValueError, match="compare_columns"):
        evaluate_window(profile, WindowAccumulator(profile), DriftConfig(binning="evidently"))


# --- prediction and serialisation ------------------------------------------------------------


def test_prediction_is_reported_apart_from_the_features() -> None:
    rng = np.random.default_rng(4)
    ref = {**REFERENCE, "__prediction__": rng.random(N)}
    cur = {**SAME, "__prediction__": rng.random(N) ** 3}  # the model now predicts lower
    for binning in ("quantile", "evidently"):
        result = compare_columns(ref, cur, DriftConfig(binning=binning))
        assert result.prediction is not None and result.prediction.column == "__prediction__"
        assert result.prediction.drift
        assert [c.column for c in result.columns] == ["age", "income", "city", "__prediction__"]
        assert [c.column for c in result.features] == ["age", "income", "city"]
        assert result.n_features == 3 and result.n_drifted == 0 and not result.drift
        assert result.column("__prediction__") is result.prediction
    assert compare_columns(REFERENCE, SAME).prediction is None


def test_to_dict_is_strict_json_with_the_documented_keys() -> None:
    result = compare_columns(REFERENCE, {**DRIFTED, "age": np.full(N, np.nan)})
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert set(data) == {"dataset", "columns"}
    assert data["dataset"] == {
        "drift": True,  # 1 of 2 >= drift_share 0.5
        "share_drifted": 0.5,
        "n_drifted": 1,
        "n_features": 2,
    }
    keys = {
        "column", "test", "statistic", "pvalue", "threshold", "drift", "kind", "n_reference",
        "n_current", "missing_rate", "out_of_range_rate", "metrics", "status", "note",
    }  # fmt: skip
    assert all(set(c) == keys for c in data["columns"])
    assert data["columns"][0]["statistic"] is None  # NaN -> null
    assert data["columns"][2]["metrics"]["chi2"]["pvalue"] < 0.05
    assert isinstance(result, DatasetDrift) and isinstance(result.columns[0], FeatureDrift)


def test_dataframes_are_accepted() -> None:
    pd = pytest.importorskip("pandas")
    result = compare_columns(pd.DataFrame(REFERENCE), pd.DataFrame(DRIFTED))
    assert result.n_drifted == 2


@pytest.mark.parametrize("binning", ["quantile", "evidently"])
@pytest.mark.parametrize("test", ["auto", "psi", "ks", "chi2", "jensenshannon", "wasserstein"])
def test_metrics_test_computes_only_the_deciding_statistic_with_the_same_verdicts(
    test: str, binning: str
) -> None:
    rng = np.random.default_rng(21)
    ref = {
        "x": rng.normal(0, 1, 3_000),
        "c": rng.choice(np.array(["a", "b", "c"], dtype=object), 3_000),
    }
    cur = {
        "x": rng.normal(0.4, 1, 2_000),
        "c": rng.choice(np.array(["a", "b", "c"], dtype=object), 2_000, p=[0.6, 0.2, 0.2]),
    }
    full = compare_columns(ref, cur, DriftConfig(test=test, binning=binning))
    lean = compare_columns(ref, cur, DriftConfig(test=test, binning=binning, metrics="test"))
    for name in ("x", "c"):
        f, l_ = full.column(name), lean.column(name)
        assert (l_.test, l_.statistic, l_.pvalue, l_.drift) == (
            f.test,
            f.statistic,
            f.pvalue,
            f.drift,
        )
        assert set(l_.metrics) < set(f.metrics)
        assert l_.primary_metric in l_.metrics
    assert lean.drift == full.drift


def test_metrics_option_is_validated() -> None:
    with pytest.raises(ValueError, match="metrics must be 'all' or 'test'"):
        DriftConfig(metrics="some")


def test_ks_method_asymp_gives_scipys_asymptotic_pvalue_in_windows() -> None:
    import scipy.stats

    profile = ReferenceProfile.from_columns(REFERENCE, sample_size=2_000)
    acc = _stream(profile, DRIFTED, reservoir=1_000, batch=500)
    auto = evaluate_window(profile, acc)
    asymp = evaluate_window(profile, acc, DriftConfig(ks_method="asymp"))
    ref_sample = profile.features["age"].sample
    cur_sample = acc.sample("age")
    expected = scipy.stats.ks_2samp(ref_sample, cur_sample, method="asymp")
    exact = scipy.stats.ks_2samp(ref_sample, cur_sample)
    d, p = asymp.column("age").metrics["ks"]
    assert d == pytest.approx(float(expected.statistic), rel=1e-12, abs=1e-12)
    assert p == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-300)
    assert auto.column("age").metrics["ks"][1] == pytest.approx(float(exact.pvalue), rel=1e-9)
    # the verdicts rest on PSI (numeric) / Jensen-Shannon: the p-value method leaves them
    assert [c.drift for c in asymp.columns] == [c.drift for c in auto.columns]
    with pytest.raises(ValueError, match="unknown ks_method"):
        DriftConfig(ks_method="exact")
