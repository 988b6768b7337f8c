/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The host firewall, attached to the node's own network devices when the
 * agent runs with --enable-host-firewall.
 *
 *   cil_from_netdev: ingress of a node device, i.e. packets arriving from
 *                    the network.
 *   cil_to_netdev:   egress of a node device, i.e. packets leaving to the
 *                    network.
 *
 * Only traffic of the node itself is checked here, against the node's
 * policy (endpoint ID 0: CiliumClusterwideNetworkPolicy nodeSelector rules):
 * packets addressed to one of the node's addresses on the way in, packets
 * sent from one on the way out. Traffic the node forwards for its pods is
 * checked by the pods' own programs. Replies of tracked connections pass. */

#include "lib/common.h"
#include "lib/drop.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/l3.h"
#include "lib/l4.h"
#include "lib/policy.h"
#include "lib/enforce.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* host_packet parses a packet into t/l and returns the identities of its
 * ends; it returns 0 for packets that are not IP. */
static __always_inline int host_packet(struct __sk_buff *skb, struct ct_key *t, struct l4_info *l,
				       __u32 *src_id, __u32 *dst_id)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	switch (skb->protocol) {
	case bpf_htons(ETH_P_IP): {
		struct iphdr *ip4 = data + ETH_HLEN;

		if ((void *)(ip4 + 1) > data_end)
			return 0;
		t->family = ADDR_FAMILY_IPV4;
		__builtin_memcpy(t->saddr, &ip4->saddr, 4);
		__builtin_memcpy(t->daddr, &ip4->daddr, 4);
		*src_id = ipcache_identity4(ip4->saddr);
		*dst_id = ipcache_identity4(ip4->daddr);
		if (!(ip4->frag_off & bpf_htons(0x1fff)))
			parse_l4(skb, ETH_HLEN + ip4->ihl * 4, ip4->protocol, 0, t, l);
		else
			t->proto = l->proto = ip4->protocol;
		return 1;
	}
	case bpf_htons(ETH_P_IPV6): {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		t->family = ADDR_FAMILY_IPV6;
		__builtin_memcpy(t->saddr, &ip6->saddr, 16);
		__builtin_memcpy(t->daddr, &ip6->daddr, 16);
		*src_id = ipcache_identity6(&ip6->saddr);
		*dst_id = ipcache_identity6(&ip6->daddr);
		parse_l4(skb, ETH_HLEN + sizeof(struct ipv6hdr), ip6->nexthdr, 1, t, l);
		return 1;
	}
	}
	return 0;
}

static __always_inline int host_policy(struct __sk_buff *skb, __u8 dir)
{
	struct endpoint_info host = { .id = HOST_EP_ID, .identity = IDENTITY_HOST };
	struct ct_key t = {};
	struct l4_info l = {};
	struct ct_fwd f;
	__u32 src_id, dst_id, peer;

	if (!host_packet(skb, &t, &l, &src_id, &dst_id))
		return CTX_ACT_OK;
	if (dir == DIR_INGRESS) {
		if (dst_id != IDENTITY_HOST)
			return CTX_ACT_OK; /* forwarded: the pod's programs decide */
		peer = src_id;
	} else {
		if (src_id != IDENTITY_HOST)
			return CTX_ACT_OK;
		peer = dst_id;
	}
	/* No trace events here (nothing is forwarded, only checked), so no
	 * report decision is asked of conntrack. */
	if ((l.related && ct_live(&l.inner)) || ct_is_reply(&t, l.closing, l.tcp_flags, NULL))
		return CTX_ACT_OK;
	ct_lookup(&t, &f);
	if (enforce(skb, &host, dir, peer, src_id, dst_id, &l, &t, f.new_conn) < 0)
		return CTX_ACT_DROP;
	if (track(skb, dir, HOST_EP_ID, src_id, dst_id, &l, &t, &f, NULL) < 0)
		return CTX_ACT_DROP;
	return CTX_ACT_OK;
}

SEC("tc")
int cil_from_netdev(struct __sk_buff *skb)
{
	return host_policy(skb, DIR_INGRESS);
}

SEC("tc")
int cil_to_netdev(struct __sk_buff *skb)
{
	return host_policy(skb, DIR_EGRESS);
}
