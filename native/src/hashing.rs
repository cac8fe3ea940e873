//! BLAKE2b digests of event ids, in batches: the same bytes as Python's
//! `hashlib.blake2b(id.encode(), digest_size=n).digest()`. The duplicate filter and the
//! windows' bottom-k reservoirs key every event by them.

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::exact_str;

/// BLAKE2b of `data` with an `out.len()`-byte digest; None for a size outside 1..=64.
fn blake2b(data: &[u8], out: &mut [u8]) -> Option<()> {
    let mut hasher = Blake2bVar::new(out.len()).ok()?;
    hasher.update(data);
    hasher.finalize_variable(out).ok()
}

/// The `size`-byte digest of each id's UTF-8, concatenated; None if any item is not an
/// exact `str` (or not encodable as UTF-8) or `size` is outside 1..=64.
pub(crate) fn digests(ids: &Bound<'_, PyList>, size: usize) -> Option<Vec<u8>> {
    if size == 0 || size > 64 {
        return None;
    }
    let mut out = vec![0u8; ids.len() * size];
    for (item, chunk) in ids.iter().zip(out.chunks_exact_mut(size)) {
        blake2b(exact_str(&item)?.as_bytes(), chunk)?;
    }
    Some(out)
}

/// Each id's `size`-byte digest as its own `bytes` object, or None (see [`digests`]).
pub(crate) fn digest_list<'py>(
    py: Python<'py>,
    ids: &Bound<'py, PyList>,
    size: usize,
) -> Option<Bound<'py, PyList>> {
    let flat = digests(ids, size)?;
    let items = flat.chunks_exact(size).map(|chunk| PyBytes::new(py, chunk));
    PyList::new(py, items).ok()
}
