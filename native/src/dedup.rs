//! The duplicate filter's memory of recent event ids (`streams.dedup`): the 12-byte
//! BLAKE2b digest of each id kept, up to a capacity, the oldest forgotten first — the
//! Python `OrderedDict` version's behaviour, without a Python object per id.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::hashing;

/// Digest size of a remembered id (as `streams.dedup._digest`).
pub(crate) const DIGEST: usize = 12;
type Key = [u8; DIGEST];

/// The keys are BLAKE2b digests already: their first eight bytes are the hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
    fn write_usize(&mut self, _: usize) {} // the slice length prefix: always DIGEST
}

/// Ids remembered in arrival order, up to `capacity`.
#[pyclass(module = "driftline_native")]
pub struct RecentIds {
    capacity: usize,
    order: VecDeque<Key>,
    seen: HashSet<Key, BuildHasherDefault<DigestHasher>>,
}

impl RecentIds {
    /// Remember `key` unless it is remembered already; true when it was.
    fn offer(&mut self, key: Key) -> bool {
        if !self.seen.insert(key) {
            return true;
        }
        self.order.push_back(key);
        false
    }

    fn trim(&mut self) {
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }
}

fn key_of(item: &Bound<'_, PyAny>) -> PyResult<Key> {
    let bytes = item.cast::<PyBytes>()?.as_bytes();
    bytes
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("a key is {DIGEST} bytes, got {}", bytes.len())))
}

#[pymethods]
impl RecentIds {
    #[new]
    fn new(capacity: usize) -> PyResult<Self> {
        if capacity == 0 {
            return Err(PyValueError::new_err("capacity must be positive"));
        }
        Ok(Self {
            capacity,
            order: VecDeque::new(),
            seen: HashSet::default(),
        })
    }

    /// Remember a batch of ids in order, then forget the oldest beyond the capacity;
    /// the indices of the ids remembered already (duplicates: not remembered again).
    /// None, with nothing changed, when an id is not an exact `str`.
    fn add_ids(&mut self, ids: &Bound<'_, PyList>) -> Option<Vec<usize>> {
        let flat = hashing::digests(ids, DIGEST)?;
        let mut duplicates = Vec::new();
        for (i, chunk) in flat.chunks_exact(DIGEST).enumerate() {
            let key: Key = chunk.try_into().ok()?;
            if self.offer(key) {
                duplicates.push(i);
            }
        }
        self.trim();
        Some(duplicates)
    }

    /// As `add_ids` for keys already digested (`None`: an event without an id, skipped).
    fn add_keys(&mut self, keys: &Bound<'_, PyList>) -> PyResult<Vec<usize>> {
        let mut parsed = Vec::with_capacity(keys.len());
        for item in keys.iter() {
            parsed.push(if item.is_none() {
                None
            } else {
                Some(key_of(&item)?)
            });
        }
        let mut duplicates = Vec::new();
        for (i, key) in parsed.into_iter().enumerate() {
            if let Some(key) = key {
                if self.offer(key) {
                    duplicates.push(i);
                }
            }
        }
        self.trim();
        Ok(duplicates)
    }

    /// The remembered keys, oldest first.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.order.iter().map(|k| PyBytes::new(py, k)))
    }

    /// Remember keys in order (a restored state), without forgetting any.
    fn extend(&mut self, keys: &Bound<'_, PyList>) -> PyResult<()> {
        for item in keys.iter() {
            let key = key_of(&item)?;
            self.offer(key);
        }
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.order.len()
    }
}
