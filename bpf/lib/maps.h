/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps shared by the endpoint programs. Every map is pinned by name under
 * the agent's bpffs directory so it outlives the agent process; sizes are the
 * defaults and the agent overrides max_entries at load time from its config.
 * Go views of these maps live in pkg/datapath/maps/. */
#ifndef __SETA_MAPS_H
#define __SETA_MAPS_H

#include "common.h"

/* Key of the endpoints map: an endpoint address. IPv4 uses the first four
 * bytes of addr and leaves the rest zero. */
struct endpoint_key {
	__u8 addr[16];
	__u8 family; /* enum addr_family */
	__u8 pad[3];
};

/* Value of the endpoints map: where and how to deliver to a local endpoint. */
struct endpoint_info {
	__u32 ifindex;     /* host-side veth */
	__u16 id;          /* endpoint ID */
	__u16 flags;       /* ENDPOINT_F_* */
	__u8  mac[6];      /* container-side (eth0) MAC */
	__u8  node_mac[6]; /* host-side veth MAC, the pod's gateway MAC */
	__u32 identity;    /* security identity */
};

/* Policy verdicts are reported but nothing is dropped. */
#define ENDPOINT_F_AUDIT 0x1
/* No policy enforces the endpoint's ingress (egress): the direction's only
 * policy entry is the allow-all one, which decides nothing and reports
 * nothing, so enforce() skips the lookups. Set by the agent only while
 * that holds (pkg/enforcer), so an entry without it (one written before
 * these flags existed, say) just costs the lookups. */
#define ENDPOINT_F_INGRESS_OPEN 0x2
#define ENDPOINT_F_EGRESS_OPEN  0x4

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65535);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_endpoints SEC(".maps");

/* Per-endpoint traffic counters, per CPU; summed in user space. An array
 * indexed by endpoint ID (IDs are 16 bits, so every ID has its slot): the
 * verifier inlines array lookups, where a hash lookup is a call plus a
 * hash. The agent zeroes an ID's slot when its endpoint goes, so an ID that
 * is used again starts from zero. */
struct endpoint_stats {
	__u64 rx_packets; /* delivered to the container */
	__u64 rx_bytes;
	__u64 tx_packets; /* sent by the container */
	__u64 tx_bytes;
};

#define ENDPOINT_ID_SLOTS 65536

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32); /* endpoint ID */
	__type(value, struct endpoint_stats);
	__uint(max_entries, ENDPOINT_ID_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_ep_stats SEC(".maps");

/* Node-wide counters by (reason, direction), per CPU, in an array indexed
 * by metrics_index. Reason 0 counts forwarded packets; other reasons are
 * enum drop_reason (8 bits), directions enum traffic_dir (1 bit). */
struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

#define METRICS_SLOTS 512

static __always_inline __u32 metrics_index(__u8 reason, __u8 dir)
{
	return ((__u32)reason << 1) | (dir & 1);
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32); /* metrics_index(reason, dir) */
	__type(value, struct metrics_value);
	__uint(max_entries, METRICS_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seta_metrics SEC(".maps");

#endif /* __SETA_MAPS_H */
