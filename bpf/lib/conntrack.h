/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking. One entry per connection, keyed by the tuple of the
 * packet that opened it. A packet whose reversed tuple has a live entry is a
 * reply and skips policy; every other packet is checked against policy, so
 * revoking an allow stops an established connection at its next packet.
 * Go mirror: pkg/datapath/bpf (LxcCtKey, LxcCtEntry, generated). */
#ifndef __SETA_CONNTRACK_H
#define __SETA_CONNTRACK_H

#include "common.h"
#include "trace.h"

struct ct_key {
	__u8   saddr[16];
	__u8   daddr[16];
	__be16 sport; /* ICMP echo: the identifier; 0 for replies, see tuple */
	__be16 dport;
	__u8   proto;
	__u8   family;
	__u8   pad[2];
};

#define CT_F_CLOSING     0x1 /* a FIN or RST was seen */
#define CT_F_RX_REPORTED 0x2 /* a reply was traced (monitor aggregation) */
#define CT_F_NAT         0x4 /* a service translated the connection: its
			      * replies are restored through seta_lb_nat
			      * (lib/lb_nat.h); the entry is keyed by the
			      * translated tuple */

/* The flags and report state share the 8 bytes that were "__u32 flags;
 * __u32 pad;" (CT_F_CLOSING in the low byte), so the entry keeps its size
 * and a pinned table from before stays usable: old entries read as
 * "nothing reported yet". The report state is only maintained when
 * conntrack decides which packets are traced (lib/trace.h). */
