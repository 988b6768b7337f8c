/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Counter updates. Maps are per CPU, so plain adds are race free. */
#ifndef __SETA_METRICS_H
#define __SETA_METRICS_H

#include "maps.h"
#include "drop.h"

static __always_inline void update_metrics(__u32 bytes, __u8 dir, __u8 reason)
{
	struct metrics_key key = { .reason = reason, .dir = dir };
	struct metrics_value *val, init = { .packets = 1, .bytes = bytes };

	val = bpf_map_lookup_elem(&seta_metrics, &key);
	if (val) {
		val->packets++;
		val->bytes += bytes;
		return;
	}
	/* A full map loses this sample; the agent reports map pressure. */
	bpf_map_update_elem(&seta_metrics, &key, &init, BPF_NOEXIST);
}

static __always_inline void account_endpoint(__u32 id, __u32 bytes, __u8 dir)
{
	struct endpoint_stats *st, init = {};

	st = bpf_map_lookup_elem(&seta_ep_stats, &id);
	if (!st) {
		/* The agent creates the entry with the endpoint; this only runs
		 * if it was removed underneath a live endpoint. */
		bpf_map_update_elem(&seta_ep_stats, &id, &init, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&seta_ep_stats, &id);
		if (!st)
			return;
	}
	if (dir == DIR_INGRESS) {
		st->rx_packets++;
		st->rx_bytes += bytes;
	} else {
		st->tx_packets++;
		st->tx_bytes += bytes;
	}
}

static __always_inline int drop_packet(struct __sk_buff *skb, __u8 dir, __u8 reason)
{
	update_metrics(skb->len, dir, reason);
	return CTX_ACT_DROP;
}

#endif /* __SETA_METRICS_H */
