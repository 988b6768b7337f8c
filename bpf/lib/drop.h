/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Drop reasons. The numbers are Cilium's, as Hubble's flow.DropReason
 * enumerates them, so flows carry codes the Hubble ecosystem understands.
 * Mirrored in Go by the generated bpfDropReason constants;
 * pkg/datapath/maps/reasons.go gives them names. Never renumber: the values
 * appear in pinned metrics maps and in flow events. */
#ifndef __SETA_DROP_H
#define __SETA_DROP_H

enum drop_reason {
	REASON_FORWARDED            = 0,   /* not a drop: forwarded packets */
	DROP_INVALID_SOURCE_IP      = 132, /* source address is not the endpoint's */
	DROP_POLICY                 = 133, /* no policy rule allowed it */
	DROP_INVALID_PACKET         = 134, /* truncated or malformed header */
	DROP_UNROUTABLE             = 151, /* bpf_redirect_peer refused the target */
	DROP_UNKNOWN_ENDPOINT       = 152, /* routed here for an address no endpoint holds */
	DROP_CT_CREATE_FAILED       = 155, /* conntrack entry could not be created */
	DROP_NO_SERVICE             = 158, /* a service without backends (answered with ICMP unreachable) */
	DROP_NAT_NO_MAPPING         = 167, /* no NAT entry could be made (SNAT ports exhausted, map full) */
	DROP_FIB_LOOKUP_FAILED      = 169, /* no route to forward a translated packet */
	DROP_POLICY_DENY            = 181, /* a deny rule matched */
};

#endif /* __SETA_DROP_H */