struct ct_entry {
	__u64 last_seen; /* bpf_ktime_get_ns */
	__u64 packets;   /* forward direction */
	__u64 replies;
	__u8  flags;          /* CT_F_* */
	__u8  tx_flags_seen;  /* TCP flags traced in the forward direction (masked) */
	__u8  rx_flags_seen;  /* TCP flags traced in the reply direction (masked) */
	__u8  pad;
	__u16 last_tx_report; /* forward direction's last trace, CT_REPORT_SHIFT ticks, wrapping */
	__u16 last_rx_report; /* reply direction's last trace, likewise */
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

/* ct_report decides whether a packet of a live connection is worth a trace
 * under monitor aggregation, and if so records it as traced. Worth it: the
 * first reply, TCP flags of the mask not yet traced in the packet's
 * direction, or the report interval passed since that direction's last
 * trace. The tick counter is 16 bits and compared modulo 2^16, so a
 * direction silent for more than ~19.5 hours (while the other keeps the
 * entry alive) may miss its periodic trace once: its next packet after the
 * interval is traced. Concurrent packets of one connection on two CPUs may
 * both be traced; that costs an event, never loses one. */
static __always_inline __u8 ct_report(struct ct_entry *e, __u64 now, __u8 tcp_flags, int reply)
{
	__u16 tick = now >> CT_REPORT_SHIFT;
	__u8 flags = tcp_flags & seta_monitor_aggregation_flags;

	if (reply) {
		if ((e->flags & CT_F_RX_REPORTED) && !(flags & ~e->rx_flags_seen) &&
		    (__u16)(tick - e->last_rx_report) < trace_interval_ticks())
			return 0;
		e->flags |= CT_F_RX_REPORTED;
		e->rx_flags_seen |= flags;
		e->last_rx_report = tick;
		return 1;
	}
	if (!(flags & ~e->tx_flags_seen) && (__u16)(tick - e->last_tx_report) < trace_interval_ticks())
		return 0;
	e->tx_flags_seen |= flags;
	e->last_tx_report = tick;
	return 1;
}

/* ct_reply returns the (forward) entry of the live connection the packet
 * with tuple k answers, after accounting the packet on it, or NULL when
 * the packet is no reply. For a reply, *report says whether aggregation
 * wants it traced; report may be NULL for callers that never trace. The
 * entry's flags tell whether the reply needs reverse NAT (CT_F_NAT), which
 * is how replies of untranslated connections avoid the NAT lookup. */
static __always_inline struct ct_entry *ct_reply(const struct ct_key *k, int closing, __u8 tcp_flags, __u8 *report)
{
	struct ct_key rev;
	struct ct_entry *e;
	__u64 now;

	ct_reverse(k, &rev);
	e = bpf_map_lookup_elem(&seta_ct, &rev);
	if (!e)
		return NULL;
	now = bpf_ktime_get_ns();
	if (now - e->last_seen > ct_lifetime(&rev, e))
		return NULL;
	e->last_seen = now;
	e->replies++;
	if (closing)
		e->flags |= CT_F_CLOSING;
	if (report)
		*report = trace_aggregated() ? ct_report(e, now, tcp_flags, 1) : 0;
	return e;
}

/* ct_is_reply is ct_reply for callers that only need the answer. */
static __always_inline int ct_is_reply(const struct ct_key *k, int closing, __u8 tcp_flags, __u8 *report)
{
	return ct_reply(k, closing, tcp_flags, report) != NULL;
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

/* A packet that is not a reply: ct_lookup finds the entry of the
 * connection it belongs to (possibly expired) before policy is checked, so
 * policy knows whether the packet opens a connection, and ct_track updates
 * that same entry afterwards without a second lookup. Only packets policy
 * allowed create or refresh an entry. */
struct ct_fwd {
	struct ct_entry *e; /* NULL: no entry */
	__u64 now;
	int   new_conn;     /* no live entry: the packet opens a connection */
	__u8  set_flags;    /* CT_F_* that ct_track sets on the entry (CT_F_NAT) */
	__u8  done;         /* the lookup was made already (by the service
			     * translation, for the translated tuple) */
};

static __always_inline void ct_lookup(const struct ct_key *k, struct ct_fwd *f)
{
	f->e = bpf_map_lookup_elem(&seta_ct, k);
	f->now = bpf_ktime_get_ns();
	f->new_conn = !f->e || f->now - f->e->last_seen > ct_lifetime(k, f->e);
	f->set_flags = 0;
	f->done = 1;
}

/* ct_lookup_once is ct_lookup unless f holds the lookup of k already. */
static __always_inline void ct_lookup_once(const struct ct_key *k, struct ct_fwd *f)
{
	if (!f->done)
		ct_lookup(k, f);
}

/* ct_init fills the entry of a connection that packet opens. The first
 * packet is always traced, so it counts as the forward direction's report. */
static __always_inline void ct_init(struct ct_entry *e, __u64 now, int closing, __u8 tcp_flags)
{
	e->last_seen = now;
	e->packets = 1;
	e->replies = 0;
	e->flags = closing ? CT_F_CLOSING : 0;
	e->tx_flags_seen = tcp_flags & seta_monitor_aggregation_flags;
	e->rx_flags_seen = 0;
	e->pad = 0;
	e->last_tx_report = now >> CT_REPORT_SHIFT;
	e->last_rx_report = 0;
}

/* ct_track records (or refreshes) the connection k opens, as looked up by
 * ct_lookup, and fills tr: the trace reason and, under aggregation, whether
 * the packet is traced (always, when it opens the connection); tr may be
 * NULL for callers that never trace. It returns nonzero when a new entry
 * could not be created. */
static __always_inline int ct_track(const struct ct_key *k, struct ct_fwd *f, int closing,
				    __u8 tcp_flags, struct trace_ctx *tr)
{
	struct ct_entry fresh;
	struct ct_entry *e = f->e;

	if (!f->new_conn && e) {
		e->last_seen = f->now;
		e->packets++;
		if (closing)
			e->flags |= CT_F_CLOSING;
		e->flags |= f->set_flags;
		if (tr) {
			tr->reason = TRACE_REASON_CT_ESTABLISHED;
			tr->report = trace_aggregated() ? ct_report(e, f->now, tcp_flags, 0) : 0;
		}
		return 0;
	}
	if (tr) {
		tr->reason = TRACE_REASON_POLICY;
		tr->report = 1;
	}
	if (e) {
		/* An expired entry: the tuple is reused by a new connection. */
		ct_init(e, f->now, closing, tcp_flags);
		e->flags |= f->set_flags;
		return 0;
	}
	ct_init(&fresh, f->now, closing, tcp_flags);
	fresh.flags |= f->set_flags;
	return bpf_map_update_elem(&seta_ct, k, &fresh, BPF_ANY);
}

#endif /* __SETA_CONNTRACK_H */
