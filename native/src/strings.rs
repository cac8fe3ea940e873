//! A bounded cache of decoded strings that repeat from record to record (feature names,
//! model names and versions): decoding returns the same `str` object each time, which
//! saves an allocation and a hash per key, and memory in the records kept downstream.
//!
//! One process-wide cache behind a mutex that is only ever *tried*: when it is busy (a
//! re-entrant call from a finalizer, another thread), decoding simply goes without it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyString;

/// Strings longer than this are not cached.
const MAX_LEN: usize = 64;
/// Entries at most; a full cache starts over (so a burst of one-off keys does not keep
/// the usual ones out for good).
const MAX_ENTRIES: usize = 4096;

/// FNV-1a: short keys, no HashDoS concern at this bounded size.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xCBF2_9CE4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01B3);
        }
        self.0 = h;
    }
}

#[derive(Default)]
pub struct StringCache {
    map: HashMap<Box<[u8]>, Py<PyString>, BuildHasherDefault<Fnv>>,
}

impl StringCache {
    /// The `str` of `s`: the cached object, or a new one (then cached when short).
    pub fn get<'py>(&mut self, py: Python<'py>, s: &str) -> Bound<'py, PyString> {
        if let Some(cached) = self.map.get(s.as_bytes()) {
            return cached.bind(py).clone();
        }
        let new = PyString::new(py, s);
        if s.len() <= MAX_LEN {
            if self.map.len() >= MAX_ENTRIES {
                self.map.clear();
            }
            self.map
                .insert(Box::from(s.as_bytes()), new.clone().unbind());
        }
        new
    }
}

static CACHE: Mutex<Option<StringCache>> = Mutex::new(None);

/// Runs `f` with the cache, or with `None` when it is busy.
pub fn with_cache<R>(f: impl FnOnce(Option<&mut StringCache>) -> R) -> R {
    match CACHE.try_lock() {
        Ok(mut guard) => f(Some(guard.get_or_insert_with(StringCache::default))),
        Err(_) => f(None),
    }
}
