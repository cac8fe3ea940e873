//! The label join's waiting predictions (`streams.pending`): prediction id → (model
//! version, event time, prediction), in arrival order, the oldest expired or evicted
//! first — the Python `OrderedDict` version's behaviour, without four Python objects and
//! a linked-list node per waiting prediction.
//!
//! Ids are kept as their text (exact matches, no digest), hashed with the standard
//! library's randomly keyed SipHash. Arrival order is a queue of (sequence, id) slots; a
//! slot whose id was joined, or arrived again later, is stale and skipped when it reaches
//! the front, and the queue is compacted when stale slots outnumber live ones.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyList, PyString, PyTuple};

struct Entry {
    seq: u64,
    version: u32,
    ts: i64,
    prediction: Py<PyAny>,
}

/// Waiting predictions in arrival order.
#[pyclass(module = "driftline_native")]
pub struct PendingPredictions {
    map: HashMap<Arc<str>, Entry>,
    order: VecDeque<(u64, Arc<str>)>,
    next: u64,
    /// (model, version) by index, as `add_version` was given them.
    versions: Vec<(Py<PyAny>, Py<PyAny>)>,
}

/// The text of a prediction id: any `str` whose text is valid Unicode (no lone
/// surrogate); a `TypeError` for anything else.
fn id_text<'a>(id: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    let s = id
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("prediction_id must be a string"))?;
    s.to_str()
        .map_err(|_| PyTypeError::new_err("prediction_id must be valid Unicode text"))
}

/// The id text to look up, or None for an id that cannot be waiting (not a valid `str`).
fn lookup_text<'a>(id: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    id.cast::<PyString>().ok()?.to_str().ok()
}

fn timestamp(ts: &Bound<'_, PyAny>) -> PyResult<i64> {
    ts.extract::<i64>().map_err(|_| {
        PyTypeError::new_err("timestamp must be integer epoch milliseconds within int64")
    })
}

impl PendingPredictions {
    fn check_version(&self, version: u32) -> PyResult<()> {
        if (version as usize) < self.versions.len() {
            Ok(())
        } else {
            Err(PyValueError::new_err(format!(
                "unknown model version index {version}"
            )))
        }
    }

    /// Keep `id` waiting with its value, at the end of the arrival order (a waiting id
    /// moves there with its new value).
    fn insert(&mut self, id: &str, version: u32, ts: i64, prediction: Py<PyAny>) {
        let seq = self.next;
        self.next += 1;
        let key: Arc<str> = match self.map.get_key_value(id) {
            Some((key, _)) => key.clone(),
            None => Arc::from(id),
        };
        self.map.insert(
            key.clone(),
            Entry {
                seq,
                version,
                ts,
                prediction,
            },
        );
        self.order.push_back((seq, key));
    }

    /// Drop the stale slots at the front of the order; the oldest live id, if any.
    fn front(&mut self) -> Option<Arc<str>> {
        while let Some((seq, id)) = self.order.front() {
            if self.map.get(id).is_some_and(|e| e.seq == *seq) {
                return Some(id.clone());
            }
            self.order.pop_front();
        }
        None
    }

    fn remove_oldest(&mut self) -> Option<Entry> {
        let id = self.front()?;
        self.order.pop_front();
        self.map.remove(&id)
    }

    /// Rebuild the order without its stale slots once they outnumber the live ones.
    fn maybe_compact(&mut self) {
        if self.order.len() <= 2 * self.map.len() + 4096 {
            return;
        }
        let map = &self.map;
        self.order
            .retain(|(seq, id)| map.get(id).is_some_and(|e| e.seq == *seq));
    }

    fn value<'py>(&self, py: Python<'py>, e: &Entry) -> PyResult<Bound<'py, PyTuple>> {
        let (model, version) = &self.versions[e.version as usize];
        (
            model.clone_ref(py),
            version.clone_ref(py),
            e.ts,
            e.prediction.clone_ref(py),
        )
            .into_pyobject(py)
    }
}

const KIND_STR: u8 = 0;
const KIND_FLOAT: u8 = 1;
const KIND_OBJECT: u8 = 2;

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| PyValueError::new_err("truncated waiting-predictions state"))?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self) -> PyResult<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> PyResult<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn text(&mut self) -> PyResult<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?)
            .map_err(|_| PyValueError::new_err("waiting-predictions state holds invalid UTF-8"))
    }
}

