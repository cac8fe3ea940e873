"""Synthetic prediction streams with a known drift point, shared by the stream tests."""

from __future__ import annotations

import time

import numpy as np

from detectors.profile import ReferenceProfile

HOUR = 3_600_000
# Two days ago on a window boundary: recent, so the raw-event TTL (30 days) keeps the rows.
_NOW = int(time.time() * 1000)
T0 = _NOW - _NOW % HOUR - 48 * HOUR


def reference(seed: int = 0, n: int = 5_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 0.5, n),
        "city": rng.choice(np.array(["a", "b", "c"], dtype=object), n, p=[0.5, 0.3, 0.2]),
    }


def profile(seed: int = 0) -> ReferenceProfile:
    ref = reference(seed)
    pred = (ref["age"] > 40).astype(float)
    return ReferenceProfile.from_columns(
        ref, prediction=pred, model_name="churn", model_version="1"
    )


def predictions(
    n_windows: int,
    per_window: int,
    *,
    drift_from: int | None = None,
    seed: int = 1,
    model: str = "churn",
    version: str = "1",
) -> list[dict]:
    """Events spread over ``n_windows`` hourly windows; from window ``drift_from`` on,
    ``age`` shifts by +15 (1.5 reference standard deviations) and city 'c' dominates."""
    rng = np.random.default_rng(seed)
    out = []
    for w in range(n_windows):
        drifted = drift_from is not None and w >= drift_from
        ts = T0 + w * HOUR + np.sort(rng.integers(0, HOUR, per_window))
        age = rng.normal(55 if drifted else 40, 10, per_window)
        income = rng.lognormal(10, 0.5, per_window)
        city = rng.choice(
            ["a", "b", "c"], per_window, p=[0.2, 0.2, 0.6] if drifted else [0.5, 0.3, 0.2]
        )
        for i in range(per_window):
            out.append(
                {
                    "prediction_id": f"{model}-{w}-{i}",
                    "model_name": model,
                    "model_version": version,
                    "timestamp": int(ts[i]),
                    "features": {
                        "age": float(age[i]),
                        "income": float(income[i]),
                        "city": str(city[i]),
                    },
                    "prediction": 1.0 if age[i] > 40 else 0.0,
                    "scores": None,
                    "segment": None,
                }
            )
    return out


def labels_for(events: list[dict], every: int = 2) -> list[dict]:
    """Ground truth for every ``every``-th prediction, known 10 minutes after it."""
    return [
        {
            "prediction_id": e["prediction_id"],
            "model_name": e["model_name"],
            "label": "1" if e["features"]["age"] > 45 else "0",
            "timestamp": e["timestamp"] + 600_000,
        }
        for e in events[::every]
    ]
