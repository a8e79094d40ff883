//! The flow table on a fake clock: events built by hand, times in nanoseconds.

use std::time::{Duration, SystemTime};

use super::*;
use crate::source::{ConnectError, Owner, TcpCounters};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn table() -> FlowTable {
    FlowTable::new(FlowConfig::default(), BootClock::fixed(SystemTime::UNIX_EPOCH, 0), "boot")
}

fn owner(pid: u32, comm: &str) -> Owner {
    Owner {
        pid,
        tid: pid,
        uid: 0,
        gid: 0,
        comm: comm.into(),
        cgroup_id: 1,
        from_current: false,
        ppid: 1,
        parent_comm: "init".into(),
        exe: comm.into(),
        start_ns: 1,
        exec_id: 1,
    }
}

fn ev(at: u64, cookie: u64, local: &str, remote: &str, pid: u32, detail: Detail) -> SocketEvent {
    let proto = match detail {
        Detail::UdpSend { .. } | Detail::UdpRecv { .. } | Detail::UdpClose => Proto::Udp,
        _ => Proto::Tcp,
    };
    SocketEvent {
        time: SystemTime::UNIX_EPOCH,
        boot_ns: at,
        cookie,
        netns: 7,
        proto,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        owner: Some(owner(pid, &format!("p{pid}"))),
        detail,
    }
}

fn close(from: TcpState, opening: Opening, sent: u64, received: u64) -> Detail {
    Detail::Close {
        from: Some(from),
        opening: Some(opening),
        counters: TcpCounters {
            bytes_sent: sent,
            bytes_received: received,
            segs_in: 3,
            segs_out: 4,
            retransmits: 1,
            srtt_us: 50,
        },
    }
}

fn connect() -> Detail {
    Detail::Connect { latency: Some(Duration::from_micros(80)), srtt_us: 40 }
}

