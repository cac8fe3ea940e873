//! The gap between two empirical CDFs, counted along the merge of two sorted samples:
//! what `detectors.stats._ecdfs` computes with numpy (a stable argsort of the pooled
//! values, running counts, the last of each run of equal values), in one linear pass
//! and without the pooled arrays. The two-sample KS statistic is the gap's extremes,
//! the (unnormed) Wasserstein-1 distance its integral.

/// The values of `data` (native-endian float64s, as `ndarray.tobytes()` writes them);
/// None unless the length is a multiple of 8.
fn floats(data: &[u8]) -> Option<Vec<f64>> {
    if data.len() % 8 != 0 {
        return None;
    }
    Some(
        data.chunks_exact(8)
            .map(|c| f64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
    )
}

/// `(max gap, min gap, integral of |gap|)` of two sorted, non-empty samples of finite
/// values, where gap(v) = #(a <= v) / |a| - #(b <= v) / |b| at every pooled value v (the
/// same float operations as numpy's `count / size` and `-=`), and the integral is
/// `sum |gap(v_k)| * (v_{k+1} - v_k)` over the distinct pooled values in order. None
/// for an empty, unsorted or non-finite sample, or a length not a multiple of 8.
pub(crate) fn gap_stats(a: &[u8], b: &[u8]) -> Option<(f64, f64, f64)> {
    let (mut a, mut b) = (floats(a)?, floats(b)?);
    let sorted_finite =
        |x: &[f64]| x.iter().all(|v| v.is_finite()) && x.windows(2).all(|w| w[0] <= w[1]);
    if a.is_empty() || b.is_empty() || !sorted_finite(&a) || !sorted_finite(&b) {
        return None;
    }
    let (na, nb) = (a.len(), b.len());
    let (fa, fb) = (na as f64, nb as f64);
    // Sentinels past the ends: +inf is never taken before a (finite) value.
    a.push(f64::INFINITY);
    b.push(f64::INFINITY);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut max, mut min) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut area = 0.0f64;
    let mut gap = 0.0f64; // the gap at the last value whose run of equal values ended
    let mut last = f64::min(a[0], b[0]); // the value taken before (the first: no width)

    // One value per step, without data-dependent branches (a merge's branches are
    // mispredicted half the time on random data): ties take `a`'s value first, and the
    // gap counts at the last value of each run of equal values.
    for _ in 0..na + nb {
        let (x, y) = (a[i], b[j]);
        let take_a = x <= y;
        let v = if take_a { x } else { y };
        i += usize::from(take_a);
        j += usize::from(!take_a);
        area += gap.abs() * (v - last); // 0 inside a run of equal values
        last = v;
        let here = i as f64 / fa - j as f64 / fb;
        let ends = f64::min(a[i], b[j]) != v;
        gap = if ends { here } else { gap };
        max = if ends { max.max(here) } else { max };
        min = if ends { min.min(here) } else { min };
    }
    Some((max, min, area))
}
