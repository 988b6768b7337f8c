/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing and the L3 rewrites done when routing between endpoints. */
#ifndef __SETA_L3_H
#define __SETA_L3_H

#include "common.h"
#include "maps.h"

#ifndef offsetof
#define offsetof(t, m) __builtin_offsetof(t, m)
#endif

/* Offsets into the skb: TTL and the IPv4 header checksum. */
#define IPV4_TTL_OFF   (ETH_HLEN + offsetof(struct iphdr, ttl))
#define IPV4_CSUM_OFF  (ETH_HLEN + offsetof(struct iphdr, check))
#define IPV6_HLIM_OFF  (ETH_HLEN + offsetof(struct ipv6hdr, hop_limit))

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

/* Decrements the IPv4 TTL and fixes the header checksum. Returns the TTL
 * before the decrement, or 0 when the packet cannot be rewritten. */
static __always_inline int ipv4_dec_ttl(struct __sk_buff *skb, struct iphdr *ip4)
{
	__u8 ttl = ip4->ttl;
	__u16 old, new;

	if (ttl <= 1)
		return 0;
	/* The checksum covers the 16-bit word holding TTL and protocol. */
	old = bpf_htons((__u16)ttl << 8);
	new = bpf_htons((__u16)(ttl - 1) << 8);
	if (bpf_l3_csum_replace(skb, IPV4_CSUM_OFF, old, new, 2) < 0)
		return 0;
	ttl--;
	if (bpf_skb_store_bytes(skb, IPV4_TTL_OFF, &ttl, 1, 0) < 0)
		return 0;
	return ttl + 1;
}

static __always_inline int ipv6_dec_hoplimit(struct __sk_buff *skb, struct ipv6hdr *ip6)
{
	__u8 hl = ip6->hop_limit;

	if (hl <= 1)
		return 0;
	hl--;
	if (bpf_skb_store_bytes(skb, IPV6_HLIM_OFF, &hl, 1, 0) < 0)
		return 0;
	return hl + 1;
}

/* Rewrites the Ethernet header as a router would when delivering to ep:
 * destination is the container's MAC, source is its gateway (host veth). */
static __always_inline int rewrite_l2(struct __sk_buff *skb, const struct endpoint_info *ep)
{
	__u8 macs[12];

	__builtin_memcpy(macs, ep->mac, 6);
	__builtin_memcpy(macs + 6, ep->node_mac, 6);
	return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0);
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
