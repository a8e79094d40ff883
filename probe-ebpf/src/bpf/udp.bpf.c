/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * UDP: datagrams sent and received with their peer, bound sockets, release.
 *
 * Hooks:
 *  - cgroup/sendmsg4|6: an unconnected send (sendto/sendmsg with an
 *    address) passes the destination here first. It is parked in
 *    pl_udp_peers under the thread's pid_tgid.
 *  - cgroup/recvmsg4|6: when the application asks for the source address
 *    (recvfrom/recvmsg with msg_name), the source is parked the same way.
 *  - tp_btf/sock_send_length, tp_btf/sock_recv_length (6.3+): after every
 *    sock_sendmsg/sock_recvmsg, in the caller's context, with the byte count.
 *    The parked peer of the same call is taken; connected sockets use the
 *    socket's own destination. One event per datagram.
 *  - cgroup/bind4|6 + cgroup/post_bind4|6: a UDP socket bound to a port the
 *    application chose is a LISTEN event. bind4|6 runs before the bind and sees
 *    the port asked for (kept in the socket's storage); post_bind4|6 runs after a
 *    successful bind. Binding to port 0 (a client asking for any port) is not a
 *    LISTEN.
 *  - cgroup/sock_release (5.9+): a UDP socket goes away: UDP_CLOSE, with
 *    cookie, owner and namespace only (its context exposes no addresses).
 * The cgroup programs return 1 (allow) always: the probe never changes
 * what sockets may do.
 */
#include "common.h"

static __always_inline void udp_park_peer(struct bpf_sock_addr *ctx, __u16 family)
{
	struct pl_udp_peer peer = {};
	__u64 key = bpf_get_current_pid_tgid();

	if (!pl_trace_udp || ctx->protocol != IPPROTO_UDP)
		return;
	peer.cookie = bpf_get_socket_cookie(ctx);
	peer.family = family;
	/* user_port carries the port in network order in its low 16 bits. */
	peer.port = bpf_ntohs((__u16)ctx->user_port);
	if (family == AF_INET) {
		__u32 a = ctx->user_ip4;

		__builtin_memcpy(peer.addr, &a, 4);
	} else {
		__u32 a[4];

		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
		__builtin_memcpy(peer.addr, a, 16);
	}
	if (bpf_map_update_elem(&pl_udp_peers, &key, &peer, BPF_ANY))
		stat_inc(PL_STAT_UDP_PEER_MAP_FULL);
}

SEC("cgroup/sendmsg4")
int cgroup__sendmsg4(struct bpf_sock_addr *ctx)
{
	udp_park_peer(ctx, AF_INET);
	return 1;
}

SEC("cgroup/sendmsg6")
int cgroup__sendmsg6(struct bpf_sock_addr *ctx)
{
	udp_park_peer(ctx, AF_INET6);
	return 1;
}

SEC("cgroup/recvmsg4")
int cgroup__recvmsg4(struct bpf_sock_addr *ctx)
{
	udp_park_peer(ctx, AF_INET);
	return 1;
}

SEC("cgroup/recvmsg6")
int cgroup__recvmsg6(struct bpf_sock_addr *ctx)
{
	udp_park_peer(ctx, AF_INET6);
	return 1;
}

static __always_inline int handle_udp_length(struct sock *sk, int ret, int flags, __u16 kind)
{
	struct pl_udp_peer *peer;
	struct pl_event *ev;
	__u64 key, cookie;
	__u16 family;

	if (!pl_trace_udp)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if ((family != AF_INET && family != AF_INET6) || sk_proto(sk) != IPPROTO_UDP)
		return 0;
	key = bpf_get_current_pid_tgid();
	peer = bpf_map_lookup_elem(&pl_udp_peers, &key);
	if (ret <= 0 || (flags & MSG_PEEK) || !netns_wanted(sk_netns(sk))) {
		if (peer)
			bpf_map_delete_elem(&pl_udp_peers, &key);
		return 0;
	}
	cookie = bpf_get_socket_cookie(sk);
	ev = event_reserve(kind);
	if (!ev) {
		if (peer)
			bpf_map_delete_elem(&pl_udp_peers, &key);
		return 0;
	}
	event_fill_tuple(ev, sk);
	ev->cookie = cookie;
	ev->bytes = ret;
	if (peer && peer->cookie == cookie) {
		/* A v6 socket may talk to a v4 peer through a mapped
		 * address; the parked family says which form it is in. */
		ev->family = peer->family;
		ev->rport = peer->port;
		__builtin_memcpy(ev->raddr, peer->addr, sizeof(ev->raddr));
	}
	if (peer)
		bpf_map_delete_elem(&pl_udp_peers, &key);
	if (ev->rport == 0)
		ev->flags |= PL_F_PEER_UNKNOWN;
	event_set_current_owner(ev);
	event_submit(ev);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_btf__sock_send_length, struct sock *sk, int ret, int flags)
{
	return handle_udp_length(sk, ret, flags, PL_EV_UDP_SEND);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_btf__sock_recv_length, struct sock *sk, int ret, int flags)
{
	return handle_udp_length(sk, ret, flags, PL_EV_UDP_RECV);
}

static __always_inline void udp_note_bind_port(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct pl_owner *o;

	if (!pl_trace_udp || ctx->protocol != IPPROTO_UDP || !sk)
		return;
	o = bpf_sk_storage_get(&pl_owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o) {
		stat_inc(PL_STAT_STORAGE_FAIL);
		return;
	}
	o->bind_port = bpf_ntohs((__u16)ctx->user_port);
}

SEC("cgroup/bind4")
int cgroup__bind4(struct bpf_sock_addr *ctx)
{
	udp_note_bind_port(ctx);
	return 1;
}

SEC("cgroup/bind6")
int cgroup__bind6(struct bpf_sock_addr *ctx)
{
	udp_note_bind_port(ctx);
	return 1;
}

/*
 * Local address of a bound socket. The verifier lets each post_bind attach
 * type read only its own family's src_ip field, so `family` must be a
 * compile-time constant at every call site.
 */
static __always_inline void event_fill_bound(struct pl_event *ev, struct bpf_sock *ctx, __u16 family)
{
	ev->family = family;
	ev->proto = IPPROTO_UDP;
	ev->lport = ctx->src_port; /* host order in struct bpf_sock */
	if (family == AF_INET) {
		__u32 l = ctx->src_ip4;

		__builtin_memcpy(ev->laddr, &l, 4);
	} else {
		__u32 l[4];

		l[0] = ctx->src_ip6[0];
		l[1] = ctx->src_ip6[1];
		l[2] = ctx->src_ip6[2];
		l[3] = ctx->src_ip6[3];
		__builtin_memcpy(ev->laddr, l, 16);
	}
	ev->cookie = bpf_get_socket_cookie(ctx);
}

static __always_inline int handle_udp_bind(struct bpf_sock *ctx, __u16 family)
{
	struct pl_owner *o;
	struct pl_event *ev;
	__u32 netns;

	if (!pl_trace_udp || ctx->protocol != IPPROTO_UDP)
		return 1;
	o = bpf_sk_storage_get(&pl_owners, ctx, 0, 0);
	if (o && o->bind_port == 0)
		return 1;
	netns = current_netns();
	if (!netns_wanted(netns))
		return 1;
	ev = event_reserve(PL_EV_LISTEN);
	if (!ev)
		return 1;
	event_fill_bound(ev, ctx, family);
	ev->netns = netns;
	event_set_current_owner(ev);
	event_submit(ev);
	return 1;
}

SEC("cgroup/post_bind4")
int cgroup__post_bind4(struct bpf_sock *ctx)
{
	return handle_udp_bind(ctx, AF_INET);
}

SEC("cgroup/post_bind6")
int cgroup__post_bind6(struct bpf_sock *ctx)
{
	return handle_udp_bind(ctx, AF_INET6);
}

static __always_inline int handle_udp_release(struct bpf_sock *ctx)
{
	struct pl_owner *o;
	struct pl_event *ev;

	if (!pl_trace_udp || ctx->protocol != IPPROTO_UDP)
		return 1;
	o = bpf_sk_storage_get(&pl_owners, ctx, 0, 0);
	if (o && !netns_wanted(o->netns))
		return 1;
	if (!o && !netns_wanted(current_netns()))
		return 1;
	ev = event_reserve(PL_EV_UDP_CLOSE);
	if (!ev)
		return 1;
	/* sock_release may read only family, type and protocol of its context:
	 * the addresses of the socket are those of its earlier events, joined in
	 * user space by cookie. */
	ev->family = ctx->family;
	ev->proto = IPPROTO_UDP;
	ev->cookie = bpf_get_socket_cookie(ctx);
	if (o) {
		ev->netns = o->netns;
		event_set_owner(ev, o);
	} else {
		ev->netns = current_netns();
	}
	event_submit(ev);
	return 1;
}

SEC("cgroup/sock_release")
int cgroup__sock_release(struct bpf_sock *ctx)
{
	return handle_udp_release(ctx);
}
