"""Concept (performance) drift: change detection on the per-event loss stream.

Once a label joins its prediction, the event's loss (0/1 error for a
classifier, absolute or squared error for a regressor) is a number whose mean
is the model's error rate. A :class:`ConceptDriftDetector` watches that stream
with one of river's change detectors and says at which events the mean
changed, so a model that silently gets worse raises an alert without waiting
for a fixed evaluation window.

Examples
--------
>>> import numpy as np
>>> from detectors.concept import ConceptDriftDetector
>>> rng = np.random.default_rng(42)
>>> losses = np.r_[rng.random(3_000) < 0.1, rng.random(3_000) < 0.4].astype(float)
>>> detector = ConceptDriftDetector("adwin")
>>> fired = detector.update_many(losses)
>>> 3_000 < fired[0] < 3_300  # the error rate quadrupled at event 3000
True
>>> restored = ConceptDriftDetector.restore(detector.snapshot())
>>> restored.n_seen
6000

"""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
from river.drift import ADWIN, KSWIN, PageHinkley

__all__ = ["METHODS", "ConceptDriftDetector"]

METHODS = ("adwin", "kswin", "page_hinkley")


class ConceptDriftDetector:
    """Change detector over a stream of per-event losses (river wrapper).

    Parameters
    ----------
    method
        ``"adwin"`` — ADWIN (Bifet & Gavaldà, 2007): adaptive window, detects a
        change of the mean with a bound on false positives set by ``delta``
        (default 0.002); the default choice. ``"kswin"`` — KSWIN (Raab et al.,
        2020): a KS test between the newest ``stat_size`` values and a sample
        of a sliding window, on every event; sensitive to any change of
        distribution but slow (about 3 000 events/s) and, with river's default
        ``alpha=0.005``, prone to false alarms over long streams (one test per
        event): use ``alpha=1e-4`` or less. Blind to 0/1 losses (ties). ``"page_hinkley"`` — Page-Hinkley (Page, 1954): cumulative
        deviation from the running mean; cheap, needs its ``threshold`` tuned
        to the loss scale.
    **params
        Passed to the river detector (e.g. ``delta=0.002`` for ADWIN,
        ``alpha``/``window_size``/``stat_size``/``seed`` for KSWIN,
        ``threshold``/``delta``/``mode`` for Page-Hinkley). KSWIN samples at
        random: its ``seed`` defaults to 0 here so that replays are identical.

    Notes
    -----
    After a detection river resets the detector: its next update starts a
    fresh window, so each change is reported once.

    References
    ----------
    .. [1] A. Bifet and R. Gavaldà, "Learning from time-changing data with
       adaptive windowing", SIAM International Conference on Data Mining, 2007.
    .. [2] C. Raab, M. Heusinger and F.-M. Schleif, "Reactive soft prototype
       computing for concept drift streams", Neurocomputing 416 (2020) 340-351.
    .. [3] E. S. Page, "Continuous inspection schemes", Biometrika 41 (1954) 100-115.

    """

    def __init__(self, method: str = "adwin", **params: Any) -> None:
        if method == "adwin":
            self._detector: ADWIN | KSWIN | PageHinkley = ADWIN(**params)
        elif method == "kswin":
            self._detector = KSWIN(**{"seed": 0, **params})
        elif method == "page_hinkley":
            self._detector = PageHinkley(**params)
        else:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        self.method = method
        self.params = dict(params)
        self.n_seen = 0
        self.n_detections = 0

    def update_many(self, losses: np.ndarray) -> list[int]:
        """Feed a batch of losses, in event order.

        Parameters
        ----------
        losses
            Finite per-event losses.

        Returns
        -------
        list[int]
            Positions in this batch at which a change was detected.

        Raises
        ------
        ValueError
            If a loss is NaN or infinite (it would corrupt the detector's
            running statistics); nothing of the batch is fed then.

        """
        x = np.asarray(losses, dtype=np.float64).ravel()
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            raise ValueError(f"losses must be finite; position {int(bad[0])} is {x[bad[0]]}")
        fired: list[int] = []
        detector = self._detector
        # river detectors take one value at a time; this loop is the detector itself.
        for i, value in enumerate(x.tolist()):
            detector.update(value)
            if detector.drift_detected:
                fired.append(i)
        self.n_seen += x.size
        self.n_detections += len(fired)
        return fired

    def update(self, loss: float) -> bool:
        """Feed one loss; whether it completed a change (same as ``update_many([loss])``).

        Raises
        ------
        ValueError
            If ``loss`` is NaN or infinite; the detector is not fed then.
        """
        value = float(loss)
        if not math.isfinite(value):
            raise ValueError(f"losses must be finite; position 0 is {value}")
        detector = self._detector
        detector.update(value)
        self.n_seen += 1
        if detector.drift_detected:
            self.n_detections += 1
            return True
        return False

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected a change."""
        return bool(self._detector.drift_detected)

    def snapshot(self) -> bytes:
        """The detector's full state as bytes (pickle); ADWIN is about 1.5 KB."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, data: bytes) -> ConceptDriftDetector:
        """Rebuild a detector from :meth:`snapshot`.

        Only restore snapshots this system wrote: unpickling runs code.
        """
        obj = pickle.loads(data)
        if not isinstance(obj, cls):
            raise TypeError(f"snapshot holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj
