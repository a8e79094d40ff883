//! A `packetless` process as users run it: started with arguments, its stdout lines
//! collected, its stderr echoed, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use crate::EVENT_TIMEOUT;

/// A running `packetless` with its stdout lines delivered through a channel.
pub struct ProbeProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines read so far (by [`ProbeProcess::line_where`] and friends).
    pub seen: Vec<String>,
}

impl ProbeProcess {
    /// Starts `exe ARGS` and waits until it logs that it is tracing.
    #[must_use]
    pub fn start(exe: impl AsRef<Path>, args: &[&str]) -> Self {
        let mut child = Command::new(exe.as_ref())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning packetless {args:?}: {e}"));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[packetless] {line}");
                if line.contains(" tracing ") || line.ends_with(" tracing") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ready_rx.recv_timeout(EVENT_TIMEOUT).unwrap_or_else(|_| panic!("packetless {args:?} did not start tracing"));
        Self { child, lines, seen: Vec::new() }
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
                Err(e) => panic!("no line with {what} ({e}); lines so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Sends SIGTERM, waits for the exit, and returns the exit code; every line the
    /// process printed is then in [`ProbeProcess::seen`].
    pub fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill with the pid of our own, not yet reaped, child.
        unsafe { libc::kill(i32::try_from(self.child.id()).expect("pid fits i32"), libc::SIGTERM) };
        let status = self.child.wait().expect("waiting for packetless");
        // The reader thread ends at EOF, closing the channel.
        self.seen.extend(self.lines.iter());
        status.code()
    }
}

impl Drop for ProbeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
