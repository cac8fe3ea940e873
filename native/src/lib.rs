//! `driftline_native`: the hot path of driftline's event contract in Rust.
//!
//! Avro encode/decode of the `prediction` and `label` schemas (bodies byte-for-byte
//! what `fastavro.schemaless_writer` writes, records equal to what
//! `fastavro.schemaless_reader` returns), and ClickHouse RowBinary rows of the
//! `predictions` and `labels` tables (what `schemas/rows.py` would insert).
//!
//! Every function handles only the strict common shape and returns `None` for anything
//! else, so that the caller runs the Python path, which raises the right error or
//! handles the unusual value. No function raises for bad data, and none panics
//! (the code is written panic-free; `guard` turns a panic into `None` all the same).

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

mod avro;
mod columns;
mod dedup;
mod ecdf;
mod hashing;
mod native_format;
mod pending;
mod rowbinary;
mod strings;
mod wire;

/// Runs `f`, mapping a panic to `None`.
pub(crate) fn guard<T>(f: impl FnOnce() -> Option<T>) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok().flatten()
}

// --- strict value classification -----------------------------------------------------
// Exact types only (`type(x) is str`, ...): a subclass may override anything.

/// The UTF-8 of an exact `str` (`None` for other types and for lone surrogates).
#[inline]
pub(crate) fn exact_str<'a>(v: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    if !v.is_exact_instance_of::<PyString>() {
        return None;
    }
    v.cast::<PyString>().ok()?.to_str().ok()
}

/// An exact `int` (not `bool`) within int64.
#[inline]
pub(crate) fn exact_long(v: &Bound<'_, PyAny>) -> Option<i64> {
    if !v.is_exact_instance_of::<PyInt>() {
        return None;
    }
    v.extract::<i64>().ok()
}

/// A finite exact `float`.
#[inline]
pub(crate) fn exact_finite(v: &Bound<'_, PyAny>) -> Option<f64> {
    if !v.is_exact_instance_of::<PyFloat>() {
        return None;
    }
    let f = v.cast::<PyFloat>().ok()?.value();
    f.is_finite().then_some(f)
}

/// An exact `bool`.
#[inline]
pub(crate) fn exact_bool(v: &Bound<'_, PyAny>) -> Option<bool> {
    if !v.is_exact_instance_of::<PyBool>() {
        return None;
    }
    Some(v.cast::<PyBool>().ok()?.is_true())
}

/// A value of a `double` field: a finite exact `float`, or an exact `int` within int64
/// (converted with round-half-even, as Python's `float(int)`).
#[inline]
pub(crate) fn number(v: &Bound<'_, PyAny>) -> Option<f64> {
    if v.is_exact_instance_of::<PyFloat>() {
        return exact_finite(v);
    }
    exact_long(v).map(|i| i as f64)
}

/// An exact `dict`.
#[inline]
pub(crate) fn exact_dict<'a, 'py>(v: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, PyDict>> {
    if !v.is_exact_instance_of::<PyDict>() {
        return None;
    }
    v.cast::<PyDict>().ok()
}

/// A scalar of the features map `["null", "long", "double", "string", "boolean"]`.
pub(crate) enum Feature<'a> {
    Null,
    Long(i64),
    Double(f64),
    Str(&'a str),
    Bool(bool),
}

/// Classifies a feature value the way fastavro picks its union branch: the first branch
/// whose validator accepts it, i.e. None → null, int → long, float → double, str →
/// string, bool → boolean (a bool is not a long for fastavro). Anything else (including
/// ints beyond int64, which fastavro would write as a double, and NaN/inf) is `None`.
#[inline]
pub(crate) fn feature<'a>(v: &'a Bound<'_, PyAny>) -> Option<Feature<'a>> {
    if v.is_exact_instance_of::<PyFloat>() {
        return exact_finite(v).map(Feature::Double);
    }
    if v.is_none() {
        return Some(Feature::Null);
    }
    if v.is_exact_instance_of::<PyString>() {
        return exact_str(v).map(Feature::Str);
    }
    if v.is_exact_instance_of::<PyBool>() {
        return exact_bool(v).map(Feature::Bool);
    }
    exact_long(v).map(Feature::Long)
}

// --- Python API ----------------------------------------------------------------------

fn bytes_or_none<'py>(py: Python<'py>, data: Option<Vec<u8>>) -> Option<Bound<'py, PyBytes>> {
    data.map(|d| PyBytes::new(py, &d))
}

