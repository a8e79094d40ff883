//! The compressed payload form ntopng inflates: a zlib stream (`compress()` format).
//!
//! With a v3 header (flag 0x04) the whole payload is the stream; ntopng 6.4 sizes
//! its output buffer from the header's `compressed_size`, which must therefore hold
//! the uncompressed length (see [`crate::header::Header::V3`]).

use std::io::{Read, Write};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::WireError;

/// `payload` as a zlib stream.
///
/// # Panics
/// Never: the stream is written to memory, which cannot fail.
#[must_use]
pub fn zlib(payload: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::with_capacity(payload.len() / 2), Compression::fast());
    enc.write_all(payload).expect("writing to a Vec cannot fail");
    enc.finish().expect("finishing into a Vec cannot fail")
}

/// Inflates a zlib stream of at most `limit` bytes once inflated.
///
/// # Errors
/// [`WireError::Inflate`] for a corrupt stream or one larger than `limit`.
pub fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    let read = ZlibDecoder::new(data)
        .take(u64::try_from(limit).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut out)
        .map_err(|e| WireError::Inflate(e.to_string()))?;
    if read > limit {
        return Err(WireError::Inflate(format!("more than {limit} bytes once inflated")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let data = b"flow flow flow flow flow flow flow flow".repeat(100);
        let z = zlib(&data);
        assert!(z.len() < data.len());
        assert_eq!(z[0], 0x78, "zlib header, not gzip");
        assert_eq!(inflate(&z, data.len()).unwrap(), data);
        assert!(inflate(&z, data.len() - 1).is_err());
        assert!(inflate(b"not zlib", 100).is_err());
    }
}
