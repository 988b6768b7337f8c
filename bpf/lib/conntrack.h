/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking. One entry per connection, keyed by the tuple of the
 * packet that opened it. A packet whose reversed tuple has a live entry is a
 * reply and skips policy; every other packet is checked against policy, so
 * revoking an allow stops an established connection at its next packet.
 * Go mirror: pkg/datapath/maps (CTKey). */
#ifndef __SETA_CONNTRACK_H
#define __SETA_CONNTRACK_H

#include "common.h"

struct ct_key {
	__u8   saddr[16];
	__u8   daddr[16];
	__be16 sport; /* ICMP echo: the identifier; 0 for replies, see tuple */
	__be16 dport;
	__u8   proto;
	__u8   family;
	__u8   pad[2];
};

#define CT_F_CLOSING 0x1 /* a FIN or RST was seen */

struct ct_entry {
	__u64 last_seen; /* bpf_ktime_get_ns */
	__u64 packets;   /* forward direction */
	__u64 replies;
	__u32 flags;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_ct SEC(".maps");

/* Lifetimes, in seconds, after the last packet. */
#define CT_LIFETIME_TCP      21600
#define CT_LIFETIME_CLOSING  10
#define CT_LIFETIME_NONTCP   60
#define NSEC_PER_SEC         1000000000ULL

static __always_inline __u64 ct_lifetime(const struct ct_key *k, const struct ct_entry *e)
{
	if (k->proto != IPPROTO_TCP)
		return CT_LIFETIME_NONTCP * NSEC_PER_SEC;
	if (e->flags & CT_F_CLOSING)
		return CT_LIFETIME_CLOSING * NSEC_PER_SEC;
	return CT_LIFETIME_TCP * NSEC_PER_SEC;
}

static __always_inline void ct_reverse(const struct ct_key *k, struct ct_key *r)
{
	__builtin_memcpy(r->saddr, k->daddr, 16);
	__builtin_memcpy(r->daddr, k->saddr, 16);
	r->sport = k->dport;
	r->dport = k->sport;
	r->proto = k->proto;
	r->family = k->family;
	r->pad[0] = r->pad[1] = 0;
}

/* ct_is_reply reports whether the packet with tuple k answers a live
 * connection, and accounts it. */
static __always_inline int ct_is_reply(const struct ct_key *k, int closing)
{
	struct ct_key rev;
	struct ct_entry *e;
	__u64 now;

	ct_reverse(k, &rev);
	e = bpf_map_lookup_elem(&seta_ct, &rev);
	if (!e)
		return 0;
	now = bpf_ktime_get_ns();
	if (now - e->last_seen > ct_lifetime(&rev, e))
		return 0;
	e->last_seen = now;
	e->replies++;
	if (closing)
		e->flags |= CT_F_CLOSING;
	return 1;
}

/* ct_live reports whether k, in either direction, is a live connection. */
static __always_inline int ct_live(const struct ct_key *k)
{
	struct ct_key rev;
	struct ct_entry *e;
	__u64 now = bpf_ktime_get_ns();

	e = bpf_map_lookup_elem(&seta_ct, k);
	if (e && now - e->last_seen <= ct_lifetime(k, e))
		return 1;
	ct_reverse(k, &rev);
	e = bpf_map_lookup_elem(&seta_ct, &rev);
	return e && now - e->last_seen <= ct_lifetime(&rev, e);
}

/* ct_track records (or refreshes) the connection k opens. */
static __always_inline int ct_track(const struct ct_key *k, int closing)
{
	struct ct_entry *e, fresh = {};
	__u64 now = bpf_ktime_get_ns();

	e = bpf_map_lookup_elem(&seta_ct, k);
	if (e) {
		if (now - e->last_seen > ct_lifetime(k, e))
			e->flags = 0; /* an old entry: the tuple is reused */
		e->last_seen = now;
		e->packets++;
		if (closing)
			e->flags |= CT_F_CLOSING;
		return 0;
	}
	fresh.last_seen = now;
	fresh.packets = 1;
	fresh.flags = closing ? CT_F_CLOSING : 0;
	return bpf_map_update_elem(&seta_ct, k, &fresh, BPF_ANY);
}

#endif /* __SETA_CONNTRACK_H */
