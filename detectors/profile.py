"""Reference profiles: what "normal" looks like for one model version.

A :class:`ReferenceProfile` is fitted once, on the training (reference) data,
when a model version is registered, and stored with the model. Every window of
production traffic is then compared against it, so it holds exactly what the
drift statistics of :mod:`detectors.stats` need, in O(bins + sample) space:

* per numeric feature (:class:`NumericProfile`): quantile bin edges and the
  reference proportion per bin (see :mod:`detectors.binning`), a bounded,
  seeded uniform sample of the values (for KS and Wasserstein), count,
  missing rate, min, max, mean and population standard deviation;
* per categorical feature (:class:`CategoricalProfile`): the categories and
  their proportions, plus a last "unseen" slot that is 0 in the reference and
  collects categories that only appear in production;
* optionally the same for the model output (``prediction``).

Missing values (``None``, NaN, ±inf) are excluded from every statistic and
reported as ``missing_rate``; the rules for kinds and missing values are in
:mod:`detectors.columns`.

Examples
--------
>>> import numpy as np
>>> from detectors.profile import ReferenceProfile
>>> rng = np.random.default_rng(0)
>>> profile = ReferenceProfile.from_columns(
...     {"age": rng.normal(40, 10, 1_000), "plan": rng.choice(["free", "pro"], 1_000)},
...     bins=4,
...     model_name="churn",
...     model_version="3",
... )
>>> age = profile.features["age"]
>>> len(age.edges), age.proportions.round(2).tolist(), age.count
(3, [0.25, 0.25, 0.25, 0.25], 1000)
>>> profile.features["plan"].categories
['free', 'pro']
>>> ReferenceProfile.from_json(profile.to_json()) == profile
True

"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from detectors.binning import bin_counts, quantile_edges
from detectors.columns import (
    PREDICTION_FEATURE,
    as_columns,
    category_counts,
    infer_kind,
    numeric_values,
)

__all__ = [
    "FORMAT_VERSION",
    "CategoricalProfile",
    "FeatureProfile",
    "NumericProfile",
    "ProfileFormatError",
    "ReferenceProfile",
]

FORMAT_VERSION = 1


class ProfileFormatError(ValueError):
    """A serialised profile cannot be read (unknown ``format_version``, bad shape)."""


def _arrays_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


def _same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _missing_rate(n_missing: int, n_total: int) -> float:
    # A column with no rows at all has no usable value: report it as fully missing.
    return n_missing / n_total if n_total else 1.0


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _from_json_float(x: float | None) -> float:
    return float("nan") if x is None else float(x)


@dataclass(eq=False)
class NumericProfile:
    """Reference distribution of one numeric feature.

    Attributes
    ----------
    edges
        Inner quantile bin edges (see :mod:`detectors.binning`); there are
        ``len(edges) + 1`` bins.
    proportions
        Share of the reference values per bin; sums to 1 (all 0 when ``count == 0``).
    sample
        Uniform sample without replacement of the finite reference values, at
        most ``sample_size`` of them (all of them when ``sample_size`` is None).
    count
        Number of finite reference values.
    missing_rate
        Share of reference rows that were missing.
    min, max, mean, std
        Of the finite values; ``std`` is the population form (``ddof=0``).
        NaN when ``count == 0``.

    """

    kind: ClassVar[str] = "numeric"

    edges: np.ndarray
    proportions: np.ndarray
    sample: np.ndarray
    count: int
    missing_rate: float
    min: float
    max: float
    mean: float
    std: float

    @classmethod
    def from_values(
        cls,
        name: str,
        values: np.ndarray,
        bins: int = 10,
        sample_size: int | None = 5_000,
        seed: int = 0,
    ) -> NumericProfile:
        """Fit the profile of one column (missing values allowed)."""
        if sample_size is not None and sample_size < 1:
            raise ValueError(f"sample_size must be >= 1 or None, got {sample_size}")
        x, n_missing = numeric_values(name, values)
        edges = quantile_edges(x, bins)
        counts = bin_counts(x, edges)
        n = int(x.size)
        if sample_size is None or n <= sample_size:
            sample = np.sort(x)
        else:
            rng = np.random.default_rng(seed)
            sample = np.sort(x[rng.choice(n, size=sample_size, replace=False)])
        nan = float("nan")
        return cls(
            edges=edges,
            proportions=counts / n if n else np.zeros(counts.size),
            sample=sample,
            count=n,
            missing_rate=_missing_rate(n_missing, n + n_missing),
            min=float(x.min()) if n else nan,
            max=float(x.max()) if n else nan,
            mean=float(x.mean()) if n else nan,
            std=float(x.std()) if n else nan,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericProfile):
            return NotImplemented
        return (
            _arrays_equal(self.edges, other.edges)
            and _arrays_equal(self.proportions, other.proportions)
            and _arrays_equal(self.sample, other.sample)
            and self.count == other.count
            and all(
                _same_float(getattr(self, a), getattr(other, a))
                for a in ("missing_rate", "min", "max", "mean", "std")
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; non-finite numbers become ``None``."""
        return {
            "kind": self.kind,
            "edges": self.edges.tolist(),
            "proportions": self.proportions.tolist(),
            "sample": self.sample.tolist(),
            "count": self.count,
            "missing_rate": self.missing_rate,
            "min": _json_float(self.min),
            "max": _json_float(self.max),
            "mean": _json_float(self.mean),
            "std": _json_float(self.std),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NumericProfile:
        """Inverse of :meth:`to_dict`."""
        profile = cls(
            edges=np.asarray(data["edges"], dtype=np.float64),
            proportions=np.asarray(data["proportions"], dtype=np.float64),
            sample=np.asarray(data["sample"], dtype=np.float64),
            count=int(data["count"]),
            missing_rate=float(data["missing_rate"]),
            min=_from_json_float(data["min"]),
            max=_from_json_float(data["max"]),
            mean=_from_json_float(data["mean"]),
            std=_from_json_float(data["std"]),
        )
        if profile.proportions.size != profile.edges.size + 1:
            raise ProfileFormatError("numeric profile needs len(proportions) == len(edges) + 1")
        return profile


@dataclass(eq=False)
class CategoricalProfile:
    """Reference distribution of one categorical feature.

    Attributes
    ----------
    categories
        Categories seen in the reference, as text
        (:func:`~detectors.columns.category_key`), sorted.
    proportions
        Share per category, plus a last slot for categories unseen in the
        reference (always 0 here); length ``len(categories) + 1``.
    count
        Number of non-missing reference values.
    missing_rate
        Share of reference rows that were missing.

    """

    kind: ClassVar[str] = "categorical"

    categories: list[str]
    proportions: np.ndarray
    count: int
    missing_rate: float
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {c: i for i, c in enumerate(self.categories)}

    @classmethod
    def from_values(cls, name: str, values: np.ndarray) -> CategoricalProfile:
        """Fit the profile of one column (missing values allowed)."""
        counts, n_missing = category_counts(name, values)
        categories = sorted(counts)
        n = sum(counts.values())
        freq = np.array([counts[c] for c in categories] + [0], dtype=np.float64)
        return cls(
            categories=categories,
            proportions=freq / n if n else freq,
            count=n,
            missing_rate=_missing_rate(n_missing, n + n_missing),
        )

    def index(self, category: str) -> int:
        """Slot of a category in :attr:`proportions`; the unseen slot if unknown."""
        return self._index.get(category, len(self.categories))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalProfile):
            return NotImplemented
        return (
            self.categories == other.categories
            and _arrays_equal(self.proportions, other.proportions)
            and self.count == other.count
            and self.missing_rate == other.missing_rate
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "kind": self.kind,
            "categories": list(self.categories),
            "proportions": self.proportions.tolist(),
            "count": self.count,
            "missing_rate": self.missing_rate,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoricalProfile:
        """Inverse of :meth:`to_dict`."""
        profile = cls(
            categories=[str(c) for c in data["categories"]],
            proportions=np.asarray(data["proportions"], dtype=np.float64),
            count=int(data["count"]),
            missing_rate=float(data["missing_rate"]),
        )
        if profile.proportions.size != len(profile.categories) + 1:
            raise ProfileFormatError(
                "categorical profile needs len(proportions) == len(categories) + 1 (unseen slot)"
            )
        return profile


FeatureProfile = NumericProfile | CategoricalProfile


def _feature_from_dict(name: str, data: dict[str, Any]) -> FeatureProfile:
    kind = data.get("kind")
    if kind == "numeric":
        return NumericProfile.from_dict(data)
    if kind == "categorical":
        return CategoricalProfile.from_dict(data)
    raise ProfileFormatError(f"feature {name!r}: unknown kind {kind!r}")


def _fit_feature(
    name: str,
    values: np.ndarray,
    categorical: Collection[str] | None,
    bins: int,
    sample_size: int | None,
    seed: int,
) -> FeatureProfile:
    if infer_kind(name, values, categorical) == "numeric":
        return NumericProfile.from_values(name, values, bins, sample_size, seed)
    return CategoricalProfile.from_values(name, values)


@dataclass(eq=False)
class ReferenceProfile:
    """Reference distributions of a model's features (and optionally its output).

    Build it with :meth:`from_columns`; store it with :meth:`to_json`.

    Attributes
    ----------
    features
        Profile per feature name, in the order of the input columns.
    prediction
        Profile of the model output, if one was given. It is monitored under
        the name ``"__prediction__"`` (``schemas.topics.PREDICTION_FEATURE``).
    model_name, model_version
        Optional metadata; carried through JSON untouched.
    n_rows
        Number of reference rows.

    """

    features: dict[str, FeatureProfile]
    prediction: FeatureProfile | None = None
    model_name: str | None = None
    model_version: str | None = None
    n_rows: int = 0

    @classmethod
    def from_columns(
        cls,
        columns: Any,
        *,
        bins: int = 10,
        sample_size: int | None = 5_000,
        seed: int = 0,
        categorical: Collection[str] | None = None,
        prediction: np.ndarray | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
    ) -> ReferenceProfile:
        """Fit a profile on reference data.

        Parameters
        ----------
        columns
            ``dict`` of column name to 1-D array, or a pandas ``DataFrame``.
        bins
            Quantile bins per numeric feature (ties may give fewer).
        sample_size
            Size of the seeded uniform sample kept per numeric feature for KS
            and Wasserstein; ``None`` keeps every value.
        seed
            Seed of that sample, so a profile is reproducible.
        categorical
            Column names to treat as categorical whatever their dtype.
        prediction
            The model's outputs on the reference rows (numeric or labels).
        model_name, model_version
            Metadata stored with the profile.

        Raises
        ------
        UnsupportedColumnError
            For a column that is neither numeric nor categorical.

        """
        table = as_columns(columns)
        if PREDICTION_FEATURE in table:
            raise ValueError(
                f"{PREDICTION_FEATURE!r} is reserved for the model output: pass it as prediction="
            )
        features = {
            name: _fit_feature(name, values, categorical, bins, sample_size, seed)
            for name, values in table.items()
        }
        pred = None
        if prediction is not None:
            pred_values = as_columns({PREDICTION_FEATURE: prediction})[PREDICTION_FEATURE]
            pred = _fit_feature(
                PREDICTION_FEATURE, pred_values, categorical, bins, sample_size, seed
            )
        n_rows = len(next(iter(table.values()))) if table else 0
        return cls(
            features=features,
            prediction=pred,
            model_name=model_name,
            model_version=model_version,
            n_rows=n_rows,
        )

    def monitored(self) -> dict[str, FeatureProfile]:
        """Every monitored column: the features, then ``"__prediction__"`` if profiled."""
        out = dict(self.features)
        if self.prediction is not None:
            out[PREDICTION_FEATURE] = self.prediction
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReferenceProfile):
            return NotImplemented
        return (
            list(self.features) == list(other.features)
            and all(self.features[k] == other.features[k] for k in self.features)
            and self.prediction == other.prediction
            and self.model_name == other.model_name
            and self.model_version == other.model_version
            and self.n_rows == other.n_rows
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, carrying ``"format_version": 1``."""
        return {
            "format_version": FORMAT_VERSION,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "n_rows": self.n_rows,
            "features": {name: p.to_dict() for name, p in self.features.items()},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }

    def to_json(self) -> str:
        """Serialise to strict JSON (floats round-trip exactly; NaN becomes ``null``)."""
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ProfileFormatError
            When ``format_version`` is missing or not one this code reads.

        """
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != FORMAT_VERSION:
            raise ProfileFormatError(
                f"unsupported reference profile format_version {version!r}: this version of "
                f"driftline reads format_version {FORMAT_VERSION}; rebuild the profile from the "
                "reference data or upgrade driftline"
            )
        pred = data.get("prediction")
        return cls(
            features={name: _feature_from_dict(name, f) for name, f in data["features"].items()},
            prediction=None if pred is None else _feature_from_dict(PREDICTION_FEATURE, pred),
            model_name=data.get("model_name"),
            model_version=data.get("model_version"),
            n_rows=int(data.get("n_rows", 0)),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProfileFormatError(f"reference profile is not valid JSON: {exc}") from None
        return cls.from_dict(data)
