//! flow: where flow records are born. Socket events from the source stage are folded
//! into flows, one per TCP connection (both ends merged when both are on this host)
//! and one per UDP socket and peer; [`FlowTable::tick`] emits them when they open,
//! periodically while they last, and when they end.
//!
//! source ([`SocketEvent`]) -> [`FlowTable::on_event`] -> flows, listening sockets, own
//! addresses -> [`FlowTable::tick`] / [`FlowTable::flush`] -> [`Record`]s -> sinks.
//!
//! Time is the kernel's `CLOCK_BOOTTIME` in nanoseconds, as carried by events, so the
//! table runs on a fake clock in tests. A new flow waits `pair_window` before its first
//! record, so that the other end of an intra-host connection can join it and one
//! record names both processes; a flow that ends inside that window gets a single
//! `closed` record.

pub mod id;
mod owners;
pub mod record;
mod slab;

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::rc::Rc;

use rustc_hash::FxHashMap as HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use crate::classify::{canonical_ip, classify, is_loopback, Direction, End, HostAddrs};
use slab::{Key, Slab};

use crate::source::{BootClock, ConnectError, Detail, Opening, Owner, Proto, SocketEvent, TcpCounters, TcpState};
use id::FlowId;
use owners::Owners;
pub use record::{DependencyRecord, EndReason, FlowRecord, FlowState, ListenRecord, LocalIpRecord, Process, Record};

/// Settings of the flow table.
#[derive(Clone, Copy, Debug)]
pub struct FlowConfig {
    /// How long a new flow waits for its other end before its first record.
    pub pair_window: Duration,
    /// Interval between records of a long-lived flow.
    pub update_interval: Duration,
    /// A UDP flow without datagrams for this long is closed (`timeout`).
    pub udp_idle_timeout: Duration,
    /// Most flows held at once; beyond, the oldest is emitted and forgotten.
    pub max_flows: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            pair_window: Duration::from_millis(500),
            update_interval: Duration::from_secs(30),
            udp_idle_timeout: Duration::from_secs(60),
            max_flows: 1_000_000,
        }
    }
}

/// Counters of the flow stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowCounters {
    /// Flows emitted and forgotten because the table was full.
    pub flows_evicted: u64,
    /// UDP datagrams whose peer the kernel could not tell (not counted in any flow).
    pub udp_peer_unknown: u64,
    /// Flow records emitted.
    pub flow_records: u64,
    /// TCP sockets closed by the table because the kernel no longer had them and no
    /// close event came (end reason `gone`).
    pub tcp_closes_missed: u64,
    /// Events of such sockets arriving after their flow was closed: not folded in.
    pub tcp_events_after_gone: u64,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A boot time as a non-zero value (the kernel's clock is past zero at any event).
fn instant(boot_ns: u64) -> NonZeroU64 {
    NonZeroU64::new(boot_ns).unwrap_or(NonZeroU64::MIN)
}

/// A socket address in 20 bytes rather than `SocketAddr`'s 32 (records carry no
/// IPv6 flow label or scope): every flow keeps two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Endpoint {
    ip: IpAddr,
    port: u16,
}

/// Hashed as one or two words (the derived hash takes the address byte by byte,
/// with its length, which showed in the tuple lookup that pairs a connection's
/// two ends).
impl std::hash::Hash for Endpoint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self.ip {
            IpAddr::V4(ip) => state.write_u64(u64::from(ip.to_bits()) << 16 | u64::from(self.port)),
            IpAddr::V6(ip) => {
                state.write_u128(ip.to_bits());
                state.write_u16(self.port);
            }
        }
    }
}

impl Endpoint {
    fn of(addr: SocketAddr) -> Self {
        Self { ip: addr.ip(), port: addr.port() }
    }

    fn addr(self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// With an IPv4-mapped address as IPv4: both ends of a connection agree on it.
    fn canonical(self) -> Self {
        Self { ip: canonical_ip(self.ip), port: self.port }
    }
}

/// One traced end of a flow (a socket on this host). Its addresses are the flow's:
/// both ends of a connection see the same two, mirrored.
#[derive(Clone, Debug)]
struct Half {
    cookie: u64,
    netns: u32,
    /// Shared with the other flows of the same thread.
    owner: Option<Rc<Owner>>,
    sent_bytes: u64,
    recv_bytes: u64,
    sent_packets: u64,
    recv_packets: u64,
    /// The kernel counts them in 32 bits.
    retransmits: u32,
    srtt_us: Option<NonZeroU32>,
    /// Boot time of the end of this socket's part of the flow.
    closed_ns: Option<NonZeroU64>,
    /// The state the socket closed from (TCP).
    closed_from: Option<TcpState>,
    /// What the live-socket checks found of this socket (TCP).
    liveness: Liveness,
    /// Listed by the live-socket check under way.
    listed: bool,
    /// In the cookie index (a TCP socket whose later events must find its flow).
    indexed: bool,
}

/// What the live-socket checks ([`FlowTable::tcp_check_done`]) found of a TCP socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Liveness {
    /// Listed by the last check (or none ran since it was seen).
    #[default]
    Listed,
    /// Missing from the last check: gone, or closing with its event on its way.
    Missing,
    /// Missing from two checks in a row: closed by the table, its close never seen.
    Gone,
}

impl Half {
    fn new(ev: &SocketEvent, owner: Option<Rc<Owner>>) -> Self {
        Self {
            cookie: ev.cookie,
            netns: ev.netns,
            owner,
            sent_bytes: 0,
            recv_bytes: 0,
            sent_packets: 0,
            recv_packets: 0,
            retransmits: 0,
            srtt_us: None,
            closed_ns: None,
            closed_from: None,
            liveness: Liveness::Listed,
            listed: false,
            indexed: false,
        }
    }