/// `header` + Avro body of a `prediction` record, or None when the record is not in the
/// strict common shape (the Python codec then validates, explains and encodes).
#[pyfunction]
fn encode_prediction<'py>(
    py: Python<'py>,
    header: &[u8],
    record: &Bound<'py, PyAny>,
) -> Option<Bound<'py, PyBytes>> {
    bytes_or_none(
        py,
        guard(|| avro::encode(avro::Schema::Prediction, header, record)),
    )
}

/// `header` + Avro body of a `label` record, or None (see `encode_prediction`).
#[pyfunction]
fn encode_label<'py>(
    py: Python<'py>,
    header: &[u8],
    record: &Bound<'py, PyAny>,
) -> Option<Bound<'py, PyBytes>> {
    bytes_or_none(
        py,
        guard(|| avro::encode(avro::Schema::Label, header, record)),
    )
}

fn encode_many<'py>(
    py: Python<'py>,
    schema: avro::Schema,
    header: &[u8],
    records: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for record in records.iter() {
        out.append(bytes_or_none(
            py,
            guard(|| avro::encode(schema, header, &record)),
        ))?;
    }
    Ok(out)
}

/// Predictions given as columns (see `avro::encode_prediction_rows`): one `bytes` per
/// row, or None when a column is outside the strict shape.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn encode_prediction_rows<'py>(
    py: Python<'py>,
    header: &[u8],
    ids: &Bound<'py, PyList>,
    model: &str,
    version: &str,
    timestamps: &[u8],
    names: &Bound<'py, PyList>,
    values: &[u8],
    predictions: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let rows = guard(|| {
        avro::encode_prediction_rows(
            header,
            ids,
            model,
            version,
            timestamps,
            names,
            values,
            predictions,
        )
    });
    match rows {
        None => Ok(None),
        Some(rows) => Ok(Some(PyList::new(
            py,
            rows.iter().map(|r| PyBytes::new(py, r)),
        )?)),
    }
}

/// `encode_prediction` over a list: one `bytes | None` per record.
#[pyfunction]
fn encode_predictions<'py>(
    py: Python<'py>,
    header: &[u8],
    records: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyList>> {
    encode_many(py, avro::Schema::Prediction, header, records)
}

/// `encode_label` over a list: one `bytes | None` per record.
#[pyfunction]
fn encode_labels<'py>(
    py: Python<'py>,
    header: &[u8],
    records: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyList>> {
    encode_many(py, avro::Schema::Label, header, records)
}

fn normalize_many<'py>(
    py: Python<'py>,
    schema: avro::Schema,
    records: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for record in records.iter() {
        match guard(|| avro::normalize(py, schema, &record)) {
            Some(dict) => out.append(dict)?,
            None => out.append(py.None())?,
        }
    }
    Ok(out)
}

/// For each `prediction` record, the record as `decode(encode(record))` would return it
/// (every field in schema order, defaults filled, ints of double fields as floats, maps
/// copied), or None outside the shape handled (the Python normalizer then runs).
#[pyfunction]
fn normalize_predictions<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyList>> {
    normalize_many(py, avro::Schema::Prediction, records)
}

/// `normalize_predictions` for `label` records.
#[pyfunction]
fn normalize_labels<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyList>> {
    normalize_many(py, avro::Schema::Label, records)
}

