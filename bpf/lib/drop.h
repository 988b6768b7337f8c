/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Drop reasons. Mirrored in Go by the generated bpfDropReason constants;
 * pkg/datapath/bpf/reasons.go gives them names. Never renumber: the values
 * appear in pinned metrics maps and in flow events. */
#ifndef __SETA_DROP_H
#define __SETA_DROP_H

enum drop_reason {
	REASON_FORWARDED        = 0,   /* not a drop: forwarded packets */
	DROP_INVALID_SOURCE_IP  = 130, /* source address is not the endpoint's */
	DROP_INVALID_PACKET     = 131, /* truncated or malformed header */
	DROP_REDIRECT_FAILED    = 132, /* bpf_redirect_peer refused the target */
	DROP_UNKNOWN_ENDPOINT   = 133, /* routed to the node for an address no endpoint holds */
};

#endif /* __SETA_DROP_H */
