"""Drift verdicts per feature and per dataset: the one place tests and thresholds are decided.

Both the batch CLI (``driftline drift compare`` → :func:`compare_columns`) and
the streaming window processor (:func:`evaluate_window` on window close) go
through the code here, so a column gets the same verdict either way.

Every applicable statistic is computed and reported in
:attr:`FeatureDrift.metrics` — numeric: ``psi``, ``ks``, ``jensenshannon``,
``wasserstein``; categorical: ``psi``, ``chi2``, ``cramers_v``,
``jensenshannon`` — and the configured test alone decides ``drift``.

Default tests and thresholds
----------------------------
``test="auto"`` uses **PSI >= 0.2 on reference-quantile bins for numeric
columns** and **Jensen-Shannon distance (base 2) >= 0.1 over the reference
categories plus an "unseen" bucket for categorical columns**. Both are
effect sizes: they measure how much the distribution moved, not how sure we
are that it moved, so a threshold means the same thing for a window of 500
events and one of 5 million — which is what a streaming monitor with windows
of varying traffic needs; p-value tests (KS, chi-square) flag harmless shifts
as soon as the window is large (a 0.1 standard deviation shift at n = 100 000
has a KS p-value below 1e-50 but a PSI of 0.01). Both are computed from O(bins)
counts, so they stream, merge across workers and cost nothing at window close.
PSI >= 0.2 is the long-standing "significant shift" convention of credit-risk
model monitoring (< 0.1 stable, 0.1-0.2 moderate). For categories we prefer
Jensen-Shannon to PSI because PSI needs an arbitrary epsilon for categories
that are empty on one side — exactly the new, unseen categories a monitor
must cope with — and its value then depends on that epsilon, while the
Jensen-Shannon distance is bounded (0..1), symmetric and defined for empty
categories; 0.1 is Evidently's default threshold for it (Evidently uses the
natural log, so our base-2 value is 1.2 times theirs and slightly more
sensitive). When a p-value test is chosen explicitly it must also pass an
effect-size floor: ``ks`` flags drift when ``p < 0.05`` **and** ``D >= 0.1``;
``chi2`` when ``p < 0.05`` **and** Cramér's V >= 0.1 (a "small" effect).
``wasserstein`` (normed by the reference std, Evidently's definition) flags
at >= 0.1 standard deviations. A dataset drifts when at least ``drift_share``
(0.5) of its evaluable features drift (Evidently's rule).

A test that does not apply to a column's kind falls back to its analogue
rather than failing, so one ``--test`` works on mixed tables: ``ks`` on a
categorical column runs ``chi2``; ``chi2`` on a numeric column runs ``ks``;
``wasserstein`` on a categorical column runs ``jensenshannon``. The test
actually used is in :attr:`FeatureDrift.test` and the substitution in
:attr:`FeatureDrift.note`.

A column with no non-missing value on either side cannot be compared: it is
reported with ``status="all_missing"``, ``statistic`` NaN, ``drift=False``
and left out of the dataset share.

Examples
--------
>>> import numpy as np
>>> from detectors.drift import DriftConfig, compare_columns
>>> rng = np.random.default_rng(7)
>>> reference = {"age": rng.normal(40, 10, 5_000), "plan": rng.choice(["free", "pro"], 5_000)}
>>> current = {"age": rng.normal(48, 10, 5_000), "plan": rng.choice(["free", "pro"], 5_000)}
>>> result = compare_columns(reference, current, DriftConfig())
>>> [(c.column, c.test, round(c.statistic, 3), c.drift) for c in result.columns]
[('age', 'psi', 0.641, True), ('plan', 'jensenshannon', 0.002, False)]
>>> result.drift, result.share_drifted
(True, 0.5)

"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.accumulator import WindowAccumulator
from detectors.columns import (
    PREDICTION_FEATURE,
    Kind,
    as_columns,
    category_counts,
    infer_kind,
    numeric_values,
)
from detectors.evidently import evidently_binned, fill_empty_bins
from detectors.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from detectors.stats import (
    KS_METHODS,
    chi2,
    cramers_v,
    jensenshannon,
    ks,
    ks_and_wasserstein,
    psi,
    wasserstein,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "PRIMARY_METRIC",
    "DatasetDrift",
    "DriftConfig",
    "FeatureDrift",
    "compare_columns",
    "evaluate_window",
]

TESTS = ("auto", "psi", "ks", "chi2", "jensenshannon", "wasserstein")
BINNINGS = ("quantile", "evidently")

DEFAULT_THRESHOLDS: dict[str, float] = {
    "psi": 0.2,
    "ks_statistic": 0.1,
    "ks_pvalue": 0.05,
    "cramers_v": 0.1,
    "chi2_pvalue": 0.05,
    "jensenshannon": 0.1,
    "wasserstein": 0.1,
}

_AUTO: dict[str, str] = {"numeric": "psi", "categorical": "jensenshannon"}
_APPLIES: dict[str, tuple[str, ...]] = {
    "numeric": ("psi", "ks", "jensenshannon", "wasserstein"),
    "categorical": ("psi", "chi2", "jensenshannon"),
}
_FALLBACK: dict[tuple[str, str], str] = {
    ("ks", "categorical"): "chi2",
    ("wasserstein", "categorical"): "jensenshannon",
    ("chi2", "numeric"): "ks",
}
# Per metric: the threshold its value must reach, and the p-value bound it must beat (if any).
_METRIC_RULE: dict[str, tuple[str | None, str | None]] = {
    "psi": ("psi", None),
    "ks": ("ks_statistic", "ks_pvalue"),
    "chi2": (None, "chi2_pvalue"),  # significance only; its effect size is cramers_v
    "cramers_v": ("cramers_v", "chi2_pvalue"),
    "jensenshannon": ("jensenshannon", None),
    "wasserstein": ("wasserstein", None),
}
# The metric that decides a test's verdict (chi2 is judged by its effect size).
PRIMARY_METRIC: dict[str, str] = {
    "psi": "psi",
    "ks": "ks",
    "chi2": "cramers_v",
    "jensenshannon": "jensenshannon",
    "wasserstein": "wasserstein",
}

Metrics = dict[str, tuple[float, float | None]]


@dataclass(frozen=True)
class DriftConfig:
    """Which test decides drift, how numeric columns are binned, and the thresholds.

    Parameters
    ----------
    test
        ``"auto"`` (PSI for numeric, Jensen-Shannon for categorical columns),
        ``"psi"``, ``"ks"``, ``"chi2"``, ``"jensenshannon"`` or
        ``"wasserstein"``. See the module docstring for the fall-backs when a
        test does not apply to a column's kind.
    binning
        ``"quantile"`` — bins from reference quantiles, streamable (the only
        choice for :func:`evaluate_window`); ``"evidently"`` — Evidently 0.7's
        binning (Sturges over reference + current), to reproduce its PSI in
        :func:`compare_columns`.
    bins
        Quantile bins per numeric column when :func:`compare_columns` builds
        the profile (a stored profile keeps the bins it was built with).
    thresholds
        Overrides of :data:`DEFAULT_THRESHOLDS`; keys ``psi``,
        ``ks_statistic``, ``ks_pvalue``, ``cramers_v``, ``chi2_pvalue``,
        ``jensenshannon``, ``wasserstein``. After construction it holds the
        full, merged mapping.
    drift_share
        The dataset drifts when at least this share of evaluable features drift.
    metrics
        ``"all"`` (default): every statistic that applies to a column is
        computed and reported in :attr:`FeatureDrift.metrics`; ``"test"``: only
        the statistic(s) the verdict needs — one test per column, as Evidently
        computes it. The verdicts are the same either way.
    ks_method
        The KS p-value: ``"auto"`` (scipy's default: exact up to 10 000 values per
        side) or ``"asymp"`` (Smirnov's asymptotic distribution; see
        :func:`detectors.stats.ks`).

    """

    test: str = "auto"
    binning: str = "quantile"
    bins: int = 10
    thresholds: Mapping[str, float] = field(default_factory=dict)
    drift_share: float = 0.5
    metrics: str = "all"
    ks_method: str = "auto"

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise ValueError(f"unknown test {self.test!r}; choose one of {', '.join(TESTS)}")
        if self.binning not in BINNINGS:
            raise ValueError(
                f"unknown binning {self.binning!r}; choose one of {', '.join(BINNINGS)}"
            )
        if self.metrics not in ("all", "test"):
            raise ValueError(f"metrics must be 'all' or 'test', got {self.metrics!r}")
        if self.ks_method not in KS_METHODS:
            raise ValueError(
                f"unknown ks_method {self.ks_method!r}; choose one of {', '.join(KS_METHODS)}"
            )
        if self.bins < 1:
            raise ValueError(f"bins must be >= 1, got {self.bins}")
        if not 0.0 < self.drift_share <= 1.0:
            raise ValueError(f"drift_share must be in (0, 1], got {self.drift_share}")
        unknown = set(self.thresholds) - set(DEFAULT_THRESHOLDS)
        if unknown:
            raise ValueError(
                f"unknown threshold(s) {sorted(unknown)}; known: {', '.join(DEFAULT_THRESHOLDS)}"
            )
        merged = {**DEFAULT_THRESHOLDS, **{k: float(v) for k, v in self.thresholds.items()}}
        object.__setattr__(self, "thresholds", merged)

    def threshold_for(self, metric: str) -> float:
        """The threshold reported with a metric of :attr:`FeatureDrift.metrics`.

        The bound on the value (``psi``, ``ks`` — on ``D`` —, ``cramers_v``,
        ``jensenshannon``, ``wasserstein``); for ``chi2``, whose statistic has
        no fixed scale, the bound on its p-value.
        """
        value_key, p_key = _rule(metric)
        key = value_key or p_key
        assert key is not None
        return self.thresholds[key]

    def verdict(self, metric: str, value: float, pvalue: float | None = None) -> bool:
        """Whether one metric of :attr:`FeatureDrift.metrics`, on its own, says drift.

        ``value >= threshold`` and, for ``ks``, ``chi2`` and ``cramers_v``,
        ``pvalue <`` its bound (``ks_pvalue`` / ``chi2_pvalue``). The column's
        own verdict is that of its test's primary metric (:data:`PRIMARY_METRIC`).
        NaN never drifts.
        """
        value_key, p_key = _rule(metric)
        if value_key is not None and not value >= self.thresholds[value_key]:
            return False
        if p_key is not None:
            return pvalue is not None and pvalue < self.thresholds[p_key]
        return True

    def test_for(self, kind: Kind) -> tuple[str, str | None]:
        """The test used for a column of this kind, and a note if it is a fall-back."""
        if self.test == "auto":
            return _AUTO[kind], None
        if self.test in _APPLIES[kind]:
            return self.test, None
        used = _FALLBACK[(self.test, kind)]
        return used, f"{self.test} does not apply to {kind} columns: used {used}"


def _rule(metric: str) -> tuple[str | None, str | None]:
    try:
        return _METRIC_RULE[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(_METRIC_RULE)}") from None


def _json_number(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass
class FeatureDrift:
    """Drift verdict for one column.

    Attributes
    ----------
    column
        Column name (``"__prediction__"`` for the model output).
    test
        The test that decided ``drift`` (after any fall-back).
    statistic
        The value compared to ``threshold``: PSI, KS ``D``, Cramér's V (for
        ``chi2``), Jensen-Shannon distance or normed Wasserstein — the value
        of ``metrics[primary_metric]``. NaN when the column could not be compared.
    pvalue
        For ``ks`` and ``chi2``, the p-value (drift also needs it below the
        ``ks_pvalue`` / ``chi2_pvalue`` threshold); None for the others.
    threshold
        ``drift`` is ``statistic >= threshold`` (and the p-value condition),
        i.e. ``config.verdict(primary_metric, statistic, pvalue)``.
    drift
        The verdict.
    kind
        ``"numeric"`` or ``"categorical"``.
    n_reference, n_current
        Non-missing values on each side.
    missing_rate
        Share of current rows where the column was missing.
    out_of_range_rate
        Share of present current values outside the reference [min, max]
        (numeric) or in categories the reference never had (categorical).
    metrics
        Every statistic computed for the column: name -> (value, p-value or
        None). ``cramers_v`` carries the chi-square p-value. Each can be judged
        on its own with :meth:`DriftConfig.verdict`. Empty when not compared.
    status
        ``"ok"``, or ``"all_missing"`` when a side has no non-missing value.
    note
        Why the column was not compared, or which test was substituted.

    """

    column: str
    test: str
    statistic: float
    pvalue: float | None
    threshold: float
    drift: bool
    kind: str
    n_reference: int
    n_current: int
    missing_rate: float
    out_of_range_rate: float
    metrics: Metrics = field(default_factory=dict)
    status: str = "ok"
    note: str | None = None

    @property
    def primary_metric(self) -> str:
        """The key of :attr:`metrics` whose value is :attr:`statistic` (``cramers_v`` for chi2)."""
        return PRIMARY_METRIC[self.test]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; NaN and infinities become ``None``; metrics become
        ``{name: {"value": v, "pvalue": p}}``."""
        return {
            "column": self.column,
            "test": self.test,
            "statistic": _json_number(self.statistic),
            "pvalue": _json_number(self.pvalue),
            "threshold": self.threshold,
            "drift": self.drift,
            "kind": self.kind,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "missing_rate": _json_number(self.missing_rate),
            "out_of_range_rate": _json_number(self.out_of_range_rate),
            "metrics": {
                name: {"value": _json_number(v), "pvalue": _json_number(p)}
                for name, (v, p) in self.metrics.items()
            },
            "status": self.status,
            "note": self.note,
        }


