/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Applying an endpoint's policy to one packet, and skipping it for the
 * forward packets of connections policy allowed under the current policy
 * revision. */
#ifndef __SETA_ENFORCE_H
#define __SETA_ENFORCE_H

#include "common.h"
#include "drop.h"
#include "maps.h"
#include "metrics.h"
#include "policy.h"
#include "events.h"
#include "l4.h"
#include "conntrack.h"

/* seta_policy_rev: the policy revision, one u32 (an array lookup, which
 * the verifier inlines). The agent increments it after every change that
 * can change a verdict: writes to the policy map, the ipcache, the
 * endpoints map (identity, ENDPOINT_F_* flags), endpoint removal
 * (pkg/datapath/policyrev.go). It is never 0 once an agent has loaded the
 * datapath; 0 in a conntrack entry means "check the next forward packet".
 *
 * A forward packet of a live connection whose entry carries the current
 * revision skips policy: the verdict it would get is the one a packet of
 * the same connection got since the last change. Any other packet that is
 * not a reply is checked; if all its checks allow it (audit mode's passes
 * do not count), its entry records the revision read before the checks.
 * So once the agent's increment is visible, every connection is checked
 * again at its next forward packet, against the maps as they were when
 * the increment was made: revoking an allow stops an established
 * connection at its next packet after the change. A packet that read the
 * old revision and checked the half-written maps records the old one,
 * which is no longer current. (Nothing orders the revision's load before
 * the map lookups but program order, so on a weakly ordered CPU a packet
 * racing the increment could in principle pair the new revision with an
 * entry of the instant before; on x86 loads are not reordered.) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_policy_rev SEC(".maps");

static __always_inline __u32 policy_revision(void)
{
	__u32 zero = 0;
	__u32 *rev = bpf_map_lookup_elem(&seta_policy_rev, &zero);

	return rev ? *rev : 0;
}

/* policy_fresh reports whether the packet f describes (not a reply) may
 * skip policy: its connection is live and was allowed under the current
 * revision. Otherwise it prepares f to record the current revision, which
 * policy_passed withdraws when a check does not allow the packet. */
static __always_inline int policy_fresh(struct ct_state *f)
{
	__u32 rev = policy_revision();
	struct ct_entry *e = f->e;

	if (rev && !f->new_conn && e && e->policy_rev == rev)
		return 1;
	f->allowed_rev = rev;
	return 0;
}

/* policy_passed takes enforce's result for f: -1 when the packet was
 * dropped; a pass by audit mode keeps the connection's entry from
 * recording the revision, so its next packet is checked (and reported)
 * again. */
static __always_inline int policy_passed(struct ct_state *f, int verdict)
{
	if (verdict > 0)
		f->allowed_rev = 0;
	return verdict < 0 ? -1 : 0;
}

/* enforce checks ep's policy in direction dir against peer. It returns 0
 * when the packet is allowed, 1 when it was denied but passes in audit
 * mode (reported), or -1 when it was dropped (reported and counted). An allowed
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
			ret = 1;
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
				 struct ct_state *f, struct trace_ctx *tr)
{
	if (ct_track(t, f, l->closing, l->tcp_flags, tr) == 0)
		return 0;
	emit_policy_event(skb, EVENT_DROP, DROP_CT_CREATE_FAILED, dir, 0, POLICY_MATCH_NONE, ep_id, src_id,
			  dst_id, 0, t, l);
	update_metrics(skb->len, dir, DROP_CT_CREATE_FAILED);
	return -1;
}

#endif /* __SETA_ENFORCE_H */