/// The value a numpy float64 conversion gives an exact `float`, `int` (within int64),
/// `bool` or `None` (NaN); `None` for anything else.
#[inline]
fn as_float64(v: &Bound<'_, PyAny>) -> Option<f64> {
    if v.is_exact_instance_of::<PyFloat>() {
        return Some(v.cast::<PyFloat>().ok()?.value());
    }
    if v.is_none() {
        return Some(f64::NAN);
    }
    if v.is_exact_instance_of::<PyBool>() {
        return Some(if v.cast::<PyBool>().ok()?.is_true() {
            1.0
        } else {
            0.0
        });
    }
    exact_long(v).map(|i| i as f64)
}

/// The numeric feature columns of a batch: for `names` (k) and the features dicts of n
/// events, k * n float64 values (native byte order), column by column — what
/// `np.array([[f[name] for name in names] for f in feats], dtype=np.float64).T` holds.
/// None when any dict is not an exact dict, misses a name, or holds a value other than an
/// exact float, int within int64, bool or None (the caller converts in Python then).
#[pyfunction]
fn feature_columns<'py>(
    py: Python<'py>,
    feats: &Bound<'py, PyList>,
    names: &Bound<'py, PyList>,
) -> Option<Bound<'py, PyBytes>> {
    let n = feats.len();
    let k = names.len();
    let keys: Vec<Bound<'py, PyAny>> = names.iter().collect();
    let out = guard(|| {
        let mut out = vec![0f64; n.checked_mul(k)?];
        for (i, f) in feats.iter().enumerate() {
            let dict = exact_dict(&f)?;
            for (j, key) in keys.iter().enumerate() {
                let value = dict.get_item(key).ok()??;
                *out.get_mut(j * n + i)? = as_float64(&value)?;
            }
        }
        Some(out)
    })?;
    PyBytes::new_with(py, out.len() * 8, |buffer| {
        for (chunk, value) in buffer.chunks_exact_mut(8).zip(&out) {
            chunk.copy_from_slice(&value.to_ne_bytes());
        }
        Ok(())
    })
    .ok()
}

/// The `prediction` record whose Avro body spans `data[start:]`, or None when the body is
/// invalid or unusual (the Python codec then decodes it or raises the DecodeError).
#[pyfunction]
fn decode_prediction<'py>(
    py: Python<'py>,
    data: &[u8],
    start: usize,
) -> Option<Bound<'py, PyDict>> {
    guard(|| strings::with_cache(|c| avro::decode(py, avro::Schema::Prediction, data, start, c)))
}

/// The `label` record whose Avro body spans `data[start:]`, or None.
#[pyfunction]
fn decode_label<'py>(py: Python<'py>, data: &[u8], start: usize) -> Option<Bound<'py, PyDict>> {
    guard(|| strings::with_cache(|c| avro::decode(py, avro::Schema::Label, data, start, c)))
}

fn decode_many<'py>(
    py: Python<'py>,
    schema: avro::Schema,
    payloads: &Bound<'py, PyList>,
    start: usize,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    strings::with_cache(|mut cache| {
        for item in payloads.iter() {
            let record = match item.cast::<PyBytes>() {
                Ok(b) => {
                    guard(|| avro::decode(py, schema, b.as_bytes(), start, cache.as_deref_mut()))
                }
                Err(_) => None,
            };
            out.append(record)?;
        }
        Ok(out)
    })
}

/// `decode_prediction` over a list of `bytes`: one `dict | None` per payload.
#[pyfunction]
fn decode_predictions<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyList>,
    start: usize,
) -> PyResult<Bound<'py, PyList>> {
    decode_many(py, avro::Schema::Prediction, payloads, start)
}

/// `decode_label` over a list of `bytes`: one `dict | None` per payload.
#[pyfunction]
fn decode_labels<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyList>,
    start: usize,
) -> PyResult<Bound<'py, PyList>> {
    decode_many(py, avro::Schema::Label, payloads, start)
}

