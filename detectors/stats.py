"""Two-sample drift statistics: functions of arrays, in the style of ``scipy.stats``.

Each function compares a *reference* distribution with a *current* one and
returns a float or a small named result. They take what a monitor keeps in
O(bins) or O(sample) state — bin proportions, category counts, bounded samples
— never the raw stream. Inputs are assumed clean: missing values (``None``, NaN,
±inf) are removed by the callers (:mod:`detectors.columns`).

========================  ================================  ====================
function                  compares                          equals
========================  ================================  ====================
:func:`psi`               bin / category proportions        Evidently's PSI formula
:func:`ks`                two samples                       ``scipy.stats.ks_2samp``
:func:`chi2`              category counts (2 x K table)     ``scipy.stats.chi2_contingency(correction=False)``
:func:`jensenshannon`     bin / category proportions        ``scipy.spatial.distance.jensenshannon(base=2)``
:func:`wasserstein`       two samples, reference std        Evidently's normed Wasserstein
========================  ================================  ====================

Examples
--------
>>> import numpy as np
>>> from detectors.stats import psi, ks, chi2, jensenshannon, wasserstein
>>> rng = np.random.default_rng(0)
>>> ref, cur = rng.normal(0, 1, 2_000), rng.normal(0.5, 1, 2_000)
>>> result = ks(ref, cur)
>>> round(result.statistic, 3), result.pvalue < 1e-6
(0.199, True)
>>> round(wasserstein(ref, cur, ref_std=float(np.std(ref))), 2)
0.53

"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _stats
from scipy.special import gammaln, rel_entr

try:  # the optional native extension (native/, see schemas.native): a faster ECDF merge
    import driftline_native
except ImportError:  # pragma: no cover - without it numpy computes the same
    driftline_native = None

__all__ = [
    "Chi2Result",
    "KSResult",
    "chi2",
    "cramers_v",
    "jensenshannon",
    "ks",
    "psi",
    "wasserstein",
]

PSI_EPSILON = 1e-4


class KSResult(NamedTuple):
    """Result of :func:`ks`: the largest CDF gap and its two-sided p-value."""

    statistic: float
    pvalue: float


class Chi2Result(NamedTuple):
    """Result of :func:`chi2`: Pearson's statistic, p-value and degrees of freedom."""

    statistic: float
    pvalue: float
    dof: int


def psi(ref_props: ArrayLike, cur_props: ArrayLike, eps: float = PSI_EPSILON) -> float:
    r"""Population Stability Index between two binned distributions.

    .. math:: \mathrm{PSI} = \sum_i (c_i - r_i) \ln \frac{c_i}{r_i}

    PSI is a symmetrised Kullback-Leibler divergence (Jeffreys divergence). It
    does not depend on the sample size, so one threshold serves windows of any
    size. The usual reading, from credit scoring (Siddiqi, 2006; Yurdakul, 2018):

    * ``PSI < 0.1`` — no significant change;
    * ``0.1 <= PSI < 0.2`` — moderate change, worth a look;
    * ``PSI >= 0.2`` — significant change.

    Parameters
    ----------
    ref_props, cur_props
        Proportions per bin (or category), same length, each summing to 1.
        They are not renormalised.
    eps
        An empty bin makes the log infinite, so on each side separately every
        proportion below ``eps`` is replaced by ``eps`` (``0.0001`` is
        Evidently's constant). The choice caps the contribution of one bin
        that is empty on one side: with ``eps=1e-4`` a bin holding 1 % of the
        current data and none of the reference adds ``0.0099 * ln(100) = 0.046``.
        ``eps=0`` disables the replacement (the caller guarantees no zeros).

    Returns
    -------
    float
        Non-negative; 0 when the distributions are equal.

    Examples
    --------
    >>> from detectors.stats import psi
    >>> round(psi([0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]), 6)
    0.0
    >>> round(psi([0.25, 0.25, 0.25, 0.25], [0.10, 0.20, 0.30, 0.40]), 4)
    0.2282

    References
    ----------
    .. [1] N. Siddiqi, "Credit Risk Scorecards", Wiley, 2006, ch. 8.
    .. [2] B. Yurdakul, "Statistical properties of population stability index",
       PhD thesis, Western Michigan University, 2018.

    """
    r = np.asarray(ref_props, dtype=np.float64)
    c = np.asarray(cur_props, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"proportions differ in length: {r.shape} vs {c.shape}")
    if eps > 0:
        r = np.where(r < eps, eps, r)
        c = np.where(c < eps, eps, c)
    return float(np.sum((c - r) * np.log(c / r)))


