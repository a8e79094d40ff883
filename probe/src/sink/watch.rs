//! The `watch` printer: one line per socket event, text (in the spirit of ntop's
//! ebpflowexport) or JSON, and the final loss counters.

use std::io::{self, Write};
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::stats::PipelineStats;
use super::timefmt::{epoch_seconds, rfc3339_micros};
use crate::source::{Detail, Proto, SocketEvent};

/// Which events `watch` prints (from -t -u -i -o -r -c).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools, reason = "one bool per independent command-line switch")]
pub struct EventFilter {
    /// Show TCP events.
    pub tcp: bool,
    /// Show UDP events.
    pub udp: bool,
    /// Show accept and UDP recv.
    pub incoming: bool,
    /// Show connect, `connect_failed` and UDP send.
    pub outgoing: bool,
    /// Show retransmits.
    pub retransmits: bool,
    /// Show TCP close.
    pub tcp_close: bool,
}

impl Default for EventFilter {
    fn default() -> Self {
        Self { tcp: true, udp: true, incoming: false, outgoing: false, retransmits: false, tcp_close: false }
    }
}

impl EventFilter {
    /// Whether `event` passes. With no kind selected, every kind passes.
    #[must_use]
    pub fn accepts(&self, event: &SocketEvent) -> bool {
        let proto_ok = match event.proto {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
        };
        if !proto_ok {
            return false;
        }
        if !(self.incoming || self.outgoing || self.retransmits || self.tcp_close) {
            return true;
        }
        match event.detail {
            Detail::Accept | Detail::UdpRecv { .. } => self.incoming,
            Detail::Connect { .. } | Detail::ConnectFailed { .. } | Detail::UdpSend { .. } => self.outgoing,
            Detail::Retransmit { .. } => self.retransmits,
            Detail::Close { .. } => self.tcp_close,
            Detail::Listen | Detail::UdpClose | Detail::Snapshot { .. } => false,
        }
    }
}

fn micros(d: Duration) -> f64 {
    // Keep nanosecond precision as three decimals of microseconds.
    #[allow(clippy::cast_precision_loss, reason = "durations here are far below 2^53 ns")]
    let ns = d.as_nanos() as f64;
    (ns / 1000.0 * 1000.0).round() / 1000.0
}

/// The JSON object of one event. Field names are a public contract (README).
#[derive(Serialize)]
struct EventLine<'a> {
    event: &'static str,
    ts: f64,
    proto: &'static str,
    ip_version: u8,
    local_ip: IpAddr,
    local_port: u16,
    remote_ip: IpAddr,
    remote_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup_id: Option<u64>,
    netns: u32,
    cookie: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segs_in: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segs_out: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retransmits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    srtt_us: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_known: Option<bool>,
}

impl<'a> EventLine<'a> {
    fn new(ev: &'a SocketEvent) -> Self {
        let owner = ev.owner.as_ref();
        let mut line = Self {
            event: ev.detail.name(),
            ts: epoch_seconds(ev.time),
            proto: ev.proto.name(),
            ip_version: if ev.local.is_ipv4() { 4 } else { 6 },
            local_ip: ev.local.ip(),
            local_port: ev.local.port(),
            remote_ip: ev.remote.ip(),
            remote_port: ev.remote.port(),
            pid: owner.map(|o| o.pid),
            tid: owner.map(|o| o.tid),
            comm: owner.map(|o| o.comm.as_str()),
            uid: owner.map(|o| o.uid),
            gid: owner.map(|o| o.gid),
            cgroup_id: owner.map(|o| o.cgroup_id),
            netns: ev.netns,
            cookie: ev.cookie,
            latency_us: None,
            bytes_sent: None,
            bytes_received: None,
            segs_in: None,
            segs_out: None,
            retransmits: None,
            srtt_us: None,
            state: None,
            reason: None,
            errno: None,
            peer_known: None,
        };
        match &ev.detail {
            Detail::Connect { latency, srtt_us } => {
                line.latency_us = latency.map(micros);
                line.srtt_us = Some(*srtt_us);
            }
            Detail::ConnectFailed { error, after } => {
                line.reason = Some(error.reason());
                line.errno = Some(error.errno);
                line.latency_us = after.map(micros);
            }
            Detail::Close { from, counters, .. } => {
                line.bytes_sent = Some(counters.bytes_sent);
                line.bytes_received = Some(counters.bytes_received);
                line.segs_in = Some(counters.segs_in);
                line.segs_out = Some(counters.segs_out);
                line.retransmits = Some(counters.retransmits);
                line.srtt_us = Some(counters.srtt_us);
                line.state = from.map(crate::source::TcpState::name);
            }
            Detail::Retransmit { count, state, srtt_us } => {
                line.retransmits = Some(*count);
                line.state = state.map(crate::source::TcpState::name);
                line.srtt_us = Some(*srtt_us);
            }
            Detail::UdpSend { bytes } => {
                line.bytes_sent = Some(*bytes);
                line.peer_known = Some(ev.remote.port() != 0);
            }
            Detail::UdpRecv { bytes } => {
                line.bytes_received = Some(*bytes);
                line.peer_known = Some(ev.remote.port() != 0);
            }
            Detail::Snapshot { state, .. } => line.state = state.map(crate::source::TcpState::name),
            Detail::Accept | Detail::Listen | Detail::UdpClose => {}
        }
        line
    }
}

