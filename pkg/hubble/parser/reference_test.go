package parser

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seta-net/seta/pkg/datapath/monitor"
	"github.com/seta-net/seta/pkg/hubble/container"
)

// referenceDecode is how the parser built flows before flows were stored
// as records (a flow.Flow per event, filled directly). Decode must give
// the same flows.
func referenceDecode(p *Parser, ev monitor.Event) *flowpb.Flow {
	f := &flowpb.Flow{Time: timestampOf(ev.Time), NodeName: p.node, Type: flowpb.FlowType_L3_L4}
	f.IP = &flowpb.IP{Source: ev.Src.String(), Destination: ev.Dst.String(), IpVersion: flowpb.IPVersion_IPv4}
	if ev.Src.Is6() {
		f.IP.IpVersion = flowpb.IPVersion_IPv6
	}
	f.L4 = referenceL4(ev)
	f.Source = referenceEndpoint(p.g, ev.Src, ev.SrcIdentity)
	f.Destination = referenceEndpoint(p.g, ev.Dst, ev.DstIdentity)
	f.TrafficDirection = flowpb.TrafficDirection_EGRESS
	f.IsReply = wrapBool(ev.IsReply)
	f.PolicyMatchType = uint32(ev.MatchType)
	if ev.Ingress {
		f.TrafficDirection = flowpb.TrafficDirection_INGRESS
	}
	setDrop := func() { f.DropReason, f.DropReasonDesc = uint32(ev.Reason), flowpb.DropReason(ev.Reason) }
	switch ev.Type {
	case monitor.TypeTrace:
		f.Verdict = flowpb.Verdict_FORWARDED
		f.EventType = &flowpb.CiliumEventType{Type: MessageTypeTrace, SubType: int32(ev.TracePoint)}
		f.TraceObservationPoint = observationPoint(ev.TracePoint)
		f.TraceReason = flowpb.TraceReason(ev.TraceReason + 1)
		f.TrafficDirection = flowpb.TrafficDirection_TRAFFIC_DIRECTION_UNKNOWN
	case monitor.TypePolicyVerdict:
		f.EventType = &flowpb.CiliumEventType{Type: MessageTypePolicyVerdict}
		switch {
		case ev.Allowed:
			f.Verdict = flowpb.Verdict_FORWARDED
		case ev.Audit:
			f.Verdict = flowpb.Verdict_AUDIT
			setDrop()
		default:
			f.Verdict = flowpb.Verdict_DROPPED
			setDrop()
		}
	case monitor.TypeDrop:
		f.Verdict = flowpb.Verdict_DROPPED
		f.EventType = &flowpb.CiliumEventType{Type: MessageTypeDrop, SubType: int32(ev.Reason)}
		setDrop()
	default:
		f.Verdict = flowpb.Verdict_VERDICT_UNKNOWN
	}
	if ev.Cookie != 0 && ev.Type != monitor.TypeTrace {
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
	f.Summary = referenceSummary(f)
	return f
}

func referenceL4(ev monitor.Event) *flowpb.Layer4 {
	switch ev.Proto {
	case 6:
		b := ev.TCPFlags
		fl := &flowpb.TCPFlags{FIN: b&0x01 != 0, SYN: b&0x02 != 0, RST: b&0x04 != 0, PSH: b&0x08 != 0,
			ACK: b&0x10 != 0, URG: b&0x20 != 0, ECE: b&0x40 != 0, CWR: b&0x80 != 0}
		return &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: uint32(ev.SrcPort), DestinationPort: uint32(ev.DstPort), Flags: fl}}}
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

func referenceEndpoint(g Getters, addr netip.Addr, identity uint32) *flowpb.Endpoint {
	e := &flowpb.Endpoint{Identity: identity}
	if ls, ok := g.IdentityLabels(identity); ok {
		e.Labels = ls
	}
	if ep, ok := g.EndpointByIP(addr); ok {
		e.ID, e.Namespace, e.PodName = uint32(ep.ID), ep.Namespace, ep.PodName
	}
	return e
}

