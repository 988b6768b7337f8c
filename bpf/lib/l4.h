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
	__u8   tcp_flags; /* the TCP header's flags byte */
	__u8   related; /* ICMP error whose quoted packet was parsed into inner */
	struct ct_key inner; /* the packet an ICMP error reports on */
};

/* parse_inner reads the packet quoted by an ICMP error at off (the quoted
 * IP header) into l->inner, as the tuple that packet had. */
static __always_inline int parse_inner(struct __sk_buff *skb, __u32 off, int v6, struct l4_info *l)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 l4off;
	__u8 proto;

	if (off > 256)
		return 0;
	if (!v6) {
		struct iphdr *ip4 = data + off;

		if ((void *)(ip4 + 1) > data_end)
			return 0;
		__builtin_memcpy(l->inner.saddr, &ip4->saddr, 4);
		__builtin_memcpy(l->inner.daddr, &ip4->daddr, 4);
		l->inner.family = ADDR_FAMILY_IPV4;
		proto = ip4->protocol;
		l4off = off + ip4->ihl * 4;
	} else {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(l->inner.saddr, &ip6->saddr, 16);
		__builtin_memcpy(l->inner.daddr, &ip6->daddr, 16);
		l->inner.family = ADDR_FAMILY_IPV6;
		proto = ip6->nexthdr;
		l4off = off + sizeof(struct ipv6hdr);
	}
	l->inner.proto = proto;
	if (l4off > 320)
		return 0;
	/* Errors quote at least the first 8 bytes of the L4 header: both
	 * ports, or an echo's type and identifier. */
	__u8 *q = data + l4off;
	if ((void *)(q + 8) > data_end)
		return 0;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP) {
		__builtin_memcpy(&l->inner.sport, q, 2);
		__builtin_memcpy(&l->inner.dport, q + 2, 2);
	} else if ((proto == IPPROTO_ICMP && q[0] == 8) || (proto == IPPROTO_ICMPV6 && q[0] == 128)) {
		__builtin_memcpy(&l->inner.sport, q + 4, 2);
	}
	return 1;
}

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
		l->tcp_flags = ((__u8 *)th)[13];
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
			/* An error: related to the flow it quotes, if we track it. */
			l->related = parse_inner(skb, off + 8, v6, l);
		}
		break;
	}
	}
}

#endif /* __SETA_L4_H */
