//! Avro binary encoding of `schemas/avro/prediction.avsc` and `label.avsc`.
//!
//! The writer mirrors `fastavro.schemaless_writer(..., disable_tuple_notation=True)`:
//! fields in schema order, absent optional fields as their default (null), maps as one
//! block (count, entries, then 0; an empty map is a single 0), and each union branch
//! chosen as fastavro does, by the first branch whose validator accepts the value.
//! The reader mirrors `fastavro.schemaless_reader(writer_schema)` for the bodies it
//! accepts: a dict with every field in schema order.
//!
//! Prediction fields: prediction_id string, model_name string, model_version string,
//! timestamp long, features map<["null","long","double","string","boolean"]>,
//! prediction ["double","string"], scores ["null", map<double>] = null,
//! segment ["null", map<string>] = null.
//! Label fields: prediction_id string, model_name string, label ["double","string"],
//! timestamp long, model_version ["null","string"] = null.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString};

use crate::strings::StringCache;
use crate::wire::{put_avro_bytes, put_f64, put_long, Reader};
use crate::{exact_dict, exact_long, exact_str, feature, number, Feature};

/// CRC-64-AVRO of the Parsing Canonical Form of `prediction.avsc`, little-endian.
pub const PREDICTION_FINGERPRINT: [u8; 8] = [0xE5, 0x7F, 0xA7, 0x4D, 0xBF, 0x24, 0x5B, 0x4F];
/// CRC-64-AVRO of the Parsing Canonical Form of `label.avsc`, little-endian.
pub const LABEL_FINGERPRINT: [u8; 8] = [0x4F, 0x66, 0x60, 0xA1, 0x2E, 0x88, 0x5C, 0xCD];

#[derive(Clone, Copy)]
pub enum Schema {
    Prediction,
    Label,
}

const PREDICTION_FIELDS: [&str; 8] = [
    "prediction_id",
    "model_name",
    "model_version",
    "timestamp",
    "features",
    "prediction",
    "scores",
    "segment",
];
const LABEL_FIELDS: [&str; 5] = [
    "prediction_id",
    "model_name",
    "label",
    "timestamp",
    "model_version",
];

// Union branch indexes, zig-zag encoded (index i is the byte 2 * i).
const BRANCH_0: u8 = 0;
const BRANCH_1: u8 = 2;
const BRANCH_2: u8 = 4;
const BRANCH_3: u8 = 6;
const BRANCH_4: u8 = 8;

// --- writer --------------------------------------------------------------------------

