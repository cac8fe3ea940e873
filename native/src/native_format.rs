//! RowBinary rows re-encoded as one ClickHouse `Native` block (column after column).
//!
//! The raw-event tables are written as RowBinary (`rowbinary.rs`, and the rows decoded with
//! the columns in `columns.rs`). ClickHouse parses RowBinary value by value, ~2.4 µs per
//! 20-feature prediction row; a `Native` block of the same rows parses in ~0.6 µs, as its
//! columns are read in bulk. This converts, without holding the GIL, for the column types
//! of those tables:
//!
//! - `String`: the same LEB128 length + bytes in both formats;
//! - `Float64`, `Int64`, `DateTime64(..)`: 8 bytes little-endian in both;
//! - `Nullable(T)` (`T` a string or 8-byte type): RowBinary's flag byte before each value
//!   becomes the block's null map, then every value (a NULL's is the default: empty, 0);
//! - `Array(T)`, `Map(K, V)`: RowBinary's LEB128 count per row becomes the block's
//!   cumulative UInt64 offsets, then the nested values (a map's keys, then its values);
//! - `LowCardinality(T)`: written as `T`, which ClickHouse casts to the table's
//!   `LowCardinality(T)` on insert (even with `input_format_native_allow_types_conversion`
//!   off: tested).
//!
//! A type outside these, rows that end early or a trailing byte: `None`, and the caller
//! inserts the RowBinary as it is.

use crate::wire::{put_rb_string, put_uvarint, Reader};

/// A column being filled from RowBinary values.
enum Column {
    Str(Vec<u8>),
    Fixed8(Vec<u8>),
    Nullable {
        nulls: Vec<u8>,
        inner: Box<Column>,
    },
    Array {
        offsets: Vec<u8>,
        total: u64,
        inner: Box<Column>,
    },
    Map {
        offsets: Vec<u8>,
        total: u64,
        keys: Box<Column>,
        values: Box<Column>,
    },
}

/// `inner` of `Name(inner)`, or None when `t` is not of that form.
fn unwrap<'a>(t: &'a str, name: &str) -> Option<&'a str> {
    t.strip_prefix(name)?
        .strip_prefix('(')?
        .strip_suffix(')')
        .map(str::trim)
}

/// Splits `K, V` at its top-level comma.
fn split_pair(t: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (i, c) in t.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => return Some((t[..i].trim(), t[i + 1..].trim())),
            _ => {}
        }
    }
    None
}

/// The column for ClickHouse type `t` and the type name the block declares for it.
fn column(t: &str) -> Option<(Column, String)> {
    let t = t.trim();
    if let Some(inner) = unwrap(t, "LowCardinality") {
        return column(inner);
    }
    if t == "String" {
        return Some((Column::Str(Vec::new()), t.to_string()));
    }
    if t == "Float64" || t == "Int64" || t.starts_with("DateTime64(") {
        return Some((Column::Fixed8(Vec::new()), t.to_string()));
    }
    if let Some(inner) = unwrap(t, "Nullable") {
        let (col, name) = column(inner)?;
        if !matches!(col, Column::Str(_) | Column::Fixed8(_)) {
            return None;
        }
        let nullable = Column::Nullable {
            nulls: Vec::new(),
            inner: Box::new(col),
        };
        return Some((nullable, format!("Nullable({name})")));
    }
    if let Some(inner) = unwrap(t, "Array") {
        let (col, name) = column(inner)?;
        let array = Column::Array {
            offsets: Vec::new(),
            total: 0,
            inner: Box::new(col),
        };
        return Some((array, format!("Array({name})")));
    }
    if let Some(inner) = unwrap(t, "Map") {
        let (k, v) = split_pair(inner)?;
        let (keys, kname) = column(k)?;
        let (values, vname) = column(v)?;
        let map = Column::Map {
            offsets: Vec::new(),
            total: 0,
            keys: Box::new(keys),
            values: Box::new(values),
        };
        return Some((map, format!("Map({kname}, {vname})")));
    }
    None
}

/// An array's or map's entry count: refused when larger than the bytes left (every
/// value takes at least one byte).
fn count(r: &mut Reader<'_>) -> Option<u64> {
    let n = r.uvarint()?;
    (n <= r.remaining() as u64).then_some(n)
}

