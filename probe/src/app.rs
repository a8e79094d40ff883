//! app: wires the stages together for each command and runs them until the shutdown
//! signal, which is a parameter so that tests can stop a run.
//!
//! run:   loader -> source (ring buffer reader task) -> channel -> flow table (this
//!        task: events, ticks, inventory) -> record batches -> writer thread -> stats.
//! watch: loader -> source -> channel -> printer thread -> stats.

use std::future::Future;
use std::io::{self, Write};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::classify::interface_addrs;
use crate::config::{RunConfig, TraceConfig, WatchConfig};
use crate::flow::{id, FlowTable, Record};
use crate::loader::{self, LoadError, Loaded};
use crate::sink::json::{write_record, write_run_stats, RunStats};
use crate::sink::stats::PipelineStats;
use crate::sink::watch::{write_json, write_stats_json, write_stats_text, write_text, WatchStats};
use crate::source::clock::boot_ns_now;
use crate::source::{BootClock, EventSource, SocketEvent};
use packetless_ebpf::abi::RawEvent;

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
/// Used by the commands and by tests that want events without a sink.
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
    pub fn start(config: &TraceConfig) -> Result<Self, AppError> {
        let mut loaded = loader::load(&config.loader)?;
        let ring = loaded.take_events()?;
        let stats = loaded.take_stats()?;
        let source = EventSource::new(ring, BootClock::now()).map_err(AppError::Source)?;
        let counters = source.counters();
        let (tx, events) = mpsc::channel(config.queue);
        let (stop, stop_rx) = watch::channel(false);
        let reader = tokio::spawn(source.run(tx, stop_rx));
        info!(hooks = loaded.attached.len(), degraded = loaded.degraded.len(), tcp = loaded.tcp_rung.name(), "tracing");
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

    /// Kernel and source counters, for the final stats line.
    #[must_use]
    pub fn pipeline_stats(&self) -> PipelineStats {
        let (received, decode_errors, channel_full) = self.source_counts();
        PipelineStats { kernel: self.kernel_stats(), received, decode_errors, channel_full }
    }

    /// Runs the socket iterator and returns one snapshot event per open socket
    /// (the first descriptor found for each). Empty when the iterator is unavailable;
    /// a failed run is logged and also gives nothing.
    pub fn snapshot(&mut self) -> Vec<SocketEvent> {
        let bytes = match self.loaded.snapshot() {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Vec::new(),
            Err(error) => {
                warn!(%error, "socket snapshot failed");
                return Vec::new();
            }
        };
        let clock = BootClock::now();
        let mut seen = std::collections::HashSet::new();
        let mut events = Vec::new();
        for record in bytes.chunks(RawEvent::SIZE) {
            match SocketEvent::decode(record, &clock) {
                Ok(ev) => {
                    if seen.insert(ev.cookie) {
                        events.push(ev);
                    }
                }
                Err(error) => {
                    let n = self.counters.decode_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        warn!(%error, total = n, "undecodable snapshot record");
                    }
                }
            }
        }
        events
    }

    /// Stops the reader and waits for it; the event channel then holds what was left.
    async fn finish_reader(&mut self) -> Result<(), AppError> {
        self.stop();
        match (&mut self.reader).await {
            Ok(Err(e)) => Err(AppError::Source(e)),
            _ => Ok(()),
        }
    }
}

/// How often the flow table looks for records that are due.
const TICK: Duration = Duration::from_millis(250);
/// Batches of records between the flow stage and the writer thread.
const OUTPUT_BATCHES: usize = 4096;

