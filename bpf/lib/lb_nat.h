/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Service translation on the tc path: DNAT of packets addressed to a
 * service (bpf_lxc.c for pods, bpf_netdev.c for NodePort and external
 * addresses on the node's devices), reverse NAT of their replies, hairpin,
 * SNAT towards backends on other nodes, and the ICMP error that refuses a
 * connection to a service without backends.
 *
 * Per-connection state lives in seta_lb_nat, two entries per connection:
 *
 *   forward: the tuple the client sent (client -> frontend) -> the backend
 *            (and, with SNAT, the source the backend sees);
 *   reverse: the tuple the backend's replies carry (backend -> client, or
 *            -> the SNAT address) -> the frontend to restore as their
 *            source (and, with SNAT, the client to restore as destination).
 *
 * Conntrack (seta_ct2) tracks the translated tuple, so policy and the
 * reply check see what the backend sees (policy applies to the backend, as
 * in Cilium), and marks the connection CT_F_NAT: a reply pays the reverse
 * NAT lookup only when its connection was translated. A connection is live
 * as long as its conntrack entry is: a forward entry whose translated
 * tuple has no live conntrack entry (expired, or never created because
 * policy dropped the first packet) is selected anew, and so is one whose
 * backend entry is gone. While the backend entry exists (terminating
 * included) the connection keeps it, UDP flows too. */
#ifndef __SETA_LB_NAT_H
#define __SETA_LB_NAT_H

#include <linux/tcp.h>
#include <linux/udp.h>
#include "common.h"
#include "drop.h"
#include "l3.h"
#include "l4.h"
#include "conntrack.h"
#include "lb.h"
#include "lb_frontend.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

enum lb_nat_dir {
	LB_NAT_FWD = 0, /* the client's packets, as the client sent them */
	LB_NAT_REV = 1, /* the backend's replies, as the backend sent them */
};

/* Flags of a NAT entry. */
enum lb_nat_flags {
	LB_NAT_F_SNAT     = 1 << 0, /* the source is rewritten too: hairpin, or NodePort to another node */
	LB_NAT_F_HAIRPIN  = 1 << 1, /* the client is its own backend */
	LB_NAT_F_EXTERNAL = 1 << 2, /* the client is outside the node: replies leave through a device */
};

/* The same layout as struct ct_key, with the direction in its padding. */
struct lb_nat_key {
	__u8   saddr[16];
	__u8   daddr[16];
	__be16 sport;
	__be16 dport;
	__u8   proto;
	__u8   family;
	__u8   dir;   /* enum lb_nat_dir */
	__u8   pad;
};

struct lb_nat_entry {
	__u8   addr[16];  /* FWD: the backend, the new destination; REV: the frontend, restored as source */
	__u8   peer[16];  /* with LB_NAT_F_SNAT: FWD: the new source; REV: the client, restored as destination */
	__be16 port;      /* FWD: the backend's port; REV: the frontend's port */
	__be16 peer_port; /* with LB_NAT_F_SNAT: FWD: the new source port; REV: the client's port */
	__u32  backend_id;
	__u16  rev_nat_id;
	__u8   flags;     /* enum lb_nat_flags */
	__u8   pad;
};

_Static_assert(sizeof(struct lb_nat_key) == sizeof(struct ct_key), "lb_nat_key mirrors ct_key");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_nat_key);
	__type(value, struct lb_nat_entry);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_lb_nat SEC(".maps");

/* seta_node_addrs: the node's own address on each of its devices, per
 * family, written by the agent. Connections to a NodePort whose backend is
 * on another node leave with this address of the device that reaches the
 * backend as their source, so the backend's replies come back here. */
struct node_addr_key {
	__u32 ifindex;
	__u8  family; /* enum addr_family */
	__u8  pad[3];
};

