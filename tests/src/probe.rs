//! Processes the tests talk to through their output: `packetless` as users run it,
//! and the Python stand-in for ntopng's collector. stdout lines are collected,
//! stderr is echoed, and the process is stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use crate::EVENT_TIMEOUT;

/// Where a process says it is ready.
#[derive(Clone, Copy, Debug)]
enum Ready {
    /// A stderr line containing this.
    Stderr(&'static str),
    /// A first stdout line starting with this.
    Stdout(&'static str),
}

/// A running process with its stdout lines delivered through a channel.
pub struct LineProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines read so far (by [`LineProcess::line_where`] and [`LineProcess::terminate`]).
    pub seen: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    label: String,
}

/// `packetless` as users run it (ready once it logs that it is tracing).
pub type ProbeProcess = LineProcess;

impl LineProcess {
    /// Starts `exe ARGS` (the `packetless` binary) and waits until it logs that it is
    /// tracing.
    #[must_use]
    pub fn start(exe: impl AsRef<Path>, args: &[&str]) -> Self {
        let mut cmd = Command::new(exe.as_ref());
        cmd.args(args);
        Self::start_command(cmd)
    }

    /// Starts the probe as `cmd` says (a wrapper such as `setpriv` in front of it)
    /// and waits until it traces.
    #[must_use]
    pub fn start_command(cmd: Command) -> Self {
        Self::spawn(cmd, "packetless", Ready::Stderr(" tracing "))
    }

    /// Starts the Python collector (`tests/py/zmq_collector.py`, on Debian's python3
    /// and python3-zmq) with `args`, and waits for its READY line.
    #[must_use]
    pub fn collector(args: &[&str]) -> Self {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/py/zmq_collector.py")).args(args);
        Self::spawn(cmd, "collector", Ready::Stdout("READY"))
    }

    fn spawn(mut cmd: Command, label: &str, ready: Ready) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {label} ({cmd:?}): {e}"));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let tag = label.to_owned();
        let stderr_ready = ready_tx.clone();
        let stderr_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = std::sync::Arc::clone(&stderr_lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                keep.lock().expect("stderr lines").push(line.clone());
                if let Ready::Stderr(pattern) = ready {
                    if line.contains(pattern) || line.ends_with(pattern.trim_end()) {
                        let _ = stderr_ready.send(());
                    }
                }
            }
        });
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ready::Stdout(pattern) = ready {
                    if line.starts_with(pattern) {
                        let _ = ready_tx.send(());
                        continue;
                    }
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ready_rx.recv_timeout(EVENT_TIMEOUT).unwrap_or_else(|_| panic!("{label} ({cmd:?}) did not get ready"));
        Self { child, lines, seen: Vec::new(), stderr: stderr_lines, label: label.to_owned() }
    }

    /// The first line, among those seen and those to come, satisfying `pred`;
    /// panics after [`EVENT_TIMEOUT`] naming `what`.
    pub fn line_where(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|l| pred(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("{}: no line with {what} ({e}); lines so far:\n{}", self.label, self.seen.join("\n")),
            }
        }
    }

    /// Sends SIGTERM, waits for the exit, and returns the exit code; every line the
    /// process printed is then in [`LineProcess::seen`].
    pub fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill with the pid of our own, not yet reaped, child.
        unsafe { libc::kill(i32::try_from(self.child.id()).expect("pid fits i32"), libc::SIGTERM) };
        let status = self.child.wait().expect("waiting for the process");
        // The reader thread ends at EOF, closing the channel.
        self.seen.extend(self.lines.iter());
        status.code()
    }

    /// Everything the process wrote to stderr so far (complete after
    /// [`LineProcess::terminate`] once its reader thread caught up).
    #[must_use]
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lines").join("\n")
    }

    /// Waits (with a deadline) until `needle` appears `times` times in stderr.
    pub fn wait_for_stderr(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        while self.stderr().matches(needle).count() < times {
            assert!(Instant::now() < deadline, "{} never logged {needle:?} {times} time(s)", self.label);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills the process at once (a collector that crashes).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LineProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback TCP port nobody listens on right now.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}
