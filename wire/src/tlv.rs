//! nDPI's serializer in its TLV format, as ntopng reads flow payloads
//! (docs/ntopng-zmq.md §2.7).
//!
//! ```text
//! 0x01 0x01                         serializer version 1, format TLV
//! { type key value }* 0x01          one record, ended by end-of-record
//! ...                               more records
//! type = key_type << 4 | value_type
//! key:   uint8 (2) | uint16 (3, BE) | uint32 (4, BE) | string (11: u16 BE length + bytes)
//! value: uint8..uint64 (2..5, BE) | int8..int64 (6..9, BE) | float (10, 4 bytes LE) | string (11)
//! ```
//!
//! Numbers are written in the smallest type that holds them, as nDPI does.
//! Addresses are strings, as ntopng reads them: [`TlvWriter::ip`] writes the text
//! `Display` writes, without building it first.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::WireError;

const SER_VERSION: u8 = 1;
const SER_FORMAT_TLV: u8 = 1;
const END_OF_RECORD: u8 = 1;

const T_U8: u8 = 2;
const T_U16: u8 = 3;
const T_U32: u8 = 4;
const T_U64: u8 = 5;
const T_I8: u8 = 6;
const T_I16: u8 = 7;
const T_I32: u8 = 8;
const T_I64: u8 = 9;
const T_FLOAT: u8 = 10;
const T_STRING: u8 = 11;

/// A record key: numeric field id, or a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// Numeric id (PEN 0 field, or 57472 + ntop field).
    Id(u32),
    /// Field name.
    Name(String),
}

/// A record value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Unsigned integer (any width on the wire).
    Uint(u64),
    /// Signed integer (any width on the wire).
    Int(i64),
    /// 32-bit float.
    Float(f32),
    /// UTF-8 string.
    Str(String),
}

/// One decoded record, in wire order.
pub type Record = Vec<(Key, Value)>;

/// Bytes packed in an integer in memory order: the first byte is the lowest, so
/// `to_le_bytes` gives them back. Items are built this way in registers and
/// written with one fixed-size copy: built byte by byte in a buffer and copied from
/// there, each item stalled the CPU on a store it had to read back.
type Packed = u128;

/// The integer whose little-endian bytes are `bytes`' big-endian bytes, in their
/// first `width` bytes.
#[inline]
fn big_endian(bytes: u64, width: usize) -> u64 {
    (bytes << (64 - 8 * width)).swap_bytes()
}

/// A number as nDPI writes it: its value type, and its `width` bytes, packed.
#[derive(Clone, Copy)]
struct Number {
    value_type: u8,
    bytes: u64,
    width: usize,
}

impl Number {
    /// The smallest unsigned type that holds `v`, big-endian.
    #[inline]
    fn uint(v: u64) -> Self {
        let (value_type, width) = match v {
            0..=0xff => (T_U8, 1),
            0x100..=0xffff => (T_U16, 2),
            0x1_0000..=0xffff_ffff => (T_U32, 4),
            _ => (T_U64, 8),
        };
        Self { value_type, bytes: big_endian(v, width), width }
    }

    /// The smallest signed type that holds `v`, big-endian (two's complement).
    #[inline]
    fn int(v: i64) -> Self {
        let (value_type, width) = match v {
            -0x80..=0x7f => (T_I8, 1),
            -0x8000..=0x7fff => (T_I16, 2),
            -0x8000_0000..=0x7fff_ffff => (T_I32, 4),
            _ => (T_I64, 8),
        };
        #[allow(clippy::cast_sign_loss, reason = "the same bits: the low bytes are the two's complement value")]
        let bits = v as u64;
        Self { value_type, bytes: big_endian(bits, width), width }
    }

    /// 4 bytes, little-endian: nDPI writes floats in host byte order, unconverted.
    #[inline]
    fn float(v: f32) -> Self {
        Self { value_type: T_FLOAT, bytes: u64::from(v.to_bits()), width: 4 }
    }
}