struct node_addr {
	__u8 addr[16]; /* IPv4: first four bytes */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct node_addr_key);
	__type(value, struct node_addr);
	__uint(max_entries, 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_node_addrs SEC(".maps");

/* Source ports of SNAT, set by pkg/datapath/loader: above Linux's default
 * ephemeral range (32768-60999), so the node's own connections never
 * collide with them. */
const volatile __u16 seta_nat_port_min = 61000;
const volatile __u16 seta_nat_port_max = 65535;

/* The source of hairpin packets (a pod reaching a service through which it
 * reaches itself): Cilium's 169.254.42.1 for IPv4; for IPv6 an address of
 * 100::/64, the discard-only prefix (RFC 6666), so a packet that escaped
 * the datapath would be dropped, never routed to a real host. Seen only
 * inside the pod; its replies never pass the node's stack. */
#define LB_HAIRPIN_V4 0xa9fe2a01 /* 169.254.42.1, host order */
static const __u8 lb_hairpin_v6[16] = { 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42, 0, 0x01 };

/* skb->mark of translated service traffic that a Seta program sends out
 * of a device itself (lb_fib_redirect, ICMP refusals on a device): the
 * host firewall's egress half skips it, since it is not the node's own
 * traffic, and clears the mark. */
#define SETA_MARK_XLATED 0x5e7a0f00

/* How many random ports SNAT tries before it gives up on a connection. */
#define LB_SNAT_TRIES 4

static __always_inline void lb_nat_key_of(struct lb_nat_key *nk, const struct ct_key *t, __u8 dir)
{
	__builtin_memcpy(nk, t, sizeof(*t));
	nk->dir = dir;
	nk->pad = 0;
}

static __always_inline void lb_hairpin_addr(__u8 *addr, __u8 family)
{
	__u32 *w = (__u32 *)addr;

	if (family == ADDR_FAMILY_IPV4) {
		w[0] = bpf_htonl(LB_HAIRPIN_V4);
		w[1] = w[2] = w[3] = 0;
		return;
	}
	__builtin_memcpy(addr, lb_hairpin_v6, 16);
}

/* lb_nat_tuple applies entry e, of direction dir, to the tuple x. */
static __always_inline void lb_nat_tuple(struct ct_key *x, const struct lb_nat_entry *e, __u8 dir)
{
	if (dir == LB_NAT_FWD) {
		lb_addr_copy(x->daddr, e->addr);
		x->dport = e->port;
		if (e->flags & LB_NAT_F_SNAT) {
			lb_addr_copy(x->saddr, e->peer);
			x->sport = e->peer_port;
		}
		return;
	}
	lb_addr_copy(x->saddr, e->addr);
	x->sport = e->port;
	if (e->flags & LB_NAT_F_SNAT) {
		lb_addr_copy(x->daddr, e->peer);
		x->dport = e->peer_port;
	}
}

/* Offset of the L4 checksum; only TCP and UDP are translated. */
static __always_inline __u32 lb_csum_off(__u8 proto, __u32 l4off)
{
	return l4off + (proto == IPPROTO_TCP ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check));
}

/* lb_rewrite replaces the source (src 1) or destination address and port
 * of the packet whose tuple is t with addr:port, fixing the IPv4 header
 * checksum and the L4 checksum (its pseudo header covers the addresses).
 * A UDP checksum of zero (none, IPv4) stays zero. It updates t to match. */
static __always_inline int lb_rewrite(struct __sk_buff *skb, struct ct_key *t, __u32 l4off, int src,
				      const __u8 *addr, __be16 port)
{
	__u64 l4flags = t->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 csum = lb_csum_off(t->proto, l4off);
	__u8 *old = src ? t->saddr : t->daddr;
	__be16 old_port = src ? t->sport : t->dport;
	__s64 diff;

	if (t->family == ADDR_FAMILY_IPV6) {
		__u32 off = ETH_HLEN + (src ? offsetof(struct ipv6hdr, saddr) : offsetof(struct ipv6hdr, daddr));

		diff = bpf_csum_diff((__be32 *)old, 16, (__be32 *)addr, 16, 0);
		if (bpf_skb_store_bytes(skb, off, addr, 16, 0) < 0)
			return -1;
	} else {
		__u32 off = ETH_HLEN + (src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));

		diff = bpf_csum_diff((__be32 *)old, 4, (__be32 *)addr, 4, 0);
		if (bpf_l3_csum_replace(skb, IPV4_CSUM_OFF, 0, diff, 0) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, off, addr, 4, 0) < 0)
			return -1;
	}
	if (bpf_l4_csum_replace(skb, csum, 0, diff, BPF_F_PSEUDO_HDR | l4flags) < 0)
		return -1;
	if (port != old_port) {
		if (bpf_l4_csum_replace(skb, csum, old_port, port, l4flags | sizeof(port)) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, l4off + (src ? 0 : 2), &port, sizeof(port), 0) < 0)
			return -1;
	}
	lb_addr_copy(old, addr);
	if (src)
		t->sport = port;
	else
		t->dport = port;
	return 0;
}

/* lb_nat_apply rewrites the packet by entry e of direction dir, as
 * lb_nat_tuple does its tuple. */
static __always_inline int lb_nat_apply(struct __sk_buff *skb, struct ct_key *t, __u32 l4off,
					const struct lb_nat_entry *e, __u8 dir)
{
	int fwd = dir == LB_NAT_FWD;

	if (lb_rewrite(skb, t, l4off, !fwd, e->addr, e->port) < 0)
		return -1;
	if (e->flags & LB_NAT_F_SNAT)
		return lb_rewrite(skb, t, l4off, fwd, e->peer, e->peer_port);
	return 0;
}

/* lb_flow_hash hashes the 5-tuple for Maglev. It must give the same value
 * for a flow on every node (so a flow that an upstream router moves to
 * another node keeps its backend): skb->hash would not, so this mixes the
 * tuple's words itself (multiply-rotate, then Murmur3's finalizer). */
