/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Counter updates. Maps are per CPU, so plain adds are race free; both are
 * arrays, whose lookups the verifier inlines. */
#ifndef __SETA_METRICS_H
#define __SETA_METRICS_H

#include "maps.h"
#include "drop.h"

static __always_inline void update_metrics(__u32 bytes, __u8 dir, __u8 reason)
{
	__u32 idx = metrics_index(reason, dir);
	struct metrics_value *val = bpf_map_lookup_elem(&seta_metrics, &idx);

	if (val) {
		val->packets++;
		val->bytes += bytes;
	}
}

/* account_endpoint counts a packet on endpoint id's slot; every 16-bit ID
 * has one. */
static __always_inline void account_endpoint(__u16 id, __u32 bytes, __u8 dir)
{
	__u32 key = id;
	struct endpoint_stats *st = bpf_map_lookup_elem(&seta_ep_stats, &key);

	if (!st)
		return;
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
