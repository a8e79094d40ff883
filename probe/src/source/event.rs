//! Domain events: what the kernel saw, decoded once from [`RawEvent`] into Rust types.
//!
//! Everything after the source stage works on [`SocketEvent`]; nothing downstream
//! sees raw kernel records. Decoding also turns TCP sequence-space counters into
//! payload bytes (see [`payload_bytes`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use packetless_ebpf::abi::{flags, EventKind, RawEvent};

use super::clock::BootClock;

/// Transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// Lowercase name, as in JSON output.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// TCP states, numbered as in `include/net/tcp_states.h` (UAPI-stable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// ESTABLISHED (1).
    Established,
    /// `SYN_SENT` (2).
    SynSent,
    /// `SYN_RECV` (3).
    SynRecv,
    /// `FIN_WAIT1` (4).
    FinWait1,
    /// `FIN_WAIT2` (5).
    FinWait2,
    /// `TIME_WAIT` (6).
    TimeWait,
    /// CLOSE (7).
    Close,
    /// `CLOSE_WAIT` (8).
    CloseWait,
    /// `LAST_ACK` (9).
    LastAck,
    /// LISTEN (10).
    Listen,
    /// CLOSING (11).
    Closing,
    /// `NEW_SYN_RECV` (12).
    NewSynRecv,
}

impl TcpState {
    /// The state with kernel number `n`.
    #[must_use]
    pub fn from_raw(n: u8) -> Option<Self> {
        Some(match n {
            1 => Self::Established,
            2 => Self::SynSent,
            3 => Self::SynRecv,
            4 => Self::FinWait1,
            5 => Self::FinWait2,
            6 => Self::TimeWait,
            7 => Self::Close,
            8 => Self::CloseWait,
            9 => Self::LastAck,
            10 => Self::Listen,
            11 => Self::Closing,
            12 => Self::NewSynRecv,
            _ => return None,
        })
    }

    /// Kernel number of the state.
    #[must_use]
    pub fn raw(self) -> u8 {
        match self {
            Self::Established => 1,
            Self::SynSent => 2,
            Self::SynRecv => 3,
            Self::FinWait1 => 4,
            Self::FinWait2 => 5,
            Self::TimeWait => 6,
            Self::Close => 7,
            Self::CloseWait => 8,
            Self::LastAck => 9,
            Self::Listen => 10,
            Self::Closing => 11,
            Self::NewSynRecv => 12,
        }
    }

    /// Name as `ss` prints it, lowercase.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Established => "established",
            Self::SynSent => "syn_sent",
            Self::SynRecv => "syn_recv",
            Self::FinWait1 => "fin_wait1",
            Self::FinWait2 => "fin_wait2",
            Self::TimeWait => "time_wait",
            Self::Close => "close",
            Self::CloseWait => "close_wait",
            Self::LastAck => "last_ack",
            Self::Listen => "listen",
            Self::Closing => "closing",
            Self::NewSynRecv => "new_syn_recv",
        }
    }
}

/// A short string stored inline (no allocation): command names and executable
/// basenames, copied with every event.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortStr<const N: usize> {
    bytes: [u8; N],
    len: u8,
}

impl<const N: usize> ShortStr<N> {
    /// `s`, cut at `N` bytes on a character boundary.
    #[must_use]
    pub fn new(s: &str) -> Self {
        let mut end = s.len().min(N).min(usize::from(u8::MAX));
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; N];
        bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        // end <= u8::MAX by the min above.
        Self { bytes, len: u8::try_from(end).unwrap_or(u8::MAX) }
    }

    /// A NUL-padded C string (invalid UTF-8 is replaced).
    #[must_use]
    pub fn from_c(bytes: &[u8]) -> Self {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        // Every event carries three of these; nearly all are short ASCII, which is
        // valid UTF-8 cut anywhere.
        if end <= N.min(usize::from(u8::MAX)) && bytes[..end].is_ascii() {
            let mut out = [0u8; N];
            out[..end].copy_from_slice(&bytes[..end]);
            return Self { bytes: out, len: u8::try_from(end).unwrap_or(u8::MAX) };
        }
        match std::str::from_utf8(&bytes[..end]) {
            Ok(s) => Self::new(s),
            Err(_) => Self::new(&String::from_utf8_lossy(&bytes[..end])),
        }
    }

    /// The string. Read for every record (comparisons, output): not validated again.
    #[must_use]
    pub fn as_str(&self) -> &str {
        let bytes = &self.bytes[..usize::from(self.len)];
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        // SAFETY: the fields are private and only the constructors above write them:
        // `new` copies whole characters of a `str`, `from_c` ASCII or a `str`'s
        // characters through `new`, `default` nothing. So `bytes` is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl<const N: usize> Default for ShortStr<N> {
    fn default() -> Self {
        Self { bytes: [0; N], len: 0 }
    }
}

