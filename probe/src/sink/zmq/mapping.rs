//! Flow records as ntopng fields (docs/ntopng-fields.md is the table for users).
//!
//! Choices that matter to ntopng (docs/ntopng-zmq.md §3):
//! - ports and counters are numbers, addresses are strings (IPv4-mapped IPv6
//!   addresses are sent as plain IPv4, which ntopng cannot parse otherwise);
//! - counters are cumulative, in `INITIATOR_*` and `RESPONDER_*`, so updates never
//!   double count;
//! - `CLIENT_TCP_FLAGS` carries SYN, so ntopng never swaps client and server;
//! - process fields are in every message of a flow, the first one included, which is
//!   the only one ntopng reads them from.
//!
//! One walk over a record ([`write_fields`]) decides which fields go out, in which
//! order; it writes them either straight into a TLV payload ([`write_tlv`], the
//! exporter's path, which allocates nothing per record) or into a list
//! ([`flow_fields`], for JSON and tests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::UNIX_EPOCH;

use packetless_wire::fields as f;
use packetless_wire::tlv::{TlvWriter, Value};

use crate::classify::{canonical_ip, Direction};
use crate::flow::{EndReason, FlowRecord, FlowState, Process};
use crate::source::Proto;

const TH_FIN: u64 = 0x01;
const TH_SYN: u64 = 0x02;
const TH_RST: u64 = 0x04;
const TH_ACK: u64 = 0x10;

/// Where [`write_fields`] puts the fields of a record.
trait Fields {
    fn uint(&mut self, key: u32, value: u64);
    fn float(&mut self, key: u32, value: f32);
    fn string(&mut self, key: u32, value: &str);
    /// Addresses go as text (both kinds): ntopng parses them from strings.
    fn ipv4(&mut self, key: u32, ip: Ipv4Addr);
    fn ipv6(&mut self, key: u32, ip: Ipv6Addr);
    /// One string made of `parts` end to end.
    fn string_parts(&mut self, key: u32, parts: &[&str]);
}

impl Fields for TlvWriter {
    #[inline]
    fn uint(&mut self, key: u32, value: u64) {
        TlvWriter::uint(self, key, value);
    }

    #[inline]
    fn float(&mut self, key: u32, value: f32) {
        TlvWriter::float(self, key, value);
    }

    #[inline]
    fn string(&mut self, key: u32, value: &str) {
        TlvWriter::string(self, key, value);
    }

    #[inline]
    fn ipv4(&mut self, key: u32, ip: Ipv4Addr) {
        TlvWriter::ipv4(self, key, ip);
    }

    fn ipv6(&mut self, key: u32, ip: Ipv6Addr) {
        TlvWriter::ipv6(self, key, ip);
    }

    fn string_parts(&mut self, key: u32, parts: &[&str]) {
        TlvWriter::string_parts(self, key, parts);
    }
}

impl Fields for Vec<(u32, Value)> {
    fn uint(&mut self, key: u32, value: u64) {
        self.push((key, Value::Uint(value)));
    }

    fn float(&mut self, key: u32, value: f32) {
        self.push((key, Value::Float(value)));
    }

    fn string(&mut self, key: u32, value: &str) {
        self.push((key, Value::Str(value.to_owned())));
    }

    fn ipv4(&mut self, key: u32, ip: Ipv4Addr) {
        self.push((key, Value::Str(ip.to_string())));
    }

    fn ipv6(&mut self, key: u32, ip: Ipv6Addr) {
        self.push((key, Value::Str(ip.to_string())));
    }

    fn string_parts(&mut self, key: u32, parts: &[&str]) {
        self.push((key, Value::Str(parts.concat())));
    }
}

/// Writes one flow as one TLV record: its fields, then the end-of-record marker.
pub fn write_tlv(w: &mut TlvWriter, flow: &FlowRecord) {
    write_fields(flow, w);
    w.end_record();
}

/// The fields of one flow record, in the order [`write_tlv`] writes them.
#[must_use]
pub fn flow_fields(flow: &FlowRecord) -> Vec<(u32, Value)> {
    let mut out = Vec::with_capacity(40);
    write_fields(flow, &mut out);
    out
}