/// The type byte and numeric key of an item, packed; and how many bytes they take.
#[inline]
fn head(value_type: u8, key: u32) -> (Packed, usize) {
    if let Ok(k) = u8::try_from(key) {
        (Packed::from((T_U8 << 4) | value_type) | Packed::from(k) << 8, 2)
    } else if let Ok(k) = u16::try_from(key) {
        (Packed::from((T_U16 << 4) | value_type) | Packed::from(big_endian(k.into(), 2)) << 8, 3)
    } else {
        (Packed::from((T_U32 << 4) | value_type) | Packed::from(big_endian(key.into(), 4)) << 8, 5)
    }
}

/// Each octet's decimal digits, packed, and their count in the top byte.
const DECIMAL: [u32; 256] = {
    const ZERO: u32 = b'0' as u32;
    let mut table = [0; 256];
    let mut n: u32 = 0;
    while n < 256 {
        let (hundreds, tens, ones) = (ZERO + n / 100, ZERO + n / 10 % 10, ZERO + n % 10);
        table[n as usize] = if n >= 100 {
            3 << 24 | ones << 16 | tens << 8 | hundreds
        } else if n >= 10 {
            2 << 24 | ones << 8 | tens
        } else {
            1 << 24 | ones
        };
        n += 1;
    }
    table
};

/// An IPv4 address as `Display` writes it, packed, and its length (at most 15).
#[inline]
fn ipv4_text(ip: Ipv4Addr) -> (Packed, usize) {
    let (mut text, mut len) = (0, 0);
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            text |= Packed::from(b'.') << (8 * len);
            len += 1;
        }
        let digits = DECIMAL[usize::from(octet)];
        text |= Packed::from(digits & 0x00ff_ffff) << (8 * len);
        len += (digits >> 24) as usize;
    }
    (text, len)
}

/// An IPv6 group in lowercase hex without leading zeros, packed, and its length.
#[inline]
fn hex_group(group: u16) -> (Packed, usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let len = (16 - group.leading_zeros()).div_ceil(4).max(1) as usize;
    let mut text = 0;
    for i in 0..len {
        let nibble = (group >> (4 * (len - 1 - i))) & 0xf;
        text |= Packed::from(HEX[usize::from(nibble)]) << (8 * i);
    }
    (text, len)
}

/// `value` cut at 65535 bytes on a character boundary, and its length.
#[inline]
fn cut(value: &str) -> (&str, u16) {
    if let Ok(len) = u16::try_from(value.len()) {
        return (value, len);
    }
    let mut end = usize::from(u16::MAX);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    (&value[..end], u16::try_from(end).expect("at most u16::MAX"))
}

/// A position in a [`TlvWriter`], to undo what was written after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    len: usize,
    records: usize,
}

/// Builds one TLV payload of any number of records.
///
/// The typed writers ([`uint`](Self::uint), [`string`](Self::string), ...) write
/// straight into the payload; nothing is allocated once the payload has grown to
/// its working size.
#[derive(Clone, Debug)]
pub struct TlvWriter {
    buf: Vec<u8>,
    records: usize,
}