impl<const N: usize> std::ops::Deref for ShortStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> std::fmt::Debug for ShortStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> std::fmt::Display for ShortStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> From<&str> for ShortStr<N> {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl<const N: usize> PartialEq<&str> for ShortStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> serde::Serialize for ShortStr<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A command name (`comm`, at most 15 bytes in the kernel).
pub type Comm = ShortStr<16>;
/// An executable basename as the kernel records it (cut at 31 bytes).
pub type ExeName = ShortStr<32>;

/// The process that owns a socket, as the kernel recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Command name (`comm`, at most 15 bytes).
    pub comm: Comm,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// Taken from the task running at this event rather than from socket storage.
    pub from_current: bool,
    /// Parent process id (0 when unknown).
    pub ppid: u32,
    /// Parent's command name.
    pub parent_comm: Comm,
    /// Basename of the executable, as the kernel had it (at most 31 bytes).
    pub exe: ExeName,
    /// Process start, `CLOCK_BOOTTIME` nanoseconds: with the pid, a key that survives
    /// pid reuse.
    pub start_ns: u64,
    /// The process's exec counter when the kernel recorded the owner (+1 at every
    /// execve): with pid and start time, a key that tells program images apart.
    pub exec_id: u32,
}

impl Owner {
    /// The facts enrichment keys on.
    #[must_use]
    pub fn facts(&self) -> packetless_enrich::KernelFacts {
        packetless_enrich::KernelFacts {
            pid: self.pid,
            start_ns: self.start_ns,
            exec_id: self.exec_id,
            uid: self.uid,
            gid: self.gid,
            cgroup_id: self.cgroup_id,
            ppid: self.ppid,
        }
    }
}

/// Why an active open failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectError {
    /// Positive errno from `sk_err`; 0 when the application gave up (close before
    /// the handshake completed).
    pub errno: i32,
}

impl ConnectError {
    /// Short stable name: `refused`, `timeout`, `host_unreachable`, `net_unreachable`,
    /// `reset`, `aborted`, or `errno_<n>`.
    #[must_use]
    pub fn reason(self) -> String {
        match self.errno {
            0 => "aborted".to_owned(),
            libc::ECONNREFUSED => "refused".to_owned(),
            libc::ETIMEDOUT => "timeout".to_owned(),
            libc::EHOSTUNREACH => "host_unreachable".to_owned(),
            libc::ENETUNREACH => "net_unreachable".to_owned(),
            libc::ECONNRESET => "reset".to_owned(),
            n => format!("errno_{n}"),
        }
    }
}

/// How a TCP connection was opened, seen from one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// This socket connected (it is the client).
    Active,
    /// This socket was accepted (it is the server's end).
    Passive,
}

/// Final counters of a TCP socket, in payload bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Payload bytes sent and acknowledged by the peer.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Segments received.
    pub segs_in: u32,
    /// Segments sent.
    pub segs_out: u32,
    /// Retransmitted segments (the kernel's total).
    pub retransmits: u32,
    /// Smoothed RTT, microseconds.
    pub srtt_us: u32,
}