fn flows(out: &[Record]) -> Vec<&FlowRecord> {
    out.iter()
        .filter_map(|r| match r {
            Record::Flow(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn run(t: &mut FlowTable, events: &[SocketEvent], until: u64) -> Vec<Record> {
    let mut out = Vec::new();
    for e in events {
        t.on_event(e, &mut out);
    }
    t.tick(until, &mut out);
    out
}

#[test]
fn loopback_connection_is_one_local_record_with_both_processes() {
    let mut t = table();
    let out = run(
        &mut t,
        &[
            ev(0, 1, "127.0.0.1:40000", "127.0.0.1:80", 100, connect()),
            ev(MS, 2, "127.0.0.1:80", "127.0.0.1:40000", 200, Detail::Accept),
            ev(
                2 * MS,
                2,
                "127.0.0.1:80",
                "127.0.0.1:40000",
                200,
                close(TcpState::LastAck, Opening::Passive, 654_321, 123_456),
            ),
            ev(
                3 * MS,
                1,
                "127.0.0.1:40000",
                "127.0.0.1:80",
                100,
                close(TcpState::FinWait2, Opening::Active, 123_456, 654_321),
            ),
        ],
        4 * MS,
    );
    let f = flows(&out);
    assert_eq!(f.len(), 1, "one record for a short connection: {out:#?}");
    let f = f[0];
    assert_eq!((f.state, f.direction, f.end_reason), (FlowState::Closed, Direction::Local, Some(EndReason::Fin)));
    assert_eq!((f.src_port, f.dst_port), (40000, 80));
    assert_eq!((f.src_bytes, f.dst_bytes), (123_456, 654_321));
    assert_eq!((f.src_packets, f.dst_packets), (4, 4));
    assert_eq!(f.retransmits, 2, "both ends' retransmits");
    assert_eq!(f.src_process.as_ref().map(|p| p.pid), Some(100));
    assert_eq!(f.dst_process.as_ref().map(|p| p.pid), Some(200));
    assert_eq!(f.connect_latency_us, Some(80.0));
    assert!(t.is_empty());
}

#[test]
fn accept_before_connect_still_pairs() {
    let mut t = table();
    let out = run(
        &mut t,
        &[
            ev(0, 2, "127.0.0.1:80", "127.0.0.1:40000", 200, Detail::Accept),
            ev(MS, 1, "127.0.0.1:40000", "127.0.0.1:80", 100, connect()),
        ],
        S,
    );
    let f = flows(&out);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].state, f[0].src_port), (FlowState::Open, 40000));
    assert!(f[0].src_process.is_some() && f[0].dst_process.is_some());
}

#[test]
fn outbound_flow_opens_after_the_pair_window_then_closes_and_is_a_dependency() {
    let mut t = table();
    let mut out = Vec::new();
    t.on_event(&ev(0, 1, "198.51.100.1:40000", "203.0.113.9:443", 100, connect()), &mut out);
    t.tick(100 * MS, &mut out);
    assert!(flows(&out).is_empty(), "held while the other end may still show up");
    t.tick(600 * MS, &mut out);
    assert_eq!(flows(&out).len(), 1);
    assert_eq!((flows(&out)[0].state, flows(&out)[0].direction), (FlowState::Open, Direction::Outbound));
    t.on_event(
        &ev(S, 1, "198.51.100.1:40000", "203.0.113.9:443", 100, close(TcpState::FinWait2, Opening::Active, 10, 20)),
        &mut out,
    );
    t.tick(S + 100 * MS, &mut out);
    assert_eq!(flows(&out).len(), 1, "a remote peer may not close yet: wait the pair window");
    t.tick(2 * S, &mut out);
    let f = flows(&out);
    assert_eq!(f.len(), 2);
    assert_eq!((f[1].state, f[1].src_bytes, f[1].dst_bytes), (FlowState::Closed, 10, 20));
    assert_eq!(f[0].flow_id, f[1].flow_id);

    let mut inv = Vec::new();
    t.inventory(3 * S, &mut inv);
    let dep = inv.iter().find_map(|r| if let Record::Dependency(d) = r { Some(d) } else { None }).unwrap();
    assert_eq!((dep.ip.to_string(), dep.port, dep.flows), ("203.0.113.9".into(), 443, 1));
    assert_eq!(dep.last_process.as_ref().map(|p| p.pid), Some(100));
    assert!(inv.iter().any(|r| matches!(r, Record::LocalIp(l) if l.ip.to_string() == "198.51.100.1")));

    let mut later = Vec::new();
    t.inventory(2 * S + u64::try_from(super::DEPENDENCY_TTL.as_nanos()).unwrap(), &mut later);
    assert!(!later.iter().any(|r| matches!(r, Record::Dependency(_))), "an unused destination expires");
}

#[test]
fn accepted_connection_from_a_remote_client_is_inbound_with_the_client_as_source() {
    let mut t = table();
    let out = run(&mut t, &[ev(0, 2, "198.51.100.1:80", "203.0.113.9:5555", 200, Detail::Accept)], S);
    let f = flows(&out)[0];
    assert_eq!(f.direction, Direction::Inbound);
    assert_eq!((f.src_ip.to_string(), f.src_port, f.dst_port), ("203.0.113.9".into(), 5555, 80));
    assert!(f.src_process.is_none());
    assert_eq!(f.dst_process.as_ref().map(|p| p.pid), Some(200));
}

#[test]
fn connecting_to_an_own_address_is_local() {
    let mut t = table();
    t.add_interface_addrs(["198.51.100.1".parse().unwrap()], 0);
    let out = run(&mut t, &[ev(0, 1, "198.51.100.1:40000", "198.51.100.1:80", 100, connect())], S);
    assert_eq!(flows(&out)[0].direction, Direction::Local);
}

#[test]
fn long_lived_flows_are_updated_each_interval() {
    let mut t = table();
    let mut out = Vec::new();
    t.on_event(&ev(0, 1, "198.51.100.1:40000", "203.0.113.9:443", 100, connect()), &mut out);
    for second in 1..=65 {
        t.tick(second * S, &mut out);
    }
    let states: Vec<FlowState> = flows(&out).iter().map(|f| f.state).collect();
    assert_eq!(states, [FlowState::Open, FlowState::Update, FlowState::Update]);
}

#[test]
fn failed_connect_is_one_closed_record_with_the_reason() {
    let mut t = table();
    let failed = Detail::ConnectFailed { error: ConnectError { errno: libc::ECONNREFUSED }, after: None };
    let out = run(&mut t, &[ev(0, 1, "127.0.0.1:40000", "127.0.0.1:9", 100, failed)], S);
    let f = flows(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].end_reason, Some(EndReason::FailedConnect));
    assert_eq!(f[0].connect_error.as_deref(), Some("refused"));
}