impl Column {
    /// Reads one RowBinary value into the column.
    fn read(&mut self, r: &mut Reader<'_>) -> Option<()> {
        match self {
            Column::Str(out) => {
                // The same length + bytes in both formats: copied as they are.
                let start = r.pos();
                let n = r.uvarint()?;
                r.take(usize::try_from(n).ok()?)?;
                out.extend_from_slice(r.since(start));
            }
            Column::Fixed8(out) => {
                let value: [u8; 8] = r.take(8)?.try_into().ok()?;
                out.extend_from_slice(&value);
            }
            Column::Nullable { nulls, inner } => match r.byte()? {
                0 => {
                    nulls.push(0);
                    inner.read(r)?;
                }
                1 => {
                    nulls.push(1);
                    inner.push_default();
                }
                _ => return None,
            },
            Column::Array {
                offsets,
                total,
                inner,
            } => {
                let n = count(r)?;
                for _ in 0..n {
                    inner.read(r)?;
                }
                *total += n;
                offsets.extend_from_slice(&total.to_le_bytes());
            }
            Column::Map {
                offsets,
                total,
                keys,
                values,
            } => {
                let n = count(r)?;
                for _ in 0..n {
                    keys.read(r)?;
                    values.read(r)?;
                }
                *total += n;
                offsets.extend_from_slice(&total.to_le_bytes());
            }
        }
        Some(())
    }

    /// The value a NULL holds in a `Nullable` column's data (only strings and 8-byte types).
    fn push_default(&mut self) {
        match self {
            Column::Str(out) => out.push(0),
            Column::Fixed8(out) => out.extend_from_slice(&[0u8; 8]),
            _ => unreachable!("Nullable of a composite type is refused by column()"),
        }
    }

    /// The column's data in block order, as slices (copied once, into the result).
    fn chunks<'a>(&'a self, out: &mut Vec<&'a [u8]>) {
        match self {
            Column::Str(data) | Column::Fixed8(data) => out.push(data),
            Column::Nullable { nulls, inner } => {
                out.push(nulls);
                inner.chunks(out);
            }
            Column::Array { offsets, inner, .. } => {
                out.push(offsets);
                inner.chunks(out);
            }
            Column::Map {
                offsets,
                keys,
                values,
                ..
            } => {
                out.push(offsets);
                keys.chunks(out);
                values.chunks(out);
            }
        }
    }
}

/// A parsed block: its header (column and row counts), then per column its name and
/// type, then its data.
pub struct Block {
    header: Vec<u8>,
    column_headers: Vec<Vec<u8>>,
    columns: Vec<Column>,
}

impl Block {
    /// The block's bytes, in order, as slices.
    pub fn chunks(&self) -> Vec<&[u8]> {
        let mut out: Vec<&[u8]> = vec![&self.header];
        for (head, col) in self.column_headers.iter().zip(&self.columns) {
            out.push(head);
            col.chunks(&mut out);
        }
        out
    }
}

/// RowBinary `rows` of columns `names` of types `types`, as one Native block; None for a
/// type it does not handle or rows that do not parse to the end exactly.
pub fn from_rowbinary(names: &[String], types: &[String], rows: &[u8]) -> Option<Block> {
    if names.len() != types.len() || names.is_empty() {
        return None;
    }
    let mut columns = Vec::with_capacity(types.len());
    let mut column_headers = Vec::with_capacity(types.len());
    for (name, t) in names.iter().zip(types) {
        let (col, declared) = column(t)?;
        columns.push(col);
        let mut head = Vec::new();
        put_rb_string(&mut head, name.as_bytes());
        put_rb_string(&mut head, declared.as_bytes());
        column_headers.push(head);
    }
    let mut r = Reader::new(rows, 0)?;
    let mut n_rows: u64 = 0;
    while !r.at_end() {
        for col in columns.iter_mut() {
            col.read(&mut r)?;
        }
        n_rows += 1;
    }
    let mut header = Vec::new();
    put_uvarint(&mut header, columns.len() as u64);
    put_uvarint(&mut header, n_rows);
    Some(Block {
        header,
        column_headers,
        columns,
    })
}
