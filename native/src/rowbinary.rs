//! ClickHouse RowBinary rows of the raw-event tables, `schemas/clickhouse/predictions.sql`
//! and `labels.sql`, in the column order of `COLUMNS` in `schemas/rows.py`, holding what
//! `rows._prediction` / `rows._label` would insert:
//!
//! - `String` and `LowCardinality(String)`: LEB128 length + UTF-8 bytes;
//! - `Nullable(T)`: one byte, 1 for NULL (nothing follows) or 0 followed by the value;
//!   `LowCardinality(Nullable(String))` is written as `Nullable(String)`;
//! - `DateTime64(3, 'UTC')`: Int64 epoch milliseconds, little-endian;
//! - `Float64`: IEEE 754 little-endian;
//! - `Map(K, V)`: LEB128 entry count, then key, value, key, value, ...;
//! - `Array(String)`: LEB128 count, then the strings.
//!
//! Records must be in the strict shape the codec returns (exact types, finite numbers,
//! ints within int64, timestamps that `rows.ms_to_datetime` accepts); one record outside
//! it makes the whole batch `None`, and the caller builds the rows in Python.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::wire::{put_f64, put_rb_string, put_uvarint};
use crate::{exact_dict, exact_long, exact_str, feature, number, Feature};

/// 0001-01-01T00:00:00Z: the earliest epoch millisecond `ms_to_datetime` accepts.
pub const TIMESTAMP_MIN_MS: i64 = -62_135_596_800_000;
/// 9999-12-31T23:59:59.999Z: the latest epoch millisecond `ms_to_datetime` accepts.
pub const TIMESTAMP_MAX_MS: i64 = 253_402_300_799_999;

const NOT_NULL: u8 = 0;
const NULL: u8 = 1;

/// Per-batch scratch buffers for the three feature columns (reused from row to row).
#[derive(Default)]
struct Features {
    num: Vec<u8>,
    cat: Vec<u8>,
    missing: Vec<u8>,
}

fn required<'py>(d: &Bound<'py, PyDict>, key: &Bound<'py, PyString>) -> Option<Bound<'py, PyAny>> {
    d.get_item(key).ok()?
}

/// An optional field: absent and None are both `None`.
fn optional<'py>(
    d: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
) -> Option<Option<Bound<'py, PyAny>>> {
    let v = d.get_item(key).ok()?;
    Some(v.filter(|v| !v.is_none()))
}

