//! pl-bench: packetless's end-to-end benchmark, one command, one run.
//!
//! ```text
//! cargo build --release --workspace
//! sudo target/release/pl-bench [--connections 500000] [--rounds 4] [--hold 100000] [--threads 1] [--soak MINUTES]
//! ```
//!
//! It measures, on this machine and in one run:
//! - start-up: from exec of `packetless watch --json` to the first event printed;
//! - connection storms (pl-load: connect + close over loopback), alternating rounds
//!   without and with `packetless run` exporting TLV over ZMQ to a subscriber in this
//!   process: the throughput ratio, the probe's CPU seconds per 1000 connections
//!   (user + system, from /proc), its peak RSS, kernel-side misses, channel and
//!   export drops, and flow records received against connections made;
//! - memory with many live flows: RSS of the probe while pl-load holds N connections.
//!
//! `--soak MINUTES` instead runs storms back to back for that long under one probe
//! and prints its RSS after each 100,000 connections: memory must stay flat.
//!
//! Results are printed as a Markdown table (docs/BENCHMARKS.md keeps them) and as one
//! JSON line. It needs root (the probe loads eBPF) and the sibling binaries
//! `packetless` and `pl-load` of the same build.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use packetless::sink::zmq::socket::{self, Context};
use packetless_wire::header::Header;
use packetless_wire::{fields, tlv};
use serde_json::{json, Value};

struct Options {
    connections: u64,
    rounds: u32,
    hold: u64,
    threads: u32,
    soak_minutes: u64,
}

const USAGE: &str = "usage: pl-bench [--connections N] [--rounds N] [--hold N] [--threads N] [--soak MINUTES]

  --connections N  connections over all storm rounds (default 500000)
  --rounds N       storm rounds; each runs without, then with the probe (default 4)
  --hold N         live connections held open for the memory measure (default 100000)
  --threads N      client threads of each storm (default 1)
  --soak MINUTES   instead: storms back to back under one probe, RSS after each

Needs root, and packetless and pl-load built next to it (cargo build --release --workspace).";

fn options() -> Result<Options, String> {
    let mut o = Options { connections: 500_000, rounds: 4, hold: 100_000, threads: 1, soak_minutes: 0 };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}");
        match flag.as_str() {
            "--connections" => o.connections = value.parse().map_err(bad)?,
            "--rounds" => o.rounds = value.parse().map_err(bad)?,
            "--hold" => o.hold = value.parse().map_err(bad)?,
            "--threads" => o.threads = value.parse().map_err(bad)?,
            "--soak" => o.soak_minutes = value.parse().map_err(bad)?,
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().expect("a directory").join(name)
}

/// Flow records received by the in-process collector, per destination port.
#[derive(Default)]
struct Collected {
    /// Records of ended flows (those with an end reason) by server port: one per
    /// connection when no close was lost.
    closed_by_port: HashMap<u64, u64>,
    /// Client ports of flows reported open (records without an end reason), by
    /// server port: a flow counts once, whether its record was its first or an update.
    open_by_port: HashMap<u64, std::collections::HashSet<u64>>,
    messages: u64,
}

fn collector(port: u16, stop: Arc<AtomicBool>, seen: Arc<Mutex<Collected>>) -> std::thread::JoinHandle<()> {
    let ctx = Context::new().expect("zmq context");
    let sub = ctx.socket(socket::SUB).expect("SUB socket");
    sub.set_int(socket::OPT_RCVHWM, 1_000_000).expect("rcvhwm");
    sub.set_bytes(socket::OPT_SUBSCRIBE, b"flow").expect("subscribe");
    sub.set_int(socket::OPT_RCVTIMEO, 200).expect("timeout");
    sub.bind(&format!("tcp://127.0.0.1:{port}")).expect("bind the collector");
    std::thread::spawn(move || {
        let _ctx = ctx;
        while !stop.load(Ordering::Relaxed) {
            let Ok(frames) = sub.recv_multipart(0) else { continue };
            let (Some(header), Some(payload)) = (frames.first(), frames.get(1)) else { continue };
            if Header::decode(header).is_err() {
                continue;
            }
            let Ok(records) = tlv::decode(payload) else { continue };
            let mut seen = seen.lock().expect("collector state");
            seen.messages += 1;
            for record in records {
                let port = |id| {
                    record.iter().find_map(|(k, v)| match (k, v) {
                        (tlv::Key::Id(k), tlv::Value::Uint(p)) if *k == id => Some(*p),
                        _ => None,
                    })
                };
                let ended = record.iter().any(|(k, _)| *k == tlv::Key::Id(fields::FLOW_END_REASON));
                if let Some(p) = port(fields::L4_DST_PORT) {
                    if ended {
                        *seen.closed_by_port.entry(p).or_default() += 1;
                    } else {
                        let client = port(fields::L4_SRC_PORT).unwrap_or(0);
                        seen.open_by_port.entry(p).or_default().insert(client);
                    }
                }
            }
        }
    })
}

