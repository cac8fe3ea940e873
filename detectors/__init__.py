"""Pure drift statistics for driftline: numpy, scipy and river only, no I/O.

=========================  ==================================================================
module                     owns
=========================  ==================================================================
``detectors.columns``      column kinds, missing values, tables (dict of arrays / DataFrame)
``detectors.binning``      reference-quantile bins of numeric features
``detectors.stats``        PSI, KS, chi-square, Cramér's V, Jensen-Shannon, Wasserstein
``detectors.profile``      ``ReferenceProfile``: what the training data looked like
``detectors.accumulator``  ``WindowAccumulator``: O(bins + reservoir) state of one window
``detectors.drift``        ``DriftConfig`` and the verdicts, batch and streaming
``detectors.evidently``    Evidently 0.7 compatible binning, to reproduce its PSI
``detectors.concept``      ``ConceptDriftDetector``: ADWIN & co. on the loss stream
=========================  ==================================================================

The contract with the rest of driftline is in ``docs/core-api.md``.
"""
