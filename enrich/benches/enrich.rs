//! Cost of enrichment on its hot path, no procfs: the same processes asked about
//! again and again, as under a connection storm from one client. `observe` runs
//! for every kernel event and `details` for every process of every record; the
//! fake procfs is read only on the first call, so this measures the caches.
//!
//! `cargo bench -p packetless-enrich --bench enrich`

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use packetless_enrich::fake::{FakeProc, FakeProcess};
use packetless_enrich::procfs::clock_ticks;
use packetless_enrich::{EnrichConfig, Enricher, KernelFacts};

const CONTAINER: &str = "3f4c1a9e5b7d2c8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";

/// A client in a Docker container, a server on the host, and their parent.
fn enricher() -> (Enricher, KernelFacts, KernelFacts) {
    let start_ns = |s: u64| s * 1_000_000_000;
    let ticks = |s: u64| s * clock_ticks();
    let client = FakeProcess {
        exe: "/usr/bin/curl".into(),
        cmdline: b"curl\0-s\0http://10.0.0.2/\0".to_vec(),
        start_ticks: ticks(50),
        cgroup: format!("0::/system.slice/docker-{CONTAINER}.scope\n"),
        root: (9, 1234),
        passwd: "root:x:0:0::/:/bin/sh\nappuser:x:4321:4321::/:/bin/sh\n".into(),
        group: "appgroup:x:4321:\n".into(),
    };
    let server = FakeProcess {
        exe: "/usr/sbin/nginx".into(),
        cmdline: b"nginx: worker process\0".to_vec(),
        start_ticks: ticks(20),
        cgroup: "0::/system.slice/nginx.service\n".into(),
        root: (8, 2),
        passwd: "root:x:0:0::/:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n".into(),
        group: "www-data:x:33:\n".into(),
    };
    let init = FakeProcess { exe: "/sbin/init".into(), start_ticks: 1, root: (8, 2), ..FakeProcess::default() };
    let proc = FakeProc::new([(4242, client), (4343, server), (1, init)]);
    let e = Enricher::new(EnrichConfig { cgroup_mount: None, docker_socket: None }, Box::new(proc));
    let client =
        KernelFacts { pid: 4242, start_ns: start_ns(50), exec_id: 1, uid: 4321, gid: 4321, cgroup_id: 77, ppid: 1 };
    let server =
        KernelFacts { pid: 4343, start_ns: start_ns(20), exec_id: 1, uid: 33, gid: 33, cgroup_id: 78, ppid: 1 };
    (e, client, server)
}

fn hot_process(c: &mut Criterion) {
    let mut group = c.benchmark_group("enrich");
    group.throughput(Throughput::Elements(1));
    group.bench_function("observe_hot", |b| {
        let (mut e, client, _) = enricher();
        let now = Instant::now();
        b.iter(|| e.observe(black_box(&client), now));
    });
    group.bench_function("details_hot_container", |b| {
        let (mut e, client, _) = enricher();
        let now = Instant::now();
        assert!(e.details(&client, now).container.is_some());
        b.iter(|| black_box(e.details(black_box(&client), now)));
    });
    group.bench_function("details_hot_host", |b| {
        let (mut e, _, server) = enricher();
        let now = Instant::now();
        assert_eq!(e.details(&server, now).user.as_deref(), Some("www-data"));
        b.iter(|| black_box(e.details(black_box(&server), now)));
    });
    group.bench_function("details_shared_hot_host", |b| {
        let (mut e, _, server) = enricher();
        let now = Instant::now();
        b.iter(|| black_box(e.details_shared(black_box(&server), now)));
    });
    // One loopback connection: its four events (connect, accept and both closes)
    // observed, then its record's two processes filled.
    group.bench_function("loopback_connection", |b| {
        let (mut e, client, server) = enricher();
        let now = Instant::now();
        b.iter(|| {
            for facts in [&client, &server, &client, &server] {
                e.observe(black_box(facts), now);
            }
            black_box((e.details(black_box(&client), now), e.details(black_box(&server), now)))
        });
    });
    group.finish();
}

criterion_group!(benches, hot_process);
criterion_main!(benches);
