//! app: wires the stages together for each command and runs them until the shutdown
//! signal, which is a parameter so that tests can stop a run.
//!
//! watch: loader -> source (ring buffer reader task) -> bounded channel -> printer
//! (a blocking thread writing to the given output) -> stats at the end.

use std::future::Future;
use std::io::{self, Write};

use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::config::WatchConfig;
use crate::loader::{self, LoadError, Loaded};
use crate::sink::watch::{write_json, write_stats_json, write_stats_text, write_text, WatchStats};
use crate::source::{BootClock, EventSource, SocketEvent};

/// Why a command stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The kernel side could not be started (privileges, kernel features, programs).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The ring buffer could not be polled.
    #[error("reading kernel events: {0}")]
    Source(#[source] io::Error),
    /// The output could not be written.
    #[error("writing output: {0}")]
    Output(#[source] io::Error),
}

impl AppError {
    /// Exit code: 2 for problems of the environment the user must fix, 1 otherwise.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Load(_) => 2,
            Self::Source(_) | Self::Output(_) => 1,
        }
    }
}

/// A running tracer: the kernel side attached and a task forwarding decoded events.
/// Used by `watch` and by tests that want events without a printer.
pub struct Tracer {
    /// Decoded events, in ring-buffer order.
    pub events: mpsc::Receiver<SocketEvent>,
    loaded: Loaded,
    stats: loader::KernelStats,
    counters: std::sync::Arc<crate::source::SourceCounters>,
    stop: watch::Sender<bool>,
    reader: tokio::task::JoinHandle<io::Result<()>>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").field("loaded", &self.loaded).finish_non_exhaustive()
    }
}

impl Tracer {
    /// Loads and attaches the kernel side and starts reading events (inside a tokio
    /// runtime).
    ///
    /// # Errors
    /// [`AppError::Load`] when the kernel side cannot start; [`AppError::Source`] when
    /// the ring buffer cannot be registered with the runtime.
    pub fn start(config: &loader::LoaderConfig, queue: usize) -> Result<Self, AppError> {
        let mut loaded = loader::load(config)?;
        let ring = loaded.take_events()?;
        let stats = loaded.take_stats()?;
        let source = EventSource::new(ring, BootClock::now()).map_err(AppError::Source)?;
        let counters = source.counters();
        let (tx, events) = mpsc::channel(queue);
        let (stop, stop_rx) = watch::channel(false);
        let reader = tokio::spawn(source.run(tx, stop_rx));
        Ok(Self { events, loaded, stats, counters, stop, reader })
    }

    /// Hooks attached, as `kind/name`.
    #[must_use]
    pub fn attached(&self) -> &[String] {
        &self.loaded.attached
    }

    /// Kernel-side counters by name, summed over CPUs.
    #[must_use]
    pub fn kernel_stats(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.stats.read().into_iter().map(|(s, v)| (s.name(), v)).collect()
    }

    /// Tells the reader to drain what the kernel wrote and stop; the event channel
    /// closes once it has.
    pub fn stop(&self) {
        // A closed receiver means the reader is already gone; nothing to tell.
        let _ = self.stop.send(true);
    }

    /// Counts of the source stage: (received, decode errors, channel full).
    #[must_use]
    pub fn source_counts(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.counters.received.load(Relaxed),
            self.counters.decode_errors.load(Relaxed),
            self.counters.channel_full.load(Relaxed),
        )
    }
}

/// `packetless watch`: prints events to `out` until `shutdown` completes, then the
/// stats. Returns the stats.
///
/// # Errors
/// [`AppError`] when the kernel side cannot start or output cannot be written.
pub async fn watch<W>(config: WatchConfig, shutdown: impl Future<Output = ()>, out: W) -> Result<WatchStats, AppError>
where
    W: Write + Send + 'static,
{
    let mut tracer = Tracer::start(&config.loader, config.queue)?;
    info!(hooks = tracer.attached().len(), degraded = tracer.loaded.degraded.len(), "tracing");
    let events = std::mem::replace(&mut tracer.events, mpsc::channel(1).1);
    let filter = config.filter;
    let json = config.json;
    let printer = tokio::task::spawn_blocking(move || print_events(events, out, filter, json));

    shutdown.await;
    info!("stopping: draining events");
    tracer.stop();
    let reader_result = (&mut tracer.reader).await;
    let (mut out, printed) =
        printer.await.map_err(|e| AppError::Output(io::Error::other(e)))?.map_err(AppError::Output)?;
    if let Ok(Err(e)) = reader_result {
        return Err(AppError::Source(e));
    }

    let (received, decode_errors, channel_full) = tracer.source_counts();
    let stats = WatchStats { kernel: tracer.kernel_stats(), received, decode_errors, channel_full, printed };
    if json {
        write_stats_json(&mut out, &stats).and_then(|()| out.flush()).map_err(AppError::Output)?;
    } else {
        let mut err = io::stderr().lock();
        write_stats_text(&mut err, &stats).map_err(AppError::Output)?;
    }
    Ok(stats)
}

/// The printer thread: writes every event that passes the filter, flushing whenever
/// the channel is momentarily empty so lines appear promptly. A closed output (the
/// reader of a pipe went away) ends printing quietly; events keep being consumed.
fn print_events<W: Write>(
    mut events: mpsc::Receiver<SocketEvent>,
    out: W,
    filter: crate::sink::watch::EventFilter,
    json: bool,
) -> io::Result<(io::BufWriter<W>, u64)> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    let mut printed = 0u64;
    let mut closed = false;
    while let Some(ev) = events.blocking_recv() {
        if closed || !filter.accepts(&ev) {
            continue;
        }
        let written = if json { write_json(&mut out, &ev) } else { write_text(&mut out, &ev) };
        let flushed = written.and_then(|()| if events.is_empty() { out.flush() } else { Ok(()) });
        match flushed {
            Ok(()) => printed += 1,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => closed = true,
            Err(e) => return Err(e),
        }
    }
    if !closed {
        out.flush()?;
    }
    Ok((out, printed))
}