impl Default for TlvWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl TlvWriter {
    /// An empty payload (just the serializer header).
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(256)
    }

    /// An empty payload with room for `capacity` bytes.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(2));
        buf.extend_from_slice(&[SER_VERSION, SER_FORMAT_TLV]);
        Self { buf, records: 0 }
    }

    /// Appends the first `len` bytes of `item`.
    #[inline]
    fn append(&mut self, item: Packed, len: usize) {
        // Copying all 16 bytes and cutting the rest off again compiles to two stores;
        // copying `len` bytes would be a call to memcpy for every item.
        let end = self.buf.len() + len;
        self.buf.extend_from_slice(&item.to_le_bytes());
        self.buf.truncate(end);
    }

    #[inline]
    fn number(&mut self, key: u32, n: Number) {
        let (item, at) = head(n.value_type, key);
        self.append(item | Packed::from(n.bytes) << (8 * at), at + n.width);
    }

    /// Type byte, numeric key and length of a string item.
    #[inline]
    fn string_head(&mut self, key: u32, len: u16) {
        let (item, at) = head(T_STRING, key);
        self.append(item | Packed::from(big_endian(len.into(), 2)) << (8 * at), at + 2);
    }

    /// An unsigned integer, in the smallest unsigned type that holds it.
    #[inline]
    pub fn uint(&mut self, key: u32, value: u64) {
        self.number(key, Number::uint(value));
    }

    /// A signed integer, in the smallest signed type that holds it.
    #[inline]
    pub fn int(&mut self, key: u32, value: i64) {
        self.number(key, Number::int(value));
    }

    /// A float (4 bytes, little-endian, as nDPI writes it).
    #[inline]
    pub fn float(&mut self, key: u32, value: f32) {
        self.number(key, Number::float(value));
    }

    /// A string, cut at 65535 bytes (on a character boundary) if longer.
    #[inline]
    pub fn string(&mut self, key: u32, value: &str) {
        let (value, len) = cut(value);
        self.string_head(key, len);
        self.buf.extend_from_slice(value.as_bytes());
    }

    /// An address as ntopng reads it: a string, the text `Display` writes (dotted
    /// IPv4; RFC 5952 IPv6 with IPv4-mapped addresses as `::ffff:a.b.c.d`). Written
    /// in place: built in a buffer first, the text stalled the copy that read it back.
    #[inline]
    pub fn ip(&mut self, key: u32, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.ipv4(key, v4),
            IpAddr::V6(v6) => self.ipv6(key, v6),
        }
    }

    /// An IPv4 address as [`ip`](Self::ip) writes it.
    ///
    /// # Panics
    /// Never: the text is at most 15 bytes.
    #[inline]
    pub fn ipv4(&mut self, key: u32, ip: Ipv4Addr) {
        let (text, len) = ipv4_text(ip);
        self.string_head(key, u16::try_from(len).expect("at most 15 characters"));
        self.append(text, len);
    }

    /// An IPv6 address as [`ip`](Self::ip) writes it.
    ///
    /// # Panics
    /// Never: the text is at most 39 bytes.
    pub fn ipv6(&mut self, key: u32, ip: Ipv6Addr) {
        // The length is known once the text is written: 0 until then.
        self.string_head(key, 0);
        let start = self.buf.len();
        if let Some(v4) = ip.to_ipv4_mapped() {
            const MAPPED: Packed = Packed::from_le_bytes(*b"::ffff:\0\0\0\0\0\0\0\0\0");
            self.append(MAPPED, 7);
            let (text, len) = ipv4_text(v4);
            self.append(text, len);
        } else {
            // std's choice: the first longest run of two or more zero groups is `::`.
            let groups = ip.segments();
            let (mut zeros_at, mut zeros, mut run_at, mut run) = (0, 0, 0, 0);
            for (i, &group) in groups.iter().enumerate() {
                if group == 0 {
                    if run == 0 {
                        run_at = i;
                    }
                    run += 1;
                    if run > zeros {
                        (zeros_at, zeros) = (run_at, run);
                    }
                } else {
                    run = 0;
                }
            }
            if zeros > 1 {
                self.hex_groups(&groups[..zeros_at]);
                self.append(Packed::from(u16::from_le_bytes(*b"::")), 2);
                self.hex_groups(&groups[zeros_at + zeros..]);
            } else {
                self.hex_groups(&groups);
            }
        }
        let len = u16::try_from(self.buf.len() - start).expect("at most 39 characters");
        self.buf[start - 2..start].copy_from_slice(&len.to_be_bytes());
    }

    /// Groups separated by colons.
    fn hex_groups(&mut self, groups: &[u16]) {
        for (i, &group) in groups.iter().enumerate() {
            let (text, len) = hex_group(group);
            if i == 0 {
                self.append(text, len);
            } else {
                self.append(Packed::from(b':') | text << 8, len + 1);
            }
        }
    }

    /// One string made of `parts` end to end, written as [`string`](Self::string)
    /// would write their concatenation, without building it.
    pub fn string_parts(&mut self, key: u32, parts: &[&str]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let Ok(len) = u16::try_from(len) else {
            // Too long for one item: cut like any other string (rare enough to build).
            self.string(key, &parts.concat());
            return;
        };
        self.string_head(key, len);
        for part in parts {
            self.buf.extend_from_slice(part.as_bytes());
        }
    }

    /// A value of any kind under a numeric key.
    #[inline]
    pub fn value(&mut self, key: u32, value: &Value) {
        match value {
            Value::Uint(v) => self.uint(key, *v),
            Value::Int(v) => self.int(key, *v),
            Value::Float(v) => self.float(key, *v),
            Value::Str(v) => self.string(key, v),
        }
    }

    /// A value of any kind under a name key (nDPI's string keys).
    pub fn named(&mut self, name: &str, value: &Value) {
        let number = match value {
            Value::Uint(v) => Number::uint(*v),
            Value::Int(v) => Number::int(*v),
            Value::Float(v) => Number::float(*v),
            Value::Str(v) => {
                self.name_key(T_STRING, name);
                self.raw_string(v);
                return;
            }
        };
        self.name_key(number.value_type, name);
        self.buf.extend_from_slice(&number.bytes.to_le_bytes()[..number.width]);
    }

    fn name_key(&mut self, value_type: u8, name: &str) {
        self.buf.push((T_STRING << 4) | value_type);
        self.raw_string(name);
    }

    /// u16 big-endian length and bytes, cut at 65535 bytes on a character boundary.
    fn raw_string(&mut self, value: &str) {
        let (value, len) = cut(value);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(value.as_bytes());
    }

    /// Ends the current record.
    #[inline]
    pub fn end_record(&mut self) {
        self.buf.push(END_OF_RECORD);
        self.records += 1;
    }

    /// Bytes written so far, header included.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no record has been ended yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Records ended so far.
    #[inline]
    #[must_use]
    pub fn records(&self) -> usize {
        self.records
    }

    /// The current position.
    #[inline]
    #[must_use]
    pub fn mark(&self) -> Mark {
        Mark { len: self.buf.len(), records: self.records }
    }

    /// Forgets everything written after `mark` (e.g. a record that made the payload
    /// too large).
    pub fn rollback(&mut self, mark: Mark) {
        self.buf.truncate(mark.len.max(2));
        self.records = mark.records;
    }

    /// The payload.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Empties the writer for the next payload, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.truncate(2);
        self.records = 0;
    }

    /// Hands out the payload and starts the next one in `next` (its contents
    /// dropped, its allocation kept): a caller that gives back the buffers it has
    /// sent never allocates or copies a payload.
    pub fn take_payload(&mut self, mut next: Vec<u8>) -> Vec<u8> {
        next.clear();
        next.extend_from_slice(&[SER_VERSION, SER_FORMAT_TLV]);
        self.records = 0;
        std::mem::replace(&mut self.buf, next)
    }
}

