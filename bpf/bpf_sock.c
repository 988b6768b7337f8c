/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Socket-level load balancing (kube-proxy replacement for traffic that
 * starts on this node), attached to the cgroup at the agent's --cgroup-root,
 * so they see the sockets of every process below it: pods and the node
 * itself.
 *
 *   cil_sock4_connect,  cil_sock6_connect:  connect() (TCP, connected UDP)
 *   cil_sock4_sendmsg,  cil_sock6_sendmsg:  sendmsg()/sendto() with an
 *                                           address (unconnected UDP)
 *   cil_sock4_recvmsg,  cil_sock6_recvmsg:  recvmsg()/recvfrom() (UDP): the
 *                                           source address returned
 *   cil_sock4_getpeername, cil_sock6_getpeername: getpeername()
 *
 * The forward hooks translate a service address (VIP) into a backend before
 * the kernel routes anything, so the connection is made to the backend from
 * its first packet: no per-packet DNAT, no reverse NAT in conntrack. The
 * reverse hooks make the application see the VIP it addressed (recvfrom's
 * source, getpeername), as if the VIP had answered.
 *
 * Socket traffic comes from inside the node, so a service with separate
 * internal and external backend sets (LB_F_TWO_SCOPES) is served by its
 * internal entry. Backends are picked at random (or by ClientIP affinity,
 * the client being the socket's network namespace); Maglev is for traffic
 * from outside the node (the tc path), not for sockets.
 *
 * A destination that is not a service costs one hash lookup: the service
 * map. The reverse hooks (recvmsg, getpeername) of a socket that socket LB
 * never translated cost one check of the socket's own storage
 * (seta_lb_sock_mark, set by the forward hooks when they translate). Only a destination port in the NodePort range adds the ipcache lookup
 * that tells whether the address is the node's own (identity host), and
 * then the lookup of the NodePort entry for every node address.
 *
 * A service with no backends refuses connect() and sendmsg() at once (the
 * hook returns 0: EPERM) instead of letting the client wait for a timeout. */

#include "lib/common.h"
#include "lib/policy.h"
#include "lib/lb.h"
#include "lib/lb_frontend.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* The enums shared with Go are only used as constants, which leaves them out
 * of BTF; this read-only anchor keeps them in, so bpf2go generates their Go
 * mirror (pkg/datapath/bpf) from this one source. */
struct shared_types {
	enum lb_flags flags;
	enum lb_scope scope;
	enum lb_backend_state state;
	enum lb_limits limits;
	enum lb_sock_kind kind;
};
const volatile struct shared_types seta_shared_types __attribute__((used));

/* seta_lb_sock_mark marks the sockets socket LB translated (connect or
 * sendmsg to a service), in the socket's own storage: the reverse hooks
 * (recvmsg, getpeername) of every other socket return without looking up
 * seta_lb_sock_revnat, a large table in which a fresh socket's key lands on
 * a cold bucket (that lookup was most of the 640 ns getpeername cost inside
 * every accept()). The storage goes with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_lb_sock_mark SEC(".maps");

/* seta_lb_sock_unmarked is the largest socket cookie an agent that did not
 * mark sockets can have translated (0: none). Written once by the agent
 * (pkg/datapath/loader), when it finds seta_lb_sock_revnat with entries but
 * no seta_lb_sock_mark: those sockets have revnat entries and no mark, and
 * socket cookies only grow, so an unmarked socket whose cookie is larger
 * was never translated. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_lb_sock_unmarked SEC(".maps");

/* Verdicts of cgroup sock_addr programs: 0 fails the system call with
 * EPERM. */
#define SYS_REJECT  0
#define SYS_PROCEED 1

/* The verifier allows only 4-byte loads of these context fields; volatile
 * keeps clang from narrowing them. user_port holds a network-order port in
 * its low 16 bits. */
static __always_inline __u8 ctx_protocol(const struct bpf_sock_addr *ctx)
{
	volatile __u32 p = ctx->protocol;

	return (__u8)p;
}

static __always_inline __be16 ctx_port(const struct bpf_sock_addr *ctx)
{
	volatile __u32 p = ctx->user_port;

	return (__be16)p;
}

/* A socket address as the maps hold it. A v6 socket may address an IPv4
 * peer as ::ffff:a.b.c.d; that is an IPv4 address for the maps (mapped),
 * and written back in the same form. */
struct sock_addr {
	__u8   addr[16];
	__be16 port;
	__u8   family; /* enum addr_family */
	__u8   mapped;
};

static __always_inline void sock4_read(const struct bpf_sock_addr *ctx, struct sock_addr *a)
{
	__u32 *w = (__u32 *)a->addr;

	w[0] = ctx->user_ip4;
	w[1] = w[2] = w[3] = 0;
	a->port = ctx_port(ctx);
	a->family = ADDR_FAMILY_IPV4;
	a->mapped = 0;
}

static __always_inline void sock6_read(const struct bpf_sock_addr *ctx, struct sock_addr *a)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1];
	__u32 w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	__u32 *w = (__u32 *)a->addr;

	a->port = ctx_port(ctx);
	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
		w[0] = w3;
		w[1] = w[2] = w[3] = 0;
		a->family = ADDR_FAMILY_IPV4;
		a->mapped = 1;
		return;
	}
	w[0] = w0;
	w[1] = w1;
	w[2] = w2;
	w[3] = w3;
	a->family = ADDR_FAMILY_IPV6;
	a->mapped = 0;
}

