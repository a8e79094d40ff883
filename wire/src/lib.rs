//! packetless's export formats, as bytes in and bytes out: no sockets, no files.
//!
//! - [`header`]: the first frame of every ntopng ZMQ message (v2 28-byte, v3 36-byte).
//! - [`tlv`]: nDPI's TLV serializer, which ntopng parses flows from.
//! - [`fields`]: ntopng's numeric field ids (PEN 0 and ntop's PEN, 57472 + n).
//! - [`json`]: ntopng's JSON flow objects (flat numeric keys plus the nested agent
//!   objects that only Pro builds read).
//! - [`compress`]: the zlib form ntopng inflates.
//! - [`proto`]: packetless's own record schema in protobuf, for other consumers.
//!
//! Encoders and decoders live side by side: the probe encodes, the tests and the
//! example collector decode. Decoders never panic on bad input.

pub mod compress;
pub mod fields;
pub mod header;
pub mod json;
pub mod proto;
pub mod tlv;

/// Why bytes could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A header frame whose length is neither 28 (v2) nor 36 (v3).
    #[error("header of {0} bytes: expected 28 (v2) or 36 (v3)")]
    HeaderLength(usize),
    /// A header version byte ntopng does not accept.
    #[error("header version {0} is not one ntopng accepts")]
    HeaderVersion(u8),
    /// A topic that is not NUL-terminated UTF-8 within 16 bytes.
    #[error("header topic is not a NUL-terminated UTF-8 string of at most 15 bytes")]
    Topic,
    /// A topic too long to encode.
    #[error("topic {0:?} is longer than 15 bytes")]
    TopicTooLong(String),
    /// A TLV payload not starting with serializer version 1, format TLV.
    #[error("TLV payload starts with {0:02x?}, not 01 01 (nDPI serializer v1, TLV)")]
    TlvHeader(Vec<u8>),
    /// A TLV item running past the end of the payload.
    #[error("TLV item at offset {0} runs past the end of the payload")]
    TlvTruncated(usize),
    /// A TLV type byte this decoder (and ntopng) does not accept.
    #[error("unsupported TLV type byte {type_byte:#04x} at offset {offset}")]
    TlvType {
        /// Offset of the type byte.
        offset: usize,
        /// The type byte.
        type_byte: u8,
    },
    /// A TLV string that is not UTF-8.
    #[error("TLV string at offset {0} is not UTF-8")]
    TlvUtf8(usize),
    /// Items after the last end-of-record marker.
    #[error("TLV payload ends inside a record (no end-of-record marker)")]
    TlvUnterminated,
    /// A compressed payload that does not inflate.
    #[error("payload does not inflate: {0}")]
    Inflate(String),
    /// Bytes that are not the expected protobuf message.
    #[error("not a packetless protobuf batch: {0}")]
    Protobuf(String),
}
