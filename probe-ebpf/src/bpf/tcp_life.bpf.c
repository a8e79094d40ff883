/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * TCP lifecycle: connect, connect failure, listen, close, retransmit.
 *
 * Two rungs, chosen by the loader; the logic is shared and specialised by the
 * compile-time `classic` argument of the handlers:
 *  - BTF rung (5.5+ with BTF): tp_btf programs; cookie from
 *    bpf_get_socket_cookie(), owner from socket storage.
 *  - Classic rung: the same tracepoints through tracefs, for kernels that refuse
 *    BTF-typed tracing programs. Those programs can use neither socket storage
 *    nor the cookie helper: the cookie is read from the socket (generated at
 *    socket creation, or by sockops for accepted children) and owners live in
 *    pl_owners_by_cookie.
 *
 * Hooks:
 *  - tp_btf/inet_sock_set_state (4.16+ tracepoint, BTF-typed since 5.5):
 *    every TCP state change with the socket. Transitions are turned into
 *    events here; the ones that do not matter to user space only update the
 *    socket's history (states seen, SYN time).
 *  - sockops BPF_SOCK_OPS_STATE_CB (BTF rung, 5.9+): the same transitions for
 *    every connection once it exists, from inside tcp_set_state(), where the
 *    kernel cannot skip them; the tracepoint then leaves those sockets alone.
 *    See handle_sockops_state.
 *  - tp_btf/tcp_retransmit_skb: one event per retransmitted segment. Runs
 *    from the retransmit timer as the idle task or from softirq: the owner
 *    always comes from socket storage.
 *
 * The state tracepoint runs in process context for CLOSE->SYN_SENT
 * (connect), CLOSE->LISTEN (listen) and user-initiated closes, and in softirq
 * for everything the peer causes. So `current` is used only to adopt sockets
 * created before the probe started, on the process-context transitions.
 *
 * Counters at close come from tcp_sock. bytes_acked and bytes_received count
 * sequence space, so SYN and FIN are in them; the event carries the states
 * the socket went through and the FIN flags so user space can subtract them.
 */
#include "common.h"

static __always_inline void tcp_fill_counters(struct pl_event *ev, struct sock *sk)
{
	struct tcp_sock *tp = (void *)sk;

	ev->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	ev->bytes_received = BPF_CORE_READ(tp, bytes_received);
	ev->segs_in = BPF_CORE_READ(tp, segs_in);
	ev->segs_out = BPF_CORE_READ(tp, segs_out);
	ev->total_retrans = BPF_CORE_READ(tp, total_retrans);
	/* srtt_us holds 8 times the smoothed RTT (RFC 6298 fixed point). */
	ev->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
}

static __always_inline void tcp_fill_close_flags(struct pl_event *ev, struct sock *sk)
{
	struct tcp_sock *tp = (void *)sk;
	unsigned long flags;
	__u32 done_bit = bpf_core_enum_value(enum sock_flags, SOCK_DONE);

	if (bpf_core_field_exists(sk->__sk_common.skc_flags))
		flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	else
		flags = BPF_CORE_READ((struct sock___sk_flags *)sk, sk_flags);
	/* tcp_fin() sets SOCK_DONE when the peer's FIN is processed. */
	if (flags & (1UL << done_bit))
		ev->flags |= PL_F_FIN_RECEIVED;
	if (BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq))
		ev->flags |= PL_F_ALL_ACKED;
}

static __always_inline __u64 tcp_cookie(struct sock *sk, const bool classic)
{
	if (classic)
		return BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	return bpf_get_socket_cookie(sk);
}

static __always_inline struct pl_owner *tcp_owner(struct sock *sk, __u64 cookie, const bool classic)
{
	if (classic)
		return owner_get_by_cookie(cookie);
	return owner_get(sk, cookie);
}

/* An IPv4/IPv6 TCP socket of a traced network namespace. */
static __always_inline bool tcp_sock_wanted(struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if ((family != AF_INET && family != AF_INET6) || sk_proto(sk) != IPPROTO_TCP)
		return false;
	return netns_wanted(sk_netns(sk));
}

