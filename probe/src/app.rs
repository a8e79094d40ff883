//! app: wires the stages together for each command and runs them until the shutdown
//! signal, which is a parameter so that tests can stop a run.
//!
//! run:   loader -> source (ring buffer reader task) -> channel -> flow table (this
//!        task: events, ticks, inventory) -> record batches -> writer thread -> stats.
//! watch: loader -> source -> channel -> printer thread -> stats.

use std::future::Future;
use std::io::{self, Write};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::classify::interface_addrs;
use crate::config::{RunConfig, TraceConfig, WatchConfig};
use crate::flow::{id, FlowTable, Record};
use crate::loader::{self, LoadError, Loaded};
use crate::sink::json::{write_record, write_run_stats, RunStats};
use crate::sink::stats::PipelineStats;
use crate::sink::watch::{write_json, write_stats_json, write_stats_text, write_text, WatchStats};
use crate::sink::zmq::SinkInput;
use crate::source::clock::boot_ns_now;
use crate::source::{BootClock, EventSource, SocketEvent};
use packetless_ebpf::abi::RawEvent;
use packetless_enrich::procfs::ProcFs;
use packetless_enrich::{EnrichConfig, Enricher};

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
    /// The ZMQ sink could not start (endpoint, CURVE).
    #[error(transparent)]
    Zmq(crate::sink::zmq::ZmqSetupError),
}

impl AppError {
    /// Exit code: 2 for problems of the environment the user must fix, 1 otherwise.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Load(_) | Self::Zmq(_) => 2,
            Self::Source(_) | Self::Output(_) => 1,
        }
    }
}

/// A running tracer: the kernel side attached and a task forwarding decoded events.
/// Used by the commands and by tests that want events without a sink.
pub struct Tracer {
    /// Decoded events, in ring-buffer order, in batches.
    pub events: crate::source::EventReceiver,
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
        let mut source = EventSource::new(ring, BootClock::now()).map_err(AppError::Source)?;
        if let (Some(held), Some(hold)) = (loaded.take_held_opens()?, config.loader.hold_opens) {
            source = source.with_held_opens(held, hold);
        }
        let counters = source.counters();
        let (tx, events) = crate::source::event_channel(config.queue);
        let (stop, stop_rx) = watch::channel(false);
        let reader = tokio::spawn(source.run(tx, stop_rx));
        // Loading parsed the kernel's whole BTF; hand that memory back to the system.
        release_free_memory(0);
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
        self.stats.read()
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
        let held_open_errors = self.counters.held_open_errors.load(std::sync::atomic::Ordering::Relaxed);
        PipelineStats { kernel: self.kernel_stats(), received, decode_errors, channel_full, held_open_errors }
    }

    /// Runs the socket iterator and hands `each` the snapshot events of the open
    /// sockets, a batch at a time. A socket held by several descriptors comes once,
    /// with its first holder: a child between fork and exec also holds its parent's
    /// sockets, and must not be looked up while it still looks like its parent.
    /// Nothing happens when the iterator is unavailable; a failed run is logged.
    pub fn snapshot(&mut self, mut each: impl FnMut(&[SocketEvent])) {
        let clock = BootClock::now();
        let counters = &self.counters;
        let mut batch = Vec::new();
        let mut seen = rustc_hash::FxHashSet::default();
        let ran = self.loaded.snapshot(|records| {
            batch.clear();
            for record in records.chunks(RawEvent::SIZE) {
                match SocketEvent::decode(record, &clock) {
                    Ok(ev) if seen.insert(ev.cookie) => batch.push(ev),
                    Ok(_) => {}
                    Err(error) => {
                        let n = counters.decode_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        if n.is_power_of_two() {
                            warn!(%error, total = n, "undecodable snapshot record");
                        }
                    }
                }
            }
            each(&batch);
        });
        if let Err(error) = ran {
            warn!(%error, "socket snapshot failed");
        }
    }

    /// Runs the live-socket iterator, handing `each` the cookie of every TCP socket
    /// the kernel still has. False when the iterator is unavailable, or when the run
    /// failed (logged): the list is then incomplete and must not close anything.
    pub fn live_tcp(&self, each: impl FnMut(u64)) -> bool {
        match self.loaded.live_tcp_cookies(each) {
            Ok(ran) => ran,
            Err(error) => {
                warn!(%error, "live-socket check failed");
                false
            }
        }
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
/// Most records a new batch reserves room for.
const MAX_BATCH_RESERVE: usize = 4096;
/// Batches of records between the flow stage and the writer thread.
const OUTPUT_BATCHES: usize = 4096;

/// `packetless run`: flow records to the configured sinks (JSON lines on `out`, ZMQ
/// collectors) until `shutdown` completes, then the last record of every open flow,
/// the inventory and the stats.
///
/// # Errors
/// [`AppError`] when the kernel side or a sink cannot start, or output cannot be
/// written.
pub async fn run<W>(config: RunConfig, shutdown: impl Future<Output = ()>, out: W) -> Result<RunStats, AppError>
where
    W: Write + Send + 'static,
{
    // Sinks first: a collector address that cannot be bound is a usage error that
    // should not cost a kernel load.
    let mut sinks = Sinks::start(&config, out)?;
    let mut tracer = Tracer::start(&config.trace)?;
    let mut events = std::mem::replace(&mut tracer.events, crate::source::event_channel(1).1);
    let mut flows = Flows::new(&config, tracer.loaded.take_cgroup_paths());
    // Sockets that existed before the hooks were attached; anything that changed
    // since is in the event stream and is folded in after.
    tracer.snapshot(|events| flows.events(events));

    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inventory = every(config.inventory_interval);
    let mut snapshot = every(snapshot_interval(config.flows.update_interval));
    let mut stats_tick = every(Duration::from_secs(1));
    let mut last_trim = std::time::Instant::now();
    tokio::pin!(shutdown);
    let mut open = true;
    while open {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            batch = events.recv() => match batch {
                Some(batch) => {
                    flows.events(&batch);
                    // Take what is already queued without yielding, in bounded bites.
                    for _ in 0..8 {
                        let Some(batch) = events.try_recv() else { break };
                        flows.events(&batch);
                    }
                }
                None => open = false,
            },
            _ = tick.tick() => flows.table.tick(boot_ns_now(), &mut flows.batch),
            _ = snapshot.tick() => {
                tracer.snapshot(|events| flows.events(events));
                if tracer.live_tcp(|cookie| flows.table.tcp_listed(cookie)) {
                    report_gone(&flows.table.tcp_check_done(boot_ns_now()));
                }
            }
            _ = inventory.tick() => {
                let now = boot_ns_now();
                flows.table.add_interface_addrs(interface_addrs(), now);
                flows.table.inventory(now, &mut flows.batch);
                release_free_memory(0);
            }
            _ = stats_tick.tick() => {
                sinks.output.stats(&flows.stats(&tracer, &sinks.output));
                // Not more often: a busy pipeline would fault the pages back in.
                if last_trim.elapsed() >= TRIM_INTERVAL {
                    flows.table.release_memory();
                    release_free_memory(FREE_HEAP_KEPT);
                    last_trim = std::time::Instant::now();
                }
            }
        }
        sinks.output.send(&mut flows.take())?;
    }

    info!("stopping: draining events and flushing flows");
    let reader = tracer.finish_reader().await;
    while let Some(batch) = events.recv().await {
        flows.events(&batch);
    }
    let now = boot_ns_now();
    flows.table.tick(now, &mut flows.batch);
    flows.table.flush(now, &mut flows.batch);
    sinks.output.send(&mut flows.take())?;
    let stats = flows.stats(&tracer, &sinks.output);
    reader?;
    sinks.finish(stats)
}

