/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The programs on the node's own network devices (--devices), for two
 * features, each a load-time switch (pkg/datapath/loader), so a feature
 * that is off costs nothing:
 *
 *   cil_from_netdev: ingress of a node device, i.e. packets arriving from
 *                    the network.
 *   cil_to_netdev:   egress of a node device, i.e. packets leaving to the
 *                    network.
 *
 * NodePort (--enable-node-port), on ingress: a packet from outside the
 * node addressed to a NodePort (a node address, a port of the NodePort
 * range) or to an ExternalIP/LoadBalancer address is translated to a
 * backend of the service's external scope (lib/lb_nat.h). A backend on
 * this node gets the packet straight into its pod, through its ingress
 * policy (lib/deliver.h), with the client's address as source; its replies
 * are restored in bpf_lxc.c and sent out of the device. A backend on
 * another node gets it with the node's address on the device towards it
 * and a port of the NAT range as source (SNAT), forwarded with
 * bpf_redirect_neigh; its replies come back to that port, are restored
 * here and sent back to the client. Other packets cost one service lookup
 * (plus an ipcache lookup on ports of the NodePort range, and a NAT lookup
 * on ports of the NAT range).
 *
 * The host firewall (--enable-host-firewall): only traffic of the node
 * itself is checked here, against the node's policy (endpoint ID 0:
 * CiliumClusterwideNetworkPolicy nodeSelector rules): packets addressed to
 * one of the node's addresses on the way in, packets sent from one on the
 * way out. Traffic the node forwards for its pods is checked by the pods'
 * own programs, and translated service traffic that a Seta program sent
 * out of the device (marked SETA_MARK_XLATED) is no traffic of the node's
 * own. Replies of tracked connections pass, and so do the forward packets
 * of connections allowed under the current policy revision. */

#include "lib/common.h"
#include "lib/drop.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/l3.h"
#include "lib/l4.h"
#include "lib/policy.h"
#include "lib/enforce.h"
#include "lib/events.h"
#include "lib/lb_nat.h"
#include "lib/deliver.h"

/* Load-time switches (pkg/datapath/loader). */
const volatile __u8 seta_enable_host_firewall = 0;
const volatile __u8 seta_enable_node_port = 0;

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
	struct ct_state f;
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
	if (l.related && ct_live(&l.inner))
		return CTX_ACT_OK;
	ct_lookup(&t, l.tcp_flags, &f);
	if (f.reply) {
		ct_reply_seen(&f, l.closing, l.tcp_flags, NULL);
		return CTX_ACT_OK;
	}
	if (!policy_fresh(&f) &&
	    policy_passed(&f, enforce(skb, &host, dir, peer, src_id, dst_id, &l, &t, f.new_conn)) < 0)
		return CTX_ACT_DROP;
	if (track(skb, dir, HOST_EP_ID, src_id, dst_id, &l, &t, &f, NULL) < 0)
		return CTX_ACT_DROP;
	return CTX_ACT_OK;
}

/* nodeport_parse reads an IP packet from the network into t and l, with
 * its L4 header at *l4off. 0: not a packet NodePort looks at (not IP,
 * truncated, a later fragment, IPv6 link-local or multicast). */
static __always_inline int nodeport_parse(struct __sk_buff *skb, struct ct_key *t, struct l4_info *l, __u32 *l4off)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	switch (skb->protocol) {
	case bpf_htons(ETH_P_IP): {
		struct iphdr *ip4 = data + ETH_HLEN;

		if ((void *)(ip4 + 1) > data_end || (ip4->frag_off & bpf_htons(0x1fff)))
			return 0;
		t->family = ADDR_FAMILY_IPV4;
		__builtin_memcpy(t->saddr, &ip4->saddr, 4);
		__builtin_memcpy(t->daddr, &ip4->daddr, 4);
		*l4off = ETH_HLEN + ip4->ihl * 4;
		parse_l4(skb, *l4off, ip4->protocol, 0, t, l);
		return 1;
	}
	case bpf_htons(ETH_P_IPV6): {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end || ipv6_is_linklocal_or_multicast(ip6))
			return 0;
		t->family = ADDR_FAMILY_IPV6;
		__builtin_memcpy(t->saddr, &ip6->saddr, 16);
		__builtin_memcpy(t->daddr, &ip6->daddr, 16);
		*l4off = ETH_HLEN + sizeof(struct ipv6hdr);
		parse_l4(skb, *l4off, ip6->nexthdr, 1, t, l);
		return 1;
	}
	}
	return 0;
}

/* Verdict of nodeport_ingress for packets it leaves to the host firewall
 * and the stack. */
#define NODEPORT_PASS -2

static __always_inline int nodeport_drop(struct __sk_buff *skb, const struct ct_key *t,
					 const struct l4_info *l, __u8 reason)
{
	emit_policy_event(skb, EVENT_DROP, reason, DIR_INGRESS, 0, POLICY_MATCH_NONE, HOST_EP_ID,
			  IDENTITY_WORLD, IDENTITY_HOST, 0, t, l);
	return drop_packet(skb, DIR_INGRESS, reason);
}

/* swap_macs turns the Ethernet header around, for a packet sent back out
 * of the device it came in on. */