    /// Takes a TCP socket's cumulative counters. `syn_in_sent`: the socket is a
    /// client older than the probe, whose history lacks `SYN_SENT`, so its sent bytes
    /// still count the SYN.
    fn set_tcp_counters(&mut self, c: &TcpCounters, syn_in_sent: bool) {
        self.sent_bytes = c.bytes_sent.saturating_sub(u64::from(syn_in_sent));
        self.recv_bytes = c.bytes_received;
        self.sent_packets = u64::from(c.segs_out);
        self.recv_packets = u64::from(c.segs_in);
        self.retransmits = self.retransmits.max(c.retransmits);
        if let Some(srtt) = NonZeroU32::new(c.srtt_us) {
            self.srtt_us = Some(srtt);
        }
    }

    fn process(&self) -> Option<Process> {
        self.owner.as_ref().map(|o| Process::from_owner(o, self.netns))
    }
}

/// Which end of a connection a socket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

struct Flow {
    id: FlowId,
    proto: Proto,
    /// The client's address and the server's, as the client sees them when it is
    /// traced (as the server sees them otherwise).
    src: Endpoint,
    dst: Endpoint,
    client: Option<Half>,
    server: Option<Half>,
    first_ns: u64,
    last_ns: u64,
    announced: bool,
    last_emit_ns: u64,
    direction: Option<Direction>,
    /// SYN to established, nanoseconds.
    connect_latency_ns: Option<NonZeroU64>,
    connect_error: Option<ConnectError>,
    /// Set when the flow is over for a reason other than its sockets closing.
    end: Option<EndReason>,
    /// The flow is indexed by its tuple, waiting for its other end (TCP).
    waiting: bool,
}

impl Flow {
    fn halves(&self) -> impl Iterator<Item = &Half> {
        self.client.iter().chain(self.server.iter())
    }

    fn slot(&mut self, role: Role) -> &mut Option<Half> {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    /// Every traced end has closed, or the flow ended otherwise.
    fn done(&self) -> bool {
        self.end.is_some() || self.halves().all(|h| h.closed_ns.is_some())
    }

    fn last_close_ns(&self) -> u64 {
        self.halves().filter_map(|h| h.closed_ns).max().map_or(self.last_ns, NonZeroU64::get)
    }

    fn paired(&self) -> bool {
        self.client.is_some() && self.server.is_some()
    }

    /// The key that pairs the traced ends.
    fn tuple(&self) -> TupleKey {
        (self.proto, self.src.canonical(), self.dst.canonical())
    }

    fn end_reason(&self) -> EndReason {
        if let Some(end) = self.end {
            return end;
        }
        // No end was seen closing: the table closed them when their sockets were gone.
        if self.halves().all(|h| h.closed_from.is_none()) && self.halves().any(|h| h.liveness == Liveness::Gone) {
            return EndReason::Gone;
        }
        // An orderly close leaves ESTABLISHED through the FIN states; a socket that
        // goes to CLOSE straight from ESTABLISHED (or with unread data, from
        // CLOSE_WAIT) was reset.
        let aborted = self
            .halves()
            .any(|h| matches!(h.closed_from, Some(TcpState::Established | TcpState::SynRecv | TcpState::CloseWait)));
        if aborted {
            EndReason::Rst
        } else {
            EndReason::Fin
        }
    }
}

/// (client, server) addresses in canonical form: the key that pairs two traced ends.
type TupleKey = (Proto, Endpoint, Endpoint);

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

struct ListenEntry {
    proto: Proto,
    local: SocketAddr,
    netns: u32,
    owner: Option<Owner>,
    first_ns: u64,
}

impl ListenEntry {
    /// The listening socket of `ev`, first seen then.
    fn of(ev: &SocketEvent) -> Self {
        Self { proto: ev.proto, local: ev.local, netns: ev.netns, owner: ev.owner, first_ns: ev.boot_ns }
    }
}

struct Dependency {
    first_ns: u64,
    last_ns: u64,
    flows: u64,
    last_process: Option<Process>,
}

/// How long an outbound destination is listed after its last flow.
pub const DEPENDENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// The flow table.
pub struct FlowTable {
    config: FlowConfig,
    clock: BootClock,
    id_seed: id::IdSeed,
    flows: Slab<Flow>,
    /// Flow keys in creation order (and keys of flows gone since), for eviction.
    created: VecDeque<Key>,
    tcp_by_cookie: HashMap<u64, Key>,
    udp_by_peer: HashMap<(u64, SocketAddr), Key>,
    udp_peers_of: HashMap<u64, Vec<SocketAddr>>,
    by_tuple: HashMap<TupleKey, Key>,
    listens: HashMap<u64, ListenEntry>,
    owners: Owners,
    host: HostAddrs,
    local_ips: HashMap<IpAddr, (u64, u64)>,
    /// The address `see_local_ip` saw last, as given, and whether it is loopback.
    last_local_ip: Option<(IpAddr, bool)>,
    deps: HashMap<(Proto, IpAddr, u16), Dependency>,
    /// Sockets closed by [`FlowTable::tcp_check_done`], with when: a late event of one must
    /// not open a new flow. Forgotten after [`GONE_MEMORY`].
    gone: HashMap<u64, u64>,
    counters: FlowCounters,
}

/// A TCP end closed by [`FlowTable::tcp_check_done`]: its socket is gone and its
/// close never reached the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoneEnd {
    /// The socket's cookie.
    pub cookie: u64,
    /// The server's end (accepted), or the client's.
    pub server: bool,
    /// Its address.
    pub local: SocketAddr,
    /// Its peer's.
    pub remote: SocketAddr,
    /// Its owner's pid and command, when known.
    pub owner: Option<(u32, String)>,
    /// Whether the flow's other end is traced and still open after the check.
    pub other_end_open: bool,
    /// Time since the flow's last event.
    pub idle: Duration,
}

