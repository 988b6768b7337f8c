/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking: one entry per connection in seta_ct2 (LRU), found
 * with one lookup whichever way a packet goes.
 *
 * The key is the connection's tuple with its two sides in a fixed order
 * (struct ct_conn_key: side a, then side b), so a packet and its replies
 * compute the same key. The entry records which side opened the
 * connection (CT_F_B_OPENED), and a packet of a live connection is a reply
 * iff it comes from the other side. That one lookup tells a reply from a
 * forward packet, is the entry ct_track updates, and answers ct_live for
 * the packet an ICMP error quotes.
 *
 * The order of the sides: a side is its address (16 bytes, IPv4 in the
 * first four and the rest zero) followed by its port (2 bytes), both in
 * network byte order; the side that is smaller as a byte string (memcmp)
 * is side a. Equal sides (a packet to its own address and port) keep the
 * packet's source as side a, so such a connection never sees a reply. ICMP
 * echo has no ports: the identifier stands for the requester's port and
 * the responder's is 0 (lib/l4.h reads it into sport of a request and into
 * dport of a reply), so both directions give the same key; other ICMP and
 * protocols without ports have 0 on both sides and are ordered by address.
 * Go mirror of the order: pkg/datapath/maps (CTConnKeyOf).
 *
 * A forward packet of a live connection skips policy while the entry
 * carries the current policy revision (seta_policy_rev, lib/enforce.h); any
 * other packet that is not a reply is checked, and a packet policy allows
 * records the revision it was checked under.
 * Go mirror: pkg/datapath/bpf (LxcCtConnKey, LxcCtEntry, LxcCtFlags,
 * LxcCtLifetime: generated). */
#ifndef __SETA_CONNTRACK_H
#define __SETA_CONNTRACK_H

#include "common.h"
#include "trace.h"

/* A packet's tuple, as it travels: source first. Events carry it
 * (lib/events.h), and the service NAT keys mirror it (lib/lb_nat.h). */
struct ct_key {
	__u8   saddr[16];
	__u8   daddr[16];
	__be16 sport; /* ICMP echo: the identifier; 0 for replies, see tuple */
	__be16 dport;
	__u8   proto;
	__u8   family;
	__u8   pad[2];
};

/* The key of a connection in seta_ct2: its tuple, sides in the order
 * above. The layout is struct ct_key's, side a where the source is. */
struct ct_conn_key {
	__u8   addr_a[16];
	__u8   addr_b[16];
	__be16 port_a;
	__be16 port_b;
	__u8   proto;
	__u8   family;
	__u8   pad[2];
};

_Static_assert(sizeof(struct ct_conn_key) == sizeof(struct ct_key) &&
		       __builtin_offsetof(struct ct_conn_key, port_a) == __builtin_offsetof(struct ct_key, sport) &&
		       __builtin_offsetof(struct ct_conn_key, proto) == __builtin_offsetof(struct ct_key, proto),
	       "ct_conn_key mirrors ct_key");

/* Flags of a connection, in ct_entry.flags. Never renumber: pinned
 * entries carry them across agent upgrades. */
enum ct_flags {
	CT_F_CLOSING     = 0x1, /* a FIN or RST was seen */
	CT_F_RX_REPORTED = 0x2, /* a reply was traced (monitor aggregation) */
	CT_F_NAT         = 0x4, /* a service translated the connection: its
				 * replies are restored through seta_lb_nat
				 * (lib/lb_nat.h); the entry is keyed by the
				 * translated tuple */
	CT_F_B_OPENED    = 0x8, /* side b of the key opened the connection */
};

struct ct_entry {
	__u64 last_seen;      /* bpf_ktime_get_ns */
	__u64 packets;        /* from the opener ("forward", "tx") */
	__u64 replies;        /* to the opener ("reply", "rx") */
	__u8  flags;          /* enum ct_flags */
	__u8  tx_flags_seen;  /* TCP flags traced in the forward direction (masked) */
	__u8  rx_flags_seen;  /* TCP flags traced in the reply direction (masked) */
	__u8  pad;
	__u16 last_tx_report; /* forward direction's last trace, CT_REPORT_SHIFT ticks, wrapping */
	__u16 last_rx_report; /* reply direction's last trace, likewise */
	__u32 policy_rev;     /* the policy revision the last forward packet
			       * policy checked was allowed under; 0: none, the
			       * next forward packet is checked */
	__u32 pad2;
};

