/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Delivery into a local endpoint of a packet that comes from the node's
 * side: routed by the node to seta_host (bpf_host.c: the node's own
 * traffic, other nodes'), or translated on a device for a NodePort whose
 * backend is here (bpf_netdev.c). */
#ifndef __SETA_DELIVER_H
#define __SETA_DELIVER_H

#include "common.h"
#include "drop.h"
#include "maps.h"
#include "metrics.h"
#include "l3.h"
#include "l4.h"
#include "policy.h"
#include "enforce.h"
#include "lb_nat.h"

/* to_endpoint applies ep's ingress policy to a packet from src_id (unless
 * it answers a connection the pod opened, or continues one allowed under
 * the current policy revision; a reply of a translated connection is
 * restored first, its source becoming the service), rewrites the MACs as
 * the pod's gateway would, counts and traces it (TRACE_TO_LXC) and hands
 * it to the pod's eth0 with bpf_redirect_peer. t and l describe the packet
 * (l4off: its L4 header); src_id is the source's identity, 0 to look it up
 * in the ipcache only when policy or a trace needs it; f is the conntrack
 * lookup of t when service translation made it already (with CT_F_NAT to
 * set). */
static __always_inline int to_endpoint(struct __sk_buff *skb, const struct endpoint_info *ep,
				       struct ct_key *t, struct l4_info *l, __u32 src_id, __u32 l4off,
				       struct ct_state *f)
{
	struct trace_ctx tr = {};
	__u32 len = skb->len;
	__u8 nat_flags;

	if (l->related && ct_live(&l->inner)) {
		/* An ICMP error about a tracked flow: rare, always traced. */
		tr.reason = TRACE_REASON_CT_RELATED;
		tr.report = 1;
		goto deliver;
	}
	ct_lookup_once(t, l->tcp_flags, f);
	if (f->reply) {
		struct ct_entry *ce = f->e;

		ct_reply_seen(f, l->closing, l->tcp_flags, &tr.report);
		tr.reason = TRACE_REASON_CT_REPLY;
		/* A backend on another node (or the node) answering a pod
		 * that reached it through a service. */
		if (ce && (ce->flags & CT_F_NAT) && lb_rev(skb, t, l4off, &nat_flags) < 0)
			return drop_packet(skb, DIR_INGRESS, DROP_INVALID_PACKET);
		goto deliver;
	}
	if (!policy_fresh(f)) {
		if (!src_id)
			src_id = ipcache_identity(t->saddr, t->family);
		if (src_id == IDENTITY_HOST) {
			/* From the node itself: the node's egress (host) policy. */
			struct endpoint_info host = { .id = HOST_EP_ID, .identity = IDENTITY_HOST };

			if (policy_passed(f, enforce(skb, &host, DIR_EGRESS, ep->identity, src_id, ep->identity, l, t,
						     f->new_conn)) < 0)
				return CTX_ACT_DROP;
		}
		if (policy_passed(f, enforce(skb, ep, DIR_INGRESS, src_id, src_id, ep->identity, l, t,
					     f->new_conn)) < 0)
			return CTX_ACT_DROP;
	}
	if (track(skb, DIR_INGRESS, ep->id, src_id, ep->identity, l, t, f, &tr) < 0)
		return CTX_ACT_DROP;
deliver:
	if (rewrite_l2(skb, ep) < 0)
		return drop_packet(skb, DIR_INGRESS, DROP_INVALID_PACKET);
	account_endpoint(ep->id, len, DIR_INGRESS);
	update_metrics(len, DIR_INGRESS, REASON_FORWARDED);
	if (trace_wanted(&tr)) {
		if (!src_id)
			src_id = ipcache_identity(t->saddr, t->family);
		emit_trace(skb, TRACE_TO_LXC, &tr, DIR_INGRESS, ep->id, src_id, ep->identity, ep->ifindex, t, l);
	}
	int ret = bpf_redirect_peer(ep->ifindex, 0);
	if (ret != CTX_ACT_REDIRECT)
		update_metrics(len, DIR_INGRESS, DROP_UNROUTABLE);
	return ret;
}

#endif /* __SETA_DELIVER_H */