/// A cursor over a payload that never reads past its end.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(WireError::TlvTruncated(self.pos))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn string(&mut self) -> Result<String, WireError> {
        let at = self.pos;
        let len = u16::from_be_bytes(self.array()?);
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::TlvUtf8(at))
    }

    fn key(&mut self, key_type: u8, at: usize, type_byte: u8) -> Result<Key, WireError> {
        Ok(match key_type {
            T_U8 => Key::Id(u32::from(self.array::<1>()?[0])),
            T_U16 => Key::Id(u32::from(u16::from_be_bytes(self.array()?))),
            T_U32 => Key::Id(u32::from_be_bytes(self.array()?)),
            T_STRING => Key::Name(self.string()?),
            _ => return Err(WireError::TlvType { offset: at, type_byte }),
        })
    }

    fn value(&mut self, value_type: u8, at: usize, type_byte: u8) -> Result<Value, WireError> {
        Ok(match value_type {
            T_U8 => Value::Uint(u64::from(self.array::<1>()?[0])),
            T_U16 => Value::Uint(u64::from(u16::from_be_bytes(self.array()?))),
            T_U32 => Value::Uint(u64::from(u32::from_be_bytes(self.array()?))),
            T_U64 => Value::Uint(u64::from_be_bytes(self.array()?)),
            T_I8 => Value::Int(i64::from(i8::from_be_bytes(self.array()?))),
            T_I16 => Value::Int(i64::from(i16::from_be_bytes(self.array()?))),
            T_I32 => Value::Int(i64::from(i32::from_be_bytes(self.array()?))),
            T_I64 => Value::Int(i64::from_be_bytes(self.array()?)),
            T_FLOAT => Value::Float(f32::from_le_bytes(self.array()?)),
            T_STRING => Value::Str(self.string()?),
            _ => return Err(WireError::TlvType { offset: at, type_byte }),
        })
    }
}

