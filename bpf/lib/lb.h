/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Service load balancing: the maps the agent's service control plane writes
 * (pkg/datapath/lb implements loadbalancer.LBMap over them) and the
 * selection helpers every program that translates services shares: the
 * socket programs (bpf_sock.c) and the tc programs (service DNAT in
 * from-container, NodePort on the node's devices: lib/lb_nat.h).
 *
 * The model (pkg/loadbalancer): a frontend is an address, port, protocol and
 * scope; its entry in seta_lb_services is "slot 0", which carries the number
 * of backend slots, the rev-NAT ID (the ServiceID) and the flags. Slots
 * 1..count hold one backend ID each; a random pick is slot
 * 1 + prandom % count. The writer fills slots before the slot-0 entry that
 * counts them and deletes slots beyond the count after it, so a reader that
 * sees count n finds slots 1..n. Backends live in their own map, so a
 * backend shared by frontends is one entry, and a connection keeps a backend
 * that left the slots (terminating) for as long as its entry exists.
 *
 * Every map is pinned by name under the agent's --bpf-root; the sizes below
 * are defaults that pkg/datapath/loader overrides from the agent's config.
 * Go mirror: pkg/datapath/lb (generated types in pkg/datapath/bpf, checked
 * against pkg/loadbalancer by its tests). */
#ifndef __SETA_LB_H
#define __SETA_LB_H

#include "common.h"

#ifndef NSEC_PER_SEC
#define NSEC_PER_SEC 1000000000ULL
#endif

/* Flags of a service entry. Mirror of loadbalancer.Flags (the Go model is
 * the source; pkg/datapath/lb's tests fail when the two differ). */
enum lb_flags {
	LB_F_NODEPORT   = 1 << 0, /* a NodePort; its address may be unspecified (every node address) */
	LB_F_EXTERNAL   = 1 << 1, /* a LoadBalancer or ExternalIP address */
	LB_F_AFFINITY   = 1 << 2, /* ClientIP session affinity for affinity_timeout seconds */
	LB_F_LOCAL      = 1 << 3, /* only node-local backends are in the slots */
	LB_F_MAGLEV     = 1 << 4, /* traffic from outside the node selects with the Maglev table */
	LB_F_TWO_SCOPES = 1 << 5, /* a separate LB_SCOPE_INTERNAL entry serves traffic from inside the node */
};

/* Which traffic a service entry serves (loadbalancer.Scope). */
enum lb_scope {
	LB_SCOPE_EXTERNAL = 0, /* from outside the node, and all traffic of a service with one backend set */
	LB_SCOPE_INTERNAL = 1, /* from local pods and the node itself, with LB_F_TWO_SCOPES */
};

/* A backend's lifecycle (loadbalancer.BackendState). Only active backends
 * take new connections; the others keep the ones they have. */
enum lb_backend_state {
	LB_BACKEND_ACTIVE      = 0,
	LB_BACKEND_TERMINATING = 1,
	LB_BACKEND_QUARANTINED = 2,
};

/* Backend flags. */
#define LB_BACKEND_F_LOCAL 0x1 /* a pod of this node */

/* Sizes shared with Go. LB_MAGLEV_TABLE_SIZE is loadbalancer.MaglevTableSize
 * (a prime: Cilium's default M). */
enum lb_limits {
	LB_MAGLEV_TABLE_SIZE = 16381,
};

/* Key of seta_lb_services. IPv4 uses the first four bytes of addr and
 * leaves the rest zero; an unspecified address (all zero) is a NodePort
 * frontend that stands for every address of the node. */
struct lb_service_key {
	__u8   addr[16];
	__be16 port;   /* network order */
	__u8   proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8   family; /* enum addr_family */
	__u16  slot;   /* 0: the service entry; 1..count: its backend slots */
	__u8   scope;  /* enum lb_scope */
	__u8   pad;
};

/* Value of seta_lb_services. In slot 0, count, rev_nat_id, flags and
 * affinity_timeout describe the service; in a slot > 0, backend_id is the
 * slot's backend (and rev_nat_id repeats the service's, for people reading
 * the map). */
struct lb_service_value {
	__u32 backend_id;
	__u16 count;            /* slot 0: backend slots 1..count; 0: no backend, connections are refused */
	__u16 rev_nat_id;       /* the ServiceID; key of seta_lb_revnat */
	__u16 flags;            /* enum lb_flags */
	__u16 pad;
	__u32 affinity_timeout; /* seconds, with LB_F_AFFINITY */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_service_key);
	__type(value, struct lb_service_value);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_lb_services SEC(".maps");

/* Value of seta_lb_backends, keyed by the backend ID (u32, never 0). */
struct lb_backend {
	__u8   addr[16]; /* IPv4: first four bytes */
	__be16 port;     /* network order */
	__u8   proto;
	__u8   family;   /* enum addr_family */
	__u8   state;    /* enum lb_backend_state */
	__u8   flags;    /* LB_BACKEND_F_* */
	__u8   pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_lb_backends SEC(".maps");

/* Value of seta_lb_revnat, keyed by the rev-NAT ID (the ServiceID, u16):
 * the address replies of a service's connections must appear to come from.
 * For a NodePort on every node address, addr is unspecified and only the
 * port is restored (the client's own destination address is kept). */
struct lb_revnat {
	__u8   addr[16];
	__be16 port;
	__u8   family;
	__u8   pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct lb_revnat);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_lb_revnat SEC(".maps");

/* Key of seta_lb_affinity. One map serves both ways of naming a client, as
 * Cilium's affinity maps do: socket LB knows the client's network namespace
 * (its cookie, so every socket of a pod, whatever its source address, sticks
 * to one backend), the tc path knows the client's address. netns tells them
 * apart, so a cookie can never collide with an address. */
struct lb_affinity_key {
	__u8  client[16];  /* netns: the cookie in the first 8 bytes (host order);
			    * else the client address (IPv4: first four bytes) */
	__u16 rev_nat_id;
	__u8  family;      /* the service's enum addr_family */
	__u8  netns;       /* 1: client is a network namespace cookie */
};

struct lb_affinity_value {
	__u32 backend_id;
	__u32 last_used; /* seconds of bpf_ktime_get_ns (CLOCK_MONOTONIC) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity_value);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_lb_affinity SEC(".maps");

/* seta_lb_maglev: rev-NAT ID -> the service's Maglev lookup table, for
 * services with LB_F_MAGLEV only. The inner map is an array with one
 * element, the whole table of LB_MAGLEV_TABLE_SIZE backend IDs: the agent
 * builds a new table in a new inner map and swaps it in with one update of
 * the outer map, so a reader sees either the old table or the new one,
 * never a mix. */
struct lb_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32) * LB_MAGLEV_TABLE_SIZE);
	__uint(max_entries, 1);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__type(key, __u16);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct lb_maglev_inner);
} seta_lb_maglev SEC(".maps");