/// The values of an exact dict's keys, by field position; `None` for a key that is not
/// an exact `str` naming one of `fields`.
fn fields_of<'py, const N: usize>(
    record: &Bound<'py, PyAny>,
    fields: &[&str; N],
) -> Option<[Option<Bound<'py, PyAny>>; N]> {
    let dict = exact_dict(record)?;
    if dict.len() > N {
        return None;
    }
    let mut slots: [Option<Bound<'py, PyAny>>; N] = std::array::from_fn(|_| None);
    for (key, value) in dict.iter() {
        let name = exact_str(&key)?;
        let index = fields.iter().position(|f| *f == name)?;
        *slots.get_mut(index)? = Some(value);
    }
    Some(slots)
}

#[inline]
fn put_str(out: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Option<()> {
    put_avro_bytes(out, exact_str(v)?.as_bytes());
    Some(())
}

/// `["double", "string"]`: a number (int within int64 or finite float) is a double,
/// a str a string; a bool matches neither (fastavro refuses it).
#[inline]
fn put_number_or_str(out: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Option<()> {
    if v.is_exact_instance_of::<PyString>() {
        out.push(BRANCH_1);
        return put_str(out, v);
    }
    let f = number(v)?;
    out.push(BRANCH_0);
    put_f64(out, f);
    Some(())
}

/// A map: one block of `len` entries then 0, or a single 0 when empty.
fn put_map(
    out: &mut Vec<u8>,
    v: &Bound<'_, PyAny>,
    mut value: impl FnMut(&mut Vec<u8>, &Bound<'_, PyAny>) -> Option<()>,
) -> Option<()> {
    let dict = exact_dict(v)?;
    let n = dict.len();
    if n > 0 {
        put_long(out, i64::try_from(n).ok()?);
        for (key, item) in dict.iter() {
            put_str(out, &key)?;
            value(out, &item)?;
        }
    }
    out.push(0);
    Some(())
}

/// `["null", map<...>]` with default null: absent or None → null, a dict → the map.
fn put_optional_map(
    out: &mut Vec<u8>,
    v: Option<&Bound<'_, PyAny>>,
    value: impl FnMut(&mut Vec<u8>, &Bound<'_, PyAny>) -> Option<()>,
) -> Option<()> {
    match v {
        Some(v) if !v.is_none() => {
            out.push(BRANCH_1);
            put_map(out, v, value)
        }
        _ => {
            out.push(BRANCH_0);
            Some(())
        }
    }
}

fn put_feature(out: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Option<()> {
    match feature(v)? {
        Feature::Null => out.push(BRANCH_0),
        Feature::Long(i) => {
            out.push(BRANCH_1);
            put_long(out, i);
        }
        Feature::Double(f) => {
            out.push(BRANCH_2);
            put_f64(out, f);
        }
        Feature::Str(s) => {
            out.push(BRANCH_3);
            put_avro_bytes(out, s.as_bytes());
        }
        Feature::Bool(b) => {
            out.push(BRANCH_4);
            out.push(u8::from(b));
        }
    }
    Some(())
}

fn put_score(out: &mut Vec<u8>, v: &Bound<'_, PyAny>) -> Option<()> {
    put_f64(out, number(v)?);
    Some(())
}

fn encode_prediction(out: &mut Vec<u8>, record: &Bound<'_, PyAny>) -> Option<()> {
    let [id, model, version, timestamp, features, prediction, scores, segment] =
        fields_of(record, &PREDICTION_FIELDS)?;
    put_str(out, id.as_ref()?)?;
    put_str(out, model.as_ref()?)?;
    put_str(out, version.as_ref()?)?;
    put_long(out, exact_long(timestamp.as_ref()?)?);
    put_map(out, features.as_ref()?, put_feature)?;
    put_number_or_str(out, prediction.as_ref()?)?;
    put_optional_map(out, scores.as_ref(), put_score)?;
    put_optional_map(out, segment.as_ref(), put_str)?;
    Some(())
}

fn encode_label(out: &mut Vec<u8>, record: &Bound<'_, PyAny>) -> Option<()> {
    let [id, model, label, timestamp, version] = fields_of(record, &LABEL_FIELDS)?;
    put_str(out, id.as_ref()?)?;
    put_str(out, model.as_ref()?)?;
    put_number_or_str(out, label.as_ref()?)?;
    put_long(out, exact_long(timestamp.as_ref()?)?);
    match version {
        Some(v) if !v.is_none() => {
            out.push(BRANCH_1);
            put_str(out, &v)?;
        }
        _ => out.push(BRANCH_0),
    }
    Some(())
}

/// Predictions given as columns, one payload (`header` + Avro body) per row: row `i` is
/// `ids[i]`, `model`, `version`, `timestamps[i]` (int64, little-endian), the features
/// `names[j]` → `values[i * names.len() + j]` (float64, little-endian; NaN and ±inf are
/// null, a missing value, as the SDK's `predict` makes them), `predictions[i]`, and no
/// scores or segment: the bytes `encode` gives the same row as a dict. `None` when the
/// columns differ in length or an id, name or prediction is outside the strict shape.
#[allow(clippy::too_many_arguments)]
pub fn encode_prediction_rows(
    header: &[u8],
    ids: &Bound<'_, PyList>,
    model: &str,
    version: &str,
    timestamps: &[u8],
    names: &Bound<'_, PyList>,
    values: &[u8],
    predictions: &Bound<'_, PyList>,
) -> Option<Vec<Vec<u8>>> {
    let n = ids.len();
    let k = names.len();
    if predictions.len() != n || timestamps.len() != n.checked_mul(8)? {
        return None;
    }
    if values.len() != n.checked_mul(k)?.checked_mul(8)? {
        return None;
    }
    // The row's constant parts, encoded once: model and version, then each name's bytes.
    let mut fixed = Vec::new();
    put_avro_bytes(&mut fixed, model.as_bytes());
    put_avro_bytes(&mut fixed, version.as_bytes());
    let mut keys: Vec<Vec<u8>> = Vec::with_capacity(k);
    for name in names.iter() {
        let mut key = Vec::new();
        put_avro_bytes(&mut key, exact_str(&name)?.as_bytes());
        keys.push(key);
    }
    let mut count = Vec::new();
    if k > 0 {
        put_long(&mut count, i64::try_from(k).ok()?);
    }
    let mut out = Vec::with_capacity(n);
    for (i, (id, prediction)) in ids.iter().zip(predictions.iter()).enumerate() {
        let mut row = Vec::with_capacity(header.len() + 64 + 24 * k);
        row.extend_from_slice(header);
        put_str(&mut row, &id)?;
        row.extend_from_slice(&fixed);
        let ts = timestamps.get(i * 8..i * 8 + 8)?;
        put_long(&mut row, i64::from_le_bytes(ts.try_into().ok()?));
        row.extend_from_slice(&count);
        for (j, key) in keys.iter().enumerate() {
            row.extend_from_slice(key);
            let at = (i * k + j) * 8;
            let v = f64::from_le_bytes(values.get(at..at + 8)?.try_into().ok()?);
            if v.is_finite() {
                row.push(BRANCH_2);
                put_f64(&mut row, v);
            } else {
                row.push(BRANCH_0);
            }
        }
        row.push(0);
        put_number_or_str(&mut row, &prediction)?;
        row.push(BRANCH_0); // scores: null
        row.push(BRANCH_0); // segment: null
        out.push(row);
    }
    Some(out)
}

/// `header` followed by the Avro body of `record`, or `None` outside the strict shape.
pub fn encode(schema: Schema, header: &[u8], record: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(header.len() + 512);
    out.extend_from_slice(header);
    match schema {
        Schema::Prediction => encode_prediction(&mut out, record)?,
        Schema::Label => encode_label(&mut out, record)?,
    }
    Some(out)
}

// --- normalizer ----------------------------------------------------------------------
// `streams.embedded._normalize_prediction` / `_normalize_label`: the record exactly as
// `decode(encode(record))` returns it (every field, schema order, defaults filled, numbers
// of double fields as floats), without the round trip. Containers are copied; strings,
// ints and floats are immutable and shared. `None` outside the shape handled here.

/// A value of a `["double", "string"]` field as decoded: a str or float as it is, an int
/// as its float.
fn double_value<'py>(py: Python<'py>, v: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    if v.is_exact_instance_of::<PyString>() || v.is_exact_instance_of::<PyFloat>() {
        return Some(v.clone());
    }
    Some(PyFloat::new(py, number(v)?).into_any())
}

/// A copy of an exact dict (None stays None).
fn copied<'py>(py: Python<'py>, v: Option<&Bound<'py, PyAny>>) -> Option<Bound<'py, PyAny>> {
    match v {
        Some(v) if !v.is_none() => Some(exact_dict(v)?.copy().ok()?.into_any()),
        _ => Some(py.None().into_bound(py)),
    }
}

fn normalize_prediction<'py>(
    py: Python<'py>,
    record: &Bound<'py, PyAny>,
) -> Option<Bound<'py, PyDict>> {
    let [id, model, version, timestamp, features, prediction, scores, segment] =
        fields_of(record, &PREDICTION_FIELDS)?;
    let out = PyDict::new(py);
    out.set_item(intern!(py, "prediction_id"), id?).ok()?;
    out.set_item(intern!(py, "model_name"), model?).ok()?;
    out.set_item(intern!(py, "model_version"), version?).ok()?;
    out.set_item(intern!(py, "timestamp"), timestamp?).ok()?;
    out.set_item(
        intern!(py, "features"),
        exact_dict(features.as_ref()?)?.copy().ok()?,
    )
    .ok()?;
    out.set_item(
        intern!(py, "prediction"),
        double_value(py, prediction.as_ref()?)?,
    )
    .ok()?;
    let scores = match scores {
        Some(s) if !s.is_none() => {
            let copy = PyDict::new(py);
            for (key, value) in exact_dict(&s)?.iter() {
                copy.set_item(key, PyFloat::new(py, number(&value)?)).ok()?;
            }
            copy.into_any()
        }
        _ => py.None().into_bound(py),
    };
    out.set_item(intern!(py, "scores"), scores).ok()?;
    out.set_item(intern!(py, "segment"), copied(py, segment.as_ref())?)
        .ok()?;
    Some(out)
}

fn normalize_label<'py>(py: Python<'py>, record: &Bound<'py, PyAny>) -> Option<Bound<'py, PyDict>> {
    let [id, model, label, timestamp, version] = fields_of(record, &LABEL_FIELDS)?;
    let out = PyDict::new(py);
    out.set_item(intern!(py, "prediction_id"), id?).ok()?;
    out.set_item(intern!(py, "model_name"), model?).ok()?;
    out.set_item(intern!(py, "label"), double_value(py, label.as_ref()?)?)
        .ok()?;
    out.set_item(intern!(py, "timestamp"), timestamp?).ok()?;
    let version = version.unwrap_or_else(|| py.None().into_bound(py));
    out.set_item(intern!(py, "model_version"), version).ok()?;
    Some(out)
}

/// The normalized copy of `record`, or `None`.
pub fn normalize<'py>(
    py: Python<'py>,
    schema: Schema,
    record: &Bound<'py, PyAny>,
) -> Option<Bound<'py, PyDict>> {
    match schema {
        Schema::Prediction => normalize_prediction(py, record),
        Schema::Label => normalize_label(py, record),
    }
}

// --- reader --------------------------------------------------------------------------

/// A body being decoded: the input, and the cache of repeated strings when available.
struct Decoder<'a, 'py, 'c> {
    py: Python<'py>,
    r: Reader<'a>,
    strings: Option<&'c mut StringCache>,
}