/// Decodes a TLV payload into its records.
///
/// # Errors
/// A [`WireError`] naming the offset of the first byte that is not valid TLV:
/// a wrong serializer header, a truncated item, an unknown type (nDPI's list and
/// block markers included, which ntopng rejects too), invalid UTF-8, or items after
/// the last end-of-record.
pub fn decode(payload: &[u8]) -> Result<Vec<Record>, WireError> {
    if payload.len() < 2 || payload[0] != SER_VERSION || payload[1] != SER_FORMAT_TLV {
        return Err(WireError::TlvHeader(payload.iter().take(2).copied().collect()));
    }
    let mut cur = Cursor { buf: payload, pos: 2 };
    let mut records = Vec::new();
    let mut record = Vec::new();
    while cur.pos < payload.len() {
        let at = cur.pos;
        let type_byte = cur.array::<1>()?[0];
        if type_byte == END_OF_RECORD {
            records.push(std::mem::take(&mut record));
            continue;
        }
        let key = cur.key(type_byte >> 4, at, type_byte)?;
        let value = cur.value(type_byte & 0x0f, at, type_byte)?;
        record.push((key, value));
    }
    if !record.is_empty() {
        return Err(WireError::TlvUnterminated);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The example record of docs/ntopng-zmq.md §2.7, byte for byte.
    #[test]
    fn golden_record_from_the_contract() {
        let mut w = TlvWriter::new();
        w.string(8, "10.0.0.1");
        w.uint(7, 51000);
        w.uint(57640, 1234);
        w.string(57641, "curl");
        w.float(57595, 1.5);
        w.end_record();
        let mut want = vec![0x01, 0x01];
        want.extend_from_slice(&[0x2B, 0x08, 0x00, 0x08]);
        want.extend_from_slice(b"10.0.0.1");
        want.extend_from_slice(&[0x23, 0x07, 0xC7, 0x38]);
        want.extend_from_slice(&[0x33, 0xE1, 0x28, 0x04, 0xD2]);
        want.extend_from_slice(&[0x3B, 0xE1, 0x29, 0x00, 0x04]);
        want.extend_from_slice(b"curl");
        want.extend_from_slice(&[0x3A, 0xE0, 0xFB, 0x00, 0x00, 0xC0, 0x3F]);
        want.push(0x01);
        assert_eq!(w.as_bytes(), want.as_slice());
        let records = decode(w.as_bytes()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0][0], (Key::Id(8), Value::Str("10.0.0.1".into())));
        assert_eq!(records[0][2], (Key::Id(57640), Value::Uint(1234)));
        assert_eq!(records[0][4], (Key::Id(57595), Value::Float(1.5)));
    }

    #[test]
    fn numbers_take_the_smallest_type() {
        let mut w = TlvWriter::new();
        w.uint(1, 255);
        w.uint(1, 256);
        w.uint(1, 70_000);
        w.uint(1, 1 << 40);
        w.int(1, -1);
        w.int(1, -300);
        w.int(100_000, i64::MIN);
        w.end_record();
        let b = w.as_bytes();
        assert_eq!(&b[2..5], &[0x22, 1, 255]);
        assert_eq!(&b[5..9], &[0x23, 1, 0x01, 0x00]);
        assert_eq!(b[9], 0x24);
        assert_eq!(b[15], 0x25);
        assert_eq!(&b[25..28], &[0x26, 1, 0xff]);
        assert_eq!(b[28], 0x27);
        assert_eq!(b[32], 0x49, "u32 key, i64 value");
        let r = &decode(b).unwrap()[0];
        let values: Vec<&Value> = r.iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            [
                &Value::Uint(255),
                &Value::Uint(256),
                &Value::Uint(70_000),
                &Value::Uint(1 << 40),
                &Value::Int(-1),
                &Value::Int(-300),
                &Value::Int(i64::MIN)
            ]
        );
        assert_eq!(r[6].0, Key::Id(100_000));
    }

    #[test]
    fn several_records_and_rollback() {
        let mut w = TlvWriter::new();
        w.uint(4, 6);
        w.end_record();
        let mark = w.mark();
        w.uint(4, 17);
        w.end_record();
        assert_eq!(w.records(), 2);
        w.rollback(mark);
        assert_eq!(w.records(), 1);
        assert_eq!(decode(w.as_bytes()).unwrap(), vec![vec![(Key::Id(4), Value::Uint(6))]]);
        w.clear();
        assert!(w.is_empty());
        assert_eq!(w.as_bytes(), &[1, 1]);
    }

    #[test]
    fn a_taken_payload_leaves_an_empty_writer_in_the_buffer_given() {
        let mut w = TlvWriter::new();
        w.uint(4, 6);
        w.end_record();
        let spare = Vec::from(*b"old bytes");
        let payload = w.take_payload(spare);
        assert_eq!(payload, [1, 1, 0x22, 4, 6, 1]);
        assert!(w.is_empty());
        assert_eq!(w.as_bytes(), &[1, 1]);
        w.uint(4, 17);
        w.end_record();
        assert_eq!(decode(w.as_bytes()).unwrap(), vec![vec![(Key::Id(4), Value::Uint(17))]]);
    }

    #[test]
    fn string_parts_are_written_as_their_concatenation() {
        let long = "é".repeat(40_000);
        for parts in [&["connect failed: ", "refused"][..], &[], &["", "x", ""], &["ab", &long, "cd"]] {
            let mut by_parts = TlvWriter::new();
            by_parts.string_parts(57_000, parts);
            let mut whole = TlvWriter::new();
            whole.string(57_000, &parts.concat());
            assert_eq!(by_parts.as_bytes(), whole.as_bytes());
        }
    }

    /// `ip` must write what `string` writes for the address's `Display` text.
    fn same_as_display(ip: IpAddr) {
        let mut by_ip = TlvWriter::new();
        by_ip.ip(57_000, ip);
        by_ip.uint(7, 1);
        let mut by_text = TlvWriter::new();
        by_text.string(57_000, &ip.to_string());
        by_text.uint(7, 1);
        assert_eq!(by_ip.as_bytes(), by_text.as_bytes(), "{ip}");
    }

    #[test]
    fn ipv4_text_is_what_display_writes_for_every_octet_in_every_position() {
        for octet in 0..=255 {
            for position in 0..4 {
                let mut octets = [1, 22, 133, 4];
                octets[position] = octet;
                same_as_display(IpAddr::from(octets));
                same_as_display(IpAddr::V6(Ipv4Addr::from(octets).to_ipv6_mapped()));
            }
        }
        same_as_display(IpAddr::from([255, 255, 255, 255]));
        same_as_display(IpAddr::from([0, 0, 0, 0]));
    }

    #[test]
    fn ipv6_text_compresses_zeros_as_display_does_in_every_layout() {
        // Each of the 256 patterns of zero and non-zero groups, with non-zero groups
        // of every digit count: which run std compresses (the longest, the first of
        // equals, never a single group).
        let values: [u16; 6] = [0x1, 0xf, 0xab, 0x100, 0xabcd, 0xffff];
        for mask in 0u16..256 {
            for v in 0..values.len() {
                let mut groups = [0u16; 8];
                for (i, group) in groups.iter_mut().enumerate() {
                    if mask & (1 << i) != 0 {
                        *group = values[(v + i) % values.len()];
                    }
                }
                same_as_display(IpAddr::from(groups));
            }
        }
        for text in ["::1.2.3.4", "::ffff:0:1.2.3.4", "64:ff9b::192.0.2.33", "fe80::1", "2001:db8:85a3::8a2e:370:7334"]
        {
            same_as_display(text.parse().unwrap());
        }
    }

    #[test]
    fn named_keys_take_every_kind_of_value() {
        let values = [Value::Uint(70_000), Value::Int(-2), Value::Float(0.25), Value::Str("x".into())];
        let mut w = TlvWriter::new();
        for value in &values {
            w.named("K", value);
        }
        w.end_record();
        let want: Record = values.iter().map(|v| (Key::Name("K".into()), v.clone())).collect();
        assert_eq!(decode(w.as_bytes()).unwrap(), vec![want]);
        assert_eq!(&w.as_bytes()[2..10], &[0xB4, 0, 1, b'K', 0, 1, 0x11, 0x70], "string key, u32 value");
    }

    #[test]
    fn named_keys_decode() {
        let mut w = TlvWriter::new();
        w.named("L4_SRC_PORT", &Value::Uint(443));
        w.end_record();
        assert_eq!(decode(w.as_bytes()).unwrap()[0], vec![(Key::Name("L4_SRC_PORT".into()), Value::Uint(443))]);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert!(matches!(decode(&[]), Err(WireError::TlvHeader(_))));
        assert!(matches!(decode(&[1, 2]), Err(WireError::TlvHeader(_))));
        assert!(matches!(decode(&[1, 1, 0x2B, 8, 0, 9, b'a']), Err(WireError::TlvTruncated(_))));
        assert!(matches!(decode(&[1, 1, 0x21, 8]), Err(WireError::TlvType { offset: 2, type_byte: 0x21 })));
        assert!(matches!(decode(&[1, 1, 0x2B, 8, 0, 1, 0xff, 1]), Err(WireError::TlvUtf8(4))));
        assert!(matches!(decode(&[1, 1, 0x22, 8, 1]), Err(WireError::TlvUnterminated)));
        assert!(matches!(decode(&[1, 1, 0x05]), Err(WireError::TlvType { .. })));
    }

    #[test]
    fn long_strings_are_cut_on_a_character_boundary() {
        let s = "é".repeat(40_000);
        let mut w = TlvWriter::new();
        w.string(1, &s);
        w.end_record();
        let Value::Str(back) = &decode(w.as_bytes()).unwrap()[0][0].1 else { panic!() };
        assert!(back.len() <= 65535 && s.starts_with(back.as_str()));
    }

    fn value_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<u64>().prop_map(Value::Uint),
            any::<i64>().prop_map(|v| if v >= 0 { Value::Uint(v.unsigned_abs()) } else { Value::Int(v) }),
            any::<f32>().prop_filter("NaN never equals itself", |f| !f.is_nan()).prop_map(Value::Float),
            ".{0,40}".prop_map(Value::Str),
        ]
    }

    proptest! {
        #[test]
        fn records_round_trip(records in prop::collection::vec(
            prop::collection::vec((any::<u32>(), value_strategy()), 0..12), 0..6)) {
            let mut w = TlvWriter::new();
            for record in &records {
                for (key, value) in record {
                    w.value(*key, value);
                }
                w.end_record();
            }
            let decoded = decode(w.as_bytes()).unwrap();
            let expected: Vec<Record> = records
                .iter()
                .map(|r| r.iter().map(|(k, v)| (Key::Id(*k), v.clone())).collect())
                .collect();
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            let mut with_header = vec![1, 1];
            with_header.extend_from_slice(&bytes);
            let _ = decode(&with_header);
        }
    }
}
