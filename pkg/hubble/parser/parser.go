// Package parser turns datapath events (pkg/datapath/monitor) into Hubble
// flows (github.com/cilium/cilium/api/v1/flow), enriched with what the
// agent knows: the endpoints on both sides, their identities' labels, and
// the policies behind a verdict. It is plain Go behind the Getters
// interface.
package parser

import (
	"net/netip"
	"strconv"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seta-net/seta/pkg/datapath/monitor"
)

// Endpoint is what the parser needs to know of a local endpoint.
type Endpoint struct {
	ID        uint16
	Namespace string
	PodName   string
}

// Getters look up agent state for enrichment.
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

// Parser decodes events of one node.
type Parser struct {
	node string
	g    Getters
}

// New returns a parser for events of node.
func New(node string, g Getters) *Parser { return &Parser{node: node, g: g} }

// Hubble's observation points for Cilium's trace points; Cilium's
// TRACE_TO_LXC (0) is Hubble's TO_ENDPOINT (101), the rest share numbers.
func observationPoint(p uint8) flowpb.TraceObservationPoint {
	if p == monitor.TraceToLxc {
		return flowpb.TraceObservationPoint_TO_ENDPOINT
	}
	return flowpb.TraceObservationPoint(p)
}

// Decode builds the flow of one event.
func (p *Parser) Decode(ev monitor.Event) *flowpb.Flow {
	f := &flowpb.Flow{
		Time:             timestamppb.New(ev.Time),
		NodeName:         p.node,
		Type:             flowpb.FlowType_L3_L4,
		IP:               ip(ev),
		L4:               l4(ev),
		Source:           p.endpoint(ev.Src, ev.SrcIdentity),
		Destination:      p.endpoint(ev.Dst, ev.DstIdentity),
		TrafficDirection: flowpb.TrafficDirection_EGRESS,
		IsReply:          wrapperspb.Bool(ev.IsReply),
		PolicyMatchType:  uint32(ev.MatchType),
	}
	if ev.Ingress {
		f.TrafficDirection = flowpb.TrafficDirection_INGRESS
	}
	switch {
	case ev.Type == monitor.TypeTrace:
		f.Verdict = flowpb.Verdict_FORWARDED
		f.EventType = &flowpb.CiliumEventType{Type: MessageTypeTrace, SubType: int32(ev.TracePoint)}
		f.TraceObservationPoint = observationPoint(ev.TracePoint)
		f.TraceReason = flowpb.TraceReason(ev.TraceReason + 1) // Hubble: 0 is TRACE_REASON_UNKNOWN
		// A trace is not a policy decision: its direction is unknown.
		f.TrafficDirection = flowpb.TrafficDirection_TRAFFIC_DIRECTION_UNKNOWN
		f.IsReply = wrapperspb.Bool(ev.IsReply)
	case ev.Type == monitor.TypePolicyVerdict:
		f.EventType = &flowpb.CiliumEventType{Type: MessageTypePolicyVerdict}
		switch {
		case ev.Allowed:
			f.Verdict = flowpb.Verdict_FORWARDED
		case ev.Audit:
			f.Verdict = flowpb.Verdict_AUDIT
			p.setDrop(f, ev)
		default:
			f.Verdict = flowpb.Verdict_DROPPED
			p.setDrop(f, ev)
		}
	case ev.Type == monitor.TypeDrop:
		f.Verdict = flowpb.Verdict_DROPPED
		f.EventType = &flowpb.CiliumEventType{Type: MessageTypeDrop, SubType: int32(ev.Reason)}
		p.setDrop(f, ev)
	default:
		f.Verdict = flowpb.Verdict_VERDICT_UNKNOWN
	}
	if ev.Cookie != 0 && ev.Type != monitor.TypeTrace {
		// The entry that decided names its rules: for a deny, "which
		// policy dropped my traffic?"; for an allow, which let it pass.
		// A drop without a cookie matched no rule: nothing allowed it.
		pols := policies(p.g.RulesOf(ev.Cookie))
		switch {
		case ev.Allowed && ev.Ingress:
			f.IngressAllowedBy = pols
		case ev.Allowed:
			f.EgressAllowedBy = pols
		case ev.Ingress:
			f.IngressDeniedBy = pols
		default:
			f.EgressDeniedBy = pols
		}
	}
	f.Summary = summary(f)
	return f
}

