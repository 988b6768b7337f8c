/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Datapath events for user space (flows, drop reasons, policy verdicts),
 * through one ring buffer. Go mirror: pkg/datapath/bpf (generated). */
#ifndef __SETA_EVENTS_H
#define __SETA_EVENTS_H

#include "common.h"
#include "conntrack.h"

enum event_type {
	EVENT_DROP           = 1, /* a packet was dropped; reason says why */
	EVENT_POLICY_VERDICT = 2, /* a policy decision that did not drop (audit) */
};

struct datapath_event {
	__u64 timestamp;    /* bpf_ktime_get_ns */
	__u8  type;         /* enum event_type */
	__u8  reason;       /* enum drop_reason */
	__u8  dir;          /* enum traffic_dir, of the endpoint that decided */
	__u8  audit;        /* 1 when audit mode let the packet pass */
	__u16 ep_id;        /* endpoint whose policy decided (0: none) */
	__u16 pad;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 cookie;       /* policy entry cookie (0: no rule matched) */
	__u32 ifindex;
	__u32 len;
	__be16 l4_port;     /* the port policy matched on; ICMP: the type */
	__u8  tcp_flags;    /* flags byte of the TCP header */
	__u8  pad2;
	struct ct_key tuple;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
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

static __always_inline void emit_event(struct __sk_buff *skb, __u8 type, __u8 reason, __u8 dir,
				       __u8 audit, __u16 ep_id, __u32 src_id, __u32 dst_id,
				       __u32 cookie, const struct ct_key *tuple, __be16 l4_port, __u8 tcp_flags)
{
	struct datapath_event ev = {
		.timestamp = bpf_ktime_get_ns(), .type = type, .reason = reason, .dir = dir,
		.audit = audit, .ep_id = ep_id, .src_identity = src_id, .dst_identity = dst_id,
		.cookie = cookie, .ifindex = skb->ifindex, .len = skb->len,
		.l4_port = l4_port, .tcp_flags = tcp_flags,
	};

	__builtin_memcpy(&ev.tuple, tuple, sizeof(ev.tuple));
	if (bpf_ringbuf_output(&seta_events, &ev, sizeof(ev), 0)) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&seta_events_lost, &zero);

		if (lost)
			(*lost)++;
	}
}

#endif /* __SETA_EVENTS_H */
