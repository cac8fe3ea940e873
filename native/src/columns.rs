//! A batch of `prediction` payloads decoded into columns, without a dict per event.
//!
//! The common batch an SDK sends — one model version, the same numeric features in the
//! same order in every event, no segment — decodes into what the processors read
//! (ids, timestamps, one row of values per feature, predictions) and the RowBinary rows
//! of the raw `predictions` table (`rowbinary::predictions` of the decoded records, byte
//! for byte), in one pass over the bytes. Any other batch gives `None`: the caller
//! decodes it record by record (`avro::decode`), which handles everything else.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyList, PyString, PyTuple};

use crate::rowbinary::{TIMESTAMP_MAX_MS, TIMESTAMP_MIN_MS};
use crate::strings::StringCache;
use crate::wire::{put_f64, put_rb_string, put_uvarint, Reader};

const NOT_NULL: u8 = 0;
const NULL: u8 = 1;

/// The columns of a batch, as plain Rust values until the end.
struct Columns<'a> {
    ids: Vec<&'a str>,
    model: &'a str,
    version: &'a str,
    timestamps: Vec<u8>,
    names: Vec<&'a str>,
    predictions: Vec<Prediction<'a>>,
    rows: Vec<u8>,
}

enum Prediction<'a> {
    Number(f64),
    Text(&'a str),
}

/// An Avro string that must equal `expected` (compared as bytes: no UTF-8 check needed).
#[inline]
fn same_string(r: &mut Reader<'_>, expected: &str) -> Option<()> {
    let n = usize::try_from(r.long()?).ok()?;
    (r.take(n)? == expected.as_bytes()).then_some(())
}

/// One event body (after the single-object header) appended to `c`; `None` when it is
/// not of the batch's common shape. `entries` is scratch space, reused from event to event.
fn event<'a>(
    c: &mut Columns<'a>,
    r: &mut Reader<'a>,
    first: bool,
    entries: &mut Vec<(&'a str, f64)>,
) -> Option<()> {
    let id = r.string()?;
    let (model, version) = if first {
        c.model = r.string()?;
        c.version = r.string()?;
        (c.model, c.version)
    } else {
        same_string(r, c.model)?;
        same_string(r, c.version)?;
        (c.model, c.version)
    };
    let ts = r.long()?;
    if !(TIMESTAMP_MIN_MS..=TIMESTAMP_MAX_MS).contains(&ts) {
        return None;
    }
    c.ids.push(id);
    c.timestamps.extend_from_slice(&ts.to_le_bytes());
    let rows = &mut c.rows;
    put_rb_string(rows, id.as_bytes());
    put_rb_string(rows, model.as_bytes());
    put_rb_string(rows, version.as_bytes());
    rows.extend_from_slice(&ts.to_le_bytes());

    // features: every value a double (union branch 2), the names of the first event
    let mut j = 0usize;
    entries.clear();
    loop {
        let count = r.block_count()?;
        if count == 0 {
            break;
        }
        for _ in 0..count {
            let name = if first {
                let name = r.string()?;
                if c.names.contains(&name) {
                    return None; // a repeated key: the record path keeps the last value
                }
                c.names.push(name);
                name
            } else {
                let name = *c.names.get(j)?;
                same_string(r, name)?;
                name
            };
            if r.long()? != 2 {
                return None;
            }
            let value = r.finite()?;
            entries.push((name, value));
            j += 1;
        }
    }
    if j != c.names.len() {
        return None;
    }
    put_uvarint(rows, j as u64); // features_num
    for &(name, value) in entries.iter() {
        put_rb_string(rows, name.as_bytes());
        put_f64(rows, value);
    }
    put_uvarint(rows, 0); // features_cat
    put_uvarint(rows, 0); // features_missing

    // prediction ["double", "string"]: Nullable(Float64), Nullable(String)
    match r.long()? {
        0 => {
            let v = r.finite()?;
            rows.push(NOT_NULL);
            put_f64(rows, v);
            rows.push(NULL);
            c.predictions.push(Prediction::Number(v));
        }
        1 => {
            let s = r.string()?;
            rows.push(NULL);
            rows.push(NOT_NULL);
            put_rb_string(rows, s.as_bytes());
            c.predictions.push(Prediction::Text(s));
        }
        _ => return None,
    }

    // scores ["null", map<double>]: Map(String, Float64), null as an empty map
    match r.long()? {
        0 => put_uvarint(rows, 0),
        1 => {
            let mut scores: Vec<(&str, f64)> = Vec::new();
            loop {
                let count = r.block_count()?;
                if count == 0 {
                    break;
                }
                for _ in 0..count {
                    let key = r.string()?;
                    let value = r.finite()?;
                    if scores.iter().any(|(k, _)| *k == key) {
                        return None; // a repeated key: the record path keeps the last value
                    }
                    scores.push((key, value));
                }
            }
            put_uvarint(rows, scores.len() as u64);
            for (key, value) in scores {
                put_rb_string(rows, key.as_bytes());
                put_f64(rows, value);
            }
        }
        _ => return None,
    }
    // segment: only null (a segmented batch goes record by record)
    if r.long()? != 0 {
        return None;
    }
    put_uvarint(rows, 0);
    r.at_end().then_some(())
}