static __always_inline __u32 lb_flow_hash(const struct ct_key *t)
{
	const __u32 *w = (const __u32 *)t;
	__u32 h = 0x5e7a0001;

#pragma unroll
	for (int i = 0; i < sizeof(*t) / 4; i++) {
		h ^= w[i];
		h *= 0x9e3779b1;
		h = (h << 13) | (h >> 19);
	}
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* lb_nat_live reports whether the reverse entry at rk (found as old)
 * belongs to a live connection: the conntrack entry of the translated
 * tuple, whose replies carry rk's tuple, is live (the key ignores the
 * direction byte in rk's padding). ck is room for the conntrack key, in
 * the scratch: this runs on the deepest call chain of the programs. */
static __always_inline int lb_nat_live(const struct lb_nat_key *rk, struct ct_conn_key *ck)
{
	return ct_live_key((const struct ct_key *)rk, ck);
}

/* lb_nat_same reports whether two reverse entries restore the same
 * connection. */
static __always_inline int lb_nat_same(const struct lb_nat_entry *a, const struct lb_nat_entry *b)
{
	return a->port == b->port && a->peer_port == b->peer_port && lb_addr_eq(a->addr, b->addr) &&
	       lb_addr_eq(a->peer, b->peer);
}

/* lb_snat_port picks the source port for an SNAT connection: rk is its
 * reverse key with everything but the port filled in, rev its reverse
 * entry. want (network order, 0: none) is tried first, then random ports
 * of the NAT range. A port is free when no reverse entry holds it, or the
 * entry restores this same connection, or its connection is over. On
 * success rk->dport is the port; -1 when every try collided. ck is room
 * for a conntrack key (lb_nat_live). */
static __always_inline int lb_snat_port(struct lb_nat_key *rk, const struct lb_nat_entry *rev, __be16 want,
					struct ct_conn_key *ck)
{
	__u32 span = (__u32)seta_nat_port_max - seta_nat_port_min + 1;
	const struct lb_nat_entry *old;

#pragma unroll
	for (int i = 0; i < LB_SNAT_TRIES; i++) {
		if (i == 0 && want)
			rk->dport = want;
		else
			rk->dport = bpf_htons(seta_nat_port_min + bpf_get_prandom_u32() % span);
		old = bpf_map_lookup_elem(&seta_lb_nat, rk);
		if (!old || lb_nat_same(old, rev) || !lb_nat_live(rk, ck))
			return 0;
	}
	return -1;
}

/* Quoted by an ICMP error: the IP header (with options, IPv4) and the
 * first 8 bytes of what follows. */
#define LB_ICMP4_QUOTE_MAX (60 + 8)
#define LB_ICMP6_QUOTE     (40 + 8)

struct lb_icmp_hdr {
	__u8   type;
	__u8   code;
	__u16  check;
	__u32  unused;
};

/* The IPv6 pseudo header the ICMPv6 checksum covers. */
struct lb_ip6_pseudo {
	__u8   saddr[16];
	__u8   daddr[16];
	__be32 len;
	__u8   zero[3];
	__u8   nexthdr;
};

/* The IPv4 pseudo header the TCP checksum covers. */
struct lb_ip4_pseudo {
	__be32 saddr;
	__be32 daddr;
	__u8   zero;
	__u8   proto;
	__be16 len;
};

/* Working memory of the translation, one per CPU. The tc programs already
 * use most of their 512-byte stack (parsing, policy, events); the keys,
 * entries and buffers of a new connection's setup and of an ICMP error
 * would push the deepest call chain past the limit, so they live here. A
 * program's run is never interrupted by another on the same CPU between
 * writing and reading it (softirq context; redirects happen after the
 * program returns). Pointers never go in here: the verifier forbids
 * storing them in map values. */
struct lb_scratch {
	struct lb_nat_entry    nat;    /* lb_fwd's result: the forward entry */
	struct lb_nat_entry    rev;
	struct lb_service_key  key;
	struct lb_nat_key      nk;
	struct lb_nat_key      rk;
	struct lb_affinity_key client;
	struct ct_key          x;
	struct ct_conn_key     ck;
	__u8                   snat_addr[16];
	__u32                  l4off;    /* in: the L4 header's offset */
	__u8                   external; /* in: from a device, not from a local pod */
	__u8                   reason;   /* out of LB_FWD_DROP: enum drop_reason */
	__u8                   pad[2];
	struct bpf_fib_lookup  fib;
	union {
		struct iphdr   ip4;
		struct ipv6hdr ip6;
	};
	struct lb_icmp_hdr     icmp;
	struct lb_ip6_pseudo   pseudo;
	struct lb_ip4_pseudo   pseudo4;
	struct tcphdr          tcp;
	__u8                   quote[LB_ICMP4_QUOTE_MAX];
};

/* The value is declared by size: its type holds kernel structs that the Go
 * bindings need not (and bpf2go cannot) mirror. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct lb_scratch));
	__uint(max_entries, 1);
} seta_lb_scratch SEC(".maps");

static __always_inline struct lb_scratch *lb_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&seta_lb_scratch, &zero);
}

enum lb_fwd_result {
	LB_FWD_PASS       = 0, /* not a service: the packet is untouched */
	LB_FWD_DONE       = 1, /* translated: t and l describe the packet as the backend sees it */
	LB_FWD_NO_BACKEND = 2, /* a service with no backend for a new connection: refuse it */
	LB_FWD_DROP       = 3, /* translation failed: the scratch's reason says why */
	LB_FWD_NEW        = 4, /* internal: a new connection, to set up */
};

