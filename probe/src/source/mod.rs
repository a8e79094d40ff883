//! source: the start of the pipeline. Reads the kernel's event ring buffer, decodes
//! each record once into a [`SocketEvent`], and pushes it into a bounded channel.
//!
//! Kernel -> `pl_events` ring buffer -> [`EventSource::run`] -> [`event_channel`] (batches
//! of events) -> the next stage (watch printer, flow table). When the channel holds
//! its capacity in events, new events are dropped and counted in
//! [`SourceCounters::channel_full`]; a record that does not decode is counted in
//! [`SourceCounters::decode_errors`]. Nothing blocks the reader.

pub mod clock;
pub mod event;

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use aya::maps::{MapData, RingBuf};

use crate::loader::HeldOpens;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use tracing::warn;

pub use clock::BootClock;
pub use event::{
    Comm, ConnectError, DecodeError, Detail, ExeName, Opening, Owner, Proto, ShortStr, SocketEvent, TcpCounters,
    TcpState,
};

/// Longest time an event waits in the ring buffer when the kernel does not wake
/// the reader.
pub const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// Counters of the source stage. Written by the reader only; read by anyone.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Records read from the ring buffer.
    pub received: AtomicU64,
    /// Records that did not decode (short, unknown kind/family/protocol).
    pub decode_errors: AtomicU64,
    /// Decoded events dropped because the next stage's channel was full.
    pub channel_full: AtomicU64,
    /// Failed attempts to take out the kernel's held opens.
    pub held_open_errors: AtomicU64,
}

impl SourceCounters {
    fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Events per batch handed to the next stage (one channel operation each).
const BATCH: usize = 1024;

/// A channel of event batches bounded by the number of events it holds.
#[must_use]
pub fn event_channel(capacity: usize) -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (EventSender { tx, queued: Arc::clone(&queued), capacity }, EventReceiver { rx, queued })
}