impl<'py> Decoder<'_, 'py, '_> {
    fn str(&mut self) -> Option<Bound<'py, PyAny>> {
        Some(PyString::new(self.py, self.r.string()?).into_any())
    }

    /// A string that repeats from record to record (map keys, model names and versions):
    /// the same `str` object each time, from the cache.
    fn repeated_str(&mut self) -> Option<Bound<'py, PyString>> {
        let s = self.r.string()?;
        Some(match self.strings.as_deref_mut() {
            Some(cache) => cache.get(self.py, s),
            None => PyString::new(self.py, s),
        })
    }

    fn float(&mut self) -> Option<Bound<'py, PyAny>> {
        Some(PyFloat::new(self.py, self.r.finite()?).into_any())
    }

    fn long(&mut self) -> Option<Bound<'py, PyAny>> {
        Some(self.r.long()?.into_pyobject(self.py).ok()?.into_any())
    }

    fn none(&self) -> Bound<'py, PyAny> {
        self.py.None().into_bound(self.py)
    }

    /// `["double", "string"]`, the double finite.
    fn number_or_str(&mut self) -> Option<Bound<'py, PyAny>> {
        match self.r.long()? {
            0 => self.float(),
            1 => self.str(),
            _ => None,
        }
    }

    fn feature(&mut self) -> Option<Bound<'py, PyAny>> {
        match self.r.long()? {
            0 => Some(self.none()),
            1 => self.long(),
            2 => self.float(),
            3 => self.str(),
            // fastavro reads any non-zero byte as True.
            4 => Some(
                PyBool::new(self.py, self.r.byte()? != 0)
                    .to_owned()
                    .into_any(),
            ),
            _ => None,
        }
    }

    /// A map in positive-count blocks; a repeated key ends up as fastavro leaves it
    /// (first position, last value).
    fn map(
        &mut self,
        value: impl Fn(&mut Self) -> Option<Bound<'py, PyAny>>,
    ) -> Option<Bound<'py, PyDict>> {
        let dict = PyDict::new(self.py);
        loop {
            let count = self.r.block_count()?;
            if count == 0 {
                return Some(dict);
            }
            for _ in 0..count {
                let key = self.repeated_str()?;
                let item = value(self)?;
                dict.set_item(key, item).ok()?;
            }
        }
    }

    /// `["null", map<...>]`.
    fn optional_map(
        &mut self,
        value: impl Fn(&mut Self) -> Option<Bound<'py, PyAny>>,
    ) -> Option<Bound<'py, PyAny>> {
        match self.r.long()? {
            0 => Some(self.none()),
            1 => Some(self.map(value)?.into_any()),
            _ => None,
        }
    }

    fn prediction(&mut self) -> Option<Bound<'py, PyDict>> {
        let py = self.py;
        let d = PyDict::new(py);
        d.set_item(intern!(py, "prediction_id"), self.str()?).ok()?;
        d.set_item(intern!(py, "model_name"), self.repeated_str()?)
            .ok()?;
        d.set_item(intern!(py, "model_version"), self.repeated_str()?)
            .ok()?;
        d.set_item(intern!(py, "timestamp"), self.long()?).ok()?;
        d.set_item(intern!(py, "features"), self.map(Self::feature)?)
            .ok()?;
        d.set_item(intern!(py, "prediction"), self.number_or_str()?)
            .ok()?;
        // Scores are not among the codec's finite fields, but a NaN is unusual enough to
        // be left to the Python path (and NaN != NaN would defeat equality checks).
        d.set_item(intern!(py, "scores"), self.optional_map(Self::float)?)
            .ok()?;
        d.set_item(intern!(py, "segment"), self.optional_map(Self::str)?)
            .ok()?;
        Some(d)
    }

    fn label(&mut self) -> Option<Bound<'py, PyDict>> {
        let py = self.py;
        let d = PyDict::new(py);
        d.set_item(intern!(py, "prediction_id"), self.str()?).ok()?;
        d.set_item(intern!(py, "model_name"), self.repeated_str()?)
            .ok()?;
        d.set_item(intern!(py, "label"), self.number_or_str()?)
            .ok()?;
        d.set_item(intern!(py, "timestamp"), self.long()?).ok()?;
        let version = match self.r.long()? {
            0 => self.none(),
            1 => self.repeated_str()?.into_any(),
            _ => return None,
        };
        d.set_item(intern!(py, "model_version"), version).ok()?;
        Some(d)
    }
}

/// The record whose body is `data[start..]` (all of it), or `None`.
pub fn decode<'py>(
    py: Python<'py>,
    schema: Schema,
    data: &[u8],
    start: usize,
    strings: Option<&mut StringCache>,
) -> Option<Bound<'py, PyDict>> {
    let mut d = Decoder {
        py,
        r: Reader::new(data, start)?,
        strings,
    };
    let record = match schema {
        Schema::Prediction => d.prediction()?,
        Schema::Label => d.label()?,
    };
    d.r.at_end().then_some(record)
}