/* The fields of a state-change event of kind ev->kind. */
static __always_inline void tcp_fill_state_event(struct pl_event *ev, struct sock *sk, struct pl_owner *o,
						 __u64 cookie, int oldstate, int newstate, __u64 now)
{
	event_fill_tuple(ev, sk);
	ev->cookie = cookie;
	ev->state = newstate;
	ev->oldstate = oldstate;
	event_set_owner(ev, o);
	if (o)
		ev->states_seen = o->states_seen;
	switch (ev->kind) {
	case PL_EV_CONNECT:
		if (o && o->syn_ts_ns)
			ev->latency_ns = now - o->syn_ts_ns;
		ev->srtt_us = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) >> 3;
		break;
	case PL_EV_CONNECT_FAILED:
		ev->error = BPF_CORE_READ(sk, sk_err);
		if (o && o->syn_ts_ns)
			ev->latency_ns = now - o->syn_ts_ns;
		tcp_fill_counters(ev, sk);
		break;
	case PL_EV_CLOSE:
		tcp_fill_counters(ev, sk);
		tcp_fill_close_flags(ev, sk);
		break;
	}
}

/*
 * One TCP state change of a wanted socket, whose cookie and owner storage the
 * caller looked up: update the socket's history and send the event the
 * transition stands for, if any. `in_task` says the hook may read `current`
 * (tracepoints do; sockops programs have no such helpers), to adopt sockets
 * older than the probe when they connect or listen.
 */
static __always_inline void tcp_state_change(struct sock *sk, struct pl_owner *o, __u64 cookie, int oldstate,
					     int newstate, const bool in_task)
{
	struct pl_event *ev;
	__u16 kind = 0;
	__u64 now = bpf_ktime_get_boot_ns();

	if (o) {
		if (oldstate == TCP_CLOSE && newstate == TCP_SYN_RECV) {
			/* Child of a listener: storage was cloned from the
			 * listener, history must start afresh. */
			o->states_seen = 0;
			o->syn_ts_ns = 0;
			o->retrans_seen = 0;
		}
		if (in_task && !o->known && (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN))
			owner_from_current(o);
		if (newstate == TCP_SYN_SENT)
			o->syn_ts_ns = now;
		o->states_seen |= (1U << (oldstate & 31)) | (1U << (newstate & 31));
	}

	if (newstate == TCP_LISTEN)
		kind = PL_EV_LISTEN;
	else if (oldstate == TCP_SYN_SENT && newstate == TCP_ESTABLISHED)
		kind = PL_EV_CONNECT;
	else if (oldstate == TCP_SYN_SENT && newstate == TCP_CLOSE)
		kind = PL_EV_CONNECT_FAILED;
	else if (newstate == TCP_CLOSE)
		kind = PL_EV_CLOSE;
	if (!kind)
		return;

	if (kind == PL_EV_CONNECT) {
		/* Built on the stack: it may wait in pl_pending_opens. */
		struct pl_event open = {};

		open.kind = kind;
		open.ts_ns = now;
		tcp_fill_state_event(&open, sk, o, cookie, oldstate, newstate, now);
		open_submit(&open, true);
		return;
	}
	ev = event_reserve(kind);
	if (!ev)
		return;
	tcp_fill_state_event(ev, sk, o, cookie, oldstate, newstate, now);
	if (kind == PL_EV_CLOSE)
		close_fold_open(ev);
	event_submit(ev);
}

/*
 * Whether sockops__tcp_state reports what the callback `flag` stands for on this
 * socket (BPF_SOCK_OPS_STATE_CB_FLAG: state changes; BPF_SOCK_OPS_RETRANS_CB_FLAG:
 * retransmits), so that a tracepoint must not report it again: that program is
 * attached, and the socket asked for the callback (which our sockops program does
 * for every connection it sees; another BPF program may also have).
 */
static __always_inline bool tcp_by_sockops(struct sock *sk, __u32 flag)
{
	struct tcp_sock *tp = (void *)sk;

	if (!(control_bits() & PL_CTL_STATE_BY_SOCKOPS))
		return false;
	if (!bpf_core_field_exists(tp->bpf_sock_ops_cb_flags))
		return false;
	return BPF_CORE_READ(tp, bpf_sock_ops_cb_flags) & flag;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_btf__inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	__u64 cookie;

	if (!tcp_sock_wanted(sk) || tcp_by_sockops(sk, BPF_SOCK_OPS_STATE_CB_FLAG))
		return 0;
	/* Always generate the cookie here: a passively opened child is
	 * cloned in softirq, and this is its first sighting. */
	cookie = bpf_get_socket_cookie(sk);
	tcp_state_change(sk, owner_get(sk, cookie), cookie, oldstate, newstate, true);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int tracepoint__sock__inet_sock_set_state(struct inet_sock_set_state_ctx *ctx)
{
	struct sock *sk = (struct sock *)ctx->skaddr;
	__u64 cookie;

	if (!tcp_sock_wanted(sk))
		return 0;
	cookie = tcp_cookie(sk, true);
	tcp_state_change(sk, owner_get_by_cookie(cookie), cookie, ctx->oldstate, ctx->newstate, true);
	if (ctx->newstate == TCP_CLOSE && cookie)
		bpf_map_delete_elem(&pl_owners_by_cookie, &cookie);
	return 0;
}

/* One retransmitted segment of a wanted socket, whose cookie and owner the caller
 * looked up. */
static __always_inline void tcp_retransmit_event(struct sock *sk, struct pl_owner *o, __u64 cookie)
{
	struct pl_event *ev;

	/* A connection still young enough to have its open held: the open goes
	 * first, so that the retransmit finds the flow (with the ring full, the
	 * retransmit is lost and counted; the close carries the total). */
	if (!release_held_open(cookie))
		return;
	ev = event_reserve(PL_EV_RETRANSMIT);
	if (!ev)
		return;
	event_fill_tuple(ev, sk);
	ev->cookie = cookie;
	ev->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	event_set_owner(ev, o);
	/* tcp_sock.total_retrans is updated around the tracepoint in an
	 * order that differs between kernels: count the events instead. The
	 * close event carries the kernel's own total. */
	if (o)
		ev->total_retrans = ++o->retrans_seen;
	ev->srtt_us = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) >> 3;
	event_submit(ev);
}

