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
 * A packet addressed to a service (one that socket LB did not translate:
 * socket LB off, or a process outside its cgroup) is translated to a
 * backend first (lib/lb_nat.h): DNAT, plus SNAT to the hairpin address when
 * the pod reaches itself; a service without backends is answered at once
 * (TCP reset, ICMP port unreachable). Replies of translated connections
 * get the service address back as source; those to a client outside the
 * node (NodePort, bpf_netdev.c) leave through the device directly.
 *
 * Every packet that is not a reply of a tracked connection is checked
 * against the egress policy of the sending endpoint and, when the receiver
 * is a local endpoint, its ingress policy, or the node's own ingress policy
 * when the receiver is the node (lib/enforce.h), unless its connection was
 * allowed under the current policy revision. Policy and conntrack see the
 * translated packet: a service's policy is its backends'.
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
#include "lib/lb_nat.h"

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
	enum lb_nat_dir nat_dir;
	enum lb_nat_flags nat_flags;
	enum ct_flags ct_flags;
	enum ct_lifetime ct_lifetime;
	struct datapath_event ev;
	struct lb_nat_key nat_key;
	struct lb_nat_entry nat_entry;
	struct node_addr_key node_addr_key;
	struct node_addr node_addr;
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

/* to_stack passes a packet to the host stack, traced as TRACE_TO_STACK.
 * dst_id is the destination's identity, 0 if not looked up yet: only a
 * trace needs it here. */
static __always_inline int to_stack(struct __sk_buff *skb, const struct endpoint_info *src, __u32 dst_id,
				    const struct ct_key *t, const struct l4_info *l, const struct trace_ctx *tr)
{
	update_metrics(skb->len, DIR_EGRESS, REASON_FORWARDED);
	if (!trace_wanted(tr))
		return CTX_ACT_OK;
	if (!dst_id)
		dst_id = ipcache_identity(t->daddr, t->family);
	emit_trace(skb, TRACE_TO_STACK, tr, DIR_EGRESS, src->id, src->identity, dst_id, skb->ifindex, t, l);
	return CTX_ACT_OK;
}

/* refuse_service answers a new connection to a service without backends
 * from the service address (a TCP reset, or an ICMP port unreachable:
 * lb_refuse), sent straight back into the pod, so the client fails at once
 * (ECONNREFUSED) instead of waiting for a timeout; the attempt is reported
 * as a drop ("Service backend not found"). */
static __always_inline int refuse_service(struct __sk_buff *skb, const struct endpoint_info *src,
					  const struct ct_key *t, const struct l4_info *l, __u32 l4off)
{
	emit_policy_event(skb, EVENT_DROP, DROP_NO_SERVICE, DIR_EGRESS, 0, POLICY_MATCH_NONE, src->id,
			  src->identity, IDENTITY_WORLD, 0, t, l);
	update_metrics(skb->len, DIR_EGRESS, DROP_NO_SERVICE);
	if (lb_refuse(skb, t, l4off) < 0 || rewrite_l2(skb, src) < 0)
		return CTX_ACT_DROP;
	return bpf_redirect_peer(src->ifindex, 0);
}

/* drop_lb reports a packet that service translation failed on. */
static __always_inline int drop_lb(struct __sk_buff *skb, const struct endpoint_info *src,
				   const struct ct_key *t, const struct l4_info *l, __u8 reason)
{
	emit_policy_event(skb, EVENT_DROP, reason, DIR_EGRESS, 0, POLICY_MATCH_NONE, src->id, src->identity,
			  IDENTITY_WORLD, 0, t, l);
	return drop_packet(skb, DIR_EGRESS, reason);
}

/* policy_packet applies policy to a packet leaving src that is not a
 * reply: src's egress policy must allow the destination and, for a local
 * destination, dst's ingress policy must allow src (for the node as
 * destination, the node's ingress policy), unless the packet continues a
 * connection allowed under the current policy revision (policy_fresh).
 * *dst_id is the destination's identity, 0 until it is looked up in the
 * ipcache, which is done here only when policy needs it. f is the
 * packet's conntrack lookup. Returns -1 when the packet was dropped. */
static __always_inline int policy_packet(struct __sk_buff *skb, const struct endpoint_info *src,
					 const struct endpoint_info *dst, __u32 *dst_id,
					 const struct ct_key *t, const struct l4_info *l,
					 struct ct_state *f, struct trace_ctx *tr)
{
	ct_lookup_once(t, l->tcp_flags, f);
	if (!policy_fresh(f)) {
		if (!*dst_id)
			*dst_id = ipcache_identity(t->daddr, t->family);
		if (policy_passed(f, enforce(skb, src, DIR_EGRESS, *dst_id, src->identity, *dst_id, l, t,
					     f->new_conn)) < 0)
			return -1;
		if (dst && policy_passed(f, enforce(skb, dst, DIR_INGRESS, src->identity, src->identity, *dst_id,
						    l, t, f->new_conn)) < 0)
			return -1;
		if (!dst && *dst_id == IDENTITY_HOST) {
			/* To the node itself: the node's ingress (host) policy. */
			struct endpoint_info host = { .id = HOST_EP_ID, .identity = IDENTITY_HOST };

			if (policy_passed(f, enforce(skb, &host, DIR_INGRESS, src->identity, src->identity, *dst_id,
						     l, t, f->new_conn)) < 0)
				return -1;
		}
	}
	return track(skb, DIR_EGRESS, src->id, src->identity, *dst_id, l, t, f, tr);
}