#[pymethods]
impl PendingPredictions {
    #[new]
    fn new() -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            versions: Vec::new(),
        }
    }

    /// Register a (model, version) pair; its index, for `put` and `put_many`.
    fn add_version(&mut self, model: Py<PyAny>, version: Py<PyAny>) -> usize {
        self.versions.push((model, version));
        self.versions.len() - 1
    }

    /// Keep one prediction waiting (a waiting id moves to the end with its new value).
    fn put(
        &mut self,
        id: &Bound<'_, PyAny>,
        version: u32,
        ts: &Bound<'_, PyAny>,
        prediction: Py<PyAny>,
    ) -> PyResult<()> {
        self.check_version(version)?;
        let (text, ts) = (id_text(id)?, timestamp(ts)?);
        self.insert(text, version, ts, prediction);
        self.maybe_compact();
        Ok(())
    }

    /// `put` of each prediction in order; `versions` is one index for all or one per
    /// prediction. Every input is checked first: on an error nothing has changed.
    fn put_many(
        &mut self,
        ids: &Bound<'_, PyList>,
        versions: &Bound<'_, PyAny>,
        timestamps: &Bound<'_, PyList>,
        predictions: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let n = ids.len();
        let one = versions.extract::<u32>().ok();
        let each: Option<Vec<u32>> = if let Some(one) = one {
            self.check_version(one)?;
            None
        } else {
            let list: Vec<u32> = versions.extract()?;
            for v in &list {
                self.check_version(*v)?;
            }
            Some(list)
        };
        if timestamps.len() != n
            || predictions.len() != n
            || each.as_ref().is_some_and(|l| l.len() != n)
        {
            return Err(PyValueError::new_err(
                "ids, versions, timestamps and predictions differ in length",
            ));
        }
        let mut rows = Vec::with_capacity(n);
        for i in 0..n {
            let id = ids.get_item(i)?;
            let ts = timestamp(&timestamps.get_item(i)?)?;
            id_text(&id)?;
            rows.push((id, ts));
        }
        self.map.reserve(n);
        for (i, (id, ts)) in rows.iter().enumerate() {
            let version = each.as_ref().map_or(one.unwrap_or(0), |l| l[i]);
            let prediction = predictions.get_item(i)?.unbind();
            self.insert(id_text(id)?, version, *ts, prediction);
        }
        self.maybe_compact();
        Ok(())
    }

    /// (model, version, ts, prediction) of a waiting id, or None.
    fn get<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match lookup_text(id).and_then(|t| self.map.get(t)) {
            Some(e) => Ok(Some(self.value(py, e)?)),
            None => Ok(None),
        }
    }

    /// `get` of each id, as a list.
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for id in ids.iter() {
            match lookup_text(&id).and_then(|t| self.map.get(t)) {
                Some(e) => out.append(self.value(py, e)?)?,
                None => out.append(py.None())?,
            }
        }
        Ok(out)
    }

    /// Remove a waiting id; its value, or None.
    fn pop<'py>(
        &mut self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(text) = lookup_text(id) else {
            return Ok(None);
        };
        match self.map.remove(text) {
            Some(e) => {
                let value = self.value(py, &e)?;
                self.maybe_compact();
                Ok(Some(value))
            }
            None => Ok(None),
        }
    }

    /// Remove each of `ids` that waits; how many did.
    fn remove_many(&mut self, ids: &Bound<'_, PyList>) -> usize {
        let mut removed = 0;
        for id in ids.iter() {
            if let Some(text) = lookup_text(&id) {
                removed += usize::from(self.map.remove(text).is_some());
            }
        }
        self.maybe_compact();
        removed
    }

    /// Whether any of `ids` waits.
    fn contains_any(&self, ids: &Bound<'_, PyList>) -> bool {
        ids.iter()
            .any(|id| lookup_text(&id).is_some_and(|t| self.map.contains_key(t)))
    }

    /// Remove the oldest predictions while their time is before `horizon`; how many.
    fn expire(&mut self, horizon: i64) -> usize {
        let mut removed = 0;
        while let Some(id) = self.front() {
            if self.map[&id].ts >= horizon {
                break;
            }
            self.remove_oldest();
            removed += 1;
        }
        removed
    }

    /// Remove the `n` oldest predictions (fewer when fewer wait); how many.
    fn evict(&mut self, n: usize) -> usize {
        let mut removed = 0;
        while removed < n && self.remove_oldest().is_some() {
            removed += 1;
        }
        removed
    }

    fn __len__(&self) -> usize {
        self.map.len()
    }

    /// (id, (model, version, ts, prediction)) of every waiting prediction, oldest first.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for (seq, id) in &self.order {
            if let Some(e) = self.map.get(id).filter(|e| e.seq == *seq) {
                out.append((PyString::new(py, id), self.value(py, e)?))?;
            }
        }
        Ok(out)
    }

    /// The waiting predictions, oldest first, as bytes; the predictions that are neither
    /// a `str` nor a `float` (referenced from the bytes by index), to pickle; and the
    /// version indices used, in the order first used (the bytes number versions so).
    /// The bytes: `count: u64`, then per prediction `id: u32 length + UTF-8`,
    /// `version: u32`, `ts: i64`, `kind: u8` and `0` (str) `u32 length + UTF-8` /
    /// `1` (float) `f64` / `2` (other) `u32` index — all little-endian.
    #[allow(clippy::type_complexity)]
    fn dump<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyList>, Vec<u32>)> {
        let objects = PyList::empty(py);
        let mut used: Vec<u32> = Vec::new();
        let mut number: HashMap<u32, u32> = HashMap::new();
        let mut out: Vec<u8> = Vec::with_capacity(8 + self.map.len() * 64);
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (seq, id) in &self.order {
            let Some(e) = self.map.get(id).filter(|e| e.seq == *seq) else {
                continue;
            };
            out.extend_from_slice(&(id.len() as u32).to_le_bytes());
            out.extend_from_slice(id.as_bytes());
            let v = *number.entry(e.version).or_insert_with(|| {
                used.push(e.version);
                (used.len() - 1) as u32
            });
            out.extend_from_slice(&v.to_le_bytes());
            out.extend_from_slice(&e.ts.to_le_bytes());
            let p = e.prediction.bind(py);
            let text = if p.is_exact_instance_of::<PyString>() {
                p.cast::<PyString>()?.to_str().ok()
            } else {
                None
            };
            if let Some(text) = text {
                out.push(KIND_STR);
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                out.extend_from_slice(text.as_bytes());
            } else if p.is_exact_instance_of::<PyFloat>() {
                out.push(KIND_FLOAT);
                out.extend_from_slice(&p.cast::<PyFloat>()?.value().to_le_bytes());
            } else {
                out.push(KIND_OBJECT);
                out.extend_from_slice(&(objects.len() as u32).to_le_bytes());
                objects.append(p)?;
            }
        }
        Ok((PyBytes::new(py, &out), objects, used))
    }

    /// Append the predictions of a `dump` (its versions registered first, in order).
    fn load(&mut self, py: Python<'_>, data: &[u8], objects: &Bound<'_, PyList>) -> PyResult<()> {
        let mut r = Reader { data, at: 0 };
        let count = r.u64()?;
        let mut texts: HashMap<&str, Py<PyAny>> = HashMap::new(); // one object per class
        for _ in 0..count {
            let id = r.text()?;
            let version = r.u32()?;
            self.check_version(version)?;
            let ts = i64::from_le_bytes(r.take(8)?.try_into().unwrap());
            let prediction = match r.take(1)?[0] {
                KIND_STR => {
                    let text = r.text()?;
                    texts
                        .entry(text)
                        .or_insert_with(|| PyString::new(py, text).into_any().unbind())
                        .clone_ref(py)
                }
                KIND_FLOAT => {
                    let v = f64::from_le_bytes(r.take(8)?.try_into().unwrap());
                    PyFloat::new(py, v).into_any().unbind()
                }
                KIND_OBJECT => {
                    let index = r.u32()?;
                    objects.get_item(index as usize).map_err(|_| {
                        PyValueError::new_err(format!(
                            "waiting-predictions state refers to a missing object {index}"
                        ))
                    })?
                }
                .unbind(),
                kind => {
                    return Err(PyValueError::new_err(format!(
                        "waiting-predictions state holds an unknown kind {kind}"
                    )))
                }
            };
            self.insert(id, version, ts, prediction);
        }
        if r.at != data.len() {
            return Err(PyValueError::new_err(
                "waiting-predictions state has bytes after its last prediction",
            ));
        }
        Ok(())
    }
}