/// What happened, with the fields specific to each kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Active open completed.
    Connect {
        /// `SYN_SENT` to ESTABLISHED.
        latency: Option<Duration>,
        /// Smoothed RTT after the handshake, microseconds.
        srtt_us: u32,
    },
    /// Active open failed.
    ConnectFailed {
        /// Why.
        error: ConnectError,
        /// Time from `SYN_SENT` to the failure.
        after: Option<Duration>,
    },
    /// `accept()` returned the socket.
    Accept,
    /// TCP socket closed.
    Close {
        /// State it left for CLOSE.
        from: Option<TcpState>,
        /// How the connection was opened, when the socket's history says so.
        opening: Option<Opening>,
        /// Final counters.
        counters: TcpCounters,
    },
    /// A segment was retransmitted.
    Retransmit {
        /// Retransmissions seen on this socket so far.
        count: u32,
        /// State of the socket.
        state: Option<TcpState>,
        /// Smoothed RTT, microseconds.
        srtt_us: u32,
    },
    /// UDP datagram sent.
    UdpSend {
        /// Payload bytes.
        bytes: u64,
    },
    /// UDP datagram received.
    UdpRecv {
        /// Payload bytes.
        bytes: u64,
    },
    /// TCP LISTEN or UDP bind.
    Listen,
    /// UDP socket released.
    UdpClose,
    /// An open socket found by the iterator (at start, and periodically).
    Snapshot {
        /// TCP state (TCP only).
        state: Option<TcpState>,
        /// How it was opened, when its history says so (TCP).
        opening: Option<Opening>,
        /// Live counters (TCP, not listening).
        counters: Option<TcpCounters>,
    },
}

impl Detail {
    /// Event name as in JSON output.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::ConnectFailed { .. } => "connect_failed",
            Self::Accept => "accept",
            Self::Close { .. } => "close",
            Self::Retransmit { .. } => "retransmit",
            Self::UdpSend { .. } => "send",
            Self::UdpRecv { .. } => "recv",
            Self::Listen => "listen",
            Self::UdpClose => "udp_close",
            Self::Snapshot { .. } => "snapshot",
        }
    }
}

/// One kernel event, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketEvent {
    /// Wall-clock time of the event.
    pub time: SystemTime,
    /// `CLOCK_BOOTTIME` nanoseconds (monotonic; for ordering and durations).
    pub boot_ns: u64,
    /// Socket cookie (0 if the kernel had not assigned one).
    pub cookie: u64,
    /// Network namespace inode.
    pub netns: u32,
    /// Transport.
    pub proto: Proto,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port (unspecified when unknown).
    pub remote: SocketAddr,
    /// Owner, when the kernel knew it.
    pub owner: Option<Owner>,
    /// Kind-specific fields.
    pub detail: Detail,
}

/// Why a record could not be decoded (counted by the source, never fatal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than a record.
    #[error("record of {0} bytes is shorter than an event")]
    Short(usize),
    /// Unknown event kind.
    #[error("unknown event kind {0}")]
    Kind(u16),
    /// Neither `AF_INET` nor `AF_INET6`.
    #[error("unknown address family {0}")]
    Family(u16),
    /// Neither TCP nor UDP.
    #[error("unknown protocol {0}")]
    Proto(u8),
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

fn state_bit(state: TcpState) -> u32 {
    1 << state.raw()
}

/// Payload bytes (sent, received) from `tcp_sock` sequence-space counters.
///
/// `bytes_acked` counts our SYN when we opened actively and the handshake
/// completed, and our FIN once the peer acknowledged it; `bytes_received` counts
/// the peer's FIN. Measured: a client that wrote 20000 bytes and closed shows
/// acked 20002; the accepting side, which never counts a SYN, shows 10001 for
/// 10000 bytes written.
#[must_use]
pub fn payload_bytes(raw: &RawEvent) -> (u64, u64) {
    let seen = raw.states_seen;
    let active_open_done = seen & state_bit(TcpState::SynSent) != 0 && seen & state_bit(TcpState::Established) != 0;
    let fin_sent =
        seen & (state_bit(TcpState::FinWait1) | state_bit(TcpState::LastAck) | state_bit(TcpState::Closing)) != 0;
    let fin_acked = fin_sent && raw.flags & flags::ALL_ACKED != 0;
    let sent = raw.bytes_acked.saturating_sub(u64::from(active_open_done) + u64::from(fin_acked));
    let received = raw.bytes_received.saturating_sub(u64::from(raw.flags & flags::FIN_RECEIVED != 0));
    (sent, received)
}

/// How the socket was opened, from the states it was seen in.
fn opening(raw: &RawEvent) -> Option<Opening> {
    let seen = |state: TcpState| raw.states_seen & state_bit(state) != 0;
    if seen(TcpState::SynSent) {
        Some(Opening::Active)
    } else if seen(TcpState::SynRecv) {
        Some(Opening::Passive)
    } else {
        None
    }
}