/* lb_fwd_existing returns the forward entry of the connection t opens or
 * continues (its key in s->nk), if it may go on: its backend still exists
 * (whatever its state) and its translated tuple is live in conntrack. f
 * gets the conntrack lookup of the translated tuple, for the policy and
 * tracking that follow. */
static __always_inline const struct lb_nat_entry *
lb_fwd_existing(const struct ct_key *t, __u8 tcp_flags, struct lb_scratch *s, __u16 rev_nat_id,
		struct ct_state *f)
{
	const struct lb_nat_entry *e;

	e = bpf_map_lookup_elem(&seta_lb_nat, &s->nk);
	if (!e || e->rev_nat_id != rev_nat_id || !lb_lookup_backend(e->backend_id))
		return NULL;
	s->x = *t;
	lb_nat_tuple(&s->x, e, LB_NAT_FWD);
	ct_lookup(&s->x, tcp_flags, f);
	return f->new_conn ? NULL : e;
}

/* lb_fib looks up the route to daddr (16 bytes, IPv4 in the first four)
 * as the node would forward a packet from saddr arriving on the packet's
 * device, into p. Returns the bpf_fib_lookup result; p->ifindex is the
 * egress device and the destination field the next hop. */
static __always_inline int lb_fib(struct __sk_buff *skb, __u8 family, const __u8 *saddr, const __u8 *daddr,
				  struct bpf_fib_lookup *p)
{
	__builtin_memset(p, 0, sizeof(*p));
	p->ifindex = skb->ifindex;
	if (family == ADDR_FAMILY_IPV4) {
		p->family = AF_INET;
		__builtin_memcpy(&p->ipv4_src, saddr, 4);
		__builtin_memcpy(&p->ipv4_dst, daddr, 4);
	} else {
		p->family = AF_INET6;
		__builtin_memcpy(p->ipv6_src, saddr, 16);
		__builtin_memcpy(p->ipv6_dst, daddr, 16);
	}
	return bpf_fib_lookup(skb, p, sizeof(*p), 0);
}

/* lb_fib_redirect forwards a packet that the node's stack must not see
 * (its source is one of the node's addresses, or it was translated for a
 * client outside the node) straight to the device that routes to its
 * destination, as a router would: TTL or hop limit decremented, the next
 * hop's MAC resolved by the neighbour subsystem, marked SETA_MARK_XLATED.
 * Returns the tc verdict, or -1 with *reason set when the packet cannot be
 * forwarded. */
static __subprog int lb_fib_redirect(struct __sk_buff *skb, const struct ct_key *t, __u8 *reason)
{
	struct lb_scratch *s = lb_scratch();
	struct bpf_redir_neigh nh = {};
	void *data, *data_end;
	int ret;

	if (!s) {
		*reason = DROP_FIB_LOOKUP_FAILED;
		return -1;
	}
	ret = lb_fib(skb, t->family, t->saddr, t->daddr, &s->fib);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH) {
		*reason = DROP_FIB_LOOKUP_FAILED;
		return -1;
	}
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (t->family == ADDR_FAMILY_IPV4) {
		struct iphdr *ip4 = data + ETH_HLEN;

		if ((void *)(ip4 + 1) > data_end || !ipv4_dec_ttl(ip4)) {
			*reason = DROP_INVALID_PACKET;
			return -1;
		}
		nh.nh_family = AF_INET;
		nh.ipv4_nh = s->fib.ipv4_dst;
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end || !ipv6_dec_hoplimit(ip6)) {
			*reason = DROP_INVALID_PACKET;
			return -1;
		}
		nh.nh_family = AF_INET6;
		__builtin_memcpy(nh.ipv6_nh, s->fib.ipv6_dst, 16);
	}
	skb->mark = SETA_MARK_XLATED;
	return bpf_redirect_neigh(s->fib.ifindex, &nh, sizeof(nh), 0);
}

/* lb_backend_local reports whether backend b is an endpoint of this node. */
static __always_inline int lb_backend_local(const struct lb_backend *b)
{
	struct endpoint_key k = { .family = b->family };

	lb_addr_copy(k.addr, b->addr);
	return bpf_map_lookup_elem(&seta_endpoints, &k) != NULL;
}

/* lb_snat_addr finds the source for a connection to a backend on another
 * node: the node's address on the device that routes to it, into
 * s->snat_addr. */
static __always_inline int lb_snat_addr(struct __sk_buff *skb, const struct ct_key *t,
					const struct lb_backend *b, struct lb_scratch *s)
{
	struct node_addr_key k = { .family = b->family };
	struct node_addr *a;
	int ret;

	ret = lb_fib(skb, b->family, t->saddr, b->addr, &s->fib);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return -1;
	k.ifindex = s->fib.ifindex;
	a = bpf_map_lookup_elem(&seta_node_addrs, &k);
	if (!a)
		return -1;
	lb_addr_copy(s->snat_addr, a->addr);
	return 0;
}