/* The name carries the layout's generation: seta_ct held entries keyed by
 * the opening packet's tuple, without policy_rev. An agent that finds a
 * pinned seta_ct migrates its live connections into this map and removes
 * the old pin (pkg/datapath/loader), so the two never get mixed up. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_conn_key);
	__type(value, struct ct_entry);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_ct2 SEC(".maps");

/* Lifetimes, in seconds, after the last packet. */
enum ct_lifetime {
	CT_LIFETIME_TCP     = 21600,
	CT_LIFETIME_CLOSING = 10,
	CT_LIFETIME_NONTCP  = 60,
};

#define NSEC_PER_SEC 1000000000ULL

static __always_inline __u64 ct_lifetime(__u8 proto, const struct ct_entry *e)
{
	if (proto != IPPROTO_TCP)
		return CT_LIFETIME_NONTCP * NSEC_PER_SEC;
	if (e->flags & CT_F_CLOSING)
		return CT_LIFETIME_CLOSING * NSEC_PER_SEC;
	return CT_LIFETIME_TCP * NSEC_PER_SEC;
}

/* ct_src_is_b reports whether t's source side sorts after its destination
 * side, i.e. is side b of the connection's key. Addresses compare as four
 * big-endian words, which is memcmp order. */
static __always_inline int ct_src_is_b(const struct ct_key *t)
{
	const __u32 *s = (const __u32 *)t->saddr, *d = (const __u32 *)t->daddr;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (s[i] != d[i])
			return bpf_ntohl(s[i]) > bpf_ntohl(d[i]);
	}
	return bpf_ntohs(t->sport) > bpf_ntohs(t->dport);
}

/* ct_conn_key_of fills k, the key of the connection t belongs to, and
 * returns whether t's source is side b. (A copy, then a swap in place:
 * selecting the source of each field instead costs the compiler registers
 * and stack.) */
static __always_inline int ct_conn_key_of(const struct ct_key *t, struct ct_conn_key *k)
{
	int src_b = ct_src_is_b(t);

	__builtin_memcpy(k, t, sizeof(*k));
	k->pad[0] = k->pad[1] = 0;
	if (src_b) {
		__u32 *a = (__u32 *)k->addr_a, *b = (__u32 *)k->addr_b;
		__be16 p = k->port_a;

#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u32 w = a[i];

			a[i] = b[i];
			b[i] = w;
		}
		k->port_a = k->port_b;
		k->port_b = p;
	}
	return src_b;
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

/* A packet's conntrack lookup (ct_lookup): the connection's entry and what
 * it says about the packet, before policy; ct_track updates that same
 * entry afterwards without a second lookup. Only packets policy allowed
 * create or refresh an entry. */
struct ct_state {
	struct ct_entry *e; /* the connection's entry, possibly expired; NULL: none */
	__u64 now;          /* when the lookup was made; 0: not made yet (the
			     * service translation makes it for the translated
			     * tuple, see ct_lookup_once) */
	__u32 allowed_rev;  /* policy allowed the packet under this revision,
			     * which ct_track records; 0: nothing to record */
	__u8  new_conn;     /* no live entry: the packet opens a connection */
	__u8  reply;        /* a live entry, and the packet comes from the side that did not open it */
	__u8  src_b;        /* the packet's source is side b of the key */
	__u8  set_flags;    /* CT_F_* that ct_track sets on the entry (CT_F_NAT) */
};

#define CT_TCP_SYN 0x02
#define CT_TCP_ACK 0x10

/* ct_reopens reports whether a packet with tcp_flags opens a new TCP
 * connection on the live entry e: a bare SYN (no ACK) on a connection that
 * is closing. Clients reuse ports within the closing lifetime (a busy
 * client cycles through its ephemeral ports in seconds), and the new
 * connection must be one: checked against policy (also when it is the
 * former responder that opens it, which the entry would otherwise take for
 * a reply), reported as a verdict, and traced as new. */
static __always_inline int ct_reopens(__u8 proto, __u8 tcp_flags, const struct ct_entry *e)
{
	return proto == IPPROTO_TCP && (e->flags & CT_F_CLOSING) &&
	       (tcp_flags & (CT_TCP_SYN | CT_TCP_ACK)) == CT_TCP_SYN;
}

/* ct_lookup looks up the connection of the packet whose tuple is t and
 * whose TCP flags (0 for other protocols) are tcp_flags. */
static __always_inline void ct_lookup(const struct ct_key *t, __u8 tcp_flags, struct ct_state *f)
{
	struct ct_conn_key k;
	struct ct_entry *e;

	f->src_b = ct_conn_key_of(t, &k);
	e = bpf_map_lookup_elem(&seta_ct2, &k);
	f->e = e;
	f->now = bpf_ktime_get_ns();
	f->new_conn = 1;
	f->reply = 0;
	if (e && f->now - e->last_seen <= ct_lifetime(t->proto, e) && !ct_reopens(t->proto, tcp_flags, e)) {
		f->new_conn = 0;
		f->reply = f->src_b != !!(e->flags & CT_F_B_OPENED);
	}
	f->set_flags = 0;
	f->allowed_rev = 0;
}