fn tcp_counters(raw: &RawEvent) -> TcpCounters {
    let (bytes_sent, bytes_received) = payload_bytes(raw);
    TcpCounters {
        bytes_sent,
        bytes_received,
        segs_in: raw.segs_in,
        segs_out: raw.segs_out,
        retransmits: raw.total_retrans,
        srtt_us: raw.srtt_us,
    }
}

fn addr(family: u16, bytes: &[u8; 16], port: u16) -> SocketAddr {
    let ip = if family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    };
    SocketAddr::new(ip, port)
}

fn nonzero_duration(ns: u64) -> Option<Duration> {
    (ns != 0).then(|| Duration::from_nanos(ns))
}

impl SocketEvent {
    /// Decodes one ring-buffer record.
    ///
    /// # Errors
    /// [`DecodeError`] for short records or values this build does not know.
    pub fn decode(bytes: &[u8], clock: &BootClock) -> Result<Self, DecodeError> {
        let raw = RawEvent::from_bytes(bytes).ok_or(DecodeError::Short(bytes.len()))?;
        Self::from_raw(&raw, clock)
    }

    /// Decodes one ring-buffer record into `out`: its event, preceded by the open a
    /// close carries when the kernel held that open back (`PL_F_OPENED_*`).
    ///
    /// # Errors
    /// [`DecodeError`] for short records or values this build does not know.
    pub fn decode_into(bytes: &[u8], clock: &BootClock, out: &mut Vec<Self>) -> Result<(), DecodeError> {
        let raw = RawEvent::from_bytes(bytes).ok_or(DecodeError::Short(bytes.len()))?;
        let event = Self::from_raw(&raw, clock)?;
        if let Some(open) = event.held_open(&raw, clock) {
            out.push(open);
        }
        out.push(event);
        Ok(())
    }

    /// The connect or accept folded into a close: the socket, owner and tuple of
    /// the close, at the time of the open.
    fn held_open(&self, raw: &RawEvent, clock: &BootClock) -> Option<Self> {
        if !matches!(self.detail, Detail::Close { .. }) {
            return None;
        }
        let detail = if raw.flags & flags::OPENED_ACTIVE != 0 {
            Detail::Connect { latency: nonzero_duration(raw.latency_ns), srtt_us: raw.srtt_us }
        } else if raw.flags & flags::OPENED_PASSIVE != 0 {
            Detail::Accept
        } else {
            return None;
        };
        Some(Self { time: clock.wall_time(raw.open_ns), boot_ns: raw.open_ns, detail, ..self.clone() })
    }