func referenceSummary(f *flowpb.Flow) string {
	switch l := f.GetL4().GetProtocol().(type) {
	case *flowpb.Layer4_TCP:
		var on string
		fl := l.TCP.GetFlags()
		for _, x := range []struct {
			set  bool
			name string
		}{{fl.GetSYN(), "SYN"}, {fl.GetACK(), "ACK"}, {fl.GetFIN(), "FIN"}, {fl.GetRST(), "RST"}, {fl.GetPSH(), "PSH"}} {
			if x.set {
				if on != "" {
					on += ", "
				}
				on += x.name
			}
		}
		return "TCP Flags: " + on
	case *flowpb.Layer4_UDP:
		return "UDP"
	case *flowpb.Layer4_SCTP:
		return "SCTP"
	case *flowpb.Layer4_ICMPv4:
		return "ICMPv4 " + icmpName(map[uint32]string{0: "EchoReply", 3: "DestinationUnreachable", 8: "EchoRequest", 11: "TimeExceeded"}, l.ICMPv4.Type)
	case *flowpb.Layer4_ICMPv6:
		return "ICMPv6 " + icmpName(map[uint32]string{1: "DestinationUnreachable", 3: "TimeExceeded", 128: "EchoRequest", 129: "EchoReply"}, l.ICMPv6.Type)
	}
	return "IP"
}

func icmpName(names map[uint32]string, t uint32) string {
	if n, ok := names[t]; ok {
		return n
	}
	return "Type" + strconv.FormatUint(uint64(t), 10)
}

// randomEvent draws an event from every field's range that the parser
// distinguishes (types, reasons, directions, protocols, flags, cookies,
// known and unknown endpoints and identities, both families).
func randomEvent(rng *rand.Rand) monitor.Event {
	addrs := []netip.Addr{netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("10.244.1.3"), netip.MustParseAddr("198.18.0.9"),
		netip.MustParseAddr("fd00::3"), netip.MustParseAddr("fd00::2")}
	ev := monitor.Event{
		Time:    time.Unix(int64(rng.IntN(1<<31)), int64(rng.IntN(1e9))),
		Type:    []monitor.Type{monitor.TypeDrop, monitor.TypeTrace, monitor.TypePolicyVerdict, 9}[rng.IntN(4)],
		Reason:  []uint8{0, 133, 181, 132}[rng.IntN(4)],
		Ingress: rng.IntN(2) == 0, Audit: rng.IntN(4) == 0, EndpointID: uint16(rng.IntN(3)),
		SrcIdentity: []uint32{2, 256, 257, 999}[rng.IntN(4)], DstIdentity: []uint32{2, 256, 257, 999}[rng.IntN(4)],
		Cookie: []uint32{0, 5, 6}[rng.IntN(3)], MatchType: uint8(rng.IntN(7)), TracePoint: []uint8{monitor.TraceToLxc, monitor.TraceToStack}[rng.IntN(2)],
		TraceReason: uint8(rng.IntN(4)), SrcPort: uint16(rng.IntN(65536)), DstPort: uint16(rng.IntN(65536)),
		Proto: []uint8{6, 17, 132, 1, 58, 47}[rng.IntN(6)], L4Port: uint16(rng.IntN(256)), TCPFlags: uint8(rng.IntN(256)),
	}
	ev.Allowed = ev.Type == monitor.TypePolicyVerdict && ev.Reason == 0 && !ev.Audit
	ev.IsReply = ev.TraceReason == monitor.TraceReasonCTReply
	if rng.IntN(2) == 0 {
		ev.Src, ev.Dst = addrs[rng.IntN(3)], addrs[rng.IntN(3)]
	} else {
		ev.Src, ev.Dst = addrs[3+rng.IntN(2)], addrs[3+rng.IntN(2)]
	}
	return ev
}

// Decode (Fill, then the record's Flow) gives exactly the flows the
// parser built before records, for every kind of event; and a record
// reused for the next event keeps nothing of the last.
func TestDecodeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 7))
	p := New("node1", cookieGetters{})
	var r container.Record
	var b container.Block
	for i := range 20000 {
		ev := randomEvent(rng)
		want := referenceDecode(p, ev)
		if got := p.Decode(ev); !proto.Equal(got, want) {
			t.Fatalf("event %d %+v:\ngot  %v\nwant %v", i, ev, got, want)
		}
		// As the agent does: one record and one block for every event.
		p.Fill(ev, &r)
		if got := r.BuildInto(&b); !proto.Equal(got, want) {
			t.Fatalf("event %d %+v, reused record and block:\ngot  %v\nwant %v", i, ev, got, want)
		}
	}
}

func timestampOf(t time.Time) *timestamppb.Timestamp {
	return &timestamppb.Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
}

func wrapBool(v bool) *wrapperspb.BoolValue { return &wrapperspb.BoolValue{Value: v} }