static __always_inline void sock4_write(struct bpf_sock_addr *ctx, const struct sock_addr *a)
{
	ctx->user_ip4 = *(const __u32 *)a->addr;
	ctx->user_port = (__u32)a->port;
}

static __always_inline void sock6_write(struct bpf_sock_addr *ctx, const struct sock_addr *a)
{
	const __u32 *w = (const __u32 *)a->addr;

	if (a->mapped) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = w[0];
	} else {
		ctx->user_ip6[0] = w[0];
		ctx->user_ip6[1] = w[1];
		ctx->user_ip6[2] = w[2];
		ctx->user_ip6[3] = w[3];
	}
	ctx->user_port = (__u32)a->port;
}

enum xlate {
	XLATE_NONE   = 0, /* not a service: leave the address alone */
	XLATE_DONE   = 1, /* a holds the backend */
	XLATE_REJECT = 2, /* a service without a usable backend: fail the call */
};

/* sock_remember_revnat records that the socket's traffic with backend b
 * belongs to the VIP vip, for recvmsg and getpeername. It writes only when
 * the entry is new or changed: a UDP socket sending many datagrams to one
 * backend costs a lookup per datagram, not an update. */
static __always_inline int sock_remember_revnat(struct lb_sock_key *sk, const struct lb_backend *b,
						const struct sock_addr *vip, __u16 rev_nat_id, __u32 id)
{
	struct lb_sock_value v = { .port = vip->port, .rev_nat_id = rev_nat_id, .backend_id = id };
	const struct lb_sock_value *old;

	sk->kind = LB_SOCK_REVNAT;
	lb_addr_copy(sk->addr, b->addr);
	sk->port = b->port;
	old = bpf_map_lookup_elem(&seta_lb_sock_revnat, sk);
	if (old && old->port == vip->port && old->rev_nat_id == rev_nat_id && old->backend_id == id &&
	    lb_addr_eq(old->addr, vip->addr))
		return 0;
	lb_addr_copy(v.addr, vip->addr);
	return bpf_map_update_elem(&seta_lb_sock_revnat, sk, &v, BPF_ANY);
}

/* sock_xlate_fwd translates a service address in a into its backend, for
 * connect (sendmsg 0) and for sendmsg on an unconnected UDP socket
 * (sendmsg 1, which keeps the socket's flow on its backend). */
static __always_inline enum xlate sock_xlate_fwd(struct bpf_sock_addr *ctx, struct sock_addr *a, int sendmsg)
{
	struct lb_service_key key = { .port = a->port, .family = a->family };
	struct lb_sock_key sk = { .port = a->port, .family = a->family };
	struct lb_affinity_key client = {};
	const struct lb_service_value *svc;
	const struct lb_sock_value *sticky;
	struct lb_backend *b = NULL;
	__u8 proto = ctx_protocol(ctx);
	__u32 id = 0;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return XLATE_NONE;
	key.proto = proto;
	lb_addr_copy(key.addr, a->addr);
	svc = lb_lookup_frontend(&key, 1);
	if (!svc)
		return XLATE_NONE;

	sk.cookie = bpf_get_socket_cookie(ctx);
	sk.proto = proto;
	if (sendmsg) {
		/* An unconnected UDP socket's flow to this VIP stays with
		 * its backend as long as the backend exists, whatever became
		 * of the slots (and of the count: a flow to a terminating
		 * backend finishes even when nothing is left to select). */
		sk.kind = LB_SOCK_STICKY;
		lb_addr_copy(sk.addr, a->addr);
		sticky = bpf_map_lookup_elem(&seta_lb_sock_revnat, &sk);
		if (sticky && sticky->rev_nat_id == svc->rev_nat_id) {
			id = sticky->backend_id;
			b = lb_lookup_backend(id);
		}
	}
	if (!b) {
		if (svc->flags & LB_F_AFFINITY)
			lb_affinity_client_netns(&client, bpf_get_netns_cookie(ctx), a->family);
		b = lb_select_backend(&key, svc, &client, 0, 0, &id);
		if (!b)
			return XLATE_REJECT;
		if (sendmsg) {
			struct lb_sock_value v = { .port = b->port, .rev_nat_id = svc->rev_nat_id, .backend_id = id };

			lb_addr_copy(v.addr, b->addr);
			/* sk still holds the sticky key. Failing to
			 * remember only costs the stickiness of this
			 * flow. */
			bpf_map_update_elem(&seta_lb_sock_revnat, &sk, &v, BPF_ANY);
		}
	}
	/* A backend of another family cannot be reached from this socket
	 * (no NAT46/64 here). */
	if (b->family != a->family)
		return XLATE_REJECT;
	/* Without the reverse entry (or the mark that makes the reverse hooks
	 * look for it) the application would see the backend answer instead
	 * of the VIP: refuse rather than confuse it. */
	if (!ctx->sk || !bpf_sk_storage_get(&seta_lb_sock_mark, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE))
		return XLATE_REJECT;
	if (sock_remember_revnat(&sk, b, a, svc->rev_nat_id, id) < 0)
		return XLATE_REJECT;
	lb_addr_copy(a->addr, b->addr);
	a->port = b->port;
	return XLATE_DONE;
}

