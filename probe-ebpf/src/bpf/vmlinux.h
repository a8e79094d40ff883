/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The few kernel-internal types the programs read, declared by hand.
 *
 * Every record is marked preserve_access_index, so clang emits a CO-RE
 * relocation for each field access and the loader rewrites it against the
 * running kernel's BTF: only the field NAMES and types here matter, never
 * their order or offsets. Fields inside anonymous unions of the real kernel
 * structs are declared flat; libbpf finds them through the anonymous members.
 * UAPI types (struct bpf_sock, map types, flags) come from <linux/bpf.h>.
 */
#ifndef PL_VMLINUX_H
#define PL_VMLINUX_H

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef _Bool bool;
#define true 1
#define false 0

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define MSG_PEEK 2

/* include/net/tcp_states.h; the numbering is UAPI-stable (also in /proc/net/tcp). */
enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT = 2,
	TCP_SYN_RECV = 3,
	TCP_FIN_WAIT1 = 4,
	TCP_FIN_WAIT2 = 5,
	TCP_TIME_WAIT = 6,
	TCP_CLOSE = 7,
	TCP_CLOSE_WAIT = 8,
	TCP_LAST_ACK = 9,
	TCP_LISTEN = 10,
	TCP_CLOSING = 11,
	TCP_NEW_SYN_RECV = 12,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
};

typedef struct {
	s64 counter;
} atomic64_t;

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	atomic64_t skc_cookie;
	/* Recent kernels keep the socket flags here; older ones in sock.sk_flags. */
	unsigned long skc_flags;
};

/* enum sock_flags, include/net/sock.h; read through bpf_core_enum_value. */
enum sock_flags {
	SOCK_DEAD,
	SOCK_DONE,
};

struct sock {
	struct sock_common __sk_common;
	int sk_err;
	/* A bitfield before 5.6 (commit bf9765145b85): read it with
	 * BPF_CORE_READ_BITFIELD_PROBED, which handles both layouts. */
	u16 sk_protocol;
};

/* Flavour for kernels where the flags are still a member of struct sock. */
struct sock___sk_flags {
	unsigned long sk_flags;
};

struct inet_sock {
	struct sock sk;
	__be16 inet_sport;
};

struct tcp_sock {
	u64 bytes_acked;
	u64 bytes_received;
	u32 segs_in;
	u32 segs_out;
	u32 total_retrans;
	u32 srtt_us;
	u32 snd_una;
	u32 write_seq;
	u8 bpf_sock_ops_cb_flags; /* CONFIG_BPF; checked with bpf_core_field_exists */
};

struct qstr {
	const unsigned char *name;
};

struct dentry {
	struct qstr d_name;
};

struct path {
	struct dentry *dentry;
};

struct file {
	void *private_data;
	struct path f_path;
};

struct mm_struct {
	struct file *exe_file;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct socket {
	struct sock *sk;
};

typedef struct {
	__u32 val;
} kuid_t;

typedef struct {
	__u32 val;
} kgid_t;

struct cred {
	kuid_t uid;
	kgid_t gid;
};

struct kernfs_node {
	u64 id;
};

struct cgroup_root {
	int hierarchy_id;
};

struct cgroup {
	struct kernfs_node *kn;
	struct cgroup_root *root;
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

struct task_struct {
	struct files_struct *files;
	int pid;
	int tgid;
	char comm[16];
	const struct cred *cred;
	struct css_set *cgroups;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	u64 start_boottime;
	u64 self_exec_id;
};

/* Before 5.8 (commit d1e7fd6462ca) the exec counter was 32 bits. */
struct task_struct___exec_id32 {
	u32 self_exec_id;
};

/* Before 5.5 (commit cf25e24db61c) the boot-based start time was real_start_time. */
struct task_struct___real_start {
	u64 real_start_time;
};

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
};

/* Context of iter/task_file programs: one call per open file of every task. */
struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	u32 fd;
	struct file *file;
};

struct bpf_map;

/* Context of iter/bpf_sk_storage_map programs: one call per socket that has an
 * entry in the socket storage map the iterator was created for. */
struct bpf_iter__bpf_sk_storage_map {
	struct bpf_iter_meta *meta;
	struct bpf_map *map;
	struct sock *sk;
	void *value;
};

/* Context of iter/bpf_map_elem programs: one call per element of the map. */
struct bpf_iter__bpf_map_elem {
	struct bpf_iter_meta *meta;
	struct bpf_map *map;
	void *key;
	void *value;
};

#pragma clang attribute pop

/*
 * Context of the classic syscall exit tracepoints (syscalls:sys_exit_*).
 * This layout has been stable since syscall tracepoints exist: the 8-byte
 * common header, the syscall number, then the return value.
 */
struct syscall_exit_ctx {
	__u64 common;
	long nr;
	long ret;
};

/*
 * Contexts of the classic TCP tracepoints (the fallback rung). Only the leading
 * fields are declared; their offsets have not changed since the tracepoints were
 * added (inet_sock_set_state 4.16, tcp_retransmit_skb 4.15), see the `format`
 * files under /sys/kernel/tracing/events/{sock,tcp}/.
 */
struct inet_sock_set_state_ctx {
	__u64 common;
	const void *skaddr;
	int oldstate;
	int newstate;
};

struct tcp_retransmit_skb_ctx {
	__u64 common;
	const void *skbaddr;
	const void *skaddr;
};

#endif /* PL_VMLINUX_H */
