// Package metrics derives Hubble's Prometheus metrics from flows, with
// Hubble's metric names, label names and label values, so dashboards and
// alerts written for Cilium's Hubble work against seta unchanged.
//
// The Processor sits on the decoder goroutine and sees every flow, so
// ProcessFlow must be cheap and must never block: it computes small
// comparable keys from the flow (no strings, no allocations) and looks the
// counter child up in a per-metric cache; label strings are built only the
// first time a key is seen.
//
// It must not import cilium/ebpf or netlink: it works on flowpb.Flow only.
package metrics

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/prometheus/client_golang/prometheus"
)

// Namespace prefixes every metric name, as in Hubble.
const Namespace = "hubble"

// The metric families, by the names Hubble's --hubble-metrics flag uses.
const (
	MetricFlow             = "flow"
	MetricDrop             = "drop"
	MetricTCP              = "tcp"
	MetricPortDistribution = "port-distribution"
	MetricICMP             = "icmp"
	MetricPolicy           = "policy"
	MetricFlowsToWorld     = "flows-to-world"
)

// Names lists every metric family New accepts, sorted.
func Names() []string {
	return []string{MetricDrop, MetricFlow, MetricFlowsToWorld, MetricICMP, MetricPolicy, MetricPortDistribution, MetricTCP}
}

// unsupported are Hubble families seta cannot feed: they need L7 visibility
// (a proxy) or fields the datapath does not report. Naming them in the
// error is kinder than "unknown".
var unsupported = map[string]string{
	"dns":    "needs L7 (DNS proxy) visibility",
	"http":   "needs L7 (HTTP proxy) visibility",
	"httpV2": "needs L7 (HTTP proxy) visibility",
	"kafka":  "needs L7 (Kafka proxy) visibility",
	"sctp":   "the datapath does not report SCTP chunk types",
}

// Lost-event sources: Hubble's values of the source label of
// hubble_lost_events_total.
const (
	// LostSourcePerfRing: events the datapath could not write because the
	// event ring (seta_events) was full.
	LostSourcePerfRing = "perf_event_ring_buffer"
	// LostSourceObserverQueue: events read from the datapath but dropped
	// because the decoder's queue was full.
	LostSourceObserverQueue = "observer_events_queue"
	// LostSourceHubbleRing: flows a follower of the flow ring missed
	// because it was too slow.
	LostSourceHubbleRing = "hubble_ring_buffer"
)

// Options configures a Processor.
type Options struct {
	// Metrics are the enabled families, in the syntax of Hubble's
	// --hubble-metrics: a name, optionally followed by ":" and options
	// separated by ";" (only flows-to-world takes options: any-drop,
	// port, syn-only). An element may itself hold several entries
	// separated by commas or spaces, so the raw flag value works as a
	// single element. Empty enables no flow metrics (lost events are
	// still exported).
	Metrics []string

	// LostEvents are read on every scrape, by source (see LostSource*);
	// each returns a cumulative count. Values pushed with SetLostEvents
	// or AddLostEvents for the same source are added to it.
	LostEvents map[string]func() (uint64, error)
}

// Processor turns flows into counters. It is safe for concurrent use; a nil
// *Processor ignores everything, so callers need no "enabled" check.
type Processor struct {
	enabled []string

	flows  *vecCache[flowKey]
	drops  *vecCache[dropKey]
	tcp    *vecCache[tcpKey]
	ports  *vecCache[portKey]
	icmp   *vecCache[icmpKey]
	policy *vecCache[policyKey]
	world  *vecCache[worldKey]
	worldO worldOptions

	lost *lostCollector
}

// worldOptions are Hubble's options of flows-to-world.
type worldOptions struct {
	anyDrop bool // count every drop, not only policy denials
	port    bool // add the destination port as label "port"
	synOnly bool // for TCP, count only non-reply SYNs (connection attempts)
}