/* seta_lb_sock_revnat holds two kinds of per-socket entries of socket LB.
 *
 * LB_SOCK_REVNAT: {socket, backend} -> the VIP the socket addressed, so
 * recvmsg and getpeername show the VIP instead of the backend.
 * LB_SOCK_STICKY: {socket, VIP} -> the backend an unconnected UDP socket
 * was sent to, so the flow keeps its backend across changes of the slots
 * for as long as the backend's entry exists (also when it is terminating).
 *
 * An LRU: entries of closed sockets age out; cookies are never reused. */
enum lb_sock_kind {
	LB_SOCK_REVNAT = 0,
	LB_SOCK_STICKY = 1,
};

struct lb_sock_key {
	__u64  cookie;   /* bpf_get_socket_cookie */
	__u8   addr[16]; /* REVNAT: the backend; STICKY: the VIP (IPv4: first four bytes) */
	__be16 port;
	__u8   family;   /* enum addr_family */
	__u8   proto;
	__u8   kind;     /* enum lb_sock_kind */
	__u8   pad[3];
};

struct lb_sock_value {
	__u8   addr[16];   /* REVNAT: the VIP; STICKY: the backend's address (for people) */
	__be16 port;
	__u16  rev_nat_id;
	__u32  backend_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_sock_key);
	__type(value, struct lb_sock_value);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_lb_sock_revnat SEC(".maps");

