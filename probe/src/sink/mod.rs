//! sink: the end of the pipeline, where records leave the process.
//!
//! `watch` prints raw socket events (text or JSON lines) for `packetless watch`;
//! `json` writes the records of `packetless run`; `stats` is what both report at exit.

pub mod json;
pub mod stats;
pub mod timefmt;
pub mod watch;
pub mod zmq;
