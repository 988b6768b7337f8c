/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Datapath events for user space (flows, drop reasons, policy verdicts),
 * through one ring buffer. Go mirror: pkg/datapath/bpf (generated). */
#ifndef __SETA_EVENTS_H
#define __SETA_EVENTS_H

#include "common.h"
#include "conntrack.h"
#include "l4.h"
#include "policy.h"
#include "trace.h"

enum event_type {
	EVENT_DROP           = 1, /* a packet was dropped; reason says why */
	EVENT_POLICY_VERDICT = 2, /* a policy decision that did not drop: allowed
				   * (reason 0, on a connection's first packet) or
				   * denied in audit mode (audit 1) */
	EVENT_TRACE          = 3, /* a forwarded packet (lib/trace.h) */
};

/* One event. The size is part of the wire format user space reads; fields
 * only ever take over padding. */
struct datapath_event {
	__u64 timestamp;    /* bpf_ktime_get_ns */
	__u8  type;         /* enum event_type */
	__u8  reason;       /* drops and verdicts: enum drop_reason (0: allowed);
			     * traces: enum trace_reason */
	__u8  dir;          /* enum traffic_dir, of the endpoint that decided
			     * (traces: of ep_id: ingress for TO_LXC, egress for TO_STACK) */
	__u8  audit;        /* 1 when audit mode let the packet pass */
	__u16 ep_id;        /* endpoint whose policy decided (0: none); traces:
			     * the receiver (TO_LXC) or the sender (TO_STACK) */
	__u8  obs_point;    /* traces: enum trace_point */
	__u8  match_type;   /* verdicts and drops: enum policy_match_type of the
			     * entry that matched (0: none matched) */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 cookie;       /* policy entry cookie (0: no rule matched) */
	__u32 ifindex;      /* the device the packet arrived on; TO_LXC traces:
			     * the receiver's host-side veth, as Cilium reports */
	__u32 len;
	__be16 l4_port;     /* the port policy matched on; ICMP: the type */
	__u8  tcp_flags;    /* flags byte of the TCP header */
	__u8  pad2;
	struct ct_key tuple;
};

/* The ring's size in bytes: about 11,900 events (80 bytes and the ring's
 * 8-byte header each), 0.48 s of events at 25,000/s. */
#define EVENTS_RING_BYTES (1 << 20)

/* Wakeup batching. A wakeup of the reader per event (the ring's default
 * whenever the reader has caught up, i.e. nearly always at moderate rates)
 * costs the agent an epoll return and a Go scheduler round trip per event,
 * most of its CPU at 20,000 events/s. So events are submitted without a
 * wakeup, and the reader polls the ring on a short timer (monitor.PollInterval
 * in pkg/datapath/monitor bounds the delivery latency of a lone event); only
 * once the unread data passes this watermark does an event force a wakeup,
 * so a burst is drained long before the ring fills and losses stay where
 * they were. An eighth of the ring: about 1,490 events, 60 ms at 25,000/s. */
#define EVENTS_WAKEUP_BYTES (EVENTS_RING_BYTES / 8)

/* Only the events that find the unread data within this span above the
 * watermark force the wakeup (see events_wakeup_flag): 64 events' worth. */
#define EVENTS_WAKEUP_SPAN (64 * (sizeof(struct datapath_event) + 8))

/* seta_events_enabled is 0 when nothing reads the ring (Hubble off, set by
 * pkg/datapath/loader): the programs then emit no events at all, rather
 * than fill the ring once and pay a failed reserve per event after that.
 * Drops are still counted in the metrics maps. */
const volatile __u8 seta_events_enabled = 1;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_events SEC(".maps");

/* Events that did not fit in the ring, per CPU: user space reports them, so
 * a loss is never silent. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_events_lost SEC(".maps");

/* events_wakeup_flag picks the submit flag of an event (see
 * EVENTS_WAKEUP_BYTES). The unread data counts reserved records too, this
 * one included. The events that find it within EVENTS_WAKEUP_SPAN above
 * the watermark force the wakeup, not just the one that crosses it: with
 * several CPUs submitting, "the one that crosses" can be missed. Events
 * beyond the span do not: a reader that a wakeup did not bring is not
 * there or is busy, and a forced wakeup per event (an irq_work, ~6 us in a
 * VM) would then be paid for nothing; the reader's poll timer still finds
 * the data. */
static __always_inline __u64 events_wakeup_flag(void)
{
	__u64 unread = bpf_ringbuf_query(&seta_events, BPF_RB_AVAIL_DATA);

	if (unread >= EVENTS_WAKEUP_BYTES && unread < EVENTS_WAKEUP_BYTES + EVENTS_WAKEUP_SPAN)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/* emit_event writes one event straight into the ring (reserve and submit:
 * no copy through the stack, whose 512 bytes the callers need). Every byte
 * is written, padding included, since ring memory is not zeroed. */
static __always_inline void emit_event(struct __sk_buff *skb, __u8 type, __u8 reason, __u8 dir,
				       __u8 audit, __u8 obs_point, __u8 match_type, __u16 ep_id,
				       __u32 src_id, __u32 dst_id, __u32 cookie, __u32 ifindex,
				       const struct ct_key *tuple, const struct l4_info *l)
{
	struct datapath_event *ev;

	if (!seta_events_enabled)
		return;
	ev = bpf_ringbuf_reserve(&seta_events, sizeof(*ev), 0);
	if (!ev) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&seta_events_lost, &zero);

		if (lost)
			(*lost)++;
		return;
	}
	ev->timestamp = bpf_ktime_get_ns();
	ev->type = type;
	ev->reason = reason;
	ev->dir = dir;
	ev->audit = audit;
	ev->ep_id = ep_id;
	ev->obs_point = obs_point;
	ev->match_type = match_type;
	ev->src_identity = src_id;
	ev->dst_identity = dst_id;
	ev->cookie = cookie;
	ev->ifindex = ifindex;
	ev->len = skb->len;
	ev->l4_port = l->dport;
	ev->tcp_flags = l->tcp_flags;
	ev->pad2 = 0;
	__builtin_memcpy(&ev->tuple, tuple, sizeof(ev->tuple));
	bpf_ringbuf_submit(ev, events_wakeup_flag());
}

/* emit_policy_event reports a drop or a policy verdict of endpoint ep_id. */
static __always_inline void emit_policy_event(struct __sk_buff *skb, __u8 type, __u8 reason, __u8 dir,
					      __u8 audit, __u8 match_type, __u16 ep_id, __u32 src_id,
					      __u32 dst_id, __u32 cookie, const struct ct_key *t,
					      const struct l4_info *l)
{
	emit_event(skb, type, reason, dir, audit, 0, match_type, ep_id, src_id, dst_id, cookie,
		   skb->ifindex, t, l);
}

/* emit_trace reports a forwarded packet at obs_point when the configuration
 * (and, under aggregation, conntrack) wants it traced. */
static __always_inline void emit_trace(struct __sk_buff *skb, __u8 obs_point, const struct trace_ctx *tr,
				       __u8 dir, __u16 ep_id, __u32 src_id, __u32 dst_id, __u32 ifindex,
				       const struct ct_key *t, const struct l4_info *l)
{
	if (!trace_wanted(tr))
		return;
	emit_event(skb, EVENT_TRACE, tr->reason, dir, 0, obs_point, POLICY_MATCH_NONE, ep_id, src_id,
		   dst_id, 0, ifindex, t, l);
}

#endif /* __SETA_EVENTS_H */
