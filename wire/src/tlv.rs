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

/// A key being written.
#[derive(Clone, Copy)]
enum KeyRef<'a> {
    Id(u32),
    Name(&'a str),
}

/// A position in a [`TlvWriter`], to undo what was written after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    len: usize,
    records: usize,
}

/// Builds one TLV payload of any number of records.
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

    fn item(&mut self, value_type: u8, key: KeyRef<'_>) {
        match key {
            KeyRef::Id(key) => {
                if let Ok(k) = u8::try_from(key) {
                    self.buf.extend_from_slice(&[(T_U8 << 4) | value_type, k]);
                } else if let Ok(k) = u16::try_from(key) {
                    self.buf.push((T_U16 << 4) | value_type);
                    self.buf.extend_from_slice(&k.to_be_bytes());
                } else {
                    self.buf.push((T_U32 << 4) | value_type);
                    self.buf.extend_from_slice(&key.to_be_bytes());
                }
            }
            KeyRef::Name(name) => {
                self.buf.push((T_STRING << 4) | value_type);
                self.raw_string(name);
            }
        }
    }

    /// u16 big-endian length and bytes, cut at 65535 bytes on a character boundary.
    fn raw_string(&mut self, value: &str) {
        let mut end = value.len().min(usize::from(u16::MAX));
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        let len = u16::try_from(end).expect("cut to u16::MAX");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(&value.as_bytes()[..end]);
    }

    fn put(&mut self, key: KeyRef<'_>, value: &Value) {
        match value {
            Value::Uint(v) => {
                if let Ok(v) = u8::try_from(*v) {
                    self.item(T_U8, key);
                    self.buf.push(v);
                } else if let Ok(v) = u16::try_from(*v) {
                    self.item(T_U16, key);
                    self.buf.extend_from_slice(&v.to_be_bytes());
                } else if let Ok(v) = u32::try_from(*v) {
                    self.item(T_U32, key);
                    self.buf.extend_from_slice(&v.to_be_bytes());
                } else {
                    self.item(T_U64, key);
                    self.buf.extend_from_slice(&v.to_be_bytes());
                }
            }
            Value::Int(v) => {
                if let Ok(v) = i8::try_from(*v) {
                    self.item(T_I8, key);
                    self.buf.extend_from_slice(&v.to_be_bytes());
                } else if let Ok(v) = i16::try_from(*v) {
                    self.item(T_I16, key);
                    self.buf.extend_from_slice(&v.to_be_bytes());
                } else if let Ok(v) = i32::try_from(*v) {
                    self.item(T_I32, key);
                    self.buf.extend_from_slice(&v.to_be_bytes());
                } else {
                    self.item(T_I64, key);
                    self.buf.extend_from_slice(&v.to_be_bytes());
                }
            }
            Value::Float(v) => {
                // nDPI writes floats in host byte order (little-endian), unconverted.
                self.item(T_FLOAT, key);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Str(v) => {
                self.item(T_STRING, key);
                self.raw_string(v);
            }
        }
    }

    /// An unsigned integer, in the smallest unsigned type that holds it.
    pub fn uint(&mut self, key: u32, value: u64) {
        self.put(KeyRef::Id(key), &Value::Uint(value));
    }

    /// A signed integer, in the smallest signed type that holds it.
    pub fn int(&mut self, key: u32, value: i64) {
        self.put(KeyRef::Id(key), &Value::Int(value));
    }

    /// A float (4 bytes, little-endian, as nDPI writes it).
    pub fn float(&mut self, key: u32, value: f32) {
        self.put(KeyRef::Id(key), &Value::Float(value));
    }

    /// A string, cut at 65535 bytes (on a character boundary) if longer.
    pub fn string(&mut self, key: u32, value: &str) {
        self.item(T_STRING, KeyRef::Id(key));
        self.raw_string(value);
    }

    /// A value of any kind under a numeric key.
    pub fn value(&mut self, key: u32, value: &Value) {
        self.put(KeyRef::Id(key), value);
    }

    /// A value of any kind under a name key (nDPI's string keys).
    pub fn named(&mut self, name: &str, value: &Value) {
        self.put(KeyRef::Name(name), value);
    }

    /// Ends the current record.
    pub fn end_record(&mut self) {
        self.buf.push(END_OF_RECORD);
        self.records += 1;
    }

    /// Bytes written so far, header included.
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
    #[must_use]
    pub fn records(&self) -> usize {
        self.records
    }

    /// The current position.
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