/// Every payload decoded, or None as soon as one is not: each must be exact `bytes` of at
/// most `max_len` bytes that starts with `header` (the current schema's single-object
/// header) and holds one record after it. The caller's common batch in one call, with
/// the checks `AvroCodec._decode_native_runs` makes per payload in Python.
fn decode_all<'py>(
    py: Python<'py>,
    schema: avro::Schema,
    payloads: &Bound<'py, PyList>,
    header: &[u8],
    max_len: usize,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let out = PyList::empty(py);
    strings::with_cache(|mut cache| {
        for item in payloads.iter() {
            let Ok(b) = item.cast_exact::<PyBytes>() else {
                return Ok(None); // not bytes, or a subclass: the Python path decides
            };
            let data = b.as_bytes();
            if data.len() > max_len || !data.starts_with(header) {
                return Ok(None);
            }
            match guard(|| avro::decode(py, schema, data, header.len(), cache.as_deref_mut())) {
                Some(record) => out.append(record)?,
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    })
}

/// `decode_all` of `prediction` payloads.
#[pyfunction]
fn decode_predictions_all<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyList>,
    header: &[u8],
    max_len: usize,
) -> PyResult<Option<Bound<'py, PyList>>> {
    decode_all(py, avro::Schema::Prediction, payloads, header, max_len)
}

/// `decode_all` of `label` payloads.
#[pyfunction]
fn decode_labels_all<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyList>,
    header: &[u8],
    max_len: usize,
) -> PyResult<Option<Bound<'py, PyList>>> {
    decode_all(py, avro::Schema::Label, payloads, header, max_len)
}

/// `prediction` payloads decoded into columns (see `columns::predictions`), or None for
/// any batch outside the common shape (then `decode_predictions_all` / the Python path).
#[pyfunction]
fn decode_prediction_columns<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyList>,
    header: &[u8],
    max_len: usize,
) -> Option<Bound<'py, PyTuple>> {
    strings::with_cache(|cache| {
        guard(|| columns::predictions(py, payloads, header, max_len, cache))
    })
}

/// RowBinary rows (columns of `COLUMNS["predictions"]`) of decoded `prediction` records,
/// or None when any record is outside the strict shape (use the Python rows instead).
#[pyfunction]
fn rowbinary_predictions<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
) -> Option<Bound<'py, PyBytes>> {
    bytes_or_none(py, guard(|| rowbinary::predictions(py, records)))
}

/// RowBinary rows (columns of `COLUMNS["labels"]`) of decoded `label` records, or None.
#[pyfunction]
fn rowbinary_labels<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
) -> Option<Bound<'py, PyBytes>> {
    bytes_or_none(py, guard(|| rowbinary::labels(py, records)))
}

/// RowBinary `rows` of the columns `names` of ClickHouse types `types`, as one Native
/// block (parsed several times faster by ClickHouse); None for a type it does not handle
/// or rows that do not parse exactly (insert the RowBinary then). Runs without the GIL.
#[pyfunction]
fn rowbinary_to_native<'py>(
    py: Python<'py>,
    names: Vec<String>,
    types: Vec<String>,
    rows: &[u8],
) -> Option<Bound<'py, PyBytes>> {
    let block = py.detach(|| guard(|| native_format::from_rowbinary(&names, &types, rows)))?;
    let chunks = block.chunks();
    let len = chunks.iter().map(|c| c.len()).sum();
    // Written straight into the bytes object: one copy of the block, not two.
    PyBytes::new_with(py, len, |buf| {
        let mut at = 0;
        for chunk in &chunks {
            buf[at..at + chunk.len()].copy_from_slice(chunk);
            at += chunk.len();
        }
        Ok(())
    })
    .ok()
}