@dataclass
class DatasetDrift:
    """Drift verdict for a table (or a window) of features.

    Attributes
    ----------
    drift
        ``share_drifted >= drift_share`` (False when no feature could be compared).
    share_drifted
        ``n_drifted / n_features`` (0 when ``n_features == 0``).
    n_drifted
        Features whose verdict is drift.
    n_features
        Features that could be compared (status ``"ok"``). The model output
        is not a feature: it does not count here.
    columns
        One :class:`FeatureDrift` per monitored column, in profile order,
        including the ones that could not be compared, and last the model
        output (``column == "__prediction__"``) if it was profiled.

    """

    drift: bool
    share_drifted: float
    n_drifted: int
    n_features: int
    columns: list[FeatureDrift]

    @property
    def prediction(self) -> FeatureDrift | None:
        """The model output's verdict, if the profile has one."""
        return next((c for c in self.columns if c.column == PREDICTION_FEATURE), None)

    @property
    def features(self) -> list[FeatureDrift]:
        """The verdicts of the features, without the model output."""
        return [c for c in self.columns if c.column != PREDICTION_FEATURE]

    def column(self, name: str) -> FeatureDrift:
        """The verdict of one column (the model output too, as ``"__prediction__"``)."""
        for fd in self.columns:
            if fd.column == name:
                return fd
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict ``{"dataset": {drift, share_drifted, n_drifted, n_features},
        "columns": [FeatureDrift.to_dict(), ...]}``."""
        return {
            "dataset": {
                "drift": self.drift,
                "share_drifted": self.share_drifted,
                "n_drifted": self.n_drifted,
                "n_features": self.n_features,
            },
            "columns": [c.to_dict() for c in self.columns],
        }


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _verdict(
    column: str,
    kind: Kind,
    config: DriftConfig,
    metrics: Metrics,
    *,
    n_reference: int,
    n_current: int,
    n_missing: int,
    n_out_of_range: int,
) -> FeatureDrift:
    test, note = config.test_for(kind)
    primary = PRIMARY_METRIC[test]
    threshold = config.threshold_for(primary)
    n_rows = n_current + n_missing
    common: dict[str, Any] = {
        "column": column,
        "test": test,
        "threshold": threshold,
        "kind": kind,
        "n_reference": n_reference,
        "n_current": n_current,
        # No row at all is "nothing usable": fully missing, like an all-None column.
        "missing_rate": n_missing / n_rows if n_rows else 1.0,
        "out_of_range_rate": _rate(n_out_of_range, n_current),
    }
    if n_reference == 0 or n_current == 0:
        side = "reference" if n_reference == 0 else "current"
        reason = f"no non-missing value in the {side} data"
        return FeatureDrift(
            statistic=math.nan,
            pvalue=None,
            drift=False,
            metrics={},
            status="all_missing",
            note=reason if note is None else f"{reason}; {note}",
            **common,
        )
    statistic, pvalue = metrics[primary]
    return FeatureDrift(
        statistic=statistic,
        pvalue=pvalue,
        drift=config.verdict(primary, statistic, pvalue),
        metrics=metrics,
        note=note,
        **common,
    )


def _numeric_metrics(
    ref_props: np.ndarray,
    cur_props: np.ndarray,
    ref_sample: np.ndarray,
    cur_sample: np.ndarray,
    ref_std: float,
    psi_value: float | None = None,
    only: str | None = None,
    ks_method: str = "auto",
) -> Metrics:
    """Every numeric statistic, or with ``only`` just that one."""
    out: Metrics = {}
    if only in (None, "psi"):
        out["psi"] = (psi(ref_props, cur_props) if psi_value is None else psi_value, None)
    if only is None:
        ks_result, wasserstein_value = ks_and_wasserstein(
            ref_sample, cur_sample, ref_std, method=ks_method
        )
        out["ks"] = (ks_result.statistic, ks_result.pvalue)
    elif only == "ks":
        ks_result = ks(ref_sample, cur_sample, method=ks_method)
        out["ks"] = (ks_result.statistic, ks_result.pvalue)
    if only in (None, "jensenshannon"):
        out["jensenshannon"] = (jensenshannon(ref_props, cur_props), None)
    if only is None:
        out["wasserstein"] = (wasserstein_value, None)
    elif only == "wasserstein":
        out["wasserstein"] = (wasserstein(ref_sample, cur_sample, ref_std), None)
    return out


def _categorical_metrics(
    ref_counts: np.ndarray,
    cur_counts: np.ndarray,
    psi_value: float | None = None,
    only: str | None = None,
) -> Metrics:
    """Every categorical statistic, or with ``only`` just that test's."""
    n_ref, n_cur = float(ref_counts.sum()), float(cur_counts.sum())
    ref_props, cur_props = ref_counts / n_ref, cur_counts / n_cur
    out: Metrics = {}
    if only in (None, "psi"):
        out["psi"] = (psi(ref_props, cur_props) if psi_value is None else psi_value, None)
    if only in (None, "chi2"):
        chi2_result = chi2(ref_counts, cur_counts)
        out["chi2"] = (chi2_result.statistic, chi2_result.pvalue)
        out["cramers_v"] = (cramers_v(chi2_result, n_ref + n_cur), chi2_result.pvalue)
    if only in (None, "jensenshannon"):
        out["jensenshannon"] = (jensenshannon(ref_props, cur_props), None)
    return out


