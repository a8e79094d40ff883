//! Counters every tracing command reports when it ends.

use std::collections::BTreeMap;

use serde::Serialize;

/// Losses and volumes of the kernel side and of the source stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PipelineStats {
    /// Kernel-side counters by name (`ringbuf_full`, `storage_fail`, ...).
    pub kernel: BTreeMap<&'static str, u64>,
    /// Records read from the ring buffer.
    pub received: u64,
    /// Records that did not decode.
    pub decode_errors: u64,
    /// Events dropped because the stage after the reader was full.
    pub channel_full: u64,
    /// Failed attempts to take out the opens the kernel holds back: until one
    /// succeeds, connections show only once they close.
    pub held_open_errors: u64,
}
