//! Byte-level primitives: Avro zig-zag varints, strings and doubles, a bounds-checked
//! reader, and the unsigned LEB128 lengths of ClickHouse RowBinary.
//!
//! Nothing here panics: every read is a checked slice access that returns `None` at the
//! end of the input, and every length is checked against what is left before use.

/// Appends `v` as an Avro `long`: zig-zag, then base-128 varint (least significant group first).
#[inline]
pub fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8 & 0x7F) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends an Avro `string`/`bytes`: length as `long`, then the bytes.
#[inline]
pub fn put_avro_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Appends an IEEE 754 double, little-endian (Avro `double`, ClickHouse `Float64`).
#[inline]
pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends an unsigned LEB128 varint (RowBinary lengths and counts).
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7F) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends a RowBinary `String`: LEB128 length, then the bytes.
#[inline]
pub fn put_rb_string(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Bounds-checked reader of an Avro binary body.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `buf` starting at `pos`; `None` when `pos` is past the end.
    pub fn new(buf: &'a [u8], pos: usize) -> Option<Self> {
        (pos <= buf.len()).then_some(Reader { buf, pos })
    }

    /// The position of the next byte to read.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes read since position `start` (an earlier :meth:`pos`).
    #[inline]
    pub fn since(&self, start: usize) -> &'a [u8] {
        &self.buf[start.min(self.pos)..self.pos]
    }

    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    #[inline]
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    #[inline]
    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// An Avro `long`. At most 10 bytes, and the 10th may only carry bit 63: a longer
    /// or overflowing varint is refused (fastavro would silently drop the high bits).
    #[inline]
    pub fn long(&mut self) -> Option<i64> {
        let n = self.uvarint()?; // then zig-zag
        Some(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    #[inline]
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let slice = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    /// An Avro `string`: a non-negative length that fits in what is left, valid UTF-8.
    #[inline]
    pub fn string(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.long()?).ok()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    #[inline]
    pub fn double(&mut self) -> Option<f64> {
        let b: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(f64::from_le_bytes(b))
    }

    /// A double that must be finite (NaN and ±inf are refused).
    #[inline]
    pub fn finite(&mut self) -> Option<f64> {
        self.double().filter(|v| v.is_finite())
    }

    /// An unsigned LEB128 varint (RowBinary lengths and counts, and the base-128 form of
    /// an Avro `long`): at most 10 bytes, the 10th carrying only bit 63.
    #[inline]
    pub fn uvarint(&mut self) -> Option<u64> {
        let mut n: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return None;
            }
            n |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    }

    /// The count of the next map block: `Some(0)` ends the map. Negative counts (the
    /// byte-size form, which fastavro never writes) and counts larger than the bytes
    /// left (every entry takes at least one byte) are refused.
    #[inline]
    pub fn block_count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.long()?).ok()?;
        (n <= self.remaining()).then_some(n)
    }
}