/// The columns of the batch and its feature values, feature-major (feature `j`'s value
/// of event `i` at `j * n + i`); `None` unless every event has the common shape. Pure
/// Rust: runs without the GIL.
fn decode<'a>(payloads: &[&'a [u8]], skip: usize) -> Option<(Columns<'a>, Vec<f64>)> {
    let n = payloads.len();
    let mut c = Columns {
        ids: Vec::with_capacity(n),
        model: "",
        version: "",
        timestamps: Vec::with_capacity(n * 8),
        names: Vec::new(),
        predictions: Vec::with_capacity(n),
        rows: Vec::new(),
    };
    let mut entries = Vec::new();
    // feature-major from the start: one buffer, written once, copied once into the bytes
    // object
    let mut by_feature: Vec<f64> = Vec::new();
    for (i, b) in payloads.iter().enumerate() {
        let mut r = Reader::new(b, skip)?;
        event(&mut c, &mut r, i == 0, &mut entries)?;
        if i == 0 {
            by_feature = vec![0f64; c.names.len() * n];
            c.rows.reserve(c.rows.len() * n);
        }
        for (j, &(_, v)) in entries.iter().enumerate() {
            *by_feature.get_mut(j * n + i)? = v;
        }
    }
    Some((c, by_feature))
}

/// `(ids, model_name, model_version, timestamps, names, values, predictions, rows)` of a
/// batch of `prediction` payloads, or `None` unless every payload is exact `bytes` of at
/// most `max_len` bytes starting with `header` whose record has the common shape:
///
/// - `ids`: list of `str`; `model_name`, `model_version`: `str`, the same in every event;
/// - `timestamps`: `bytes`, int64 little-endian epoch ms per event (each within the
///   range RowBinary takes);
/// - `names`: list of `str`, the feature names of every event, in the order written;
/// - `values`: `bytes`, float64 little-endian, feature-major: feature `j`'s value of
///   event `i` at index `j * n + i` (every value a finite double);
/// - `predictions`: list of `float | str`;
/// - `rows`: RowBinary of `COLUMNS["predictions"]` (what `rowbinary_predictions` writes
///   for the decoded records).
pub fn predictions<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyList>,
    header: &[u8],
    max_len: usize,
    mut cache: Option<&mut StringCache>,
) -> Option<Bound<'py, PyTuple>> {
    let n = payloads.len();
    if n == 0 {
        return None;
    }
    let mut held: Vec<Bound<'py, PyBytes>> = Vec::with_capacity(n);
    for item in payloads.iter() {
        let b = item.cast_exact::<PyBytes>().ok()?.clone();
        let len = b.as_bytes().len();
        if len > max_len || !b.as_bytes().starts_with(header) {
            return None;
        }
        held.push(b);
    }
    // The bytes are immutable and held: decoded without the GIL (another thread — the
    // processing thread behind an API, the store writer behind a worker — runs meanwhile);
    // only the Python objects below need it.
    let slices: Vec<&[u8]> = held.iter().map(|b| b.as_bytes()).collect();
    let (c, by_feature) = py.detach(|| decode(&slices, header.len()))?;
    let values = PyBytes::new_with(py, by_feature.len() * 8, |buf| {
        for (chunk, v) in buf.chunks_exact_mut(8).zip(&by_feature) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        Ok(())
    })
    .ok()?;
    let mut repeated = |s: &str| match cache.as_deref_mut() {
        Some(cache) => cache.get(py, s),
        None => PyString::new(py, s),
    };
    let names = PyList::new(py, c.names.iter().map(|s| repeated(s))).ok()?;
    let model = repeated(c.model);
    let version = repeated(c.version);
    let predictions = PyList::empty(py);
    for p in &c.predictions {
        match p {
            Prediction::Number(v) => predictions.append(PyFloat::new(py, *v)).ok()?,
            Prediction::Text(s) => predictions.append(repeated(s)).ok()?,
        }
    }
    let ids = PyList::new(py, c.ids.iter().map(|s| PyString::new(py, s))).ok()?;
    let items: [Bound<'py, PyAny>; 8] = [
        ids.into_any(),
        model.into_any(),
        version.into_any(),
        PyBytes::new(py, &c.timestamps).into_any(),
        names.into_any(),
        values.into_any(),
        predictions.into_any(),
        PyBytes::new(py, &c.rows).into_any(),
    ];
    PyTuple::new(py, items).ok()
}
