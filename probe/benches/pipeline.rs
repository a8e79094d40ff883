//! Throughput of the user-side stages, one core, no kernel: decoding raw kernel
//! records, folding events into the flow table, and encoding flow records as nDPI
//! TLV (ntopng's format) and as JSON lines; and the ZMQ export end to end: records
//! handed to the exporter thread until a subscriber on loopback received them.
//!
//! `cargo bench -p packetless --bench pipeline` (results: docs/BENCHMARKS.md).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use packetless::classify::Direction;
use packetless::flow::{FlowConfig, FlowRecord, FlowState, FlowTable, Process, Record};
use packetless::sink::json::write_record;
use packetless::sink::zmq::mapping::write_tlv;
use packetless::sink::zmq::socket::{self, Context};
use packetless::sink::zmq::{self, Endpoint, HeaderKind, SinkInput, ZmqConfig, ZmqFormat};
use packetless::source::{BootClock, Comm, Detail, Opening, Owner, Proto, SocketEvent, TcpCounters, TcpState};
use packetless_ebpf::abi::{flags, EventKind, RawEvent};
use packetless_wire::tlv::{self, TlvWriter};

const N: u64 = 10_000;

fn owner(pid: u32) -> Owner {
    Owner {
        pid,
        tid: pid,
        uid: 1000,
        gid: 1000,
        comm: Comm::new("curl"),
        cgroup_id: 1,
        from_current: false,
        ppid: 1,
        parent_comm: Comm::new("bash"),
        exe: "curl".into(),
        start_ns: 1,
        exec_id: 1,
    }
}

fn record(i: u64) -> FlowRecord {
    let process = |pid: u32, comm: &str| Process {
        pid,
        tid: pid,
        comm: Comm::new(comm),
        uid: 33,
        gid: 33,
        cgroup_id: 1,
        netns: 4_026_531_840,
        details: Some(Arc::new(packetless_enrich::Details {
            exe: Some(format!("/usr/bin/{comm}").into()),
            cmdline: Some(format!("{comm} --serve").into()),
            user: Some("www-data".into()),
            ..packetless_enrich::Details::default()
        })),
        ppid: Some(1),
        ..Process::default()
    };
    FlowRecord {
        flow_id: packetless::flow::id::FlowId(i),
        proto: Proto::Tcp,
        ip_version: 4,
        src_ip: "198.51.100.7".parse().unwrap(),
        src_port: u16::try_from(30_000 + i % 30_000).unwrap(),
        dst_ip: "203.0.113.9".parse().unwrap(),
        dst_port: 443,
        direction: Direction::Outbound,
        state: FlowState::Closed,
        first_seen: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        last_seen: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_001),
        src_bytes: 1234,
        dst_bytes: 56789,
        src_packets: 12,
        dst_packets: 40,
        retransmits: 0,
        src_retransmits: Some(0),
        dst_retransmits: Some(0),
        srtt_us: Some(350),
        connect_latency_us: Some(700.0),
        end_reason: Some(packetless::flow::EndReason::Fin),
        connect_error: None,
        netns: 4_026_531_840,
        src_process: Some(process(1000, "curl")),
        dst_process: Some(process(2000, "nginx")),
    }
}

fn encoding(c: &mut Criterion) {
    let records: Vec<FlowRecord> = (0..N).map(record).collect();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(N));
    group.bench_function("tlv", |b| {
        let mut w = TlvWriter::with_capacity(1 << 20);
        b.iter(|| {
            w.clear();
            // The exporter's path: fields written straight into the payload.
            for r in &records {
                write_tlv(&mut w, r);
            }
            black_box(w.len())
        });
    });
    let wrapped: Vec<Record> = records.iter().cloned().map(Record::Flow).collect();
    group.bench_function("json_lines", |b| {
        let mut out = Vec::with_capacity(1 << 24);
        b.iter(|| {
            out.clear();
            for r in &wrapped {
                write_record(&mut out, r).unwrap();
            }
            black_box(out.len())
        });
    });
    group.finish();
}

fn event(kind: Detail, cookie: u64, local: &str, remote: &str, at: u64) -> SocketEvent {
    SocketEvent {
        time: SystemTime::UNIX_EPOCH,
        boot_ns: at,
        cookie,
        netns: 1,
        proto: Proto::Tcp,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        owner: Some(owner(u32::try_from(cookie % 1000).unwrap())),
        detail: kind,
    }
}