/* lb_fwd_create selects the backend of a new connection t to svc (whose
 * entry s->key names) and writes its reverse NAT entry; s->nat gets the
 * forward one, for the caller to write. From a device (s->external):
 * Maglev, replies through a device, and SNAT to the node's address when
 * the backend is on another node. From a pod, a backend that is the client
 * itself is a hairpin. Returns an enum lb_fwd_result. */
static __always_inline int lb_fwd_create(struct __sk_buff *skb, const struct ct_key *t,
					 const struct lb_service_value *svc, struct lb_scratch *s)
{
	struct lb_nat_entry *fwd = &s->nat, *rev = &s->rev;
	struct lb_nat_key *rk = &s->rk;
	int external = s->external;
	struct lb_backend *b;
	__be16 want = 0;
	int snat = 0;
	__u32 id;

	lb_affinity_client_addr(&s->client, t->saddr, t->family);
	b = lb_select_backend(&s->key, svc, &s->client, external, external ? lb_flow_hash(t) : 0, &id);
	if (!b || b->family != t->family)
		return LB_FWD_NO_BACKEND;
	__builtin_memset(fwd, 0, sizeof(*fwd));
	lb_addr_copy(fwd->addr, b->addr);
	fwd->port = b->port;
	fwd->backend_id = id;
	fwd->rev_nat_id = svc->rev_nat_id;
	if (external) {
		fwd->flags |= LB_NAT_F_EXTERNAL;
		if (!lb_backend_local(b)) {
			/* The backend's node must send its replies back
			 * here, to be restored: it sees the node as client. */
			if (lb_snat_addr(skb, t, b, s) < 0) {
				s->reason = DROP_FIB_LOOKUP_FAILED;
				return LB_FWD_DROP;
			}
			snat = 1;
		}
	} else if (lb_addr_eq(b->addr, t->saddr)) {
		/* Hairpin: the pod would see a packet from itself to itself
		 * and answer it internally; a source it must answer through
		 * its gateway makes the reply come back here. The client's
		 * port is kept when it is free. */
		snat = 1;
		lb_hairpin_addr(s->snat_addr, t->family);
		fwd->flags |= LB_NAT_F_HAIRPIN;
		want = t->sport;
	}
	/* The reverse entry restores the frontend as source and, with
	 * SNAT, the client as destination. */
	__builtin_memset(rev, 0, sizeof(*rev));
	lb_addr_copy(rev->addr, t->daddr);
	rev->port = t->dport;
	rev->backend_id = id;
	rev->rev_nat_id = svc->rev_nat_id;
	rev->flags = fwd->flags;
	rk->proto = t->proto;
	rk->family = t->family;
	rk->dir = LB_NAT_REV;
	rk->pad = 0;
	lb_addr_copy(rk->saddr, b->addr);
	rk->sport = b->port;
	if (snat) {
		rev->flags |= LB_NAT_F_SNAT;
		fwd->flags |= LB_NAT_F_SNAT;
		lb_addr_copy(rev->peer, t->saddr);
		rev->peer_port = t->sport;
		lb_addr_copy(rk->daddr, s->snat_addr);
		if (lb_snat_port(rk, rev, want, &s->ck) < 0) {
			s->reason = DROP_NAT_NO_MAPPING;
			return LB_FWD_DROP;
		}
		lb_addr_copy(fwd->peer, s->snat_addr);
		fwd->peer_port = rk->dport;
	} else {
		lb_addr_copy(rk->daddr, t->saddr);
		rk->dport = t->sport;
	}
	if (bpf_map_update_elem(&seta_lb_nat, rk, rev, BPF_ANY) < 0) {
		s->reason = DROP_NAT_NO_MAPPING;
		return LB_FWD_DROP;
	}
	return LB_FWD_DONE;
}

/* lb_fwd_lookup is the first half of lb_fwd: the service lookup, and
 * the translation of a connection that has its NAT entry. LB_FWD_NEW: a
 * new connection to the service entry s->key names. */
static __subprog int lb_fwd_lookup(struct __sk_buff *skb, struct ct_key *t, struct l4_info *l, struct ct_state *f,
				   struct lb_scratch *s)
{
	const struct lb_service_value *svc;
	const struct lb_nat_entry *e;
	int external = s->external;

