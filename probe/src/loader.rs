//! loader: owns the aya [`Ebpf`] object, checks what the kernel offers, loads and
//! attaches the programs from one table, and hands the maps to the source stage.
//!
//! Data flow: [`packetless_ebpf::OBJECT`] -> [`load`] -> [`Loaded`] (programs attached,
//! links owned here) -> `source::EventSource` (ring buffer) and [`KernelStats`]
//! (per-CPU loss counters). Dropping [`Loaded`] detaches everything.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray, RingBuf};
use aya::programs::{
    BtfTracePoint, CgroupAttachMode, CgroupSock, CgroupSockAddr, Iter, ProgramError, SockOps, TracePoint,
};
use aya::{Btf, Ebpf, EbpfLoader};
use packetless_ebpf::abi::Stat;
use packetless_ebpf::{globals, maps, programs};
use tracing::{info, warn};

/// What the probe asks of the kernel side.
#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// Network namespace inodes to trace; empty traces every namespace.
    pub netns: Vec<u32>,
    /// Trace UDP datagrams, bound UDP sockets and UDP releases.
    pub udp: bool,
    /// Size of the event ring buffer in bytes (a power of two, multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// Which rung of hooks traces TCP.
    pub tcp_hooks: TcpHooks,
    /// Load the socket iterator (sockets older than the probe, live TCP counters).
    pub snapshots: bool,
    /// Hold TCP opens (connect, accept) back in the kernel for this long: a
    /// connection that closes sooner sends one event, its close carrying the open,
    /// instead of two. `None` sends every open at once (`watch`).
    pub hold_opens: Option<std::time::Duration>,
}

/// The rung of hooks that traces TCP state changes and retransmissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpHooks {
    /// BTF-typed tracepoints when the kernel accepts them, else classic ones.
    Auto,
    /// BTF-typed tracepoints (`tp_btf`) only.
    Btf,
    /// Classic tracepoints through tracefs, with sockops for accepted sockets.
    Tracepoint,
}

impl TcpHooks {
    /// Name as on the command line and in logs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Btf => "btf",
            Self::Tracepoint => "tracepoint",
        }
    }
}

/// Why the kernel side could not be started. Each message names what failed and how
/// to fix it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Missing privileges.
    #[error(
        "insufficient privileges: missing {missing}. Run packetless as root, or grant the \
         capabilities: `setcap cap_bpf,cap_perfmon,cap_net_admin,cap_sys_ptrace,cap_dac_read_search+ep \
         $(command -v packetless)` (in a container: --cap-add for each; kernels before 5.8 have no CAP_BPF \
         and CAP_PERFMON and need CAP_SYS_ADMIN instead)"
    )]
    Privileges {
        /// Capability names that are missing.
        missing: String,
    },
    /// No kernel BTF.
    #[error(
        "this kernel exposes no BTF ({path} is missing or unreadable: {source}). packetless needs a \
         kernel built with CONFIG_DEBUG_INFO_BTF=y (5.5 or later; standard on current distributions). \
         In a container, mount the host's /sys/kernel/btf read-only"
    )]
    NoBtf {
        /// Where BTF was looked for.
        path: &'static str,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },
    /// tracefs missing and not mountable.
    #[error(
        "tracefs is not mounted and mounting it at /sys/kernel/tracing failed: {source}. Mount it with \
         `mount -t tracefs tracefs /sys/kernel/tracing` (in a container: bind-mount the host's \
         /sys/kernel/tracing, or grant CAP_SYS_ADMIN)"
    )]
    Tracefs {
        /// The mount error.
        #[source]
        source: io::Error,
    },
    /// No cgroup v2 hierarchy.
    #[error(
        "no cgroup v2 hierarchy is mounted (checked /proc/self/mountinfo). Mount one with \
         `mount -t cgroup2 none /sys/fs/cgroup/unified` (hybrid systems) or boot with \
         systemd.unified_cgroup_hierarchy=1"
    )]
    NoCgroup2,
    /// The cgroup v2 root could not be opened.
    #[error("cannot open the cgroup v2 root {path}: {source}")]
    CgroupOpen {
        /// The root directory.
        path: PathBuf,
        /// The open error.
        #[source]
        source: io::Error,
    },
    /// The object itself was rejected (maps, BTF relocation).
    #[error("the kernel rejected the eBPF object: {0}")]
    Object(#[source] Box<aya::EbpfError>),
    /// A program failed to load.
    #[error("program {program} ({hook}) failed to load: {reason}")]
    ProgramLoad {
        /// Program (C function) name.
        program: &'static str,
        /// The hook it was meant for.
        hook: String,
        /// The kernel's reason, with the end of the verifier log.
        reason: String,
    },
    /// A program loaded but could not be attached.
    #[error("program {program} could not be attached to {hook}: {reason}")]
    Attach {
        /// Program (C function) name.
        program: &'static str,
        /// The hook.
        hook: String,
        /// The kernel's reason.
        reason: String,
    },
    /// A map expected in the object is missing (build mismatch).
    #[error("map {0} is missing from the eBPF object")]
    MissingMap(&'static str),
    /// A map could not be used.
    #[error("map {name}: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// The error.
        #[source]
        source: aya::maps::MapError,
    },
}

