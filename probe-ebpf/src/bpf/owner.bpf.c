/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Socket ownership: which process a socket belongs to, captured in process
 * context so that events raised later in softirq or timer context (where
 * `current` is an unrelated task or the idle thread) are still attributed.
 *
 * Hooks:
 *  - cgroup/sock_create (attached to the root of the cgroup v2 hierarchy):
 *    runs in socket() for every inet socket; stores the creator in pl_owners.
 *  - syscalls:sys_exit_accept4 / sys_exit_accept (classic tracepoints):
 *    the process whose accept() returned a socket is its real owner, which
 *    can differ from the listener's creator (pre-fork servers, fd passing).
 *    The socket is found by walking current->files->fdt->fd[ret]; the owner is
 *    parked in pl_acceptors by cookie, because classic tracepoints cannot
 *    reach socket storage, and an ACCEPT event is emitted.
 *
 * Data flow: pl_owners is read by every BTF program through owner_get(),
 * which also folds a parked acceptor into the socket's storage.
 */
#include "common.h"

static __always_inline int handle_sock_create(struct bpf_sock *ctx)
{
	struct pl_owner *o;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return 1;
	/* Generates the cookie now, in process context, so that the classic
	 * accept tracepoint can read it from the socket later. */
	bpf_get_socket_cookie(ctx);
	o = bpf_sk_storage_get(&pl_owners, ctx, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o) {
		stat_inc(PL_STAT_STORAGE_FAIL);
		return 1;
	}
	owner_from_current(o);
	o->netns = current_netns();
	o->states_seen = 0;
	o->syn_ts_ns = 0;
	o->retrans_seen = 0;
	if (pl_classic_tcp && ctx->protocol == IPPROTO_TCP) {
		__u64 cookie = bpf_get_socket_cookie(ctx);

		if (bpf_map_update_elem(&pl_owners_by_cookie, &cookie, o, BPF_ANY))
			stat_inc(PL_STAT_STORAGE_FAIL);
	}
	return 1;
}

SEC("cgroup/sock_create")
int cgroup__sock_create(struct bpf_sock *ctx)
{
	return handle_sock_create(ctx);
}

/* Replace the owner by the process parked by the accept tracepoint, if any. */
static __always_inline void owner_fold_acceptor(struct pl_owner *o, __u64 cookie)
{
	struct pl_owner *acc = bpf_map_lookup_elem(&pl_acceptors, &cookie);

	if (acc) {
		owner_copy_identity(o, acc);
		bpf_map_delete_elem(&pl_acceptors, &cookie);
	}
}

/*
 * The owner storage of a socket seen by a BTF program, created if missing
 * (sockets that existed before the probe started), with any acceptor parked
 * by the accept tracepoint folded in. `sk` is any pointer the program type may
 * pass to bpf_sk_storage_get (a BTF socket, or a sockops context's socket).
 */
static __always_inline struct pl_owner *owner_get(void *sk, __u64 cookie)
{
	struct pl_owner *o;

	o = bpf_sk_storage_get(&pl_owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o) {
		stat_inc(PL_STAT_STORAGE_FAIL);
		return NULL;
	}
	owner_fold_acceptor(o, cookie);
	return o;
}

/*
 * The owner record of a socket for the classic tracepoint rung: the entry of
 * pl_owners_by_cookie, created empty if missing, with a parked acceptor folded in.
 * NULL when the socket has no cookie yet (created before the probe and never
 * seen by a cookie-generating hook) or the map is full.
 */
static __always_inline struct pl_owner *owner_get_by_cookie(__u64 cookie)
{
	struct pl_owner *o;

	if (!cookie)
		return NULL;
	o = bpf_map_lookup_elem(&pl_owners_by_cookie, &cookie);
	if (!o) {
		struct pl_owner empty = {};

		bpf_map_update_elem(&pl_owners_by_cookie, &cookie, &empty, BPF_NOEXIST);
		o = bpf_map_lookup_elem(&pl_owners_by_cookie, &cookie);
		if (!o) {
			stat_inc(PL_STAT_STORAGE_FAIL);
			return NULL;
		}
	}
	owner_fold_acceptor(o, cookie);
	return o;
}

/*
 * sockops, classic rung only: when a passively opened socket is established, its
 * storage holds the listener's owner (BPF_F_CLONE). Generate the child's cookie
 * now, so that the accept tracepoint can read it, and copy that owner to
 * pl_owners_by_cookie, where classic tracepoint programs can find it.
 */
static __always_inline int handle_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct pl_owner *o;
	__u64 cookie;

	if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB || !sk)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	o = bpf_sk_storage_get(&pl_owners, sk, 0, 0);
	if (o && bpf_map_update_elem(&pl_owners_by_cookie, &cookie, o, BPF_NOEXIST) == 0) {
		o = bpf_map_lookup_elem(&pl_owners_by_cookie, &cookie);
		if (o) {
			o->states_seen = 0;
			o->syn_ts_ns = 0;
			o->retrans_seen = 0;
		}
	}
	return 1;
}

SEC("sockops")
int sockops__passive_established(struct bpf_sock_ops *skops)
{
	return handle_sockops(skops);
}

/* The socket behind file descriptor `fd` of the current task, or NULL. */
static __always_inline struct sock *current_fd_sock(long fd)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;

	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_core_read(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

static __always_inline int handle_accept_exit(struct syscall_exit_ctx *ctx)
{
	struct pl_owner acceptor = {};
	/* Built on the stack: it may wait in pl_pending_opens. */
	struct pl_event ev = {};
	struct sock *sk;
	__u64 cookie;
	__u16 family;
	long fd = ctx->ret;

	if (fd < 0)
		return 0;
	sk = current_fd_sock(fd);
	if (!sk) {
		stat_inc(PL_STAT_ACCEPT_READ_FAIL);
		return 0;
	}
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if ((family != AF_INET && family != AF_INET6) || sk_proto(sk) != IPPROTO_TCP)
		return 0;
	if (!netns_wanted(sk_netns(sk)))
		return 0;
	cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	owner_from_current(&acceptor);
	if (cookie && bpf_map_update_elem(&pl_acceptors, &cookie, &acceptor, BPF_ANY))
		stat_inc(PL_STAT_ACCEPT_MAP_FULL);

	ev.kind = PL_EV_ACCEPT;
	ev.ts_ns = bpf_ktime_get_boot_ns();
	event_fill_tuple(&ev, sk);
	ev.cookie = cookie;
	ev.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	event_set_owner(&ev, &acceptor);
	ev.flags |= PL_F_OWNER_CURRENT;
	/* A socket the peer already reset has closed: its close went out without
	 * an open to fold, so this one must not wait. */
	open_submit(&ev, ev.state != TCP_CLOSE);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tracepoint__syscalls__sys_exit_accept4(struct syscall_exit_ctx *ctx)
{
	return handle_accept_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tracepoint__syscalls__sys_exit_accept(struct syscall_exit_ctx *ctx)
{
	return handle_accept_exit(ctx);
}
