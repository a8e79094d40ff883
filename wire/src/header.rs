//! The first frame of every ntopng ZMQ message: topic, version, ids, sizes.
//!
//! Two layouts (docs/ntopng-zmq.md §2.2; C structs, natural alignment):
//!
//! ```text
//! v2, 28 bytes: url[16] | version u8 | pad | size u16 (LE) | msg_id u32 (BE) | source_id u32 (LE)
//! v3, 36 bytes: url[16] | version u8 (=4) | flags u8 | pad[2] | uncompressed_size u32 (BE)
//!               | compressed_size u32 (LE) | msg_id u32 (BE) | source_id u32 (LE)
//! ```
//!
//! ntopng reads `msg_id` with `ntohl` and `source_id` raw (host order, little-endian on
//! every host ntopng ships for), and picks the layout by the frame's length alone.

use crate::WireError;

/// Longest topic: the url field is 16 bytes and ntopng prints it as a C string.
pub const MAX_TOPIC_LEN: usize = 15;
/// Size of a v2 header.
pub const V2_LEN: usize = 28;
/// Size of a v3 header.
pub const V3_LEN: usize = 36;

/// Version byte of a v2 header carrying JSON (`ZMQ_MSG_VERSION_OLD`).
pub const VERSION_JSON: u8 = 2;
/// Version byte of a v2 header carrying nDPI TLV (`ZMQ_MSG_VERSION_TLV`).
pub const VERSION_TLV: u8 = 3;
/// Version byte of a v3 header (`ZMQ_MSG_VERSION`).
pub const VERSION_V3: u8 = 4;

/// v3 flag: the payload is nDPI TLV.
pub const FLAG_TLV: u8 = 0x02;
/// v3 flag: the payload is a zlib stream.
pub const FLAG_COMPRESSED: u8 = 0x04;

/// A decoded or to-be-encoded header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Header {
    /// 28-byte `zmq_msg_hdr_v2`.
    V2 {
        /// Topic (`flow`, `event`, ...).
        topic: String,
        /// [`VERSION_JSON`] or [`VERSION_TLV`].
        version: u8,
        /// Payload length (ignored by ntopng; saturates at 65535).
        size: u16,
        /// Message counter of this source.
        msg_id: u32,
        /// The exporter's id.
        source_id: u32,
    },
    /// 36-byte `zmq_msg_hdr_v3` (version byte 4).
    V3 {
        /// Topic.
        topic: String,
        /// [`FLAG_TLV`], [`FLAG_COMPRESSED`].
        flags: u8,
        /// Length of the payload once inflated (big-endian on the wire).
        uncompressed_size: u32,
        /// Written little-endian; ntopng 6.4 sizes its inflate buffer from it, so
        /// for a compressed payload it must hold the UNCOMPRESSED length.
        compressed_size: u32,
        /// Message counter of this source.
        msg_id: u32,
        /// The exporter's id.
        source_id: u32,
    },
}

impl Header {
    /// The topic.
    #[must_use]
    pub fn topic(&self) -> &str {
        match self {
            Self::V2 { topic, .. } | Self::V3 { topic, .. } => topic,
        }
    }

    /// The message id.
    #[must_use]
    pub fn msg_id(&self) -> u32 {
        match self {
            Self::V2 { msg_id, .. } | Self::V3 { msg_id, .. } => *msg_id,
        }
    }

    /// The source id.
    #[must_use]
    pub fn source_id(&self) -> u32 {
        match self {
            Self::V2 { source_id, .. } | Self::V3 { source_id, .. } => *source_id,
        }
    }

    /// Whether the payload is nDPI TLV.
    #[must_use]
    pub fn is_tlv(&self) -> bool {
        match self {
            Self::V2 { version, .. } => *version == VERSION_TLV,
            Self::V3 { flags, .. } => flags & FLAG_TLV != 0,
        }
    }