/// Where a program attaches.
#[derive(Clone, Copy, Debug)]
enum Hook {
    /// BTF-typed raw tracepoint (`tp_btf/<name>`).
    TpBtf(&'static str),
    /// Classic tracepoint (`tracepoint/<category>/<name>`); needs tracefs.
    Tracepoint(&'static str, &'static str),
    /// cgroup socket program (`cgroup/sock_create`, `post_bind*`, `sock_release`).
    CgroupSock(&'static str),
    /// cgroup socket-address program (`cgroup/sendmsg*`, `recvmsg*`).
    CgroupSockAddr(&'static str),
    /// sockops program on the cgroup.
    SockOps,
    /// BPF iterator (`iter/<target>`): loaded now, run on demand.
    Iter(&'static str),
}

impl Hook {
    fn describe(self) -> String {
        match self {
            Self::TpBtf(name) => format!("tp_btf/{name}"),
            Self::Tracepoint(category, name) => format!("tracepoint/{category}/{name}"),
            Self::CgroupSock(name) | Self::CgroupSockAddr(name) => format!("cgroup/{name}"),
            Self::SockOps => "sockops".to_owned(),
            Self::Iter(target) => format!("iter/{target}"),
        }
    }
}

/// Whether the probe can run without a hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Without it the probe would be wrong: fail with the reason.
    Required,
    /// UDP coverage: skipped when UDP is off, and degraded (with a warning naming
    /// what is lost) when the kernel lacks it.
    Udp,
    /// Socket snapshots: skipped when not asked for, degraded when unavailable.
    Snapshot,
    /// Held opens: skipped when not asked for, degraded (opens sent at once) when
    /// unavailable.
    HeldOpens,
    /// Enrichment aids: always tried, degraded when unavailable.
    Helpful,
}

/// Which TCP rung a hook belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rung {
    /// Attached on every rung.
    Any,
    /// BTF rung only.
    Btf,
    /// Classic-tracepoint rung only.
    Classic,
}

struct HookSpec {
    program: &'static str,
    hook: Hook,
    rung: Rung,
    need: Need,
    /// What is lost without it, for the warning.
    provides: &'static str,
    /// Bit of the control map (`maps::CONTROL`) raised before attaching, so that the
    /// programs it relieves step aside from the first event on, and lowered again if
    /// attaching fails; for an iterator, raised once it has loaded.
    control: u32,
}

/// Every program of the object and where it goes. Order matters: owners are recorded
/// before anything that reads them is attached.
const HOOKS: &[HookSpec] = &[
    HookSpec {
        program: programs::SOCK_CREATE,
        rung: Rung::Any,
        hook: Hook::CgroupSock("sock_create"),
        need: Need::Required,
        control: 0,
        provides: "socket owners",
    },
    HookSpec {
        program: programs::INET_SOCK_SET_STATE,
        rung: Rung::Btf,
        hook: Hook::TpBtf("inet_sock_set_state"),
        need: Need::Required,
        control: 0,
        provides: "TCP connect, listen and close",
    },
    HookSpec {
        program: programs::TCP_RETRANSMIT_SKB,
        rung: Rung::Btf,
        hook: Hook::TpBtf("tcp_retransmit_skb"),
        need: Need::Required,
        control: 0,
        provides: "TCP retransmits",
    },
    HookSpec {
        program: programs::SOCKOPS_STATE,
        rung: Rung::Btf,
        hook: Hook::SockOps,
        need: Need::Helpful,
        control: maps::CONTROL_STATE_BY_SOCKOPS,
        provides: "TCP state changes and retransmits in softirq that the kernel's recursion guard skips (bpf_skc_to_tcp_sock, 5.9+)",
    },
    HookSpec {
        program: programs::SOCKOPS,
        rung: Rung::Classic,
        hook: Hook::SockOps,
        need: Need::Required,
        control: 0,
        provides: "owners of accepted TCP sockets",
    },
    HookSpec {
        program: programs::INET_SOCK_SET_STATE_CLASSIC,
        rung: Rung::Classic,
        hook: Hook::Tracepoint("sock", "inet_sock_set_state"),
        need: Need::Required,
        control: 0,
        provides: "TCP connect, listen and close",
    },
    HookSpec {
        program: programs::TCP_RETRANSMIT_SKB_CLASSIC,
        rung: Rung::Classic,
        hook: Hook::Tracepoint("tcp", "tcp_retransmit_skb"),
        need: Need::Required,
        control: 0,
        provides: "TCP retransmits",
    },
    HookSpec {
        program: programs::SYS_EXIT_ACCEPT4,
        rung: Rung::Any,
        hook: Hook::Tracepoint("syscalls", "sys_exit_accept4"),
        need: Need::Required,
        control: 0,
        provides: "TCP accept (accept4)",
    },
    HookSpec {
        program: programs::SYS_EXIT_ACCEPT,
        rung: Rung::Any,
        hook: Hook::Tracepoint("syscalls", "sys_exit_accept"),
        need: Need::Required,
        control: 0,
        provides: "TCP accept (accept)",
    },
    HookSpec {
        program: programs::SENDMSG4,
        rung: Rung::Any,
        hook: Hook::CgroupSockAddr("sendmsg4"),
        need: Need::Udp,
        control: 0,
        provides: "peers of unconnected IPv4 UDP sends",
    },
    HookSpec {
        program: programs::SENDMSG6,
        rung: Rung::Any,
        hook: Hook::CgroupSockAddr("sendmsg6"),
        need: Need::Udp,
        control: 0,
        provides: "peers of unconnected IPv6 UDP sends",
    },
    HookSpec {
        program: programs::RECVMSG4,
        rung: Rung::Any,
        hook: Hook::CgroupSockAddr("recvmsg4"),
        need: Need::Udp,
        control: 0,
        provides: "peers of IPv4 UDP receives",
    },
    HookSpec {
        program: programs::RECVMSG6,
        rung: Rung::Any,
        hook: Hook::CgroupSockAddr("recvmsg6"),
        need: Need::Udp,
        control: 0,
        provides: "peers of IPv6 UDP receives",
    },
    HookSpec {
        program: programs::SOCK_SEND_LENGTH,
        rung: Rung::Any,
        hook: Hook::TpBtf("sock_send_length"),
        need: Need::Udp,
        control: 0,
        provides: "UDP send events (kernel 6.3+)",
    },
    HookSpec {
        program: programs::SOCK_RECV_LENGTH,
        rung: Rung::Any,
        hook: Hook::TpBtf("sock_recv_length"),
        need: Need::Udp,
        control: 0,
        provides: "UDP receive events (kernel 6.3+)",
    },
    HookSpec {
        program: programs::BIND4,
        rung: Rung::Any,
        hook: Hook::CgroupSockAddr("bind4"),
        need: Need::Udp,
        control: 0,
        provides: "ports asked for by IPv4 UDP bind()",
    },
    HookSpec {
        program: programs::BIND6,
        rung: Rung::Any,
        hook: Hook::CgroupSockAddr("bind6"),
        need: Need::Udp,
        control: 0,
        provides: "ports asked for by IPv6 UDP bind()",
    },
    HookSpec {
        program: programs::POST_BIND4,
        rung: Rung::Any,
        hook: Hook::CgroupSock("post_bind4"),
        need: Need::Udp,
        control: 0,
        provides: "bound IPv4 UDP sockets",
    },
    HookSpec {
        program: programs::POST_BIND6,
        rung: Rung::Any,
        hook: Hook::CgroupSock("post_bind6"),
        need: Need::Udp,
        control: 0,
        provides: "bound IPv6 UDP sockets",
    },
    HookSpec {
        program: programs::ITER_TASK_FILE,
        rung: Rung::Any,
        hook: Hook::Iter("task_file"),
        need: Need::Snapshot,
        control: 0,
        provides: "sockets opened before the probe started and live TCP counters (kernel 5.11+)",
    },
    HookSpec {
        program: programs::ITER_LIVE_TCP,
        rung: Rung::Any,
        hook: Hook::Iter("bpf_sk_storage_map"),
        need: Need::Snapshot,
        control: 0,
        provides: "closing the flows of TCP sockets gone without a close event (kernel 5.9+)",
    },
    HookSpec {
        program: programs::ITER_PENDING_OPENS,
        rung: Rung::Any,
        hook: Hook::Iter("bpf_map_elem"),
        need: Need::HeldOpens,
        control: maps::CONTROL_HOLD_OPENS,
        provides: "one kernel event per short TCP connection instead of two (kernel 5.9+)",
    },
    HookSpec {
        program: programs::SOCK_RELEASE,
        rung: Rung::Any,
        hook: Hook::CgroupSock("sock_release"),
        need: Need::Udp,
        control: 0,
        provides: "UDP socket release (kernel 5.9+)",
    },
    HookSpec {
        program: programs::CGROUP_MKDIR,
        rung: Rung::Any,
        hook: Hook::TpBtf("cgroup_mkdir"),
        need: Need::Helpful,
        control: 0,
        provides: "container names of cgroups removed before they were looked up",
    },
];

/// The kernel's record of cgroup paths: cgroup v2 id to path, for every cgroup made
/// since the probe started (least recently used first out).
pub struct CgroupPathMap {
    map: BpfHashMap<MapData, u64, [u8; maps::CGROUP_PATH_LEN]>,
}

impl CgroupPathMap {
    /// The path of cgroup `id` (`/system.slice/docker-....scope`), if recorded.
    #[must_use]
    pub fn path(&self, id: u64) -> Option<String> {
        let raw = self.map.get(&id, 0).ok()?;
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let path = String::from_utf8_lossy(&raw[..len]);
        // The kernel names the root cgroup "/"; every other path starts with one too.
        path.starts_with('/').then(|| path.into_owned())
    }
}

impl packetless_enrich::CgroupRecord for CgroupPathMap {
    fn path(&self, id: u64) -> Option<String> {
        CgroupPathMap::path(self, id)
    }
}

/// The kernel side, loaded and attached. Dropping it detaches every program.
pub struct Loaded {
    ebpf: Ebpf,
    /// Hooks attached, as `kind/name` strings, in attach order.
    pub attached: Vec<String>,
    /// Hooks this kernel lacks, with what is lost.
    pub degraded: Vec<String>,
    /// The rung tracing TCP: [`TcpHooks::Btf`] or [`TcpHooks::Tracepoint`].
    pub tcp_rung: TcpHooks,
    /// Bits of the control map raised by the hooks attached (`maps::CONTROL_*`).
    control: u32,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("attached", &self.attached)
            .field("degraded", &self.degraded)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl Loaded {
    /// Takes the event ring buffer (once).
    ///
    /// # Errors
    /// When the map is missing or was already taken.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self.ebpf.take_map(maps::EVENTS).ok_or(LoadError::MissingMap(maps::EVENTS))?;
        RingBuf::try_from(map).map_err(|source| LoadError::Map { name: maps::EVENTS, source })
    }

    /// Takes the kernel-side loss counters (once).
    ///
    /// # Errors
    /// When the map is missing or was already taken.
    pub fn take_stats(&mut self) -> Result<KernelStats, LoadError> {
        let map = self.ebpf.take_map(maps::STATS).ok_or(LoadError::MissingMap(maps::STATS))?;
        let array = PerCpuArray::try_from(map).map_err(|source| LoadError::Map { name: maps::STATS, source })?;
        // With the sockops program reporting connections' state changes and
        // retransmits, the two tracepoints' skipped runs lose nothing on the
        // connections it follows.
        let state_by_sockops = self.control & maps::CONTROL_STATE_BY_SOCKOPS != 0;
        let programs = self
            .ebpf
            .programs()
            .filter_map(|(name, program)| {
                let fd = program.fd().ok()?.try_clone().ok()?;
                let covered =
                    state_by_sockops && (name == programs::INET_SOCK_SET_STATE || name == programs::TCP_RETRANSMIT_SKB);
                Some((fd, covered))
            })
            .collect();
        Ok(KernelStats { array, programs })
    }
}

impl Loaded {
    /// Takes the kernel's record of cgroup paths (once); `None` when the program
    /// that fills it is not attached on this kernel.
    #[must_use]
    pub fn take_cgroup_paths(&mut self) -> Option<CgroupPathMap> {
        if !self.attached.iter().any(|h| h.ends_with("/cgroup_mkdir")) {
            return None;
        }
        let map = self.ebpf.take_map(maps::CGROUP_PATHS)?;
        BpfHashMap::try_from(map).ok().map(|map| CgroupPathMap { map })
    }

    /// Runs the socket iterator once and hands `each` its output in pieces of whole
    /// [`RawEvent`]-sized records, one per open TCP/UDP socket, as they are read.
    /// False when the iterator is not loaded (not asked for, or unavailable on this
    /// kernel).
    ///
    /// [`RawEvent`]: packetless_ebpf::abi::RawEvent
    ///
    /// # Errors
    /// When the kernel refuses to create or run the iterator.
    pub fn snapshot(&mut self, each: impl FnMut(&[u8])) -> io::Result<bool> {
        let Some(program) = self.ebpf.program_mut(programs::ITER_TASK_FILE) else { return Ok(false) };
        let iter: &mut Iter = program.try_into().map_err(io::Error::other)?;
        if iter.fd().is_err() {
            return Ok(false);
        }
        // Each run needs its own link; the link ends with the file it produced.
        let link_id = iter.attach().map_err(io::Error::other)?;
        let link = iter.take_link(link_id).map_err(io::Error::other)?;
        let file = link.into_file().map_err(io::Error::other)?;
        read_records(file, packetless_ebpf::abi::RawEvent::SIZE, each)?;
        Ok(true)
    }

    /// Runs the live-socket iterator once and hands `each` the cookie of every TCP
    /// socket the kernel has not freed yet (with or without a descriptor), as they are
    /// read: nothing proportional to the number of sockets is held. False when the
    /// iterator is not loaded (snapshots not asked for, or a kernel before 5.9).
    ///
    /// # Errors
    /// When the kernel refuses to create or run the iterator; `each` may have seen
    /// part of the list then.
    pub fn live_tcp_cookies(&self, mut each: impl FnMut(u64)) -> io::Result<bool> {
        let Some(program) = self.ebpf.program(programs::ITER_LIVE_TCP) else { return Ok(false) };
        let Ok(prog) = program.fd() else { return Ok(false) };
        let Some(Map::SkStorage(owners)) = self.ebpf.map(maps::OWNERS) else {
            return Err(io::Error::other(format!("map {} is missing from the eBPF object", maps::OWNERS)));
        };
        let file = map_iterator(prog.as_fd(), owners.fd().as_fd())?;
        read_records(file, 8, |cookies| {
            for cookie in cookies.chunks_exact(8) {
                each(u64::from_ne_bytes(cookie.try_into().unwrap_or_default()));
            }
        })?;
        Ok(true)
    }
}

impl Loaded {
    /// Takes the held opens (once), for the reader to take out those of connections
    /// that outlive its pairing window. `None` when opens are not held: not asked
    /// for, or a kernel without map iterators (they are then sent at once).
    ///
    /// # Errors
    /// When the map or program is missing or unusable (build mismatch).
    pub fn take_held_opens(&mut self) -> Result<Option<HeldOpens>, LoadError> {
        if self.control & maps::CONTROL_HOLD_OPENS == 0 {
            return Ok(None);
        }
        let prog = self
            .ebpf
            .program(programs::ITER_PENDING_OPENS)
            .and_then(|p| p.fd().ok())
            .and_then(|fd| fd.try_clone().ok())
            .ok_or_else(|| LoadError::ProgramLoad {
                program: programs::ITER_PENDING_OPENS,
                hook: "iter/bpf_map_elem".to_owned(),
                reason: "loaded, but its descriptor is gone".to_owned(),
            })?;
        let Some(Map::HashMap(map)) = self.ebpf.take_map(maps::PENDING_OPENS) else {
            return Err(LoadError::MissingMap(maps::PENDING_OPENS));
        };
        // Nothing writes the control map after loading but the held opens' stop.
        let Some(Map::Array(control)) = self.ebpf.take_map(maps::CONTROL) else {
            return Err(LoadError::MissingMap(maps::CONTROL));
        };
        Ok(Some(HeldOpens { prog, map, control, bits: self.control }))
    }
}

/// The kernel's held opens (`pl_pending_opens`): connect and accept events that
/// wait there until their socket's close carries them, or until they are taken out
/// here. Whoever deletes an entry reports it, so each open comes exactly once.
pub struct HeldOpens {
    prog: aya::programs::ProgramFd,
    map: MapData,
    /// The control map, and the bits raised in it.
    control: MapData,
    bits: u32,
}

impl HeldOpens {
    /// Makes the kernel send opens at once from now on (before the last take at
    /// exit, so that no open made meanwhile is left held).
    ///
    /// # Errors
    /// When the kernel refuses the map update.
    pub fn stop_holding(&self) -> io::Result<()> {
        let bits = self.bits & !maps::CONTROL_HOLD_OPENS;
        map_elem(aya_obj::generated::bpf_cmd::BPF_MAP_UPDATE_ELEM, self.control.fd().as_fd(), &0u32, Some(&bits))
    }

    /// Takes out the opens that happened at or before `cutoff_ns` (`CLOCK_BOOTTIME`)
    /// and hands each record to `each` (a [`RawEvent`]-sized connect or accept),
    /// as the iterator's output is read: memory stays at one small buffer however
    /// many there are. An open whose socket closed meanwhile went out with its
    /// close: it is skipped. (Deleting while the iterator walks the map may make
    /// it show an entry twice or miss one: the second delete fails, and a missed
    /// one is taken next time.)
    ///
    /// [`RawEvent`]: packetless_ebpf::abi::RawEvent
    ///
    /// # Errors
    /// When the kernel refuses to run the iterator or to delete an entry.
    pub fn take(&self, cutoff_ns: u64, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        use packetless_ebpf::abi::RawEvent;
        let map = self.map.fd().as_fd();
        let mut failed = None;
        let file = map_iterator(self.prog.as_fd(), map)?;
        read_records(file, RawEvent::SIZE, |records| {
            for record in records.chunks_exact(RawEvent::SIZE) {
                let Some(ev) = RawEvent::from_bytes(record).filter(|ev| ev.ts_ns <= cutoff_ns) else { continue };
                match map_elem::<u64, ()>(aya_obj::generated::bpf_cmd::BPF_MAP_DELETE_ELEM, map, &ev.cookie, None) {
                    Ok(()) => each(record),
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => failed = Some(e),
                }
            }
        })?;
        failed.map_or(Ok(()), Err)
    }
}

/// A map element command (`BPF_MAP_DELETE_ELEM`, or `BPF_MAP_UPDATE_ELEM` with
/// `value`, flags `BPF_ANY`) on the map behind `map`. `K` and `V` must be the map's
/// key and value types.
fn map_elem<K, V>(cmd: aya_obj::generated::bpf_cmd, map: BorrowedFd<'_>, key: &K, value: Option<&V>) -> io::Result<()> {
    /// `union bpf_attr` for the map element commands.
    #[repr(C)]
    struct MapElem {
        map_fd: u32,
        pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let attr = MapElem {
        map_fd: raw_fd(map)?,
        pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: value.map_or(0, |v| std::ptr::from_ref(v) as u64),
        flags: 0,
    };
    // SAFETY: the attribute and the key and value it points at outlive the call; the
    // caller passes the map's own key and value types, so the kernel reads no more
    // than they hold.
    unsafe { bpf(cmd, &attr) }.map(drop)
}

/// Reader of the per-CPU loss counters the programs increment, and of the runs
/// the kernel skipped.
pub struct KernelStats {
    array: PerCpuArray<MapData, u64>,
    /// The loaded programs, for their recursion misses, each with whether another
    /// program covers the runs it misses.
    programs: Vec<(aya::programs::ProgramFd, bool)>,
}

impl KernelStats {
    /// Current value of every counter by name: the programs' own, summed over CPUs,
    /// `recursion_misses` and `recursion_misses_covered`. A counter that cannot be read is reported as 0 with a
    /// warning (the probe keeps running).
    #[must_use]
    pub fn read(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut counters: std::collections::BTreeMap<_, _> = Stat::ALL
            .into_iter()
            .map(|stat| {
                let total = match self.array.get(&(stat as u32), 0) {
                    Ok(values) => values.iter().sum(),
                    Err(error) => {
                        warn!(counter = stat.name(), %error, "reading kernel counter failed");
                        0
                    }
                };
                (stat.name(), total)
            })
            .collect();
        counters.insert("recursion_misses", self.recursion_misses(false));
        counters.insert("recursion_misses_covered", self.recursion_misses(true));
        counters
    }

    /// Runs of the programs the kernel skipped, summed: a tracing program is not
    /// run again on a CPU where it is already running (a softirq interrupting it
    /// in process context). `covered` false: the events those runs would have sent
    /// are lost. `covered` true: runs of the state and retransmit tracepoints while
    /// the sockops program reports those of every connection opened since the
    /// probe started; only sockets older than the probe can lose a close there, and
    /// the flow stage closes those when the kernel no longer has them. Kernels
    /// before 5.12 do not count skipped runs (0).
    fn recursion_misses(&self, covered: bool) -> u64 {
        self.programs
            .iter()
            .filter(|(_, c)| *c == covered)
            .filter_map(|(fd, _)| prog_info(fd.as_fd()).ok())
            .map(|info| info.recursion_misses)
            .sum()
    }
}

/// The kernel's description of a loaded program (`BPF_OBJ_GET_INFO_BY_FD`); fields
/// this kernel does not know stay 0.
fn prog_info(fd: BorrowedFd<'_>) -> io::Result<aya_obj::generated::bpf_prog_info> {
    /// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // SAFETY: bpf_prog_info is a plain C struct; all zeroes is a valid value.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let attr = InfoByFd {
        bpf_fd: raw_fd(fd)?,
        info_len: u32::try_from(std::mem::size_of_val(&info)).expect("bpf_prog_info is small"),
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: the attribute points at `info`, which outlives the call, and gives its
    // size; the kernel writes at most that many bytes.
    unsafe { bpf(aya_obj::generated::bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &attr) }?;
    Ok(info)
}

/// Reads an iterator's output to the end, handing `each` pieces of whole `record`-byte
/// records as they come: memory stays at one small buffer however many there are.
fn read_records(mut file: impl io::Read, record: usize, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; record * 64];
    let mut filled = 0;
    loop {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let whole = filled - filled % record;
        each(&buf[..whole]);
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
}

/// Creates an iterator over the elements of a map (`iter/bpf_sk_storage_map` and the
/// like), which aya cannot attach: a link with the map's fd, then the iterator's file,
/// which runs the program as it is read.
fn map_iterator(prog: BorrowedFd<'_>, map: BorrowedFd<'_>) -> io::Result<File> {
    use std::os::fd::{FromRawFd, OwnedFd};
    /// `union bpf_iter_link_info`, the map member.
    #[repr(C)]
    struct IterLinkInfo {
        map_fd: u32,
    }
    /// `union bpf_attr` for `BPF_LINK_CREATE` of an iterator.
    #[repr(C)]
    struct LinkCreate {
        prog_fd: u32,
        target_fd: u32,
        attach_type: u32,
        flags: u32,
        iter_info: u64,
        iter_info_len: u32,
    }
    /// `union bpf_attr` for `BPF_ITER_CREATE`.
    #[repr(C)]
    struct IterCreate {
        link_fd: u32,
        flags: u32,
    }
    let info = IterLinkInfo { map_fd: raw_fd(map)? };
    let attr = LinkCreate {
        prog_fd: raw_fd(prog)?,
        target_fd: 0,
        attach_type: aya_obj::generated::bpf_attach_type::BPF_TRACE_ITER as u32,
        flags: 0,
        iter_info: std::ptr::from_ref(&info) as u64,
        iter_info_len: u32::try_from(std::mem::size_of::<IterLinkInfo>()).expect("tiny"),
    };
    // SAFETY: the attribute and the link info it points at outlive the call.
    let link = unsafe { bpf(aya_obj::generated::bpf_cmd::BPF_LINK_CREATE, &attr) }?;
    // SAFETY: BPF_LINK_CREATE returned a new descriptor that nothing else owns.
    let link = unsafe { OwnedFd::from_raw_fd(link) };
    let attr = IterCreate { link_fd: raw_fd(link.as_fd())?, flags: 0 };
    // SAFETY: the attribute outlives the call.
    let iter = unsafe { bpf(aya_obj::generated::bpf_cmd::BPF_ITER_CREATE, &attr) }?;
    // SAFETY: BPF_ITER_CREATE returned a new descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(iter) }))
}

fn raw_fd(fd: BorrowedFd<'_>) -> io::Result<u32> {
    u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The `bpf(2)` system call with command `cmd` and attribute `attr`; the descriptor
/// or value it returns.
///
/// # Safety
/// `attr` must be the `union bpf_attr` layout `cmd` expects, and every pointer in it
/// valid for what the kernel reads or writes through it during the call.
unsafe fn bpf<T>(cmd: aya_obj::generated::bpf_cmd, attr: &T) -> io::Result<i32> {
    // SAFETY: upheld by the caller; the size passed is that of `attr`.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, cmd as libc::c_long, std::ptr::from_ref(attr), std::mem::size_of::<T>())
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    i32::try_from(rc).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// Checks the environment, loads the object and attaches every hook the kernel offers.
///
/// With [`TcpHooks::Auto`], a kernel that refuses the BTF rung's TCP programs gets the
/// classic-tracepoint rung instead, with a warning giving the reason.
///
/// # Errors
/// [`LoadError`] naming the missing privilege, kernel feature or failing program.
pub fn load(config: &LoaderConfig) -> Result<Loaded, LoadError> {
    check_privileges()?;
    raise_memlock_limit();
    let btf = Btf::from_sys_fs()
        .map_err(|e| LoadError::NoBtf { path: "/sys/kernel/btf/vmlinux", source: io::Error::other(e.to_string()) })?;
    ensure_tracefs()?;
    let cgroup_root = cgroup2_root().ok_or(LoadError::NoCgroup2)?;
    let cgroup =
        File::open(&cgroup_root).map_err(|source| LoadError::CgroupOpen { path: cgroup_root.clone(), source })?;
    match config.tcp_hooks {
        TcpHooks::Btf => load_rung(config, TcpHooks::Btf, &btf, &cgroup).map_err(RungError::into_inner),
        TcpHooks::Tracepoint => load_rung(config, TcpHooks::Tracepoint, &btf, &cgroup).map_err(RungError::into_inner),
        TcpHooks::Auto => match load_rung(config, TcpHooks::Btf, &btf, &cgroup) {
            Ok(loaded) => Ok(loaded),
            Err(RungError::RungUnavailable(reason)) => {
                warn!(reason = %reason, "BTF tracepoints refused; tracing TCP with classic tracepoints");
                load_rung(config, TcpHooks::Tracepoint, &btf, &cgroup).map_err(RungError::into_inner)
            }
            Err(RungError::Other(e)) => Err(e),
        },
    }
}

/// A failure of one rung: either its own TCP programs (another rung may work) or
/// anything else (no rung will).
enum RungError {
    RungUnavailable(LoadError),
    Other(LoadError),
}

impl RungError {
    fn into_inner(self) -> LoadError {
        match self {
            Self::RungUnavailable(e) | Self::Other(e) => e,
        }
    }
}

impl From<LoadError> for RungError {
    fn from(e: LoadError) -> Self {
        Self::Other(e)
    }
}

fn load_rung(config: &LoaderConfig, rung: TcpHooks, btf: &Btf, cgroup: &File) -> Result<Loaded, RungError> {
    let classic = rung == TcpHooks::Tracepoint;
    let filter_netns: u32 = u32::from(!config.netns.is_empty());
    let trace_udp: u32 = u32::from(config.udp);
    let classic_tcp: u32 = u32::from(classic);
    // An eighth of the ring: the reader wakes well before it fills; between wakeups
    // its timer drains the rest.
    let wakeup_bytes: u32 = config.ring_buffer_bytes / 8;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(btf))
        .override_global(globals::NETNS_FILTER, &filter_netns, true)
        .override_global(globals::TRACE_UDP, &trace_udp, true)
        .override_global(globals::CLASSIC_TCP, &classic_tcp, true)
        .override_global(globals::WAKEUP_BYTES, &wakeup_bytes, true)
        .map_max_entries(maps::EVENTS, config.ring_buffer_bytes)
        // The cookie-keyed owner map is preallocated: keep it tiny when unused.
        .map_max_entries(maps::OWNERS_BY_COOKIE, if classic { OWNERS_BY_COOKIE_ENTRIES } else { 1 })
        .load(packetless_ebpf::OBJECT)
        .map_err(|e| LoadError::Object(Box::new(e)))?;

    if !config.netns.is_empty() {
        let map = ebpf.map_mut(maps::NETNS).ok_or(LoadError::MissingMap(maps::NETNS))?;
        let mut netns: BpfHashMap<_, u32, u8> =
            BpfHashMap::try_from(map).map_err(|source| LoadError::Map { name: maps::NETNS, source })?;
        for inode in &config.netns {
            netns.insert(inode, 1, 0).map_err(|source| LoadError::Map { name: maps::NETNS, source })?;
        }
    }

    let mut attached = Vec::new();
    let mut degraded = Vec::new();
    let mut control = 0;
    let wanted = |spec: &HookSpec| match spec.rung {
        Rung::Any => true,
        Rung::Btf => !classic,
        Rung::Classic => classic,
    };
    for spec in HOOKS.iter().filter(|s| wanted(s)) {
        let skipped = match spec.need {
            Need::Udp => !config.udp,
            Need::Snapshot => !config.snapshots,
            Need::HeldOpens => config.hold_opens.is_none(),
            Need::Required | Need::Helpful => false,
        };
        if skipped {
            continue;
        }
        // A hook's bit goes up before it runs, so that the programs it relieves step
        // aside from its first event on. An iterator runs only when read: its bit goes
        // up once it has loaded (the held opens' bit must never be up without it).
        let early = !matches!(spec.hook, Hook::Iter(_));
        if spec.control != 0 && early {
            write_control(&mut ebpf, control | spec.control)?;
        }
        let result = attach_one(&mut ebpf, spec, btf, cgroup);
        if spec.control != 0 {
            match (early, result.is_ok()) {
                (true, false) => write_control(&mut ebpf, control)?,
                (false, true) => write_control(&mut ebpf, control | spec.control)?,
                _ => {}
            }
        }
        match result {
            Ok(()) => {
                control |= spec.control;
                info!(hook = %spec.hook.describe(), program = spec.program, "attached");
                attached.push(spec.hook.describe());
            }
            Err(error) if spec.need != Need::Required => {
                warn!(hook = %spec.hook.describe(), %error, "hook unavailable on this kernel; continuing without {}", spec.provides);
                degraded.push(format!("{} ({})", spec.hook.describe(), spec.provides));
            }
            Err(error) if spec.rung == Rung::Btf => return Err(RungError::RungUnavailable(error)),
            Err(error) => return Err(RungError::Other(error)),
        }
    }
    info!(rung = rung.name(), "TCP hooks");
    Ok(Loaded { ebpf, attached, degraded, tcp_rung: rung, control })
}

/// Sets the control map the programs read to `bits`.
fn write_control(ebpf: &mut Ebpf, bits: u32) -> Result<(), LoadError> {
    let map = ebpf.map_mut(maps::CONTROL).ok_or(LoadError::MissingMap(maps::CONTROL))?;
    let mut control: Array<_, u32> =
        Array::try_from(map).map_err(|source| LoadError::Map { name: maps::CONTROL, source })?;
    control.set(0, bits, 0).map_err(|source| LoadError::Map { name: maps::CONTROL, source })
}

/// Entries of the cookie-keyed owner map on the classic rung: live TCP sockets
/// tracked at once (about 100 bytes each, preallocated).
const OWNERS_BY_COOKIE_ENTRIES: u32 = 262_144;

fn attach_one(ebpf: &mut Ebpf, spec: &HookSpec, btf: &Btf, cgroup: &File) -> Result<(), LoadError> {
    let hook = spec.hook.describe();
    let load_err = |e: ProgramError| LoadError::ProgramLoad {
        program: spec.program,
        hook: hook.clone(),
        reason: program_error_reason(&e),
    };
    let attach_err = |e: ProgramError| LoadError::Attach {
        program: spec.program,
        hook: hook.clone(),
        reason: program_error_reason(&e),
    };
    let program = ebpf.program_mut(spec.program).ok_or_else(|| LoadError::ProgramLoad {
        program: spec.program,
        hook: hook.clone(),
        reason: "not found in the eBPF object (build mismatch)".to_owned(),
    })?;
    // The cgroup program types share load-then-attach-to-the-root but no trait.
    macro_rules! load_attach_cgroup {
        ($ty:ty) => {{
            let p: &mut $ty = program.try_into().map_err(load_err)?;
            p.load().map_err(load_err)?;
            p.attach(cgroup, CgroupAttachMode::Single).map_err(attach_err)?;
        }};
    }
    match spec.hook {
        Hook::TpBtf(name) => {
            let p: &mut BtfTracePoint = program.try_into().map_err(load_err)?;
            p.load(name, btf).map_err(load_err)?;
            p.attach().map_err(attach_err)?;
        }
        Hook::Tracepoint(category, name) => {
            let p: &mut TracePoint = program.try_into().map_err(load_err)?;
            p.load().map_err(load_err)?;
            p.attach(category, name).map_err(attach_err)?;
        }
        // Single is the only mode bpf_link_create accepts for cgroups (5.7+); the
        // kernel still lets several link-attached programs share one cgroup.
        Hook::CgroupSock(_) => load_attach_cgroup!(CgroupSock),
        Hook::CgroupSockAddr(_) => load_attach_cgroup!(CgroupSockAddr),
        Hook::SockOps => load_attach_cgroup!(SockOps),
        Hook::Iter(target) => {
            let p: &mut Iter = program.try_into().map_err(load_err)?;
            p.load(target, btf).map_err(load_err)?;
        }
    }
    Ok(())
}

/// The kernel's reason, with only the end of a verifier log (the part that says why).
fn program_error_reason(error: &ProgramError) -> String {
    const TAIL_LINES: usize = 12;
    let text = error.to_string();
    tracing::debug!(verifier_log = %text, "full program error");
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= TAIL_LINES {
        return text;
    }
    format!("{}\n  ...\n{}", lines[0], lines[lines.len() - TAIL_LINES..].join("\n"))
}

/// Capability numbers from linux/capability.h.
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Fails early, with the names of what is missing, instead of an EPERM from the
/// middle of loading.
fn check_privileges() -> Result<(), LoadError> {
    raise_permitted_capabilities();
    let Some(effective) = effective_capabilities() else {
        // No /proc/self/status (unusual): let the kernel decide.
        return Ok(());
    };
    let has = |cap: u32| effective & (1u64 << cap) != 0;
    let mut missing = Vec::new();
    if !has(CAP_SYS_ADMIN) {
        if !has(CAP_BPF) {
            missing.push("CAP_BPF");
        }
        if !has(CAP_PERFMON) {
            missing.push("CAP_PERFMON");
        }
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    for (capability, lost) in enrichment_losses(effective) {
        warn!(capability, "missing {capability}: {lost}");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LoadError::Privileges { missing: missing.join(", ") })
    }
}

/// Makes every permitted capability effective. A binary given file capabilities
/// without the effective bit (`setcap ...+p`, as the container image does) starts
/// with them permitted only; unlike `+ep`, that still lets it start when the
/// container grants just some of them (an engine that knows no `CAP_BPF`).
fn raise_permitted_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Sets {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
    let mut header = Header { version: 0x2008_0522, pid: 0 };
    let mut sets = [Sets::default(); 2];
    // SAFETY: capget writes two Sets, the size version 3 defines, into `sets`.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, sets.as_mut_ptr()) } != 0 {
        return;
    }
    if sets.iter().all(|s| s.effective == s.permitted) {
        return;
    }
    for s in &mut sets {
        s.effective = s.permitted;
    }
    // SAFETY: capset reads the header and two Sets; raising effective to permitted
    // is always allowed.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut header, sets.as_ptr()) } != 0 {
        warn!(error = %io::Error::last_os_error(), "could not make the permitted capabilities effective");
    }
}

/// Capabilities tracing works without but enrichment needs, with what is lost.
fn enrichment_losses(effective: u64) -> Vec<(&'static str, &'static str)> {
    let has = |cap: u32| effective & (1u64 << cap) != 0;
    let mut lost = Vec::new();
    if !has(CAP_SYS_PTRACE) {
        lost.push((
            "CAP_SYS_PTRACE",
            "executable paths, command lines and container user names are missing for processes \
             with privileges this one lacks",
        ));
    }
    if !has(CAP_DAC_READ_SEARCH) && !has(CAP_SYS_ADMIN) {
        lost.push((
            "CAP_DAC_READ_SEARCH",
            "cgroups older than the probe are found by walking the cgroup hierarchy instead of being \
             opened by id (slower)",
        ));
    }
    lost
}

fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

/// The `CapEff:` line of `/proc/<pid>/status`.
fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Kernels before 5.11 charge BPF memory to `RLIMIT_MEMLOCK`; later ones ignore it.
fn raise_memlock_limit() {
    let limit = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads the struct we pass and has no other effect on memory.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const limit) } != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "could not raise RLIMIT_MEMLOCK (only matters before 5.11)");
    }
}