/// The flow stage of `run`: the flow table and enrichment, and the records they
/// produced since the last hand-over to the sinks.
struct Flows {
    table: FlowTable,
    enricher: Enricher,
    batch: Vec<Record>,
}

impl Flows {
    fn new(config: &RunConfig, recorded_cgroups: Option<loader::CgroupPathMap>) -> Self {
        let mut enricher = Enricher::new(
            EnrichConfig { cgroup_mount: loader::cgroup2_root(), docker_socket: config.docker_socket.clone() },
            Box::new(ProcFs::new("/proc")),
        );
        if let Some(record) = recorded_cgroups {
            enricher = enricher.with_cgroup_record(Box::new(record));
        }
        let mut table = FlowTable::new(config.flows, BootClock::now(), &id::boot_id());
        table.add_interface_addrs(interface_addrs(), boot_ns_now());
        Self { table, enricher, batch: Vec::new() }
    }

    /// Events: enrichment reads procfs about their owners while they most likely
    /// run, then the table folds them in.
    fn events(&mut self, events: &[SocketEvent]) {
        let now = std::time::Instant::now();
        let enricher = &mut self.enricher;
        self.table.on_events(events, &mut self.batch, |ev| {
            if let Some(owner) = &ev.owner {
                enricher.observe(&owner.facts(), now);
            }
        });
    }

    /// The records produced so far, their processes filled by enrichment.
    fn take(&mut self) -> Vec<Record> {
        if self.batch.is_empty() {
            return Vec::new();
        }
        let now = std::time::Instant::now();
        let enricher = &mut self.enricher;
        let mut fill = |p: &mut Option<crate::flow::Process>| {
            if let Some(p) = p {
                let details = enricher.details_shared(&p.facts(), now);
                p.enrich(details);
            }
        };
        for record in &mut self.batch {
            match record {
                Record::Flow(f) => {
                    fill(&mut f.src_process);
                    fill(&mut f.dst_process);
                }
                Record::Listen(l) => fill(&mut l.process),
                Record::Dependency(d) => fill(&mut d.last_process),
                Record::LocalIp(_) => {}
            }
        }
        // The batch goes to the sinks; the next one starts about its size rather than
        // growing (and moving its records) from nothing again.
        let capacity = self.batch.len().min(MAX_BATCH_RESERVE);
        std::mem::replace(&mut self.batch, Vec::with_capacity(capacity))
    }

