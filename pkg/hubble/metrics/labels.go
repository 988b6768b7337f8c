package metrics

import (
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/prometheus/client_golang/prometheus"
)

// vecCache maps a small comparable key to its counter child. Keys are
// computed from the flow without building strings; the label strings are
// built by labels only on the first sight of a key. A hit costs a map
// lookup in a published map that is never modified (no lock, no atomic
// read-modify-write: with seven families, the read locks alone were a
// tenth of the decoder's time per flow); a key missing from it is found or
// added under the mutex in the map of all keys, which is published again
// once the misses since the last publication reach its size, so keys that
// keep coming are soon hits and copying stays linear in the number of keys.
// The number of keys is bounded by the label sets (the largest is
// port-distribution: protocols × 65536 ports).
type vecCache[K comparable] struct {
	vec    *prometheus.CounterVec
	labels func(K) []string

	read atomic.Pointer[map[K]prometheus.Counter]

	mu     sync.Mutex
	all    map[K]prometheus.Counter
	misses int
}

func newVecCache[K comparable](name, help string, labelNames []string, labels func(K) []string) *vecCache[K] {
	return &vecCache[K]{
		vec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: name, Help: help,
		}, labelNames),
		labels: labels,
		all:    map[K]prometheus.Counter{},
	}
}

func (c *vecCache[K]) inc(k K) {
	if m := c.read.Load(); m != nil {
		if ctr, ok := (*m)[k]; ok {
			ctr.Inc()
			return
		}
	}
	c.miss(k).Inc()
}

// miss is the slow path, kept out of inc so inc stays small.
func (c *vecCache[K]) miss(k K) prometheus.Counter {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctr, ok := c.all[k]
	if !ok {
		ctr = c.vec.WithLabelValues(c.labels(k)...)
		c.all[k] = ctr
	}
	if c.misses++; c.misses >= len(c.all) {
		m := maps.Clone(c.all)
		c.read.Store(&m)
		c.misses = 0
	}
	return ctr
}

// protoID is Hubble's "protocol" label value (v1.FlowProtocol) as a number.
type protoID uint8

const (
	protoUnknownFlow protoID = iota
	protoUnknownL4
	protoUnknownL7
	protoTCP
	protoUDP
	protoICMPv4
	protoICMPv6
	protoSCTP
	protoVRRP
	protoIGMP
	protoDNS
	protoHTTP
)

var protoNames = [...]string{
	protoUnknownFlow: "Unknown flow",
	protoUnknownL4:   "Unknown L4",
	protoUnknownL7:   "Unknown L7",
	protoTCP:         "TCP",
	protoUDP:         "UDP",
	protoICMPv4:      "ICMPv4",
	protoICMPv6:      "ICMPv6",
	protoSCTP:        "SCTP",
	protoVRRP:        "VRRP",
	protoIGMP:        "IGMP",
	protoDNS:         "DNS",
	protoHTTP:        "HTTP",
}

func (p protoID) String() string { return protoNames[p] }

// flowProtocol follows Hubble: L7 records name their application protocol,
// datapath events their L4 protocol, anything else is "Unknown flow".
func flowProtocol(f *flowpb.Flow, typ int32) protoID {
	switch typ {
	case typeAccessLog:
		switch f.GetL7().GetRecord().(type) {
		case *flowpb.Layer7_Dns:
			return protoDNS
		case *flowpb.Layer7_Http:
			return protoHTTP
		}
		return protoUnknownL7
	case typeDrop, typeTrace, typePolicyVerdict, typeCapture:
		switch f.GetL4().GetProtocol().(type) {
		case *flowpb.Layer4_TCP:
			return protoTCP
		case *flowpb.Layer4_UDP:
			return protoUDP
		case *flowpb.Layer4_ICMPv4:
			return protoICMPv4
		case *flowpb.Layer4_ICMPv6:
			return protoICMPv6
		case *flowpb.Layer4_SCTP:
			return protoSCTP
		case *flowpb.Layer4_VRRP:
			return protoVRRP
		case *flowpb.Layer4_IGMP:
			return protoIGMP
		}
		return protoUnknownL4
	}
	return protoUnknownFlow
}

// flowKey: hubble_flows_processed_total{protocol, type, subtype, verdict}.
type flowKey struct {
	typ     int32
	sub     int32 // trace observation point; 0 for other types
	proto   protoID
	verdict flowpb.Verdict
}

// traceObservationPoints are Cilium's trace observation points (the
// SubType of a trace event) by Hubble's names.
var traceObservationPoints = [...]string{
	"to-endpoint", "to-proxy", "to-host", "to-stack", "to-overlay",
	"from-endpoint", "from-proxy", "from-host", "from-stack", "from-overlay",
	"from-network", "to-network", "from-crypto", "to-crypto",
}

func (k flowKey) labels() []string {
	var typ, sub string
	switch k.typ {
	case typeAccessLog:
		typ = "L7"
		switch k.proto {
		case protoDNS, protoHTTP:
			sub = k.proto.String()
		}
	case typeDrop:
		typ = "Drop"
	case typeCapture:
		typ = "Capture"
	case typeTrace:
		typ = "Trace"
		if int(k.sub) < len(traceObservationPoints) {
			sub = traceObservationPoints[k.sub]
		}
	case typePolicyVerdict:
		typ = "PolicyVerdict"
	default:
		typ, sub = "Unknown", strconv.Itoa(int(k.typ))
	}
	return []string{k.proto.String(), typ, sub, k.verdict.String()}
}

// dropKey: hubble_drop_total{reason, protocol}.
type dropKey struct {
	reason flowpb.DropReason
	proto  protoID
}

func (k dropKey) labels() []string { return []string{k.reason.String(), k.proto.String()} }