def ks(ref_sample: ArrayLike, cur_sample: ArrayLike, method: str = "auto") -> KSResult:
    """Two-sample Kolmogorov-Smirnov test.

    The statistic ``D`` is the largest vertical gap between the two empirical
    CDFs (0..1); the p-value is that of ``scipy.stats.ks_2samp`` (two-sided) with
    the same ``method``: ``"auto"`` (exact for samples up to 10 000, asymptotic
    beyond) or ``"asymp"`` (Smirnov's asymptotic distribution once both samples
    have at least 100 values — at 2 000 vs 5 000 values several times cheaper than
    the exact p-value and within about 1e-3 of it; smaller samples, where the
    asymptotic formula is poor and the exact one cheap, get the exact p-value).
    The p-value of KS shrinks with the sample size: at 100 000 events a shift
    of 0.1 standard deviations is "significant" (p < 1e-50) though harmless,
    which is why :mod:`detectors.drift` also requires ``D`` to be large.

    Parameters
    ----------
    ref_sample, cur_sample
        Finite, non-empty samples.
    method
        ``"auto"`` or ``"asymp"``, as in ``scipy.stats.ks_2samp``.

    Examples
    --------
    >>> from detectors.stats import ks
    >>> ks([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0])
    KSResult(statistic=0.5, pvalue=0.7714285714285716)

    References
    ----------
    .. [1] N. Smirnov, "Table for estimating the goodness of fit of empirical
       distributions", Annals of Mathematical Statistics 19 (1948) 279-281.

    """
    _check_ks_method(method)
    a, b, gap = _sorted_gap(ref_sample, cur_sample)
    return _ks_sorted(a, b, gap, method)


# scipy's ks_2samp is exact up to this sample size (method="auto"), asymptotic beyond.
_KS_EXACT_MAX_N = 10_000

KS_METHODS = ("auto", "asymp")
"""P-value methods of :func:`ks` (those of ``scipy.stats.ks_2samp`` it reproduces)."""

KS_ASYMP_MIN_N = 100
"""With ``method="asymp"``, smaller samples still get the exact p-value."""


def _check_ks_method(method: str) -> None:
    if method not in KS_METHODS:
        raise ValueError(f"unknown KS method {method!r}; choose one of {', '.join(KS_METHODS)}")


def _ecdfs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both samples' ECDFs at every pooled point: ``(pooled sorted values, cdf_a - cdf_b)``.

    ``a`` and ``b`` must be sorted. The same numbers as ``searchsorted(a, pooled,
    side="right") / a.size - searchsorted(b, pooled, side="right") / b.size`` (the points
    scipy evaluates), counted in one linear pass instead of two binary searches per
    point: a stable sort of the two sorted runs is their merge; the running count of
    ``a``'s values along it, read at the last of each run of equal values, is how many
    of ``a``'s values are <= that value (likewise ``b``: the position minus ``a``'s).
    """
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="stable")
    pooled = both[order]
    count_a = np.cumsum(order < a.size)
    count_b = np.arange(1, pooled.size + 1) - count_a
    # the last index of each run of equal values, for every index in that run
    last = np.flatnonzero(np.append(pooled[1:] != pooled[:-1], True))
    run = np.repeat(last, np.diff(last, prepend=-1))
    gap = count_a[run] / a.size
    gap -= count_b[run] / b.size
    return pooled, gap


def _sorted_gap(
    ref_sample: ArrayLike, cur_sample: ArrayLike
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Both samples sorted, and their :func:`_gap_stats`; ValueError for an empty sample.

    Samples that come sorted (a profile's sample, a window's reservoir) are not sorted
    again when the native merge takes them: it checks the order itself, in a fraction of
    what ``np.sort`` spends on an already sorted array (~50 µs at 5,000 values).
    """
    a = np.asarray(ref_sample, dtype=np.float64)
    b = np.asarray(cur_sample, dtype=np.float64)
    if driftline_native is not None and a.ndim == b.ndim == 1:
        found = driftline_native.ecdf_gap_stats(a.tobytes(), b.tobytes())
        if found is not None:
            return a, b, found
    a, b = np.sort(a), np.sort(b)
    if a.size == 0 or b.size == 0:
        raise ValueError("KS needs two non-empty samples")
    return a, b, _gap_stats(a, b)


