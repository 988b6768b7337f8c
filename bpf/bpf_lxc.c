/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The endpoint program, attached to the host-side veth of every endpoint.
 *
 *   cil_from_container: ingress of the host-side veth, i.e. packets leaving
 *                       the container.
 *
 * There is deliberately no program on the veth's egress: the node routes
 * traffic for pods through seta_host, and bpf_host.c delivers it from
 * seta_net. Each tcx attachment costs an RCU grace period under RTNL, so one
 * program per endpoint instead of two halves the cost of creating a pod.
 *
 * Every packet that is not a reply of a tracked connection is checked
 * against the egress policy of the sending endpoint and, when the receiver
 * is a local endpoint, its ingress policy, or the node's own ingress policy
 * when the receiver is the node (lib/enforce.h).
 *
 * A forwarded packet is traced (lib/trace.h) where it leaves: TRACE_TO_LXC
 * when delivered to a local endpoint, TRACE_TO_STACK when passed to the
 * stack. Traffic the program passes without looking at it (ARP, IPv6
 * link-local and multicast: the pod's link-layer chatter with its gateway,
 * before source validation, never tracked) is not traced.
 *
 * Packets between two endpoints of this node never reach the host stack:
 * from-container rewrites the MACs, decrements TTL and hands the packet
 * straight to the destination's eth0 with bpf_redirect_peer. Everything else
 * (the node itself, unknown destinations, ARP, IPv6 link-local traffic) is
 * passed to the stack, which routes or drops it as its tables say. */

#include "lib/common.h"
#include "lib/drop.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/l3.h"
#include "lib/l4.h"
#include "lib/policy.h"
#include "lib/enforce.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* The enums shared with Go are only used as constants, and the event struct
 * only as ring buffer payload, which leaves them out of BTF; this read-only
 * anchor keeps them in, so bpf2go generates the Go mirror from this one
 * source. */
struct shared_types {
	enum drop_reason reason;
	enum addr_family family;
	enum traffic_dir dir;
	enum event_type event;
	enum trace_point obs;
	enum trace_reason trace;
	enum policy_match_type match;
	enum monitor_aggregation aggregation;
	struct datapath_event ev;
};
const volatile struct shared_types seta_shared_types __attribute__((used));

/* Delivers to a local endpoint, traced as TRACE_TO_LXC. */
static __always_inline int deliver_local(struct __sk_buff *skb, const struct endpoint_info *src,
					 const struct endpoint_info *dst, const struct ct_key *t,
					 const struct l4_info *l, const struct trace_ctx *tr)
{
	__u32 len = skb->len;

	if (rewrite_l2(skb, dst) < 0)
		return drop_packet(skb, DIR_EGRESS, DROP_INVALID_PACKET);
	account_endpoint(dst->id, len, DIR_INGRESS);
	update_metrics(len, DIR_EGRESS, REASON_FORWARDED);
	emit_trace(skb, TRACE_TO_LXC, tr, DIR_INGRESS, dst->id, src->identity, dst->identity, dst->ifindex, t, l);
	/* bpf_redirect_peer moves the packet into the peer's netns ingress
	 * without a backlog queue round trip. It returns TC_ACT_SHOT when the
	 * target is not a veth whose peer lives in another netns. */
	int ret = bpf_redirect_peer(dst->ifindex, 0);
	if (ret != CTX_ACT_REDIRECT)
		update_metrics(len, DIR_EGRESS, DROP_UNROUTABLE);
	return ret;
}

/* to_stack passes a packet to the host stack, traced as TRACE_TO_STACK. */
static __always_inline int to_stack(struct __sk_buff *skb, const struct endpoint_info *src, __u32 dst_id,
				    const struct ct_key *t, const struct l4_info *l, const struct trace_ctx *tr)
{
	update_metrics(skb->len, DIR_EGRESS, REASON_FORWARDED);
	emit_trace(skb, TRACE_TO_STACK, tr, DIR_EGRESS, src->id, src->identity, dst_id, skb->ifindex, t, l);
	return CTX_ACT_OK;
}

/* policy_packet applies policy to a packet leaving src: replies of tracked
 * connections pass; anything else needs src's egress policy to allow the
 * destination and, for a local destination, dst's ingress policy to allow
 * src. It fills tr with the packet's conntrack state for tracing. Returns
 * -1 when the packet was dropped. */
static __always_inline int policy_packet(struct __sk_buff *skb, const struct endpoint_info *src,
					 const struct endpoint_info *dst, __u32 dst_id,
					 const struct ct_key *t, const struct l4_info *l,
					 struct trace_ctx *tr)
{
	struct ct_fwd f;

	/* ICMP errors about a tracked flow belong to it (rare, and each one
	 * is news: always traced); other packets that answer a tracked
	 * connection are replies. */
	if (l->related && ct_live(&l->inner)) {
		tr->reason = TRACE_REASON_CT_RELATED;
		tr->report = 1;
		return 0;
	}
	if (ct_is_reply(t, l->closing, l->tcp_flags, &tr->report)) {
		tr->reason = TRACE_REASON_CT_REPLY;
		return 0;
	}
	ct_lookup(t, &f);
	if (enforce(skb, src, DIR_EGRESS, dst_id, src->identity, dst_id, l, t, f.new_conn) < 0)
		return -1;
	if (dst && enforce(skb, dst, DIR_INGRESS, src->identity, src->identity, dst_id, l, t, f.new_conn) < 0)
		return -1;
	if (!dst && dst_id == IDENTITY_HOST) {
		/* To the node itself: the node's ingress (host) policy. */
		struct endpoint_info host = { .id = HOST_EP_ID, .identity = IDENTITY_HOST };

		if (enforce(skb, &host, DIR_INGRESS, src->identity, src->identity, dst_id, l, t, f.new_conn) < 0)
			return -1;
	}
	return track(skb, DIR_EGRESS, src->id, src->identity, dst_id, l, t, &f, tr);
}