    /// Decodes a record already copied out of the ring buffer.
    ///
    /// # Errors
    /// [`DecodeError`] for values this build does not know.
    pub fn from_raw(raw: &RawEvent, clock: &BootClock) -> Result<Self, DecodeError> {
        let kind = EventKind::from_raw(raw.kind).ok_or(DecodeError::Kind(raw.kind))?;
        if raw.family != AF_INET && raw.family != AF_INET6 {
            return Err(DecodeError::Family(raw.family));
        }
        let proto = match raw.proto {
            IPPROTO_TCP => Proto::Tcp,
            IPPROTO_UDP => Proto::Udp,
            other => return Err(DecodeError::Proto(other)),
        };
        let owner = (raw.flags & flags::OWNER_KNOWN != 0).then(|| Owner {
            pid: raw.pid,
            tid: raw.tid,
            uid: raw.uid,
            gid: raw.gid,
            comm: Comm::from_c(&raw.comm),
            cgroup_id: raw.cgroup_id,
            from_current: raw.flags & flags::OWNER_CURRENT != 0,
            ppid: raw.ppid,
            parent_comm: Comm::from_c(&raw.parent_comm),
            exe: ExeName::from_c(&raw.exe),
            start_ns: raw.start_ns,
            exec_id: raw.exec_id,
        });
        let detail = match kind {
            EventKind::Connect => Detail::Connect { latency: nonzero_duration(raw.latency_ns), srtt_us: raw.srtt_us },
            EventKind::ConnectFailed => Detail::ConnectFailed {
                error: ConnectError { errno: raw.error },
                after: nonzero_duration(raw.latency_ns),
            },
            EventKind::Accept => Detail::Accept,
            EventKind::Close => Detail::Close {
                from: TcpState::from_raw(raw.oldstate),
                opening: opening(raw),
                counters: tcp_counters(raw),
            },
            EventKind::Snapshot => {
                let state = if proto == Proto::Tcp { TcpState::from_raw(raw.state) } else { None };
                let live = state.is_some_and(|s| s != TcpState::Listen);
                Detail::Snapshot {
                    state,
                    opening: if proto == Proto::Tcp { opening(raw) } else { None },
                    counters: live.then(|| tcp_counters(raw)),
                }
            }
            EventKind::Retransmit => Detail::Retransmit {
                count: raw.total_retrans,
                state: TcpState::from_raw(raw.state),
                srtt_us: raw.srtt_us,
            },
            EventKind::UdpSend => Detail::UdpSend { bytes: raw.bytes },
            EventKind::UdpRecv => Detail::UdpRecv { bytes: raw.bytes },
            EventKind::Listen => Detail::Listen,
            EventKind::UdpClose => Detail::UdpClose,
        };
        Ok(Self {
            time: clock.wall_time(raw.ts_ns),
            boot_ns: raw.ts_ns,
            cookie: raw.cookie,
            netns: raw.netns,
            proto,
            local: addr(raw.family, &raw.laddr, raw.lport),
            remote: addr(raw.family, &raw.raddr, raw.rport),
            owner,
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close_event(acked: u64, received: u64, seen: &[TcpState], extra_flags: u8) -> RawEvent {
        RawEvent {
            kind: EventKind::Close as u16,
            family: AF_INET,
            proto: IPPROTO_TCP,
            bytes_acked: acked,
            bytes_received: received,
            states_seen: seen.iter().fold(0, |acc, s| acc | state_bit(*s)),
            flags: extra_flags,
            ..RawEvent::default()
        }
    }

    #[test]
    fn active_closer_payload_excludes_syn_and_acked_fin() {
        use TcpState::*;
        let raw = close_event(
            20002,
            10001,
            &[Close, SynSent, Established, FinWait1, FinWait2],
            flags::ALL_ACKED | flags::FIN_RECEIVED,
        );
        assert_eq!(payload_bytes(&raw), (20000, 10000));
    }

    #[test]
    fn passive_side_payload_excludes_fin_but_no_syn() {
        use TcpState::*;
        let raw = close_event(
            10001,
            20001,
            &[SynRecv, Established, CloseWait, LastAck],
            flags::ALL_ACKED | flags::FIN_RECEIVED,
        );
        assert_eq!(payload_bytes(&raw), (10000, 20000));
    }

    #[test]
    fn reset_connection_counts_no_fin() {
        use TcpState::*;
        let raw = close_event(101, 50, &[SynSent, Established], 0);
        assert_eq!(payload_bytes(&raw), (100, 50));
    }

    #[test]
    fn unacked_fin_is_not_subtracted() {
        use TcpState::*;
        let raw = close_event(301, 0, &[SynSent, Established, FinWait1], 0);
        assert_eq!(payload_bytes(&raw), (300, 0));
    }

    #[test]
    fn decode_refuses_unknown_kinds_and_families() {
        let clock = BootClock::fixed(SystemTime::UNIX_EPOCH, 0);
        let raw = RawEvent { kind: 99, family: AF_INET, proto: IPPROTO_TCP, ..RawEvent::default() };
        assert_eq!(SocketEvent::from_raw(&raw, &clock), Err(DecodeError::Kind(99)));
        let raw = RawEvent { kind: 1, family: 1, proto: IPPROTO_TCP, ..RawEvent::default() };
        assert_eq!(SocketEvent::from_raw(&raw, &clock), Err(DecodeError::Family(1)));
        assert_eq!(SocketEvent::decode(&[0; 10], &clock), Err(DecodeError::Short(10)));
    }

    /// The bytes of `raw`, as the ring buffer holds them.
    fn bytes_of(raw: &RawEvent) -> Vec<u8> {
        // SAFETY: RawEvent is plain old data without padding (checked in abi.rs).
        unsafe { std::slice::from_raw_parts(std::ptr::from_ref(raw).cast::<u8>(), RawEvent::SIZE) }.to_vec()
    }

    #[test]
    fn a_close_carrying_its_held_open_decodes_into_the_open_then_the_close() {
        use TcpState::*;
        let clock = BootClock::fixed(SystemTime::UNIX_EPOCH, 0);
        let mut out = Vec::new();
        let mut raw = close_event(10, 10, &[SynSent, Established], flags::OWNER_KNOWN | flags::OPENED_ACTIVE);
        (raw.cookie, raw.pid, raw.ts_ns, raw.open_ns, raw.latency_ns) = (77, 42, 9_000, 2_000, 1_500);
        SocketEvent::decode_into(&bytes_of(&raw), &clock, &mut out).unwrap();
        let [open, close] = out.as_slice() else { panic!("{out:?}") };
        assert_eq!(open.detail, Detail::Connect { latency: Some(Duration::from_nanos(1_500)), srtt_us: 0 });
        assert_eq!((open.boot_ns, open.cookie, open.owner.map(|o| o.pid)), (2_000, 77, Some(42)));
        assert_eq!((close.detail.name(), close.boot_ns), ("close", 9_000));

        out.clear();
        raw.flags = flags::OPENED_PASSIVE;
        SocketEvent::decode_into(&bytes_of(&raw), &clock, &mut out).unwrap();
        assert_eq!(out.iter().map(|e| e.detail.name()).collect::<Vec<_>>(), ["accept", "close"]);

        out.clear();
        raw.flags = 0;
        SocketEvent::decode_into(&bytes_of(&raw), &clock, &mut out).unwrap();
        assert_eq!(out.len(), 1, "a close without a held open is one event");
    }

    #[test]
    fn decode_builds_addresses_owner_and_wall_time() {
        let clock = BootClock::fixed(SystemTime::UNIX_EPOCH + Duration::from_secs(1000), 500_000_000_000);
        let mut comm_bytes = [0u8; 16];
        comm_bytes[..4].copy_from_slice(b"curl");
        let mut raddr = [0u8; 16];
        raddr[..4].copy_from_slice(&[198, 51, 100, 7]);
        let raw = RawEvent {
            kind: EventKind::Connect as u16,
            family: AF_INET,
            proto: IPPROTO_TCP,
            ts_ns: 501_000_000_000,
            lport: 40000,
            rport: 443,
            raddr,
            pid: 42,
            tid: 43,
            comm: comm_bytes,
            latency_ns: 150_000,
            flags: flags::OWNER_KNOWN,
            ..RawEvent::default()
        };
        let ev = SocketEvent::from_raw(&raw, &clock).expect("decodes");
        assert_eq!(ev.remote, "198.51.100.7:443".parse().unwrap());
        assert_eq!(ev.local.port(), 40000);
        assert_eq!(ev.owner.as_ref().map(|o| (o.pid, o.tid, o.comm.as_str())), Some((42, 43, "curl")));
        assert_eq!(ev.time, SystemTime::UNIX_EPOCH + Duration::from_secs(1001));
        assert_eq!(ev.detail, Detail::Connect { latency: Some(Duration::from_micros(150)), srtt_us: 0 });
    }

    #[test]
    fn short_strings_cut_on_character_boundaries() {
        assert_eq!(Comm::from_c(b"curl\0\0\0").as_str(), "curl");
        assert_eq!(Comm::new("a-very-long-command-name").as_str(), "a-very-long-comm");
        assert_eq!(ShortStr::<3>::new("é€").as_str(), "é", "never half a character");
        assert_eq!(Comm::default().as_str(), "");
        // What the kernel hands over is not always UTF-8, nor cut between characters.
        assert_eq!(Comm::from_c(b"a\xffb\0").as_str(), "a\u{fffd}b");
        assert_eq!(Comm::from_c("0123456789abcdeé".as_bytes()).as_str(), "0123456789abcde", "cut mid-character");
        assert_eq!(ExeName::from_c(&[0xe2, 0x82]).as_str(), "\u{fffd}", "a truncated character");
    }

    #[test]
    fn connect_errors_have_stable_names() {
        assert_eq!(ConnectError { errno: libc::ECONNREFUSED }.reason(), "refused");
        assert_eq!(ConnectError { errno: libc::ETIMEDOUT }.reason(), "timeout");
        assert_eq!(ConnectError { errno: 0 }.reason(), "aborted");
        assert_eq!(ConnectError { errno: 5 }.reason(), "errno_5");
    }
}