/// `blake2b(id.encode(), digest_size=size).digest()` of each id, concatenated (`size`
/// bytes per id; 8-byte digests read as little-endian uint64 are the windows' event keys);
/// None if an id is not an exact `str` or `size` is outside 1..=64.
#[pyfunction]
fn blake2b_concat<'py>(
    py: Python<'py>,
    ids: &Bound<'py, PyList>,
    size: usize,
) -> Option<Bound<'py, PyBytes>> {
    bytes_or_none(py, guard(|| hashing::digests(ids, size)))
}

/// `(max, min, integral of |gap|)` of the gap between the ECDFs of two sorted samples of
/// finite float64s (`ndarray.tobytes()`), for the two-sample KS statistic and the
/// Wasserstein distance (`detectors.stats`); None for anything else (empty, unsorted,
/// NaN or infinite values), and the numpy path computes it.
#[pyfunction]
fn ecdf_gap_stats(a: &[u8], b: &[u8]) -> Option<(f64, f64, f64)> {
    guard(|| ecdf::gap_stats(a, b))
}

/// `blake2b(id.encode(), digest_size=size).digest()` of each id, one `bytes` per id
/// (the duplicate filter's keys); None as for `blake2b_concat`.
#[pyfunction]
fn blake2b_each<'py>(
    py: Python<'py>,
    ids: &Bound<'py, PyList>,
    size: usize,
) -> Option<Bound<'py, PyList>> {
    guard(|| hashing::digest_list(py, ids, size))
}

/// The embedded runtime's input-log frames of `payloads`, all of topic `index`:
/// `[u32 big-endian length][u8 index][payload]` each, concatenated (`streams.log`'s
/// format); None if an item is not `bytes` or longer than a u32 can say.
#[pyfunction]
fn log_frames<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyList>,
    index: u8,
) -> Option<Bound<'py, PyBytes>> {
    let mut parts: Vec<Bound<'py, PyBytes>> = Vec::with_capacity(payloads.len());
    let mut total = 0usize;
    for item in payloads.iter() {
        let b = item.cast_into::<PyBytes>().ok()?;
        u32::try_from(b.as_bytes().len()).ok()?;
        total = total.checked_add(5 + b.as_bytes().len())?;
        parts.push(b);
    }
    PyBytes::new_with(py, total, |buffer| {
        let mut at = 0;
        for part in &parts {
            let data = part.as_bytes();
            buffer[at..at + 4].copy_from_slice(&(data.len() as u32).to_be_bytes());
            buffer[at + 4] = index;
            buffer[at + 5..at + 5 + data.len()].copy_from_slice(data);
            at += 5 + data.len();
        }
        Ok(())
    })
    .ok()
}

/// The body of an Avro `{"type": "array", "items": "bytes"}` holding `payloads` in one
/// block (count, each item as length and bytes, then the 0 that ends the array), as
/// `schemas.batch.join` writes it; None if an item is not exact `bytes`.
#[pyfunction]
fn join_bytes_array<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyList>,
) -> Option<Bound<'py, PyBytes>> {
    let mut out: Vec<u8> = Vec::new();
    if !payloads.is_empty() {
        wire::put_long(&mut out, payloads.len() as i64);
        for item in payloads.iter() {
            let b = item.cast_exact::<PyBytes>().ok()?;
            wire::put_avro_bytes(&mut out, b.as_bytes());
        }
    }
    out.push(0);
    Some(PyBytes::new(py, &out))
}

/// The items of an Avro `{"type": "array", "items": "bytes"}` body, as `bytes`; None if
/// the body is not exactly one such array (a malformed or overlong varint, a negative or
/// overrunning length, no end, bytes after it): then `schemas.batch.split` finds where
/// and why in Python. Blocks in the byte-size form (negative count, then size) are read.
#[pyfunction]
fn split_bytes_array<'py>(py: Python<'py>, body: &[u8]) -> Option<Bound<'py, PyList>> {
    let mut frames: Vec<&[u8]> = Vec::new();
    let mut reader = wire::Reader::new(body, 0)?;
    loop {
        let count = reader.long()?;
        if count == 0 {
            break;
        }
        let count = if count < 0 {
            let size = reader.long()?;
            if size < 0 {
                return None;
            }
            count.checked_neg()?
        } else {
            count
        };
        for _ in 0..count {
            let n = usize::try_from(reader.long()?).ok()?;
            frames.push(reader.take(n)?);
        }
    }
    if !reader.at_end() {
        return None;
    }
    PyList::new(py, frames.into_iter().map(|f| PyBytes::new(py, f))).ok()
}