/// `packetless run`: flow records as JSON lines on `out` until `shutdown` completes,
/// then the last record of every open flow, the inventory and the stats.
///
/// # Errors
/// [`AppError`] when the kernel side cannot start or output cannot be written.
pub async fn run<W>(config: RunConfig, shutdown: impl Future<Output = ()>, out: W) -> Result<RunStats, AppError>
where
    W: Write + Send + 'static,
{
    let mut tracer = Tracer::start(&config.trace)?;
    let mut events = std::mem::replace(&mut tracer.events, mpsc::channel(1).1);
    let mut table = FlowTable::new(config.flows, BootClock::now(), id::boot_id());
    table.add_interface_addrs(interface_addrs(), boot_ns_now());
    // Sockets that existed before the hooks were attached; anything that changed
    // since is in the event stream and is folded in after.
    let mut batch = Vec::new();
    for ev in tracer.snapshot() {
        table.on_event(&ev, &mut batch);
    }

    let (batches, batches_rx) = std_mpsc::sync_channel::<Vec<Record>>(OUTPUT_BATCHES);
    let writer = std::thread::spawn(move || write_records(&batches_rx, out));
    let mut output = Output { batches, dropped: 0 };

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inventory =
        tokio::time::interval_at(tokio::time::Instant::now() + config.inventory_interval, config.inventory_interval);
    inventory.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let every = snapshot_interval(config.flows.update_interval);
    let mut snapshot = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    snapshot.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut open = true;
    while open {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            ev = events.recv() => match ev {
                Some(ev) => {
                    table.on_event(&ev, &mut batch);
                    // Take what is already queued without yielding, in bounded bites.
                    for _ in 0..4096 {
                        let Ok(ev) = events.try_recv() else { break };
                        table.on_event(&ev, &mut batch);
                    }
                }
                None => open = false,
            },
            _ = tick.tick() => table.tick(boot_ns_now(), &mut batch),
            _ = snapshot.tick() => {
                for ev in tracer.snapshot() {
                    table.on_event(&ev, &mut batch);
                }
            }
            _ = inventory.tick() => {
                let now = boot_ns_now();
                table.add_interface_addrs(interface_addrs(), now);
                table.inventory(now, &mut batch);
            }
        }
        output.send(&mut batch)?;
    }

    info!("stopping: draining events and flushing flows");
    let reader = tracer.finish_reader().await;
    while let Some(ev) = events.recv().await {
        table.on_event(&ev, &mut batch);
    }
    let now = boot_ns_now();
    table.tick(now, &mut batch);
    table.flush(now, &mut batch);
    output.send(&mut batch)?;
    let dropped = output.dropped;
    drop(output);
    let mut out = writer
        .join()
        .map_err(|_| AppError::Output(io::Error::other("writer thread panicked")))?
        .map_err(AppError::Output)?;
    reader?;
    let stats = RunStats { pipeline: tracer.pipeline_stats(), flows: table.counters(), output_dropped: dropped };
    write_run_stats(&mut out, &stats).and_then(|()| out.flush()).map_err(AppError::Output)?;
    Ok(stats)
}

/// How often the iterator refreshes the counters of open TCP connections: twice per
/// update interval, so that an update carries counters at most half an interval old,
/// within [1 s, 30 s].
fn snapshot_interval(update_interval: Duration) -> Duration {
    (update_interval / 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// The flow stage's end of the channel to the writer thread.
struct Output {
    batches: std_mpsc::SyncSender<Vec<Record>>,
    dropped: u64,
}

impl Output {
    /// Hands the batch to the writer; when the writer is behind, the records are
    /// dropped and counted rather than stalling the pipeline.
    fn send(&mut self, batch: &mut Vec<Record>) -> Result<(), AppError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.batches.try_send(std::mem::take(batch)) {
            Ok(()) => Ok(()),
            Err(std_mpsc::TrySendError::Full(lost)) => {
                let n = lost.len() as u64;
                self.dropped += n;
                warn!(records = n, total = self.dropped, "output is not keeping up; records dropped");
                Ok(())
            }
            Err(std_mpsc::TrySendError::Disconnected(_)) => {
                Err(AppError::Output(io::Error::new(io::ErrorKind::BrokenPipe, "output closed")))
            }
        }
    }
}

/// The writer thread: every record as a JSON line, flushed once the queue is empty.
fn write_records<W: Write>(batches: &std_mpsc::Receiver<Vec<Record>>, out: W) -> io::Result<io::BufWriter<W>> {
    let mut out = io::BufWriter::with_capacity(256 * 1024, out);
    while let Ok(batch) = batches.recv() {
        batch.iter().try_for_each(|r| write_record(&mut out, r))?;
        while let Ok(more) = batches.try_recv() {
            more.iter().try_for_each(|r| write_record(&mut out, r))?;
        }
        out.flush()?;
    }
    out.flush()?;
    Ok(out)
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
    let mut tracer = Tracer::start(&config.trace)?;
    let events = std::mem::replace(&mut tracer.events, mpsc::channel(1).1);
    let filter = config.filter;
    let json = config.json;
    let printer = tokio::task::spawn_blocking(move || print_events(events, out, filter, json));

    shutdown.await;
    info!("stopping: draining events");
    let reader = tracer.finish_reader().await;
    let (mut out, printed) =
        printer.await.map_err(|e| AppError::Output(io::Error::other(e)))?.map_err(AppError::Output)?;
    reader?;

    let stats = WatchStats { pipeline: tracer.pipeline_stats(), printed };
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
        if closed {
            continue;
        }
        let mut result = Ok(());
        if filter.accepts(&ev) {
            result = if json { write_json(&mut out, &ev) } else { write_text(&mut out, &ev) };
            if result.is_ok() {
                printed += 1;
            }
        }
        // Flush whenever nothing else is queued, whether or not this event was
        // printed: an earlier line may still sit in the buffer.
        if result.is_ok() && events.is_empty() {
            result = out.flush();
        }
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => closed = true,
            Err(e) => return Err(e),
        }
    }
    if !closed {
        out.flush()?;
    }
    Ok((out, printed))
}