def _only(config: DriftConfig, kind: Kind) -> str | None:
    """The one test to compute when ``config.metrics == "test"``, else None (all)."""
    return config.test_for(kind)[0] if config.metrics == "test" else None


def _window_feature(
    name: str,
    fp: NumericProfile | CategoricalProfile,
    acc: WindowAccumulator,
    config: DriftConfig,
) -> FeatureDrift:
    counts = acc.counts(name)
    n_cur = int(counts.sum())
    comparable = fp.count > 0 and n_cur > 0
    metrics: Metrics = {}
    if isinstance(fp, NumericProfile):
        if comparable:
            metrics = _numeric_metrics(
                fp.proportions,
                counts / n_cur,
                fp.sample,
                acc.sample(name),
                fp.std,
                only=_only(config, "numeric"),
                ks_method=config.ks_method,
            )
        kind: Kind = "numeric"
    else:
        if comparable:
            # Reference counts are proportions x count, integers up to rounding.
            metrics = _categorical_metrics(
                np.rint(fp.proportions * fp.count), counts, only=_only(config, "categorical")
            )
        kind = "categorical"
    return _verdict(
        name,
        kind,
        config,
        metrics,
        n_reference=fp.count,
        n_current=n_cur,
        n_missing=acc.missing(name),
        n_out_of_range=acc.out_of_range(name),
    )