def _gap_stats(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """``(max, min, integral of |gap|)`` of the ECDF gap of :func:`_ecdfs` (``a`` and
    ``b`` sorted, non-empty): the KS statistic's two sides and the unnormed Wasserstein-1
    distance.

    The native extension (``driftline_native.ecdf_gap_stats``) counts them in one pass
    over the merge, ~4x faster than numpy at 5,000 vs 2,000 values (~60 against ~260 µs):
    the same max and min (the same float operations on the same counts), the integral
    summed in another order (equal within rounding, ~1e-16 relative). Samples it does not
    take (NaN or infinite values) go through numpy.
    """
    if driftline_native is not None:
        found = driftline_native.ecdf_gap_stats(a.tobytes(), b.tobytes())
        if found is not None:
            return found
    pooled, gap = _ecdfs(a, b)
    return float(gap.max()), float(gap.min()), float(np.dot(np.abs(gap[:-1]), np.diff(pooled)))


def _ks_sorted(
    a: np.ndarray, b: np.ndarray, gap: tuple[float, float, float], method: str = "auto"
) -> KSResult:
    n1, n2 = a.size, b.size  # (both non-empty: _sorted_gap checked)
    exact = max(n1, n2) <= _KS_EXACT_MAX_N
    if method == "asymp":
        exact = min(n1, n2) < KS_ASYMP_MIN_N
    if exact:
        with warnings.catch_warnings():
            # scipy says so when the exact p-value fails and it uses the asymptotic one, as
            # method="auto" intends; in a monitor that would be one log line per window.
            warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
            res = _stats.ks_2samp(a, b)
        return KSResult(float(res.statistic), float(res.pvalue))
    # Asymptotic (large samples, or asked for): scipy's branch (Smirnov's distribution),
    # on our gap.
    d = float(max(gap[0], min(max(-gap[1], 0.0), 1.0)))
    m, n = max(n1, n2), min(n1, n2)
    en = float(m) * float(n) / (float(m) + float(n))
    p = float(np.clip(kstwo_sf(d, float(np.round(en))), 0.0, 1.0))
    return KSResult(d, p)


def kstwo_sf(d: float, n: float) -> float:
    """``scipy.stats.kstwo.sf(d, n)``: the survival function of the two-sided one-sample
    Kolmogorov-Smirnov statistic, as scipy computes it (its methods, chosen by ``n`` and
    ``n d²``), except that its costly branch is summed here in one vectorized pass.

    That branch — ``n > 140`` and ``2.2 <= n d² < 370`` (e.g. a drifted feature's p-value
    between two reservoirs of 5,000) — is ``2 * scipy.special.smirnov(n, d)``, whose
    Birnbaum-Tingey series scipy sums term by term in C: ~2.4 ms at n = 2,500, against
    ~0.1 ms for :func:`_smirnov_series`. The two agree within 1e-12 (tested); every other
    case is scipy's own call.

    >>> from scipy import stats
    >>> bool(abs(kstwo_sf(0.03, 2500) - stats.kstwo.sf(0.03, 2500)) < 1e-12)
    True
    """
    d, n = float(d), float(n)
    if n > 140 and n == int(n) and 0.0 < d < 0.5:
        t = n * d
        nxsquared = t * d
        if 1.0 < t < n - 1 and 2.2 <= nxsquared < 370.0:
            return float(np.clip(2.0 * _smirnov_series(n, d), 0.0, 1.0))
        if 1.0 < t < n - 1 and nxsquared < 2.2 and not (n <= 100_000 and n * d**1.5 <= 1.4):
            # scipy's 1 - Pelz-Good CDF (an undrifted feature's p-value between two
            # reservoirs): its formula in float scalars, not numpy arrays of four.
            return min(max(1.0 - _pelz_good_cdf(n, d), 0.0), 1.0)
    return float(_stats.distributions.kstwo.sf(d, n))


_PI_SQUARED = math.pi**2
_PI_FOUR = math.pi**4
_PI_SIX = math.pi**6
_SQRT2PI = math.sqrt(2 * math.pi)
_SQRT3 = math.sqrt(3)


def _pelz_good_cdf(n: float, x: float) -> float:
    """P(D_n <= x) by the Pelz-Good approximation, as ``scipy.stats._ksstats`` computes
    it (``_kolmogn_PelzGood``, the branch ``kstwo.sf`` takes for ``n > 140``,
    ``n x² < 2.2`` and ``n x^1.5 > 1.4``): the same terms in the same order, in Python
    floats instead of arrays of four (~100 µs a call there, a few here). Only for ``x``
    in (0, 1) with ``sqrt(n) x`` above ~0.042 (scipy's cut-off to 0), which that branch
    guarantees.

    References
    ----------
    .. [1] W. Pelz and I. J. Good, "Approximating the lower tail-areas of the
       Kolmogorov-Smirnov one-sample statistic", J. Roy. Statist. Soc. B 38 (1976)
       152-156.
    """
    z = math.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z**2, z**3, z**4, z**6
    q = math.exp(-_PI_SQUARED / 8 / zsquared)
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z**8
    k0 = k1 = k2 = k3 = 0.0
    maxk = math.ceil(16 * z / math.pi)
    for k in range(maxk, 0, -1):  # Horner: sum of c_i q^(i^2) over odd i
        m = 2 * k - 1
        msquared, mfour, msix = float(m**2), float(m**4), float(m**6)
        qpower = q ** float(8 * k)
        k0 = k0 * qpower + 1.0
        k1 = k1 * qpower + (k1a + k1b * msquared)
        k2 = k2 * qpower + (k2a + k2b * msquared + k2c * mfour)
        k3 = k3 * qpower + (k3a + k3b * msquared + k3c * mfour + k3d * msix)
    k0, k1, k2, k3 = (v * q * _SQRT2PI for v in (k0, k1, k2, k3))
    k0, k1, k2, k3 = k0 / z, k1 / (6 * zfour), k2 / (72 * z**7), k3 / (6480 * z**10)
    # the sum over all integers k: K_2's pi^2 k^2 q^(k^2), K_3's (3 pi^2 k^2 z^2 - pi^4 k^4) q^(k^2)
    q = math.exp(-_PI_SQUARED / 2 / zsquared)
    sqrt3z = _SQRT3 * z
    k2extra = k3extra = 0.0
    for k in range(maxk, 0, -1):
        ksquared = float(k * k)
        qpower = q**ksquared
        kspi = math.pi * k
        k2extra += ksquared * qpower
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpower
    k2 += k2extra * (_PI_SQUARED * _SQRT2PI / (-36 * zthree))
    k3 += k3extra * (_PI_SQUARED * _SQRT2PI / (216 * zsix))
    return k0 + k1 / n**0.5 + k2 / n + k3 / n**1.5


def _smirnov_series(n: float, d: float) -> float:
    """``scipy.special.smirnov(n, d)``, P(D+ > d) of a sample of ``n``: the
    Birnbaum-Tingey series ``d * sum_v C(n, v) (d + v/n)^(v-1) (1 - d - v/n)^(n-v)``,
    ``v = 0 .. floor(n (1 - d))``, each term in logs (its terms are all positive, so the
    sum is stable).

    References
    ----------
    .. [1] Z. W. Birnbaum and F. H. Tingey, "One-sided confidence contours for probability
       distribution functions", Ann. Math. Statist. 22 (1951) 592-596.
    """
    v = np.arange(0.0, np.floor(n * (1.0 - d)) + 1.0)
    evn = d + v / n
    omevn = 1.0 - evn
    keep = omevn > 0.0
    v, evn, omevn = v[keep], evn[keep], omevn[keep]
    log_terms = (
        gammaln(n + 1.0)
        - gammaln(v + 1.0)
        - gammaln(n - v + 1.0)
        + (v - 1.0) * np.log(evn)
        + (n - v) * np.log(omevn)
    )
    return d * float(np.exp(log_terms).sum())


def ks_and_wasserstein(
    ref_sample: ArrayLike,
    cur_sample: ArrayLike,
    ref_std: float,
    min_std: float = 1e-3,
    method: str = "auto",
) -> tuple[KSResult, float]:
    """:func:`ks` and :func:`wasserstein` of the same pair, sorting and pooling once.

    Both statistics are functionals of the same two ECDFs; computing them together
    halves the work of a numeric column's drift report.
    """
    _check_ks_method(method)
    a, b, gap = _sorted_gap(ref_sample, cur_sample)
    return _ks_sorted(a, b, gap, method), _normed(gap[2], ref_std, min_std)


def _normed(distance: float, ref_std: float, min_std: float) -> float:
    # W1 = integral of |F_a - F_b| (the ECDF gap is constant between pooled points),
    # divided by the reference's std (floored).
    return distance / max(float(ref_std), min_std)


def chi2(ref_counts: ArrayLike, cur_counts: ArrayLike) -> Chi2Result:
    """Pearson's chi-square test of homogeneity on the 2 x K table of counts.

    Tests whether reference and current are samples of one categorical
    distribution. Categories empty on both sides are dropped first; with fewer
    than two categories left there is nothing to compare and the result is
    ``(0.0, 1.0, 0)``. No continuity correction. This is *not* Evidently's
    ``chisquare`` stattest, which is a goodness-of-fit test of the current
    counts against the reference proportions taken as exact (it ignores the
    reference's own sampling noise, so it rejects more often).

    Parameters
    ----------
    ref_counts, cur_counts
        Counts per category, same length; each side must have a positive total.

    Examples
    --------
    >>> from detectors.stats import chi2
    >>> chi2([50, 30, 20, 0], [30, 30, 40, 0])
    Chi2Result(statistic=11.666666666666668, pvalue=0.0029282996948181853, dof=2)

    References
    ----------
    .. [1] K. Pearson, "On the criterion that a given system of deviations ...",
       Philosophical Magazine 50 (1900) 157-175.

    """
    table = np.vstack(
        [np.asarray(ref_counts, dtype=np.float64), np.asarray(cur_counts, dtype=np.float64)]
    )
    if table.ndim != 2:
        raise ValueError("chi2 expects two 1-D count vectors")
    if np.any(table < 0):
        raise ValueError("counts must be non-negative")
    if np.any(table.sum(axis=1) <= 0):
        raise ValueError("chi2 needs a positive total count on both sides")
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return Chi2Result(0.0, 1.0, 0)
    res = _stats.chi2_contingency(table, correction=False)
    return Chi2Result(float(res.statistic), float(res.pvalue), int(res.dof))


def cramers_v(result: Chi2Result, n_total: float) -> float:
    """Cramér's V of a 2 x K chi-square test: an effect size in 0..1.

    ``V = sqrt(chi2 / (n * min(1, K - 1)))`` with ``n`` the total count of both
    samples. Unlike the p-value it does not grow with the sample size; 0.1 is
    conventionally a small effect, 0.3 a medium one (Cohen, 1988).

    Examples
    --------
    >>> from detectors.stats import chi2, cramers_v
    >>> round(cramers_v(chi2([50, 30, 20], [30, 30, 40]), n_total=200), 4)
    0.2415

    References
    ----------
    .. [1] H. Cramér, "Mathematical Methods of Statistics", Princeton, 1946, p. 282.
    .. [2] J. Cohen, "Statistical Power Analysis for the Behavioral Sciences", 1988.

    """
    if result.dof == 0 or n_total <= 0:
        return 0.0
    return float(np.sqrt(result.statistic / n_total))


def jensenshannon(ref_props: ArrayLike, cur_props: ArrayLike, base: float = 2.0) -> float:
    """Jensen-Shannon distance between two binned distributions.

    The square root of the Jensen-Shannon divergence; with ``base=2`` it lies
    in 0..1 (1 = disjoint supports). Symmetric, bounded and defined for empty
    bins, so unlike :func:`psi` it needs no epsilon. Equal to
    ``scipy.spatial.distance.jensenshannon(ref, cur, base=base)``, except that
    rounding never makes it NaN for (nearly) equal inputs. Evidently's
    ``jensenshannon`` stattest uses the natural log (``base=math.e``): its
    values are ``sqrt(ln 2) = 0.833`` times ours.

    Parameters
    ----------
    ref_props, cur_props
        Non-negative weights per bin, same length; each is normalised to sum 1.
    base
        Logarithm base.

    Examples
    --------
    >>> from detectors.stats import jensenshannon
    >>> jensenshannon([1.0, 0.0], [0.0, 1.0])
    1.0
    >>> round(jensenshannon([0.5, 0.5], [0.9, 0.1]), 4)
    0.3831

    References
    ----------
    .. [1] J. Lin, "Divergence measures based on the Shannon entropy",
       IEEE Transactions on Information Theory 37 (1991) 145-151.
    .. [2] D. M. Endres and J. E. Schindelin, "A new metric for probability
       distributions", IEEE Transactions on Information Theory 49 (2003) 1858-1860.

    """
    p = np.asarray(ref_props, dtype=np.float64)
    q = np.asarray(cur_props, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"proportions differ in length: {p.shape} vs {q.shape}")
    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2.0
    js = np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))
    js /= np.log(base)
    return float(np.sqrt(max(js / 2.0, 0.0)))


