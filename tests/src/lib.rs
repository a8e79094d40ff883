//! Harness of packetless's end-to-end tests: a tracer on the real kernel, peer
//! processes (`pl-peer`), and throw-away network namespaces joined by veth pairs.
//!
//! Kernel tests need root. Without it they skip with a message, except when
//! `CI=true`, where they fail: CI must prove the probe on a real kernel.
// A harness fails tests by panicking, with a message saying what went wrong; that is
// its documented behaviour, not a hazard worth a section per function.
#![allow(clippy::missing_panics_doc)]

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub mod docker;
mod probe;
pub use probe::{free_port, LineProcess, ProbeProcess};
#[cfg(feature = "tracer")]
mod tracer;
#[cfg(feature = "tracer")]
pub use tracer::{loader_config, Events};

/// How long a test waits for an event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether kernel tests can run here. Fails the test under CI when they cannot.
#[must_use]
pub fn kernel_tests_enabled(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    assert!(!in_ci(), "{test}: CI=true but not running as root: kernel tests cannot run");
    eprintln!("skipping {test}: kernel tests need root (eBPF, network namespaces)");
    false
}

/// Path of the `pl-peer` binary. Cargo builds a package's binaries before running its
/// integration tests, into the directory above the test executable's `deps/`.
#[must_use]
pub fn peer_exe() -> std::path::PathBuf {
    let test_exe = std::env::current_exe().expect("current_exe");
    let dir = test_exe.parent().and_then(std::path::Path::parent).expect("target/<profile>/deps/..");
    let exe = dir.join("pl-peer");
    assert!(exe.is_file(), "{} is missing: run the tests with cargo test -p packetless-tests", exe.display());
    exe
}

/// A `pl-peer` process that printed its `READY <port> <pid>` line.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Port the peer reported (bound, or local port of its connection).
    pub port: u16,
    /// Its pid as it sees itself (equals the host pid: tests never use pid namespaces).
    pub pid: u32,
    args: String,
}