def _dataset(results: list[FeatureDrift], config: DriftConfig) -> DatasetDrift:
    # the model output goes last, whatever the input order
    columns = [r for r in results if r.column != PREDICTION_FEATURE]
    columns += [r for r in results if r.column == PREDICTION_FEATURE]
    evaluable = [r for r in columns if r.status == "ok" and r.column != PREDICTION_FEATURE]
    n_drifted = sum(r.drift for r in evaluable)
    share = n_drifted / len(evaluable) if evaluable else 0.0
    return DatasetDrift(
        drift=bool(evaluable) and share >= config.drift_share,
        share_drifted=share,
        n_drifted=n_drifted,
        n_features=len(evaluable),
        columns=columns,
    )


def evaluate_window(
    profile: ReferenceProfile, acc: WindowAccumulator, config: DriftConfig | None = None
) -> DatasetDrift:
    """Drift of one closed window against the reference profile (streaming).

    PSI, Jensen-Shannon and chi-square come from the window's bin/category
    counts against the profile's proportions; KS and Wasserstein from the
    window's bottom-k sample against the profile's reference sample.

    Parameters
    ----------
    profile
        The model version's reference profile.
    acc
        The window's accumulator, built on ``profile``.
    config
        Test and thresholds; ``binning`` must be ``"quantile"`` (Evidently's
        binning needs the raw current data: use :func:`compare_columns`).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.profile import ReferenceProfile
    >>> from detectors.accumulator import WindowAccumulator
    >>> from detectors.drift import evaluate_window
    >>> rng = np.random.default_rng(3)
    >>> profile = ReferenceProfile.from_columns({"x": rng.normal(size=10_000)})
    >>> acc = WindowAccumulator(profile)
    >>> acc.update({"x": rng.normal(1.0, 1.0, 4_000)}, keys=rng.integers(0, 2**63, 4_000).astype(np.uint64))
    >>> window = evaluate_window(profile, acc)
    >>> window.drift, window.column("x").test, window.column("x").statistic > 0.2
    (True, 'psi', True)

    """
    config = config or DriftConfig()
    if config.binning != "quantile":
        raise ValueError(
            f"evaluate_window needs binning='quantile' (got {config.binning!r}): Evidently's "
            "binning depends on the whole current data; use compare_columns for it"
        )
    results = [_window_feature(n, fp, acc, config) for n, fp in profile.monitored().items()]
    return _dataset(results, config)


