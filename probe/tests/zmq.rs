//! ZMQ export on the real kernel to a real libzmq subscriber in another process:
//! `tests/py/zmq_collector.py`, Debian's python3-zmq with its own decoder of the header
//! and of nDPI TLV, standing in for ntopng.

use packetless_tests::{free_port, kernel_tests_enabled, LineProcess, Peer, ProbeProcess};
use packetless_wire::fields as f;
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_packetless");

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("collector printed non-JSON ({e}): {line}"))
}

/// Starts `packetless run` exporting to `zmq` with `extra` options (no stdout unless
/// `extra` asks for it).
fn probe(zmq: &str, extra: &[&str]) -> ProbeProcess {
    let mut args = vec!["run", "--pair-window", "200ms", "--zmq", zmq, "--zmq-event-interval", "1s"];
    if !extra.contains(&"--output") {
        args.extend_from_slice(&["--output", "none"]);
    }
    args.extend_from_slice(extra);
    ProbeProcess::start(EXE, &args)
}

/// A loopback exchange between two pl-peer processes: (server pid, client pid, server port).
fn loopback_exchange() -> (u32, u32, u16) {
    let server = Peer::spawn(None, &["tcp-server", "127.0.0.1:0", "300", "200"]);
    let client = Peer::spawn(None, &["tcp-client", &format!("127.0.0.1:{}", server.port), "200", "300"]);
    let ids = (server.pid, client.pid, server.port);
    client.finish();
    server.finish();
    ids
}

/// The flow record (decoded TLV, keyed by field id) of the connection to `port`.
fn flow_to_port(collector: &mut LineProcess, port: u16, closed: bool) -> Value {
    let key = f::L4_DST_PORT.to_string();
    let reason = f::FLOW_END_REASON.to_string();
    let find = |line: &str| -> Option<Value> {
        let v = parse(line);
        v["records"].as_array()?.iter().find(|r| r[&key] == port && (!closed || r.get(&reason).is_some())).cloned()
    };
    let line = collector.line_where(&format!("the flow to port {port}"), |l| find(l).is_some());
    find(&line).expect("matched above")
}

fn field(record: &Value, id: u32) -> &Value {
    &record[id.to_string()]
}

fn messages(collector: &LineProcess) -> Vec<Value> {
    collector.seen.iter().map(|l| parse(l)).collect()
}

