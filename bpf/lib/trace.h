/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Trace events (forwarded packets) and their aggregation, as Cilium's
 * --monitor-aggregation. The configuration is load-time constants (.rodata,
 * set by pkg/datapath/loader before load): the verifier sees their values
 * and removes the code a setting does not use, so trace events that are
 * off cost nothing per packet.
 *
 * Seta sees each packet once, where it decides to forward it, so there is
 * no receive-side duplicate to hide: levels none, lowest and low trace every
 * forwarded packet. Medium and maximum trace a packet only when conntrack
 * says it is news (lib/conntrack.h, ct_report): the first packet of a
 * connection, the first reply, TCP flags (of the configured mask) not seen
 * before in the packet's direction, or a report interval passed since the
 * direction's last trace. The difference between medium and maximum is only
 * the default flag mask, which user space resolves. */
#ifndef __SETA_TRACE_H
#define __SETA_TRACE_H

#include "common.h"

/* Where a trace event was observed: Cilium's numbering (its monitor API,
 * Hubble's TraceObservationPoint), so flows carry codes Hubble understands.
 * Seta emits TRACE_TO_LXC (delivered to a local endpoint) and TRACE_TO_STACK
 * (passed to the node's stack); the others are reserved. Never renumber. */
enum trace_point {
	TRACE_TO_LXC       = 0,
	TRACE_TO_PROXY     = 1,
	TRACE_TO_HOST      = 2,
	TRACE_TO_STACK     = 3,
	TRACE_TO_OVERLAY   = 4,
	TRACE_FROM_LXC     = 5,
	TRACE_FROM_PROXY   = 6,
	TRACE_FROM_HOST    = 7,
	TRACE_FROM_STACK   = 8,
	TRACE_FROM_OVERLAY = 9,
	TRACE_FROM_NETWORK = 10,
	TRACE_TO_NETWORK   = 11,
};

/* The reason byte of a trace event: the packet's conntrack state, in
 * Cilium's numbering (Hubble's TraceReason). */
enum trace_reason {
	TRACE_REASON_POLICY         = 0, /* opens a connection (Cilium: CT_NEW) */
	TRACE_REASON_CT_ESTABLISHED = 1, /* forward packet of a tracked connection */
	TRACE_REASON_CT_REPLY       = 2, /* answers a tracked connection */
	TRACE_REASON_CT_RELATED     = 3, /* ICMP error about a tracked connection */
};

/* Cilium's aggregation levels. */
enum monitor_aggregation {
	MONITOR_AGGREGATION_NONE    = 0,
	MONITOR_AGGREGATION_LOWEST  = 1,
	MONITOR_AGGREGATION_LOW     = 2,
	MONITOR_AGGREGATION_MEDIUM  = 3,
	MONITOR_AGGREGATION_MAXIMUM = 4,
};

/* Load-time configuration (pkg/datapath/loader sets every one; these
 * defaults only matter to other loaders). */
const volatile __u8  seta_trace_events = 0;                 /* 1: emit trace events */
const volatile __u8  seta_monitor_aggregation = MONITOR_AGGREGATION_MEDIUM;
const volatile __u8  seta_monitor_aggregation_flags = 0xff; /* TCP flags byte mask */
const volatile __u64 seta_monitor_aggregation_interval = 5000000000ULL; /* ns */

/* Conntrack keeps the time of a direction's last trace in 16 bits, in ticks
 * of 2^30 ns (~1.07 s): a shift instead of a division per packet, and the
 * u16 wraps after ~19.5 hours (see ct_report). */
#define CT_REPORT_SHIFT 30

/* The report interval in ticks, rounded up (user space bounds it). */
static __always_inline __u16 trace_interval_ticks(void)
{
	return (seta_monitor_aggregation_interval + (1ULL << CT_REPORT_SHIFT) - 1) >> CT_REPORT_SHIFT;
}

/* trace_aggregated reports whether conntrack decides which packets get a
 * trace, i.e. whether it must keep its per-direction report state. */
static __always_inline int trace_aggregated(void)
{
	return seta_trace_events && seta_monitor_aggregation >= MONITOR_AGGREGATION_MEDIUM;
}

/* What a packet's conntrack lookup says about tracing it. */
struct trace_ctx {
	__u8 reason; /* enum trace_reason */
	__u8 report; /* conntrack's decision under aggregation */
};

/* trace_wanted reports whether a forwarded packet gets a trace event. */
static __always_inline int trace_wanted(const struct trace_ctx *tr)
{
	if (!seta_trace_events)
		return 0;
	if (seta_monitor_aggregation < MONITOR_AGGREGATION_MEDIUM)
		return 1;
	return tr->report;
}

#endif /* __SETA_TRACE_H */