#[inline]
fn put_str(out: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Option<()> {
    put_rb_string(out, exact_str(v)?.as_bytes());
    Some(())
}

fn put_timestamp(out: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Option<()> {
    let ms = exact_long(v)?;
    if !(TIMESTAMP_MIN_MS..=TIMESTAMP_MAX_MS).contains(&ms) {
        return None;
    }
    out.extend_from_slice(&ms.to_le_bytes());
    Some(())
}

/// `Nullable(Float64), Nullable(String)` of a `["double", "string"]` value
/// (`rows._number_or_category`).
fn put_number_or_category(out: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Option<()> {
    if let Some(s) = exact_str(v) {
        out.push(NULL);
        out.push(NOT_NULL);
        put_rb_string(out, s.as_bytes());
    } else {
        let f = number(v)?;
        out.push(NOT_NULL);
        put_f64(out, f);
        out.push(NULL);
    }
    Some(())
}

/// `features_num Map(String, Float64), features_cat Map(String, String),
/// features_missing Array(String)` (`rows._features`): numbers (int, finite float) as
/// Float64, strings and bools ('true'/'false') as categories, None as missing.
fn put_features(out: &mut Vec<u8>, scratch: &mut Features, v: &Bound<'_, PyAny>) -> Option<()> {
    let dict = exact_dict(v)?;
    scratch.num.clear();
    scratch.cat.clear();
    scratch.missing.clear();
    let (mut n_num, mut n_cat, mut n_missing) = (0u64, 0u64, 0u64);
    for (key, value) in dict.iter() {
        let name = exact_str(&key)?.as_bytes();
        match feature(&value)? {
            Feature::Double(f) => {
                put_rb_string(&mut scratch.num, name);
                put_f64(&mut scratch.num, f);
                n_num += 1;
            }
            Feature::Long(i) => {
                put_rb_string(&mut scratch.num, name);
                put_f64(&mut scratch.num, i as f64);
                n_num += 1;
            }
            Feature::Str(s) => {
                put_rb_string(&mut scratch.cat, name);
                put_rb_string(&mut scratch.cat, s.as_bytes());
                n_cat += 1;
            }
            Feature::Bool(b) => {
                put_rb_string(&mut scratch.cat, name);
                put_rb_string(&mut scratch.cat, if b { b"true" } else { b"false" });
                n_cat += 1;
            }
            Feature::Null => {
                put_rb_string(&mut scratch.missing, name);
                n_missing += 1;
            }
        }
    }
    put_uvarint(out, n_num);
    out.extend_from_slice(&scratch.num);
    put_uvarint(out, n_cat);
    out.extend_from_slice(&scratch.cat);
    put_uvarint(out, n_missing);
    out.extend_from_slice(&scratch.missing);
    Some(())
}

/// A `Map(String, V)` of an optional map field: absent, None or empty → empty map.
fn put_optional_map(
    out: &mut Vec<u8>,
    v: Option<Bound<'_, PyAny>>,
    mut value: impl FnMut(&mut Vec<u8>, &Bound<'_, PyAny>) -> Option<()>,
) -> Option<()> {
    let Some(v) = v else {
        put_uvarint(out, 0);
        return Some(());
    };
    let dict = exact_dict(&v)?;
    put_uvarint(out, dict.len() as u64);
    for (key, item) in dict.iter() {
        put_str(out, &key)?;
        value(out, &item)?;
    }
    Some(())
}

fn put_score(out: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Option<()> {
    put_f64(out, number(v)?);
    Some(())
}

fn prediction_row(
    py: Python<'_>,
    out: &mut Vec<u8>,
    scratch: &mut Features,
    record: &Bound<'_, PyAny>,
) -> Option<()> {
    let d = exact_dict(record)?;
    put_str(out, &required(d, intern!(py, "prediction_id"))?)?;
    put_str(out, &required(d, intern!(py, "model_name"))?)?;
    put_str(out, &required(d, intern!(py, "model_version"))?)?;
    put_timestamp(out, &required(d, intern!(py, "timestamp"))?)?;
    put_features(out, scratch, &required(d, intern!(py, "features"))?)?;
    put_number_or_category(out, &required(d, intern!(py, "prediction"))?)?;
    put_optional_map(out, optional(d, intern!(py, "scores"))?, put_score)?;
    put_optional_map(out, optional(d, intern!(py, "segment"))?, put_str)?;
    Some(())
}

fn label_row(py: Python<'_>, out: &mut Vec<u8>, record: &Bound<'_, PyAny>) -> Option<()> {
    let d = exact_dict(record)?;
    put_str(out, &required(d, intern!(py, "prediction_id"))?)?;
    put_str(out, &required(d, intern!(py, "model_name"))?)?;
    match optional(d, intern!(py, "model_version"))? {
        Some(v) => {
            out.push(NOT_NULL);
            put_str(out, &v)?;
        }
        None => out.push(NULL),
    }
    put_number_or_category(out, &required(d, intern!(py, "label"))?)?;
    put_timestamp(out, &required(d, intern!(py, "timestamp"))?)?;
    Some(())
}

/// RowBinary block of `COLUMNS["predictions"]` rows, or `None`.
pub fn predictions(py: Python<'_>, records: &Bound<'_, PyList>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(records.len().saturating_mul(512));
    let mut scratch = Features::default();
    for record in records.iter() {
        prediction_row(py, &mut out, &mut scratch, &record)?;
    }
    Some(out)
}

/// RowBinary block of `COLUMNS["labels"]` rows, or `None`.
pub fn labels(py: Python<'_>, records: &Bound<'_, PyList>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(records.len().saturating_mul(96));
    for record in records.iter() {
        label_row(py, &mut out, &record)?;
    }
    Some(out)
}
