/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Helpers shared by every concern: counters, event reservation, socket tuple
 * and owner access. All static __always_inline: the SEC functions stay small
 * trampolines and the verifier sees straight-line code.
 */
#ifndef PL_COMMON_H
#define PL_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "events.h"
#include "maps.h"
#include "config.h"

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct nsproxy {
	struct net *net_ns;
};
struct task_struct___ns {
	struct nsproxy *nsproxy;
};
#pragma clang attribute pop

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&pl_stats, &idx);

	if (v)
		*v += 1;
}

/* Reserve a zeroed event; counts the loss when the ring buffer is full. */
static __always_inline struct pl_event *event_reserve(__u16 kind)
{
	struct pl_event *ev = bpf_ringbuf_reserve(&pl_events, sizeof(*ev), 0);

	if (!ev) {
		stat_inc(PL_STAT_RINGBUF_FULL);
		return NULL;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	ev->ts_ns = bpf_ktime_get_boot_ns();
	return ev;
}

/* Whether this commit should wake the reader (see pl_wakeup_bytes). */
static __always_inline __u64 wakeup_flags(void)
{
	if (!pl_wakeup_bytes)
		return 0;
	return bpf_ringbuf_query(&pl_events, BPF_RB_AVAIL_DATA) >= pl_wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										   : BPF_RB_NO_WAKEUP;
}

static __always_inline void event_submit(struct pl_event *ev)
{
	if (!(ev->flags & PL_F_OWNER_KNOWN))
		stat_inc(PL_STAT_NO_OWNER);
	bpf_ringbuf_submit(ev, wakeup_flags());
}

/* The PL_CTL_* bits user space raised. */
static __always_inline __u32 control_bits(void)
{
	__u32 key = 0;
	__u32 *control = bpf_map_lookup_elem(&pl_control, &key);

	return control ? *control : 0;
}

/*
 * Sends an open event (connect, accept) built on the stack: held back in
 * pl_pending_opens when `hold` and user space asked for it, else (or when the
 * map is full) into the ring buffer at once.
 */
static __always_inline void open_submit(struct pl_event *ev, bool hold)
{
	if (!(ev->flags & PL_F_OWNER_KNOWN))
		stat_inc(PL_STAT_NO_OWNER);
	if (hold && ev->cookie && (control_bits() & PL_CTL_HOLD_OPENS) &&
	    bpf_map_update_elem(&pl_pending_opens, &ev->cookie, ev, BPF_NOEXIST) == 0)
		return;
	if (bpf_ringbuf_output(&pl_events, ev, sizeof(*ev), wakeup_flags()))
		stat_inc(PL_STAT_RINGBUF_FULL);
}

/*
 * Folds the held open of the socket closing into its close event, if one is
 * held. The entry is read before it is deleted: only a successful delete makes
 * it ours; a failed one means user space took it in between and reported it.
 */
static __always_inline void close_fold_open(struct pl_event *ev)
{
	struct pl_event *open;
	__u64 open_ns, latency_ns;
	__u16 kind;

	if (!ev->cookie || !(control_bits() & PL_CTL_HOLD_OPENS))
		return;
	open = bpf_map_lookup_elem(&pl_pending_opens, &ev->cookie);
	if (!open)
		return;
	open_ns = open->ts_ns;
	latency_ns = open->latency_ns;
	kind = open->kind;
	if (bpf_map_delete_elem(&pl_pending_opens, &ev->cookie))
		return;
	ev->open_ns = open_ns;
	if (kind == PL_EV_CONNECT) {
		ev->flags |= PL_F_OPENED_ACTIVE;
		ev->latency_ns = latency_ns;
	} else {
		ev->flags |= PL_F_OPENED_PASSIVE;
	}
}

/*
 * Reports the held open of a socket at once, ahead of an event of the open
 * connection that must find its flow (a retransmit). The entry is copied into
 * the ring before it is deleted and the copy submitted only when the delete
 * succeeds: as for closes, whoever deletes the entry reports it. Returns false
 * when the ring is full: the open stays held (taken out later), and the event
 * meant to follow it must not go ahead of it.
 */
static __always_inline bool release_held_open(__u64 cookie)
{
	struct pl_event *open, *ev;

	if (!cookie || !(control_bits() & PL_CTL_HOLD_OPENS))
		return true;
	open = bpf_map_lookup_elem(&pl_pending_opens, &cookie);
	if (!open)
		return true;
	ev = bpf_ringbuf_reserve(&pl_events, sizeof(*ev), 0);
	if (!ev) {
		stat_inc(PL_STAT_RINGBUF_FULL);
		return false;
	}
	__builtin_memcpy(ev, open, sizeof(*ev));
	if (bpf_map_delete_elem(&pl_pending_opens, &cookie)) {
		bpf_ringbuf_discard(ev, 0);
		return true;
	}
	bpf_ringbuf_submit(ev, wakeup_flags());
	return true;
}

static __always_inline __u32 sk_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* Network namespace of the current task (process context only). */
static __always_inline __u32 current_netns(void)
{
	struct task_struct___ns *task = (void *)bpf_get_current_task();

	return BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
}

static __always_inline bool netns_wanted(__u32 netns)
{
	return pl_netns_filter == 0 || bpf_map_lookup_elem(&pl_netns, &netns) != NULL;
}

static __always_inline __u16 sk_proto(const struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
}

/* Family, addresses and ports of a full socket, as the event wants them. */
static __always_inline void event_fill_tuple(struct pl_event *ev, const struct sock *sk)
{
	const struct inet_sock *inet = (const void *)sk;

	ev->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	/* skc_num is the local port in host order, but it already reads 0 when a
	 * socket reaches TCP_CLOSE after an unbind (inet_put_port): inet_sport
	 * keeps the port. */
	ev->lport = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
	if (ev->lport == 0)
		ev->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (ev->family == AF_INET) {
		BPF_CORE_READ_INTO(&ev->laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO(&ev->raddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&ev->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&ev->raddr, sk, __sk_common.skc_v6_daddr);
	}
	ev->netns = sk_netns(sk);
	ev->proto = sk_proto(sk);
}

/* Parent, start time and executable name of `task`: what user space cannot learn
 * from /proc once a short-lived process is gone. */
static __always_inline void owner_task_details(struct pl_owner *o, struct task_struct *task)
{
	const unsigned char *exe;

	o->ppid = BPF_CORE_READ(task, real_parent, tgid);
	BPF_CORE_READ_STR_INTO(&o->parent_comm, task, real_parent, comm);
	if (bpf_core_field_exists(task->start_boottime))
		o->start_ns = BPF_CORE_READ(task, start_boottime);
	else
		o->start_ns = BPF_CORE_READ((struct task_struct___real_start *)task, real_start_time);
	/* +1 at every execve: with pid and start time, a key of the program image. */
	if (bpf_core_field_size(task->self_exec_id) == sizeof(__u64))
		o->exec_id = (__u32)BPF_CORE_READ(task, self_exec_id);
	else
		o->exec_id = BPF_CORE_READ((struct task_struct___exec_id32 *)task, self_exec_id);
	exe = BPF_CORE_READ(task, mm, exe_file, f_path.dentry, d_name.name);
	if (exe)
		bpf_probe_read_kernel_str(o->exe, sizeof(o->exe), exe);
	else
		o->exe[0] = 0;
}

/* Describe the current task (process context only). */
static __always_inline void owner_from_current(struct pl_owner *o)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	o->pid = pid_tgid >> 32;
	o->tid = (__u32)pid_tgid;
	o->uid = (__u32)uid_gid;
	o->gid = uid_gid >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
	owner_task_details(o, (struct task_struct *)bpf_get_current_task());
	o->known = 1;
}

/* Copy who-fields (not the per-socket history) from one owner to another. */
static __always_inline void owner_copy_identity(struct pl_owner *dst, const struct pl_owner *src)
{
	dst->pid = src->pid;
	dst->tid = src->tid;
	dst->uid = src->uid;
	dst->gid = src->gid;
	dst->cgroup_id = src->cgroup_id;
	dst->ppid = src->ppid;
	dst->start_ns = src->start_ns;
	dst->exec_id = src->exec_id;
	__builtin_memcpy(dst->comm, src->comm, sizeof(dst->comm));
	__builtin_memcpy(dst->parent_comm, src->parent_comm, sizeof(dst->parent_comm));
	__builtin_memcpy(dst->exe, src->exe, sizeof(dst->exe));
	dst->known = src->known;
}

static __always_inline void event_set_owner(struct pl_event *ev, const struct pl_owner *o)
{
	if (!o || !o->known)
		return;
	ev->pid = o->pid;
	ev->tid = o->tid;
	ev->uid = o->uid;
	ev->gid = o->gid;
	ev->cgroup_id = o->cgroup_id;
	ev->ppid = o->ppid;
	ev->start_ns = o->start_ns;
	ev->exec_id = o->exec_id;
	__builtin_memcpy(ev->comm, o->comm, sizeof(ev->comm));
	__builtin_memcpy(ev->parent_comm, o->parent_comm, sizeof(ev->parent_comm));
	__builtin_memcpy(ev->exe, o->exe, sizeof(ev->exe));
	ev->flags |= PL_F_OWNER_KNOWN;
}

static __always_inline void event_set_current_owner(struct pl_event *ev)
{
	struct pl_owner o = {};

	owner_from_current(&o);
	event_set_owner(ev, &o);
	ev->flags |= PL_F_OWNER_CURRENT;
}

#endif /* PL_COMMON_H */
