/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Finding the service entry a destination addresses, shared by every
 * translating program: socket LB (bpf_sock.c) and the tc path (bpf_lxc.c,
 * bpf_netdev.c). Apart from lib/lb.h because it needs the ipcache, which
 * the selection test harness (bpf/tests) does without. */
#ifndef __SETA_LB_FRONTEND_H
#define __SETA_LB_FRONTEND_H

#include "common.h"
#include "policy.h"
#include "lb.h"

/* The NodePort range (inclusive), set by pkg/datapath/loader. */
const volatile __u16 seta_nodeport_min = 30000;
const volatile __u16 seta_nodeport_max = 32767;

/* lb_is_nodeport reports whether addr:port (network order; addr 16 bytes,
 * IPv4 in the first four) is a NodePort destination: a port in the NodePort
 * range on one of the node's own addresses (the ipcache gives them the host
 * identity). The range check comes first, so other traffic never pays for
 * the ipcache lookup. */
static __always_inline int lb_is_nodeport(const __u8 *addr, __u8 family, __be16 port)
{
	__u16 p = bpf_ntohs(port);

	if (p < seta_nodeport_min || p > seta_nodeport_max)
		return 0;
	if (family == ADDR_FAMILY_IPV4)
		return ipcache_identity4(*(const __be32 *)addr) == IDENTITY_HOST;
	return ipcache_identity6((const struct in6_addr *)addr) == IDENTITY_HOST;
}

/* lb_lookup_frontend is lb_lookup_service that also finds a NodePort:
 * when the address itself is no service and is a NodePort destination,
 * the entry that stands for every node address (the unspecified address)
 * serves it. key->addr is zeroed in that case. A destination that is not
 * a service costs one hash lookup (plus the ipcache lookup on ports of the
 * NodePort range). */
static __always_inline const struct lb_service_value *
lb_lookup_frontend(struct lb_service_key *key, int internal)
{
	const struct lb_service_value *svc;

	svc = lb_lookup_service(key, internal);
	if (svc || !lb_is_nodeport(key->addr, key->family, key->port))
		return svc;
	__builtin_memset(key->addr, 0, sizeof(key->addr));
	return lb_lookup_service(key, internal);
}

#endif /* __SETA_LB_FRONTEND_H */