/* Addresses in the maps are 16 bytes, 4-byte aligned (IPv4 in the first
 * four): compared as words. */
static __always_inline int lb_addr_eq(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

static __always_inline int lb_addr_unspec(const __u8 *a)
{
	const __u32 *x = (const __u32 *)a;

	return (x[0] | x[1] | x[2] | x[3]) == 0;
}

static __always_inline void lb_addr_copy(__u8 *dst, const __u8 *src)
{
	__u32 *d = (__u32 *)dst;
	const __u32 *s = (const __u32 *)src;

	d[0] = s[0];
	d[1] = s[1];
	d[2] = s[2];
	d[3] = s[3];
}

/* lb_now returns the clock of seta_lb_affinity, in seconds. */
static __always_inline __u32 lb_now(void)
{
	return bpf_ktime_get_ns() / NSEC_PER_SEC;
}

/* lb_lookup_service finds the service entry for the address, port,
 * protocol and family in key. internal says the traffic comes from inside
 * the node (socket LB, local pods): a service with LB_F_TWO_SCOPES serves it
 * with its internal entry, falling back to the external one if that is
 * missing (the writer adds the internal entry before it sets the flag, and
 * removes it after clearing it). On return key names the entry found (its
 * scope, slot 0), ready for lb_select_backend. NULL: not a service. */
static __always_inline const struct lb_service_value *
lb_lookup_service(struct lb_service_key *key, int internal)
{
	const struct lb_service_value *svc, *in;

	key->slot = 0;
	key->scope = LB_SCOPE_EXTERNAL;
	svc = bpf_map_lookup_elem(&seta_lb_services, key);
	if (!svc || !internal || !(svc->flags & LB_F_TWO_SCOPES))
		return svc;
	key->scope = LB_SCOPE_INTERNAL;
	in = bpf_map_lookup_elem(&seta_lb_services, key);
	if (in)
		return in;
	key->scope = LB_SCOPE_EXTERNAL;
	return svc;
}

/* lb_lookup_backend returns a backend by ID, or NULL. */
static __always_inline struct lb_backend *lb_lookup_backend(__u32 id)
{
	return bpf_map_lookup_elem(&seta_lb_backends, &id);
}

/* lb_slot_backend returns the backend ID in slot of the service key names
 * (0 when the slot is missing). key is left naming slot 0. */
static __always_inline __u32 lb_slot_backend(struct lb_service_key *key, __u16 slot)
{
	const struct lb_service_value *s;

	key->slot = slot;
	s = bpf_map_lookup_elem(&seta_lb_services, key);
	key->slot = 0;
	return s ? s->backend_id : 0;
}

/* lb_select_random picks a slot uniformly at random. */
static __always_inline __u32 lb_select_random(struct lb_service_key *key, const struct lb_service_value *svc)
{
	__u16 count = svc->count;

	if (count == 0)
		return 0;
	return lb_slot_backend(key, (bpf_get_prandom_u32() % count) + 1);
}

/* lb_select_maglev picks the backend at hash in the service's Maglev table:
 * the same flow hash gives the same backend on every node, and a change of
 * the backend set moves few flows. 0 when the service has no table. */
static __always_inline __u32 lb_select_maglev(__u16 rev_nat_id, __u32 hash)
{
	const __u32 zero = 0;
	const __u32 *table;
	__u32 idx;
	void *inner;

	inner = bpf_map_lookup_elem(&seta_lb_maglev, &rev_nat_id);
	if (!inner)
		return 0;
	table = bpf_map_lookup_elem(inner, &zero);
	if (!table)
		return 0;
	/* The verifier does not derive a range from a modulo: the explicit
	 * bound check gives it one. The empty asm hides from clang that the
	 * check cannot fail, so it is not optimized away. */
	idx = hash % LB_MAGLEV_TABLE_SIZE;
	asm volatile("" : "+r"(idx));
	if (idx >= LB_MAGLEV_TABLE_SIZE)
		return 0;
	return table[idx];
}

/* lb_affinity_client_netns names a client by its network namespace cookie
 * (socket LB: bpf_get_netns_cookie). */
static __always_inline void lb_affinity_client_netns(struct lb_affinity_key *k, __u64 cookie, __u8 family)
{
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->client, &cookie, sizeof(cookie));
	k->family = family;
	k->netns = 1;
}

