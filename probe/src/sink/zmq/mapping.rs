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

use std::net::IpAddr;
use std::time::UNIX_EPOCH;

use packetless_wire::fields as f;
use packetless_wire::tlv::Value;

use crate::classify::{canonical_ip, Direction};
use crate::flow::{EndReason, FlowRecord, FlowState, Process};
use crate::source::Proto;

const TH_FIN: u64 = 0x01;
const TH_SYN: u64 = 0x02;
const TH_RST: u64 = 0x04;
const TH_ACK: u64 = 0x10;

/// The fields of one flow record, in the order they are written.
#[must_use]
pub fn flow_fields(flow: &FlowRecord) -> Vec<(u32, Value)> {
    let mut out = Vec::with_capacity(32);
    let src = canonical_ip(flow.src_ip);
    let dst = canonical_ip(flow.dst_ip);
    let v4 = src.is_ipv4() && dst.is_ipv4();
    let (src_key, dst_key) =
        if v4 { (f::IPV4_SRC_ADDR, f::IPV4_DST_ADDR) } else { (f::IPV6_SRC_ADDR, f::IPV6_DST_ADDR) };
    out.push((src_key, Value::Str(addr_string(src, v4))));
    out.push((dst_key, Value::Str(addr_string(dst, v4))));
    out.push((f::IP_PROTOCOL_VERSION, Value::Uint(if v4 { 4 } else { 6 })));
    out.push((f::L4_SRC_PORT, Value::Uint(u64::from(flow.src_port))));
    out.push((f::L4_DST_PORT, Value::Uint(u64::from(flow.dst_port))));
    out.push((
        f::PROTOCOL,
        Value::Uint(match flow.proto {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }),
    ));
    out.push((f::FIRST_SWITCHED, Value::Uint(epoch_secs(flow.first_seen))));
    out.push((f::LAST_SWITCHED, Value::Uint(epoch_secs(flow.last_seen))));
    out.push((f::INITIATOR_OCTETS, Value::Uint(flow.src_bytes)));
    out.push((f::RESPONDER_OCTETS, Value::Uint(flow.dst_bytes)));
    out.push((f::INITIATOR_PKTS, Value::Uint(flow.src_packets)));
    out.push((f::RESPONDER_PKTS, Value::Uint(flow.dst_packets)));
    match flow.direction {
        Direction::Inbound => out.push((f::DIRECTION, Value::Uint(0))),
        Direction::Outbound => out.push((f::DIRECTION, Value::Uint(1))),
        Direction::Local | Direction::Listen => {}
    }
    if flow.proto == Proto::Tcp {
        tcp_fields(flow, &mut out);
    }
    if let Some(reason) = end_reason_text(flow) {
        out.push((f::FLOW_END_REASON, Value::Str(reason)));
    }
    if let Some(p) = &flow.src_process {
        process_fields(p, &ProcessKeys::SRC, &mut out);
    }
    if let Some(p) = &flow.dst_process {
        process_fields(p, &ProcessKeys::DST, &mut out);
    }
    out
}

fn tcp_fields(flow: &FlowRecord, out: &mut Vec<(u32, Value)>) {
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
    out.push((f::CLIENT_TCP_FLAGS, Value::Uint(client)));
    out.push((f::SERVER_TCP_FLAGS, Value::Uint(server)));
    out.push((f::TCP_FLAGS, Value::Uint(client | server)));
    if let Some(r) = flow.src_retransmits {
        out.push((f::RETRANSMITTED_IN_PKTS, Value::Uint(r)));
    }
    if let Some(r) = flow.dst_retransmits {
        out.push((f::RETRANSMITTED_OUT_PKTS, Value::Uint(r)));
    }
    // The client's SYN to SYN-ACK time is the network latency towards the server.
    let server_latency_ms =
        flow.connect_latency_us.map(|us| us / 1000.0).or_else(|| flow.srtt_us.map(|us| f64::from(us) / 1000.0));
    if let Some(ms) = server_latency_ms {
        #[allow(clippy::cast_possible_truncation, reason = "milliseconds fit an f32 with room to spare")]
        out.push((f::SERVER_NW_LATENCY_MS, Value::Float(ms as f32)));
    }
}

/// ntopng reads `FLOW_END_REASON` as free text; these read well in its flow details.
fn end_reason_text(flow: &FlowRecord) -> Option<String> {
    if flow.state != FlowState::Closed {
        return None;
    }
    Some(match flow.end_reason? {
        EndReason::Fin => "tcp fin".to_owned(),
        EndReason::Rst => "tcp reset".to_owned(),
        EndReason::Timeout => "idle timeout".to_owned(),
        EndReason::Close => "socket closed".to_owned(),
        EndReason::FailedConnect => {
            format!("connect failed: {}", flow.connect_error.as_deref().unwrap_or("unknown"))
        }
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
fn process_name(exe: Option<&str>, comm: &str) -> String {
    exe.filter(|e| e.starts_with('/')).unwrap_or(comm).to_owned()
}

fn process_fields(p: &Process, keys: &ProcessKeys, out: &mut Vec<(u32, Value)>) {
    out.push((keys.pid, Value::Uint(u64::from(p.pid))));
    out.push((keys.name, Value::Str(process_name(p.exe.as_deref(), &p.comm))));
    out.push((keys.uid, Value::Uint(u64::from(p.uid))));
    if let Some(user) = &p.user {
        out.push((keys.user, Value::Str(user.to_string())));
    }
    if let Some(cmdline) = &p.cmdline {
        out.push((keys.cmdline, Value::Str(cmdline.to_string())));
    }
    if let Some(ppid) = p.ppid {
        out.push((keys.father_pid, Value::Uint(u64::from(ppid))));
        let parent = p.parent_exe.as_deref().map(str::to_owned).or_else(|| p.parent_comm.map(|c| c.to_string()));
        if let Some(parent) = parent {
            out.push((keys.father_name, Value::Str(parent)));
        }
    }
    if let Some(container) = &p.container {
        out.push((keys.container, Value::Str(container.id.clone())));
    }
}

/// The nested agent objects ntopng's JSON parser reads (any key ending in
/// `CONTAINER`): `{"ID", "K8S": {"NAME", "POD", "NS"}}` for Kubernetes containers,
/// `{"ID", "DOCKER": {"NAME"}}` for others. TLV cannot carry them.
#[must_use]
pub fn container_objects(flow: &FlowRecord) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for (key, process) in [("SRC_CONTAINER", &flow.src_process), ("DST_CONTAINER", &flow.dst_process)] {
        let Some(c) = process.as_ref().and_then(|p| p.container.as_ref()) else { continue };
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

/// IPv4 as dotted text; IPv6 as text. `v4` says which family the flow is sent as.
fn addr_string(ip: IpAddr, v4: bool) -> String {
    match (ip, v4) {
        (IpAddr::V6(v6), false) => v6.to_string(),
        (IpAddr::V4(v4addr), false) => v4addr.to_ipv6_mapped().to_string(),
        (ip, true) => ip.to_string(),
    }
}

fn epoch_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record() -> FlowRecord {
        FlowRecord {
            flow_id: "x".into(),
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
        r.src_process.as_mut().unwrap().container = Some(std::sync::Arc::new(pod));
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
        r.dst_process.as_mut().unwrap().container = Some(std::sync::Arc::new(plain));
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
}