	if (t->proto != IPPROTO_TCP && t->proto != IPPROTO_UDP)
		return LB_FWD_PASS;
	__builtin_memset(&s->key, 0, sizeof(s->key));
	lb_addr_copy(s->key.addr, t->daddr);
	s->key.port = t->dport;
	s->key.proto = t->proto;
	s->key.family = t->family;
	svc = lb_lookup_frontend(&s->key, !external);
	if (!svc)
		return LB_FWD_PASS;
	/* From outside, a ClusterIP is no service. */
	if (external && !(svc->flags & (LB_F_NODEPORT | LB_F_EXTERNAL)))
		return LB_FWD_PASS;
	lb_nat_key_of(&s->nk, t, LB_NAT_FWD);
	e = lb_fwd_existing(t, l->tcp_flags, s, svc->rev_nat_id, f);
	if (!e)
		return LB_FWD_NEW;
	s->nat = *e;
	if (lb_nat_apply(skb, t, s->l4off, &s->nat, LB_NAT_FWD) < 0) {
		s->reason = DROP_INVALID_PACKET;
		return LB_FWD_DROP;
	}
	l->dport = t->dport;
	f->set_flags = CT_F_NAT;
	return LB_FWD_DONE;
}

/* lb_fwd_new is the second half of lb_fwd: a new connection gets its
 * backend and NAT entries, and the packet is translated. */
static __subprog int lb_fwd_new(struct __sk_buff *skb, struct ct_key *t, struct l4_info *l, struct lb_scratch *s)
{
	const struct lb_service_value *svc;
	int ret;

	/* Found by lb_fwd_lookup a moment ago; gone now if the service was
	 * deleted in between: then there is nothing to connect to. */
	svc = bpf_map_lookup_elem(&seta_lb_services, &s->key);
	if (!svc)
		return LB_FWD_NO_BACKEND;
	ret = lb_fwd_create(skb, t, svc, s);
	if (ret != LB_FWD_DONE)
		return ret;
	if (bpf_map_update_elem(&seta_lb_nat, &s->nk, &s->nat, BPF_ANY) < 0) {
		s->reason = DROP_NAT_NO_MAPPING;
		return LB_FWD_DROP;
	}
	if (lb_nat_apply(skb, t, s->l4off, &s->nat, LB_NAT_FWD) < 0) {
		s->reason = DROP_INVALID_PACKET;
		return LB_FWD_DROP;
	}
	l->dport = t->dport;
	return LB_FWD_DONE;
}

/* lb_fwd translates a packet addressed to a service: t and l describe the
 * packet (its L4 header at s->l4off), and on LB_FWD_DONE they describe it
 * as translated, f holds the conntrack lookup of the translated tuple with
 * CT_F_NAT to set, and s->nat the connection's forward entry.
 *
 * s->external: from a device (only NodePort and ExternalIP/LoadBalancer
 * entries serve it, external scope, Maglev); otherwise from a local pod
 * (internal scope, every entry). A destination that is no service costs
 * the service lookup (lb_lookup_frontend). The two halves are separate
 * calls from the caller's frame, so their stack frames never stack up; the
 * conntrack lookup of a new connection's translated tuple is made here,
 * not in lb_fwd_new, whose frame is on the deepest call chain of the
 * programs. */
static __always_inline int lb_fwd(struct __sk_buff *skb, struct ct_key *t, struct l4_info *l, struct ct_state *f,
				  struct lb_scratch *s)
{
	int ret = lb_fwd_lookup(skb, t, l, f, s);

	if (ret == LB_FWD_NEW) {
		ret = lb_fwd_new(skb, t, l, s);
		if (ret == LB_FWD_DONE) {
			ct_lookup(t, l->tcp_flags, f);
			f->set_flags = CT_F_NAT;
		}
	}
	return ret;
}

/* lb_rev restores a reply of a translated connection (its conntrack
 * entry has CT_F_NAT): the source becomes the frontend the client
 * addressed and, with SNAT, the destination the client. t is updated.
 * Returns 1 when restored (*flags: the entry's enum lb_nat_flags), 0 when
 * the entry is gone (the reply passes as it is), -1 on a failed rewrite. */
static __always_inline int lb_rev(struct __sk_buff *skb, struct ct_key *t, __u32 l4off, __u8 *flags)
{
	const struct lb_nat_entry *e;
	struct lb_nat_key rk;

	if (t->proto != IPPROTO_TCP && t->proto != IPPROTO_UDP)
		return 0;
	lb_nat_key_of(&rk, t, LB_NAT_REV);
	e = bpf_map_lookup_elem(&seta_lb_nat, &rk);
	if (!e)
		return 0;
	*flags = e->flags;
	return lb_nat_apply(skb, t, l4off, e, LB_NAT_REV) < 0 ? -1 : 1;
}

/* lb_nat_port reports whether port (network order) is one SNAT hands out,
 * i.e. whether a packet to the node may be the reply of an SNAT
 * connection. */
static __always_inline int lb_nat_port(__be16 port)
{
	__u16 p = bpf_ntohs(port);

	return p >= seta_nat_port_min && p <= seta_nat_port_max;
}

static __always_inline __u16 csum_fold(__s64 sum)
{
	__u32 c = (__u32)sum;

	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)~c;
}

/* lb_icmp4_unreach turns the IPv4 packet into the ICMP port unreachable
 * error its sender gets from the service address it tried: the original
 * IP header and the first 8 bytes after it are quoted, so the sender's
 * stack finds the socket and fails it (ECONNREFUSED). The Ethernet header
 * is left for the caller, who sends the packet back. */
