/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Everything that crosses from the kernel to user space, and nothing else.
 *
 * Rules: fixed-width types only, explicit padding, no bool, every struct a
 * multiple of 8 bytes with a _Static_assert on its size and on the offsets
 * user space depends on. probe-ebpf/src/abi.rs mirrors these structs with the
 * same numbers, and a test compares both with the BTF of the built object.
 * The object is embedded in the binary that decodes it, so both sides always
 * come from the same build: a layout change is one commit on both sides.
 */
#ifndef PL_EVENTS_H
#define PL_EVENTS_H

#define PL_COMM_LEN 16
#define PL_EXE_LEN 32

/* Event kinds. Numbers are part of the ABI: never reuse one. */
enum pl_event_kind {
	PL_EV_CONNECT = 1,        /* active open reached ESTABLISHED; latency_ns set */
	PL_EV_CONNECT_FAILED = 2, /* active open ended before ESTABLISHED; error set */
	PL_EV_ACCEPT = 3,         /* accept()/accept4() returned this socket; owner = acceptor */
	PL_EV_CLOSE = 4,          /* TCP socket reached CLOSE; final counters set */
	PL_EV_RETRANSMIT = 5,     /* one TCP segment retransmitted; total_retrans set */
	PL_EV_UDP_SEND = 6,       /* one datagram sent; bytes set */
	PL_EV_UDP_RECV = 7,       /* one datagram received; bytes set */
	PL_EV_LISTEN = 8,         /* TCP socket entered LISTEN, or UDP socket bound */
	PL_EV_UDP_CLOSE = 9,      /* UDP socket released */
	PL_EV_SNAPSHOT = 10,      /* iterator: one open socket, its holder and counters */
};

/* Bits of pl_event.flags. */
enum pl_event_flags {
	/* The owner fields were filled (from socket storage or current). */
	PL_F_OWNER_KNOWN = 1 << 0,
	/* The owner was taken from `current` at this event, not from storage. */
	PL_F_OWNER_CURRENT = 1 << 1,
	/* SOCK_DONE was set when the socket closed: the peer's FIN arrived, so
	 * bytes_received counts one sequence number that is not payload. */
	PL_F_FIN_RECEIVED = 1 << 2,
	/* snd_una == write_seq at close: everything queued, FIN included, was acked. */
	PL_F_ALL_ACKED = 1 << 3,
	/* The UDP peer is unknown (unconnected socket, app did not ask for it). */
	PL_F_PEER_UNKNOWN = 1 << 4,
	/* CLOSE: the socket's connect was held back (pl_pending_opens) and is
	 * folded in: open_ns is its time, latency_ns its latency. */
	PL_F_OPENED_ACTIVE = 1 << 5,
	/* CLOSE: the socket's accept was held back and is folded in: open_ns. */
	PL_F_OPENED_PASSIVE = 1 << 6,
};

/*
 * One record per event, fixed size. Fields that an event kind does not use
 * are zero. Addresses are 16 bytes: IPv4 uses the first 4 (network order),
 * IPv6 all 16 (network order). Ports are in HOST byte order.
 */
struct pl_event {
	__u64 ts_ns;          /* bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME */
	__u64 cookie;         /* bpf_get_socket_cookie(): the join key */
	__u64 cgroup_id;      /* owner's cgroup v2 id */
	__u64 bytes_acked;    /* CLOSE: tcp_sock.bytes_acked (sequence space) */
	__u64 bytes_received; /* CLOSE: tcp_sock.bytes_received (sequence space) */
	__u64 latency_ns;     /* CONNECT: SYN_SENT -> ESTABLISHED */
	__u64 bytes;          /* UDP_SEND / UDP_RECV: payload bytes */
	__u32 netns;          /* network namespace inode number */
	__u32 pid;            /* owner tgid */
	__u32 tid;            /* owner thread id */
	__u32 uid;
	__u32 gid;
	__u32 segs_in;        /* CLOSE */
	__u32 segs_out;       /* CLOSE */
	__u32 total_retrans;  /* CLOSE, RETRANSMIT */
	__u32 srtt_us;        /* CLOSE, RETRANSMIT, CONNECT: smoothed RTT in us */
	__s32 error;          /* CONNECT_FAILED: sk_err (positive errno), 0 = aborted */
	__u32 states_seen;    /* CLOSE: bit n set = the socket was in TCP state n */
	__u16 kind;           /* enum pl_event_kind */
	__u16 family;         /* AF_INET or AF_INET6 */
	__u16 lport;          /* local port, host byte order */
	__u16 rport;          /* remote port, host byte order */
	__u8 proto;           /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 state;           /* TCP state after the event */
	__u8 oldstate;        /* TCP state before the event */
	__u8 flags;           /* enum pl_event_flags */
	__u8 laddr[16];
	__u8 raddr[16];
	char comm[PL_COMM_LEN];
	char parent_comm[PL_COMM_LEN]; /* owner's parent (real_parent) comm */
	char exe[PL_EXE_LEN];          /* basename of the owner's executable, cut */
	__u64 start_ns;                /* owner's start, CLOCK_BOOTTIME ns (with pid: a process key) */
	__u32 ppid;                    /* owner's parent tgid */
	__u32 exec_id;                 /* owner's exec counter (low 32 bits): +1 at every execve */
	__u64 open_ns;                 /* CLOSE with PL_F_OPENED_*: when the open happened */
};

_Static_assert(sizeof(struct pl_event) == 232, "pl_event size");
_Static_assert(__builtin_offsetof(struct pl_event, netns) == 56, "pl_event.netns");
_Static_assert(__builtin_offsetof(struct pl_event, kind) == 100, "pl_event.kind");
_Static_assert(__builtin_offsetof(struct pl_event, proto) == 108, "pl_event.proto");
_Static_assert(__builtin_offsetof(struct pl_event, laddr) == 112, "pl_event.laddr");
_Static_assert(__builtin_offsetof(struct pl_event, comm) == 144, "pl_event.comm");
_Static_assert(__builtin_offsetof(struct pl_event, exe) == 176, "pl_event.exe");
_Static_assert(__builtin_offsetof(struct pl_event, start_ns) == 208, "pl_event.start_ns");
_Static_assert(__builtin_offsetof(struct pl_event, open_ns) == 224, "pl_event.open_ns");

/*
 * Indexes into the per-CPU `pl_stats` array. Every early return that loses
 * information increments one of these; user space sums the CPUs and reports
 * them. Numbers are part of the ABI.
 */
enum pl_stat {
	PL_STAT_RINGBUF_FULL = 0,   /* bpf_ringbuf_reserve failed: event lost */
	PL_STAT_STORAGE_FAIL = 1,   /* bpf_sk_storage_get(CREATE) failed: owner lost */
	PL_STAT_ACCEPT_MAP_FULL = 2,/* acceptor map update failed: acceptor lost */
	PL_STAT_ACCEPT_READ_FAIL = 3,/* fd table walk after accept failed */
	PL_STAT_UDP_PEER_MAP_FULL = 4,/* pending UDP peer not stored: peer lost */
	PL_STAT_NO_OWNER = 5,       /* event emitted without a known owner */
	PL_STAT__COUNT = 6,
};

#endif /* PL_EVENTS_H */
