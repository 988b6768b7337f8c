package parser

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/seta-net/seta/pkg/datapath/monitor"
	"github.com/seta-net/seta/pkg/hubble/container"
)

type fakeGetters struct{}

func (fakeGetters) EndpointByIP(a netip.Addr) (Endpoint, bool) {
	switch a.String() {
	case "10.244.1.2":
		return Endpoint{ID: 1, Namespace: "default", PodName: "web"}, true
	case "10.244.1.3":
		return Endpoint{ID: 2, Namespace: "default", PodName: "client"}, true
	}
	return Endpoint{}, false
}

func (fakeGetters) IdentityLabels(id uint32) ([]string, bool) {
	switch id {
	case 256:
		return []string{"k8s:app=web"}, true
	case 257:
		return []string{"k8s:app=client"}, true
	}
	return nil, false
}

func (fakeGetters) RulesOf(c uint32) []string {
	if c == 5 {
		return []string{"CiliumNetworkPolicy/default/deny-client"}
	}
	return nil
}

func TestDecodeDrop(t *testing.T) {
	p := New("node1", fakeGetters{})
	now := time.Now()
	f := p.Decode(monitor.Event{
		Time: now, Type: monitor.TypeDrop, Reason: 181, Ingress: true, EndpointID: 1,
		SrcIdentity: 257, DstIdentity: 256, Cookie: 5, Src: netip.MustParseAddr("10.244.1.3"),
		Dst: netip.MustParseAddr("10.244.1.2"), SrcPort: 40000, DstPort: 7000, Proto: 6, L4Port: 7000, TCPFlags: 0x02,
	})
	if f.Verdict != flowpb.Verdict_DROPPED || f.DropReasonDesc != flowpb.DropReason_POLICY_DENY || f.NodeName != "node1" {
		t.Errorf("verdict/reason/node: %v %v %q", f.Verdict, f.DropReasonDesc, f.NodeName)
	}
	if f.TrafficDirection != flowpb.TrafficDirection_INGRESS || f.EventType.GetType() != MessageTypeDrop || f.EventType.GetSubType() != 181 {
		t.Errorf("direction/event type: %v %v", f.TrafficDirection, f.EventType)
	}
	if f.Source.GetPodName() != "client" || f.Destination.GetID() != 1 || f.Destination.GetLabels()[0] != "k8s:app=web" {
		t.Errorf("endpoints: %v -> %v", f.Source, f.Destination)
	}
	tcp := f.GetL4().GetTCP()
	if tcp.GetDestinationPort() != 7000 || !tcp.GetFlags().GetSYN() || tcp.GetFlags().GetACK() {
		t.Errorf("L4: %v", f.L4)
	}
	if len(f.IngressDeniedBy) != 1 || f.IngressDeniedBy[0].Name != "deny-client" || f.IngressDeniedBy[0].Kind != "CiliumNetworkPolicy" {
		t.Errorf("denied by: %v", f.IngressDeniedBy)
	}
	if !f.Time.AsTime().Equal(now) || f.IP.IpVersion != flowpb.IPVersion_IPv4 || f.Summary != "TCP Flags: SYN" {
		t.Errorf("time/ip/summary: %v %v %q", f.Time.AsTime(), f.IP, f.Summary)
	}
}

func TestDecodeAuditAndICMP(t *testing.T) {
	p := New("n", fakeGetters{})
	f := p.Decode(monitor.Event{
		Type: monitor.TypePolicyVerdict, Audit: true, Reason: 133, Proto: 58, L4Port: 128,
		Src: netip.MustParseAddr("fd00::3"), Dst: netip.MustParseAddr("fd00::2"),
	})
	if f.Verdict != flowpb.Verdict_AUDIT || f.EventType.GetType() != MessageTypePolicyVerdict || f.GetL4().GetICMPv6().GetType() != 128 {
		t.Errorf("audit flow: %v", f)
	}
	if f.Summary != "ICMPv6 EchoRequest" || f.IP.IpVersion != flowpb.IPVersion_IPv6 || f.TrafficDirection != flowpb.TrafficDirection_EGRESS {
		t.Errorf("summary/ip/direction: %q %v %v", f.Summary, f.IP, f.TrafficDirection)
	}
	if len(f.IngressDeniedBy)+len(f.EgressDeniedBy) != 0 {
		t.Error("no rule matched, yet the flow names a policy")
	}
}