static __always_inline int swap_macs(struct __sk_buff *skb)
{
	__u8 macs[12], swapped[12];

	if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)) < 0)
		return -1;
	__builtin_memcpy(swapped, macs + 6, 6);
	__builtin_memcpy(swapped + 6, macs, 6);
	return bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0);
}

/* nodeport_refuse answers a new connection to a service without backends
 * (a TCP reset, or an ICMP port unreachable: lb_refuse), sent back out of
 * the device. */
static __always_inline int nodeport_refuse(struct __sk_buff *skb, const struct ct_key *t, const struct l4_info *l,
					   __u32 l4off)
{
	emit_policy_event(skb, EVENT_DROP, DROP_NO_SERVICE, DIR_INGRESS, 0, POLICY_MATCH_NONE, HOST_EP_ID,
			  IDENTITY_WORLD, IDENTITY_HOST, 0, t, l);
	update_metrics(skb->len, DIR_INGRESS, DROP_NO_SERVICE);
	if (lb_refuse(skb, t, l4off) < 0 || swap_macs(skb) < 0)
		return CTX_ACT_DROP;
	skb->mark = SETA_MARK_XLATED;
	return bpf_redirect(skb->ifindex, 0);
}

/* nodeport_ingress translates a packet from the network for a NodePort or
 * an external service address, or restores the reply of a backend on
 * another node. NODEPORT_PASS: neither. */
static __always_inline int nodeport_ingress(struct __sk_buff *skb)
{
	struct ct_key t = {};
	struct l4_info l = {};
	struct ct_state f = {};
	struct lb_scratch *s;
	struct endpoint_info *ep;
	struct endpoint_key key;
	__u8 reason = 0, nat_flags;
	__u32 l4off = 0;
	int ret;

	if (!nodeport_parse(skb, &t, &l, &l4off))
		return NODEPORT_PASS;
	if (t.proto != IPPROTO_TCP && t.proto != IPPROTO_UDP)
		return NODEPORT_PASS;
	if (lb_nat_port(t.dport)) {
		/* Perhaps a backend on another node answering a client of
		 * a NodePort through this node's SNAT address: its
		 * connection is looked up by the reply as it came, before
		 * the restore rewrites it. */
		ct_lookup(&t, l.tcp_flags, &f);
		ret = lb_rev(skb, &t, l4off, &nat_flags);
		if (ret < 0)
			return nodeport_drop(skb, &t, &l, DROP_INVALID_PACKET);
		if (ret > 0) {
			/* Keeps the connection, and so its NAT, alive. */
			if (f.reply)
				ct_reply_seen(&f, l.closing, l.tcp_flags, NULL);
			update_metrics(skb->len, DIR_INGRESS, REASON_FORWARDED);
			ret = lb_fib_redirect(skb, &t, &reason);
			return ret < 0 ? nodeport_drop(skb, &t, &l, reason) : ret;
		}
	}
	s = lb_scratch();
	if (!s)
		return NODEPORT_PASS;
	s->l4off = l4off;
	s->external = 1;
	switch (lb_fwd(skb, &t, &l, &f, s)) {
	case LB_FWD_PASS:
		return NODEPORT_PASS;
	case LB_FWD_NO_BACKEND:
		return nodeport_refuse(skb, &t, &l, l4off);
	case LB_FWD_DROP:
		return nodeport_drop(skb, &t, &l, s->reason);
	}
	if (!(s->nat.flags & LB_NAT_F_SNAT)) {
		/* The backend is a pod of this node: the client's packet, as
		 * the client sent it but for the destination, goes in. */
		__builtin_memset(&key, 0, sizeof(key));
		lb_addr_copy(key.addr, t.daddr);
		key.family = t.family;
		ep = bpf_map_lookup_elem(&seta_endpoints, &key);
		if (!ep)
			return nodeport_drop(skb, &t, &l, DROP_UNKNOWN_ENDPOINT);
		return to_endpoint(skb, ep, &t, &l, 0, l4off, &f);
	}
	/* A backend on another node: tracked here, so that its replies
	 * keep the connection (and its NAT entries) alive; policy is the
	 * backend's, on its own node. */
	if (track(skb, DIR_INGRESS, HOST_EP_ID, IDENTITY_WORLD, IDENTITY_WORLD, &l, &t, &f, NULL) < 0)
		return CTX_ACT_DROP;
	update_metrics(skb->len, DIR_INGRESS, REASON_FORWARDED);
	ret = lb_fib_redirect(skb, &t, &reason);
	return ret < 0 ? nodeport_drop(skb, &t, &l, reason) : ret;
}

SEC("tc")
int cil_from_netdev(struct __sk_buff *skb)
{
	if (seta_enable_node_port) {
		int ret = nodeport_ingress(skb);

		if (ret != NODEPORT_PASS)
			return ret;
	}
	if (seta_enable_host_firewall)
		return host_policy(skb, DIR_INGRESS);
	return CTX_ACT_OK;
}

SEC("tc")
int cil_to_netdev(struct __sk_buff *skb)
{
	if (!seta_enable_host_firewall)
		return CTX_ACT_OK;
	if (skb->mark == SETA_MARK_XLATED) {
		skb->mark = 0;
		return CTX_ACT_OK;
	}
	return host_policy(skb, DIR_EGRESS);
}