#[test]
fn reset_connection_ends_with_rst() {
    let mut t = table();
    let out = run(
        &mut t,
        &[
            ev(0, 1, "198.51.100.1:40000", "203.0.113.9:443", 100, connect()),
            ev(
                MS,
                1,
                "198.51.100.1:40000",
                "203.0.113.9:443",
                100,
                close(TcpState::Established, Opening::Active, 0, 0),
            ),
        ],
        S,
    );
    assert_eq!(flows(&out)[0].end_reason, Some(EndReason::Rst));
}

#[test]
fn udp_datagrams_aggregate_per_peer_and_idle_flows_time_out() {
    let mut t = table();
    let mut out = Vec::new();
    let send = |at, bytes| ev(at, 5, "0.0.0.0:50000", "203.0.113.53:53", 100, Detail::UdpSend { bytes });
    let recv = |at, bytes| ev(at, 5, "0.0.0.0:50000", "203.0.113.53:53", 100, Detail::UdpRecv { bytes });
    for e in [send(0, 40), recv(MS, 120), send(2 * MS, 40), recv(3 * MS, 130)] {
        t.on_event(&e, &mut out);
    }
    t.on_event(&ev(4 * MS, 5, "0.0.0.0:50000", "0.0.0.0:0", 100, Detail::UdpRecv { bytes: 9 }), &mut out);
    t.tick(S, &mut out);
    t.tick(62 * S, &mut out);
    let f = flows(&out);
    assert_eq!(f.len(), 2);
    let last = f[1];
    assert_eq!((last.state, last.end_reason), (FlowState::Closed, Some(EndReason::Timeout)));
    assert_eq!((last.src_bytes, last.dst_bytes, last.src_packets, last.dst_packets), (80, 250, 2, 2));
    assert_eq!(last.direction, Direction::Outbound);
    assert_eq!(t.counters().udp_peer_unknown, 1);
}

#[test]
fn bound_udp_socket_is_a_listen_record_and_its_peers_are_inbound() {
    let mut t = table();
    let mut bound = ev(0, 9, "198.51.100.1:53", "0.0.0.0:0", 300, Detail::Listen);
    bound.proto = Proto::Udp;
    let mut out = Vec::new();
    t.on_event(&bound, &mut out);
    let Record::Listen(l) = &out[0] else { panic!("{out:?}") };
    assert_eq!((l.proto, l.port, l.state), (Proto::Udp, 53, FlowState::Open));
    t.on_event(&ev(MS, 9, "198.51.100.1:53", "203.0.113.7:4000", 300, Detail::UdpRecv { bytes: 30 }), &mut out);
    t.on_event(&ev(2 * MS, 9, "198.51.100.1:53", "0.0.0.0:0", 300, Detail::UdpClose), &mut out);
    t.tick(S, &mut out);
    let f = flows(&out);
    assert_eq!((f[0].direction, f[0].src_port, f[0].end_reason), (Direction::Inbound, 4000, Some(EndReason::Close)));
    assert!(out.iter().any(|r| matches!(r, Record::Listen(l) if l.state == FlowState::Closed)));
}

#[test]
fn tcp_listener_close_ends_its_listen_record() {
    let mut t = table();
    let out = run(
        &mut t,
        &[
            ev(0, 3, "0.0.0.0:8080", "0.0.0.0:0", 1, Detail::Listen),
            ev(S, 3, "0.0.0.0:8080", "0.0.0.0:0", 1, close(TcpState::Listen, Opening::Active, 0, 0)),
        ],
        2 * S,
    );
    let states: Vec<FlowState> =
        out.iter().filter_map(|r| if let Record::Listen(l) = r { Some(l.state) } else { None }).collect();
    assert_eq!(states, [FlowState::Open, FlowState::Closed]);
    assert!(flows(&out).is_empty());
}

#[test]
fn a_socket_older_than_the_probe_is_reported_from_its_close_alone() {
    let mut t = table();
    let mut close_ev =
        ev(5 * S, 8, "198.51.100.1:80", "203.0.113.9:6000", 0, close(TcpState::LastAck, Opening::Passive, 5, 6));
    close_ev.owner = None;
    let out = run(&mut t, &[close_ev], 6 * S);
    let f = flows(&out)[0];
    assert_eq!((f.direction, f.src_port, f.src_bytes, f.dst_bytes), (Direction::Inbound, 6000, 6, 5));
}