def _select(
    table: dict[str, np.ndarray], columns: Collection[str] | None, side: str
) -> dict[str, np.ndarray]:
    if columns is None:
        return table
    missing = [c for c in columns if c not in table and side == "reference"]
    if missing:
        raise KeyError(f"columns not in the reference data: {missing}")
    return {c: table[c] for c in columns if c in table}


def compare_columns(
    reference: Any,
    current: Any,
    config: DriftConfig | None = None,
    *,
    categorical: Collection[str] | None = None,
    columns: Collection[str] | None = None,
) -> DatasetDrift:
    """Drift of a current table against a reference table (batch).

    Parameters
    ----------
    reference, current
        ``dict`` of column name to 1-D array, or pandas ``DataFrame``. The
        columns of ``reference`` are evaluated; a column absent from
        ``current`` is reported as all missing; extra current columns are
        ignored. A column named ``"__prediction__"`` is the model output:
        reported last in :attr:`DatasetDrift.columns` (and as
        :attr:`DatasetDrift.prediction`) but not counted as a feature.
    config
        Test, binning and thresholds (default :class:`DriftConfig`).
        ``binning="quantile"`` builds a :class:`ReferenceProfile` of the
        reference (keeping every value as its sample) and an accumulator of
        the current data holding every value, then calls
        :func:`evaluate_window`: the batch and streaming verdicts are the same
        computation. ``binning="evidently"`` bins as Evidently 0.7 does (see
        :mod:`detectors.evidently`) for PSI and Jensen-Shannon.
    categorical
        Column names to treat as categorical whatever their dtype.
    columns
        Evaluate only these columns (default: every reference column).

    Raises
    ------
    UnsupportedColumnError
        For a column that is neither numeric nor categorical, or whose
        current values do not fit its reference kind.

    """
    config = config or DriftConfig()
    ref = _select(as_columns(reference), columns, "reference")
    cur = _select(as_columns(current), columns, "current")
    if config.binning == "evidently":
        results = [
            _evidently_feature(name, values, cur.get(name), categorical, config)
            for name, values in ref.items()
        ]
        return _dataset(results, config)
    ref_prediction = ref.pop(PREDICTION_FEATURE, None)
    profile = ReferenceProfile.from_columns(
        ref,
        bins=config.bins,
        sample_size=None,
        categorical=categorical,
        prediction=ref_prediction,
    )
    n_cur = len(next(iter(cur.values()))) if cur else 0
    acc = WindowAccumulator(profile, reservoir_size=max(n_cur, 1))
    acc.update(cur, keys=np.arange(n_cur, dtype=np.uint64))
    return evaluate_window(profile, acc, config)


