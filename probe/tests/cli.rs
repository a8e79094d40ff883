//! The `packetless` binary as a user runs it: help, argument errors, privilege
//! errors, and `watch` on the real kernel ending cleanly on SIGTERM.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};

use packetless_tests::{kernel_tests_enabled, ProbeProcess};

const EXE: &str = env!("CARGO_BIN_EXE_packetless");

fn run(args: &[&str]) -> Output {
    Command::new(EXE).args(args).output().expect("running packetless")
}

#[test]
fn help_documents_the_watch_filters_and_json() {
    let out = run(&["watch", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["-t, --tcp", "-u, --udp", "-i, --in", "-o, --out", "-r, --retr", "-c, --tcpclose", "--json", "--netns"]
    {
        assert!(help.contains(flag), "watch --help lacks {flag}:\n{help}");
    }
}

#[test]
fn a_bad_value_exits_2_naming_the_flag() {
    let out = run(&["watch", "--ring-buffer-size", "3M"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--ring-buffer-size 3M: must be a power of two"), "{err}");

    let out = run(&["watch", "--netns", "no-such-ns-anywhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("--netns no-such-ns-anywhere"));
}

#[test]
fn missing_capabilities_are_named_and_exit_2() {
    // As root, drop every capability for the child (bounding set and inheritable);
    // as a normal user the child has none anyway.
    // SAFETY: geteuid has no preconditions.
    let out = if unsafe { libc::geteuid() } == 0 {
        Command::new("setpriv")
            .args(["--bounding-set=-all", "--inh-caps=-all", "--", EXE, "watch"])
            .output()
            .expect("setpriv (util-linux) runs")
    } else {
        run(&["watch"])
    };
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("insufficient privileges: missing CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN"), "{err}");
    assert!(err.contains("Run packetless as root"), "the message says how to fix it: {err}");
}

/// A connection from this process to itself over loopback; returns the client port.
fn loopback_connection() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let port = client.local_addr().unwrap().port();
    drop(listener.accept().unwrap());
    drop(client);
    port
}

#[test]
fn watch_json_prints_events_and_a_stats_line_on_sigterm() {
    if !kernel_tests_enabled("watch --json") {
        return;
    }
    let mut watch = ProbeProcess::start(EXE, &["watch", "--json"]);
    let port = loopback_connection();
    let pid = std::process::id();
    let line = watch.line_where("our connect", |l| {
        l.contains("\"event\":\"connect\"") && l.contains(&format!("\"local_port\":{port},"))
    });
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["pid"], pid);
    assert_eq!(v["proto"], "tcp");
    assert_eq!(v["ip_version"], 4);
    assert_eq!(v["remote_ip"], "127.0.0.1");
    for key in ["tid", "comm", "uid", "gid", "cgroup_id", "netns", "cookie", "ts", "latency_us"] {
        assert!(v.get(key).is_some(), "connect line lacks {key}: {line}");
    }
    let code = watch.terminate();
    assert_eq!(code, Some(0), "SIGTERM is a clean exit");
    let last = watch.seen.last().expect("a stats line after SIGTERM");
    let stats: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(stats["event"], "stats");
    assert_eq!(stats["kernel"]["ringbuf_full"], 0);
    assert!(stats["kernel"]["recursion_misses"].is_u64(), "the kernel's skipped runs are reported: {last}");
    assert!(stats["kernel"]["recursion_misses_covered"].is_u64(), "and those sockops covered: {last}");
    assert!(stats["received"].as_u64().unwrap() >= 1);
}

#[test]
fn watch_text_with_filters_shows_only_the_chosen_kinds() {
    if !kernel_tests_enabled("watch -t -o") {
        return;
    }
    let mut watch = ProbeProcess::start(EXE, &["watch", "-t", "-o"]);
    let port = loopback_connection();
    let pid = std::process::id();
    let line = watch.line_where("our connect", |l| l.contains(&format!("127.0.0.1:{port} -> ")));
    assert!(line.contains("[connect][IPv4/TCP]"), "{line}");
    assert!(line.contains(&format!("[pid/tid: {pid}/")), "{line}");
    assert!(line.contains("[latency: "), "{line}");
    assert_eq!(watch.terminate(), Some(0));
    for l in &watch.seen {
        assert!(l.contains("[connect]") || l.contains("[connect_failed]"), "-o -t shows only outgoing TCP events: {l}");
    }
}

/// SIGTERM while the kernel side is still loading is not lost and does not kill the
/// probe half-started: it stops cleanly as soon as it traces, with its stats line.
#[test]
fn sigterm_during_start_up_is_not_lost_and_stops_cleanly() {
    use std::io::Read;
    if !kernel_tests_enabled("SIGTERM during start-up") {
        return;
    }
    let mut child = Command::new(EXE)
        .args(["watch", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running packetless");
    // The first hook attached: the kernel side is half loaded.
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = std::io::BufRead::lines(stderr);
    assert!(lines.any(|l| l.is_ok_and(|l| l.contains("attached"))), "the probe logs its hooks as it attaches them");
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill with the pid of our own, not yet reaped, child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::spawn(move || lines.for_each(drop));
    let status = child.wait().expect("waiting for packetless");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(status.code(), Some(0), "a clean exit: {out}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().expect("a stats line")).unwrap();
    assert_eq!(last["event"], "stats");
}
