//! Rust mirrors of `src/bpf/events.h`: what the kernel side writes for user space.
//!
//! Every layout number here equals a `_Static_assert` in events.h, and the test at
//! the bottom checks the mirrors against the BTF that clang put into [`crate::OBJECT`],
//! so a field moved on one side only fails the build or the tests, never decodes
//! garbage at run time.

use core::mem::{offset_of, size_of};

/// `PL_COMM_LEN`.
pub const COMM_LEN: usize = 16;
/// `PL_EXE_LEN`.
pub const EXE_LEN: usize = 32;

/// `struct pl_event`: one record of the `pl_events` ring buffer.
///
/// Addresses: IPv4 in the first 4 bytes, IPv6 in all 16, network order. Ports in
/// host order. Fields an event kind does not use are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// `CLOCK_BOOTTIME` of the event, nanoseconds.
    pub ts_ns: u64,
    /// Socket cookie.
    pub cookie: u64,
    /// Owner's cgroup v2 id.
    pub cgroup_id: u64,
    /// CLOSE: `tcp_sock.bytes_acked` (sequence space, includes SYN/FIN).
    pub bytes_acked: u64,
    /// CLOSE: `tcp_sock.bytes_received` (sequence space, includes FIN).
    pub bytes_received: u64,
    /// CONNECT / `CONNECT_FAILED`: time since `SYN_SENT`, nanoseconds.
    pub latency_ns: u64,
    /// `UDP_SEND` / `UDP_RECV`: datagram payload bytes.
    pub bytes: u64,
    /// Network namespace inode.
    pub netns: u32,
    /// Owner process id (tgid).
    pub pid: u32,
    /// Owner thread id.
    pub tid: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// CLOSE: segments received.
    pub segs_in: u32,
    /// CLOSE: segments sent.
    pub segs_out: u32,
    /// CLOSE: kernel's total; RETRANSMIT: retransmissions seen on this socket.
    pub total_retrans: u32,
    /// Smoothed RTT, microseconds.
    pub srtt_us: u32,
    /// `CONNECT_FAILED`: positive errno, 0 when the application aborted.
    pub error: i32,
    /// Bit n set: the socket was in TCP state n.
    pub states_seen: u32,
    /// [`EventKind`] number.
    pub kind: u16,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// Local port, host order.
    pub lport: u16,
    /// Remote port, host order.
    pub rport: u16,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub proto: u8,
    /// TCP state after the event.
    pub state: u8,
    /// TCP state before the event.
    pub oldstate: u8,
    /// [`flags`] bits.
    pub flags: u8,
    /// Local address.
    pub laddr: [u8; 16],
    /// Remote address.
    pub raddr: [u8; 16],
    /// Owner's `comm`, NUL padded.
    pub comm: [u8; COMM_LEN],
    /// Owner's parent's `comm`, NUL padded.
    pub parent_comm: [u8; COMM_LEN],
    /// Basename of the owner's executable, NUL padded, cut at 31 bytes.
    pub exe: [u8; EXE_LEN],
    /// Owner's start time, `CLOCK_BOOTTIME` nanoseconds.
    pub start_ns: u64,
    /// Owner's parent process id.
    pub ppid: u32,
    /// Owner's exec counter (low 32 bits), +1 at every execve: with pid and start
    /// time, a key of the program the process runs.
    pub exec_id: u32,
    /// Close with [`flags::OPENED_ACTIVE`] or [`flags::OPENED_PASSIVE`]: when the
    /// socket's held open happened (`CLOCK_BOOTTIME` ns).
    pub open_ns: u64,
}

// SAFETY: plain integers and byte arrays, no padding (checked below), any bit
// pattern is a valid value.
unsafe impl aya::Pod for RawEvent {}

const _: () = assert!(size_of::<RawEvent>() == 232);
const _: () = assert!(offset_of!(RawEvent, netns) == 56);
const _: () = assert!(offset_of!(RawEvent, kind) == 100);
const _: () = assert!(offset_of!(RawEvent, proto) == 108);
const _: () = assert!(offset_of!(RawEvent, laddr) == 112);
const _: () = assert!(offset_of!(RawEvent, comm) == 144);
const _: () = assert!(offset_of!(RawEvent, exe) == 176);
const _: () = assert!(offset_of!(RawEvent, start_ns) == 208);
const _: () = assert!(offset_of!(RawEvent, open_ns) == 224);

impl Default for RawEvent {
    fn default() -> Self {
        // SAFETY: RawEvent is plain integers and byte arrays: all zeroes is a value.
        unsafe { core::mem::zeroed() }
    }
}

impl RawEvent {
    /// Size of one record in the ring buffer.
    pub const SIZE: usize = size_of::<Self>();

    /// Copies a record out of ring-buffer bytes; `None` when `bytes` is shorter than
    /// a record (a truncated or foreign record, which the caller counts).
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: the length was checked, RawEvent is Pod (any bytes are valid) and
        // read_unaligned imposes no alignment requirement on the source.
        Some(unsafe { bytes.as_ptr().cast::<Self>().read_unaligned() })
    }

    /// The record's bytes, as the kernel would write them (tests, benchmarks).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: RawEvent is repr(C) without padding; its bytes are initialised.
        unsafe { core::slice::from_raw_parts(core::ptr::from_ref(self).cast::<u8>(), Self::SIZE) }
    }
}