/// Writes one event as a JSON line.
///
/// # Errors
/// When writing fails.
pub fn write_json(out: &mut impl Write, ev: &SocketEvent) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &EventLine::new(ev)).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// Writes one event as a text line:
/// `time [event][IPv4/TCP][pid/tid: 1446/1446 [curl], uid/gid: 0/0][addr: a:p -> b:p][latency: 0.10 msec]`.
///
/// # Errors
/// When writing fails.
pub fn write_text(out: &mut impl Write, ev: &SocketEvent) -> io::Result<()> {
    let ip = if ev.local.is_ipv4() { "IPv4" } else { "IPv6" };
    let proto = match ev.proto {
        Proto::Tcp => "TCP",
        Proto::Udp => "UDP",
    };
    write!(out, "{} [{}][{ip}/{proto}]", rfc3339_micros(ev.time), ev.detail.name())?;
    match &ev.owner {
        Some(o) => write!(out, "[pid/tid: {}/{} [{}], uid/gid: {}/{}]", o.pid, o.tid, o.comm, o.uid, o.gid)?,
        None => write!(out, "[pid/tid: ?/? [?], uid/gid: ?/?]")?,
    }
    let arrow = match ev.detail {
        Detail::Connect { .. } | Detail::ConnectFailed { .. } | Detail::UdpSend { .. } => "->",
        Detail::Accept | Detail::UdpRecv { .. } => "<-",
        _ => "<->",
    };
    write!(out, "[addr: {} {arrow} {}]", ev.local, ev.remote)?;
    match &ev.detail {
        Detail::Connect { latency, .. } => {
            if let Some(l) = latency {
                write!(out, "[latency: {:.2} msec]", l.as_secs_f64() * 1000.0)?;
            }
        }
        Detail::ConnectFailed { error, .. } => write!(out, "[reason: {}]", error.reason())?,
        Detail::Close { from, counters, .. } => write!(
            out,
            "[sent: {} rcvd: {} bytes][segs in/out: {}/{}][retr: {}][srtt: {} usec][from: {}]",
            counters.bytes_sent,
            counters.bytes_received,
            counters.segs_in,
            counters.segs_out,
            counters.retransmits,
            counters.srtt_us,
            from.map_or("?", crate::source::TcpState::name)
        )?,
        Detail::Retransmit { count, .. } => write!(out, "[retransmits: {count}]")?,
        Detail::UdpSend { bytes } | Detail::UdpRecv { bytes } => write!(out, "[{bytes} bytes]")?,
        Detail::Accept | Detail::Listen | Detail::UdpClose | Detail::Snapshot { .. } => {}
    }
    out.write_all(b"\n")
}

/// Counters reported when `watch` ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WatchStats {
    /// Kernel and source counters.
    #[serde(flatten)]
    pub pipeline: PipelineStats,
    /// Events printed.
    pub printed: u64,
}

/// Writes the final `{"event":"stats",...}` line.
///
/// # Errors
/// When writing fails.
pub fn write_stats_json(out: &mut impl Write, stats: &WatchStats) -> io::Result<()> {
    #[derive(Serialize)]
    struct Line<'a> {
        event: &'static str,
        #[serde(flatten)]
        stats: &'a WatchStats,
    }
    serde_json::to_writer(&mut *out, &Line { event: "stats", stats }).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// Writes the stats as one human-readable line.
