/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Applying an endpoint's policy to one packet. */
#ifndef __SETA_ENFORCE_H
#define __SETA_ENFORCE_H

#include "common.h"
#include "drop.h"
#include "maps.h"
#include "metrics.h"
#include "policy.h"
#include "events.h"
#include "l4.h"

/* enforce checks ep's policy in direction dir against peer. It returns 0
 * when the packet may pass (allowed, or denied in audit mode, which is
 * reported), or -1 when it was dropped (reported and counted). An allowed
 * packet that opens a connection (new_conn) is reported as a verdict when
 * a real policy entry allowed it, i.e. one with a match type: the allow-all
 * entry of a direction the endpoint does not enforce has none (and with
 * ENDPOINT_F_*_OPEN set, that entry is not even looked up). */
static __always_inline int enforce(struct __sk_buff *skb, const struct endpoint_info *ep, __u8 dir,
				   __u32 peer, __u32 src_id, __u32 dst_id,
				   const struct l4_info *l, const struct ct_key *t, int new_conn)
{
	__u8 match_type = POLICY_MATCH_NONE;
	__u8 type, reason = REASON_FORWARDED, audit = 0;
	__u32 cookie = 0;
	int v, ret = 0;

	/* A direction no policy enforces allows everything without a
	 * verdict, as its allow-all entry would. */
	if (ep->flags & (dir == DIR_INGRESS ? ENDPOINT_F_INGRESS_OPEN : ENDPOINT_F_EGRESS_OPEN))
		return 0;
	v = policy_check(ep->id, dir, peer, l->proto, l->dport, &cookie, &match_type);
	/* One event site for the three outcomes keeps the inlined copies of
	 * this function (one per policy check per program) small. */
	if (v == POLICY_ALLOW) {
		if (!new_conn || match_type == POLICY_MATCH_NONE)
			return 0;
		type = EVENT_POLICY_VERDICT;
	} else {
		reason = v == POLICY_DENY_RULE ? DROP_POLICY_DENY : DROP_POLICY;
		if (ep->flags & ENDPOINT_F_AUDIT) {
			type = EVENT_POLICY_VERDICT;
			audit = 1;
		} else {
			type = EVENT_DROP;
			ret = -1;
		}
	}
	emit_policy_event(skb, type, reason, dir, audit, match_type, ep->id, src_id, dst_id, cookie, t, l);
	if (ret < 0)
		update_metrics(skb->len, dir, reason);
	return ret;
}

/* track records a connection that policy let through, on the entry
 * ct_lookup found, and fills tr; a packet that cannot be tracked is dropped
 * and reported rather than let its replies be lost. */
static __always_inline int track(struct __sk_buff *skb, __u8 dir, __u16 ep_id, __u32 src_id,
				 __u32 dst_id, const struct l4_info *l, const struct ct_key *t,
				 struct ct_fwd *f, struct trace_ctx *tr)
{
	if (ct_track(t, f, l->closing, l->tcp_flags, tr) == 0)
		return 0;
	emit_policy_event(skb, EVENT_DROP, DROP_CT_CREATE_FAILED, dir, 0, POLICY_MATCH_NONE, ep_id, src_id,
			  dst_id, 0, t, l);
	update_metrics(skb->len, dir, DROP_CT_CREATE_FAILED);
	return -1;
}

#endif /* __SETA_ENFORCE_H */