impl GoneEnd {
    /// The server's end of `flow` when `server`, else the client's, just closed as gone.
    fn of(flow: &Flow, server: bool, now_ns: u64) -> Self {
        let (half, other) = if server { (&flow.server, &flow.client) } else { (&flow.client, &flow.server) };
        let half = half.as_ref().expect("a gone end is traced");
        let (src, dst) = (flow.src.addr(), flow.dst.addr());
        let (local, remote) = if server { (dst, src) } else { (src, dst) };
        Self {
            cookie: half.cookie,
            server,
            local,
            remote,
            owner: half.owner.as_deref().map(|o| (o.pid, o.comm.as_str().to_owned())),
            other_end_open: other.as_ref().is_some_and(|h| h.closed_ns.is_none()),
            idle: Duration::from_nanos(now_ns.saturating_sub(flow.last_ns)),
        }
    }
}

/// What a live-socket check closed: see [`FlowTable::tcp_check_done`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckOutcome {
    /// TCP ends closed as gone.
    pub closed: u64,
    /// The first [`GONE_NAMED`] of them.
    pub named: Vec<GoneEnd>,
}

/// How many of the ends a live-socket check closes it names.
pub const GONE_NAMED: usize = 5;

/// How long the table remembers sockets it closed for being gone.
const GONE_MEMORY: Duration = Duration::from_secs(600);

impl FlowTable {
    /// An empty table. `boot_id` makes flow ids unique across reboots.
    #[must_use]
    pub fn new(config: FlowConfig, clock: BootClock, boot_id: &str) -> Self {
        Self {
            config,
            clock,
            id_seed: id::IdSeed::new(boot_id),
            flows: Slab::default(),
            created: VecDeque::new(),
            tcp_by_cookie: HashMap::default(),
            udp_by_peer: HashMap::default(),
            udp_peers_of: HashMap::default(),
            by_tuple: HashMap::default(),
            listens: HashMap::default(),
            owners: Owners::default(),
            host: HostAddrs::default(),
            local_ips: HashMap::default(),
            last_local_ip: None,
            deps: HashMap::default(),
            gone: HashMap::default(),
            counters: FlowCounters::default(),
        }
    }

    /// The stage's counters.
    #[must_use]
    pub fn counters(&self) -> FlowCounters {
        self.counters
    }