func TestDecodeTrace(t *testing.T) {
	p := New("n", fakeGetters{})
	f := p.Decode(monitor.Event{
		Type: monitor.TypeTrace, TracePoint: monitor.TraceToLxc, TraceReason: monitor.TraceReasonCTReply, IsReply: true,
		EndpointID: 2, SrcIdentity: 256, DstIdentity: 257, Src: netip.MustParseAddr("10.244.1.2"), Dst: netip.MustParseAddr("10.244.1.3"),
		SrcPort: 7000, DstPort: 40000, Proto: 6, TCPFlags: 0x12, Cookie: 5,
	})
	if f.Verdict != flowpb.Verdict_FORWARDED || f.EventType.GetType() != MessageTypeTrace || f.EventType.GetSubType() != 0 {
		t.Errorf("verdict/type: %v %v", f.Verdict, f.EventType)
	}
	if f.TraceObservationPoint != flowpb.TraceObservationPoint_TO_ENDPOINT || f.TraceReason != flowpb.TraceReason_REPLY || !f.IsReply.GetValue() {
		t.Errorf("point/reason/reply: %v %v %v", f.TraceObservationPoint, f.TraceReason, f.IsReply)
	}
	if f.Summary != "TCP Flags: SYN, ACK" || f.Source.GetPodName() != "web" || len(f.IngressDeniedBy)+len(f.IngressAllowedBy) != 0 {
		t.Errorf("summary/endpoints/policies: %q %v %v", f.Summary, f.Source, f)
	}
	f = p.Decode(monitor.Event{Type: monitor.TypeTrace, TracePoint: monitor.TraceToStack, Proto: 17,
		Src: netip.MustParseAddr("10.244.1.2"), Dst: netip.MustParseAddr("198.18.0.12")})
	if f.TraceObservationPoint != flowpb.TraceObservationPoint_TO_STACK || f.EventType.GetSubType() != 3 || f.TraceReason != flowpb.TraceReason_NEW {
		t.Errorf("to-stack trace: %v", f)
	}
}

func TestDecodeAllowedVerdict(t *testing.T) {
	p := New("n", fakeGetters{})
	f := p.Decode(monitor.Event{
		Type: monitor.TypePolicyVerdict, Allowed: true, Ingress: true, Cookie: 5, MatchType: monitor.MatchL3L4,
		Src: netip.MustParseAddr("10.244.1.3"), Dst: netip.MustParseAddr("10.244.1.2"), Proto: 6, DstPort: 7000, TCPFlags: 0x02,
	})
	if f.Verdict != flowpb.Verdict_FORWARDED || f.EventType.GetType() != MessageTypePolicyVerdict || f.PolicyMatchType != 2 {
		t.Errorf("verdict/type/match: %v %v %v", f.Verdict, f.EventType, f.PolicyMatchType)
	}
	if len(f.IngressAllowedBy) != 1 || f.IngressAllowedBy[0].Name != "deny-client" || len(f.IngressDeniedBy) != 0 || f.DropReasonDesc != 0 {
		t.Errorf("allowed by / denied by / drop reason: %v %v %v", f.IngressAllowedBy, f.IngressDeniedBy, f.DropReasonDesc)
	}
}

// cookieGetters knows two cookies; 6 names rules of several forms.
type cookieGetters struct{ fakeGetters }

func (cookieGetters) RulesOf(c uint32) []string {
	switch c {
	case 5:
		return []string{"CiliumNetworkPolicy/default/deny-client"}
	case 6:
		return []string{"CiliumClusterwideNetworkPolicy//cluster-wide", "oddly-named", "NetworkPolicy/prod/a/b"}
	}
	return nil
}

