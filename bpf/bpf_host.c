/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The node program, attached once per node.
 *
 *   cil_from_host: ingress of seta_net, i.e. packets the host stack routed
 *                  out of seta_host towards a local endpoint.
 *
 * The node has a /32 (/128) route per endpoint address via seta_host, so
 * everything the node sends or forwards to a local pod (its own traffic, and
 * traffic from other nodes) comes through here. The program finds the
 * endpoint, applies its ingress policy (unless the packet answers a
 * connection the pod opened), rewrites the MACs as the pod's gateway would,
 * counts the packet, traces it (TRACE_TO_LXC, lib/trace.h) and hands it to
 * the pod's eth0 with bpf_redirect_peer. */

#include "lib/common.h"
#include "lib/drop.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/l3.h"
#include "lib/l4.h"
#include "lib/policy.h"
#include "lib/enforce.h"

char __license[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int cil_from_host(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct endpoint_info *ep;
	struct endpoint_key key;
	struct ct_key t = {};
	struct l4_info l = {};
	struct trace_ctx tr = {};
	struct ct_fwd f;
	__u32 len = skb->len;
	__u32 src_id;

	switch (skb->protocol) {
	case bpf_htons(ETH_P_IP): {
		struct iphdr *ip4 = data + ETH_HLEN;

		if ((void *)(ip4 + 1) > data_end)
			return drop_packet(skb, DIR_INGRESS, DROP_INVALID_PACKET);
		if (ipv4_is_multicast_or_broadcast(ip4->daddr))
			return CTX_ACT_OK; /* seta_host's own, not for a pod */
		key_from_ipv4(&key, ip4->daddr);
		t.family = ADDR_FAMILY_IPV4;
		__builtin_memcpy(t.saddr, &ip4->saddr, 4);
		__builtin_memcpy(t.daddr, &ip4->daddr, 4);
		src_id = ipcache_identity4(ip4->saddr);
		if (!(ip4->frag_off & bpf_htons(0x1fff)))
			parse_l4(skb, ETH_HLEN + ip4->ihl * 4, ip4->protocol, 0, &t, &l);
		else
			t.proto = l.proto = ip4->protocol;
		break;
	}
	case bpf_htons(ETH_P_IPV6): {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return drop_packet(skb, DIR_INGRESS, DROP_INVALID_PACKET);
		if (ipv6_is_linklocal_or_multicast(ip6))
			return CTX_ACT_OK; /* seta_host's own MLD/ND, not for a pod */
		key_from_ipv6(&key, &ip6->daddr);
		t.family = ADDR_FAMILY_IPV6;
		__builtin_memcpy(t.saddr, &ip6->saddr, 16);
		__builtin_memcpy(t.daddr, &ip6->daddr, 16);
		src_id = ipcache_identity6(&ip6->saddr);
		parse_l4(skb, ETH_HLEN + sizeof(struct ipv6hdr), ip6->nexthdr, 1, &t, &l);
		break;
	}
	default:
		/* Neighbour discovery and the like from seta_host itself. */
		return CTX_ACT_OK;
	}
	ep = bpf_map_lookup_elem(&seta_endpoints, &key);
	if (!ep) {
		/* A route to an address that is no endpoint (any more): the
		 * agent removes such routes, so this is a race with a delete. */
		return drop_packet(skb, DIR_INGRESS, DROP_UNKNOWN_ENDPOINT);
	}
	if (l.related && ct_live(&l.inner)) {
		/* An ICMP error about a tracked flow: rare, always traced. */
		tr.reason = TRACE_REASON_CT_RELATED;
		tr.report = 1;
	} else if (ct_is_reply(&t, l.closing, l.tcp_flags, &tr.report)) {
		tr.reason = TRACE_REASON_CT_REPLY;
	} else {
		ct_lookup(&t, &f);
		if (src_id == IDENTITY_HOST) {
			/* From the node itself: the node's egress (host) policy. */
			struct endpoint_info host = { .id = HOST_EP_ID, .identity = IDENTITY_HOST };

			if (enforce(skb, &host, DIR_EGRESS, ep->identity, src_id, ep->identity, &l, &t, f.new_conn) < 0)
				return CTX_ACT_DROP;
		}
		if (enforce(skb, ep, DIR_INGRESS, src_id, src_id, ep->identity, &l, &t, f.new_conn) < 0)
			return CTX_ACT_DROP;
		if (track(skb, DIR_INGRESS, ep->id, src_id, ep->identity, &l, &t, &f, &tr) < 0)
			return CTX_ACT_DROP;
	}
	if (rewrite_l2(skb, ep) < 0)
		return drop_packet(skb, DIR_INGRESS, DROP_INVALID_PACKET);
	account_endpoint(ep->id, len, DIR_INGRESS);
	update_metrics(len, DIR_INGRESS, REASON_FORWARDED);
	emit_trace(skb, TRACE_TO_LXC, &tr, DIR_INGRESS, ep->id, src_id, ep->identity, ep->ifindex, &t, &l);
	int ret = bpf_redirect_peer(ep->ifindex, 0);
	if (ret != CTX_ACT_REDIRECT)
		update_metrics(len, DIR_INGRESS, DROP_UNROUTABLE);
	return ret;
}