fn write_fields(flow: &FlowRecord, out: &mut impl Fields) {
    // Both ends as IPv4 when both are (IPv4-mapped ones included), else both as IPv6.
    // Taken apart here, addresses travel in registers: passed on as `IpAddr`s they
    // were stored piecewise and read back whole, which stalls the CPU.
    let v4 = if let (Some(src), Some(dst)) = (plain_v4(flow.src_ip), plain_v4(flow.dst_ip)) {
        out.ipv4(f::IPV4_SRC_ADDR, src);
        out.ipv4(f::IPV4_DST_ADDR, dst);
        true
    } else {
        out.ipv6(f::IPV6_SRC_ADDR, as_v6(flow.src_ip));
        out.ipv6(f::IPV6_DST_ADDR, as_v6(flow.dst_ip));
        false
    };
    out.uint(f::IP_PROTOCOL_VERSION, if v4 { 4 } else { 6 });
    out.uint(f::L4_SRC_PORT, u64::from(flow.src_port));
    out.uint(f::L4_DST_PORT, u64::from(flow.dst_port));
    out.uint(
        f::PROTOCOL,
        match flow.proto {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        },
    );
    out.uint(f::FIRST_SWITCHED, epoch_secs(flow.first_seen));
    out.uint(f::LAST_SWITCHED, epoch_secs(flow.last_seen));
    out.uint(f::INITIATOR_OCTETS, flow.src_bytes);
    out.uint(f::RESPONDER_OCTETS, flow.dst_bytes);
    out.uint(f::INITIATOR_PKTS, flow.src_packets);
    out.uint(f::RESPONDER_PKTS, flow.dst_packets);
    match flow.direction {
        Direction::Inbound => out.uint(f::DIRECTION, 0),
        Direction::Outbound => out.uint(f::DIRECTION, 1),
        Direction::Local | Direction::Listen => {}
    }
    if flow.proto == Proto::Tcp {
        tcp_fields(flow, out);
    }
    if let Some(reason) = end_reason_text(flow) {
        out.string_parts(f::FLOW_END_REASON, &reason);
    }
    if let Some(p) = &flow.src_process {
        process_fields(p, &ProcessKeys::SRC, out);
    }
    if let Some(p) = &flow.dst_process {
        process_fields(p, &ProcessKeys::DST, out);
    }
}

fn tcp_fields(flow: &FlowRecord, out: &mut impl Fields) {
    let mut client = TH_SYN | TH_ACK;
    let mut server = TH_SYN | TH_ACK;
    if flow.state == FlowState::Closed {
        match flow.end_reason {
            Some(EndReason::Fin) => {
                client |= TH_FIN;
                server |= TH_FIN;
            }
            Some(EndReason::Rst) => client |= TH_RST,
            Some(EndReason::FailedConnect) => {
                client = TH_SYN;
                server = TH_RST;
            }
            _ => {}
        }
    }
    out.uint(f::CLIENT_TCP_FLAGS, client);
    out.uint(f::SERVER_TCP_FLAGS, server);
    out.uint(f::TCP_FLAGS, client | server);
    if let Some(r) = flow.src_retransmits {
        out.uint(f::RETRANSMITTED_IN_PKTS, r);
    }
    if let Some(r) = flow.dst_retransmits {
        out.uint(f::RETRANSMITTED_OUT_PKTS, r);
    }
    // The client's SYN to SYN-ACK time is the network latency towards the server.
    let server_latency_ms =
        flow.connect_latency_us.map(|us| us / 1000.0).or_else(|| flow.srtt_us.map(|us| f64::from(us) / 1000.0));
    if let Some(ms) = server_latency_ms {
        #[allow(clippy::cast_possible_truncation, reason = "milliseconds fit an f32 with room to spare")]
        out.float(f::SERVER_NW_LATENCY_MS, ms as f32);
    }
}

/// ntopng reads `FLOW_END_REASON` as free text; these read well in its flow details.
/// In two parts, so that `connect failed: <error>` is written without being built.
fn end_reason_text(flow: &FlowRecord) -> Option<[&str; 2]> {
    if flow.state != FlowState::Closed {
        return None;
    }
    Some(match flow.end_reason? {
        EndReason::Fin => ["tcp fin", ""],
        EndReason::Rst => ["tcp reset", ""],
        EndReason::Timeout => ["idle timeout", ""],
        EndReason::Close => ["socket closed", ""],
        EndReason::FailedConnect => ["connect failed: ", flow.connect_error.as_deref().unwrap_or("unknown")],
        EndReason::Gone => ["socket gone, close not seen", ""],
    })
}

