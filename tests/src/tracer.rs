//! The in-process tracer of the kernel tests: the real eBPF programs, events
//! collected with deadlines.

use std::time::{Duration, Instant};

use packetless::app::Tracer;
use packetless::config::TraceConfig;
use packetless::loader::{LoaderConfig, TcpHooks};
use packetless::source::SocketEvent;

use crate::EVENT_TIMEOUT;

/// The default loader settings of a test: every namespace, UDP on, a large ring.
#[must_use]
pub fn loader_config() -> LoaderConfig {
    LoaderConfig {
        netns: Vec::new(),
        udp: true,
        ring_buffer_bytes: 64 << 20,
        tcp_hooks: TcpHooks::Auto,
        snapshots: true,
        hold_opens: Some(Duration::from_millis(250)),
    }
}

/// A tracer on the real kernel plus every event it delivered so far.
pub struct Events {
    tracer: Tracer,
    /// Every event received, in order.
    pub seen: Vec<SocketEvent>,
}

impl Events {
    /// Starts tracing with `config`; panics with the loader's message on failure
    /// (the caller checked [`kernel_tests_enabled`]).
    #[must_use]
    pub fn start(config: &LoaderConfig) -> Self {
        let trace = TraceConfig { loader: config.clone(), queue: 1 << 20 };
        let tracer = Tracer::start(&trace).unwrap_or_else(|e| panic!("eBPF tracer failed to start: {e}"));
        Self { tracer, seen: Vec::new() }
    }

    /// Waits until `count` events match `pred` (counting those already seen), or
    /// panics after [`EVENT_TIMEOUT`] naming `what` and showing the near misses.
    pub async fn wait_n(&mut self, what: &str, count: usize, pred: impl Fn(&SocketEvent) -> bool) -> Vec<SocketEvent> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let matched: Vec<SocketEvent> = self.seen.iter().filter(|e| pred(e)).cloned().collect();
            if matched.len() >= count {
                return matched;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.tracer.events.recv()).await {
                Ok(Some(batch)) => self.seen.extend(batch),
                Ok(None) => panic!("event stream ended while waiting for {what}"),
                Err(tokio::time::error::Elapsed { .. }) => panic!(
                    "timed out waiting for {count} x {what}: matched {} of {} events; last events:\n{:#?}",
                    matched.len(),
                    self.seen.len(),
                    &self.seen[self.seen.len().saturating_sub(8)..]
                ),
            }
        }
    }

    /// Waits for one event matching `pred` and returns it.
    pub async fn wait_one(&mut self, what: &str, pred: impl Fn(&SocketEvent) -> bool) -> SocketEvent {
        self.wait_n(what, 1, pred).await.swap_remove(0)
    }

    /// Receives for `quiet` more, to catch duplicates that would arrive late.
    pub async fn settle(&mut self, quiet: Duration) {
        let until = Instant::now() + quiet;
        while let Ok(Some(ev)) =
            tokio::time::timeout(until.saturating_duration_since(Instant::now()), self.tracer.events.recv()).await
        {
            self.seen.extend(ev);
        }
    }

    /// Kernel-side loss counters by name.
    #[must_use]
    pub fn kernel_stats(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.tracer.kernel_stats()
    }

    /// Hooks attached, as `kind/name`.
    #[must_use]
    pub fn attached(&self) -> &[String] {
        self.tracer.attached()
    }

    /// One run of the live-socket check: cookies of the TCP sockets the kernel has.
    #[must_use]
    pub fn live_tcp(&self) -> Option<rustc_hash::FxHashSet<u64>> {
        let mut cookies = rustc_hash::FxHashSet::default();
        self.tracer
            .live_tcp(|cookie| {
                cookies.insert(cookie);
            })
            .then_some(cookies)
    }

    /// Source-stage counts: (received, decode errors, channel full).
    #[must_use]
    pub fn source_counts(&self) -> (u64, u64, u64) {
        self.tracer.source_counts()
    }
}
