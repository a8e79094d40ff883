//! packetless's own record schema (`proto/packetless.proto`), as prost types.
//!
//! For consumers other than ntopng: the same records as the JSON lines of
//! `packetless run`, in protobuf, one [`v1::Batch`] per ZMQ message on the
//! [`TOPIC`] topic.

/// Generated from `proto/packetless.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic, reason = "generated code")]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/packetless.v1.rs"));
}

use prost::Message;

use crate::WireError;

/// The ZMQ topic of protobuf batches.
pub const TOPIC: &str = "pl-records";

/// A batch's bytes.
#[must_use]
pub fn encode(batch: &v1::Batch) -> Vec<u8> {
    batch.encode_to_vec()
}

/// A batch from its bytes.
///
/// # Errors
/// [`WireError::Protobuf`] when the bytes are not a `Batch`.
pub fn decode(bytes: &[u8]) -> Result<v1::Batch, WireError> {
    v1::Batch::decode(bytes).map_err(|e| WireError::Protobuf(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::v1::{record, Batch, Flow, Process, Proto, Record};
    use super::*;

    #[test]
    fn batches_round_trip_and_garbage_is_an_error() {
        let flow = Flow {
            flow_id: "00000000000000ab".into(),
            proto: Proto::Tcp.into(),
            ip_version: 4,
            src_ip: "127.0.0.1".into(),
            src_port: 40000,
            dst_ip: "127.0.0.1".into(),
            dst_port: 80,
            src_bytes: 123_456,
            connect_latency_us: Some(80.5),
            src_process: Some(Process { pid: 7, comm: "curl".into(), ..Process::default() }),
            ..Flow::default()
        };
        let batch = Batch { source_id: 9, records: vec![Record { kind: Some(record::Kind::Flow(flow)) }] };
        let bytes = encode(&batch);
        assert_eq!(decode(&bytes).unwrap(), batch);
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