#[test]
fn a_full_table_evicts_the_oldest_flow_and_counts_it() {
    let config = FlowConfig { max_flows: 2, ..FlowConfig::default() };
    let mut t = FlowTable::new(config, BootClock::fixed(SystemTime::UNIX_EPOCH, 0), "");
    let mut out = Vec::new();
    for cookie in 1..=3u16 {
        let local = format!("198.51.100.1:{}", 40000 + cookie);
        t.on_event(&ev(u64::from(cookie), u64::from(cookie), &local, "203.0.113.9:443", 1, connect()), &mut out);
    }
    assert_eq!(t.len(), 2);
    assert_eq!(t.counters().flows_evicted, 1);
}

#[test]
fn shutdown_flushes_open_flows_as_updates_and_closed_ones_as_closed() {
    let mut t = table();
    let mut out = Vec::new();
    t.on_event(&ev(0, 1, "198.51.100.1:40000", "203.0.113.9:443", 100, connect()), &mut out);
    t.on_event(&ev(0, 2, "198.51.100.1:40001", "203.0.113.9:443", 100, connect()), &mut out);
    t.on_event(
        &ev(MS, 2, "198.51.100.1:40001", "203.0.113.9:443", 100, close(TcpState::FinWait2, Opening::Active, 1, 1)),
        &mut out,
    );
    t.flush(2 * MS, &mut out);
    let mut states: Vec<FlowState> = flows(&out).iter().map(|f| f.state).collect();
    states.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(states, [FlowState::Closed, FlowState::Update]);
    assert!(t.is_empty());
}

#[test]
fn ended_flows_leave_no_trace_behind() {
    let mut t = table();
    let failed = || Detail::ConnectFailed { error: ConnectError { errno: libc::ECONNREFUSED }, after: None };
    let mut records = 0;
    for i in 0..20_000u64 {
        let local = format!("127.0.0.1:{}", 10_000 + i % 50_000);
        records += flows(&run(&mut t, &[ev(i, i + 1, &local, "127.0.0.1:9", 100, failed())], S + i)).len();
    }
    assert_eq!(records, 20_000, "every connection reported");
    assert!(t.eviction_queue_len() <= 1024 + 2, "the eviction queue holds {} ids", t.eviction_queue_len());
}

/// One live-socket check that lists `alive`, taken at `at`.
fn check(t: &mut FlowTable, alive: &[u64], at: u64) -> CheckOutcome {
    for &cookie in alive {
        t.tcp_listed(cookie);
    }
    t.tcp_check_done(at)
}

#[test]
fn a_socket_missing_from_two_live_checks_is_closed_as_gone() {
    let mut t = table();
    let mut out = run(
        &mut t,
        &[
            ev(0, 1, "127.0.0.1:40000", "127.0.0.1:80", 100, connect()),
            ev(MS, 2, "127.0.0.1:80", "127.0.0.1:40000", 200, Detail::Accept),
            // The server's close came; the client's was skipped by the kernel.
            ev(2 * MS, 2, "127.0.0.1:80", "127.0.0.1:40000", 200, close(TcpState::LastAck, Opening::Passive, 5, 7)),
        ],
        S,
    );
    let closed = |out: &[Record]| flows(out).into_iter().filter(|f| f.state == FlowState::Closed).count();
    assert_eq!(closed(&out), 0, "the client end is still open");
    assert_eq!(check(&mut t, &[], 15 * S), CheckOutcome::default(), "one miss may be a close still on its way");
    t.tick(16 * S, &mut out);
    assert_eq!(closed(&out), 0, "one miss may be a close still on its way");
    let gone = check(&mut t, &[], 30 * S);
    let client = GoneEnd {
        cookie: 1,
        server: false,
        local: "127.0.0.1:40000".parse().unwrap(),
        remote: "127.0.0.1:80".parse().unwrap(),
        owner: Some((100, "p100".to_owned())),
        other_end_open: false,
        idle: Duration::from_nanos(30 * S - 2 * MS),
    };
    assert_eq!(gone, CheckOutcome { closed: 1, named: vec![client] }, "the end closed, named");
    t.tick(31 * S, &mut out);
    let f = flows(&out);
    let last = f.last().expect("records");
    assert_eq!(closed(&out), 1, "{out:#?}");
    assert_eq!((last.state, last.end_reason), (FlowState::Closed, Some(EndReason::Fin)), "the server end's close");
    assert_eq!(last.dst_bytes, 5);
    assert_eq!(t.counters().tcp_closes_missed, 1);
    assert!(t.is_empty());
}

