/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Every map of the object: key, value, who writes, who deletes.
 */
#ifndef PL_MAPS_H
#define PL_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "events.h"

/*
 * Who owns a socket, captured in process context and kept with the socket.
 * Internal to the kernel side (never sent as is), so it is not in events.h.
 */
struct pl_owner {
	__u64 cgroup_id;
	__u64 syn_ts_ns;   /* CLOCK_BOOTTIME of CLOSE -> SYN_SENT; 0 if not seen */
	__u32 pid;         /* tgid */
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__u32 states_seen; /* bit n set = socket was seen in TCP state n */
	__u32 known;       /* 1 once the fields above describe a process */
	__u32 netns;       /* inode of the network namespace it was created in */
	__u32 retrans_seen;/* retransmit events seen for this socket */
	__u32 bind_port;   /* port asked for in bind() (host order); 0 = any */
	__u32 ppid;        /* parent tgid */
	__u64 start_ns;    /* process start, CLOCK_BOOTTIME ns */
	char comm[PL_COMM_LEN];
	char parent_comm[PL_COMM_LEN];
	char exe[PL_EXE_LEN];
	__u32 exec_id;     /* low 32 bits of the process's exec counter */
};

/*
 * pl_events: ring buffer of struct pl_event.
 * Written by every program; read (and so freed) by user space.
 * Size is set from user space with set_max_entries (power of two pages).
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} pl_events SEC(".maps");

/*
 * pl_owners: socket -> struct pl_owner, in the socket's own storage.
 * Written by cgroup/sock_create (creator), by the accept exit path through
 * pl_acceptors (the real acceptor), and lazily by state changes in process
 * context. BPF_F_CLONE copies the listener's entry into each accepted child
 * so the child has an owner before accept() returns. The kernel frees the
 * entry with the socket: nobody deletes it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct pl_owner);
} pl_owners SEC(".maps");

/*
 * pl_owners_by_cookie: socket cookie -> struct pl_owner, for the classic
 * tracepoint rung, whose programs cannot reach socket storage. Written by
 * cgroup/sock_create (creator) and sockops (accepted children, from their
 * cloned storage); the classic TCP handlers update it and delete the entry when
 * the socket reaches CLOSE. LRU: sockets that vanish unseen cannot fill it.
 * Sized to 1 entry by the loader when the BTF rung is active.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, __u64);
	__type(value, struct pl_owner);
} pl_owners_by_cookie SEC(".maps");

/*
 * pl_acceptors: socket cookie -> struct pl_owner of the process whose
 * accept() returned the socket. The accept exit tracepoint cannot use socket
 * storage (classic tracepoint), so it parks the owner here; the next BTF
 * program that sees the socket moves it into pl_owners and deletes the key.
 * LRU so that sockets closed unseen cannot fill it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct pl_owner);
} pl_acceptors SEC(".maps");

/*
 * UDP peer of the datagram being sent/received by a thread, between the
 * cgroup sendmsg/recvmsg hook (which sees the address) and the
 * sock_send_length/sock_recv_length tracepoint (which sees the byte count).
 * Key: pid_tgid. Written by cgroup/{send,recv}msg{4,6}; deleted by the
 * tracepoint of the same call.
 */
struct pl_udp_peer {
	__u64 cookie;
	__u8 addr[16];
	__u16 family;
	__u16 port; /* host byte order */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pl_udp_peer);
} pl_udp_peers SEC(".maps");

/*
 * pl_netns: network namespace inodes to trace when pl_netns_filter is set.
 * Key: inode; value: unused (1). Filled by user space before attaching;
 * never written by programs.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} pl_netns SEC(".maps");

/*
 * pl_stats: per-CPU counters indexed by enum pl_stat. Incremented by every
 * program on every loss; read by user space; never reset.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PL_STAT__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} pl_stats SEC(".maps");


/*
 * pl_cgroup_paths: cgroup v2 id -> the cgroup's path below the v2 root, as the
 * kernel names it when the cgroup is made. User space maps the cgroup ids of
 * events to paths (and so to containers) even after a short-lived container's
 * cgroup is gone. Written by tp_btf/cgroup_mkdir; least recently used entries
 * make room for new ones.
 */
#define PL_CGROUP_PATH_LEN 256

struct pl_cgroup_path {
	char path[PL_CGROUP_PATH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pl_cgroup_path);
} pl_cgroup_paths SEC(".maps");

/*
 * pl_control: one u32 of PL_CTL_* bits, written by user space while it attaches
 * programs, read by programs that must know what else is attached.
 */
#define PL_CTL_STATE_BY_SOCKOPS 1U /* sockops__tcp_state is attached (see tcp_life.bpf.c) */
#define PL_CTL_HOLD_OPENS 2U       /* opens wait in pl_pending_opens (see there) */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} pl_control SEC(".maps");

/*
 * pl_pending_opens: socket cookie -> its open event (connect or accept), held
 * back while PL_CTL_HOLD_OPENS is set. A connection that closes soon sends one
 * event instead of two: its close takes the held open out and carries it
 * (PL_F_OPENED_*). User space takes out, with iter__pending_opens and a delete
 * per entry, the opens of connections that outlive its pairing window, and
 * reports them itself. Whoever deletes an entry owns it, so an open is reported
 * exactly once; a full map sends the open at once. Sized for the connections
 * opened within the hold and still open, not for all live ones: the iterator
 * walks every bucket ten times a second (32,768 cost the probe 4% of its CPU in
 * a storm).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct pl_event);
} pl_pending_opens SEC(".maps");

#endif /* PL_MAPS_H */