const TRACEFS: &str = "/sys/kernel/tracing";

/// Classic tracepoints are attached through tracefs; mount it when it is missing.
fn ensure_tracefs() -> Result<(), LoadError> {
    let mounted = |p: &Path| p.join("events").is_dir();
    if mounted(Path::new(TRACEFS)) || mounted(Path::new("/sys/kernel/debug/tracing")) {
        return Ok(());
    }
    let source = c"tracefs";
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings; data may be NULL.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), source.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(LoadError::Tracefs { source: io::Error::last_os_error() });
    }
    info!(path = TRACEFS, "mounted tracefs");
    Ok(())
}

/// Mount point of the cgroup v2 hierarchy (pure or hybrid layout).
#[must_use]
pub fn cgroup2_root() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_cgroup2_mount(&mountinfo)
}

/// The first `cgroup2` mount point in a `/proc/<pid>/mountinfo` text.
fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // Fields: id parent major:minor root mount-point options ... - fstype source super-options
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        if fstype != "cgroup2" {
            return None;
        }
        let mount_point = left.split_whitespace().nth(4)?;
        Some(PathBuf::from(unescape_mountinfo(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = bytes[i + 1..i + 4].iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup2_mount_is_found_in_a_hybrid_layout() {
        let mountinfo = "\
25 30 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 25 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(parse_cgroup2_mount(mountinfo), Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn cgroup2_mount_is_found_in_a_pure_layout_and_unescaped() {
        let mountinfo = "30 1 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n\
                         31 1 0:27 / /mnt/my\\040cg rw - cgroup2 none rw\n";
        assert_eq!(parse_cgroup2_mount(mountinfo), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(unescape_mountinfo("/mnt/my\\040cg"), "/mnt/my cg");
    }

    #[test]
    fn no_cgroup2_mount_gives_none() {
        assert_eq!(parse_cgroup2_mount("26 25 0:23 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"), None);
    }

    #[test]
    fn effective_capabilities_are_read_from_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        let caps = parse_cap_eff(status).expect("CapEff parsed");
        assert_ne!(caps & (1 << CAP_BPF), 0);
        assert!(enrichment_losses(caps).is_empty());
        let tracing_only = (1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_NET_ADMIN);
        let names: Vec<_> = enrichment_losses(tracing_only).into_iter().map(|(c, _)| c).collect();
        assert_eq!(names, ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]);
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
    }
}