struct ProcessKeys {
    pid: u32,
    name: u32,
    uid: u32,
    user: u32,
    cmdline: u32,
    father_pid: u32,
    father_name: u32,
    container: u32,
}

impl ProcessKeys {
    const SRC: Self = Self {
        pid: f::SRC_PROC_PID,
        name: f::SRC_PROC_NAME,
        uid: f::SRC_PROC_UID,
        user: f::SRC_PROC_USER_NAME,
        cmdline: f::SRC_PROC_CMDLINE,
        father_pid: f::SRC_FATHER_PROC_PID,
        father_name: f::SRC_FATHER_PROC_NAME,
        container: f::SRC_PROC_CONTAINER_ID,
    };
    const DST: Self = Self {
        pid: f::DST_PROC_PID,
        name: f::DST_PROC_NAME,
        uid: f::DST_PROC_UID,
        user: f::DST_PROC_USER_NAME,
        cmdline: f::DST_PROC_CMDLINE,
        father_pid: f::DST_FATHER_PROC_PID,
        father_name: f::DST_FATHER_PROC_NAME,
        container: f::DST_PROC_CONTAINER_ID,
    };
}

/// The name ntopng shows for a process: its executable path when known (as nProbe
/// Agent does), else its command name.
fn process_name(p: &Process) -> &str {
    p.exe().filter(|e| e.starts_with('/')).unwrap_or_else(|| &p.comm)
}

fn process_fields(p: &Process, keys: &ProcessKeys, out: &mut impl Fields) {
    out.uint(keys.pid, u64::from(p.pid));
    out.string(keys.name, process_name(p));
    out.uint(keys.uid, u64::from(p.uid));
    if let Some(user) = p.user() {
        out.string(keys.user, user);
    }
    if let Some(cmdline) = p.cmdline() {
        out.string(keys.cmdline, cmdline);
    }
    if let Some(ppid) = p.ppid {
        out.uint(keys.father_pid, u64::from(ppid));
        // Its comm only when needed: reading one checks its UTF-8.
        let parent = match (p.parent_exe(), &p.parent_comm) {
            (Some(exe), _) => Some(exe),
            (None, comm) => comm.as_deref(),
        };
        if let Some(parent) = parent {
            out.string(keys.father_name, parent);
        }
    }
    if let Some(container) = p.container() {
        out.string(keys.container, &container.id);
    }
}

/// The nested agent objects ntopng's JSON parser reads (any key ending in
/// `CONTAINER`): `{"ID", "K8S": {"NAME", "POD", "NS"}}` for Kubernetes containers,
/// `{"ID", "DOCKER": {"NAME"}}` for others. TLV cannot carry them.
#[must_use]
pub fn container_objects(flow: &FlowRecord) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for (key, process) in [("SRC_CONTAINER", &flow.src_process), ("DST_CONTAINER", &flow.dst_process)] {
        let Some(c) = process.as_ref().and_then(Process::container) else { continue };
        let object = if c.pod.is_some() {
            serde_json::json!({
                "ID": c.id,
                "K8S": { "NAME": c.k8s_container, "POD": c.pod, "NS": c.namespace },
            })
        } else {
            serde_json::json!({ "ID": c.id, "DOCKER": { "NAME": c.name } })
        };
        out.push((key.to_owned(), object));
    }
    out
}

/// The address as IPv4, if it is one: [`canonical_ip`](crate::classify::canonical_ip)'s rule.
/// The address as IPv4 when it is one, IPv4-mapped included.
fn plain_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }
}

