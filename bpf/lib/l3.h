/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing and the L3 rewrites done when routing between endpoints. */
#ifndef __SETA_L3_H
#define __SETA_L3_H

#include "common.h"
#include "maps.h"

#ifndef offsetof
#define offsetof(t, m) __builtin_offsetof(t, m)
#endif

/* Offset into the skb of the IPv4 header checksum (for helpers). */
#define IPV4_CSUM_OFF  (ETH_HLEN + offsetof(struct iphdr, check))

static __always_inline void key_from_ipv4(struct endpoint_key *k, __be32 addr)
{
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->addr, &addr, 4);
	k->family = ADDR_FAMILY_IPV4;
}

static __always_inline void key_from_ipv6(struct endpoint_key *k, const struct in6_addr *addr)
{
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->addr, addr, 16);
	k->family = ADDR_FAMILY_IPV6;
}

/* The rewrites below write the packet directly: the caller has checked
 * the header against data_end, and a tc program that writes packet data
 * gets a private copy of a cloned head from the kernel before it runs, so
 * no helper call (and no pointer invalidation) is needed. */

/* Decrements the IPv4 TTL and fixes the header checksum incrementally
 * (RFC 1624, as the kernel's ip_decrease_ttl does: the TTL is the high
 * byte of its 16-bit word, so the sum grows by 0x0100). The header's own
 * sum stays zero, so a CHECKSUM_COMPLETE value stays valid. Returns the TTL
 * before the decrement, or 0 when it would reach zero. */
static __always_inline int ipv4_dec_ttl(struct iphdr *ip4)
{
	__u8 ttl = ip4->ttl;
	__u32 check;

	if (ttl <= 1)
		return 0;
	check = (__u32)ip4->check + (__u32)bpf_htons(0x0100);
	ip4->check = (__sum16)(check + (check >= 0xffff));
	ip4->ttl = ttl - 1;
	return ttl;
}

static __always_inline int ipv6_dec_hoplimit(struct ipv6hdr *ip6)
{
	__u8 hl = ip6->hop_limit;

	if (hl <= 1)
		return 0;
	ip6->hop_limit = hl - 1;
	return hl;
}

/* Rewrites the Ethernet header as a router would when delivering to ep:
 * destination is the container's MAC, source is its gateway (host veth).
 * -1 when the packet has no room for the header. */
static __always_inline int rewrite_l2(struct __sk_buff *skb, const struct endpoint_info *ep)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, ep->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, ep->node_mac, ETH_ALEN);
	return 0;
}

/* Neighbour discovery, MLD and the like, which belong to the host stack. */
static __always_inline int ipv6_is_linklocal_or_multicast(const struct ipv6hdr *ip6)
{
	/* fe80::/10 source, :: source (DAD), or ff00::/8 destination: neighbour
	 * discovery and friends, which belong to the host stack. */
	__u8 s0 = ip6->saddr.in6_u.u6_addr8[0], s1 = ip6->saddr.in6_u.u6_addr8[1];

	if (s0 == 0xfe && (s1 & 0xc0) == 0x80)
		return 1;
	if (ip6->daddr.in6_u.u6_addr8[0] == 0xff)
		return 1;
	if (!(ip6->saddr.in6_u.u6_addr32[0] | ip6->saddr.in6_u.u6_addr32[1] |
	      ip6->saddr.in6_u.u6_addr32[2] | ip6->saddr.in6_u.u6_addr32[3]))
		return 1;
	return 0;
}

/* IPv4 multicast and limited broadcast destinations. */
static __always_inline int ipv4_is_multicast_or_broadcast(__be32 daddr)
{
	return (bpf_ntohl(daddr) >> 28) == 0xe || daddr == 0xffffffff;
}

#endif /* __SETA_L3_H */
