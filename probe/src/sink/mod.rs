//! sink: the end of the pipeline, where records leave the process.
//!
//! `watch` prints raw socket events (text or JSON lines) for `packetless watch`.

pub mod timefmt;
pub mod watch;