static __subprog int lb_icmp4_unreach(struct __sk_buff *skb)
{
	struct lb_scratch *s = lb_scratch();
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *orig = data + ETH_HLEN;
	__u32 qlen, ihl;
	__s64 sum;

	if (!s || (void *)(orig + 1) > data_end)
		return -1;
	ihl = orig->ihl;
	if (ihl < 5)
		return -1;
	qlen = ihl * 4 + 8;
	if (qlen > sizeof(s->quote))
		return -1;
	__builtin_memset(&s->ip4, 0, sizeof(s->ip4));
	s->ip4.version = 4;
	s->ip4.ihl = 5;
	s->ip4.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct lb_icmp_hdr) + qlen);
	s->ip4.ttl = 64;
	s->ip4.protocol = IPPROTO_ICMP;
	s->ip4.saddr = orig->daddr;
	s->ip4.daddr = orig->saddr;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, s->quote, qlen) < 0)
		return -1;
	s->ip4.check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&s->ip4, sizeof(struct iphdr), 0));
	__builtin_memset(&s->icmp, 0, sizeof(s->icmp));
	s->icmp.type = 3; /* destination unreachable */
	s->icmp.code = 3; /* port unreachable */
	sum = bpf_csum_diff(NULL, 0, (__be32 *)s->quote, qlen, 0);
	s->icmp.check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&s->icmp, sizeof(s->icmp), sum));
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(struct iphdr) + sizeof(s->icmp) + qlen, 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &s->ip4, sizeof(struct iphdr), BPF_F_RECOMPUTE_CSUM) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(struct iphdr), &s->icmp, sizeof(s->icmp), BPF_F_RECOMPUTE_CSUM) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(struct iphdr) + sizeof(s->icmp), s->quote, qlen,
				BPF_F_RECOMPUTE_CSUM) < 0)
		return -1;
	return 0;
}

/* lb_icmp6_unreach is lb_icmp4_unreach for IPv6: destination unreachable,
 * code 4 (port unreachable), quoting the IPv6 header and 8 bytes; the
 * checksum covers the pseudo header. */
static __subprog int lb_icmp6_unreach(struct __sk_buff *skb)
{
	struct lb_scratch *s = lb_scratch();
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *orig = data + ETH_HLEN;
	__s64 sum;

	if (!s || (void *)(orig + 1) > data_end)
		return -1;
	__builtin_memset(&s->ip6, 0, sizeof(s->ip6));
	s->ip6.version = 6;
	s->ip6.payload_len = bpf_htons(sizeof(struct lb_icmp_hdr) + LB_ICMP6_QUOTE);
	s->ip6.nexthdr = IPPROTO_ICMPV6;
	s->ip6.hop_limit = 64;
	s->ip6.saddr = orig->daddr;
	s->ip6.daddr = orig->saddr;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, s->quote, LB_ICMP6_QUOTE) < 0)
		return -1;
	__builtin_memset(&s->pseudo, 0, sizeof(s->pseudo));
	__builtin_memcpy(s->pseudo.saddr, &s->ip6.saddr, 16);
	__builtin_memcpy(s->pseudo.daddr, &s->ip6.daddr, 16);
	s->pseudo.len = bpf_htonl(sizeof(struct lb_icmp_hdr) + LB_ICMP6_QUOTE);
	s->pseudo.nexthdr = IPPROTO_ICMPV6;
	__builtin_memset(&s->icmp, 0, sizeof(s->icmp));
	s->icmp.type = 1; /* destination unreachable */
	s->icmp.code = 4; /* port unreachable */
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&s->pseudo, sizeof(s->pseudo), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)s->quote, LB_ICMP6_QUOTE, sum);
	s->icmp.check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&s->icmp, sizeof(s->icmp), sum));
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(s->icmp) + LB_ICMP6_QUOTE, 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &s->ip6, sizeof(struct ipv6hdr), BPF_F_RECOMPUTE_CSUM) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(struct ipv6hdr), &s->icmp, sizeof(s->icmp), BPF_F_RECOMPUTE_CSUM) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(s->icmp), s->quote, LB_ICMP6_QUOTE,
				BPF_F_RECOMPUTE_CSUM) < 0)
		return -1;
	return 0;
}

/* lb_tcp_rst turns the TCP segment (L4 header at l4off) into the reset
 * its sender gets from the service address it tried, as a closed port
 * answers (RFC 9293): a segment with ACK gets <SEQ=SEG.ACK><RST>; one
 * without gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><RST,ACK>, a SYN counting as
 * one. A reset is never answered (-1: the caller drops it). The Ethernet
 * header is left for the caller. */
