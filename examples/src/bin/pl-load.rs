//! pl-load: a socket load generator for packetless's benchmarks.
//!
//! ```text
//! pl-load tcp-storm [--connections N] [--threads T] [--payload BYTES] [--ipv6] [--target ADDR]
//! pl-load udp-storm [--requests N] [--threads T] [--payload BYTES] [--ipv6] [--target ADDR]
//! pl-load hold      [--connections N] [--seconds S] [--ipv6]
//! pl-load serve     [--listen ADDR] [--threads T] [--payload BYTES] [--seconds S]
//! ```
//!
//! Without `--target` it serves itself on loopback: a listener with a deep backlog
//! and accept threads, so the client side, not the server, sets the pace. Each run
//! prints one JSON line: what was done, how long it took, the rate, and errors.
//!
//! - `tcp-storm`: connect, optionally write PAYLOAD bytes and read them back, close;
//!   N connections over T threads.
//! - `udp-storm`: one datagram and its echo per request, unconnected sockets.
//! - `hold`: N connections opened and kept for S seconds (live-flow memory), then
//!   closed.
//! - `serve`: the storms' TCP server alone, at ADDR (for example in another network
//!   namespace, as the `--target` of a storm), for S seconds; its address is printed
//!   first.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    mode: String,
    count: u64,
    threads: u64,
    payload: usize,
    ipv6: bool,
    target: Option<SocketAddr>,
    listen: Option<SocketAddr>,
    seconds: u64,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        mode: args.first().cloned().ok_or("missing mode: tcp-storm, udp-storm, hold or serve")?,
        count: 100_000,
        threads: 1,
        payload: 0,
        ipv6: false,
        target: None,
        listen: None,
        seconds: 10,
    };
    let mut it = args.iter().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--connections" | "--requests" => o.count = value()?.parse().map_err(|_| format!("bad {flag}"))?,
            "--threads" => o.threads = value()?.parse().map_err(|_| "bad --threads")?,
            "--payload" => o.payload = value()?.parse().map_err(|_| "bad --payload")?,
            "--seconds" => o.seconds = value()?.parse().map_err(|_| "bad --seconds")?,
            "--target" => o.target = Some(value()?.parse().map_err(|_| "bad --target")?),
            "--listen" => o.listen = Some(value()?.parse().map_err(|_| "bad --listen")?),
            "--ipv6" => o.ipv6 = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(o)
}

fn loopback(ipv6: bool) -> SocketAddr {
    if ipv6 { "[::1]:0" } else { "127.0.0.1:0" }.parse().expect("literal")
}

/// A TCP echo server on loopback with a deep backlog and `threads` acceptors; with
/// `keep`, accepted connections stay open until the process ends.
fn tcp_server(at: SocketAddr, threads: u64, payload: usize, keep: bool) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(at).map_err(|e| format!("bind {at}: {e}"))?;
    // Re-listening raises the backlog from std's 128, so SYNs are never dropped.
    // SAFETY: a valid listening socket fd.
    unsafe { libc::listen(listener.as_raw_fd(), 65_535) };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let listener = Arc::new(listener);
    for _ in 0..threads.max(2) {
        let listener = Arc::clone(&listener);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; payload.max(1)];
            let mut kept = Vec::new();
            while let Ok((mut stream, _)) = listener.accept() {
                if payload > 0 && stream.read_exact(&mut buf).is_ok() {
                    let _ = stream.write_all(&buf);
                }
                if keep {
                    kept.push(stream);
                } else {
                    // Close after the client: TIME_WAIT then stays with the client,
                    // whose next connect may reuse it (loopback). A server in
                    // TIME_WAIT answers a reused 4-tuple's SYN with a stale ACK, and
                    // that connect waits out SYN retransmits for up to a minute.
                    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                }
            }
        });
    }
    Ok(addr)
}

fn udp_server(ipv6: bool) -> Result<SocketAddr, String> {
    let socket = UdpSocket::bind(loopback(ipv6)).map_err(|e| format!("bind: {e}"))?;
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    Ok(addr)
}