impl Peer {
    /// Starts `pl-peer ARGS`, inside network namespace `netns` when given, and waits
    /// for its READY line.
    #[must_use]
    pub fn spawn(netns: Option<&Netns>, args: &[&str]) -> Self {
        let exe = peer_exe();
        let exe = exe.to_str().expect("UTF-8 target path");
        let cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name, exe]);
                c
            }
            None => Command::new(exe),
        };
        Self::start(cmd, args)
    }

    /// As [`Peer::spawn`], but the child first listens on a TCP port of 127.0.0.1
    /// between fork and exec, while it still runs the test's program: one process,
    /// two programs, each with a listening socket.
    #[must_use]
    pub fn spawn_after_listening_in_the_fork(args: &[&str]) -> Self {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(peer_exe());
        let family = libc::sa_family_t::try_from(libc::AF_INET).expect("AF_INET fits sa_family_t");
        let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>()).expect("small struct");
        // SAFETY: only async-signal-safe system calls run in the forked child; the
        // socket is left open (and closed by exec: SOCK_CLOEXEC).
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                let addr = libc::sockaddr_in {
                    sin_family: family,
                    sin_port: 0,
                    sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
                    sin_zero: [0; 8],
                };
                if fd < 0 || libc::bind(fd, std::ptr::from_ref(&addr).cast(), len) != 0 || libc::listen(fd, 1) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self::start(cmd, args)
    }

    fn start(mut cmd: Command, args: &[&str]) -> Self {
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning pl-peer {args:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("reading READY line");
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some("READY"), "pl-peer {args:?} did not get ready (printed {line:?})");
        let port = parts.next().and_then(|p| p.parse().ok()).expect("port in READY line");
        let pid = parts.next().and_then(|p| p.parse().ok()).expect("pid in READY line");
        let stdin = child.stdin.take();
        Self { child, stdin, port, pid, args: args.join(" ") }
    }

    /// Lets a `tcp-hold` peer close its connection.
    pub fn release(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            use std::io::Write;
            // The peer may have exited already; its exit status says whether that is wrong.
            let _ = writeln!(stdin, "go");
        }
    }

    /// Waits for the peer to exit, asserting success.
    pub fn finish(mut self) {
        self.release();
        let status = self.child.wait().expect("waiting for pl-peer");
        assert!(status.success(), "pl-peer {} failed: {status}", self.args);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a command, panicking with its output when it fails.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

static NEXT_NETNS: AtomicU32 = AtomicU32::new(0);

/// A network namespace joined to the test's namespace by a veth pair.
///
/// Addresses come from 198.51.100.0/24 (TEST-NET-2), one /30 per namespace:
/// `host_ip` on the test's side, `ns_ip` inside. Removed on drop.
pub struct Netns {
    /// Name, as `ip netns` knows it.
    pub name: String,
    /// Inode of the namespace.
    pub inode: u32,
    /// Address of the test's end of the veth pair.
    pub host_ip: Ipv4Addr,
    /// Address of the namespace's end.
    pub ns_ip: Ipv4Addr,
    host_if: String,
}

impl Netns {
    /// Creates the namespace, the veth pair and the addresses, and brings them up.
    #[must_use]
    pub fn new() -> Self {
        let n = NEXT_NETNS.fetch_add(1, Ordering::Relaxed);
        assert!(n < 63, "too many test namespaces");
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let name = format!("plt{tag}");
        let host_if = format!("plh{tag}");
        let ns_if = format!("pln{tag}");
        let base = u8::try_from(n * 4).expect("n < 63");
        let host_ip = Ipv4Addr::new(198, 51, 100, base + 1);
        let ns_ip = Ipv4Addr::new(198, 51, 100, base + 2);
        // Leftovers of an interrupted earlier run with the same names.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        run("ip", &["netns", "add", &name]);
        let mut ns = Self { inode: 0, name, host_ip, ns_ip, host_if };
        run("ip", &["link", "add", &ns.host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns.name]);
        run("ip", &["addr", "add", &format!("{host_ip}/30"), "dev", &ns.host_if]);
        run("ip", &["link", "set", &ns.host_if, "up"]);
        ns.exec(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if]);
        ns.exec(&["ip", "link", "set", &ns_if, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        let inode = std::fs::metadata(format!("/var/run/netns/{}", ns.name)).expect("netns file").ino();
        ns.inode = u32::try_from(inode).expect("inode fits u32");
        ns
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        run("ip", &full);
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Inode of the test process's own network namespace.
#[must_use]
pub fn own_netns() -> u32 {
    u32::try_from(std::fs::metadata("/proc/self/ns/net").expect("/proc/self/ns/net").ino()).expect("inode fits u32")
}

/// A client on the host sending 50,000 bytes to a server in a namespace that, once
/// they are connected, drops everything sent to the server port: the client
/// retransmits until [`LossyExchange::heal_and_finish`].
pub struct LossyExchange {
    ns: Netns,
    /// The server, in the namespace.
    pub server: Peer,
    /// The client, on the host.
    pub client: Peer,
}

impl LossyExchange {
    /// Starts both peers and, once they are connected, the loss.
    #[must_use]
    pub fn start() -> Self {
        let ns = Netns::new();
        let server = Peer::spawn(Some(&ns), &["tcp-server", &format!("{}:0", ns.ns_ip), "100", "50000"]);
        let port = server.port.to_string();
        let mut client = Peer::spawn(None, &["tcp-client", &format!("{}:{port}", ns.ns_ip), "50000", "100", "wait"]);
        // Connected; now the server's namespace drops everything sent to the server port.
        ns.exec(&["nft", "add", "table", "inet", "pltest"]);
        ns.exec(&["nft", "add", "chain", "inet", "pltest", "in", "{ type filter hook input priority 0; }"]);
        ns.exec(&["nft", "add", "rule", "inet", "pltest", "in", "tcp", "dport", &port, "drop"]);
        client.release();
        Self { ns, server, client }
    }

    /// Lets the packets through again and waits for both peers to end well.
    pub fn heal_and_finish(self) {
        self.ns.exec(&["nft", "delete", "table", "inet", "pltest"]);
        self.client.finish();
        self.server.finish();
    }
}