    /// Flows currently held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.flows.len() == 0
    }

    /// Records addresses of this host's interfaces, seen at `now_ns`.
    pub fn add_interface_addrs(&mut self, addrs: impl IntoIterator<Item = IpAddr>, now_ns: u64) {
        for ip in addrs {
            self.see_local_ip(ip, now_ns);
        }
    }

    fn see_local_ip(&mut self, given: IpAddr, now_ns: u64) {
        // Events of one burst mostly share their local address: the last one seen is
        // known to be an own address already.
        let ip = canonical_ip(given);
        let loopback = match self.last_local_ip {
            Some((last, loopback)) if last == given => loopback,
            _ => {
                if ip.is_unspecified() {
                    return;
                }
                if !self.host.is_own(ip) {
                    self.host.add_own(ip);
                }
                let loopback = is_loopback(ip);
                self.last_local_ip = Some((given, loopback));
                loopback
            }
        };
        if loopback {
            return;
        }
        let seen = self.local_ips.entry(ip).or_insert((now_ns, now_ns));
        seen.1 = seen.1.max(now_ns);
    }

    /// Folds a batch of socket events into the table, calling `seen` with each
    /// first. A connection's open directly followed by its close (the kernel held
    /// the open back and sent both at once) is folded in one step.
    pub fn on_events<'e>(
        &mut self,
        events: &'e [SocketEvent],
        out: &mut Vec<Record>,
        mut seen: impl FnMut(&'e SocketEvent),
    ) {
        let mut rest = events;
        while let Some((ev, tail)) = rest.split_first() {
            seen(ev);
            rest = tail;
            if let Some(close) = tail.first().filter(|close| opened_then_closed(ev, close)) {
                seen(close);
                rest = &tail[1..];
                self.on_open_close(ev, close, out);
            } else {
                self.on_event(ev, out);
            }
        }
    }

    /// [`FlowTable::on_event`] for an open and then its close, without entering the
    /// socket in the cookie index, which only events after the close would need:
    /// none come for a closed TCP socket.
    fn on_open_close(&mut self, open: &SocketEvent, close: &SocketEvent, out: &mut Vec<Record>) {
        let Detail::Close { from, opening, counters } = &close.detail else { unreachable!("checked by the caller") };
        let unusual = *from == Some(TcpState::Listen)
            || (!self.gone.is_empty() && self.gone.contains_key(&open.cookie))
            || self.tcp_by_cookie.contains_key(&open.cookie)
            || self.listens.contains_key(&open.cookie);
        if unusual {
            self.on_event(open, out);
            self.on_event(close, out);
            return;
        }
        self.see_local_ip(open.local.ip(), open.boot_ns);
        let role = if matches!(open.detail, Detail::Accept) { Role::Server } else { Role::Client };
        let fid = self.tcp_half(open, role, false);
        let Some(flow) = self.flows.get_mut(fid) else { return };
        if let Detail::Connect { latency, .. } = open.detail {
            flow.connect_latency_ns = latency_ns(latency);
        }
        flow.first_ns = flow.first_ns.min(close.boot_ns);
        flow.last_ns = flow.last_ns.max(close.boot_ns);
        let Some(half) = flow.slot(role).as_mut() else { return };
        half.set_tcp_counters(counters, opening.is_none() && role == Role::Client);
        half.closed_ns = Some(instant(close.boot_ns));
        half.closed_from = *from;
        if half.owner.is_none() {
            half.owner = self.owners.intern(close.owner.as_ref());
        }
    }

    /// Folds one socket event into the table; listen records are emitted at once.
    pub fn on_event(&mut self, ev: &SocketEvent, out: &mut Vec<Record>) {
        if !self.gone.is_empty()
            && ev.proto == Proto::Tcp
            && self.gone.contains_key(&ev.cookie)
            && !self.tcp_by_cookie.contains_key(&ev.cookie)
        {
            self.counters.tcp_events_after_gone += 1;
            return;
        }
        match &ev.detail {
            Detail::Listen => self.on_listen(ev, out),
            Detail::Connect { latency, .. } => {
                self.see_local_ip(ev.local.ip(), ev.boot_ns);
                let fid = self.tcp_half(ev, Role::Client, true);
                if let Some(flow) = self.flows.get_mut(fid) {
                    flow.connect_latency_ns = latency_ns(*latency);
                }
            }
            Detail::Accept => {
                self.see_local_ip(ev.local.ip(), ev.boot_ns);
                self.tcp_half(ev, Role::Server, true);
            }
            Detail::ConnectFailed { error, .. } => {
                let fid = self.tcp_half(ev, Role::Client, true);
                if let Some(flow) = self.flows.get_mut(fid) {
                    flow.end = Some(EndReason::FailedConnect);
                    flow.connect_error = Some(*error);
                    if let Some(h) = flow.client.as_mut() {
                        h.closed_ns = Some(instant(ev.boot_ns));
                    }
                }
            }
            Detail::Close { from, opening, counters } => {
                if *from == Some(TcpState::Listen) || self.listens.contains_key(&ev.cookie) {
                    self.on_unlisten(ev, out);
                    return;
                }
                let fid = self.tcp_half(ev, self.role_of(ev, *opening), true);
                if let Some((half, role)) = self.flows.get_mut(fid).and_then(|f| find_half_role(f, ev.cookie)) {
                    half.set_tcp_counters(counters, opening.is_none() && role == Role::Client);
                    half.closed_ns = Some(instant(ev.boot_ns));
                    half.closed_from = *from;
                    if half.owner.is_none() {
                        half.owner = self.owners.intern(ev.owner.as_ref());
                    }
                }
            }
            Detail::Retransmit { count, .. } => {
                if let Some(flow) = self.tcp_by_cookie.get(&ev.cookie).and_then(|&fid| self.flows.get_mut(fid)) {
                    flow.last_ns = flow.last_ns.max(ev.boot_ns);
                    if let Some(half) = find_half(flow, ev.cookie) {
                        half.retransmits = half.retransmits.max(*count);
                    }
                }
            }
            Detail::UdpSend { bytes } => self.on_datagram(ev, *bytes, true),
            Detail::UdpRecv { bytes } => self.on_datagram(ev, *bytes, false),
            Detail::UdpClose => self.on_udp_close(ev, out),
            Detail::Snapshot { state, opening, counters } => {
                self.on_snapshot(ev, *state, *opening, counters.as_ref(), out);
            }
        }
    }

    /// A socket found open by the iterator: a listener or connection older than the
    /// probe, or fresh counters of a connection already known.
    fn on_snapshot(
        &mut self,
        ev: &SocketEvent,
        state: Option<TcpState>,
        opening: Option<Opening>,
        counters: Option<&TcpCounters>,
        out: &mut Vec<Record>,
    ) {
        let bound_udp = ev.proto == Proto::Udp && ev.remote.port() == 0 && ev.local.port() != 0;
        if state == Some(TcpState::Listen) || bound_udp {
            if !self.listens.contains_key(&ev.cookie) {
                self.on_listen(ev, out);
            }
            return;
        }
        let (Some(state), Some(counters)) = (state, counters) else { return };
        // Not connected yet, or closed already and only still held by a descriptor:
        // the close was reported (or the live-socket check will close the flow once
        // the socket is freed); such a socket must not open a flow again.
        if matches!(state, TcpState::SynSent | TcpState::Close) {
            return;
        }
        self.see_local_ip(ev.local.ip(), ev.boot_ns);
        let fid = self.tcp_half(ev, self.role_of(ev, opening), true);
        let Some(flow) = self.flows.get_mut(fid) else { return };
        let Some((half, role)) = find_half_role(flow, ev.cookie) else { return };
        if half.closed_ns.is_some() {
            return;
        }
        let before = (half.sent_bytes, half.recv_bytes);
        half.set_tcp_counters(counters, opening.is_none() && role == Role::Client);
        if (half.sent_bytes, half.recv_bytes) != before {
            flow.last_ns = flow.last_ns.max(ev.boot_ns);
        }
    }

    /// The role of a TCP socket from its history, or, for a socket older than the
    /// probe, from whether its port is listened on.
    fn role_of(&self, ev: &SocketEvent, opening: Option<Opening>) -> Role {
        let server = match opening {
            Some(o) => o == Opening::Passive,
            None => self.host.is_listening(ev.netns, Proto::Tcp, ev.local.port()),
        };
        if server {
            Role::Server
        } else {
            Role::Client
        }
    }

    fn on_listen(&mut self, ev: &SocketEvent, out: &mut Vec<Record>) {
        self.see_local_ip(ev.local.ip(), ev.boot_ns);
        self.host.listen(ev.netns, ev.proto, ev.local.port());
        let entry = ListenEntry::of(ev);
        out.push(self.listen_record(&entry, FlowState::Open, ev.boot_ns));
        self.listens.insert(ev.cookie, entry);
    }

    fn on_unlisten(&mut self, ev: &SocketEvent, out: &mut Vec<Record>) {
        let entry = self.listens.remove(&ev.cookie).unwrap_or_else(|| ListenEntry::of(ev));
        self.host.unlisten(entry.netns, entry.proto, entry.local.port());
        out.push(self.listen_record(&entry, FlowState::Closed, ev.boot_ns));
    }

    fn listen_record(&self, entry: &ListenEntry, state: FlowState, now_ns: u64) -> Record {
        Record::Listen(ListenRecord {
            proto: entry.proto,
            ip_version: if entry.local.is_ipv4() { 4 } else { 6 },
            ip: entry.local.ip(),
            port: entry.local.port(),
            netns: entry.netns,
            state,
            first_seen: self.clock.wall_time(entry.first_ns),
            last_seen: self.clock.wall_time(now_ns),
            process: entry.owner.as_ref().map(|o| Process::from_owner(o, entry.netns)),
        })
    }

    /// The flow of a TCP socket, created (and paired with its other end when that
    /// is traced and waiting) if new, and entered in the cookie index when `index`.
    /// Returns the flow's key.
    fn tcp_half(&mut self, ev: &SocketEvent, role: Role, index: bool) -> Key {
        if let Some(&fid) = self.tcp_by_cookie.get(&ev.cookie).filter(|_| index) {
            if let Some(flow) = self.flows.get_mut(fid) {
                // An open the kernel held back can come after a snapshot of its socket.
                flow.first_ns = flow.first_ns.min(ev.boot_ns);
                flow.last_ns = flow.last_ns.max(ev.boot_ns);
                if let Some(half) = find_half(flow, ev.cookie) {
                    // An accept names the real owner of a socket first seen otherwise.
                    if ev.owner.is_some() && (half.owner.is_none() || matches!(ev.detail, Detail::Accept)) {
                        half.owner = self.owners.intern(ev.owner.as_ref());
                    }
                }
                return fid;
            }
        }
        let (client, server) = client_server_of(ev, role);
        let tuple = (Proto::Tcp, client.canonical(), server.canonical());
        // The other end waiting for this one: taken out of the index in one lookup.
        let waiting = match self.by_tuple.entry(tuple) {
            Entry::Occupied(e)
                if self.flows.get(*e.get()).is_some_and(|f| match role {
                    Role::Client => f.client.is_none(),
                    Role::Server => f.server.is_none(),
                }) =>
            {
                Some(e.remove())
            }
            _ => None,
        };
        let fid = if let Some(fid) = waiting {
            let owner = self.owners.intern(ev.owner.as_ref());
            let flow = self.flows.get_mut(fid).expect("indexed flow exists");
            flow.waiting = false;
            flow.first_ns = flow.first_ns.min(ev.boot_ns);
            flow.last_ns = flow.last_ns.max(ev.boot_ns);
            if role == Role::Client {
                // Same addresses, mirrored; but an IPv6 socket's IPv4-mapped form is its own.
                (flow.src, flow.dst) = (client, server);
            }
            *flow.slot(role) = Some(Half::new(ev, owner));
            fid
        } else {
            let fid = self.insert_flow(Proto::Tcp, ev, role, None);
            if let Entry::Vacant(e) = self.by_tuple.entry(tuple) {
                e.insert(fid);
                if let Some(flow) = self.flows.get_mut(fid) {
                    flow.waiting = true;
                }
            }
            fid
        };
        if index {
            self.tcp_by_cookie.insert(ev.cookie, fid);
            if let Some(half) = self.flows.get_mut(fid).and_then(|f| f.slot(role).as_mut()) {
                half.indexed = true;
            }
        }
        fid
    }

    fn insert_flow(&mut self, proto: Proto, ev: &SocketEvent, role: Role, peer: Option<SocketAddr>) -> Key {
        if self.flows.len() >= self.config.max_flows {
            self.evict_oldest();
        }
        let (src, dst) = client_server_of(ev, role);
        let mut flow = Flow {
            id: id::seeded_flow_id(self.id_seed, ev.netns, ev.cookie, peer),
            proto,
            src,
            dst,
            client: None,
            server: None,
            first_ns: ev.boot_ns,
            last_ns: ev.boot_ns,
            announced: false,
            last_emit_ns: ev.boot_ns,
            direction: None,
            connect_latency_ns: None,
            connect_error: None,
            end: None,
            waiting: false,
        };
        *flow.slot(role) = Some(Half::new(ev, self.owners.intern(ev.owner.as_ref())));
        let fid = self.flows.insert(flow);
        self.created.push_back(fid);
        // Ended flows leave their keys behind in `created`; dropping them once they
        // outnumber the live flows keeps memory flat at an amortised O(1) per flow.
        if self.created.len() > 2 * self.flows.len() + 1024 {
            let flows = &self.flows;
            self.created.retain(|&fid| flows.contains(fid));
        }
        fid
    }

    /// Flow ids held for eviction order (live flows, plus ended ones not yet dropped).
    #[cfg(test)]
    pub(crate) fn eviction_queue_len(&self) -> usize {
        self.created.len()
    }

    /// Forgets the oldest flow still held; its record goes nowhere but the counter.
    fn evict_oldest(&mut self) {
        while let Some(fid) = self.created.pop_front() {
            if self.remove_flow(fid) {
                self.counters.flows_evicted += 1;
                return;
            }
        }
    }

    /// Forgets flow `fid` and its index entries; false when it was gone already.
    fn remove_flow(&mut self, fid: Key) -> bool {
        let Some(flow) = self.flows.get(fid) else { return false };
        for half in flow.halves() {
            match flow.proto {
                Proto::Tcp if half.indexed => {
                    self.tcp_by_cookie.remove(&half.cookie);
                }
                Proto::Tcp => {}
                Proto::Udp => {
                    // A UDP flow has one traced end: its peer is the other address.
                    let peer = canonical(if flow.client.is_some() { flow.dst } else { flow.src }.addr());
                    self.udp_by_peer.remove(&(half.cookie, peer));
                    if let Some(peers) = self.udp_peers_of.get_mut(&half.cookie) {
                        peers.retain(|p| *p != peer);
                        if peers.is_empty() {
                            self.udp_peers_of.remove(&half.cookie);
                        }
                    }
                }
            }
        }
        if flow.waiting {
            let tuple = flow.tuple();
            if self.by_tuple.get(&tuple) == Some(&fid) {
                self.by_tuple.remove(&tuple);
            }
        }
        self.flows.remove(fid)
    }

    fn on_datagram(&mut self, ev: &SocketEvent, bytes: u64, sent: bool) {
        if ev.remote.port() == 0 {
            self.counters.udp_peer_unknown += 1;
            return;
        }
        self.see_local_ip(ev.local.ip(), ev.boot_ns);
        let peer = canonical(ev.remote);
        let fid = if let Some(&fid) = self.udp_by_peer.get(&(ev.cookie, peer)) {
            fid
        } else {
            // A bound socket, or one whose first datagram came in, is the server's end;
            // the one that spoke first is the client.
            let server = self.listens.contains_key(&ev.cookie) || !sent;
            let role = if server { Role::Server } else { Role::Client };
            let fid = self.insert_flow(Proto::Udp, ev, role, Some(peer));
            self.udp_by_peer.insert((ev.cookie, peer), fid);
            self.udp_peers_of.entry(ev.cookie).or_default().push(peer);
            fid
        };
        let Some(flow) = self.flows.get_mut(fid) else { return };
        flow.last_ns = flow.last_ns.max(ev.boot_ns);
        if let Some(half) = flow.client.as_mut().or(flow.server.as_mut()) {
            if sent {
                half.sent_bytes += bytes;
                half.sent_packets += 1;
            } else {
                half.recv_bytes += bytes;
                half.recv_packets += 1;
            }
            if half.owner.is_none() {
                half.owner = self.owners.intern(ev.owner.as_ref());
            }
        }
    }

    fn on_udp_close(&mut self, ev: &SocketEvent, out: &mut Vec<Record>) {
        if self.listens.contains_key(&ev.cookie) {
            self.on_unlisten(ev, out);
        }
        for peer in self.udp_peers_of.get(&ev.cookie).cloned().unwrap_or_default() {
            if let Some(flow) = self.udp_by_peer.get(&(ev.cookie, peer)).and_then(|&fid| self.flows.get_mut(fid)) {
                flow.end = Some(EndReason::Close);
                flow.last_ns = flow.last_ns.max(ev.boot_ns);
            }
        }
    }

    /// Emits what is due at `now_ns`: first records of flows past the pairing window,
    /// periodic updates, closed flows (removed), idle UDP flows (closed as timeout).
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Record>) {
        let pair = ns(self.config.pair_window);
        let update = ns(self.config.update_interval);
        let idle = ns(self.config.udp_idle_timeout);
        let mut finished = Vec::new();
        let mut due = Vec::new();
        for (fid, flow) in self.flows.iter_mut() {
            if flow.proto == Proto::Udp && flow.end.is_none() && now_ns.saturating_sub(flow.last_ns) >= idle {
                flow.end = Some(EndReason::Timeout);
            }
            if flow.done() {
                // TCP: wait for the other end of an intra-host connection to close too.
                let settled =
                    flow.proto == Proto::Udp || flow.paired() || now_ns.saturating_sub(flow.last_close_ns()) >= pair;
                if settled {
                    finished.push(fid);
                }
            } else if !flow.announced && now_ns.saturating_sub(flow.first_ns) >= pair {
                due.push((fid, FlowState::Open));
            } else if flow.announced && now_ns.saturating_sub(flow.last_emit_ns) >= update {
                due.push((fid, FlowState::Update));
            }
        }
        for (fid, state) in due {
            self.emit(fid, state, now_ns, out);
        }
        for fid in finished {
            self.emit(fid, FlowState::Closed, now_ns, out);
            self.remove_flow(fid);
        }
    }

    /// A live-socket check lists TCP socket `cookie`: the kernel still has it. Call for
    /// every socket the check lists, then [`FlowTable::tcp_check_done`].
    pub fn tcp_listed(&mut self, cookie: u64) {
        if let Some(half) =
            self.tcp_by_cookie.get(&cookie).and_then(|&fid| self.flows.get_mut(fid)).and_then(|f| find_half(f, cookie))
        {
            half.listed = true;
        }
    }

    /// Ends a live-socket check taken at `now_ns`: closes the TCP ends whose sockets
    /// the kernel has freed without a close event reaching the table (one the kernel
    /// skipped, or one lost with a full ring buffer). An end missing from two checks
    /// in a row is gone: after one, its close event may still be on its way. Returns
    /// how many ends this check closed, the first [`GONE_NAMED`] of them named.
    pub fn tcp_check_done(&mut self, now_ns: u64) -> CheckOutcome {
        let mut outcome = CheckOutcome::default();
        let mut gone_cookies = Vec::new();
        for (_, flow) in self.flows.iter_mut() {
            if flow.proto != Proto::Tcp || flow.end.is_some() {
                continue;
            }
            let last_ns = flow.last_ns;
            let mut gone_here = [false; 2];
            for (i, half) in [flow.client.as_mut(), flow.server.as_mut()].into_iter().enumerate() {
                let Some(half) = half else { continue };
                let listed = std::mem::take(&mut half.listed);
                // Cookie 0: a socket the kernel never named, which no check can list.
                if half.closed_ns.is_some() || half.cookie == 0 {
                    continue;
                }
                half.liveness = match (listed, half.liveness) {
                    (true, _) => Liveness::Listed,
                    (false, Liveness::Listed) => Liveness::Missing,
                    (false, _) => {
                        half.closed_ns = Some(instant(last_ns));
                        gone_cookies.push(half.cookie);
                        gone_here[i] = true;
                        Liveness::Gone
                    }
                };
            }
            for (i, _) in gone_here.iter().enumerate().filter(|(_, gone)| **gone) {
                outcome.closed += 1;
                if outcome.named.len() < GONE_NAMED {
                    outcome.named.push(GoneEnd::of(flow, i == 1, now_ns));
                }
            }
        }
        self.counters.tcp_closes_missed += outcome.closed;
        let memory = ns(GONE_MEMORY);
        self.gone.retain(|_, at| now_ns.saturating_sub(*at) < memory);
        self.gone.extend(gone_cookies.into_iter().map(|cookie| (cookie, now_ns)));
        outcome
    }

    /// At shutdown: every flow's last record — `closed` for ended ones, a final
    /// `update` for those still open — then the inventory.
    pub fn flush(&mut self, now_ns: u64, out: &mut Vec<Record>) {
        // In creation order: every live flow is in `created`.
        while let Some(fid) = self.created.pop_front() {
            let Some(flow) = self.flows.get(fid) else { continue };
            let state = if flow.done() { FlowState::Closed } else { FlowState::Update };
            self.emit(fid, state, now_ns, out);
            self.remove_flow(fid);
        }
        self.inventory(now_ns, out);
    }

    /// The listening sockets, outbound dependencies and local addresses known now.
    /// Dependencies unused for [`DEPENDENCY_TTL`] are forgotten first, so a host
    /// reaching ever new destinations does not grow the table without end.
    pub fn inventory(&mut self, now_ns: u64, out: &mut Vec<Record>) {
        let ttl = ns(DEPENDENCY_TTL);
        self.deps.retain(|_, dep| now_ns.saturating_sub(dep.last_ns) < ttl);
        self.release_memory();
        let mut listens: Vec<&ListenEntry> = self.listens.values().collect();
        listens.sort_by_key(|l| (l.netns, l.local.port(), l.first_ns));
        for entry in listens {
            out.push(self.listen_record(entry, FlowState::Open, now_ns));
        }
        let mut deps: Vec<_> = self.deps.iter().collect();
        deps.sort_by_key(|((proto, ip, port), _)| (*ip, *port, proto.name()));
        for ((proto, ip, port), dep) in deps {
            out.push(Record::Dependency(DependencyRecord {
                proto: *proto,
                ip: *ip,
                port: *port,
                first_seen: self.clock.wall_time(dep.first_ns),
                last_seen: self.clock.wall_time(dep.last_ns),
                flows: dep.flows,
                last_process: dep.last_process.clone(),
            }));
        }
        let mut ips: Vec<_> = self.local_ips.iter().collect();
        ips.sort();
        for (ip, (first, last)) in ips {
            out.push(Record::LocalIp(LocalIpRecord {
                ip: *ip,
                first_seen: self.clock.wall_time(*first),
                last_seen: self.clock.wall_time(*last),
            }));
        }
    }

    /// Hands back what a past peak of flows left allocated: the slab's empty tail,
    /// oversized indexes, owners no flow holds. Runs at each inventory; call it as
    /// well before trimming the heap, so that memory follows the live flows.
    pub fn release_memory(&mut self) {
        self.flows.shrink();
        self.owners.sweep();
        shrink_map(&mut self.tcp_by_cookie);
        shrink_map(&mut self.udp_by_peer);
        shrink_map(&mut self.udp_peers_of);
        shrink_map(&mut self.by_tuple);
        if oversized(self.created.capacity(), self.created.len()) {
            self.created.shrink_to_fit();
        }
    }

    fn emit(&mut self, fid: Key, state: FlowState, now_ns: u64, out: &mut Vec<Record>) {
        let Some(flow) = self.flows.get_mut(fid) else { return };
        let direction = *flow.direction.get_or_insert_with(|| {
            let (src, dst) = (flow.src.addr(), flow.dst.addr());
            let client = |h: &Half| End { netns: h.netns, local: src, remote: dst, server: Some(false) };
            let server = |h: &Half| End { netns: h.netns, local: dst, remote: src, server: Some(true) };
            match (&flow.client, &flow.server) {
                (Some(c), Some(s)) => classify(&self.host, flow.proto, &[client(c), server(s)]),
                (Some(c), None) => classify(&self.host, flow.proto, &[client(c)]),
                (None, Some(s)) => classify(&self.host, flow.proto, &[server(s)]),
                (None, None) => classify(&self.host, flow.proto, &[]),
            }
        });
        let first_record = !flow.announced;
        flow.announced = true;
        flow.last_emit_ns = now_ns;
        let record = flow_record(flow, direction, state, &self.clock);
        if direction == Direction::Outbound {
            let dep = self
                .deps
                .entry((record.proto, canonical_ip(record.dst_ip), record.dst_port))
                .or_insert(Dependency { first_ns: flow.first_ns, last_ns: flow.last_ns, flows: 0, last_process: None });
            dep.last_ns = dep.last_ns.max(flow.last_ns);
            if first_record {
                dep.flows += 1;
            }
            if record.src_process.is_some() {
                dep.last_process.clone_from(&record.src_process);
            }
        }
        self.counters.flow_records += 1;
        out.push(Record::Flow(record));
    }
}