func (p *Parser) setDrop(f *flowpb.Flow, ev monitor.Event) {
	f.DropReason = uint32(ev.Reason)
	f.DropReasonDesc = flowpb.DropReason(ev.Reason)
}

func ip(ev monitor.Event) *flowpb.IP {
	v := flowpb.IPVersion_IPv4
	if ev.Src.Is6() {
		v = flowpb.IPVersion_IPv6
	}
	return &flowpb.IP{Source: ev.Src.String(), Destination: ev.Dst.String(), IpVersion: v}
}

func l4(ev monitor.Event) *flowpb.Layer4 {
	switch ev.Proto {
	case 6:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{
			SourcePort: uint32(ev.SrcPort), DestinationPort: uint32(ev.DstPort), Flags: tcpFlags(ev.TCPFlags),
		}}}
	case 17:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: uint32(ev.SrcPort), DestinationPort: uint32(ev.DstPort)}}}
	case 132:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_SCTP{SCTP: &flowpb.SCTP{SourcePort: uint32(ev.SrcPort), DestinationPort: uint32(ev.DstPort)}}}
	case 1:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv4{ICMPv4: &flowpb.ICMPv4{Type: uint32(ev.L4Port)}}}
	case 58:
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv6{ICMPv6: &flowpb.ICMPv6{Type: uint32(ev.L4Port)}}}
	}
	return nil
}

func tcpFlags(b uint8) *flowpb.TCPFlags {
	return &flowpb.TCPFlags{
		FIN: b&0x01 != 0, SYN: b&0x02 != 0, RST: b&0x04 != 0, PSH: b&0x08 != 0,
		ACK: b&0x10 != 0, URG: b&0x20 != 0, ECE: b&0x40 != 0, CWR: b&0x80 != 0,
	}
}

func (p *Parser) endpoint(addr netip.Addr, identity uint32) *flowpb.Endpoint {
	e := &flowpb.Endpoint{Identity: identity}
	if ls, ok := p.g.IdentityLabels(identity); ok {
		e.Labels = ls
	}
	if ep, ok := p.g.EndpointByIP(addr); ok {
		e.ID, e.Namespace, e.PodName = uint32(ep.ID), ep.Namespace, ep.PodName
	}
	return e
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

// summary is the one-line description Hubble shows.
func summary(f *flowpb.Flow) string {
	switch l := f.GetL4().GetProtocol().(type) {
	case *flowpb.Layer4_TCP:
		var fl []string
		for _, x := range []struct {
			on   bool
			name string
		}{{l.TCP.Flags.SYN, "SYN"}, {l.TCP.Flags.ACK, "ACK"}, {l.TCP.Flags.FIN, "FIN"}, {l.TCP.Flags.RST, "RST"}, {l.TCP.Flags.PSH, "PSH"}} {
			if x.on {
				fl = append(fl, x.name)
			}
		}
		return "TCP Flags: " + strings.Join(fl, ", ")
	case *flowpb.Layer4_UDP:
		return "UDP"
	case *flowpb.Layer4_SCTP:
		return "SCTP"
	case *flowpb.Layer4_ICMPv4:
		return "ICMPv4 " + icmp4Name(l.ICMPv4.Type)
	case *flowpb.Layer4_ICMPv6:
		return "ICMPv6 " + icmp6Name(l.ICMPv6.Type)
	}
	return "IP"
}

func icmp4Name(t uint32) string {
	switch t {
	case 0:
		return "EchoReply"
	case 3:
		return "DestinationUnreachable"
	case 8:
		return "EchoRequest"
	case 11:
		return "TimeExceeded"
	}
	return "Type" + itoa(t)
}

func icmp6Name(t uint32) string {
	switch t {
	case 1:
		return "DestinationUnreachable"
	case 3:
		return "TimeExceeded"
	case 128:
		return "EchoRequest"
	case 129:
		return "EchoReply"
	}
	return "Type" + itoa(t)
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