#[test]
fn a_check_counts_every_gone_end_and_names_the_first_few() {
    let mut t = table();
    let mut events = Vec::new();
    for i in 0..7u16 {
        let client = format!("127.0.0.1:{}", 40_000 + i);
        events.push(ev(MS, 2 * u64::from(i) + 1, &client, "127.0.0.1:80", 100, connect()));
        events.push(ev(MS, 2 * u64::from(i) + 2, "127.0.0.1:80", &client, 200, Detail::Accept));
    }
    run(&mut t, &events, S);
    check(&mut t, &[], 15 * S);
    let outcome = check(&mut t, &[], 30 * S);
    assert_eq!(outcome.closed, 14, "both ends of seven connections");
    assert_eq!(outcome.named.len(), GONE_NAMED);
    assert!(outcome.named.iter().all(|end| !end.other_end_open), "both ends went in the same check: {outcome:?}");
    assert_eq!(t.counters().tcp_closes_missed, 14);
}

#[test]
fn a_flow_whose_every_close_was_missed_ends_as_gone_and_late_events_are_dropped() {
    let mut t = table();
    let mut out = run(&mut t, &[ev(MS, 1, "198.51.100.1:40000", "203.0.113.9:443", 100, connect())], S);
    assert_eq!(flows(&out).len(), 1, "opened");
    check(&mut t, &[1], 15 * S);
    check(&mut t, &[9], 30 * S);
    check(&mut t, &[1], 45 * S);
    t.tick(46 * S, &mut out);
    let states = |out: &[Record]| flows(out).iter().map(|f| f.state).collect::<Vec<_>>();
    assert_eq!(states(&out), [FlowState::Open, FlowState::Update], "listed again after one miss: still open");
    check(&mut t, &[], 60 * S);
    check(&mut t, &[], 75 * S);
    t.tick(76 * S, &mut out);
    let f = flows(&out);
    assert_eq!(states(&out), [FlowState::Open, FlowState::Update, FlowState::Closed]);
    assert_eq!(f[2].end_reason, Some(EndReason::Gone));
    assert_eq!(f[2].last_seen, f[0].last_seen, "ended at its last sign of life, not at the check");

    let late =
        ev(77 * S, 1, "198.51.100.1:40000", "203.0.113.9:443", 100, close(TcpState::FinWait2, Opening::Active, 1, 1));
    let out = run(&mut t, &[late], 80 * S);
    assert!(flows(&out).is_empty() && t.is_empty(), "no second flow for a socket closed as gone");
    assert_eq!((t.counters().tcp_closes_missed, t.counters().tcp_events_after_gone), (1, 1));
}

fn snapshot(state: TcpState) -> Detail {
    Detail::Snapshot {
        state: Some(state),
        opening: Some(Opening::Active),
        counters: Some(TcpCounters {
            bytes_sent: 10,
            bytes_received: 20,
            segs_in: 2,
            segs_out: 2,
            retransmits: 0,
            srtt_us: 50,
        }),
    }
}

#[test]
fn a_closed_socket_still_held_by_a_descriptor_does_not_open_a_flow_again() {
    let mut t = table();
    let out = run(
        &mut t,
        &[
            ev(MS, 1, "198.51.100.1:40000", "203.0.113.9:443", 100, connect()),
            ev(
                2 * MS,
                1,
                "198.51.100.1:40000",
                "203.0.113.9:443",
                100,
                close(TcpState::FinWait2, Opening::Active, 10, 20),
            ),
        ],
        S,
    );
    assert_eq!(flows(&out).len(), 1, "one closed record");
    assert!(t.is_empty());
    let out =
        run(&mut t, &[ev(20 * S, 1, "198.51.100.1:40000", "203.0.113.9:443", 100, snapshot(TcpState::Close))], 21 * S);
    assert!(flows(&out).is_empty() && t.is_empty(), "the snapshot of the closed socket is no new flow");
    let out = run(
        &mut t,
        &[ev(22 * S, 2, "198.51.100.1:40001", "203.0.113.9:443", 100, snapshot(TcpState::Established))],
        23 * S,
    );
    assert_eq!(flows(&out).len(), 1, "an established socket older than the probe is");
}