// New registers the enabled metrics (and hubble_lost_events_total, always)
// with reg.
func New(reg prometheus.Registerer, opts Options) (*Processor, error) {
	if reg == nil {
		return nil, errors.New("hubble metrics: nil registerer")
	}
	specs, err := parse(opts.Metrics)
	if err != nil {
		return nil, err
	}
	p := &Processor{lost: newLostCollector(opts.LostEvents)}
	var cs []prometheus.Collector
	for _, s := range specs {
		p.enabled = append(p.enabled, s.name)
		switch s.name {
		case MetricFlow:
			p.flows = newVecCache("flows_processed_total", "Total number of flows processed",
				[]string{"protocol", "type", "subtype", "verdict"}, flowKey.labels)
			cs = append(cs, p.flows.vec)
		case MetricDrop:
			p.drops = newVecCache("drop_total", "Number of drops",
				[]string{"reason", "protocol"}, dropKey.labels)
			cs = append(cs, p.drops.vec)
		case MetricTCP:
			p.tcp = newVecCache("tcp_flags_total", "TCP flag occurrences",
				[]string{"flag", "family"}, tcpKey.labels)
			cs = append(cs, p.tcp.vec)
		case MetricPortDistribution:
			p.ports = newVecCache("port_distribution_total", "Numbers of packets distributed by destination port",
				[]string{"protocol", "port"}, portKey.labels)
			cs = append(cs, p.ports.vec)
		case MetricICMP:
			p.icmp = newVecCache("icmp_total", "Number of ICMP messages",
				[]string{"family", "type"}, icmpKey.labels)
			cs = append(cs, p.icmp.vec)
		case MetricPolicy:
			p.policy = newVecCache("policy_verdicts_total", "Total number of Cilium network policy verdicts",
				[]string{"direction", "match", "action"}, policyKey.labels)
			cs = append(cs, p.policy.vec)
		case MetricFlowsToWorld:
			p.worldO = s.world
			labels, lf := []string{"protocol", "verdict"}, worldKey.labels
			if s.world.port {
				labels, lf = append(labels, "port"), worldKey.labelsWithPort
			}
			p.world = newVecCache("flows_to_world_total", "Total number of flows to reserved:world", labels, lf)
			cs = append(cs, p.world.vec)
		}
	}
	cs = append(cs, p.lost)
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			// Leave the registry as we found it.
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("hubble metrics: %w", err)
		}
	}
	return p, nil
}

// Validate checks --hubble-metrics entries without registering anything,
// so configuration can be rejected before the agent starts.
func Validate(metrics []string) error {
	_, err := parse(metrics)
	return err
}

// Enabled returns the enabled families, in the order given.
func (p *Processor) Enabled() []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.enabled)
}

type spec struct {
	name  string
	world worldOptions
}

