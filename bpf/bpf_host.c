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
 * connection the pod opened: then, if that connection was translated from a
 * service address, the reply's source becomes the service again; or
 * continues a connection allowed under the current policy revision), rewrites
 * the MACs as the pod's gateway would, counts the packet, traces it
 * (TRACE_TO_LXC, lib/trace.h) and hands it to the pod's eth0 with
 * bpf_redirect_peer (lib/deliver.h, shared with NodePort on the devices). */

#include "lib/common.h"
#include "lib/drop.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/l3.h"
#include "lib/l4.h"
#include "lib/policy.h"
#include "lib/enforce.h"
#include "lib/deliver.h"

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
	struct ct_state f = {};
	__u32 l4off;

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
		l4off = ETH_HLEN + ip4->ihl * 4;
		if (!(ip4->frag_off & bpf_htons(0x1fff)))
			parse_l4(skb, l4off, ip4->protocol, 0, &t, &l);
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
		l4off = ETH_HLEN + sizeof(struct ipv6hdr);
		parse_l4(skb, l4off, ip6->nexthdr, 1, &t, &l);
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
	/* The source's identity (an ipcache lookup) is looked up only when
	 * policy or a trace needs it. */
	return to_endpoint(skb, ep, &t, &l, 0, l4off, &f);
}
