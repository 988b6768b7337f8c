/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Reading the L4 part of a packet into a conntrack tuple and the "port"
 * policy matches on. */
#ifndef __SETA_L4_H
#define __SETA_L4_H

#include <linux/tcp.h>
#include <linux/udp.h>
#include "common.h"
#include "conntrack.h"

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

/* What policy matches a packet on, besides the peer. */
struct l4_info {
	__u8   proto;
	__be16 dport;   /* TCP/UDP/SCTP destination port; ICMP type, as a port */
	__u8   closing; /* TCP FIN or RST */
	__u8   related; /* ICMP error: belongs to another flow, no policy */
};

/* parse_l4 fills the ports of t and l from the L4 header at off. Packets
 * whose L4 header is missing or truncated keep zero ports. */
static __always_inline void parse_l4(struct __sk_buff *skb, __u32 off, __u8 proto, int v6,
				     struct ct_key *t, struct l4_info *l)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	l->proto = proto;
	t->proto = proto;
	if (off > 256)
		return;
	switch (proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = data + off;

		if ((void *)(th + 1) > data_end)
			return;
		t->sport = th->source;
		t->dport = th->dest;
		l->dport = th->dest;
		l->closing = th->fin || th->rst;
		break;
	}
	case IPPROTO_UDP:
	case IPPROTO_SCTP: {
		/* SCTP's common header starts with the same two ports. */
		struct udphdr *uh = data + off;

		if ((void *)(uh + 1) > data_end)
			return;
		t->sport = uh->source;
		t->dport = uh->dest;
		l->dport = uh->dest;
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* type, code, checksum, identifier: the first 6 bytes of both. */
		__u8 *ic = data + off;
		__u8 type;
		__be16 id;

		if ((void *)(ic + 6) > data_end)
			return;
		type = ic[0];
		__builtin_memcpy(&id, ic + 4, 2);
		l->dport = bpf_htons(type);
		if ((!v6 && type == 8) || (v6 && type == 128)) {        /* echo request */
			t->sport = id;
		} else if ((!v6 && type == 0) || (v6 && type == 129)) { /* echo reply */
			t->dport = id;
		} else if ((!v6 && (type == 3 || type == 11 || type == 12)) ||
			   (v6 && type >= 1 && type <= 4)) {
			l->related = 1;
		}
		break;
	}
	}
}

#endif /* __SETA_L4_H */