#[test]
fn an_open_held_back_by_the_kernel_after_a_snapshot_of_its_socket_dates_the_flow() {
    let mut t = table();
    let at = |time, detail| ev(time, 1, "198.51.100.1:40000", "203.0.113.9:443", 100, detail);
    let events = [
        at(300 * MS, snapshot(TcpState::Established)),
        at(100 * MS, connect()),
        at(2 * S, close(TcpState::FinWait2, Opening::Active, 1, 1)),
    ];
    let out = run(&mut t, &events, 3 * S);
    let f = flows(&out);
    assert_eq!(f.len(), 1, "one flow: {f:?}");
    let first = f[0].first_seen.duration_since(std::time::UNIX_EPOCH).unwrap();
    assert_eq!(first, Duration::from_millis(100), "the connect's time, not the snapshot's");
    assert_eq!(f[0].connect_latency_us, Some(80.0));
}

/// Each scenario's records, folded one event at a time and as a batch.
fn both_ways(events: &[SocketEvent], until: u64) -> (Vec<Record>, Vec<Record>, FlowTable) {
    let one_by_one = run(&mut table(), events, until);
    let mut t = table();
    let mut batched = Vec::new();
    let mut seen = 0;
    t.on_events(events, &mut batched, |_| seen += 1);
    assert_eq!(seen, events.len(), "every event is shown to the caller");
    t.tick(until, &mut batched);
    (one_by_one, batched, t)
}

#[test]
fn an_open_followed_by_its_close_folds_as_the_two_events_would() {
    let client = |at, detail| ev(at, 1, "127.0.0.1:40000", "127.0.0.1:80", 100, detail);
    let server = |at, detail| ev(at, 2, "127.0.0.1:80", "127.0.0.1:40000", 200, detail);
    let client_close = || close(TcpState::FinWait2, Opening::Active, 10, 20);
    let server_close = || close(TcpState::LastAck, Opening::Passive, 20, 10);
    let outbound = |at, detail| ev(at, 3, "198.51.100.1:40001", "203.0.113.9:443", 100, detail);
    let scenarios: Vec<(&str, Vec<SocketEvent>)> = vec![
        (
            "both ends folded",
            vec![
                client(0, connect()),
                client(3 * MS, client_close()),
                server(MS, Detail::Accept),
                server(2 * MS, server_close()),
            ],
        ),
        (
            "the server's end first",
            vec![
                server(MS, Detail::Accept),
                server(2 * MS, server_close()),
                client(0, connect()),
                client(3 * MS, client_close()),
            ],
        ),
        (
            "one end folded, the other open before",
            vec![
                client(0, connect()),
                server(MS, Detail::Accept),
                server(2 * MS, server_close()),
                client(3 * MS, client_close()),
            ],
        ),
        (
            "a snapshot named the socket first",
            vec![client(MS, snapshot(TcpState::Established)), client(0, connect()), client(3 * MS, client_close())],
        ),
        (
            "an outbound connection",
            vec![outbound(0, connect()), outbound(5 * MS, close(TcpState::Established, Opening::Active, 1, 0))],
        ),
    ];
    for (name, events) in scenarios {
        let (one_by_one, batched, _) = both_ways(&events, 10 * S);
        assert!(!flows(&one_by_one).is_empty(), "{name}: records");
        assert_eq!(batched, one_by_one, "{name}");
    }
}

#[test]
fn a_folded_connection_stays_out_of_the_cookie_index() {
    let events = [
        ev(0, 1, "127.0.0.1:40000", "127.0.0.1:80", 100, connect()),
        ev(MS, 1, "127.0.0.1:40000", "127.0.0.1:80", 100, close(TcpState::FinWait2, Opening::Active, 1, 1)),
        ev(2 * MS, 2, "127.0.0.1:80", "127.0.0.1:40000", 200, Detail::Accept),
    ];
    let mut t = table();
    t.on_events(&events, &mut Vec::new(), |_| ());
    assert_eq!(t.len(), 1, "the accept joined the folded end");
    assert_eq!(t.tcp_by_cookie.keys().copied().collect::<Vec<_>>(), [2], "only the end still open is indexed");
    let mut out = Vec::new();
    t.on_event(
        &ev(3 * MS, 2, "127.0.0.1:80", "127.0.0.1:40000", 200, close(TcpState::LastAck, Opening::Passive, 1, 1)),
        &mut out,
    );
    t.tick(4 * MS, &mut out);
    assert_eq!(flows(&out).len(), 1);
    assert!(t.is_empty() && t.tcp_by_cookie.is_empty(), "nothing left behind");
}