def wasserstein(
    ref_sample: ArrayLike, cur_sample: ArrayLike, ref_std: float, min_std: float = 1e-3
) -> float:
    """Wasserstein-1 (earth mover's) distance in units of the reference std.

    ``scipy.stats.wasserstein_distance(ref, cur) / max(ref_std, min_std)``:
    how far, in reference standard deviations, the current distribution has
    to be moved to match the reference. 0.1 means a tenth of a standard
    deviation. This is Evidently's "normed Wasserstein" (threshold 0.1).

    Parameters
    ----------
    ref_sample, cur_sample
        Finite, non-empty samples.
    ref_std
        Standard deviation of the (full) reference, population form (``ddof=0``),
        as stored in :class:`detectors.profile.NumericProfile`.
    min_std
        Floor of the divisor. A constant reference has ``std = 0``; rather
        than dividing by zero the distance is divided by ``min_std`` (0.001,
        Evidently's floor), so any movement of a constant feature gives a
        large, finite value. The floor is in the feature's units.

    Examples
    --------
    >>> from detectors.stats import wasserstein
    >>> wasserstein([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], ref_std=0.5)
    2.0
    >>> round(wasserstein([5.0, 5.0], [5.0, 5.01], ref_std=0.0), 6)
    5.0

    References
    ----------
    .. [1] L. Vaserstein, "Markov processes over denumerable products of spaces,
       describing large systems of automata", Problemy Peredachi Informatsii 5 (1969).

    """
    if np.size(ref_sample) == 0 or np.size(cur_sample) == 0:
        raise ValueError("Wasserstein needs two non-empty samples")
    return _normed(_sorted_gap(ref_sample, cur_sample)[2][2], ref_std, min_std)
