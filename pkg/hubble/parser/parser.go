// Package parser turns datapath events (pkg/datapath/monitor) into Hubble
// flows (github.com/cilium/cilium/api/v1/flow), enriched with what the
// agent knows: the endpoints on both sides, their identities' labels, and
// the policies behind a verdict. It is plain Go behind the Getters
// interface. Fill writes a flow in the compact form the flow ring stores
// (container.Record), without allocating; Decode builds the flow.Flow.
package parser

import (
	"net/netip"
	"slices"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/seta-net/seta/pkg/datapath/monitor"
	"github.com/seta-net/seta/pkg/hubble/container"
)

// Endpoint is what the parser needs to know of a local endpoint.
type Endpoint struct {
	ID        uint16
	Namespace string
	PodName   string
}

// Getters look up agent state for enrichment. The parser calls them for
// every event, so they should not allocate; what they return is stored in
// flows and must never be modified afterwards.
type Getters interface {
	// EndpointByIP finds the local endpoint holding addr.
	EndpointByIP(addr netip.Addr) (Endpoint, bool)
	// IdentityLabels returns the labels of a security identity.
	IdentityLabels(id uint32) ([]string, bool)
	// RulesOf names the policies behind a policy-map cookie, as
	// "Kind/namespace/name".
	RulesOf(cookie uint32) []string
}

// Cilium monitor message types, as Hubble's CiliumEventType.Type carries them.
const (
	MessageTypeDrop          = 1
	MessageTypeTrace         = 4
	MessageTypePolicyVerdict = 5
)

// Parser decodes events of one node. It is not safe for concurrent use
// (the agent decodes in one goroutine).
type Parser struct {
	node  string
	g     Getters
	addrs addrStrings
	pols  policyCache
}

// New returns a parser for events of node.
func New(node string, g Getters) *Parser { return &Parser{node: node, g: g} }

// addrStrings remembers the text of recent addresses: a node's flows are
// between few addresses, and formatting one costs an allocation. A small
// direct-mapped table in front of the map answers the addresses seen last
// without hashing them.
type addrStrings struct {
	recent [64]struct {
		a netip.Addr
		s string
	}
	m map[netip.Addr]string
}

// maxAddrStrings bounds the cache; it starts over when full, so a scan of
// many addresses costs what it did without the cache, never unbounded
// memory.
const maxAddrStrings = 4096

func (c *addrStrings) str(a netip.Addr) string {
	r := &c.recent[AddrSlot(a, len(c.recent))]
	if r.a == a && r.s != "" {
		return r.s
	}
	s, ok := c.m[a]
	if !ok {
		if c.m == nil || len(c.m) >= maxAddrStrings {
			c.m = make(map[netip.Addr]string, 64)
		}
		s = a.String()
		c.m[a] = s
	}
	r.a, r.s = a, s
	return s
}

// AddrSlot picks a slot for a in a direct-mapped table of n slots (a power
// of two) from its last bytes, where the addresses of one node's pods
// differ.
func AddrSlot(a netip.Addr, n int) int {
	b := a.As16()
	return int(b[15]^b[14]*7^b[13]*31) & (n - 1)
}

// Hubble's observation points for Cilium's trace points; Cilium's
// TRACE_TO_LXC (0) is Hubble's TO_ENDPOINT (101), the rest share numbers.
func observationPoint(p uint8) flowpb.TraceObservationPoint {
	if p == monitor.TraceToLxc {
		return flowpb.TraceObservationPoint_TO_ENDPOINT
	}
	return flowpb.TraceObservationPoint(p)
}

// Decode builds the flow of one event: Fill, then the record's Flow. The
// agent stores the record instead (pkg/hubble/container).
func (p *Parser) Decode(ev monitor.Event) *flowpb.Flow {
	var r container.Record
	p.Fill(ev, &r)
	return r.Flow()
}

