/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Socket snapshot: every TCP and UDP socket held open by a file descriptor, with
 * the task that holds it and, for TCP, its live counters.
 *
 * Hook: iter/task_file (5.8+) with bpf_sock_from_file (5.11+). User space runs
 * the iterator at start, to learn the sockets that existed before the probe
 * (listeners, established connections) with their owners, and periodically, to
 * read the counters of long-lived TCP connections. One pass covers every task,
 * so every network namespace. Records go to the iterator's seq_file as
 * struct pl_event of kind PL_EV_SNAPSHOT; a socket shared by several fds or
 * tasks appears once per fd and user space keeps the first.
 *
 * Sockets the probe has no owner for yet get one here, in their storage (and
 * in the cookie map on the classic rung), so that their later kernel events are
 * attributed too.
 *
 * Live TCP sockets: iter/bpf_sk_storage_map (5.9+) over pl_owners writes the
 * cookie (8 bytes) of every TCP socket that has an owner entry. The kernel frees
 * that entry only with the socket itself, so the list holds every socket not yet
 * freed, with or without a descriptor (orphans still closing included). User
 * space closes the flows of sockets missing from it twice in a row: sockets
 * whose close event never came.
 */
#include "common.h"

static __always_inline void owner_from_task(struct pl_owner *o, struct task_struct *task)
{
	o->pid = BPF_CORE_READ(task, tgid);
	o->tid = BPF_CORE_READ(task, pid);
	o->uid = BPF_CORE_READ(task, cred, uid.val);
	o->gid = BPF_CORE_READ(task, cred, gid.val);
	o->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	BPF_CORE_READ_STR_INTO(&o->comm, task, comm);
	owner_task_details(o, task);
	o->known = 1;
}

static __always_inline int handle_task_file(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct pl_owner holder = {};
	struct pl_event ev = {};
	struct pl_owner *o;
	struct socket *sock;
	struct sock *sk;
	__u16 family, proto;

	if (!task || !file)
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	if (!sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	proto = sk_proto(sk);
	if ((family != AF_INET && family != AF_INET6) || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return 0;
	if (!netns_wanted(sk_netns(sk)))
		return 0;

	ev.kind = PL_EV_SNAPSHOT;
	ev.ts_ns = bpf_ktime_get_boot_ns();
	event_fill_tuple(&ev, sk);
	ev.cookie = bpf_get_socket_cookie(sk);
	ev.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	owner_from_task(&holder, task);
	holder.netns = ev.netns;

	o = bpf_sk_storage_get(&pl_owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (o && !o->known) {
		owner_copy_identity(o, &holder);
		o->netns = ev.netns;
	}
	if (o && proto == IPPROTO_TCP)
		o->states_seen |= 1U << (ev.state & 31);
	if (pl_classic_tcp && proto == IPPROTO_TCP && o)
		bpf_map_update_elem(&pl_owners_by_cookie, &ev.cookie, o, BPF_NOEXIST);
	/* The record names the process holding the descriptor now. */
	event_set_owner(&ev, &holder);
	if (o)
		ev.states_seen = o->states_seen;
	if (proto == IPPROTO_TCP && ev.state != TCP_LISTEN) {
		tcp_fill_counters(&ev, sk);
		tcp_fill_close_flags(&ev, sk);
	}
	bpf_seq_write(seq, &ev, sizeof(ev));
	return 0;
}

SEC("iter/task_file")
int iter__task_file(struct bpf_iter__task_file *ctx)
{
	return handle_task_file(ctx);
}

static __always_inline int handle_live_tcp(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	struct sock *sk = ctx->sk;
	__u64 cookie;

	if (!sk || !ctx->value || sk_proto(sk) != IPPROTO_TCP)
		return 0;
	cookie = bpf_get_socket_cookie(sk);
	bpf_seq_write(ctx->meta->seq, &cookie, sizeof(cookie));
	return 0;
}

SEC("iter/bpf_sk_storage_map")
int iter__live_tcp(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	return handle_live_tcp(ctx);
}

/*
 * Held opens: iter/bpf_map_elem (5.9+) over pl_pending_opens writes every held
 * open event whole. User space deletes the entries of connections older than
 * its pairing window one by one and reports those whose delete succeeded (see
 * pl_pending_opens).
 */
SEC("iter/bpf_map_elem")
int iter__pending_opens(struct bpf_iter__bpf_map_elem *ctx)
{
	struct pl_event *ev = ctx->value;

	if (!ev)
		return 0;
	bpf_seq_write(ctx->meta->seq, ev, sizeof(*ev));
	return 0;
}