/// Runs pl-load with `args` and returns its JSON report line(s).
fn load(args: &[&str]) -> Vec<Value> {
    let out = Command::new(sibling("pl-load")).args(args).output().expect("pl-load runs");
    assert!(out.status.success(), "pl-load {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

struct Probe {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Probe {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(sibling("packetless"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("packetless runs");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        let keep = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(" tracing ") {
                    let _ = tx.send(());
                }
                keep.lock().expect("log").push_str(&line);
                keep.lock().expect("log").push('\n');
            }
        });
        rx.recv_timeout(Duration::from_secs(30)).expect("the probe starts tracing");
        Self { child, log }
    }

    /// (user + system CPU seconds, peak RSS in KiB) so far.
    fn usage(&self) -> (f64, u64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| {
            status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
        };
        #[allow(clippy::cast_precision_loss, reason = "CPU ticks of a benchmark run")]
        let cpu = ticks as f64 / hz as f64;
        (cpu, kib("VmHWM:").unwrap_or(0))
    }

    fn rss_now(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Stops the probe, prints its warnings and returns its final counters (the "final
    /// counters" log line).
    fn stop(mut self) -> Value {
        // SAFETY: kill with our child's pid.
        unsafe { libc::kill(i32::try_from(self.child.id()).expect("pid"), libc::SIGTERM) };
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log.lock().expect("log").clone();
            if let Some(json) = log.lines().find_map(|l| l.split_once("stats=").map(|(_, j)| j.trim().to_owned())) {
                // Its warnings (sockets gone without a close event, among others) name what went wrong.
                for warning in log.lines().filter(|l| l.contains(" WARN ")) {
                    eprintln!("probe: {warning}");
                }
                return serde_json::from_str(&json).unwrap_or_else(|e| {
                    eprintln!("pl-bench: the probe's final counters do not parse ({e}): {json}");
                    std::process::exit(1)
                });
            }
            if Instant::now() > deadline {
                eprintln!("pl-bench: the probe printed no final counters; its log:\n{log}");
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How long the held flows stay before the probe's RSS is read again.
const SETTLE: Duration = Duration::from_secs(15);

/// Waits for `want` records of ended flows to `ports` and returns how many came; the
/// count of those ports then starts again from zero, since a later storm's server may
/// get the same port.
fn wait_records(seen: &Mutex<Collected>, ports: &[u64], want: u64, patience: Duration) -> u64 {
    let got = wait_counted(seen, |c, p| c.closed_by_port.get(&p).copied().unwrap_or(0), ports, want, patience);
    let mut seen = seen.lock().expect("state");
    for port in ports {
        seen.closed_by_port.remove(port);
    }
    got
}

/// Waits until `count` summed over `ports` reaches `want`, or `patience` runs out;
/// returns the sum.
fn wait_counted(
    seen: &Mutex<Collected>,
    count: impl Fn(&Collected, u64) -> u64,
    ports: &[u64],
    want: u64,
    patience: Duration,
) -> u64 {
    let deadline = Instant::now() + patience;
    loop {
        let got = {
            let seen = seen.lock().expect("state");
            ports.iter().map(|&p| count(&seen, p)).sum()
        };
        if got >= want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Opens `count` loopback connections with `pl-load hold`, in as many processes as
/// the descriptor limit needs (each holds both ends of its connections), and
/// returns them with their servers' ports once all are connected.
fn hold_connections(count: u64) -> (Vec<std::process::Child>, Vec<u64>) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) };
    // pl-load raises its soft limit to the hard one; two descriptors per connection.
    let per_process = (limit.rlim_max.saturating_sub(256) / 2).clamp(1, count.max(1));
    let (mut children, mut ports) = (Vec::new(), Vec::new());
    let mut left = count;
    while left > 0 {
        let n = left.min(per_process);
        left -= n;
        let mut hold = Command::new(sibling("pl-load"))
            .args(["hold", "--connections", &n.to_string(), "--seconds", "60"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("pl-load hold");
        let mut first = String::new();
        BufReader::new(hold.stdout.take().expect("piped")).read_line(&mut first).expect("hold reports");
        let report = serde_json::from_str::<Value>(&first).unwrap_or_default();
        let held = report["held"].as_u64().unwrap_or(0);
        if held < n {
            eprintln!("pl-load hold: {held} of {n} connections held ({first})");
        }
        ports.push(report["port"].as_u64().unwrap_or(0));
        children.push(hold);
    }
    (children, ports)
}

/// The kernel's count of TCP sockets in `TIME_WAIT` (`/proc/net/sockstat`).
fn time_wait_sockets() -> u64 {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let tcp = sockstat.lines().find_map(|l| l.strip_prefix("TCP:")).unwrap_or("");
    let fields: Vec<&str> = tcp.split_whitespace().collect();
    fields.windows(2).find(|w| w[0] == "tw").and_then(|w| w[1].parse().ok()).unwrap_or(0)
}

/// Waits (up to the 60 s `TIME_WAIT` lasts) until earlier storms' `TIME_WAIT` sockets
/// are gone: the kernel's search for a free ephemeral port slows down with every
/// port they hold, so each storm starts from the same state.
fn quiet_ports() {
    const FEW: u64 = 1000;
    let deadline = Instant::now() + Duration::from_secs(65);
    let waiting = time_wait_sockets();
    if waiting > FEW {
        eprintln!("waiting for {waiting} TIME_WAIT sockets of earlier storms to expire");
    }
    while time_wait_sockets() > FEW && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Connection tracking, when a firewall rule uses it (Docker's NAT rules do), tracks
/// every loopback connection of the storms and drops packets once its table is full:
/// connects then stall for seconds. (entries, table size) when the module is loaded.
fn conntrack_state() -> Option<(u64, u64)> {
    let read = |name| std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}")).ok()?.trim().parse().ok();
    Some((read("nf_conntrack_count")?, read("nf_conntrack_max")?))
}

/// Exec of `packetless watch` to its first printed event (a loopback connection
/// made every few milliseconds meanwhile).
fn startup() -> Duration {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || while listener.accept().is_ok() {});
    let start = Instant::now();
    let mut child = Command::new(sibling("packetless"))
        .args(["watch", "--json", "-t", "-o", "--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("packetless runs");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&format!("\"remote_port\":{port}")) {
                let _ = tx.send(());
                break;
            }
        }
    });
    let elapsed = loop {
        let _ = std::net::TcpStream::connect(("127.0.0.1", port));
        if rx.recv_timeout(Duration::from_millis(2)).is_ok() {
            break start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "watch printed nothing");
    };
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

/// Memory over a long storm: the probe exports while storms of 100,000 connections
/// follow each other for `soak_minutes`; its RSS is printed after each storm, then
/// the records and final counters.
fn soak(o: &Options, probe_args: &[&str], seen: &Mutex<Collected>) {
    let probe = Probe::start(probe_args);
    let deadline = Instant::now() + Duration::from_secs(o.soak_minutes * 60);
    let started = Instant::now();
    let (mut made, mut failed, mut received) = (0u64, 0u64, 0u64);
    println!("| minutes | connections | probe RSS (MiB) |");
    println!("|---|---|---|");
    while Instant::now() < deadline {
        let report = &load(&["tcp-storm", "--connections", "100000", "--threads", &o.threads.to_string()])[0];
        // Connects the client could not even start (no free local port while earlier
        // ones sit in TIME_WAIT) make no socket and so no flow.
        let errors = report["errors"].as_u64().unwrap_or(0);
        let connected = report["count"].as_u64().unwrap_or(0).saturating_sub(errors);
        made += connected;
        failed += errors;
        received += wait_records(seen, &[report["port"].as_u64().unwrap_or(0)], connected, Duration::from_secs(60));
        println!("| {:.1} | {made} | {} |", started.elapsed().as_secs_f64() / 60.0, probe.rss_now() / 1024);
    }
    let finals = probe.stop();
    let soak = json!({ "connections": made, "connect_errors": failed, "flow_records": received, "final": finals });
    println!("{}", json!({ "soak": soak }));
}

#[allow(clippy::too_many_lines, reason = "one benchmark script, read top to bottom")]
fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pl-bench: {e}");
            std::process::exit(2);
        }
    };
    let per_round = (o.connections / u64::from(o.rounds.max(1))).max(1);
    let threads = o.threads.to_string();
    let zmq_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Collected::default()));
    let collector = collector(zmq_port, Arc::clone(&stop), Arc::clone(&seen));
    let zmq = format!("tcp://127.0.0.1:{zmq_port}c");
    let probe_args = ["run", "--zmq", &zmq, "--output", "none", "--log-level", "info", "--no-docker"];

    if o.soak_minutes > 0 {
        soak(&o, &probe_args, &seen);
        stop.store(true, Ordering::Relaxed);
        let _ = collector.join();
        return;
    }

    if let Some((count, max)) = conntrack_state().filter(|(count, _)| *count > 0) {
        eprintln!(
            "warning: connection tracking is loaded ({count} of {max} entries): storms also measure it, and \
             stall when its table fills (see docs/BENCHMARKS.md)"
        );
    }
    let startup = startup();
    eprintln!("startup: {startup:?}");

    let (mut without, mut with) = (Vec::new(), Vec::new());
    let (mut cpu, mut peak_rss, mut made, mut received) = (0.0, 0u64, 0u64, 0u64);
    let mut finals = Vec::new();
    for round in 0..o.rounds {
        quiet_ports();
        let base = &load(&["tcp-storm", "--connections", &per_round.to_string(), "--threads", &threads])[0];
        without.push(base["rate"].as_f64().unwrap_or(0.0));
        quiet_ports();
        let probe = Probe::start(&probe_args);
        let (cpu_before, _) = probe.usage();
        let report = &load(&["tcp-storm", "--connections", &per_round.to_string(), "--threads", &threads])[0];
        let port = report["port"].as_u64().unwrap_or(0);
        with.push(report["rate"].as_f64().unwrap_or(0.0));
        let got = wait_records(&seen, &[port], per_round, Duration::from_secs(60));
        let (cpu_after, rss) = probe.usage();
        cpu += cpu_after - cpu_before;
        peak_rss = peak_rss.max(rss);
        made += per_round;
        received += got;
        finals.push(probe.stop());
        eprintln!(
            "round {round}: without {:.0}/s, with {:.0}/s, records {got}/{per_round}",
            without[round as usize], with[round as usize]
        );
    }

    // Memory with many live flows.
    let probe = Probe::start(&[
        "run",
        "--zmq",
        &zmq,
        "--output",
        "none",
        "--log-level",
        "info",
        "--no-docker",
        "--pair-window",
        "200ms",
    ]);
    let idle_rss = probe.rss_now();
    // Counts restart: a hold server may reuse the port of an earlier storm's.
    seen.lock().expect("state").open_by_port.clear();
    let (holds, hold_ports) = hold_connections(o.hold);
    let open_flows = |c: &Collected, p| c.open_by_port.get(&p).map_or(0, |s| s.len() as u64);
    let opened = wait_counted(&seen, open_flows, &hold_ports, o.hold, Duration::from_secs(60));
    let burst_rss = probe.rss_now();
    // The probe hands back the heap the opening burst left free at its next trim
    // (at most 10 s apart); the flows themselves stay.
    std::thread::sleep(SETTLE);
    let live_rss = probe.rss_now();
    for mut hold in holds {
        let _ = hold.kill();
        let _ = hold.wait();
    }
    let hold_final = probe.stop();
    stop.store(true, Ordering::Relaxed);
    let _ = collector.join();

    // Rounds alternate, so each pair ran under the same machine conditions: the
    // ratio is the median of the pairs' ratios, the rates are the rounds' means.
    let mut ratios: Vec<f64> = with.iter().zip(&without).map(|(w, b)| w / b).collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = f64::midpoint(ratios[(ratios.len() - 1) / 2], ratios[ratios.len() / 2]);
    #[allow(clippy::cast_precision_loss, reason = "a handful of rounds")]
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (base, probed) = (mean(&without), mean(&with));
    #[allow(clippy::cast_precision_loss, reason = "connection counts far below 2^53")]
    let us_per_connection = cpu / made as f64 * 1e6;
    let sum = |key: &str| -> u64 { finals.iter().map(|f| f.pointer(key).and_then(Value::as_u64).unwrap_or(0)).sum() };
    let kernel_misses: u64 = [
        "ringbuf_full",
        "storage_fail",
        "accept_map_full",
        "accept_read_fail",
        "udp_peer_map_full",
        "recursion_misses",
    ]
    .iter()
    .map(|k| sum(&format!("/kernel/{k}")))
    .sum();
    let covered = sum("/kernel/recursion_misses_covered");
    let summary = json!({
        "machine": { "cpus": std::thread::available_parallelism().map_or(0, std::num::NonZero::get) },
        "startup_ms": startup.as_secs_f64() * 1000.0,
        "storm": {
            "connections_per_round": per_round, "rounds": o.rounds, "threads": o.threads,
            "rate_without": base, "rate_with": probed, "ratio": ratio, "round_ratios": ratios,
            "probe_cpu_seconds": cpu, "cpu_us_per_connection": us_per_connection,
            "peak_rss_kib": peak_rss,
            "connections": made, "flow_records": received,
            "kernel_misses": kernel_misses, "recursion_misses_covered": covered,
            "channel_full": sum("/channel_full"),
            "output_dropped": sum("/output_dropped"),
            "zmq_dropped": sum("/zmq/dropped_queue_full") + sum("/zmq/dropped_no_collector"),
        },
        "live_flows": { "held": o.hold, "open_records": opened, "rss_idle_kib": idle_rss, "rss_kib": live_rss,
                        "rss_after_opening_kib": burst_rss,
                        "final": hold_final },
    });
    println!("| measure | result |");
    println!("|---|---|");
    println!("| exec to first event | {:.0} ms |", startup.as_secs_f64() * 1000.0);
    println!("| storm, connections/s without probe (mean of {} rounds) | {base:.0} |", o.rounds);
    println!("| storm, connections/s with probe (mean) | {probed:.0} |");
    println!("| throughput ratio with/without (median of paired rounds) | {ratio:.3} |");
    println!("| probe CPU per connection | {us_per_connection:.2} us ({cpu:.2} s for {made}) |");
    println!("| probe peak RSS during storms | {} MiB |", peak_rss / 1024);
    println!("| closed-flow records received / connections made | {received} / {made} |");
    println!(
        "| kernel-side misses (skipped tracepoint runs covered by sockops), channel drops, export drops | \
         {kernel_misses} ({covered}), {}, {} |",
        sum("/channel_full"),
        sum("/zmq/dropped_queue_full") + sum("/zmq/dropped_no_collector")
    );
    println!(
        "| RSS with {opened} live flows (idle: {} MiB; as the last opened: {} MiB) | {} MiB |",
        idle_rss / 1024,
        burst_rss / 1024,
        live_rss / 1024
    );
    println!("{summary}");
    if let Some((count, max)) = conntrack_state() {
        if count >= max {
            eprintln!(
                "warning: the connection tracking table is full ({count}): stalled connects distort these results"
            );
        }
    }
}