/// Runs `work(i)` for i in 0..count over `threads` threads; returns (done, errors).
fn spread(count: u64, threads: u64, work: impl Fn(u64) -> bool + Send + Sync + 'static) -> (u64, u64) {
    let work = Arc::new(work);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (work, next, errors) = (Arc::clone(&work), Arc::clone(&next), Arc::clone(&errors));
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                if !work(i) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    (count, errors.load(Ordering::Relaxed))
}

fn report(mode: &str, target: SocketAddr, done: u64, errors: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^53")]
    let rate = done as f64 / secs;
    // The reader may be gone (a benchmark that took what it needed): not an error.
    let _ = writeln!(
        std::io::stdout(),
        "{{\"mode\":\"{mode}\",\"target\":\"{target}\",\"port\":{},\"count\":{done},\"errors\":{errors},\"seconds\":{secs:.6},\"rate\":{rate:.1}}}",
        target.port()
    );
}

fn run(o: &Options) -> Result<(), String> {
    match o.mode.as_str() {
        "tcp-storm" => {
            let target = match o.target {
                Some(t) => t,
                None => tcp_server(loopback(o.ipv6), o.threads, o.payload, false)?,
            };
            let payload = o.payload;
            let start = Instant::now();
            let (done, errors) = spread(o.count, o.threads, move |_| {
                let Ok(mut s) = TcpStream::connect(target) else { return false };
                if payload > 0 {
                    let buf = vec![b'p'; payload];
                    let mut back = vec![0u8; payload];
                    return s.write_all(&buf).is_ok() && s.read_exact(&mut back).is_ok();
                }
                true
            });
            report(&o.mode, target, done, errors, start.elapsed());
        }
        "udp-storm" => {
            let target = match o.target {
                Some(t) => t,
                None => udp_server(o.ipv6)?,
            };
            let payload = o.payload.max(1);
            let ipv6 = o.ipv6;
            let start = Instant::now();
            let (done, errors) = spread(o.count, o.threads, move |_| {
                let Ok(s) = UdpSocket::bind(loopback(ipv6)) else { return false };
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = vec![0u8; payload];
                s.send_to(&vec![b'u'; payload], target).is_ok() && s.recv_from(&mut buf).is_ok()
            });
            report(&o.mode, target, done, errors, start.elapsed());
        }
        "hold" => {
            let target = match o.target {
                Some(t) => t,
                None => tcp_server(loopback(o.ipv6), 2, 0, true)?,
            };
            let start = Instant::now();
            let mut held = Vec::new();
            let mut errors = 0u64;
            for _ in 0..o.count {
                match TcpStream::connect(target) {
                    Ok(s) => held.push(s),
                    Err(_) => errors += 1,
                }
            }
            println!("{{\"mode\":\"hold\",\"held\":{},\"errors\":{errors},\"port\":{}}}", held.len(), target.port());
            let _ = std::io::stdout().flush();
            let stop = Arc::new(AtomicBool::new(false));
            // Holding connections open for the requested time is the workload itself.
            std::thread::sleep(Duration::from_secs(o.seconds));
            stop.store(true, Ordering::Relaxed);
            drop(held);
            report(&o.mode, target, o.count, errors, start.elapsed());
        }
        "serve" => {
            let at = tcp_server(o.listen.unwrap_or_else(|| loopback(o.ipv6)), o.threads, o.payload, false)?;
            println!("{{\"mode\":\"serve\",\"listen\":\"{at}\"}}");
            let _ = std::io::stdout().flush();
            // Serving for the requested time is the workload itself.
            std::thread::sleep(Duration::from_secs(o.seconds));
        }
        other => return Err(format!("unknown mode {other}")),
    }
    Ok(())
}

/// Room for many sockets (`hold`): as many descriptors as the kernel allows.
fn raise_fd_limit() {
    let max =
        std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1 << 20);
    let limit = libc::rlimit { rlim_cur: max, rlim_max: max };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) } != 0 {
        let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct we own.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut current) };
        let soft = libc::rlimit { rlim_cur: current.rlim_max, rlim_max: current.rlim_max };
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const soft) };
    }
}

fn main() -> ExitCode {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args).and_then(|o| run(&o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pl-load: {e}");
            ExitCode::from(2)
        }
    }
}