/// A copy of `features` when the SDK's `_features` would return it unchanged: an exact
/// `dict` whose keys are exact `str` and whose values are None, exact `bool`, `int`
/// (any size), `str` or finite `float`; else None (numpy scalars, NaN, a subclass, ...),
/// and the Python path converts or refuses. A fraction of the Python check's cost.
#[pyfunction]
fn plain_features<'py>(features: &Bound<'py, PyAny>) -> Option<Bound<'py, PyDict>> {
    let dict = exact_dict(features)?;
    for (key, value) in dict.iter() {
        if !key.is_exact_instance_of::<PyString>() {
            return None;
        }
        let plain = value.is_none()
            || value.is_exact_instance_of::<PyBool>()
            || value.is_exact_instance_of::<PyInt>()
            || value.is_exact_instance_of::<PyString>()
            || exact_finite(&value).is_some();
        if !plain {
            return None;
        }
    }
    dict.copy().ok()
}

#[pymodule]
fn driftline_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(encode_prediction, m)?)?;
    m.add_function(wrap_pyfunction!(encode_label, m)?)?;
    m.add_function(wrap_pyfunction!(encode_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(encode_labels, m)?)?;
    m.add_function(wrap_pyfunction!(decode_prediction, m)?)?;
    m.add_function(wrap_pyfunction!(decode_label, m)?)?;
    m.add_function(wrap_pyfunction!(decode_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(decode_labels, m)?)?;
    m.add_function(wrap_pyfunction!(decode_predictions_all, m)?)?;
    m.add_function(wrap_pyfunction!(decode_labels_all, m)?)?;
    m.add_function(wrap_pyfunction!(rowbinary_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(rowbinary_labels, m)?)?;
    m.add_function(wrap_pyfunction!(rowbinary_to_native, m)?)?;
    m.add_function(wrap_pyfunction!(blake2b_concat, m)?)?;
    m.add_function(wrap_pyfunction!(ecdf_gap_stats, m)?)?;
    m.add_function(wrap_pyfunction!(blake2b_each, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_labels, m)?)?;
    m.add_function(wrap_pyfunction!(feature_columns, m)?)?;
    m.add_class::<dedup::RecentIds>()?;
    m.add_class::<pending::PendingPredictions>()?;
    m.add_function(wrap_pyfunction!(decode_prediction_columns, m)?)?;
    m.add_function(wrap_pyfunction!(log_frames, m)?)?;
    m.add_function(wrap_pyfunction!(plain_features, m)?)?;
    m.add_function(wrap_pyfunction!(join_bytes_array, m)?)?;
    m.add_function(wrap_pyfunction!(encode_prediction_rows, m)?)?;
    m.add_function(wrap_pyfunction!(split_bytes_array, m)?)?;
    // The schemas this build implements: CRC-64-AVRO fingerprints (little-endian, as on
    // the wire) of their Parsing Canonical Form. The codec uses the native path for a
    // schema only when its own fingerprint is this one.
    m.add(
        "PREDICTION_FINGERPRINT",
        PyBytes::new(py, &avro::PREDICTION_FINGERPRINT),
    )?;
    m.add(
        "LABEL_FINGERPRINT",
        PyBytes::new(py, &avro::LABEL_FINGERPRINT),
    )?;
    m.add("TIMESTAMP_MIN_MS", rowbinary::TIMESTAMP_MIN_MS)?;
    m.add("TIMESTAMP_MAX_MS", rowbinary::TIMESTAMP_MAX_MS)?;
    Ok(())
}
