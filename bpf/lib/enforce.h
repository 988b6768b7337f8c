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
 * reported), or -1 when it was dropped (reported and counted). */
static __always_inline int enforce(struct __sk_buff *skb, const struct endpoint_info *ep, __u8 dir,
				   __u32 peer, __u32 src_id, __u32 dst_id,
				   const struct l4_info *l, const struct ct_key *t)
{
	__u32 cookie = 0;
	__u8 reason;
	int v;

	v = policy_check(ep->id, dir, peer, l->proto, l->dport, &cookie);
	if (v == POLICY_ALLOW)
		return 0;
	reason = v == POLICY_DENY_RULE ? DROP_POLICY_DENY : DROP_POLICY;
	if (ep->flags & ENDPOINT_F_AUDIT) {
		emit_event(skb, EVENT_POLICY_VERDICT, reason, dir, 1, ep->id, src_id, dst_id, cookie, t, l->dport, l->tcp_flags);
		return 0;
	}
	emit_event(skb, EVENT_DROP, reason, dir, 0, ep->id, src_id, dst_id, cookie, t, l->dport, l->tcp_flags);
	update_metrics(skb->len, dir, reason);
	return -1;
}

/* track records a connection that policy let through; a packet that cannot
 * be tracked is dropped and reported rather than let its replies be lost. */
static __always_inline int track(struct __sk_buff *skb, __u8 dir, __u16 ep_id, __u32 src_id,
				 __u32 dst_id, const struct l4_info *l, const struct ct_key *t)
{
	if (ct_track(t, l->closing) == 0)
		return 0;
	emit_event(skb, EVENT_DROP, DROP_CT_CREATE_FAILED, dir, 0, ep_id, src_id, dst_id, 0, t, l->dport, l->tcp_flags);
	update_metrics(skb->len, dir, DROP_CT_CREATE_FAILED);
	return -1;
}

#endif /* __SETA_ENFORCE_H */
