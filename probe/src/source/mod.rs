//! source: the start of the pipeline. Reads the kernel's event ring buffer, decodes
//! each record once into a [`SocketEvent`], and pushes it into a bounded channel.
//!
//! Kernel -> `pl_events` ring buffer -> [`EventSource::run`] -> `mpsc` channel -> the
//! next stage (watch printer, flow table). When the channel is full the event is
//! dropped and counted in [`SourceCounters::channel_full`]; a record that does not
//! decode is counted in [`SourceCounters::decode_errors`]. Nothing blocks the reader.

pub mod clock;
pub mod event;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tracing::warn;

pub use clock::BootClock;
pub use event::{ConnectError, DecodeError, Detail, Opening, Owner, Proto, SocketEvent, TcpCounters, TcpState};

/// Counters of the source stage. Written by the reader only; read by anyone.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Records read from the ring buffer.
    pub received: AtomicU64,
    /// Records that did not decode (short, unknown kind/family/protocol).
    pub decode_errors: AtomicU64,
    /// Decoded events dropped because the next stage's channel was full.
    pub channel_full: AtomicU64,
}

impl SourceCounters {
    fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Reader of the kernel's event ring buffer.
pub struct EventSource {
    ring: AsyncFd<RingBuf<MapData>>,
    clock: BootClock,
    counters: Arc<SourceCounters>,
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
        Ok(Self { ring, clock, counters: Arc::default() })
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
    pub async fn run(mut self, tx: mpsc::Sender<SocketEvent>, mut shutdown: watch::Receiver<bool>) -> io::Result<()> {
        loop {
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.drain(&tx);
                        return Ok(());
                    }
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

    fn drain(&mut self, tx: &mpsc::Sender<SocketEvent>) {
        let clock = self.clock;
        let counters = Arc::clone(&self.counters);
        drain_ring(self.ring.get_mut(), &clock, &counters, tx);
    }
}

/// Everything currently in the ring buffer, decoded and forwarded.
fn drain_ring(
    ring: &mut RingBuf<MapData>,
    clock: &BootClock,
    counters: &SourceCounters,
    tx: &mpsc::Sender<SocketEvent>,
) {
    while let Some(item) = ring.next() {
        SourceCounters::bump(&counters.received);
        match SocketEvent::decode(&item, clock) {
            Ok(event) => {
                if tx.try_send(event).is_err() {
                    let n = SourceCounters::bump(&counters.channel_full);
                    if n.is_power_of_two() {
                        warn!(dropped = n, "next stage is not keeping up; events dropped");
                    }
                }
            }
            Err(error) => {
                let n = SourceCounters::bump(&counters.decode_errors);
                if n.is_power_of_two() {
                    warn!(%error, total = n, "undecodable kernel record");
                }
            }
        }
    }
}