fn flow_table(c: &mut Criterion) {
    // Per connection: connect, accept, and both closes (loopback, both ends traced),
    // in the order of a probe without held opens, and in the order the kernel sends
    // them when it holds opens back: each open right before its close.
    let (mut apart, mut folded) = (Vec::new(), Vec::new());
    for i in 0..N {
        let port = 10_000 + u16::try_from(i % 50_000).unwrap();
        let client = format!("127.0.0.1:{port}");
        let at = i * 1000;
        let counters =
            TcpCounters { bytes_sent: 10, bytes_received: 20, segs_in: 3, segs_out: 4, retransmits: 0, srtt_us: 20 };
        let close = |opening| Detail::Close { from: Some(TcpState::FinWait2), opening: Some(opening), counters };
        let latency = Some(Duration::from_micros(30));
        let connect = event(Detail::Connect { latency, srtt_us: 20 }, 2 * i + 1, &client, "127.0.0.1:80", at);
        let accept = event(Detail::Accept, 2 * i + 2, "127.0.0.1:80", &client, at + 10);
        let server_close = event(close(Opening::Passive), 2 * i + 2, "127.0.0.1:80", &client, at + 20);
        let client_close = event(close(Opening::Active), 2 * i + 1, &client, "127.0.0.1:80", at + 30);
        folded.extend([connect.clone(), client_close.clone(), accept.clone(), server_close.clone()]);
        apart.extend([connect, accept, server_close, client_close]);
    }
    let mut group = c.benchmark_group("flow_table");
    group.throughput(Throughput::Elements(apart.len() as u64));
    for (name, events) in [("loopback_connections", &apart), ("loopback_connections_held_opens", &folded)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut table = FlowTable::new(FlowConfig::default(), BootClock::fixed(SystemTime::UNIX_EPOCH, 0), "");
                let mut out = Vec::new();
                table.on_events(events, &mut out, |_| ());
                table.tick(N * 1000 + 1_000_000_000, &mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

fn decoding(c: &mut Criterion) {
    let mut raw = RawEvent {
        kind: EventKind::Close as u16,
        family: 2,
        proto: 6,
        flags: flags::OWNER_KNOWN,
        ..RawEvent::default()
    };
    raw.comm[..4].copy_from_slice(b"curl");
    raw.exe[..4].copy_from_slice(b"curl");
    let mut bytes = Vec::new();
    for i in 0..N {
        let mut r = raw;
        r.cookie = i;
        bytes.push(r.as_bytes().to_vec());
    }
    let clock = BootClock::fixed(SystemTime::UNIX_EPOCH, 0);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(N));
    group.bench_function("raw_events", |b| {
        b.iter(|| {
            let mut n = 0;
            for b in &bytes {
                n += usize::from(SocketEvent::decode(b, &clock).is_ok());
            }
            black_box(n)
        });
    });
    group.finish();
}

/// A subscriber on loopback counting the TLV flow records it receives.
fn subscriber(
    ctx: &Context,
    port: u16,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let sub = ctx.socket(socket::SUB).unwrap();
    sub.set_int(socket::OPT_RCVHWM, 1_000_000).unwrap();
    sub.set_bytes(socket::OPT_SUBSCRIBE, b"flow").unwrap();
    sub.set_int(socket::OPT_RCVTIMEO, 100).unwrap();
    sub.bind(&format!("tcp://127.0.0.1:{port}")).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok(frames) = sub.recv_multipart(0) else { continue };
            if let Some(Ok(records)) = frames.get(1).map(|p| tlv::decode(p)) {
                received.fetch_add(records.len() as u64, Ordering::Relaxed);
            }
        }
    })
}

fn zmq_export(c: &mut Criterion) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
    let ctx = Context::new().unwrap();
    let (received, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let sub = subscriber(&ctx, port, Arc::clone(&received), Arc::clone(&stop));
    let config = ZmqConfig {
        endpoints: vec![Endpoint::parse(&format!("tcp://127.0.0.1:{port}c")).unwrap()],
        format: ZmqFormat::Tlv,
        header: HeaderKind::V3,
        compress: false,
        source_id: 1,
        server_key: None,
        event_interval: Duration::from_secs(3600),
        queue: 100_000,
        update_interval: Duration::from_secs(60),
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(64);
    let exporter = zmq::start(config, rx).unwrap();
    let batch: Arc<Vec<Record>> = Arc::new((0..N).map(|i| Record::Flow(record(i))).collect());
    // Until the subscription is through, records wait in the backlog: warm up first.
    let wait_for = |want: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while received.load(Ordering::Relaxed) < want {
            assert!(std::time::Instant::now() < deadline, "the subscriber stopped receiving");
            std::thread::yield_now();
        }
    };
    tx.send(SinkInput::Records(Arc::clone(&batch))).unwrap();
    wait_for(N);
    let mut group = c.benchmark_group("export");
    group.throughput(Throughput::Elements(N));
    group.bench_function("zmq_tlv_end_to_end", |b| {
        b.iter(|| {
            let want = received.load(Ordering::Relaxed) + N;
            tx.send(SinkInput::Records(Arc::clone(&batch))).unwrap();
            wait_for(want);
        });
    });
    group.finish();
    drop(tx);
    let counters = exporter.join().unwrap();
    assert_eq!(counters.dropped_queue_full + counters.dropped_no_collector, 0, "nothing dropped");
    stop.store(true, Ordering::Relaxed);
    sub.join().unwrap();
}

criterion_group!(benches, encoding, flow_table, decoding, zmq_export);
criterion_main!(benches);
