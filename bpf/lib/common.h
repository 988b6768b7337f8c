/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Common includes, return codes and helpers for every Seta program. */
#ifndef __SETA_COMMON_H
#define __SETA_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* tc verdicts. Under tcx the same values mean TCX_NEXT (-1), TCX_PASS (0),
 * TCX_DROP (2) and TCX_REDIRECT (7), so one program serves both attach modes. */
#define CTX_ACT_OK       TC_ACT_OK
#define CTX_ACT_DROP     TC_ACT_SHOT
#define CTX_ACT_REDIRECT TC_ACT_REDIRECT

/* A BPF-to-BPF call: the function gets its own stack frame, so large
 * locals of rarely taken paths (the ICMP error, NAT setup) do not add up in
 * the caller's 512 bytes. Marked unused: not every program that includes
 * a header calls every one. */
#define __subprog __attribute__((noinline, unused))

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Address families as stored in endpoint_key.family. Mirrored in Go by the
 * generated bpfAddrFamily constants (pkg/datapath/bpf). */
enum addr_family {
	ADDR_FAMILY_IPV4 = 4,
	ADDR_FAMILY_IPV6 = 6,
};

/* Traffic direction, from the endpoint's point of view. */
enum traffic_dir {
	DIR_EGRESS  = 0, /* leaving the container */
	DIR_INGRESS = 1, /* entering the container */
};

#endif /* __SETA_COMMON_H */