/* lb_affinity_client_addr names a client by its address (the tc path);
 * addr has 16 bytes, IPv4 in the first four and the rest zero. */
static __always_inline void lb_affinity_client_addr(struct lb_affinity_key *k, const __u8 *addr, __u8 family)
{
	__builtin_memset(k, 0, sizeof(*k));
	lb_addr_copy(k->client, addr);
	k->family = family;
}

/* lb_affinity_backend returns the backend the client is bound to for svc,
 * with its ID in *id, if the binding is live: used within the service's
 * timeout, and its backend still exists and is active (a terminating or
 * quarantined backend takes no new connections, so the client is bound
 * anew). A live binding's clock restarts. NULL: no live binding. */
static __always_inline struct lb_backend *
lb_affinity_backend(struct lb_affinity_key *client, const struct lb_service_value *svc, __u32 now, __u32 *id)
{
	struct lb_affinity_value *v;
	struct lb_backend *b;

	client->rev_nat_id = svc->rev_nat_id;
	v = bpf_map_lookup_elem(&seta_lb_affinity, client);
	if (!v || now - v->last_used > svc->affinity_timeout)
		return NULL;
	b = lb_lookup_backend(v->backend_id);
	if (!b || b->state != LB_BACKEND_ACTIVE)
		return NULL;
	v->last_used = now;
	*id = v->backend_id;
	return b;
}

/* lb_affinity_record binds the client to backend id for svc. Two clients of
 * one key racing on two CPUs may both pick; the last write wins, as in
 * Cilium. A full LRU evicts the least recently used binding. */
static __always_inline void lb_affinity_record(struct lb_affinity_key *client,
					       const struct lb_service_value *svc, __u32 id, __u32 now)
{
	struct lb_affinity_value v = { .backend_id = id, .last_used = now };

	client->rev_nat_id = svc->rev_nat_id;
	bpf_map_update_elem(&seta_lb_affinity, client, &v, BPF_ANY);
}

/* lb_select_backend picks the backend of a new connection to svc, whose
 * entry key names (as lb_lookup_service leaves it):
 *
 *   - LB_F_AFFINITY with a client: the client's live binding; otherwise a
 *     pick as below, which then becomes the client's binding;
 *   - maglev set and LB_F_MAGLEV: the service's Maglev table at hash (the
 *     tc path's flow hash; traffic from outside the node);
 *   - otherwise a random slot.
 *
 * Returns the backend, with its ID in *id, or NULL: the service has no
 * backends (count 0), or a slot, table or backend entry is missing (the
 * writer is mid-update, or the maps are inconsistent). */
static __always_inline struct lb_backend *
lb_select_backend(struct lb_service_key *key, const struct lb_service_value *svc,
		  struct lb_affinity_key *client, int maglev, __u32 hash, __u32 *id)
{
	int affinity = client && (svc->flags & LB_F_AFFINITY);
	struct lb_backend *b;
	__u32 now = 0;

	*id = 0;
	if (svc->count == 0)
		return NULL;
	if (affinity) {
		now = lb_now();
		b = lb_affinity_backend(client, svc, now, id);
		if (b)
			return b;
	}
	if (maglev && (svc->flags & LB_F_MAGLEV))
		*id = lb_select_maglev(svc->rev_nat_id, hash);
	else
		*id = lb_select_random(key, svc);
	if (!*id)
		return NULL;
	b = lb_lookup_backend(*id);
	if (b && affinity)
		lb_affinity_record(client, svc, *id, now);
	return b;
}

/* lb_lookup_revnat returns where replies of a service's connections must
 * appear to come from, or NULL. */
static __always_inline const struct lb_revnat *lb_lookup_revnat(__u16 rev_nat_id)
{
	return bpf_map_lookup_elem(&seta_lb_revnat, &rev_nat_id);
}

#endif /* __SETA_LB_H */