/// `enum pl_event_kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum EventKind {
    /// Active open reached ESTABLISHED.
    Connect = 1,
    /// Active open ended before ESTABLISHED.
    ConnectFailed = 2,
    /// `accept()` returned the socket.
    Accept = 3,
    /// TCP socket reached CLOSE.
    Close = 4,
    /// TCP segment retransmitted.
    Retransmit = 5,
    /// UDP datagram sent.
    UdpSend = 6,
    /// UDP datagram received.
    UdpRecv = 7,
    /// TCP LISTEN or UDP bind.
    Listen = 8,
    /// UDP socket released.
    UdpClose = 9,
    /// Iterator record: an open socket, its holder and counters.
    Snapshot = 10,
}

impl EventKind {
    /// Every kind, in ABI order.
    pub const ALL: [Self; 10] = [
        Self::Connect,
        Self::ConnectFailed,
        Self::Accept,
        Self::Close,
        Self::Retransmit,
        Self::UdpSend,
        Self::UdpRecv,
        Self::Listen,
        Self::UdpClose,
        Self::Snapshot,
    ];

    /// The kind of an ABI number, `None` for numbers this build does not know.
    #[must_use]
    pub fn from_raw(raw: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u16 == raw)
    }

    /// The C enumerator name, for the BTF check.
    #[must_use]
    pub fn c_name(self) -> &'static str {
        match self {
            Self::Connect => "PL_EV_CONNECT",
            Self::ConnectFailed => "PL_EV_CONNECT_FAILED",
            Self::Accept => "PL_EV_ACCEPT",
            Self::Close => "PL_EV_CLOSE",
            Self::Retransmit => "PL_EV_RETRANSMIT",
            Self::UdpSend => "PL_EV_UDP_SEND",
            Self::UdpRecv => "PL_EV_UDP_RECV",
            Self::Listen => "PL_EV_LISTEN",
            Self::UdpClose => "PL_EV_UDP_CLOSE",
            Self::Snapshot => "PL_EV_SNAPSHOT",
        }
    }
}

/// `enum pl_event_flags`.
pub mod flags {
    /// Owner fields are filled.
    pub const OWNER_KNOWN: u8 = 1 << 0;
    /// Owner was `current` at the event.
    pub const OWNER_CURRENT: u8 = 1 << 1;
    /// The peer's FIN arrived before close (one sequence number in `bytes_received`).
    pub const FIN_RECEIVED: u8 = 1 << 2;
    /// Everything queued, FIN included, was acknowledged at close.
    pub const ALL_ACKED: u8 = 1 << 3;
    /// UDP peer unknown.
    pub const PEER_UNKNOWN: u8 = 1 << 4;
    /// Close: the socket's connect was held back and is folded in (`open_ns`,
    /// `latency_ns`).
    pub const OPENED_ACTIVE: u8 = 1 << 5;
    /// Close: the socket's accept was held back and is folded in (`open_ns`).
    pub const OPENED_PASSIVE: u8 = 1 << 6;

    /// C enumerator names and values, for the BTF check.
    pub const C_NAMES: [(&str, u8); 7] = [
        ("PL_F_OWNER_KNOWN", OWNER_KNOWN),
        ("PL_F_OWNER_CURRENT", OWNER_CURRENT),
        ("PL_F_FIN_RECEIVED", FIN_RECEIVED),
        ("PL_F_ALL_ACKED", ALL_ACKED),
        ("PL_F_PEER_UNKNOWN", PEER_UNKNOWN),
        ("PL_F_OPENED_ACTIVE", OPENED_ACTIVE),
        ("PL_F_OPENED_PASSIVE", OPENED_PASSIVE),
    ];
}

/// `enum pl_stat`: indexes of the per-CPU counters of kernel-side losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Stat {
    /// Ring buffer full: an event was lost.
    RingbufFull = 0,
    /// Socket storage could not be created: an owner was lost.
    StorageFail = 1,
    /// The acceptor map was full: an acceptor was lost.
    AcceptMapFull = 2,
    /// The fd-table walk after accept failed.
    AcceptReadFail = 3,
    /// The UDP peer map was full: a peer address was lost.
    UdpPeerMapFull = 4,
    /// An event went out without a known owner (socket older than the probe).
    NoOwner = 5,
}

impl Stat {
    /// Every counter, in index order.
    pub const ALL: [Self; 6] = [
        Self::RingbufFull,
        Self::StorageFail,
        Self::AcceptMapFull,
        Self::AcceptReadFail,
        Self::UdpPeerMapFull,
        Self::NoOwner,
    ];
    /// `PL_STAT__COUNT`.
    pub const COUNT: u32 = 6;

    /// Stable `snake_case` name used in stats output.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RingbufFull => "ringbuf_full",
            Self::StorageFail => "storage_fail",
            Self::AcceptMapFull => "accept_map_full",
            Self::AcceptReadFail => "accept_read_fail",
            Self::UdpPeerMapFull => "udp_peer_map_full",
            Self::NoOwner => "no_owner",
        }
    }

    /// Whether the counter means information was lost (as opposed to an event
    /// that went out with fewer fields).
    #[must_use]
    pub fn is_loss(self) -> bool {
        !matches!(self, Self::NoOwner)
    }

    /// The C enumerator name, for the BTF check.
    #[must_use]
    pub fn c_name(self) -> &'static str {
        match self {
            Self::RingbufFull => "PL_STAT_RINGBUF_FULL",
            Self::StorageFail => "PL_STAT_STORAGE_FAIL",
            Self::AcceptMapFull => "PL_STAT_ACCEPT_MAP_FULL",
            Self::AcceptReadFail => "PL_STAT_ACCEPT_READ_FAIL",
            Self::UdpPeerMapFull => "PL_STAT_UDP_PEER_MAP_FULL",
            Self::NoOwner => "PL_STAT_NO_OWNER",
        }
    }
}

#[cfg(test)]
mod btf_tests;