    fn stats(&self, tracer: &Tracer, output: &Output) -> RunStats {
        RunStats {
            pipeline: tracer.pipeline_stats(),
            flows: self.table.counters(),
            output_dropped: output.dropped(),
            zmq: None,
            enrich: Some(self.enricher.counters()),
        }
    }
}

/// The sink threads of `run` and the channels to them.
struct Sinks<W: Write> {
    output: Output,
    zmq: Option<std::thread::JoinHandle<crate::sink::zmq::ZmqCounters>>,
    writer: Option<std::thread::JoinHandle<io::Result<io::BufWriter<W>>>>,
}

impl<W: Write + Send + 'static> Sinks<W> {
    fn start(config: &RunConfig, out: W) -> Result<Self, AppError> {
        let mut output = Output::default();
        let mut zmq = None;
        if let Some(zmq_config) = config.zmq.clone() {
            let (tx, rx) = std_mpsc::sync_channel(OUTPUT_BATCHES);
            zmq = Some(crate::sink::zmq::start(zmq_config, rx).map_err(AppError::Zmq)?);
            output.sinks.push(SinkHandle { name: "zmq", tx, dropped: 0 });
        }
        let mut writer = None;
        if config.stdout {
            let (tx, rx) = std_mpsc::sync_channel(OUTPUT_BATCHES);
            writer = Some(std::thread::spawn(move || write_records(&rx, out)));
            output.sinks.push(SinkHandle { name: "stdout", tx, dropped: 0 });
        }
        Ok(Self { output, zmq, writer })
    }

    /// Closes the channels, waits for every sink, and writes the stats line (on
    /// stdout when it is a sink, else in the log).
    fn finish(self, mut stats: RunStats) -> Result<RunStats, AppError> {
        let Self { mut output, zmq, writer } = self;
        output.stats(&stats);
        drop(output);
        if let Some(thread) = zmq {
            stats.zmq = Some(thread.join().map_err(|_| AppError::Output(io::Error::other("ZMQ exporter panicked")))?);
        }
        if let Some(writer) = writer {
            let mut out = writer
                .join()
                .map_err(|_| AppError::Output(io::Error::other("writer thread panicked")))?
                .map_err(AppError::Output)?;
            write_run_stats(&mut out, &stats).and_then(|()| out.flush()).map_err(AppError::Output)?;
        } else {
            info!(stats = %serde_json::to_string(&stats).unwrap_or_default(), "final counters");
        }
        Ok(stats)
    }
}

/// Ends whose sockets are gone without a close event: the first few named, so that
/// the connections whose close was lost can be found, then how many.
fn report_gone(outcome: &crate::flow::CheckOutcome) {
    for end in &outcome.named {
        let (pid, comm) = end.owner.as_ref().map_or((None, None), |(pid, comm)| (Some(*pid), Some(comm.as_str())));
        warn!(
            cookie = end.cookie,
            end = if end.server { "server" } else { "client" },
            local = %end.local,
            remote = %end.remote,
            pid,
            comm,
            other_end_open = end.other_end_open,
            idle_s = end.idle.as_secs(),
            "socket gone without a close event; its flow ends as gone"
        );
    }
    if outcome.closed > 0 {
        warn!(
            ends = outcome.closed,
            named = outcome.named.len(),
            "closed TCP ends whose sockets are gone without a close event (end reason gone)"
        );
    }
}

/// Free heap the probe keeps. Trimming at most every [`TRIM_INTERVAL`], a busy
/// pipeline faults back in a few MiB per trim, a negligible cost (an earlier 8 MiB
/// left about 5 MiB of free heap resident under 100,000 live flows).
const FREE_HEAP_KEPT: usize = 1 << 20;
/// Least time between two trims of free heap beyond [`FREE_HEAP_KEPT`].
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Returns free heap memory to the system when more than `keep` bytes of it are
/// free: after a burst (a starved pipeline queues up to `--queue` events, a storm's
/// records wait for the exporter) RSS comes back down instead of staying at the peak.
#[cfg(target_env = "gnu")]
fn release_free_memory(keep: usize) {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let free = unsafe { libc::mallinfo2() }.fordblks;
    if free > keep {
        // SAFETY: malloc_trim only releases memory the allocator holds free.
        unsafe { libc::malloc_trim(0) };
    }
}