static __subprog int lb_tcp_rst(struct __sk_buff *skb, __u8 family, __u32 l4off)
{
	struct lb_scratch *s = lb_scratch();
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 iplen, seglen, ack;
	__u8 flags;
	__s64 sum;

	if (!s || l4off > 128 || bpf_skb_load_bytes(skb, l4off, &s->tcp, sizeof(s->tcp)) < 0 || s->tcp.rst)
		return -1;
	if (family == ADDR_FAMILY_IPV4) {
		struct iphdr *ip4 = data + ETH_HLEN;

		if ((void *)(ip4 + 1) > data_end)
			return -1;
		iplen = bpf_ntohs(ip4->tot_len) + ETH_HLEN;
		__builtin_memset(&s->ip4, 0, sizeof(s->ip4));
		s->ip4.version = 4;
		s->ip4.ihl = 5;
		s->ip4.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct tcphdr));
		s->ip4.ttl = 64;
		s->ip4.protocol = IPPROTO_TCP;
		s->ip4.saddr = ip4->daddr;
		s->ip4.daddr = ip4->saddr;
		s->ip4.check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&s->ip4, sizeof(struct iphdr), 0));
		s->pseudo4.saddr = s->ip4.saddr;
		s->pseudo4.daddr = s->ip4.daddr;
		s->pseudo4.zero = 0;
		s->pseudo4.proto = IPPROTO_TCP;
		s->pseudo4.len = bpf_htons(sizeof(struct tcphdr));
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&s->pseudo4, sizeof(s->pseudo4), 0);
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		iplen = bpf_ntohs(ip6->payload_len) + ETH_HLEN + sizeof(struct ipv6hdr);
		__builtin_memset(&s->ip6, 0, sizeof(s->ip6));
		s->ip6.version = 6;
		s->ip6.payload_len = bpf_htons(sizeof(struct tcphdr));
		s->ip6.nexthdr = IPPROTO_TCP;
		s->ip6.hop_limit = 64;
		s->ip6.saddr = ip6->daddr;
		s->ip6.daddr = ip6->saddr;
		__builtin_memset(&s->pseudo, 0, sizeof(s->pseudo));
		__builtin_memcpy(s->pseudo.saddr, &s->ip6.saddr, 16);
		__builtin_memcpy(s->pseudo.daddr, &s->ip6.daddr, 16);
		s->pseudo.len = bpf_htonl(sizeof(struct tcphdr));
		s->pseudo.nexthdr = IPPROTO_TCP;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&s->pseudo, sizeof(s->pseudo), 0);
	}
	/* The segment's length: what follows the TCP header, plus one for
	 * each of SYN and FIN. */
	seglen = iplen - l4off - s->tcp.doff * 4 + s->tcp.syn + s->tcp.fin;
	flags = ((__u8 *)&s->tcp)[13];
	ack = s->tcp.ack_seq;
	s->tcp.ack_seq = bpf_htonl(bpf_ntohl(s->tcp.seq) + seglen);
	s->tcp.seq = (flags & 0x10) ? ack : 0;
	{
		__be16 port = s->tcp.source;

		s->tcp.source = s->tcp.dest;
		s->tcp.dest = port;
	}
	/* doff 5; flags RST, with ACK when the segment had none. */
	((__u8 *)&s->tcp)[12] = 5 << 4;
	((__u8 *)&s->tcp)[13] = (flags & 0x10) ? 0x04 : 0x14;
	s->tcp.window = 0;
	s->tcp.check = 0;
	s->tcp.urg_ptr = 0;
	s->tcp.check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&s->tcp, sizeof(s->tcp), sum));
	if (family == ADDR_FAMILY_IPV4) {
		if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(struct iphdr) + sizeof(struct tcphdr), 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_HLEN, &s->ip4, sizeof(struct iphdr), BPF_F_RECOMPUTE_CSUM) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(struct iphdr), &s->tcp, sizeof(s->tcp), BPF_F_RECOMPUTE_CSUM) < 0)
			return -1;
		return 0;
	}
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(struct tcphdr), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &s->ip6, sizeof(struct ipv6hdr), BPF_F_RECOMPUTE_CSUM) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(struct ipv6hdr), &s->tcp, sizeof(s->tcp), BPF_F_RECOMPUTE_CSUM) < 0)
		return -1;
	return 0;
}

/* lb_refuse turns a packet that opens a connection to a service without
 * backends into the answer that fails it at once: a TCP reset for TCP, an
 * ICMP port unreachable for anything else. Not an ICMP error for TCP too:
 * the kernel takes an ICMP error for a socket in connect() only as a soft
 * error while the socket is locked, which it is when the answer comes back
 * synchronously (a pod's SYN is processed, and answered, before its
 * connect() call sleeps), and fails the connection only at the first
 * retransmission, a second later; a reset is queued to the socket's
 * backlog and handled as soon as connect() releases it. */
static __always_inline int lb_refuse(struct __sk_buff *skb, const struct ct_key *t, __u32 l4off)
{
	if (t->proto == IPPROTO_TCP)
		return lb_tcp_rst(skb, t->family, l4off);
	return t->family == ADDR_FAMILY_IPV4 ? lb_icmp4_unreach(skb) : lb_icmp6_unreach(skb);
}

#endif /* __SETA_LB_NAT_H */