static __always_inline int from_container_ipv4(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip4 = data + ETH_HLEN;
	struct endpoint_info *src, *dst;
	struct endpoint_key key;

	if ((void *)(ip4 + 1) > data_end)
		return drop_packet(skb, DIR_EGRESS, DROP_INVALID_PACKET);

	/* Source validation: only the endpoint's own address may leave it. */
	key_from_ipv4(&key, ip4->saddr);
	src = bpf_map_lookup_elem(&seta_endpoints, &key);
	if (!src || src->ifindex != skb->ifindex)
		return drop_packet(skb, DIR_EGRESS, DROP_INVALID_SOURCE_IP);
	account_endpoint(src->id, skb->len, DIR_EGRESS);

	struct ct_key t = { .family = ADDR_FAMILY_IPV4 };
	struct l4_info l = {};
	struct trace_ctx tr = {};
	__u8 ttl = ip4->ttl;
	__u32 dst_id;

	__builtin_memcpy(t.saddr, &ip4->saddr, 4);
	__builtin_memcpy(t.daddr, &ip4->daddr, 4);
	key_from_ipv4(&key, ip4->daddr);
	/* Only the first fragment has the L4 header. */
	if (!(ip4->frag_off & bpf_htons(0x1fff)))
		parse_l4(skb, ETH_HLEN + ip4->ihl * 4, ip4->protocol, 0, &t, &l);
	else
		t.proto = l.proto = ip4->protocol;

	dst = bpf_map_lookup_elem(&seta_endpoints, &key);
	dst_id = dst ? dst->identity : ipcache_identity4(*(__be32 *)t.daddr);
	if (policy_packet(skb, src, dst, dst_id, &t, &l, &tr) < 0)
		return CTX_ACT_DROP;
	if (!dst || ttl <= 1) {
		/* Not a local endpoint (or the TTL runs out here, and the stack
		 * sends the ICMP error): the host stack decides. */
		return to_stack(skb, src, dst_id, &t, &l, &tr);
	}
	/* The checks above may have moved packet data: reload. */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip4 = data + ETH_HLEN;
	if ((void *)(ip4 + 1) > data_end)
		return drop_packet(skb, DIR_EGRESS, DROP_INVALID_PACKET);
	if (!ipv4_dec_ttl(skb, ip4))
		return drop_packet(skb, DIR_EGRESS, DROP_INVALID_PACKET);
	return deliver_local(skb, src, dst, &t, &l, &tr);
}


static __always_inline int from_container_ipv6(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	struct endpoint_info *src, *dst;
	struct endpoint_key key;

	if ((void *)(ip6 + 1) > data_end)
		return drop_packet(skb, DIR_EGRESS, DROP_INVALID_PACKET);
	if (ipv6_is_linklocal_or_multicast(ip6))
		return CTX_ACT_OK;

	key_from_ipv6(&key, &ip6->saddr);
	src = bpf_map_lookup_elem(&seta_endpoints, &key);
	if (!src || src->ifindex != skb->ifindex)
		return drop_packet(skb, DIR_EGRESS, DROP_INVALID_SOURCE_IP);
	account_endpoint(src->id, skb->len, DIR_EGRESS);

	struct ct_key t = { .family = ADDR_FAMILY_IPV6 };
	struct l4_info l = {};
	struct trace_ctx tr = {};
	struct in6_addr daddr = ip6->daddr;
	__u8 hlim = ip6->hop_limit;
	__u32 dst_id;

	__builtin_memcpy(t.saddr, &ip6->saddr, 16);
	__builtin_memcpy(t.daddr, &ip6->daddr, 16);
	key_from_ipv6(&key, &ip6->daddr);
	/* Extension headers are not walked: such packets match on protocol
	 * (the first next header) without ports. */
	parse_l4(skb, ETH_HLEN + sizeof(struct ipv6hdr), ip6->nexthdr, 1, &t, &l);

	dst = bpf_map_lookup_elem(&seta_endpoints, &key);
	dst_id = dst ? dst->identity : ipcache_identity6(&daddr);
	if (policy_packet(skb, src, dst, dst_id, &t, &l, &tr) < 0)
		return CTX_ACT_DROP;
	if (!dst || hlim <= 1)
		return to_stack(skb, src, dst_id, &t, &l, &tr);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip6 = data + ETH_HLEN;
	if ((void *)(ip6 + 1) > data_end)
		return drop_packet(skb, DIR_EGRESS, DROP_INVALID_PACKET);
	if (!ipv6_dec_hoplimit(skb, ip6))
		return drop_packet(skb, DIR_EGRESS, DROP_INVALID_PACKET);
	return deliver_local(skb, src, dst, &t, &l, &tr);
}

SEC("tc")
int cil_from_container(struct __sk_buff *skb)
{
	switch (skb->protocol) {
	case bpf_htons(ETH_P_IP):
		return from_container_ipv4(skb);
	case bpf_htons(ETH_P_IPV6):
		return from_container_ipv6(skb);
	default:
		/* ARP and anything else: the stack handles it. */
		return CTX_ACT_OK;
	}
}