#[cfg(not(target_env = "gnu"))]
fn release_free_memory(_keep: usize) {}

/// Heap arenas the allocator may use. glibc gives each thread that allocates its
/// own arena, up to eight per CPU; memory freed in one arena is not reused by the
/// others (a record built on one thread and dropped on another left each arena
/// holding the peak of a burst), and `malloc_trim` does not hand back the free top
/// of a thread's arena. One arena for all: 100,000 live flows settled at 59–60 MiB
/// in every run of a measure (`--no-docker`), where two arenas gave 60–65 depending on
/// which thread took the second, at no measurable CPU cost (the hot paths allocate little and glibc's
/// per-thread caches serve small blocks without the arena's lock).
#[cfg(target_env = "gnu")]
const HEAP_ARENAS: libc::c_int = 1;

/// Caps the allocator's arenas at [`HEAP_ARENAS`], unless `MALLOC_ARENA_MAX` says
/// otherwise. Call before any thread starts.
#[cfg(target_env = "gnu")]
pub fn limit_heap_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator parameters; no thread allocates yet.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, HEAP_ARENAS) };
    }
}

/// Other allocators choose their own arenas.
#[cfg(not(target_env = "gnu"))]
pub fn limit_heap_arenas() {}

/// An interval whose first tick is one period from now.
fn every(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// How often the iterator refreshes the counters of open TCP connections: twice per
/// update interval, so that an update carries counters at most half an interval old,
/// within [1 s, 30 s].
fn snapshot_interval(update_interval: Duration) -> Duration {
    (update_interval / 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// The flow stage's ends of the channels to the sink threads.
#[derive(Default)]
struct Output {
    sinks: Vec<SinkHandle>,
}

struct SinkHandle {
    name: &'static str,
    tx: std_mpsc::SyncSender<SinkInput>,
    dropped: u64,
}

impl Output {
    /// Hands the batch to every sink; a sink that is behind loses the batch (counted)
    /// rather than stalling the pipeline.
    fn send(&mut self, batch: &mut Vec<Record>) -> Result<(), AppError> {
        if batch.is_empty() {
            return Ok(());
        }
        let records = Arc::new(std::mem::take(batch));
        for sink in &mut self.sinks {
            match sink.tx.try_send(SinkInput::Records(Arc::clone(&records))) {
                Ok(()) => {}
                Err(std_mpsc::TrySendError::Full(_)) => {
                    let n = records.len() as u64;
                    sink.dropped += n;
                    warn!(
                        sink = sink.name,
                        records = n,
                        total = sink.dropped,
                        "sink is not keeping up; records dropped"
                    );
                }
                Err(std_mpsc::TrySendError::Disconnected(_)) => {
                    return Err(AppError::Output(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        format!("the {} output closed", sink.name),
                    )));
                }
            }
        }
        Ok(())
    }

    /// The latest counters, for sinks that report them (ZMQ `event` messages).
    fn stats(&mut self, stats: &RunStats) {
        let stats = Arc::new(stats.clone());
        for sink in &self.sinks {
            // A full channel already holds newer records; stats come again in a second.
            let _ = sink.tx.try_send(SinkInput::Stats(Arc::clone(&stats)));
        }
    }

    fn dropped(&self) -> u64 {
        self.sinks.iter().map(|s| s.dropped).sum()
    }
}

/// The stdout writer thread: every record as a JSON line, flushed once the queue is
/// empty.
fn write_records<W: Write>(input: &std_mpsc::Receiver<SinkInput>, out: W) -> io::Result<io::BufWriter<W>> {
    let mut out = io::BufWriter::with_capacity(256 * 1024, out);
    let write = |item: SinkInput, out: &mut io::BufWriter<W>| match item {
        SinkInput::Records(records) => records.iter().try_for_each(|r| write_record(out, r)),
        SinkInput::Stats(_) => Ok(()),
    };
    while let Ok(item) = input.recv() {
        write(item, &mut out)?;
        while let Ok(more) = input.try_recv() {
            write(more, &mut out)?;
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
    let events = std::mem::replace(&mut tracer.events, crate::source::event_channel(1).1);
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
    mut events: crate::source::EventReceiver,
    out: W,
    filter: crate::sink::watch::EventFilter,
    json: bool,
) -> io::Result<(io::BufWriter<W>, u64)> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    let mut printed = 0u64;
    let mut closed = false;
    while let Some(batch) = events.blocking_recv() {
        if closed {
            continue;
        }
        let mut result = Ok(());
        for ev in batch.iter().filter(|ev| filter.accepts(ev)) {
            result = if json { write_json(&mut out, ev) } else { write_text(&mut out, ev) };
            if result.is_err() {
                break;
            }
            printed += 1;
        }
        // Flush whenever nothing else is queued, whether or not this batch printed
        // anything: an earlier line may still sit in the buffer.
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