#[test]
fn loopback_connection_is_one_tlv_flow_with_both_processes_and_contiguous_ids() {
    if !kernel_tests_enabled("zmq: TLV flow, connect mode") {
        return;
    }
    let port = free_port();
    let mut collector = LineProcess::collector(&["--bind", &format!("tcp://127.0.0.1:{port}")]);
    let mut probe = probe(&format!("tcp://127.0.0.1:{port}c"), &["--source-id", "4242"]);
    let (spid, cpid, sport) = loopback_exchange();
    let flow = flow_to_port(&mut collector, sport, true);
    assert_eq!(field(&flow, f::SRC_PROC_PID), cpid);
    assert_eq!(field(&flow, f::DST_PROC_PID), spid);
    // ntopng shows the executable path as the process name (as with nProbe Agent)
    // when procfs could be read before the short-lived peer exited, else its comm.
    let name = field(&flow, f::SRC_PROC_NAME).as_str().unwrap_or_default();
    assert!(name == "pl-client" || name.ends_with("/pl-peer"), "{flow}");
    for (key, role) in [(f::SRC_PROC_CMDLINE, "tcp-client"), (f::DST_PROC_CMDLINE, "tcp-server")] {
        let cmdline = field(&flow, key);
        assert!(cmdline.is_null() || cmdline.as_str().is_some_and(|c| c.contains(role)), "{flow}");
    }
    assert_eq!(field(&flow, f::SRC_FATHER_PROC_PID), std::process::id(), "pl-peer's parent is this test");
    assert_eq!(field(&flow, f::SRC_PROC_USER_NAME), "root");
    assert_eq!(field(&flow, f::IPV4_SRC_ADDR), "127.0.0.1");
    assert_eq!(field(&flow, f::PROTOCOL), 6);
    assert_eq!(field(&flow, f::INITIATOR_OCTETS), 200);
    assert_eq!(field(&flow, f::RESPONDER_OCTETS), 300);
    assert_eq!(field(&flow, f::CLIENT_TCP_FLAGS).as_u64().map(|flags| flags & 0x02), Some(0x02), "SYN");
    collector.line_where("an event after the flow", |l| parse(l)["topic"] == "event");
    assert_eq!(probe.terminate(), Some(0));

    let all = messages(&collector);
    let flows_to_port: usize = all
        .iter()
        .filter_map(|m| m["records"].as_array())
        .flatten()
        .filter(|r| r[f::L4_DST_PORT.to_string()] == sport)
        .count();
    assert_eq!(flows_to_port, 1, "one record for the connection, not one per end");
    let ids: Vec<u64> = all.iter().map(|m| m["msg_id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "msg_ids contiguous across topics: {ids:?}");
    let topics: std::collections::HashSet<&str> = all.iter().filter_map(|m| m["topic"].as_str()).collect();
    assert!(topics.contains("flow") && topics.contains("event") && topics.contains("listening-ports"), "{topics:?}");
    assert!(all.iter().all(|m| m["source_id"] == 4242 && m["hdr_len"] == 28));
    let event = all.iter().find(|m| m["topic"] == "event").unwrap();
    assert!(event["json"]["timeout"]["idle"].as_u64().is_some_and(|idle| idle >= 60), "timeouts for ntopng");
}

#[test]
fn bind_mode_with_v3_headers_and_compression() {
    if !kernel_tests_enabled("zmq: bind mode, v3, compression") {
        return;
    }
    let port = free_port();
    let mut probe =
        probe(&format!("tcp://127.0.0.1:{port}"), &["--zmq-header", "v3", "--zmq-compress", "--source-id", "7"]);
    let mut collector = LineProcess::collector(&["--connect", &format!("tcp://127.0.0.1:{port}")]);
    let (spid, cpid, sport) = loopback_exchange();
    let flow = flow_to_port(&mut collector, sport, true);
    assert_eq!((field(&flow, f::SRC_PROC_PID), field(&flow, f::DST_PROC_PID)), (&cpid.into(), &spid.into()));
    let message = messages(&collector).into_iter().find(|m| m["topic"] == "flow").unwrap();
    assert_eq!((message["hdr_len"].as_u64(), message["version"].as_u64()), (Some(36), Some(4)));
    assert_eq!((message["tlv"].as_bool(), message["compressed"].as_bool()), (Some(true), Some(true)));
    assert_eq!(message["compressed_size"], message["payload_len"], "the size field holds the uncompressed length");
    assert_eq!(probe.terminate(), Some(0));
}

#[test]
fn json_format_carries_the_same_fields() {
    if !kernel_tests_enabled("zmq: JSON") {
        return;
    }
    let port = free_port();
    let mut collector = LineProcess::collector(&["--bind", &format!("tcp://127.0.0.1:{port}")]);
    let mut probe = probe(&format!("tcp://127.0.0.1:{port}c"), &["--zmq-format", "json"]);
    let (spid, _, sport) = loopback_exchange();
    let key = f::L4_DST_PORT.to_string();
    let line = collector.line_where("the JSON flow", |l| {
        parse(l)["json"].as_array().is_some_and(|a| a.iter().any(|o| o[&key] == sport))
    });
    let message = parse(&line);
    assert_eq!(message["version"], 2, "v2 header with the JSON version byte");
    let object = message["json"].as_array().unwrap().iter().find(|o| o[&key] == sport).unwrap();
    assert_eq!(object[f::DST_PROC_PID.to_string()], spid);
    assert_eq!(probe.terminate(), Some(0));
}

#[test]
fn two_probes_with_their_own_source_ids_share_one_collector() {
    if !kernel_tests_enabled("zmq: two probes") {
        return;
    }
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}c");
    let mut collector = LineProcess::collector(&["--bind", &format!("tcp://127.0.0.1:{port}")]);
    let mut first = probe(&endpoint, &["--source-id", "1001"]);
    let mut second = probe(&endpoint, &["--source-id", "1002"]);
    let (_, _, sport) = loopback_exchange();
    for source in [1001, 1002] {
        let line = collector.line_where(&format!("a flow from source {source}"), |l| {
            let v = parse(l);
            v["source_id"] == source
                && v["records"].as_array().is_some_and(|r| r.iter().any(|r| r[f::L4_DST_PORT.to_string()] == sport))
        });
        assert!(!line.is_empty());
    }
    assert_eq!(first.terminate(), Some(0));
    assert_eq!(second.terminate(), Some(0));
    for source in [1001u64, 1002] {
        let ids: Vec<u64> = messages(&collector)
            .iter()
            .filter(|m| m["source_id"] == source)
            .map(|m| m["msg_id"].as_u64().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "source {source}: its own contiguous ids {ids:?}");
    }
}

#[test]
fn collector_started_late_gets_the_flows_and_a_restart_is_survived_with_drops_counted() {
    if !kernel_tests_enabled("zmq: late and restarted collector") {
        return;
    }
    let port = free_port();
    let bind = format!("tcp://127.0.0.1:{port}");
    // JSON lines on stdout too: they show when records have been handed to the sinks.
    let mut probe = probe(&format!("{bind}c"), &["--zmq-queue", "3", "--output", "json"]);
    // Nobody listens yet: the flow waits in the probe's backlog.
    let (_, _, early) = loopback_exchange();
    let mut collector = LineProcess::collector(&["--bind", &bind]);
    flow_to_port(&mut collector, early, true);

    // The collector dies; once the probe has noticed, more flows than it may hold
    // (three messages) come while it is away.
    collector.kill();
    probe.wait_for_stderr("collector disconnected", 1);
    for _ in 0..6 {
        let (_, _, port) = loopback_exchange();
        probe.line_where("the flow on stdout", |l| {
            l.contains("\"kind\":\"flow\"") && l.contains(&format!("\"dst_port\":{port},")) && l.contains("\"closed\"")
        });
    }
    let mut collector = LineProcess::collector(&["--bind", &bind]);
    let line = collector.line_where("an event reporting the drops", |l| {
        let v = parse(l);
        v["topic"] == "event" && v["json"]["drops"]["export_queue_full"].as_u64().is_some_and(|d| d > 0)
    });
    let event = parse(&line);
    let zmq = &event["json"]["packetless"]["zmq"];
    assert!(zmq["dropped_no_collector"].as_u64().unwrap() > 0, "{zmq}");
    assert_eq!(probe.terminate(), Some(0), "the probe survived the collector's restart");
}

#[test]
fn curve_encrypted_export_reaches_the_right_key_only() {
    if !kernel_tests_enabled("zmq: CURVE") {
        return;
    }
    let (server_public, server_secret) = packetless::sink::zmq::socket::curve_keypair().unwrap();
    let (wrong_public, _) = packetless::sink::zmq::socket::curve_keypair().unwrap();
    let port = free_port();
    let bind = format!("tcp://127.0.0.1:{port}");
    let mut collector = LineProcess::collector(&["--bind", &bind, "--curve-secret", &server_secret]);

    // ntopng's page shows the key as hex of its Z85 text: accept that form.
    let hex: String = server_public.bytes().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    });
    let mut good = probe(&format!("{bind}c"), &["--zmq-encryption-key", &hex, "--source-id", "11"]);
    let mut bad = probe(&format!("{bind}c"), &["--zmq-encryption-key", &wrong_public, "--source-id", "12"]);
    let (spid, _, sport) = loopback_exchange();
    let flow = flow_to_port(&mut collector, sport, true);
    assert_eq!(field(&flow, f::DST_PROC_PID), spid);
    collector.line_where("a second event from the good probe", |l| {
        let v = parse(l);
        v["topic"] == "event" && v["source_id"] == 11 && v["msg_id"].as_u64() > Some(3)
    });
    assert_eq!(good.terminate(), Some(0));
    assert_eq!(bad.terminate(), Some(0));
    assert!(messages(&collector).iter().all(|m| m["source_id"] != 12), "nothing from the wrong key");
    assert!(bad.seen.is_empty(), "no stdout with --output none");
    bad.wait_for_stderr("\"handshake_failures\":", 1);
    let log = bad.stderr();
    assert!(log.contains("handshake with the collector failed"), "the wrong key is reported: {log}");
    assert!(!log.contains("\"handshake_failures\":0"), "and counted: {log}");
}