// parse validates the --hubble-metrics entries.
func parse(entries []string) ([]spec, error) {
	var out []spec
	seen := map[string]bool{}
	for _, e := range entries {
		for _, item := range strings.FieldsFunc(e, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
			name, optStr, hasOpts := strings.Cut(item, ":")
			if !slices.Contains(Names(), name) {
				if why, ok := unsupported[name]; ok {
					return nil, fmt.Errorf("hubble metric %q is not supported by seta (%s); valid metrics: %s",
						name, why, strings.Join(Names(), ", "))
				}
				return nil, fmt.Errorf("unknown hubble metric %q; valid metrics: %s", name, strings.Join(Names(), ", "))
			}
			if seen[name] {
				return nil, fmt.Errorf("hubble metric %q is listed twice", name)
			}
			seen[name] = true
			s := spec{name: name}
			if hasOpts {
				for _, o := range strings.Split(optStr, ";") {
					if err := s.option(o); err != nil {
						return nil, err
					}
				}
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func (s *spec) option(o string) error {
	if o == "" {
		return nil
	}
	key, _, _ := strings.Cut(o, "=")
	if s.name == MetricFlowsToWorld {
		switch o {
		case "any-drop":
			s.world.anyDrop = true
			return nil
		case "port":
			s.world.port = true
			return nil
		case "syn-only":
			s.world.synOnly = true
			return nil
		}
	}
	switch key {
	case "sourceContext", "destinationContext", "sourceEgressContext", "sourceIngressContext",
		"destinationEgressContext", "destinationIngressContext", "labelsContext":
		// Per-pod labels multiply the series; seta keeps the label sets
		// fixed so ProcessFlow stays cheap and cardinality bounded.
		return fmt.Errorf("hubble metric %q: context option %q is not supported", s.name, key)
	}
	if s.name == MetricFlowsToWorld {
		return fmt.Errorf("hubble metric %q: unknown option %q (valid: any-drop, port, syn-only)", s.name, o)
	}
	return fmt.Errorf("hubble metric %q takes no options (got %q)", s.name, o)
}

// Cilium monitor message types (pkg/monitor/api MessageType*), as
// flow.EventType.Type carries them.
const (
	typeDrop          = 1
	typeCapture       = 3
	typeTrace         = 4
	typePolicyVerdict = 5
	typeAccessLog     = 129
)

// Reserved identities that change how a flow counts (Cilium's numbering,
// which pkg/identity shares).
const (
	identityHost  = 1
	identityWorld = 2
)

// ProcessFlow counts one flow in every enabled metric. It never blocks on
// I/O and allocates only the first time a label combination is seen.
func (p *Processor) ProcessFlow(f *flowpb.Flow) {
	if p == nil || f == nil {
		return
	}
	typ := f.GetEventType().GetType()
	verdict := f.GetVerdict()
	proto := flowProtocol(f, typ)
	l4 := f.GetL4()
	// Hubble counts TCP flags and ports only on packets that went through;
	// a dropped SYN is not a connection attempt that happened.
	passed := verdict == flowpb.Verdict_FORWARDED || verdict == flowpb.Verdict_REDIRECTED

	if p.flows != nil {
		k := flowKey{typ: typ, proto: proto, verdict: verdict}
		if typ == typeTrace {
			// Hubble keys observation points as uint8.
			k.sub = int32(uint8(f.GetEventType().GetSubType()))
		}
		p.flows.inc(k)
	}

	if p.drops != nil && verdict == flowpb.Verdict_DROPPED {
		p.drops.inc(dropKey{reason: f.GetDropReasonDesc(), proto: proto})
	}

	if p.tcp != nil && passed {
		if tcp := l4.GetTCP(); tcp != nil && tcp.GetFlags() != nil && f.GetIP() != nil {
			fam, fl := f.GetIP().GetIpVersion(), tcp.GetFlags()
			if fl.GetFIN() {
				p.tcp.inc(tcpKey{flag: flagFIN, family: fam})
			}
			if fl.GetSYN() {
				if fl.GetACK() {
					p.tcp.inc(tcpKey{flag: flagSYNACK, family: fam})
				} else {
					p.tcp.inc(tcpKey{flag: flagSYN, family: fam})
				}
			}
			if fl.GetRST() {
				p.tcp.inc(tcpKey{flag: flagRST, family: fam})
			}
		}
	}

	// A reply's destination port is the client's ephemeral port: noise.
	// A flow that does not know whether it is a reply is skipped too.
	if p.ports != nil && passed && f.GetIsReply() != nil && !f.GetIsReply().GetValue() {
		if pr, port, ok := destPort(l4); ok {
			p.ports.inc(portKey{proto: pr, port: port})
		}
	}

	if p.icmp != nil {
		switch {
		case l4.GetICMPv4() != nil:
			i := l4.GetICMPv4()
			p.icmp.inc(icmpKey{typ: uint8(i.GetType()), code: uint8(i.GetCode())})
		case l4.GetICMPv6() != nil:
			i := l4.GetICMPv6()
			p.icmp.inc(icmpKey{v6: true, typ: uint8(i.GetType()), code: uint8(i.GetCode())})
		}
	}

	if p.policy != nil {
		switch typ {
		case typePolicyVerdict:
			// The node may always reach its endpoints (allow-localhost),
			// so its verdicts say nothing about policy.
			if f.GetSource().GetIdentity() != identityHost {
				p.policy.inc(policyKey{dir: f.GetTrafficDirection(), match: f.GetPolicyMatchType(), verdict: verdict})
			}
		case typeAccessLog:
			p.policy.inc(policyKey{dir: f.GetTrafficDirection(), l7: proto, verdict: verdict})
		}
	}

	if p.world != nil {
		p.processWorld(f, typ, proto, verdict, l4)
	}
}

func (p *Processor) processWorld(f *flowpb.Flow, typ int32, proto protoID, verdict flowpb.Verdict, l4 *flowpb.Layer4) {
	if l4 == nil || f.GetEventType() == nil || !toWorld(f.GetDestination()) {
		return
	}
	// A drop for another reason than policy (no route, bad checksum...) is
	// not traffic to the world the user asked about, unless any-drop.
	if verdict == flowpb.Verdict_DROPPED && !p.worldO.anyDrop && f.GetDropReasonDesc() != flowpb.DropReason_POLICY_DENIED {
		return
	}
	reply := f.GetIsReply().GetValue()
	if verdict != flowpb.Verdict_DROPPED && reply {
		return
	}
	if p.worldO.synOnly && (reply || !l4.GetTCP().GetFlags().GetSYN()) {
		return
	}
	k := worldKey{proto: proto, verdict: verdict}
	if p.worldO.port {
		k.port = -1 // no port label value for protocols without ports
		switch l := l4.GetProtocol().(type) {
		case *flowpb.Layer4_TCP:
			k.port = int32(l.TCP.GetDestinationPort())
		case *flowpb.Layer4_UDP:
			k.port = int32(l.UDP.GetDestinationPort())
		case *flowpb.Layer4_SCTP:
			k.port = int32(l.SCTP.GetDestinationPort())
		}
	}
	p.world.inc(k)
}

// toWorld reports whether a flow's destination is outside the cluster: by
// label as Hubble does, or by the reserved world identity when the flow
// carries no labels.
func toWorld(ep *flowpb.Endpoint) bool {
	if ep == nil {
		return false
	}
	if ep.GetIdentity() == identityWorld {
		return true
	}
	for _, l := range ep.GetLabels() {
		switch l {
		case "reserved:world", "reserved:world-ipv4", "reserved:world-ipv6":
			return true
		}
	}
	return false
}

// destPort is the port Hubble's port-distribution counts: the destination
// port, or 0 for ICMP.
func destPort(l4 *flowpb.Layer4) (protoID, uint16, bool) {
	switch l := l4.GetProtocol().(type) {
	case *flowpb.Layer4_TCP:
		return protoTCP, uint16(l.TCP.GetDestinationPort()), true
	case *flowpb.Layer4_UDP:
		return protoUDP, uint16(l.UDP.GetDestinationPort()), true
	case *flowpb.Layer4_SCTP:
		return protoSCTP, uint16(l.SCTP.GetDestinationPort()), true
	case *flowpb.Layer4_ICMPv4:
		return protoICMPv4, 0, true
	case *flowpb.Layer4_ICMPv6:
		return protoICMPv6, 0, true
	}
	return 0, 0, false
}