/// Whether a collection holds so much less than its capacity that shrinking it is
/// worth a copy: collections never shrink on their own, and a past burst would keep
/// its whole allocation resident.
fn oversized(capacity: usize, len: usize) -> bool {
    capacity > 4 * len + 1024
}

/// Shrinks a map that is [`oversized`].
fn shrink_map<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if oversized(map.capacity(), map.len()) {
        map.shrink_to_fit();
    }
}

/// The client's address and the server's as `ev`'s socket, end `role` of its flow,
/// sees them.
fn client_server_of(ev: &SocketEvent, role: Role) -> (Endpoint, Endpoint) {
    let (local, remote) = (Endpoint::of(ev.local), Endpoint::of(ev.remote));
    match role {
        Role::Client => (local, remote),
        Role::Server => (remote, local),
    }
}

/// Whether `close` is the close of the connection `open` opened (the kernel sends
/// an open it held back together with its close).
fn opened_then_closed(open: &SocketEvent, close: &SocketEvent) -> bool {
    matches!(open.detail, Detail::Connect { .. } | Detail::Accept)
        && matches!(close.detail, Detail::Close { .. })
        && open.cookie == close.cookie
        && open.proto == Proto::Tcp
        && close.proto == Proto::Tcp
}

/// A connect's `SYN_SENT` to ESTABLISHED time in nanoseconds, when measured.
fn latency_ns(latency: Option<Duration>) -> Option<NonZeroU64> {
    latency.and_then(|d| NonZeroU64::new(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}

fn find_half(flow: &mut Flow, cookie: u64) -> Option<&mut Half> {
    find_half_role(flow, cookie).map(|(half, _)| half)
}

/// The traced end of `flow` that is socket `cookie`, and which end it is.
fn find_half_role(flow: &mut Flow, cookie: u64) -> Option<(&mut Half, Role)> {
    if flow.client.as_ref().is_some_and(|h| h.cookie == cookie) {
        flow.client.as_mut().map(|h| (h, Role::Client))
    } else if flow.server.as_ref().is_some_and(|h| h.cookie == cookie) {
        flow.server.as_mut().map(|h| (h, Role::Server))
    } else {
        None
    }
}

fn flow_record(flow: &Flow, direction: Direction, state: FlowState, clock: &BootClock) -> FlowRecord {
    let (src, dst) = (flow.src, flow.dst);
    let c = flow.client.as_ref();
    let s = flow.server.as_ref();
    // Each end counts what it sent itself; the other end's receive counts stand in
    // when only one end is traced.
    let src_bytes = c.map_or_else(|| s.map_or(0, |s| s.recv_bytes), |c| c.sent_bytes);
    let dst_bytes = s.map_or_else(|| c.map_or(0, |c| c.recv_bytes), |s| s.sent_bytes);
    let src_packets = c.map_or_else(|| s.map_or(0, |s| s.recv_packets), |c| c.sent_packets);
    let dst_packets = s.map_or_else(|| c.map_or(0, |c| c.recv_packets), |s| s.sent_packets);
    let netns = c.or(s).map_or(0, |h| h.netns);
    FlowRecord {
        flow_id: flow.id,
        proto: flow.proto,
        ip_version: if src.ip.is_ipv4() { 4 } else { 6 },
        src_ip: src.ip,
        src_port: src.port,
        dst_ip: dst.ip,
        dst_port: dst.port,
        direction,
        state,
        first_seen: clock.wall_time(flow.first_ns),
        last_seen: clock.wall_time(flow.last_ns.max(flow.last_close_ns())),
        src_bytes,
        dst_bytes,
        src_packets,
        dst_packets,
        retransmits: flow.halves().map(|h| u64::from(h.retransmits)).sum(),
        src_retransmits: (flow.proto == Proto::Tcp).then_some(c.map(|h| u64::from(h.retransmits))).flatten(),
        dst_retransmits: (flow.proto == Proto::Tcp).then_some(s.map(|h| u64::from(h.retransmits))).flatten(),
        srtt_us: c.and_then(|h| h.srtt_us).or_else(|| s.and_then(|h| h.srtt_us)).map(NonZeroU32::get),
        #[allow(clippy::cast_precision_loss, reason = "latencies are far below 2^53 ns")]
        connect_latency_us: flow.connect_latency_ns.map(|ns| ns.get() as f64 / 1e3),
        end_reason: (state == FlowState::Closed).then(|| flow.end_reason()),
        connect_error: flow.connect_error.map(ConnectError::reason),
        netns,
        src_process: c.and_then(Half::process),
        dst_process: s.and_then(Half::process),
    }
}

#[cfg(test)]
mod tests;
