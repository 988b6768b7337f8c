/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Identity-based policy: the ipcache (address -> security identity) and the
 * policy map (endpoint, direction, peer identity, protocol, port -> verdict).
 *
 * The policy map is one LPM trie for all endpoints. The endpoint, direction
 * and identity are always fully specified; the prefix then optionally covers
 * the protocol and a prefix of the destination port, so a port range is a
 * handful of prefix entries and a wildcard protocol or port is a shorter
 * prefix. A packet costs two lookups, whatever the number of rules: one with
 * the peer's identity and one with identity 0 (any peer); a match on the
 * specific identity wins. The agent (pkg/policy) writes entries such that
 * deny always wins under this lookup.
 * Go mirror: pkg/datapath/maps (PolicyKey, IPCacheKey). */
#ifndef __SETA_POLICY_H
#define __SETA_POLICY_H

#include "common.h"
#include "maps.h"

/* Reserved identities used by the datapath (pkg/identity). */
#define IDENTITY_HOST  1
#define IDENTITY_WORLD 2

/* The node itself has policy entries under endpoint ID 0 (host policies,
 * CiliumClusterwideNetworkPolicy nodeSelector rules); pkg/enforcer. */
#define HOST_EP_ID 0

struct ipcache_key {
	__u32 prefixlen; /* bits after this field: 32 (family+pad) + address bits */
	__u8  family;    /* enum addr_family */
	__u8  pad[3];
	__u8  addr[16];
};

struct ipcache_value {
	__u32 identity;
	__u32 flags; /* reserved, zero */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_ipcache SEC(".maps");

/* Bits of a fully specified policy key after prefixlen. */
#define POLICY_FULL_PREFIX 96

struct policy_key {
	__u32  prefixlen;
	__u16  ep_id;
	__u8   dir;      /* enum traffic_dir */
	__u8   pad1;
	__u32  identity; /* 0: any peer */
	__u8   proto;
	__u8   pad2;
	__be16 dport;    /* for ICMP and ICMPv6: the type, as a port (network order) */
};

/* How an entry's key matched, in Cilium's numbering (Hubble's
 * PolicyMatchType), computed by the agent from the key it writes (identity
 * any or not, protocol any or not, port any or not) so the datapath only
 * copies it into events. POLICY_MATCH_NONE marks the allow-all entry of a
 * direction the endpoint does not enforce: no policy decided, so allowed
 * packets get no verdict event. Never renumber. */
enum policy_match_type {
	POLICY_MATCH_NONE       = 0,
	POLICY_MATCH_L3_ONLY    = 1, /* identity, any protocol */
	POLICY_MATCH_L3_L4      = 2, /* identity, protocol and port(s) */
	POLICY_MATCH_L4_ONLY    = 3, /* any identity, protocol and port(s) */
	POLICY_MATCH_ALL        = 4, /* any identity, any protocol */
	POLICY_MATCH_L3_PROTO   = 5, /* identity and protocol, any port */
	POLICY_MATCH_PROTO_ONLY = 6, /* any identity, protocol, any port */
};

struct policy_entry {
	__u8  deny;
	__u8  match_type; /* enum policy_match_type */
	__u8  pad[2];
	__u32 cookie; /* names the rules for user space (drop events, trace) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_policy SEC(".maps");

enum policy_verdict {
	POLICY_ALLOW = 0,
	POLICY_NO_MATCH = 1,
	POLICY_DENY_RULE = 2,
};

static __always_inline __u32 ipcache_identity4(__be32 addr)
{
	struct ipcache_key key = { .prefixlen = 32 + 32, .family = ADDR_FAMILY_IPV4 };
	struct ipcache_value *v;

	__builtin_memcpy(key.addr, &addr, 4);
	v = bpf_map_lookup_elem(&seta_ipcache, &key);
	return v ? v->identity : IDENTITY_WORLD;
}

static __always_inline __u32 ipcache_identity6(const struct in6_addr *addr)
{
	struct ipcache_key key = { .prefixlen = 32 + 128, .family = ADDR_FAMILY_IPV6 };
	struct ipcache_value *v;

	__builtin_memcpy(key.addr, addr, 16);
	v = bpf_map_lookup_elem(&seta_ipcache, &key);
	return v ? v->identity : IDENTITY_WORLD;
}

/* ipcache_identity is the identity of addr (16 bytes, IPv4 in the first
 * four) of family (enum addr_family). */
static __always_inline __u32 ipcache_identity(const __u8 *addr, __u8 family)
{
	if (family == ADDR_FAMILY_IPV4)
		return ipcache_identity4(*(const __be32 *)addr);
	return ipcache_identity6((const struct in6_addr *)addr);
}

/* policy_check looks up the verdict for one packet of an endpoint; a
 * matching entry's cookie and match type go to *cookie and *match_type. */
static __always_inline int policy_check(__u16 ep_id, __u8 dir, __u32 peer, __u8 proto,
					__be16 dport, __u32 *cookie, __u8 *match_type)
{
	struct policy_key key = {
		.prefixlen = POLICY_FULL_PREFIX,
		.ep_id = ep_id, .dir = dir, .identity = peer,
		.proto = proto, .dport = dport,
	};
	struct policy_entry *e;

	e = bpf_map_lookup_elem(&seta_policy, &key);
	if (!e) {
		key.identity = 0;
		e = bpf_map_lookup_elem(&seta_policy, &key);
	}
	if (!e)
		return POLICY_NO_MATCH;
	*cookie = e->cookie;
	*match_type = e->match_type;
	return e->deny ? POLICY_DENY_RULE : POLICY_ALLOW;
}

#endif /* __SETA_POLICY_H */