/* sock_xlate_rev turns a backend address the socket talks to back into the
 * VIP the socket addressed. An entry whose service is gone or changed
 * address is removed instead: the socket then talks to the backend as
 * itself. */
static __always_inline int sock_xlate_rev(struct bpf_sock_addr *ctx, struct sock_addr *a)
{
	struct lb_sock_key sk = { .port = a->port, .family = a->family, .kind = LB_SOCK_REVNAT };
	const struct lb_sock_value *v;
	const struct lb_revnat *rn;
	__u8 proto = ctx_protocol(ctx);
	struct bpf_sock *s = ctx->sk;
	__u32 zero = 0;
	__u64 *unmarked;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	if (!s)
		return 0;
	/* Only translated sockets have revnat entries: those are marked, or
	 * were translated by an agent that did not mark (cookie at most the
	 * recorded one). */
	if (!bpf_sk_storage_get(&seta_lb_sock_mark, s, 0, 0)) {
		unmarked = bpf_map_lookup_elem(&seta_lb_sock_unmarked, &zero);
		if (!unmarked || !*unmarked || bpf_get_socket_cookie(ctx) > *unmarked)
			return 0;
	}
	sk.cookie = bpf_get_socket_cookie(ctx);
	sk.proto = proto;
	lb_addr_copy(sk.addr, a->addr);
	v = bpf_map_lookup_elem(&seta_lb_sock_revnat, &sk);
	if (!v)
		return 0;
	rn = lb_lookup_revnat(v->rev_nat_id);
	if (!rn || rn->family != a->family || rn->port != v->port ||
	    (!lb_addr_unspec(rn->addr) && !lb_addr_eq(rn->addr, v->addr))) {
		bpf_map_delete_elem(&seta_lb_sock_revnat, &sk);
		return 0;
	}
	lb_addr_copy(a->addr, v->addr);
	a->port = v->port;
	return 1;
}

static __always_inline int sock4_fwd(struct bpf_sock_addr *ctx, int sendmsg)
{
	struct sock_addr a;

	sock4_read(ctx, &a);
	switch (sock_xlate_fwd(ctx, &a, sendmsg)) {
	case XLATE_REJECT:
		return SYS_REJECT;
	case XLATE_DONE:
		sock4_write(ctx, &a);
		break;
	case XLATE_NONE:
		break;
	}
	return SYS_PROCEED;
}

static __always_inline int sock6_fwd(struct bpf_sock_addr *ctx, int sendmsg)
{
	struct sock_addr a;

	sock6_read(ctx, &a);
	switch (sock_xlate_fwd(ctx, &a, sendmsg)) {
	case XLATE_REJECT:
		return SYS_REJECT;
	case XLATE_DONE:
		sock6_write(ctx, &a);
		break;
	case XLATE_NONE:
		break;
	}
	return SYS_PROCEED;
}

static __always_inline int sock4_rev(struct bpf_sock_addr *ctx)
{
	struct sock_addr a;

	sock4_read(ctx, &a);
	if (sock_xlate_rev(ctx, &a))
		sock4_write(ctx, &a);
	return SYS_PROCEED;
}

static __always_inline int sock6_rev(struct bpf_sock_addr *ctx)
{
	struct sock_addr a;

	sock6_read(ctx, &a);
	if (sock_xlate_rev(ctx, &a))
		sock6_write(ctx, &a);
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int cil_sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock4_fwd(ctx, 0);
}

SEC("cgroup/connect6")
int cil_sock6_connect(struct bpf_sock_addr *ctx)
{
	return sock6_fwd(ctx, 0);
}

SEC("cgroup/sendmsg4")
int cil_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock4_fwd(ctx, 1);
}

SEC("cgroup/sendmsg6")
int cil_sock6_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock6_fwd(ctx, 1);
}

SEC("cgroup/recvmsg4")
int cil_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock4_rev(ctx);
}

SEC("cgroup/recvmsg6")
int cil_sock6_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock6_rev(ctx);
}

SEC("cgroup/getpeername4")
int cil_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return sock4_rev(ctx);
}

SEC("cgroup/getpeername6")
int cil_sock6_getpeername(struct bpf_sock_addr *ctx)
{
	return sock6_rev(ctx);
}