    /// Whether the payload is zlib-compressed (v3 only in what this crate writes).
    #[must_use]
    pub fn is_compressed(&self) -> bool {
        matches!(self, Self::V3 { flags, .. } if flags & FLAG_COMPRESSED != 0)
    }

    /// The header's bytes.
    ///
    /// # Errors
    /// [`WireError::TopicTooLong`] for a topic longer than [`MAX_TOPIC_LEN`] bytes.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let topic = self.topic().as_bytes();
        if topic.len() > MAX_TOPIC_LEN {
            return Err(WireError::TopicTooLong(self.topic().to_owned()));
        }
        let mut out = match self {
            Self::V2 { .. } => vec![0u8; V2_LEN],
            Self::V3 { .. } => vec![0u8; V3_LEN],
        };
        out[..topic.len()].copy_from_slice(topic);
        match self {
            Self::V2 { version, size, msg_id, source_id, .. } => {
                out[16] = *version;
                out[18..20].copy_from_slice(&size.to_le_bytes());
                out[20..24].copy_from_slice(&msg_id.to_be_bytes());
                out[24..28].copy_from_slice(&source_id.to_le_bytes());
            }
            Self::V3 { flags, uncompressed_size, compressed_size, msg_id, source_id, .. } => {
                out[16] = VERSION_V3;
                out[17] = *flags;
                out[20..24].copy_from_slice(&uncompressed_size.to_be_bytes());
                out[24..28].copy_from_slice(&compressed_size.to_le_bytes());
                out[28..32].copy_from_slice(&msg_id.to_be_bytes());
                out[32..36].copy_from_slice(&source_id.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Writes `msg_id` into an encoded header frame of either layout (both end with
    /// `msg_id`, then `source_id`), so that one encoding can be numbered per receiver.
    ///
    /// # Errors
    /// [`WireError::HeaderLength`] for a frame that is not a header.
    pub fn set_msg_id(frame: &mut [u8], msg_id: u32) -> Result<(), WireError> {
        let len = frame.len();
        if len != V2_LEN && len != V3_LEN {
            return Err(WireError::HeaderLength(len));
        }
        frame[len - 8..len - 4].copy_from_slice(&msg_id.to_be_bytes());
        Ok(())
    }

    /// Parses a header frame, choosing the layout by its length as ntopng does.
    ///
    /// # Errors
    /// [`WireError::HeaderLength`] for a length other than 28 or 36,
    /// [`WireError::HeaderVersion`] for a version byte ntopng would refuse, and
    /// [`WireError::Topic`] for a topic that is not NUL-terminated UTF-8.
    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        let u32_at = |off: usize| -> [u8; 4] { [frame[off], frame[off + 1], frame[off + 2], frame[off + 3]] };
        let topic = |frame: &[u8]| -> Result<String, WireError> {
            let url = &frame[..16];
            let end = url.iter().position(|&b| b == 0).ok_or(WireError::Topic)?;
            String::from_utf8(url[..end].to_vec()).map_err(|_| WireError::Topic)
        };
        match frame.len() {
            V2_LEN => {
                let version = frame[16];
                if version > VERSION_V3 {
                    return Err(WireError::HeaderVersion(version));
                }
                Ok(Self::V2 {
                    topic: topic(frame)?,
                    version,
                    size: u16::from_le_bytes([frame[18], frame[19]]),
                    msg_id: u32::from_be_bytes(u32_at(20)),
                    source_id: u32::from_le_bytes(u32_at(24)),
                })
            }
            V3_LEN => {
                if frame[16] != VERSION_V3 {
                    return Err(WireError::HeaderVersion(frame[16]));
                }
                Ok(Self::V3 {
                    topic: topic(frame)?,
                    flags: frame[17],
                    uncompressed_size: u32::from_be_bytes(u32_at(20)),
                    compressed_size: u32::from_le_bytes(u32_at(24)),
                    msg_id: u32::from_be_bytes(u32_at(28)),
                    source_id: u32::from_le_bytes(u32_at(32)),
                })
            }
            n => Err(WireError::HeaderLength(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_golden_bytes() {
        let h = Header::V2 { topic: "flow".into(), version: VERSION_TLV, size: 300, msg_id: 7, source_id: 0x0102_0304 };
        let bytes = h.encode().unwrap();
        let mut want = vec![0u8; 28];
        want[..4].copy_from_slice(b"flow");
        want[16] = 3;
        want[18..20].copy_from_slice(&[0x2c, 0x01]);
        want[20..24].copy_from_slice(&[0, 0, 0, 7]);
        want[24..28].copy_from_slice(&[4, 3, 2, 1]);
        assert_eq!(bytes, want);
        assert_eq!(Header::decode(&bytes).unwrap(), h);
        assert!(h.is_tlv() && !h.is_compressed());
    }

    #[test]
    fn v3_golden_bytes() {
        let h = Header::V3 {
            topic: "event".into(),
            flags: FLAG_TLV | FLAG_COMPRESSED,
            uncompressed_size: 1000,
            compressed_size: 1000,
            msg_id: 0x0a0b_0c0d,
            source_id: 9,
        };
        let bytes = h.encode().unwrap();
        assert_eq!(bytes.len(), 36);
        assert_eq!(&bytes[..5], b"event");
        assert_eq!(&bytes[16..20], &[4, 6, 0, 0]);
        assert_eq!(&bytes[20..24], &[0, 0, 0x03, 0xe8], "uncompressed size big-endian");
        assert_eq!(&bytes[24..28], &[0xe8, 0x03, 0, 0], "compressed_size as ntopng reads it raw");
        assert_eq!(&bytes[28..32], &[0x0a, 0x0b, 0x0c, 0x0d], "msg_id big-endian");
        assert_eq!(&bytes[32..36], &[9, 0, 0, 0], "source_id host order");
        assert_eq!(Header::decode(&bytes).unwrap(), h);
        assert!(h.is_tlv() && h.is_compressed());
    }

    #[test]
    fn message_ids_are_numbered_into_encoded_frames_of_both_layouts() {
        let v2 = Header::V2 { topic: "flow".into(), version: VERSION_TLV, size: 1, msg_id: 0, source_id: 5 };
        let v3 = Header::V3 {
            topic: "event".into(),
            flags: 0,
            uncompressed_size: 1,
            compressed_size: 1,
            msg_id: 0,
            source_id: 5,
        };
        for h in [v2, v3] {
            let mut frame = h.encode().unwrap();
            Header::set_msg_id(&mut frame, 0x0102_0304).unwrap();
            let back = Header::decode(&frame).unwrap();
            assert_eq!((back.msg_id(), back.source_id(), back.topic()), (0x0102_0304, 5, h.topic()));
        }
        assert_eq!(Header::set_msg_id(&mut [0u8; 30], 1), Err(WireError::HeaderLength(30)));
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        assert_eq!(Header::decode(&[0u8; 24]), Err(WireError::HeaderLength(24)));
        assert_eq!(Header::decode(&[]), Err(WireError::HeaderLength(0)));
        let mut v2 =
            Header::V2 { topic: "flow".into(), version: 3, size: 0, msg_id: 0, source_id: 0 }.encode().unwrap();
        v2[16] = 5;
        assert_eq!(Header::decode(&v2), Err(WireError::HeaderVersion(5)));
        let mut v3 = vec![b'x'; 36];
        v3[16] = 4;
        assert_eq!(Header::decode(&v3), Err(WireError::Topic), "topic without NUL");
        let long = Header::V2 { topic: "a-topic-of-16-ch".into(), version: 3, size: 0, msg_id: 0, source_id: 0 };
        assert!(matches!(long.encode(), Err(WireError::TopicTooLong(_))));
    }
}