/// The reader's end of [`event_channel`].
#[derive(Debug)]
pub struct EventSender {
    tx: mpsc::UnboundedSender<Vec<SocketEvent>>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl EventSender {
    /// Queues a batch; gives it back when the channel is full (or closed).
    fn send(&self, batch: Vec<SocketEvent>) -> Result<(), Vec<SocketEvent>> {
        let n = batch.len();
        if self.queued.load(Ordering::Relaxed) + n > self.capacity {
            return Err(batch);
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        self.tx.send(batch).map_err(|e| {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            e.0
        })
    }
}

/// The next stage's end of [`event_channel`].
#[derive(Debug)]
pub struct EventReceiver {
    rx: mpsc::UnboundedReceiver<Vec<SocketEvent>>,
    queued: Arc<AtomicUsize>,
}

impl EventReceiver {
    fn took(&self, batch: Option<Vec<SocketEvent>>) -> Option<Vec<SocketEvent>> {
        if let Some(b) = &batch {
            self.queued.fetch_sub(b.len(), Ordering::Relaxed);
        }
        batch
    }

    /// The next batch; `None` once the reader has stopped and everything was taken.
    pub async fn recv(&mut self) -> Option<Vec<SocketEvent>> {
        let batch = self.rx.recv().await;
        self.took(batch)
    }

    /// The next batch if one is queued.
    pub fn try_recv(&mut self) -> Option<Vec<SocketEvent>> {
        let batch = self.rx.try_recv().ok();
        self.took(batch)
    }

    /// The next batch, blocking the thread (not for use inside the runtime).
    pub fn blocking_recv(&mut self) -> Option<Vec<SocketEvent>> {
        let batch = self.rx.blocking_recv();
        self.took(batch)
    }

    /// Whether nothing is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// How often the reader takes out the held opens of connections that outlived
/// the hold.
pub const HELD_OPENS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Reader of the kernel's event ring buffer.
pub struct EventSource {
    ring: AsyncFd<RingBuf<MapData>>,
    clock: BootClock,
    counters: Arc<SourceCounters>,
    /// The kernel's held opens, and how long they are held.
    held: Option<(HeldOpens, std::time::Duration)>,
}

impl EventSource {
    /// Wraps the ring buffer taken from the loader.
    ///
    /// # Errors
    /// When the ring buffer's fd cannot be registered with the tokio reactor.
    pub fn new(ring: RingBuf<MapData>, clock: BootClock) -> io::Result<Self> {
        // SAFETY: the RingBuf owns its map fd and never closes or replaces it while it
        // lives; the AsyncFd owns the RingBuf, so the fd outlives the registration.
        let ring =
            unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }.map_err(io::Error::from)?;
        Ok(Self { ring, clock, counters: Arc::default(), held: None })
    }

    /// Also takes out, every [`HELD_OPENS_INTERVAL`], the opens the kernel holds
    /// (see [`HeldOpens`]) of connections older than `hold`, and all of them when
    /// stopping.
    #[must_use]
    pub fn with_held_opens(mut self, held: HeldOpens, hold: std::time::Duration) -> Self {
        self.held = Some((held, hold));
        self
    }

    /// The stage's counters, shared.
    #[must_use]
    pub fn counters(&self) -> Arc<SourceCounters> {
        Arc::clone(&self.counters)
    }

    /// Reads until `shutdown` turns true, then drains what the kernel already wrote
    /// and returns (dropping `tx`, which ends the next stage).
    ///
    /// # Errors
    /// When polling the ring buffer's fd fails.
    pub async fn run(mut self, tx: EventSender, mut shutdown: watch::Receiver<bool>) -> io::Result<()> {
        // The kernel wakes the reader only when a good part of the ring is waiting
        // (pl_wakeup_bytes): this timer bounds how long a quiet trickle of events
        // waits.
        let mut tick = tokio::time::interval(DRAIN_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held_tick = tokio::time::interval(HELD_OPENS_INTERVAL);
        held_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        // Connections still open are reported before the last drain;
                        // opens made from now on go out at once.
                        if let Some((held, _)) = &self.held {
                            if let Err(error) = held.stop_holding() {
                                warn!(%error, "could not stop holding opens; those made during the stop are not reported");
                            }
                        }
                        self.take_held(&tx, u64::MAX);
                        self.drain(&tx);
                        return Ok(());
                    }
                }
                _ = tick.tick() => self.drain(&tx),
                _ = held_tick.tick(), if self.held.is_some() => {
                    let hold = self.held.as_ref().map_or(0, |(_, hold)| u64::try_from(hold.as_nanos()).unwrap_or(u64::MAX));
                    self.take_held(&tx, clock::boot_ns_now().saturating_sub(hold));
                }
                guard = self.ring.readable_mut() => {
                    let mut guard = guard?;
                    let clock = self.clock;
                    let counters = Arc::clone(&self.counters);
                    drain_ring(guard.get_inner_mut(), &clock, &counters, &tx);
                    guard.clear_ready();
                }
            }
        }
    }

    /// Takes out the held opens of connections opened at or before `cutoff_ns` and
    /// forwards them. Their sockets' closes, if any, can only come after: a close
    /// carries its open only if it deletes the entry first.
    fn take_held(&mut self, tx: &EventSender, cutoff_ns: u64) {
        let Some((held, _)) = &self.held else { return };
        let mut batch = Vec::new();
        let result = held.take(cutoff_ns, |record| take_record(record, &self.clock, &self.counters, &mut batch, tx));
        if let Err(error) = result {
            let n = SourceCounters::bump(&self.counters.held_open_errors);
            if n.is_power_of_two() {
                warn!(%error, total = n, "taking out held opens failed; those connections show once they close");
            }
        }
        if !batch.is_empty() {
            forward(batch, &self.counters, tx);
        }
    }

    fn drain(&mut self, tx: &EventSender) {
        let clock = self.clock;
        let counters = Arc::clone(&self.counters);
        drain_ring(self.ring.get_mut(), &clock, &counters, tx);
    }
}

/// Everything currently in the ring buffer, decoded and forwarded in batches.
fn drain_ring(ring: &mut RingBuf<MapData>, clock: &BootClock, counters: &SourceCounters, tx: &EventSender) {
    // Batches start small: a quiet ring costs no large allocation per drain.
    let mut batch = Vec::with_capacity(64);
    while let Some(item) = ring.next() {
        take_record(&item, clock, counters, &mut batch, tx);
    }
    if !batch.is_empty() {
        forward(batch, counters, tx);
    }
}

/// One kernel record (from the ring or the held opens), counted and decoded into
/// `batch`, which is forwarded once full.
fn take_record(
    record: &[u8],
    clock: &BootClock,
    counters: &SourceCounters,
    batch: &mut Vec<SocketEvent>,
    tx: &EventSender,
) {
    SourceCounters::bump(&counters.received);
    if let Err(error) = SocketEvent::decode_into(record, clock, batch) {
        let n = SourceCounters::bump(&counters.decode_errors);
        if n.is_power_of_two() {
            warn!(%error, total = n, "undecodable kernel record");
        }
    }
    if batch.len() >= BATCH {
        // A busy source: the next batch will fill too, so it is sized at once rather
        // than grown (and its events moved) in steps.
        forward(std::mem::replace(batch, Vec::with_capacity(BATCH)), counters, tx);
    }
}

fn forward(batch: Vec<SocketEvent>, counters: &SourceCounters, tx: &EventSender) {
    if let Err(lost) = tx.send(batch) {
        let n = counters.channel_full.fetch_add(lost.len() as u64, Ordering::Relaxed) + lost.len() as u64;
        warn!(dropped = lost.len(), total = n, "next stage is not keeping up; events dropped");
    }
}