/// The address as IPv6: an IPv4 end of an IPv6 flow goes as IPv4-mapped.
fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn epoch_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use packetless_enrich::Details;
    use std::sync::Arc;
    use std::time::Duration;

    fn record() -> FlowRecord {
        FlowRecord {
            flow_id: crate::flow::id::FlowId(1),
            proto: Proto::Tcp,
            ip_version: 6,
            src_ip: "::ffff:127.0.0.1".parse().unwrap(),
            src_port: 40000,
            dst_ip: "127.0.0.1".parse().unwrap(),
            dst_port: 443,
            direction: Direction::Local,
            state: FlowState::Closed,
            first_seen: UNIX_EPOCH + Duration::from_secs(100),
            last_seen: UNIX_EPOCH + Duration::from_millis(101_900),
            src_bytes: 10,
            dst_bytes: 20,
            src_packets: 3,
            dst_packets: 4,
            retransmits: 1,
            src_retransmits: Some(1),
            dst_retransmits: Some(0),
            srtt_us: Some(30),
            connect_latency_us: Some(1500.0),
            end_reason: Some(EndReason::Fin),
            connect_error: None,
            netns: 1,
            src_process: Some(Process {
                pid: 7,
                tid: 7,
                comm: "curl".into(),
                uid: 1000,
                gid: 1000,
                cgroup_id: 1,
                netns: 1,
                ..Process::default()
            }),
            dst_process: Some(Process {
                pid: 8,
                tid: 8,
                comm: "nginx".into(),
                uid: 33,
                gid: 33,
                cgroup_id: 1,
                netns: 1,
                ..Process::default()
            }),
        }
    }

    fn get(fields: &[(u32, Value)], id: u32) -> Option<&Value> {
        fields.iter().find(|(k, _)| *k == id).map(|(_, v)| v)
    }

    #[test]
    fn mapped_ipv4_is_sent_as_ipv4_with_numeric_ports_and_cumulative_counters() {
        let fields = flow_fields(&record());
        assert_eq!(get(&fields, f::IPV4_SRC_ADDR), Some(&Value::Str("127.0.0.1".into())));
        assert_eq!(get(&fields, f::IP_PROTOCOL_VERSION), Some(&Value::Uint(4)));
        assert_eq!(get(&fields, f::L4_SRC_PORT), Some(&Value::Uint(40000)));
        assert_eq!(get(&fields, f::INITIATOR_OCTETS), Some(&Value::Uint(10)));
        assert_eq!(get(&fields, f::RESPONDER_PKTS), Some(&Value::Uint(4)));
        assert_eq!(get(&fields, f::FIRST_SWITCHED), Some(&Value::Uint(100)));
        assert_eq!(get(&fields, f::LAST_SWITCHED), Some(&Value::Uint(101)));
        assert!(get(&fields, f::IN_BYTES).is_none(), "no delta counters next to cumulative ones");
        assert!(get(&fields, f::DIRECTION).is_none(), "local flows leave direction to ntopng");
    }

    #[test]
    fn both_processes_and_tcp_details_are_present() {
        let fields = flow_fields(&record());
        assert_eq!(get(&fields, f::SRC_PROC_PID), Some(&Value::Uint(7)));
        assert_eq!(get(&fields, f::SRC_PROC_NAME), Some(&Value::Str("curl".into())));
        assert_eq!(get(&fields, f::DST_PROC_PID), Some(&Value::Uint(8)));
        assert_eq!(get(&fields, f::DST_PROC_UID), Some(&Value::Uint(33)));
        assert_eq!(get(&fields, f::CLIENT_TCP_FLAGS), Some(&Value::Uint(TH_SYN | TH_ACK | TH_FIN)));
        assert_eq!(get(&fields, f::SERVER_NW_LATENCY_MS), Some(&Value::Float(1.5)));
        assert_eq!(get(&fields, f::FLOW_END_REASON), Some(&Value::Str("tcp fin".into())));
        assert_eq!(get(&fields, f::RETRANSMITTED_IN_PKTS), Some(&Value::Uint(1)));
    }

    #[test]
    fn containers_become_nested_agent_objects() {
        let mut r = record();
        let pod = packetless_enrich::Container {
            id: "abc".into(),
            runtime: "docker",
            name: Some("k8s_api".into()),
            image: None,
            pod: Some("api-7d9f".into()),
            namespace: Some("prod".into()),
            k8s_container: Some("api".into()),
            pod_uid: None,
        };
        let in_container = |c| Some(Arc::new(Details { container: Some(Arc::new(c)), ..Details::default() }));
        r.src_process.as_mut().unwrap().details = in_container(pod);
        let plain = packetless_enrich::Container {
            id: "def".into(),
            runtime: "docker",
            name: Some("web".into()),
            image: None,
            pod: None,
            namespace: None,
            k8s_container: None,
            pod_uid: None,
        };
        r.dst_process.as_mut().unwrap().details = in_container(plain);
        let objects = container_objects(&r);
        assert_eq!(objects[0].0, "SRC_CONTAINER");
        assert_eq!(objects[0].1["K8S"]["NS"], "prod");
        assert_eq!(objects[1].1["DOCKER"]["NAME"], "web");
        assert_eq!(get(&flow_fields(&r), f::SRC_PROC_CONTAINER_ID), Some(&Value::Str("abc".into())));
    }

    #[test]
    fn open_ipv6_outbound_flow() {
        let mut r = record();
        r.src_ip = "2001:db8::1".parse().unwrap();
        r.dst_ip = "2001:db8::2".parse().unwrap();
        r.state = FlowState::Open;
        r.direction = Direction::Outbound;
        r.dst_process = None;
        let fields = flow_fields(&r);
        assert_eq!(get(&fields, f::IPV6_DST_ADDR), Some(&Value::Str("2001:db8::2".into())));
        assert_eq!(get(&fields, f::DIRECTION), Some(&Value::Uint(1)));
        assert!(get(&fields, f::FLOW_END_REASON).is_none());
        assert!(get(&fields, f::DST_PROC_PID).is_none());
        assert_eq!(get(&fields, f::CLIENT_TCP_FLAGS), Some(&Value::Uint(TH_SYN | TH_ACK)));
    }

    /// The golden records' processes: an enriched client in a container, and a
    /// server known by its kernel basename only.
    fn golden_processes() -> (Process, Process) {
        let container = packetless_enrich::Container {
            id: "4f1c2d3e5a6b".into(),
            runtime: "docker",
            name: Some("web".into()),
            image: None,
            pod: None,
            namespace: None,
            k8s_container: None,
            pod_uid: None,
        };
        let client = Process {
            pid: 4242,
            tid: 4243,
            comm: "curl".into(),
            uid: 1000,
            gid: 1000,
            ppid: Some(4000),
            parent_comm: Some("bash".into()),
            details: Some(Arc::new(Details {
                exe: Some("/usr/bin/curl".into()),
                cmdline: Some("curl -s https://example.org/".into()),
                user: Some("alice".into()),
                parent_exe: Some("/usr/bin/bash".into()),
                container: Some(Arc::new(container)),
                ..Details::default()
            })),
            ..Process::default()
        };
        // A kernel basename, not a path: the name falls back to comm.
        let server = Process {
            pid: 80,
            tid: 80,
            comm: "nginx".into(),
            uid: 33,
            gid: 33,
            details: Some(Arc::new(Details { exe: Some("nginx".into()), ..Details::default() })),
            ppid: Some(1),
            parent_comm: Some("systemd".into()),
            ..Process::default()
        };
        (client, server)
    }

    /// Three flows that between them take most branches of the mapping: IPv4 with
    /// both processes enriched, an IPv6 failed connect, and a UDP flow between an
    /// IPv4-mapped and an IPv6 address.
    pub(crate) fn golden_records() -> Vec<FlowRecord> {
        let (client, server) = golden_processes();
        let v4 = FlowRecord {
            ip_version: 4,
            src_ip: "192.0.2.10".parse().unwrap(),
            src_port: 51234,
            dst_ip: "198.51.100.200".parse().unwrap(),
            dst_port: 443,
            direction: Direction::Outbound,
            first_seen: UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            last_seen: UNIX_EPOCH + Duration::from_millis(1_795_000_042_500),
            src_bytes: 5_000_000_000,
            dst_bytes: 70_000,
            src_packets: 300,
            dst_packets: 2,
            retransmits: 3,
            src_retransmits: Some(3),
            dst_retransmits: None,
            srtt_us: Some(2500),
            connect_latency_us: None,
            end_reason: Some(EndReason::Rst),
            src_process: Some(client.clone()),
            dst_process: Some(server.clone()),
            ..record()
        };
        let v6 = FlowRecord {
            ip_version: 6,
            src_ip: "2001:db8:85a3::8a2e:370:7334".parse().unwrap(),
            src_port: 60000,
            dst_ip: "fe80::1".parse().unwrap(),
            dst_port: 22,
            direction: Direction::Inbound,
            src_bytes: 0,
            dst_bytes: 0,
            src_packets: 1,
            dst_packets: 1,
            retransmits: 0,
            src_retransmits: None,
            dst_retransmits: Some(0),
            srtt_us: None,
            connect_latency_us: Some(1234.5),
            end_reason: Some(EndReason::FailedConnect),
            connect_error: Some("refused".into()),
            src_process: None,
            dst_process: Some(server),
            ..record()
        };
        let mixed = FlowRecord {
            proto: Proto::Udp,
            ip_version: 6,
            src_ip: "::ffff:10.1.2.3".parse().unwrap(),
            src_port: 5353,
            dst_ip: "2001:db8::53".parse().unwrap(),
            dst_port: 53,
            direction: Direction::Local,
            end_reason: Some(EndReason::Timeout),
            src_process: Some(Process {
                details: client.details.as_deref().map(|d| Arc::new(Details { container: None, ..d.clone() })),
                ..client
            }),
            dst_process: None,
            ..record()
        };
        vec![v4, v6, mixed]
    }

    /// The TLV payload of `records`, as the exporter builds it.
    fn tlv_payload(records: &[FlowRecord]) -> Vec<u8> {
        let mut w = TlvWriter::new();
        for r in records {
            write_tlv(&mut w, r);
        }
        w.as_bytes().to_vec()
    }

    /// The payload of [`golden_records`], one item a line, pinned before the encoder
    /// learnt to write fields straight into the payload: a change here changes what
    /// ntopng receives.
    const GOLDEN_TLV: &[&str] = &[
        "0101",                                                               // serializer v1, TLV
        "2b08000a3139322e302e322e3130",                                       // IPV4_SRC_ADDR "192.0.2.10"
        "2b0c000e3139382e35312e3130302e323030",                               // IPV4_DST_ADDR "198.51.100.200"
        "223c04",                                                             // IP_PROTOCOL_VERSION 4
        "2307c822",                                                           // L4_SRC_PORT 51234
        "230b01bb",                                                           // L4_DST_PORT 443
        "220406",                                                             // PROTOCOL 6
        "24166afd86c0",                                                       // FIRST_SWITCHED 1795000000
        "24156afd86ea",                                                       // LAST_SWITCHED 1795000042
        "25e7000000012a05f200",                                               // INITIATOR_OCTETS 5000000000
        "24e800011170",                                                       // RESPONDER_OCTETS 70000
        "33012a012c",                                                         // INITIATOR_PKTS 300
        "32012b02",                                                           // RESPONDER_PKTS 2
        "223d01",                                                             // DIRECTION 1
        "32e0ce16",                                                           // CLIENT_TCP_FLAGS 22
        "32e0cf12",                                                           // SERVER_TCP_FLAGS 18
        "220616",                                                             // TCP_FLAGS 22
        "32e0ed03",                                                           // RETRANSMITTED_IN_PKTS 3
        "3ae0fc00002040",                                                     // SERVER_NW_LATENCY_MS 2.5
        "2b880009746370207265736574",                                         // FLOW_END_REASON "tcp reset"
        "33e1281092",                                                         // SRC_PROC_PID 4242
        "3be129000d2f7573722f62696e2f6375726c",                               // SRC_PROC_NAME "/usr/bin/curl"
        "33e22903e8",                                                         // SRC_PROC_UID 1000
        "3be1f40005616c696365",                                               // SRC_PROC_USER_NAME "alice"
        "3be2ac001c6375726c202d732068747470733a2f2f6578616d706c652e6f72672f", // SRC_PROC_CMDLINE "curl -s https://example.org/"
        "33e1f50fa0",                                                         // SRC_FATHER_PROC_PID 4000
        "3be1f6000d2f7573722f62696e2f62617368",                               // SRC_FATHER_PROC_NAME "/usr/bin/bash"
        "3be2ae000c346631633264336535613662",                                 // SRC_PROC_CONTAINER_ID "4f1c2d3e5a6b"
        "32e1f750",                                                           // DST_PROC_PID 80
        "3be1f800056e67696e78",                                               // DST_PROC_NAME "nginx"
        "32e22a21",                                                           // DST_PROC_UID 33
        "32e1fa01",                                                           // DST_FATHER_PROC_PID 1
        "3be1fb000773797374656d64",                                           // DST_FATHER_PROC_NAME "systemd"
        "01",                                                                 // end of record 0
        "2b1b001c323030313a6462383a383561333a3a386132653a3337303a37333334", // IPV6_SRC_ADDR "2001:db8:85a3::8a2e:370:7334"
        "2b1c0007666538303a3a31",                                           // IPV6_DST_ADDR "fe80::1"
        "223c06",                                                           // IP_PROTOCOL_VERSION 6
        "2307ea60",                                                         // L4_SRC_PORT 60000
        "220b16",                                                           // L4_DST_PORT 22
        "220406",                                                           // PROTOCOL 6
        "221664",                                                           // FIRST_SWITCHED 100
        "221565",                                                           // LAST_SWITCHED 101
        "22e700",                                                           // INITIATOR_OCTETS 0
        "22e800",                                                           // RESPONDER_OCTETS 0
        "32012a01",                                                         // INITIATOR_PKTS 1
        "32012b01",                                                         // RESPONDER_PKTS 1
        "223d00",                                                           // DIRECTION 0
        "32e0ce02",                                                         // CLIENT_TCP_FLAGS 2
        "32e0cf04",                                                         // SERVER_TCP_FLAGS 4
        "220606",                                                           // TCP_FLAGS 6
        "32e0ee00",                                                         // RETRANSMITTED_OUT_PKTS 0
        "3ae0fc19049e3f",                                                   // SERVER_NW_LATENCY_MS 1.2345
        "2b880017636f6e6e656374206661696c65643a2072656675736564",           // FLOW_END_REASON "connect failed: refused"
        "32e1f750",                                                         // DST_PROC_PID 80
        "3be1f800056e67696e78",                                             // DST_PROC_NAME "nginx"
        "32e22a21",                                                         // DST_PROC_UID 33
        "32e1fa01",                                                         // DST_FATHER_PROC_PID 1
        "3be1fb000773797374656d64",                                         // DST_FATHER_PROC_NAME "systemd"
        "01",                                                               // end of record 1
        "2b1b000f3a3a666666663a31302e312e322e33",                           // IPV6_SRC_ADDR "::ffff:10.1.2.3"
        "2b1c000c323030313a6462383a3a3533",                                 // IPV6_DST_ADDR "2001:db8::53"
        "223c06",                                                           // IP_PROTOCOL_VERSION 6
        "230714e9",                                                         // L4_SRC_PORT 5353
        "220b35",                                                           // L4_DST_PORT 53
        "220411",                                                           // PROTOCOL 17
        "221664",                                                           // FIRST_SWITCHED 100
        "221565",                                                           // LAST_SWITCHED 101
        "22e70a",                                                           // INITIATOR_OCTETS 10
        "22e814",                                                           // RESPONDER_OCTETS 20
        "32012a03",                                                         // INITIATOR_PKTS 3
        "32012b04",                                                         // RESPONDER_PKTS 4
        "2b88000c69646c652074696d656f7574",                                 // FLOW_END_REASON "idle timeout"
        "33e1281092",                                                       // SRC_PROC_PID 4242
        "3be129000d2f7573722f62696e2f6375726c",                             // SRC_PROC_NAME "/usr/bin/curl"
        "33e22903e8",                                                       // SRC_PROC_UID 1000
        "3be1f40005616c696365",                                             // SRC_PROC_USER_NAME "alice"
        "3be2ac001c6375726c202d732068747470733a2f2f6578616d706c652e6f72672f", // SRC_PROC_CMDLINE "curl -s https://example.org/"
        "33e1f50fa0",                                                         // SRC_FATHER_PROC_PID 4000
        "3be1f6000d2f7573722f62696e2f62617368",                               // SRC_FATHER_PROC_NAME "/usr/bin/bash"
        "01",                                                                 // end of record 2
    ];

    fn hex(bytes: &[u8]) -> String {
        use std::fmt::Write;
        bytes.iter().fold(String::new(), |mut s, b| {
            write!(s, "{b:02x}").unwrap();
            s
        })
    }

    #[test]
    fn flows_encode_to_the_pinned_tlv_bytes() {
        assert_eq!(hex(&tlv_payload(&golden_records())), GOLDEN_TLV.concat());
    }

    #[test]
    fn the_field_list_holds_what_the_payload_carries() {
        let mut w = TlvWriter::new();
        for r in &golden_records() {
            for (key, value) in flow_fields(r) {
                w.value(key, &value);
            }
            w.end_record();
        }
        assert_eq!(hex(w.as_bytes()), GOLDEN_TLV.concat());
    }
}
