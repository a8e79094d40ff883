//! JSON lines output of `packetless run`: one record per line, `snake_case` keys,
//! absent values omitted, never a partial line.

use std::io::{self, Write};

use serde::Serialize;

use super::stats::PipelineStats;
use crate::flow::{FlowCounters, Record};

/// Counters reported when `run` ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunStats {
    /// Kernel and source counters.
    #[serde(flatten)]
    pub pipeline: PipelineStats,
    /// Flow-stage counters.
    #[serde(flatten)]
    pub flows: FlowCounters,
    /// Records dropped because an output could not keep up.
    pub output_dropped: u64,
    /// ZMQ export counters, when exporting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zmq: Option<crate::sink::zmq::ZmqCounters>,
    /// Enrichment counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrich: Option<packetless_enrich::EnrichCounters>,
}

/// Writes one record as a JSON line. The line is built in memory first so that a
/// failed write never leaves half a line behind.
///
/// # Errors
/// When writing fails.
pub fn write_record(out: &mut impl Write, record: &Record) -> io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)
}

/// Writes the final `{"kind":"stats",...}` line.
///
/// # Errors
/// When writing fails.
pub fn write_run_stats(out: &mut impl Write, stats: &RunStats) -> io::Result<()> {
    #[derive(Serialize)]
    struct Line<'a> {
        kind: &'static str,
        #[serde(flatten)]
        stats: &'a RunStats,
    }
    let mut line = serde_json::to_vec(&Line { kind: "stats", stats }).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Direction;
    use crate::flow::{FlowRecord, FlowState, Process};
    use crate::source::Proto;
    use std::time::{Duration, SystemTime};

    #[test]
    fn flow_records_are_one_line_with_the_documented_keys() {
        let record = Record::Flow(FlowRecord {
            flow_id: crate::flow::id::FlowId(0xab),
            proto: Proto::Tcp,
            ip_version: 4,
            src_ip: "127.0.0.1".parse().unwrap(),
            src_port: 40000,
            dst_ip: "127.0.0.1".parse().unwrap(),
            dst_port: 80,
            direction: Direction::Local,
            state: FlowState::Closed,
            first_seen: SystemTime::UNIX_EPOCH + Duration::from_secs(10),
            last_seen: SystemTime::UNIX_EPOCH + Duration::from_millis(10_500),
            src_bytes: 1,
            dst_bytes: 2,
            src_packets: 3,
            dst_packets: 4,
            retransmits: 0,
            src_retransmits: Some(0),
            dst_retransmits: None,
            srtt_us: Some(20),
            connect_latency_us: None,
            end_reason: Some(crate::flow::EndReason::Fin),
            connect_error: None,
            netns: 9,
            src_process: Some(Process { pid: 1, tid: 1, comm: "a".into(), netns: 9, ..Process::default() }),
            dst_process: None,
        });
        let mut buf = Vec::new();
        write_record(&mut buf, &record).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["kind"], "flow");
        assert_eq!(v["direction"], "local");
        assert_eq!(v["state"], "closed");
        assert_eq!(v["end_reason"], "fin");
        assert_eq!(v["proto"], "tcp");
        assert_eq!(v["first_seen"], 10.0);
        assert_eq!(v["last_seen"], 10.5);
        assert_eq!(v["src_process"]["pid"], 1);
        assert!(v.get("dst_process").is_none() && v.get("connect_latency_us").is_none(), "absent values are omitted");
    }
}
