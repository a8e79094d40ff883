//! `packetless watch`'s event stream on the real kernel: real sockets between real
//! processes, over loopback and over veth pairs between network namespaces.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use packetless::loader::{LoaderConfig, TcpHooks};
use packetless::source::{ConnectError, Detail, Proto, SocketEvent};
use packetless_tests::{kernel_tests_enabled, loader_config, own_netns, Events, LossyExchange, Netns, Peer};

fn owner_pid(ev: &SocketEvent) -> Option<u32> {
    ev.owner.as_ref().map(|o| o.pid)
}

fn is(ev: &SocketEvent, name: &str, pid: u32) -> bool {
    ev.detail.name() == name && owner_pid(ev) == Some(pid)
}

/// Client and server in two processes over `ip`: both sides attributed, exact bytes.
async fn tcp_exchange_is_attributed_and_exact(test: &str, ip: &str, config: &LoaderConfig) {
    if !kernel_tests_enabled(test) {
        return;
    }
    let mut events = Events::start(config);
    let server = Peer::spawn(None, &["tcp-server", &format!("{ip}:0"), "654321", "123456"]);
    let server_addr = SocketAddr::new(ip.trim_matches(['[', ']']).parse().unwrap(), server.port);
    let client = Peer::spawn(None, &["tcp-client", &server_addr.to_string(), "123456", "654321"]);
    assert_ne!(server.pid, client.pid);
    let (spid, cpid, sport, cport) = (server.pid, client.pid, server.port, client.port);
    client.finish();
    server.finish();

    let listen = events.wait_one("server listen", |e| is(e, "listen", spid)).await;
    assert_eq!(listen.local.port(), sport);
    assert_eq!(listen.proto, Proto::Tcp);

    let connect = events.wait_one("client connect", |e| is(e, "connect", cpid)).await;
    assert_eq!(connect.remote, server_addr);
    assert_eq!(connect.local.port(), cport);
    let owner = connect.owner.as_ref().unwrap();
    assert_eq!((owner.comm.as_str(), owner.uid, owner.gid), ("pl-client", 0, 0));
    assert_eq!(connect.netns, own_netns());
    let Detail::Connect { latency: Some(latency), .. } = connect.detail else {
        panic!("connect without latency: {connect:?}")
    };
    assert!(latency > Duration::ZERO && latency < Duration::from_secs(5), "latency {latency:?}");

    let accept = events.wait_one("server accept", |e| is(e, "accept", spid)).await;
    assert_eq!(accept.owner.as_ref().unwrap().comm, "pl-server");
    assert_eq!(accept.local, server_addr);
    assert_eq!(accept.remote.port(), cport, "accept names the client's port");

    let client_close = events.wait_one("client close", |e| is(e, "close", cpid) && e.cookie == connect.cookie).await;
    let server_close = events.wait_one("server close", |e| is(e, "close", spid) && e.cookie == accept.cookie).await;
    let (Detail::Close { counters: c, .. }, Detail::Close { counters: s, .. }) =
        (&client_close.detail, &server_close.detail)
    else {
        unreachable!()
    };
    assert_eq!((c.bytes_sent, c.bytes_received), (123_456, 654_321), "client payload bytes");
    assert_eq!((s.bytes_sent, s.bytes_received), (654_321, 123_456), "server payload bytes");
    assert!(c.segs_out > 0 && s.segs_in > 0);
    assert_eq!(events.kernel_stats()["ringbuf_full"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_over_ipv4_loopback_names_both_processes_and_exact_bytes() {
    tcp_exchange_is_attributed_and_exact("tcp ipv4 loopback", "127.0.0.1", &loader_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_over_ipv6_loopback_names_both_processes_and_exact_bytes() {
    tcp_exchange_is_attributed_and_exact("tcp ipv6 loopback", "[::1]", &loader_config()).await;
}

fn classic_rung() -> LoaderConfig {
    LoaderConfig { tcp_hooks: TcpHooks::Tracepoint, ..loader_config() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_tracepoint_rung_gives_the_same_ipv4_events() {
    tcp_exchange_is_attributed_and_exact("classic rung ipv4", "127.0.0.1", &classic_rung()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_tracepoint_rung_gives_the_same_ipv6_events() {
    tcp_exchange_is_attributed_and_exact("classic rung ipv6", "[::1]", &classic_rung()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_between_namespaces_over_veth_is_seen_on_both_ends() {
    if !kernel_tests_enabled("tcp between namespaces") {
        return;
    }
    let ns = Netns::new();
    let mut events = Events::start(&loader_config());
    let server = Peer::spawn(Some(&ns), &["tcp-server", &format!("{}:0", ns.ns_ip), "1000", "2000"]);
    let server_addr = SocketAddr::new(IpAddr::V4(ns.ns_ip), server.port);
    let client = Peer::spawn(None, &["tcp-client", &server_addr.to_string(), "2000", "1000"]);
    let (spid, cpid) = (server.pid, client.pid);
    client.finish();
    server.finish();

    let connect = events.wait_one("client connect", |e| is(e, "connect", cpid)).await;
    assert_eq!(connect.remote, server_addr);
    assert_eq!(connect.local.ip(), IpAddr::V4(ns.host_ip));
    assert_eq!(connect.netns, own_netns());
    let accept = events.wait_one("server accept", |e| is(e, "accept", spid)).await;
    assert_eq!(accept.netns, ns.inode, "accept is in the server's namespace");
    assert_eq!(accept.remote, connect.local);
    let close = events.wait_one("server close", |e| is(e, "close", spid) && e.cookie == accept.cookie).await;
    let Detail::Close { counters, .. } = close.detail else { unreachable!() };
    assert_eq!((counters.bytes_sent, counters.bytes_received), (1000, 2000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_filter_traces_only_the_chosen_namespace() {
    if !kernel_tests_enabled("netns filter") {
        return;
    }
    let ns = Netns::new();
    let mut events = Events::start(&LoaderConfig { netns: vec![ns.inode], ..loader_config() });
    let server = Peer::spawn(Some(&ns), &["tcp-server", &format!("{}:0", ns.ns_ip), "10", "20"]);
    let client = Peer::spawn(None, &["tcp-client", &format!("{}:{}", ns.ns_ip, server.port), "20", "10"]);
    let (spid, cpid) = (server.pid, client.pid);
    client.finish();
    server.finish();
    events.wait_one("server close inside the namespace", |e| is(e, "close", spid)).await;
    events.settle(Duration::from_millis(300)).await;
    assert!(events.seen.iter().all(|e| e.netns == ns.inode), "an event from another namespace got through");
    assert!(!events.seen.iter().any(|e| owner_pid(e) == Some(cpid)), "the client's namespace is not traced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmits_under_loss_are_reported_and_counted() {
    retransmits_are_reported("retransmits", &loader_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_tracepoint_rung_reports_retransmits() {
    retransmits_are_reported("classic rung retransmits", &classic_rung()).await;
}

/// A connection whose server namespace drops everything for a while: the client's
/// retransmissions are events with the client as owner, and its close counts them.
/// The btf rung takes retransmits of connections from sockops and the tracepoint
/// steps aside: a second probe on the classic rung, which has only the tracepoint,
/// reports exactly as many for the same socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmits_are_reported_once_on_the_btf_rung() {
    if !kernel_tests_enabled("retransmits reported once") {
        return;
    }
    let mut btf = Events::start(&LoaderConfig { tcp_hooks: TcpHooks::Btf, ..loader_config() });
    assert!(btf.attached().iter().any(|h| h == "sockops"), "the btf rung follows connections with sockops");
    let mut classic = Events::start(&classic_rung());
    let lossy = LossyExchange::start();
    let cpid = lossy.client.pid;
    btf.wait_n("retransmits by the client", 3, |e| is(e, "retransmit", cpid)).await;
    lossy.heal_and_finish();
    let count = |events: &Events, close: &SocketEvent| {
        events.seen.iter().filter(|e| e.detail.name() == "retransmit" && e.cookie == close.cookie).count()
    };
    let btf_close = btf.wait_one("client close (btf)", |e| is(e, "close", cpid)).await;
    let classic_close = classic.wait_one("client close (classic)", |e| is(e, "close", cpid)).await;
    assert_eq!(btf_close.cookie, classic_close.cookie, "the same socket");
    assert_eq!(count(&btf, &btf_close), count(&classic, &classic_close), "one event per retransmission on each rung");
}

/// A retransmit of a connection whose open the kernel still holds sends the open
/// ahead of it, so that the retransmit finds its flow: here opens are held for a
/// minute, and the connect still comes before the first retransmit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retransmit_sends_the_held_open_of_its_connection_first() {
    if !kernel_tests_enabled("retransmit releases the held open") {
        return;
    }
    let mut events = Events::start(&LoaderConfig { hold_opens: Some(Duration::from_secs(60)), ..loader_config() });
    let lossy = LossyExchange::start();
    let cpid = lossy.client.pid;
    let retransmit = events.wait_one("a retransmit by the client", |e| is(e, "retransmit", cpid)).await;
    let first = |name: &str| events.seen.iter().position(|e| is(e, name, cpid) && e.cookie == retransmit.cookie);
    let (connect, first_retransmit) = (first("connect"), first("retransmit"));
    assert!(connect.is_some(), "the connect came with the retransmit, not after the hold");
    assert!(connect < first_retransmit, "the connect comes first: {connect:?} {first_retransmit:?}");
    lossy.heal_and_finish();
    let close = events.wait_one("client close", |e| is(e, "close", cpid)).await;
    assert_eq!(close.cookie, retransmit.cookie);
    let connects = events.seen.iter().filter(|e| is(e, "connect", cpid) && e.cookie == close.cookie).count();
    assert_eq!(connects, 1, "the open came once");
}

async fn retransmits_are_reported(test: &str, config: &LoaderConfig) {
    if !kernel_tests_enabled(test) {
        return;
    }
    let mut events = Events::start(config);
    let lossy = LossyExchange::start();
    let cpid = lossy.client.pid;
    let retransmit = events.wait_one("a retransmit by the client", |e| is(e, "retransmit", cpid)).await;
    let Detail::Retransmit { count, .. } = retransmit.detail else { unreachable!() };
    assert!(count >= 1);
    lossy.heal_and_finish();
    let close = events.wait_one("client close", |e| is(e, "close", cpid)).await;
    let Detail::Close { counters, .. } = close.detail else { unreachable!() };
    assert!(counters.retransmits >= 1, "close counts the retransmits: {counters:?}");
    assert_eq!(counters.bytes_sent, 50_000);
}

/// Opens are held in the kernel: a short connection's closes carry them (one ring
/// record per socket instead of two), and a connection that outlives the hold has
/// its open taken out and reported while it lasts. Either way each comes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_opens_come_once_folded_into_closes_or_taken_out_while_connections_last() {
    if !kernel_tests_enabled("held opens") {
        return;
    }
    let mut events = Events::start(&loader_config());
    let server = Peer::spawn(None, &["tcp-server", "127.0.0.1:0", "100", "100"]);
    let client = Peer::spawn(None, &["tcp-client", &format!("127.0.0.1:{}", server.port), "100", "100"]);
    let (spid, cpid) = (server.pid, client.pid);
    client.finish();
    server.finish();
    let connect = events.wait_one("short connect", |e| is(e, "connect", cpid)).await;
    let accept = events.wait_one("short accept", |e| is(e, "accept", spid)).await;
    let client_close =
        events.wait_one("its client close", |e| is(e, "close", cpid) && e.cookie == connect.cookie).await;
    let server_close = events.wait_one("its server close", |e| is(e, "close", spid) && e.cookie == accept.cookie).await;
    assert!(connect.boot_ns < client_close.boot_ns && accept.boot_ns < server_close.boot_ns);
    let Detail::Connect { latency: Some(_), .. } = connect.detail else { panic!("no latency: {connect:?}") };
    let (records, _, _) = events.source_counts();
    assert!(
        events.seen.len() as u64 >= records + 2,
        "both closes carried their open: {} events from {records} records",
        events.seen.len()
    );

    let sink = Peer::spawn(None, &["tcp-sink", "127.0.0.1:0"]);
    let mut holder = Peer::spawn(None, &["tcp-hold", &format!("127.0.0.1:{}", sink.port)]);
    let hpid = holder.pid;
    let held = events.wait_one("the open of a connection that lasts", |e| is(e, "connect", hpid)).await;
    assert!(!events.seen.iter().any(|e| is(e, "close", hpid)), "reported while the connection lasts");
    holder.release();
    holder.finish();
    sink.finish();
    let close = events.wait_one("its close", |e| is(e, "close", hpid)).await;
    assert_eq!(close.cookie, held.cookie);
    let connects = events.seen.iter().filter(|e| e.cookie == held.cookie && e.detail.name() == "connect").count();
    assert_eq!(connects, 1, "the open came once");
}

/// A process that execs keeps its pid and start time; the exec counter the kernel
/// records is what tells its two programs apart (and keys the process cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_before_and_after_exec_differ_by_their_exec_counter() {
    if !kernel_tests_enabled("exec counter") {
        return;
    }
    let mut events = Events::start(&loader_config());
    let server = Peer::spawn_after_listening_in_the_fork(&["tcp-server", "127.0.0.1:0", "0", "0"]);
    let (pid, port) = (server.pid, server.port);
    let listens = events.wait_n("a listen before and one after exec", 2, |e| is(e, "listen", pid)).await;
    drop(server);
    let (forked, execed) =
        listens.iter().map(|e| (e.local.port(), e.owner.unwrap())).partition::<Vec<_>, _>(|(p, _)| *p != port);
    let ([(_, before)], [(_, after)]) = (forked.as_slice(), execed.as_slice()) else {
        panic!("one listen per program: {listens:?}")
    };
    assert_eq!((before.pid, before.start_ns), (after.pid, after.start_ns), "one process");
    assert_eq!(after.exec_id, before.exec_id.wrapping_add(1), "one exec between them");
    assert_eq!(after.exe.as_str(), "pl-peer");
    assert_ne!(before.exe.as_str(), "pl-peer", "the fork still ran the test's program");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_sendto_and_recvfrom_name_peers_and_processes() {
    udp_exchange_names_peers_and_processes("udp ipv4 unconnected", "127.0.0.1", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_over_ipv6_names_peers_and_processes() {
    udp_exchange_names_peers_and_processes("udp ipv6 unconnected", "::1", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_udp_send_and_recv_name_the_peer() {
    udp_exchange_names_peers_and_processes("udp connected", "127.0.0.1", true).await;
}

/// A datagram and its reply between two processes: four events, each with its
/// process, its peer and its size; the client's socket release closes the story.
async fn udp_exchange_names_peers_and_processes(test: &str, ip: &str, connected: bool) {
    if !kernel_tests_enabled(test) {
        return;
    }
    let mut events = Events::start(&loader_config());
    let ip: IpAddr = ip.parse().unwrap();
    let server = Peer::spawn(None, &["udp-server", &SocketAddr::new(ip, 0).to_string(), "300"]);
    let server_addr = SocketAddr::new(ip, server.port);
    let mode = if connected { "connected" } else { "unconnected" };
    let client = Peer::spawn(None, &["udp-client", &server_addr.to_string(), "200", mode]);
    let (spid, cpid, cport) = (server.pid, client.pid, client.port);
    client.finish();
    server.finish();

    let bound = events.wait_one("server bind", |e| is(e, "listen", spid)).await;
    assert_eq!((bound.proto, bound.local), (Proto::Udp, server_addr));

    let sent = events.wait_one("client send", |e| is(e, "send", cpid)).await;
    assert_eq!(sent.remote, server_addr);
    assert_eq!(sent.local.port(), cport);
    assert_eq!(sent.detail, Detail::UdpSend { bytes: 200 });
    assert_eq!(sent.owner.as_ref().unwrap().comm, "pl-uclient");

    let received = events.wait_one("server recv", |e| is(e, "recv", spid)).await;
    assert_eq!(received.remote.port(), cport);
    assert_eq!(received.detail, Detail::UdpRecv { bytes: 200 });

    let reply = events.wait_one("server reply", |e| is(e, "send", spid)).await;
    assert_eq!(reply.remote.port(), cport);
    assert_eq!(reply.detail, Detail::UdpSend { bytes: 300 });

    let got = events.wait_one("client recv", |e| is(e, "recv", cpid)).await;
    assert_eq!(got.remote, server_addr);
    assert_eq!(got.detail, Detail::UdpRecv { bytes: 300 });

    events.wait_one("client socket release", |e| is(e, "udp_close", cpid) && e.cookie == sent.cookie).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_connect_to_a_closed_port_is_refused() {
    if !kernel_tests_enabled("failed connect") {
        return;
    }
    let mut events = Events::start(&loader_config());
    // A port nobody listens on: bound (so nobody else takes it) but never listening.
    let (sock, port) = socket_bound_not_listening();
    let peer = Peer::spawn(None, &["connect-refused", &format!("127.0.0.1:{port}")]);
    let pid = peer.pid;
    peer.finish();
    let failed = events.wait_one("connect_failed", |e| is(e, "connect_failed", pid)).await;
    assert_eq!(failed.remote.port(), port);
    let Detail::ConnectFailed { error, .. } = failed.detail else { unreachable!() };
    assert_eq!(error, ConnectError { errno: libc::ECONNREFUSED });
    assert_eq!(error.reason(), "refused");
    drop(sock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_whose_syns_are_dropped_times_out() {
    if !kernel_tests_enabled("connect timeout") {
        return;
    }
    let ns = Netns::new();
    // One SYN retry: the kernel gives up after about 3 s instead of 2 minutes.
    ns.exec(&["sysctl", "-q", "net.ipv4.tcp_syn_retries=1"]);
    ns.exec(&["nft", "add", "table", "inet", "pltest"]);
    ns.exec(&["nft", "add", "chain", "inet", "pltest", "out", "{ type filter hook output priority 0; }"]);
    ns.exec(&["nft", "add", "rule", "inet", "pltest", "out", "tcp", "flags", "syn", "drop"]);
    let mut events = Events::start(&loader_config());
    let peer = Peer::spawn(Some(&ns), &["connect-timeout", &format!("{}:9", ns.host_ip)]);
    let pid = peer.pid;
    peer.finish();
    let failed = events.wait_one("connect_failed", |e| is(e, "connect_failed", pid)).await;
    assert_eq!(failed.netns, ns.inode);
    let Detail::ConnectFailed { error, after } = failed.detail else { unreachable!() };
    assert_eq!(error.reason(), "timeout");
    assert!(after.is_some_and(|d| d >= Duration::from_secs(1)), "failed after {after:?}");
}

/// A TCP socket bound to a free loopback port without `listen()`: connections to that
/// port are refused. Returns the socket (keep it alive) and the port.
fn socket_bound_not_listening() -> (std::os::fd::OwnedFd, u16) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket syscalls on a fresh fd we own; the sockaddrs are initialised
    // and their lengths are those of the structs passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut addr = libc::sockaddr_in {
            sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap(),
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
            sin_zero: [0; 8],
        };
        let mut len = u32::try_from(size_of::<libc::sockaddr_in>()).unwrap();
        assert_eq!(libc::bind(fd, (&raw const addr).cast(), len), 0, "bind: {}", std::io::Error::last_os_error());
        assert_eq!(libc::getsockname(fd, (&raw mut addr).cast(), &raw mut len), 0);
        (owned, u16::from_be(addr.sin_port))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rapid_connections_each_appear_exactly_once() {
    const N: usize = 10_000;
    if !kernel_tests_enabled("connection storm") {
        return;
    }
    let mut events = Events::start(&loader_config());
    let server = Peer::spawn(None, &["tcp-accept-loop", "127.0.0.1:0", &N.to_string()]);
    let client = Peer::spawn(None, &["tcp-storm", &format!("127.0.0.1:{}", server.port), &N.to_string()]);
    let (spid, cpid) = (server.pid, client.pid);
    client.finish();
    server.finish();
    let _connects = events.wait_n("storm connects", N, |e| is(e, "connect", cpid)).await;
    let accepts = events.wait_n("storm accepts", N, |e| is(e, "accept", spid)).await;
    events.settle(Duration::from_millis(500)).await;
    let connects: Vec<_> = events.seen.iter().filter(|e| is(e, "connect", cpid)).collect();
    let accepts_all: Vec<_> = events.seen.iter().filter(|e| is(e, "accept", spid)).collect();
    assert_eq!(connects.len(), N, "one connect per connection");
    assert_eq!(accepts_all.len(), N, "one accept per connection");
    let connect_cookies: HashSet<u64> = connects.iter().map(|e| e.cookie).collect();
    let accept_cookies: HashSet<u64> = accepts.iter().map(|e| e.cookie).collect();
    assert_eq!((connect_cookies.len(), accept_cookies.len()), (N, N), "distinct sockets");
    let client_ports: HashSet<u16> = connects.iter().map(|e| e.local.port()).collect();
    let accepted_ports: HashSet<u16> = accepts.iter().map(|e| e.remote.port()).collect();
    assert_eq!(client_ports, accepted_ports, "every connect has its accept");
    // Closes come from sockops (kernel 5.9+) or the tracepoint, never from both.
    let sockets: HashSet<u64> = connect_cookies.union(&accept_cookies).copied().collect();
    events.wait_n("storm closes", 2 * N, |e| e.detail.name() == "close" && sockets.contains(&e.cookie)).await;
    events.settle(Duration::from_millis(500)).await;
    let closes: Vec<u64> = events
        .seen
        .iter()
        .filter(|e| e.detail.name() == "close" && sockets.contains(&e.cookie))
        .map(|e| e.cookie)
        .collect();
    assert_eq!(closes.len(), 2 * N, "one close per socket");
    assert_eq!(closes.iter().collect::<HashSet<_>>().len(), 2 * N, "every socket closes");
    if events.attached().iter().any(|h| h.starts_with("tp_btf/")) {
        assert!(events.attached().iter().any(|h| h == "sockops"), "the btf rung follows state changes with sockops");
    }
    let stats = events.kernel_stats();
    for loss in ["ringbuf_full", "storage_fail", "accept_map_full", "accept_read_fail"] {
        assert_eq!(stats[loss], 0, "kernel-side {loss}");
    }
    let (_, decode_errors, channel_full) = events.source_counts();
    assert_eq!((decode_errors, channel_full), (0, 0));
}

/// The live-socket check lists a TCP socket as long as the kernel has it, and not once
/// the kernel has freed it: what lets the flow stage close flows whose close event the
/// kernel skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_socket_check_lists_tcp_sockets_until_the_kernel_frees_them() {
    use std::os::fd::AsRawFd;
    if !kernel_tests_enabled("live-socket check") {
        return;
    }
    let events = Events::start(&loader_config());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let cookie = |fd: &dyn AsRawFd| {
        let mut cookie = 0u64;
        let mut len = libc::socklen_t::try_from(std::mem::size_of::<u64>()).unwrap();
        // SAFETY: SO_COOKIE writes one u64 into `cookie`, whose size `len` gives.
        let rc = unsafe {
            libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_COOKIE, (&raw mut cookie).cast(), &raw mut len)
        };
        assert_eq!(rc, 0, "SO_COOKIE: {}", std::io::Error::last_os_error());
        cookie
    };
    let (c, s, l) = (cookie(&client), cookie(&server), cookie(&listener));
    let live = events.live_tcp().expect("the live-socket iterator runs on this kernel");
    assert!(live.contains(&c) && live.contains(&s) && live.contains(&l), "open sockets are listed");
    drop((client, server));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let live = events.live_tcp().expect("the live-socket iterator runs");
        assert!(live.contains(&l), "the listener is still open");
        if !live.contains(&c) && !live.contains(&s) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "closed sockets still listed after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cgroup made while tracing is recorded by the kernel with its path, and the
/// record outlives the cgroup: short-lived containers keep their names.
#[test]
fn new_cgroups_are_recorded_with_their_path_and_outlive_removal() {
    use std::os::unix::fs::MetadataExt;
    if !kernel_tests_enabled("cgroup record") {
        return;
    }
    let mount = packetless::loader::cgroup2_root().expect("a cgroup v2 mount");
    let mut loaded = packetless::loader::load(&loader_config()).expect("loads");
    let record = loaded.take_cgroup_paths().expect("tp_btf/cgroup_mkdir attached on this kernel");
    let name = format!("pl-cgroup-record-{}", std::process::id());
    let dir = mount.join(&name);
    std::fs::create_dir(&dir).expect("mkdir in cgroupfs");
    let id = std::fs::metadata(&dir).expect("stat").ino();
    // The program runs inside mkdir(2): the entry exists once it returned.
    let recorded = record.path(id);
    std::fs::remove_dir(&dir).expect("rmdir in cgroupfs");
    assert_eq!(recorded.as_deref(), Some(format!("/{name}").as_str()));
    assert_eq!(record.path(id).as_deref(), Some(format!("/{name}").as_str()), "kept after removal");
    assert_eq!(record.path(u64::MAX), None);
}
