//! packetless kernel side: the CO-RE eBPF object and the kernel/user ABI.
//!
//! `build.rs` compiles `src/bpf/packetless.bpf.c` (which includes every concern:
//! owner, `tcp_life`, udp) with clang into one object, embedded here as [`OBJECT`].
//! [`abi`] holds the `#[repr(C)]` mirrors of what the programs write into the ring
//! buffer and the per-CPU counter map. The probe's loader (probe/src/loader.rs)
//! decides which programs to load and attach; its source stage decodes records
//! with [`abi::RawEvent::from_bytes`].

pub mod abi;

/// The compiled eBPF object (ELF, BPF target, with BTF for CO-RE relocations).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/packetless.bpf.o"));

/// Name of every program in [`OBJECT`], as aya knows them (the C function names).
pub mod programs {
    /// `cgroup/sock_create`: records the creator of every TCP/UDP socket.
    pub const SOCK_CREATE: &str = "cgroup__sock_create";
    /// `tracepoint/syscalls/sys_exit_accept4`: the acceptor of a TCP socket.
    pub const SYS_EXIT_ACCEPT4: &str = "tracepoint__syscalls__sys_exit_accept4";
    /// `tracepoint/syscalls/sys_exit_accept`: the acceptor of a TCP socket.
    pub const SYS_EXIT_ACCEPT: &str = "tracepoint__syscalls__sys_exit_accept";
    /// `tp_btf/inet_sock_set_state`: TCP connect, connect failure, listen, close.
    pub const INET_SOCK_SET_STATE: &str = "tp_btf__inet_sock_set_state";
    /// `tp_btf/tcp_retransmit_skb`: TCP retransmissions.
    pub const TCP_RETRANSMIT_SKB: &str = "tp_btf__tcp_retransmit_skb";
    /// `tracepoint/sock/inet_sock_set_state`: the classic-tracepoint rung of
    /// [`INET_SOCK_SET_STATE`].
    pub const INET_SOCK_SET_STATE_CLASSIC: &str = "tracepoint__sock__inet_sock_set_state";
    /// `tracepoint/tcp/tcp_retransmit_skb`: the classic-tracepoint rung of
    /// [`TCP_RETRANSMIT_SKB`].
    pub const TCP_RETRANSMIT_SKB_CLASSIC: &str = "tracepoint__tcp__tcp_retransmit_skb";
    /// `sockops`: classic rung only; cookie and owner of accepted sockets.
    pub const SOCKOPS: &str = "sockops__passive_established";
    /// `sockops`: BTF rung; TCP state changes of connections from inside the TCP
    /// stack, where the kernel's recursion guard for tracing programs cannot skip them.
    pub const SOCKOPS_STATE: &str = "sockops__tcp_state";
    /// `cgroup/sendmsg4`: destination of unconnected IPv4 UDP sends.
    pub const SENDMSG4: &str = "cgroup__sendmsg4";
    /// `cgroup/sendmsg6`: destination of unconnected IPv6 UDP sends.
    pub const SENDMSG6: &str = "cgroup__sendmsg6";
    /// `cgroup/recvmsg4`: source of IPv4 UDP receives that ask for it.
    pub const RECVMSG4: &str = "cgroup__recvmsg4";
    /// `cgroup/recvmsg6`: source of IPv6 UDP receives that ask for it.
    pub const RECVMSG6: &str = "cgroup__recvmsg6";
    /// `tp_btf/sock_send_length`: bytes of every UDP send.
    pub const SOCK_SEND_LENGTH: &str = "tp_btf__sock_send_length";
    /// `tp_btf/sock_recv_length`: bytes of every UDP receive.
    pub const SOCK_RECV_LENGTH: &str = "tp_btf__sock_recv_length";
    /// `cgroup/bind4`: the port an IPv4 UDP socket asks for in `bind()`.
    pub const BIND4: &str = "cgroup__bind4";
    /// `cgroup/bind6`: the port an IPv6 UDP socket asks for in `bind()`.
    pub const BIND6: &str = "cgroup__bind6";
    /// `cgroup/post_bind4`: IPv4 UDP sockets bound by the application.
    pub const POST_BIND4: &str = "cgroup__post_bind4";
    /// `cgroup/post_bind6`: IPv6 UDP sockets bound by the application.
    pub const POST_BIND6: &str = "cgroup__post_bind6";
    /// `cgroup/sock_release`: UDP sockets going away.
    pub const SOCK_RELEASE: &str = "cgroup__sock_release";
    /// `iter/task_file`: snapshot of every open TCP/UDP socket with its holder.
    pub const ITER_TASK_FILE: &str = "iter__task_file";
    /// `iter/bpf_sk_storage_map` over [`crate::maps::OWNERS`]: the cookie of every TCP
    /// socket the kernel still has.
    pub const ITER_LIVE_TCP: &str = "iter__live_tcp";
    /// `iter/bpf_map_elem` over [`crate::maps::PENDING_OPENS`]: every held open event.
    pub const ITER_PENDING_OPENS: &str = "iter__pending_opens";
    /// `tp_btf/cgroup_mkdir`: paths of new cgroups, kept in [`crate::maps::CGROUP_PATHS`].
    pub const CGROUP_MKDIR: &str = "tp_btf__cgroup_mkdir";
}