// Fill sets r to the flow of one event, in compact form. It allocates
// nothing once the caches know the event's addresses and policies.
func (p *Parser) Fill(ev monitor.Event, r *container.Record) {
	*r = container.Record{
		Seconds: ev.Time.Unix(), Nanos: int32(ev.Time.Nanosecond()),
		NodeName: p.node, SrcIP: p.addrs.str(ev.Src), DstIP: p.addrs.str(ev.Dst), IPv6: ev.Src.Is6(),
		Direction: flowpb.TrafficDirection_EGRESS, PolicyMatchType: uint32(ev.MatchType), IsReply: ev.IsReply,
		Proto: ev.Proto, TCPFlags: ev.TCPFlags,
	}
	switch ev.Proto {
	case 6, 17, 132:
		r.SrcPort, r.DstPort = ev.SrcPort, ev.DstPort
	case 1, 58:
		r.ICMPType = ev.L4Port
	}
	p.endpoint(&r.Source, ev.Src, ev.SrcIdentity)
	p.endpoint(&r.Destination, ev.Dst, ev.DstIdentity)
	if ev.Ingress {
		r.Direction = flowpb.TrafficDirection_INGRESS
	}
	switch {
	case ev.Type == monitor.TypeTrace:
		r.Verdict = flowpb.Verdict_FORWARDED
		r.EventType, r.EventSubType = MessageTypeTrace, int32(ev.TracePoint)
		r.ObservationPoint = observationPoint(ev.TracePoint)
		r.TraceReason = flowpb.TraceReason(ev.TraceReason + 1) // Hubble: 0 is TRACE_REASON_UNKNOWN
		// A trace is not a policy decision: its direction is unknown.
		r.Direction = flowpb.TrafficDirection_TRAFFIC_DIRECTION_UNKNOWN
	case ev.Type == monitor.TypePolicyVerdict:
		r.EventType = MessageTypePolicyVerdict
		switch {
		case ev.Allowed:
			r.Verdict = flowpb.Verdict_FORWARDED
		case ev.Audit:
			r.Verdict, r.DropReason = flowpb.Verdict_AUDIT, uint32(ev.Reason)
		default:
			r.Verdict, r.DropReason = flowpb.Verdict_DROPPED, uint32(ev.Reason)
		}
	case ev.Type == monitor.TypeDrop:
		r.Verdict, r.DropReason = flowpb.Verdict_DROPPED, uint32(ev.Reason)
		r.EventType, r.EventSubType = MessageTypeDrop, int32(ev.Reason)
	default:
		r.Verdict = flowpb.Verdict_VERDICT_UNKNOWN
	}
	if ev.Cookie != 0 && ev.Type != monitor.TypeTrace {
		// The entry that decided names its rules: for a deny, "which
		// policy dropped my traffic?"; for an allow, which let it pass.
		// A drop without a cookie matched no rule: nothing allowed it.
		r.Policies = p.pols.of(ev.Cookie, p.g.RulesOf(ev.Cookie))
		switch {
		case ev.Allowed && ev.Ingress:
			r.PolicyField = container.IngressAllowedBy
		case ev.Allowed:
			r.PolicyField = container.EgressAllowedBy
		case ev.Ingress:
			r.PolicyField = container.IngressDeniedBy
		default:
			r.PolicyField = container.EgressDeniedBy
		}
	}
}

func (p *Parser) endpoint(e *container.Endpoint, addr netip.Addr, identity uint32) {
	e.Identity = identity
	if ls, ok := p.g.IdentityLabels(identity); ok {
		e.Labels = ls
	}
	if ep, ok := p.g.EndpointByIP(addr); ok {
		e.ID, e.Namespace, e.PodName = uint32(ep.ID), ep.Namespace, ep.PodName
	}
}

// policyCache keeps the parsed policies of each cookie, so the flows of a
// cookie share one list instead of allocating it per event. An entry is
// used only while the rule names are still those it was parsed from.
type policyCache struct{ m map[uint32]cachedPolicies }

type cachedPolicies struct {
	names []string
	pols  []*flowpb.Policy
}

// maxCachedCookies bounds the cache; it starts over when full.
const maxCachedCookies = 4096

func (c *policyCache) of(cookie uint32, names []string) []*flowpb.Policy {
	if e, ok := c.m[cookie]; ok && slices.Equal(e.names, names) {
		return e.pols
	}
	pols := policies(names)
	if c.m == nil || len(c.m) >= maxCachedCookies {
		c.m = make(map[uint32]cachedPolicies, 64)
	}
	c.m[cookie] = cachedPolicies{names: slices.Clone(names), pols: pols}
	return pols
}

// policies parses "Kind/namespace/name" rule names.
func policies(names []string) []*flowpb.Policy {
	var out []*flowpb.Policy
	for _, n := range names {
		parts := strings.SplitN(n, "/", 3)
		if len(parts) != 3 {
			out = append(out, &flowpb.Policy{Name: n})
			continue
		}
		out = append(out, &flowpb.Policy{Kind: parts[0], Namespace: parts[1], Name: parts[2]})
	}
	return out
}