// staticGetters answers without allocating, so allocation counts are the
// parser's own.
type staticGetters struct{}

func (staticGetters) EndpointByIP(netip.Addr) (Endpoint, bool) {
	return Endpoint{ID: 1, Namespace: "default", PodName: "web"}, true
}
func (staticGetters) IdentityLabels(uint32) ([]string, bool) { return benchLabels, true }
func (staticGetters) RulesOf(uint32) []string                { return nil }

var benchLabels = []string{"k8s:app=web"}

func tcpTrace() monitor.Event {
	return monitor.Event{
		Time: time.Unix(1000, 5), Type: monitor.TypeTrace, TracePoint: monitor.TraceToLxc, Ingress: true, EndpointID: 1,
		SrcIdentity: 257, DstIdentity: 256, Src: netip.MustParseAddr("10.244.1.3"), Dst: netip.MustParseAddr("10.244.1.2"),
		SrcPort: 40000, DstPort: 7000, Proto: 6, TCPFlags: 0x12,
	}
}

// A TCP flow is one allocation: the flow and its sub-messages share one
// block, addresses come from the cache, the summary from a table.
func TestDecodeAllocations(t *testing.T) {
	p, ev := New("node1", staticGetters{}), tcpTrace()
	p.Decode(ev) // fills the address cache
	if n := testing.AllocsPerRun(1000, func() { p.Decode(ev) }); n != 1 {
		t.Errorf("a TCP trace costs %.1f allocations, want 1", n)
	}
}

// Filling a record allocates nothing once the caches know the event's
// addresses and cookie, also for a verdict that names its policies; the
// policies of a cookie are parsed once and shared.
func TestFillAllocations(t *testing.T) {
	p := New("node1", sharedRules{})
	verdict := tcpTrace()
	verdict.Type, verdict.Allowed, verdict.Cookie = monitor.TypePolicyVerdict, true, 5
	var r container.Record
	for _, ev := range []monitor.Event{tcpTrace(), verdict} {
		p.Fill(ev, &r)
		if n := testing.AllocsPerRun(1000, func() { p.Fill(ev, &r) }); n != 0 {
			t.Errorf("filling a record of %+v costs %.1f allocations, want 0", ev, n)
		}
	}
	var again container.Record
	p.Fill(verdict, &again)
	if len(r.Policies) != 1 || r.PolicyField != container.IngressAllowedBy || &r.Policies[0] != &again.Policies[0] {
		t.Errorf("policies %v (%v) not shared with %v", r.Policies, r.PolicyField, again.Policies)
	}
}

// sharedRules is staticGetters with a cookie, answering with one shared
// list as the agent's enricher does.
type sharedRules struct{ staticGetters }

var sharedNames = []string{"CiliumNetworkPolicy/default/allow"}

func (sharedRules) RulesOf(uint32) []string { return sharedNames }

// Every combination of the flags a summary names comes out in Hubble's
// order, as the loop it replaced built it.
func TestTCPSummaries(t *testing.T) {
	for b := range 256 {
		var on []string
		for _, x := range []struct {
			bit  int
			name string
		}{{0x02, "SYN"}, {0x10, "ACK"}, {0x01, "FIN"}, {0x04, "RST"}, {0x08, "PSH"}} {
			if b&x.bit != 0 {
				on = append(on, x.name)
			}
		}
		ev := tcpTrace()
		ev.TCPFlags = uint8(b)
		if got, want := New("n", staticGetters{}).Decode(ev).Summary, "TCP Flags: "+strings.Join(on, ", "); got != want {
			t.Errorf("flags %#x: summary %q, want %q", b, got, want)
		}
	}
}

func BenchmarkFill(b *testing.B) {
	p, ev := New("node1", staticGetters{}), tcpTrace()
	var r container.Record
	b.ReportAllocs()
	for b.Loop() {
		p.Fill(ev, &r)
	}
}

func BenchmarkDecode(b *testing.B) {
	p, ev := New("node1", staticGetters{}), tcpTrace()
	b.ReportAllocs()
	for b.Loop() {
		p.Decode(ev)
	}
}