#[test]
fn protobuf_batches_carry_flows_and_the_inventory_on_their_own_topic() {
    use packetless::sink::zmq::socket::{self, Context};
    use packetless_wire::proto::{self, v1::record::Kind};
    if !kernel_tests_enabled("zmq: protobuf") {
        return;
    }
    let port = free_port();
    let ctx = Context::new().unwrap();
    let sub = ctx.socket(socket::SUB).unwrap();
    sub.bind(&format!("tcp://127.0.0.1:{port}")).unwrap();
    sub.set_bytes(socket::OPT_SUBSCRIBE, proto::TOPIC.as_bytes()).unwrap();
    sub.set_int(socket::OPT_RCVTIMEO, 500).unwrap();
    let mut probe = probe(&format!("tcp://127.0.0.1:{port}c"), &["--zmq-format", "protobuf", "--source-id", "99"]);
    let (spid, cpid, sport) = loopback_exchange();
    let deadline = std::time::Instant::now() + packetless_tests::EVENT_TIMEOUT;
    let (mut flow, mut listen, mut stats) = (None, false, false);
    while std::time::Instant::now() < deadline && !(flow.is_some() && listen && stats) {
        let Ok(frames) = sub.recv_multipart(0) else { continue };
        let header = packetless_wire::header::Header::decode(&frames[0]).unwrap();
        assert_eq!((header.topic(), header.source_id()), (proto::TOPIC, 99));
        let batch = proto::decode(&frames[1]).unwrap();
        for record in batch.records {
            match record.kind {
                Some(Kind::Flow(f)) if f.dst_port == u32::from(sport) && f.end_reason != 0 => flow = Some(f),
                Some(Kind::Listen(l)) if l.port == u32::from(sport) => listen = true,
                Some(Kind::Stats(_)) => stats = true,
                _ => {}
            }
        }
    }
    let flow = flow.expect("the flow arrived as protobuf");
    assert_eq!(flow.src_process.map(|p| p.pid), Some(cpid));
    assert_eq!(flow.dst_process.map(|p| p.pid), Some(spid));
    assert_eq!((flow.src_bytes, flow.dst_bytes), (200, 300));
    if !listen {
        probe.terminate();
        panic!("no listen record for port {sport}: {}", probe.stderr());
    }
    assert!(stats, "counters travel too");
    assert_eq!(probe.terminate(), Some(0));
}