// tcpKey: hubble_tcp_flags_total{flag, family}.
type tcpKey struct {
	flag   uint8
	family flowpb.IPVersion
}

const (
	flagFIN uint8 = iota
	flagSYN
	flagSYNACK
	flagRST
)

var flagNames = [...]string{flagFIN: "FIN", flagSYN: "SYN", flagSYNACK: "SYN-ACK", flagRST: "RST"}

func (k tcpKey) labels() []string { return []string{flagNames[k.flag], k.family.String()} }

// portKey: hubble_port_distribution_total{protocol, port}.
type portKey struct {
	proto protoID
	port  uint16
}

func (k portKey) labels() []string {
	return []string{k.proto.String(), strconv.Itoa(int(k.port))}
}

// icmpKey: hubble_icmp_total{family, type}.
type icmpKey struct {
	v6   bool
	typ  uint8
	code uint8
}

func (k icmpKey) labels() []string {
	if k.v6 {
		return []string{"IPv6", icmpName(icmp6Types, k.typ, k.code)}
	}
	return []string{"IPv4", icmpName(icmp4Types, k.typ, k.code)}
}

// icmpType names an ICMP type and, for the types whose code means
// something, its codes. The spelling is the one Hubble's labels carry
// (gopacket's ICMPv4TypeCode/ICMPv6TypeCode String).
type icmpType struct {
	name  string
	codes []string // nil: the type has no meaningful code
}

var icmp4Types = map[uint8]icmpType{
	0: {name: "EchoReply"},
	3: {name: "DestinationUnreachable", codes: []string{"Net", "Host", "Protocol", "Port", "FragmentationNeeded",
		"SourceRoutingFailed", "NetUnknown", "HostUnknown", "SourceIsolated", "NetAdminProhibited",
		"HostAdminProhibited", "NetTOS", "HostTOS", "CommAdminProhibited", "HostPrecedence", "PrecedenceCutoff"}},
	4:  {name: "SourceQuench"},
	5:  {name: "Redirect", codes: []string{"Net", "Host", "TOS+Net", "TOS+Host"}},
	8:  {name: "EchoRequest"},
	9:  {name: "RouterAdvertisement"},
	10: {name: "RouterSolicitation"},
	11: {name: "TimeExceeded", codes: []string{"TTLExceeded", "FragmentReassemblyTimeExceeded"}},
	12: {name: "ParameterProblem", codes: []string{"PointerIndicatesError", "MissingOption", "BadLength"}},
	13: {name: "TimestampRequest"},
	14: {name: "TimestampReply"},
	15: {name: "InfoRequest"},
	16: {name: "InfoReply"},
	17: {name: "AddressMaskRequest"},
	18: {name: "AddressMaskReply"},
}

var icmp6Types = map[uint8]icmpType{
	1: {name: "DestinationUnreachable", codes: []string{"NoRouteToDst", "AdminProhibited", "BeyondScopeOfSrc",
		"AddressUnreachable", "PortUnreachable", "SrcAddressFailedPolicy", "RejectRouteToDst"}},
	2:   {name: "PacketTooBig"},
	3:   {name: "TimeExceeded", codes: []string{"HopLimitExceeded", "FragmentReassemblyTimeExceeded"}},
	4:   {name: "ParameterProblem", codes: []string{"ErroneousHeaderField", "UnrecognizedNextHeader", "UnrecognizedIPv6Option"}},
	128: {name: "EchoRequest"},
	129: {name: "EchoReply"},
	133: {name: "RouterSolicitation"},
	134: {name: "RouterAdvertisement"},
	135: {name: "NeighborSolicitation"},
	136: {name: "NeighborAdvertisement"},
	137: {name: "Redirect"},
}

func icmpName(types map[uint8]icmpType, typ, code uint8) string {
	t, ok := types[typ]
	switch {
	case !ok:
		return strconv.Itoa(int(typ)) + "(" + strconv.Itoa(int(code)) + ")"
	case t.codes == nil && code == 0:
		return t.name
	case int(code) < len(t.codes):
		return t.name + "(" + t.codes[code] + ")"
	}
	return t.name + "(Code: " + strconv.Itoa(int(code)) + ")"
}

// policyKey: hubble_policy_verdicts_total{direction, match, action}.
type policyKey struct {
	dir     flowpb.TrafficDirection
	match   uint32  // flow.PolicyMatchType, for L3/L4 verdicts
	l7      protoID // non-zero for L7 (proxy) verdicts
	verdict flowpb.Verdict
}

// policyMatchNames are Cilium's policy match types (flow.PolicyMatchType),
// lower-cased as Hubble's "match" label carries them.
var policyMatchNames = [...]string{"none", "l3-only", "l3-l4", "l4-only", "all", "l3-proto", "proto-only"}

func (k policyKey) labels() []string {
	var match string
	switch {
	case k.l7 == protoDNS:
		match = "l7/dns"
	case k.l7 == protoHTTP:
		match = "l7/http"
	case k.l7 != 0:
		match = "l7/"
	case int(k.match) < len(policyMatchNames):
		match = policyMatchNames[k.match]
	default:
		match = "unknown"
	}
	return []string{strings.ToLower(k.dir.String()), match, strings.ToLower(k.verdict.String())}
}

// worldKey: hubble_flows_to_world_total{protocol, verdict[, port]}.
type worldKey struct {
	proto   protoID
	verdict flowpb.Verdict
	port    int32 // only with the port option; -1: the protocol has none
}

func (k worldKey) labels() []string { return []string{k.proto.String(), k.verdict.String()} }

func (k worldKey) labelsWithPort() []string {
	port := ""
	if k.port >= 0 {
		port = strconv.Itoa(int(k.port))
	}
	return []string{k.proto.String(), k.verdict.String(), port}
}