///
/// # Errors
/// When writing fails.
pub fn write_stats_text(out: &mut impl Write, stats: &WatchStats) -> io::Result<()> {
    let p = &stats.pipeline;
    write!(
        out,
        "stats: received={} printed={} decode_errors={} channel_full={}",
        p.received, stats.printed, p.decode_errors, p.channel_full
    )?;
    for (name, value) in &p.kernel {
        write!(out, " kernel.{name}={value}")?;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{ConnectError, Owner, TcpCounters, TcpState};
    use std::time::UNIX_EPOCH;

    fn event(detail: Detail, proto: Proto) -> SocketEvent {
        SocketEvent {
            time: UNIX_EPOCH + Duration::from_micros(1_795_308_721_123_456),
            boot_ns: 1,
            cookie: 77,
            netns: 4_026_531_840,
            proto,
            local: "127.0.0.1:40000".parse().unwrap(),
            remote: "127.0.0.1:8080".parse().unwrap(),
            owner: Some(Owner {
                pid: 10,
                tid: 11,
                uid: 1000,
                gid: 1000,
                comm: "curl".into(),
                cgroup_id: 5,
                from_current: false,
                ppid: 1,
                parent_comm: "bash".into(),
                exe: "curl".into(),
                start_ns: 9,
                exec_id: 1,
            }),
            detail,
        }
    }

    fn json(ev: &SocketEvent) -> serde_json::Value {
        let mut buf = Vec::new();
        write_json(&mut buf, ev).unwrap();
        let body = buf.strip_suffix(b"\n").expect("line ends with a newline");
        assert!(!body.contains(&b'\n'), "exactly one line");
        serde_json::from_slice(&buf).unwrap()
    }

    #[test]
    fn connect_json_has_the_documented_keys() {
        let v = json(&event(Detail::Connect { latency: Some(Duration::from_nanos(102_345)), srtt_us: 40 }, Proto::Tcp));
        assert_eq!(v["event"], "connect");
        assert_eq!(v["proto"], "tcp");
        assert_eq!(v["ip_version"], 4);
        assert_eq!(v["local_ip"], "127.0.0.1");
        assert_eq!(v["remote_port"], 8080);
        assert_eq!(v["pid"], 10);
        assert_eq!(v["tid"], 11);
        assert_eq!(v["comm"], "curl");
        assert_eq!(v["cgroup_id"], 5);
        assert_eq!(v["cookie"], 77);
        assert_eq!(v["latency_us"], 102.345);
        assert_eq!(v["ts"], 1_795_308_721.123_456);
        assert!(v.get("bytes_sent").is_none(), "absent values are omitted");
    }

    #[test]
    fn close_and_failure_json_carry_counters_and_reason() {
        let counters =
            TcpCounters { bytes_sent: 5, bytes_received: 6, segs_in: 7, segs_out: 8, retransmits: 2, srtt_us: 30 };
        let v = json(&event(Detail::Close { from: Some(TcpState::FinWait2), opening: None, counters }, Proto::Tcp));
        assert_eq!((v["bytes_sent"].as_u64(), v["bytes_received"].as_u64()), (Some(5), Some(6)));
        assert_eq!(v["retransmits"], 2);
        assert_eq!(v["state"], "fin_wait2");
        let v = json(&event(
            Detail::ConnectFailed { error: ConnectError { errno: libc::ECONNREFUSED }, after: None },
            Proto::Tcp,
        ));
        assert_eq!(v["reason"], "refused");
        assert_eq!(v["errno"], libc::ECONNREFUSED);
    }

    #[test]
    fn text_line_follows_the_ebpflowexport_shape() {
        let mut buf = Vec::new();
        write_text(
            &mut buf,
            &event(Detail::Connect { latency: Some(Duration::from_micros(100)), srtt_us: 0 }, Proto::Tcp),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2026-11-22T00:52:01.123456Z [connect][IPv4/TCP][pid/tid: 10/11 [curl], uid/gid: 1000/1000]\
             [addr: 127.0.0.1:40000 -> 127.0.0.1:8080][latency: 0.10 msec]\n"
        );
    }

    #[test]
    fn filters_select_kinds_and_protocols() {
        let accept = event(Detail::Accept, Proto::Tcp);
        let send = event(Detail::UdpSend { bytes: 1 }, Proto::Udp);
        let all = EventFilter::default();
        assert!(all.accepts(&accept) && all.accepts(&send));
        let tcp_in = EventFilter { udp: false, incoming: true, ..EventFilter::default() };
        assert!(tcp_in.accepts(&accept));
        assert!(!tcp_in.accepts(&send));
        let out_only = EventFilter { outgoing: true, ..EventFilter::default() };
        assert!(!out_only.accepts(&accept));
        assert!(out_only.accepts(&send));
    }
}