static __always_inline int handle_retransmit(struct sock *sk, const bool classic)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u64 cookie;

	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (!netns_wanted(sk_netns(sk)))
		return 0;
	if (!classic && tcp_by_sockops(sk, BPF_SOCK_OPS_RETRANS_CB_FLAG))
		return 0;
	cookie = tcp_cookie(sk, classic);
	tcp_retransmit_event(sk, tcp_owner(sk, cookie, classic), cookie);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tp_btf__tcp_retransmit_skb, struct sock *sk)
{
	return handle_retransmit(sk, false);
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int tracepoint__tcp__tcp_retransmit_skb(struct tcp_retransmit_skb_ctx *ctx)
{
	return handle_retransmit((struct sock *)ctx->skaddr, true);
}

/*
 * sockops, BTF rung (5.9+ for bpf_skc_to_tcp_sock): the same state changes,
 * from inside tcp_set_state() rather than from the tracepoint. Tracing
 * programs are skipped when their hook fires again on a CPU where they are
 * already running (a softirq interrupting a close() in process context): the
 * kernel counts that in recursion_misses and the event is lost. sockops
 * programs have no such guard, so every connection asks for
 * BPF_SOCK_OPS_STATE_CB as soon as it exists: at connect() for active opens,
 * when the handshake completes for passive ones. Transitions before that
 * (CLOSE -> SYN_SENT, CLOSE -> SYN_RECV, LISTEN) stay with the tracepoint; they
 * run in process context, or first in the softirq that makes the child.
 * Retransmits come the same way (BPF_SOCK_OPS_RETRANS_CB), for the same reason.
 */
static __always_inline int handle_sockops_state(struct bpf_sock_ops *skops)
{
	struct bpf_sock *bsk = skops->sk;
	struct sock *sk;
	struct pl_owner *o;
	__u64 cookie;

	if (!bsk)
		return 1;
	sk = (struct sock *)bpf_skc_to_tcp_sock(bsk);
	if (!sk)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		/* Start the child's history afresh here too, in case the
		 * tracepoint missed its CLOSE -> SYN_RECV. */
		o = bpf_sk_storage_get(&pl_owners, bsk, 0, 0);
		if (o) {
			o->states_seen = (1U << TCP_CLOSE) | (1U << TCP_SYN_RECV);
			o->syn_ts_ns = 0;
			o->retrans_seen = 0;
		}
		/* fall through */
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		if (tcp_sock_wanted(sk))
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG |
								 BPF_SOCK_OPS_RETRANS_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		if (!tcp_sock_wanted(sk))
			return 1;
		cookie = bpf_get_socket_cookie(skops);
		tcp_state_change(sk, owner_get(bsk, cookie), cookie, skops->args[0], skops->args[1], false);
		return 1;
	case BPF_SOCK_OPS_RETRANS_CB:
		/* args: first sequence number, segments, result of the
		 * transmit; the tracepoint fires only for sent ones. */
		if (skops->args[2] != 0 || !tcp_sock_wanted(sk))
			return 1;
		cookie = bpf_get_socket_cookie(skops);
		tcp_retransmit_event(sk, owner_get(bsk, cookie), cookie);
		return 1;
	}
	return 1;
}

SEC("sockops")
int sockops__tcp_state(struct bpf_sock_ops *skops)
{
	return handle_sockops_state(skops);
}
