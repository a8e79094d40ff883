//! `packetless run` on the real kernel: flow records, direction, merging of both
//! ends, the dependency map, sockets older than the probe, periodic updates and the
//! flush at SIGTERM. Peers are separate processes; "remote" hosts are network
//! namespaces the tests create, excluded from tracing with `--netns self`.

use std::net::SocketAddr;

use packetless_tests::{kernel_tests_enabled, LossyExchange, Netns, Peer, ProbeProcess};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_packetless");

/// Starts `packetless run` with a short pairing window plus `extra` options.
fn run_probe(extra: &[&str]) -> ProbeProcess {
    let mut args = vec!["run", "--pair-window", "200ms"];
    args.extend_from_slice(extra);
    ProbeProcess::start(EXE, &args)
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// The first record of `kind` satisfying `pred`.
fn wait_record(probe: &mut ProbeProcess, kind: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let line = probe.line_where(what, |l| {
        let v = parse(l);
        v["kind"] == kind && pred(&v)
    });
    parse(&line)
}

/// All flow records seen so far that satisfy `pred`.
fn flows_where(probe: &ProbeProcess, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    probe.seen.iter().map(|l| parse(l)).filter(|v| v["kind"] == "flow" && pred(v)).collect()
}

/// Pids and ports of one finished TCP exchange.
struct Exchange {
    server_pid: u32,
    client_pid: u32,
    server_port: u16,
    client_port: u16,
}

/// A `pl-peer` server on `server_ip` (inside `server_ns` if given) sends `down`
/// bytes to a client (inside `client_ns` if given) that sends `up` bytes; both exit.
fn tcp_exchange(server_ns: Option<&Netns>, server_ip: &str, client_ns: Option<&Netns>, up: u32, down: u32) -> Exchange {
    let server_addr = SocketAddr::new(server_ip.parse().expect("an IP"), 0);
    let server = Peer::spawn(server_ns, &["tcp-server", &server_addr.to_string(), &down.to_string(), &up.to_string()]);
    let target = SocketAddr::new(server_addr.ip(), server.port);
    let client = Peer::spawn(client_ns, &["tcp-client", &target.to_string(), &up.to_string(), &down.to_string()]);
    let done =
        Exchange { server_pid: server.pid, client_pid: client.pid, server_port: server.port, client_port: client.port };
    client.finish();
    server.finish();
    done
}

fn pid_of(process: &Value) -> Option<u64> {
    process.get("pid").and_then(Value::as_u64)
}

fn closed_to_port(port: u16) -> impl Fn(&Value) -> bool {
    move |v| v["state"] == "closed" && v["dst_port"] == port
}

#[test]
fn remote_client_to_local_server_is_inbound_with_the_server_process() {
    if !kernel_tests_enabled("run: inbound") {
        return;
    }
    let ns = Netns::new();
    let mut probe = run_probe(&["--netns", "self"]);
    let x = tcp_exchange(None, &ns.host_ip.to_string(), Some(&ns), 200, 300);
    let (spid, port) = (x.server_pid, x.server_port);
    let flow = wait_record(&mut probe, "flow", "the inbound flow", closed_to_port(port));
    assert_eq!(flow["direction"], "inbound");
    assert_eq!(flow["src_ip"], ns.ns_ip.to_string());
    assert_eq!(pid_of(&flow["dst_process"]), Some(u64::from(spid)));
    assert!(flow.get("src_process").is_none(), "the client is not on this host");
    assert_eq!((flow["src_bytes"].as_u64(), flow["dst_bytes"].as_u64()), (Some(200), Some(300)));
    assert_eq!(probe.terminate(), Some(0));
}

#[test]
fn local_client_to_remote_server_is_outbound_and_a_dependency() {
    if !kernel_tests_enabled("run: outbound") {
        return;
    }
    let ns = Netns::new();
    let mut probe = run_probe(&["--netns", "self"]);
    let x = tcp_exchange(Some(&ns), &ns.ns_ip.to_string(), None, 200, 300);
    let (cpid, port) = (x.client_pid, x.server_port);
    let flow = wait_record(&mut probe, "flow", "the outbound flow", closed_to_port(port));
    assert_eq!(flow["direction"], "outbound");
    assert_eq!(pid_of(&flow["src_process"]), Some(u64::from(cpid)));
    assert!(flow.get("dst_process").is_none());
    assert_eq!(probe.terminate(), Some(0));
    let dep = probe
        .seen
        .iter()
        .map(|l| parse(l))
        .find(|v| v["kind"] == "dependency" && v["ip"] == ns.ns_ip.to_string() && v["port"] == port)
        .expect("the destination is in the dependency list at exit");
    assert_eq!(dep["proto"], "tcp");
    assert_eq!(pid_of(&dep["last_process"]), Some(u64::from(cpid)));
    assert!(probe.seen.iter().any(|l| parse(l)["kind"] == "local_ip"), "local addresses are listed");
}

#[test]
fn connection_between_two_traced_namespaces_is_one_local_record_with_both_processes() {
    if !kernel_tests_enabled("run: two namespaces merged") {
        return;
    }
    let ns = Netns::new();
    let mut probe = run_probe(&[]);
    let x = tcp_exchange(Some(&ns), &ns.ns_ip.to_string(), None, 200, 300);
    let (spid, cpid, port) = (x.server_pid, x.client_pid, x.server_port);
    let flow = wait_record(&mut probe, "flow", "the merged flow", closed_to_port(port));
    assert_eq!(flow["direction"], "local");
    assert_eq!(pid_of(&flow["src_process"]), Some(u64::from(cpid)));
    assert_eq!(pid_of(&flow["dst_process"]), Some(u64::from(spid)));
    assert_eq!(flow["dst_process"]["netns"], ns.inode, "each process with its own namespace");
    assert_eq!(probe.terminate(), Some(0));
    assert_eq!(flows_where(&probe, |v| v["dst_port"] == port).len(), 1, "one record, not one per end");
}

#[test]
fn loopback_connection_is_one_local_record_with_exact_bytes_both_ways() {
    if !kernel_tests_enabled("run: loopback") {
        return;
    }
    let mut probe = run_probe(&[]);
    let x = tcp_exchange(None, "127.0.0.1", None, 123_456, 654_321);
    let (spid, cpid, port, cport) = (x.server_pid, x.client_pid, x.server_port, x.client_port);
    let flow = wait_record(&mut probe, "flow", "the loopback flow", closed_to_port(port));
    assert_eq!(flow["direction"], "local");
    assert_eq!(flow["src_port"], cport);
    assert_eq!((flow["src_bytes"].as_u64(), flow["dst_bytes"].as_u64()), (Some(123_456), Some(654_321)));
    assert_eq!(pid_of(&flow["src_process"]), Some(u64::from(cpid)));
    assert_eq!(pid_of(&flow["dst_process"]), Some(u64::from(spid)));
    assert_eq!(flow["src_process"]["comm"], "pl-client");
    // The client exited right after the exchange, before its record: what the kernel
    // recorded at socket creation still names its parent (this test).
    assert_eq!(flow["src_process"]["ppid"], std::process::id());
    assert!(flow["src_process"]["parent_comm"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(flow["src_process"]["exe"].as_str().map(|e| e.ends_with("pl-peer")), Some(true));
    assert_eq!(flow["end_reason"], "fin");
    assert!(flow["connect_latency_us"].as_f64().is_some_and(|l| l > 0.0));
    assert_eq!(probe.terminate(), Some(0));
    assert_eq!(flows_where(&probe, |v| v["dst_port"] == port).len(), 1);
}

#[test]
fn own_address_and_ipv4_mapped_loopback_are_local() {
    if !kernel_tests_enabled("run: own address, mapped loopback") {
        return;
    }
    let ns = Netns::new();
    let mut probe = run_probe(&[]);
    // The host's own non-loopback address (its end of the veth pair).
    let own_port = tcp_exchange(None, &ns.host_ip.to_string(), None, 10, 10).server_port;
    // An IPv6 socket reaching an IPv4 server through ::ffff:127.0.0.1.
    let server = Peer::spawn(None, &["tcp-server", "127.0.0.1:0", "10", "10"]);
    let client = Peer::spawn(None, &["tcp-client", &format!("[::ffff:127.0.0.1]:{}", server.port), "10", "10"]);
    let mapped_port = server.port;
    client.finish();
    server.finish();
    let own = wait_record(&mut probe, "flow", "the own-address flow", closed_to_port(own_port));
    assert_eq!(own["direction"], "local");
    assert_eq!(own["dst_ip"], ns.host_ip.to_string());
    let mapped = wait_record(&mut probe, "flow", "the mapped-loopback flow", closed_to_port(mapped_port));
    assert_eq!(mapped["direction"], "local");
    assert!(mapped.get("src_process").is_some() && mapped.get("dst_process").is_some(), "both ends merged");
    assert_eq!(probe.terminate(), Some(0));
}

#[test]
fn bound_udp_socket_is_listen_and_udp_to_a_namespace_peer_is_outbound_with_bytes() {
    if !kernel_tests_enabled("run: udp") {
        return;
    }
    let ns = Netns::new();
    let mut probe = run_probe(&["--netns", "self"]);
    let local = Peer::spawn(None, &["udp-server", "127.0.0.1:0", "1"]);
    let listen = wait_record(&mut probe, "listen", "the bound UDP socket", |v| v["port"] == local.port);
    assert_eq!((listen["proto"].as_str(), listen["state"].as_str()), (Some("udp"), Some("open")));
    assert_eq!(pid_of(&listen["process"]), Some(u64::from(local.pid)));
    drop(local);

    let server = Peer::spawn(Some(&ns), &["udp-server", &format!("{}:0", ns.ns_ip), "300"]);
    let client = Peer::spawn(None, &["udp-client", &format!("{}:{}", ns.ns_ip, server.port), "200"]);
    let (cpid, port) = (client.pid, server.port);
    client.finish();
    server.finish();
    let flow = wait_record(&mut probe, "flow", "the UDP flow", closed_to_port(port));
    assert_eq!((flow["proto"].as_str(), flow["direction"].as_str()), (Some("udp"), Some("outbound")));
    assert_eq!((flow["src_bytes"].as_u64(), flow["dst_bytes"].as_u64()), (Some(200), Some(300)));
    assert_eq!((flow["src_packets"].as_u64(), flow["dst_packets"].as_u64()), (Some(1), Some(1)));
    assert_eq!(pid_of(&flow["src_process"]), Some(u64::from(cpid)));
    assert_eq!(flow["end_reason"], "close");
    assert_eq!(probe.terminate(), Some(0));
}

#[test]
fn retransmits_under_loss_are_counted_in_the_flow() {
    if !kernel_tests_enabled("run: retransmits") {
        return;
    }
    let mut probe = run_probe(&[]);
    let lossy = LossyExchange::start();
    let sport = lossy.server.port;
    wait_for_a_retransmission(sport);
    lossy.heal_and_finish();
    let flow = wait_record(&mut probe, "flow", "the closed flow", closed_to_port(sport));
    assert!(flow["retransmits"].as_u64().is_some_and(|r| r > 0), "retransmits counted: {flow}");
    assert_eq!((flow["src_bytes"].as_u64(), flow["dst_bytes"].as_u64()), (Some(50_000), Some(100)));
    assert_eq!(probe.terminate(), Some(0));
}

#[test]
fn connection_opened_before_the_probe_is_reported_and_attributed_when_it_closes() {
    if !kernel_tests_enabled("run: pre-existing connection") {
        return;
    }
    let server = Peer::spawn(None, &["tcp-sink", "127.0.0.1:0"]);
    let holder = Peer::spawn(None, &["tcp-hold", &format!("127.0.0.1:{}", server.port)]);
    let (spid, hpid, port) = (server.pid, holder.pid, server.port);
    let mut probe = run_probe(&[]);
    let listen = wait_record(&mut probe, "listen", "the listener from the snapshot", |v| v["port"] == port);
    assert_eq!(pid_of(&listen["process"]), Some(u64::from(spid)));
    holder.finish();
    server.finish();
    let flow = wait_record(&mut probe, "flow", "the pre-existing flow, closed", closed_to_port(port));
    assert_eq!(flow["direction"], "local");
    assert_eq!(pid_of(&flow["src_process"]), Some(u64::from(hpid)));
    assert_eq!(pid_of(&flow["dst_process"]), Some(u64::from(spid)));
    assert_eq!(flow["src_process"]["comm"], "pl-holder");
    assert_eq!(probe.terminate(), Some(0));
}

#[test]
fn long_lived_connection_gets_periodic_updates_with_growing_counters() {
    if !kernel_tests_enabled("run: periodic updates") {
        return;
    }
    let mut probe = run_probe(&["--update-interval", "1s"]);
    let server = Peer::spawn(None, &["tcp-sink", "127.0.0.1:0"]);
    let client = Peer::spawn(None, &["tcp-trickle", &format!("127.0.0.1:{}", server.port), "10", "1000", "400"]);
    let port = server.port;
    client.finish();
    server.finish();
    let closed = wait_record(&mut probe, "flow", "the closed flow", closed_to_port(port));
    assert_eq!(closed["src_bytes"], 10_000);
    let updates: Vec<u64> = flows_where(&probe, |v| v["dst_port"] == port && v["state"] == "update")
        .iter()
        .map(|v| v["src_bytes"].as_u64().unwrap())
        .collect();
    assert!(updates.len() >= 2, "at least two updates: {updates:?}");
    assert!(updates.windows(2).all(|w| w[0] <= w[1]), "counters never go back: {updates:?}");
    assert!(updates.first() < updates.last(), "counters grow: {updates:?}");
    assert_eq!(probe.terminate(), Some(0));
}

#[test]
fn sigterm_flushes_an_open_flow_then_the_stats() {
    if !kernel_tests_enabled("run: flush at SIGTERM") {
        return;
    }
    let mut probe = run_probe(&[]);
    let server = Peer::spawn(None, &["tcp-sink", "127.0.0.1:0"]);
    let holder = Peer::spawn(None, &["tcp-hold", &format!("127.0.0.1:{}", server.port)]);
    let port = server.port;
    let open = wait_record(&mut probe, "flow", "the open flow", |v| v["dst_port"] == port && v["state"] == "open");
    assert_eq!(probe.terminate(), Some(0));
    let last_of_flow = flows_where(&probe, |v| v["flow_id"] == open["flow_id"]).pop().unwrap();
    assert_eq!(last_of_flow["state"], "update", "a final record for the flow still open");
    let stats = parse(probe.seen.last().unwrap());
    assert_eq!(stats["kind"], "stats");
    assert_eq!(stats["kernel"]["ringbuf_full"], 0);
    assert_eq!(stats["output_dropped"], 0);
    holder.finish();
    server.finish();
}

/// Polls the kernel (`ss -ti`) until the connection to `port` has retransmitted.
fn wait_for_a_retransmission(port: u16) {
    let deadline = std::time::Instant::now() + packetless_tests::EVENT_TIMEOUT;
    let filter = format!("dport = :{port}");
    loop {
        let out = std::process::Command::new("ss").args(["-tinH", &filter]).output().expect("ss (iproute2) runs");
        if String::from_utf8_lossy(&out.stdout).contains("retrans:") {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no retransmission to port {port}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_connection_whose_open_the_kernel_still_holds_at_sigterm_is_reported() {
    if !kernel_tests_enabled("run: held open at SIGTERM") {
        return;
    }
    // Opens are held for half the pairing window: 30 s here, far longer than the test.
    let mut probe = ProbeProcess::start(EXE, &["run", "--pair-window", "60s"]);
    let server = Peer::spawn(None, &["tcp-sink", "127.0.0.1:0"]);
    let holder = Peer::spawn(None, &["tcp-hold", &format!("127.0.0.1:{}", server.port)]);
    let (port, hpid) = (server.port, holder.pid);
    assert_eq!(probe.terminate(), Some(0));
    let flows = flows_where(&probe, |v| v["dst_port"] == port);
    assert_eq!(flows.len(), 1, "one final record of the connection: {flows:?}");
    assert_eq!(flows[0]["state"], "update");
    assert_eq!(pid_of(&flows[0]["src_process"]), Some(u64::from(hpid)));
    holder.finish();
    server.finish();
}