/* dec_ttl decrements the TTL (hop limit) as a router does. 0: the TTL
 * runs out here (or the packet is too short to have one), and the stack
 * should have it. */
static __always_inline int dec_ttl(struct __sk_buff *skb, __u8 family)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (family == ADDR_FAMILY_IPV4) {
		struct iphdr *ip4 = data + ETH_HLEN;

		return (void *)(ip4 + 1) <= data_end && ipv4_dec_ttl(ip4);
	}
	struct ipv6hdr *ip6 = data + ETH_HLEN;

	return (void *)(ip6 + 1) <= data_end && ipv6_dec_hoplimit(ip6);
}

/* from_container handles a packet from src whose tuple is t (l4off: its
 * L4 header), source validated. One conntrack lookup tells replies of
 * tracked connections, which skip policy (and are restored when their
 * connection was translated), from other packets, which are translated
 * first when they are addressed to a service (lib/lb_nat.h), so policy and
 * conntrack see the backend. Then the packet goes to a local endpoint, out
 * of a device (a restored reply to a client outside the node), or to the
 * stack. */
static __always_inline int from_container(struct __sk_buff *skb, const struct endpoint_info *src,
					  struct ct_key *t, struct l4_info *l, __u32 l4off)
{
	struct trace_ctx tr = {};
	struct ct_state f = {};
	struct lb_scratch *s;
	struct endpoint_info *dst;
	struct endpoint_key key;
	__u8 reason = 0, nat_flags = 0;
	int reply = 0, ret;
	__u32 dst_id;

	/* ICMP errors about a tracked flow belong to it (rare, and each one
	 * is news: always traced); other packets that answer a tracked
	 * connection are replies. */
	if (l->related && ct_live(&l->inner)) {
		tr.reason = TRACE_REASON_CT_RELATED;
		tr.report = 1;
		reply = 1;
	} else {
		ct_lookup(t, l->tcp_flags, &f);
		reply = f.reply;
	}
	if (f.reply) {
		struct ct_entry *ce = f.e;

		ct_reply_seen(&f, l->closing, l->tcp_flags, &tr.report);
		tr.reason = TRACE_REASON_CT_REPLY;
		if (ce && (ce->flags & CT_F_NAT)) {
			ret = lb_rev(skb, t, l4off, &nat_flags);
			if (ret < 0)
				return drop_lb(skb, src, t, l, DROP_INVALID_PACKET);
			if (ret == 0)
				nat_flags = 0;
		}
	} else if (!reply) {
		s = lb_scratch();
		if (!s)
			return drop_packet(skb, DIR_EGRESS, DROP_INVALID_PACKET);
		s->l4off = l4off;
		s->external = 0;
		switch (lb_fwd(skb, t, l, &f, s)) {
		case LB_FWD_NO_BACKEND:
			return refuse_service(skb, src, t, l, l4off);
		case LB_FWD_DROP:
			return drop_lb(skb, src, t, l, s->reason);
		}
	}

	__builtin_memset(&key, 0, sizeof(key));
	lb_addr_copy(key.addr, t->daddr);
	key.family = t->family;
	dst = bpf_map_lookup_elem(&seta_endpoints, &key);
	/* A destination that is no local endpoint has its identity in the
	 * ipcache, an LPM lookup made only when policy or a trace needs it. */
	dst_id = dst ? dst->identity : 0;
	if (!reply && policy_packet(skb, src, dst, &dst_id, t, l, &f, &tr) < 0)
		return CTX_ACT_DROP;
	if (!dst && (nat_flags & LB_NAT_F_EXTERNAL)) {
		/* A backend's reply to a client outside the node, now from
		 * the node's address: the stack would take that source for
		 * a spoof, so the packet goes straight to the device. */
		update_metrics(skb->len, DIR_EGRESS, REASON_FORWARDED);
		ret = lb_fib_redirect(skb, t, &reason);
		return ret < 0 ? drop_lb(skb, src, t, l, reason) : ret;
	}
	/* Not a local endpoint (or the TTL runs out here, and the stack
	 * sends the ICMP error): the host stack decides. */
	if (!dst || !dec_ttl(skb, t->family))
		return to_stack(skb, src, dst_id, t, l, &tr);
	return deliver_local(skb, src, dst, t, l, &tr);
}

static __always_inline int from_container_ipv4(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip4 = data + ETH_HLEN;
	struct endpoint_info *src;
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
	__u32 l4off = ETH_HLEN + ip4->ihl * 4;

	__builtin_memcpy(t.saddr, &ip4->saddr, 4);
	__builtin_memcpy(t.daddr, &ip4->daddr, 4);
	/* Only the first fragment has the L4 header (and later ones are
	 * never translated: they have no ports to match a service on). */
	if (!(ip4->frag_off & bpf_htons(0x1fff)))
		parse_l4(skb, l4off, ip4->protocol, 0, &t, &l);
	else
		t.proto = l.proto = ip4->protocol;
	return from_container(skb, src, &t, &l, l4off);
}

static __always_inline int from_container_ipv6(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	struct endpoint_info *src;
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

	__builtin_memcpy(t.saddr, &ip6->saddr, 16);
	__builtin_memcpy(t.daddr, &ip6->daddr, 16);
	/* Extension headers are not walked: such packets match on protocol
	 * (the first next header) without ports. */
	parse_l4(skb, ETH_HLEN + sizeof(struct ipv6hdr), ip6->nexthdr, 1, &t, &l);
	return from_container(skb, src, &t, &l, ETH_HLEN + sizeof(struct ipv6hdr));
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