/* ct_lookup_once is ct_lookup unless f holds the lookup of t already
 * (bpf_ktime_get_ns counts from boot, so a made lookup's time is never 0). */
static __always_inline void ct_lookup_once(const struct ct_key *t, __u8 tcp_flags, struct ct_state *f)
{
	if (!f->now)
		ct_lookup(t, tcp_flags, f);
}

/* ct_reply_seen accounts a reply (f->reply) on its connection. *report
 * says whether aggregation wants it traced; report may be NULL for callers
 * that never trace. The entry's flags tell whether the reply needs reverse
 * NAT (CT_F_NAT), which is how replies of untranslated connections avoid
 * the NAT lookup. */
static __always_inline void ct_reply_seen(const struct ct_state *f, int closing, __u8 tcp_flags, __u8 *report)
{
	struct ct_entry *e = f->e;

	if (!e)
		return;
	e->last_seen = f->now;
	e->replies++;
	if (closing)
		e->flags |= CT_F_CLOSING;
	if (report)
		*report = trace_aggregated() ? ct_report(e, f->now, tcp_flags, 1) : 0;
}

/* ct_live_key reports whether t, in either direction, is a live
 * connection; k is room for the key. */
static __always_inline int ct_live_key(const struct ct_key *t, struct ct_conn_key *k)
{
	struct ct_entry *e;

	ct_conn_key_of(t, k);
	e = bpf_map_lookup_elem(&seta_ct2, k);
	return e && bpf_ktime_get_ns() - e->last_seen <= ct_lifetime(t->proto, e);
}

/* ct_live is ct_live_key with the key on the stack. */
static __always_inline int ct_live(const struct ct_key *t)
{
	struct ct_conn_key k;

	return ct_live_key(t, &k);
}

/* ct_init fills the entry of a connection that the packet f describes
 * opens. The first packet is always traced, so it counts as the forward
 * direction's report. */
static __always_inline void ct_init(struct ct_entry *e, const struct ct_state *f, int closing, __u8 tcp_flags)
{
	e->last_seen = f->now;
	e->packets = 1;
	e->replies = 0;
	e->flags = (closing ? CT_F_CLOSING : 0) | (f->src_b ? CT_F_B_OPENED : 0) | f->set_flags;
	e->tx_flags_seen = tcp_flags & seta_monitor_aggregation_flags;
	e->rx_flags_seen = 0;
	e->pad = 0;
	e->last_tx_report = f->now >> CT_REPORT_SHIFT;
	e->last_rx_report = 0;
	e->policy_rev = f->allowed_rev;
	e->pad2 = 0;
}

/* ct_create adds the entry of the connection t opens. A call of its own:
 * only a connection's first packet needs the key and entry on the stack. */
static __subprog int ct_create(const struct ct_key *t, const struct ct_state *f, int closing, __u8 tcp_flags)
{
	struct ct_conn_key k;
	struct ct_entry fresh;

	ct_conn_key_of(t, &k);
	ct_init(&fresh, f, closing, tcp_flags);
	return bpf_map_update_elem(&seta_ct2, &k, &fresh, BPF_ANY);
}

/* ct_track records (or refreshes) the connection t opens or continues, as
 * looked up by ct_lookup, with the policy revision the packet was allowed
 * under (if it was checked), and fills tr: the trace reason and, under
 * aggregation, whether the packet is traced (always, when it opens the
 * connection); tr may be NULL for callers that never trace. It returns
 * nonzero when a new entry could not be created. */
static __always_inline int ct_track(const struct ct_key *t, struct ct_state *f, int closing,
				    __u8 tcp_flags, struct trace_ctx *tr)
{
	struct ct_entry *e = f->e;

	if (!f->new_conn && e) {
		e->last_seen = f->now;
		e->packets++;
		if (closing)
			e->flags |= CT_F_CLOSING;
		e->flags |= f->set_flags;
		if (f->allowed_rev)
			e->policy_rev = f->allowed_rev;
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
		/* An expired entry, or a closing one that a SYN reopens
		 * (ct_reopens): the connection's key is reused by a new
		 * connection, which this packet's side opens. */
		ct_init(e, f, closing, tcp_flags);
		return 0;
	}
	return ct_create(t, f, closing, tcp_flags);
}

#endif /* __SETA_CONNTRACK_H */