/// Names of the maps user space touches.
pub mod maps {
    /// Ring buffer of [`crate::abi::RawEvent`].
    pub const EVENTS: &str = "pl_events";
    /// Per-CPU `u64` counters indexed by [`crate::abi::Stat`].
    pub const STATS: &str = "pl_stats";
    /// Socket storage of owners: one entry per traced socket, freed with it.
    pub const OWNERS: &str = "pl_owners";
    /// LRU hash `cookie -> owner` used by the classic-tracepoint rung.
    pub const OWNERS_BY_COOKIE: &str = "pl_owners_by_cookie";
    /// Hash `u32 -> u8`: network namespace inodes to trace (when the filter is on).
    pub const NETNS: &str = "pl_netns";
    /// LRU hash `u64 -> [u8; CGROUP_PATH_LEN]`: cgroup v2 id to the cgroup's path
    /// (NUL-terminated), recorded when the cgroup is made.
    pub const CGROUP_PATHS: &str = "pl_cgroup_paths";
    /// `PL_CGROUP_PATH_LEN`: bytes of a [`CGROUP_PATHS`] value.
    pub const CGROUP_PATH_LEN: usize = 256;
    /// Array of one `u32` of `CONTROL_*` bits, written while attaching.
    pub const CONTROL: &str = "pl_control";
    /// `PL_CTL_STATE_BY_SOCKOPS`: [`crate::programs::SOCKOPS_STATE`] is attached, so the
    /// state tracepoint leaves the sockets that program follows to it.
    pub const CONTROL_STATE_BY_SOCKOPS: u32 = 1;
    /// `PL_CTL_HOLD_OPENS`: opens wait in [`PENDING_OPENS`], for their socket's close
    /// to carry them or user space to take them.
    pub const CONTROL_HOLD_OPENS: u32 = 2;
    /// Hash `u64 cookie -> RawEvent`: held open events (connect, accept).
    pub const PENDING_OPENS: &str = "pl_pending_opens";
}

/// Names of the load-time globals (`const volatile` in `config.h`).
pub mod globals {
    /// `u32`: 1 to trace only the network namespaces listed in [`crate::maps::NETNS`].
    pub const NETNS_FILTER: &str = "pl_netns_filter";
    /// `u32`: 1 to trace UDP datagrams, bound sockets and releases.
    pub const TRACE_UDP: &str = "pl_trace_udp";
    /// `u32`: 1 when TCP is traced by the classic-tracepoint rung.
    pub const CLASSIC_TCP: &str = "pl_classic_tcp";
    /// `u32`: bytes waiting in the ring buffer before the reader is woken; 0 wakes
    /// on every event.
    pub const WAKEUP_BYTES: &str = "pl_wakeup_bytes";
}