def _evidently_feature(
    name: str,
    reference: np.ndarray,
    current: np.ndarray | None,
    categorical: Collection[str] | None,
    config: DriftConfig,
) -> FeatureDrift:
    kind = infer_kind(name, reference, categorical)
    if current is None:
        current = np.full(0, None, dtype=object)
    metrics: Metrics = {}
    if kind == "numeric":
        ref_x, _ = numeric_values(name, reference)
        cur_x, n_missing = numeric_values(name, current)
        n_ref, n_cur = ref_x.size, cur_x.size
        n_oor = (
            int(np.count_nonzero((cur_x < ref_x.min()) | (cur_x > ref_x.max()))) if n_ref else n_cur
        )
        if n_ref and n_cur:
            r, c = evidently_binned(ref_x, cur_x, "numeric", fill_zeros=False, column=name)
            psi_value = psi(fill_empty_bins(r), fill_empty_bins(c), eps=0.0)
            metrics = _numeric_metrics(
                r,
                c,
                ref_x,
                cur_x,
                float(np.std(ref_x)),
                psi_value,
                only=_only(config, "numeric"),
                ks_method=config.ks_method,
            )
    else:
        ref_counts, _ = category_counts(name, reference)
        cur_counts, n_missing = category_counts(name, current)
        n_ref, n_cur = sum(ref_counts.values()), sum(cur_counts.values())
        n_oor = sum(n for k, n in cur_counts.items() if k not in ref_counts)
        if n_ref and n_cur:
            keys = list(ref_counts) + [k for k in cur_counts if k not in ref_counts]
            rc = np.array([ref_counts.get(k, 0) for k in keys], dtype=np.float64)
            cc = np.array([cur_counts.get(k, 0) for k in keys], dtype=np.float64)
            # Evidently's bins for a categorical column are exactly these categories.
            psi_value = psi(fill_empty_bins(rc / n_ref), fill_empty_bins(cc / n_cur), eps=0.0)
            metrics = _categorical_metrics(rc, cc, psi_value, only=_only(config, "categorical"))
    return _verdict(
        name,
        kind,
        config,
        metrics,
        n_reference=n_ref,
        n_current=n_cur,
        n_missing=n_missing,
        n_out_of_range=n_oor,
    )
