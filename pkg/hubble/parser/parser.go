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

// Parser decodes events of one node. It is not safe for concurrent use
// (the agent decodes in one goroutine).
type Parser struct {
	node  string
	g     Getters
	addrs addrStrings
}

// New returns a parser for events of node.
func New(node string, g Getters) *Parser { return &Parser{node: node, g: g} }

// addrStrings remembers the text of recent addresses: a node's flows are
// between few addresses, and formatting one costs an allocation.
type addrStrings struct{ m map[netip.Addr]string }

// maxAddrStrings bounds the cache; it starts over when full, so a scan of
// many addresses costs what it did without the cache, never unbounded
// memory.
const maxAddrStrings = 4096

func (c *addrStrings) str(a netip.Addr) string {
	if s, ok := c.m[a]; ok {
		return s
	}
	if c.m == nil || len(c.m) >= maxAddrStrings {
		c.m = make(map[netip.Addr]string, 64)
	}
	s := a.String()
	c.m[a] = s
	return s
}

// Hubble's observation points for Cilium's trace points; Cilium's
// TRACE_TO_LXC (0) is Hubble's TO_ENDPOINT (101), the rest share numbers.
func observationPoint(p uint8) flowpb.TraceObservationPoint {
	if p == monitor.TraceToLxc {
		return flowpb.TraceObservationPoint_TO_ENDPOINT
	}
	return flowpb.TraceObservationPoint(p)
}

// flowBlock holds a flow and the messages it points to that nearly every
// flow has, so Decode allocates them together: one allocation instead of
// ten per event, and the same memory. Stored flows are never modified
// (pkg/hubble/container), and the block stays alive as long as any of its
// messages is referenced, so sharing one allocation is safe. The TCP
// messages sit in the block too: most flows are TCP.
type flowBlock struct {
	flow     flowpb.Flow
	time     timestamppb.Timestamp
	ip       flowpb.IP
	l4       flowpb.Layer4
	tcpOneof flowpb.Layer4_TCP
	tcp      flowpb.TCP
	tcpFlags flowpb.TCPFlags
	src, dst flowpb.Endpoint
	event    flowpb.CiliumEventType
	isReply  wrapperspb.BoolValue
}

// Decode builds the flow of one event.
func (p *Parser) Decode(ev monitor.Event) *flowpb.Flow {
	b := &flowBlock{}
	f := &b.flow
	b.time.Seconds, b.time.Nanos = ev.Time.Unix(), int32(ev.Time.Nanosecond())
	b.isReply.Value = ev.IsReply
	f.Time = &b.time
	f.NodeName = p.node
	f.Type = flowpb.FlowType_L3_L4
	f.IP = p.ip(&b.ip, ev)
	f.L4 = l4(b, ev)
	f.Source = p.endpoint(&b.src, ev.Src, ev.SrcIdentity)
	f.Destination = p.endpoint(&b.dst, ev.Dst, ev.DstIdentity)
	f.TrafficDirection = flowpb.TrafficDirection_EGRESS
	f.IsReply = &b.isReply
	f.PolicyMatchType = uint32(ev.MatchType)
	if ev.Ingress {
		f.TrafficDirection = flowpb.TrafficDirection_INGRESS
	}
	switch {
	case ev.Type == monitor.TypeTrace:
		f.Verdict = flowpb.Verdict_FORWARDED
		b.event.Type, b.event.SubType = MessageTypeTrace, int32(ev.TracePoint)
		f.EventType = &b.event
		f.TraceObservationPoint = observationPoint(ev.TracePoint)
		f.TraceReason = flowpb.TraceReason(ev.TraceReason + 1) // Hubble: 0 is TRACE_REASON_UNKNOWN
		// A trace is not a policy decision: its direction is unknown.
		f.TrafficDirection = flowpb.TrafficDirection_TRAFFIC_DIRECTION_UNKNOWN
	case ev.Type == monitor.TypePolicyVerdict:
		b.event.Type = MessageTypePolicyVerdict
		f.EventType = &b.event
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
		b.event.Type, b.event.SubType = MessageTypeDrop, int32(ev.Reason)
		f.EventType = &b.event
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

func (p *Parser) ip(m *flowpb.IP, ev monitor.Event) *flowpb.IP {
	m.Source, m.Destination, m.IpVersion = p.addrs.str(ev.Src), p.addrs.str(ev.Dst), flowpb.IPVersion_IPv4
	if ev.Src.Is6() {
		m.IpVersion = flowpb.IPVersion_IPv6
	}
	return m
}

func l4(b *flowBlock, ev monitor.Event) *flowpb.Layer4 {
	switch ev.Proto {
	case 6:
		b.tcp.SourcePort, b.tcp.DestinationPort = uint32(ev.SrcPort), uint32(ev.DstPort)
		setTCPFlags(&b.tcpFlags, ev.TCPFlags)
		b.tcp.Flags = &b.tcpFlags
		b.tcpOneof.TCP = &b.tcp
		b.l4.Protocol = &b.tcpOneof
	case 17:
		b.l4.Protocol = &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: uint32(ev.SrcPort), DestinationPort: uint32(ev.DstPort)}}
	case 132:
		b.l4.Protocol = &flowpb.Layer4_SCTP{SCTP: &flowpb.SCTP{SourcePort: uint32(ev.SrcPort), DestinationPort: uint32(ev.DstPort)}}
	case 1:
		b.l4.Protocol = &flowpb.Layer4_ICMPv4{ICMPv4: &flowpb.ICMPv4{Type: uint32(ev.L4Port)}}
	case 58:
		b.l4.Protocol = &flowpb.Layer4_ICMPv6{ICMPv6: &flowpb.ICMPv6{Type: uint32(ev.L4Port)}}
	default:
		return nil
	}
	return &b.l4
}

func setTCPFlags(m *flowpb.TCPFlags, b uint8) {
	m.FIN, m.SYN, m.RST, m.PSH = b&0x01 != 0, b&0x02 != 0, b&0x04 != 0, b&0x08 != 0
	m.ACK, m.URG, m.ECE, m.CWR = b&0x10 != 0, b&0x20 != 0, b&0x40 != 0, b&0x80 != 0
}

func (p *Parser) endpoint(e *flowpb.Endpoint, addr netip.Addr, identity uint32) *flowpb.Endpoint {
	e.Identity = identity
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
		return tcpSummaries[summaryIndex(l.TCP.Flags)]
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

// summaryFlags are the TCP flags a summary names, in the order it names
// them.
var summaryFlags = [...]string{"SYN", "ACK", "FIN", "RST", "PSH"}

// tcpSummaries holds the summary of every combination of summaryFlags
// (bit i set: summaryFlags[i] is on), built once so a TCP flow's summary
// costs no allocation.
var tcpSummaries = func() (out [1 << len(summaryFlags)]string) {
	for i := range out {
		var on []string
		for bit, name := range summaryFlags {
			if i&(1<<bit) != 0 {
				on = append(on, name)
			}
		}
		out[i] = "TCP Flags: " + strings.Join(on, ", ")
	}
	return out
}()

func summaryIndex(fl *flowpb.TCPFlags) int {
	i := 0
	for bit, on := range [...]bool{fl.GetSYN(), fl.GetACK(), fl.GetFIN(), fl.GetRST(), fl.GetPSH()} {
		if on {
			i |= 1 << bit
		}
	}
	return i
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
