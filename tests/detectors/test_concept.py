"""ConceptDriftDetector: detection delay, no false alarm, snapshot/restore."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pytest

from detectors.concept import ConceptDriftDetector

CHANGE = 3_000


def _error_stream(seed: int, after: float, change: int = CHANGE) -> np.ndarray:
    """0/1 losses: 10 % errors, then ``after`` from event ``change`` on."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(change) < 0.1, rng.random(change) < after].astype(np.float64)


def _regression_stream(seed: int, after: float, change: int = CHANGE) -> np.ndarray:
    """Absolute errors around 1.0, then around ``after``."""
    rng = np.random.default_rng(seed)
    return np.abs(np.r_[rng.normal(1.0, 0.3, change), rng.normal(after, 0.3, change)])


@pytest.mark.parametrize(
    ("method", "params", "stream"),
    [
        ("adwin", {}, _error_stream),
        ("page_hinkley", {}, _error_stream),
        ("adwin", {}, _regression_stream),
        ("page_hinkley", {}, _regression_stream),
        ("kswin", {"alpha": 1e-4}, _regression_stream),
    ],
)
def test_change_is_detected_soon_after_it_happens(
    method: str, params: dict[str, float], stream: Callable[..., np.ndarray]
) -> None:
    after = 0.4 if stream is _error_stream else 2.0
    change = 1_000 if method == "kswin" else CHANGE  # KSWIN runs a KS test per event: slow
    detector = ConceptDriftDetector(method, **params)
    fired = detector.update_many(stream(0, after, change))
    assert fired, "the change was not detected"
    assert change <= fired[0] < change + 300
    assert detector.n_seen == 2 * change and detector.n_detections == len(fired)


@pytest.mark.parametrize(
    ("method", "params", "stream"),
    [
        ("adwin", {}, _error_stream),
        ("page_hinkley", {}, _error_stream),
        ("adwin", {}, _regression_stream),
        ("kswin", {"alpha": 1e-4}, _regression_stream),
    ],
)
def test_stationary_stream_raises_no_alarm(
    method: str, params: dict[str, float], stream: Callable[..., np.ndarray]
) -> None:
    stationary = 0.1 if stream is _error_stream else 1.0
    change = 1_000 if method == "kswin" else CHANGE
    detector = ConceptDriftDetector(method, **params)
    assert detector.update_many(stream(1, stationary, change)) == []
    assert not detector.drift_detected


@pytest.mark.parametrize("method", ["adwin", "kswin", "page_hinkley"])
def test_restored_detector_continues_identically(method: str) -> None:
    losses = _regression_stream(2, 2.0)[2_000:4_000]
    uninterrupted = ConceptDriftDetector(method)
    expected = uninterrupted.update_many(losses)

    first = ConceptDriftDetector(method)
    fired = first.update_many(losses[:900])
    blob = first.snapshot()
    assert isinstance(blob, bytes)
    restored = ConceptDriftDetector.restore(blob)
    fired += [900 + i for i in restored.update_many(losses[900:])]
    assert fired == expected and any(i >= 900 for i in fired)
    assert restored.n_seen == uninterrupted.n_seen
    # and the original, fed the same, stays in lockstep with its restored copy
    assert first.update_many(losses[900:]) == [i - 900 for i in fired if i >= 900]


def test_batch_indices_are_positions_in_the_batch() -> None:
    losses = _error_stream(0, 0.6)
    whole = ConceptDriftDetector().update_many(losses)
    chunked = ConceptDriftDetector()
    found = []
    for lo in range(0, losses.size, 1_000):
        found += [lo + i for i in chunked.update_many(losses[lo : lo + 1_000])]
    assert found == whole and whole


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        ConceptDriftDetector("ddm")
    detector = ConceptDriftDetector()
    with pytest.raises(ValueError, match="position 2"):
        detector.update_many(np.array([0.0, 1.0, np.nan]))
    assert detector.n_seen == 0

    with pytest.raises(TypeError, match="ConceptDriftDetector"):
        ConceptDriftDetector.restore(pickle.dumps({"not": "a detector"}))


@pytest.mark.parametrize("method", ["adwin", "page_hinkley"])
def test_one_at_a_time_equals_batches(method: str) -> None:
    losses = _error_stream(3, 0.5)
    batch = ConceptDriftDetector(method)
    whole = batch.update_many(losses)
    single = ConceptDriftDetector(method)
    found = [i for i, x in enumerate(losses.tolist()) if single.update(x)]
    assert found == whole and whole
    assert (single.n_seen, single.n_detections) == (batch.n_seen, batch.n_detections)
    with pytest.raises(ValueError, match="finite"):
        single.update(float("inf"))
    assert single.n_seen == losses.size
