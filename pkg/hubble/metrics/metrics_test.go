package metrics

import (
	"errors"
	"strings"
	"sync"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Flow builders: real flowpb.Flow values shaped like the parser's.

type fl struct {
	typ, sub  int32
	verdict   flowpb.Verdict
	v6        bool
	l4        *flowpb.Layer4
	reply     *bool
	reason    flowpb.DropReason
	dir       flowpb.TrafficDirection
	match     uint32
	src, dst  uint32
	dstLabels []string
	l7        *flowpb.Layer7
}

func (b fl) flow() *flowpb.Flow {
	f := &flowpb.Flow{
		Verdict:          b.verdict,
		L4:               b.l4,
		L7:               b.l7,
		DropReasonDesc:   b.reason,
		DropReason:       uint32(b.reason),
		TrafficDirection: b.dir,
		PolicyMatchType:  b.match,
		IP:               &flowpb.IP{Source: "10.244.1.2", Destination: "10.244.1.3", IpVersion: flowpb.IPVersion_IPv4},
		Source:           &flowpb.Endpoint{Identity: b.src},
		Destination:      &flowpb.Endpoint{Identity: b.dst, Labels: b.dstLabels},
	}
	if b.v6 {
		f.IP = &flowpb.IP{Source: "fd00::2", Destination: "fd00::3", IpVersion: flowpb.IPVersion_IPv6}
	}
	if b.typ != 0 {
		f.EventType = &flowpb.CiliumEventType{Type: b.typ, SubType: b.sub}
	}
	if b.reply != nil {
		f.IsReply = wrapperspb.Bool(*b.reply)
	}
	return f
}

var (
	yes = true
	no  = false
)

func tcp(dport uint32, flags string) *flowpb.Layer4 {
	fl := &flowpb.TCPFlags{}
	for _, x := range strings.Split(flags, "|") {
		switch x {
		case "SYN":
			fl.SYN = true
		case "ACK":
			fl.ACK = true
		case "FIN":
			fl.FIN = true
		case "RST":
			fl.RST = true
		case "PSH":
			fl.PSH = true
		}
	}
	return &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 40000, DestinationPort: dport, Flags: fl}}}
}

func udp(dport uint32) *flowpb.Layer4 {
	return &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: 40000, DestinationPort: dport}}}
}

func icmp4(typ, code uint32) *flowpb.Layer4 {
	return &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv4{ICMPv4: &flowpb.ICMPv4{Type: typ, Code: code}}}
}

func icmp6(typ, code uint32) *flowpb.Layer4 {
	return &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv6{ICMPv6: &flowpb.ICMPv6{Type: typ, Code: code}}}
}

const (
	fwd   = flowpb.Verdict_FORWARDED
	drop  = flowpb.Verdict_DROPPED
	audit = flowpb.Verdict_AUDIT
	ing   = flowpb.TrafficDirection_INGRESS
	egr   = flowpb.TrafficDirection_EGRESS
)

func newProc(t testing.TB, metrics ...string) (*Processor, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := New(reg, Options{Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	return p, reg
}

func process(p *Processor, fs ...fl) {
	for _, f := range fs {
		p.ProcessFlow(f.flow())
	}
}

// expect compares the named families with the exposition text exactly:
// every series, every value, nothing else.
func expect(t *testing.T, reg *prometheus.Registry, want string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestFlowsProcessed(t *testing.T) {
	p, reg := newProc(t, "flow")
	process(p,
		fl{typ: typeTrace, sub: 0, verdict: fwd, l4: tcp(80, "SYN")},
		fl{typ: typeTrace, sub: 0, verdict: fwd, l4: tcp(80, "ACK")},
		fl{typ: typeTrace, sub: 3, verdict: fwd, l4: udp(53)},
		fl{typ: typeTrace, sub: 200, verdict: fwd, l4: udp(53)}, // unknown observation point
		fl{typ: typeDrop, sub: 133, verdict: drop, l4: icmp4(8, 0), reason: flowpb.DropReason_POLICY_DENIED},
		fl{typ: typeDrop, sub: 181, verdict: drop, l4: icmp4(8, 0), reason: flowpb.DropReason_POLICY_DENY},
		fl{typ: typePolicyVerdict, verdict: audit, l4: icmp6(128, 0), v6: true},
		fl{verdict: flowpb.Verdict_VERDICT_UNKNOWN, l4: tcp(1, "")}, // no event type
		fl{typ: 2, verdict: fwd}, // debug: not a flow type Hubble names
		fl{typ: typeAccessLog, verdict: fwd, l7: &flowpb.Layer7{Record: &flowpb.Layer7_Dns{Dns: &flowpb.DNS{}}}},
		fl{typ: typeTrace, verdict: fwd}, // no L4
	)
	expect(t, reg, `
# HELP hubble_flows_processed_total Total number of flows processed
# TYPE hubble_flows_processed_total counter
hubble_flows_processed_total{protocol="TCP",subtype="to-endpoint",type="Trace",verdict="FORWARDED"} 2
hubble_flows_processed_total{protocol="UDP",subtype="to-stack",type="Trace",verdict="FORWARDED"} 1
hubble_flows_processed_total{protocol="UDP",subtype="",type="Trace",verdict="FORWARDED"} 1
hubble_flows_processed_total{protocol="ICMPv4",subtype="",type="Drop",verdict="DROPPED"} 2
hubble_flows_processed_total{protocol="ICMPv6",subtype="",type="PolicyVerdict",verdict="AUDIT"} 1
hubble_flows_processed_total{protocol="Unknown flow",subtype="0",type="Unknown",verdict="VERDICT_UNKNOWN"} 1
hubble_flows_processed_total{protocol="Unknown flow",subtype="2",type="Unknown",verdict="FORWARDED"} 1
hubble_flows_processed_total{protocol="DNS",subtype="DNS",type="L7",verdict="FORWARDED"} 1
hubble_flows_processed_total{protocol="Unknown L4",subtype="to-endpoint",type="Trace",verdict="FORWARDED"} 1
`, "hubble_flows_processed_total")
}

func TestDrops(t *testing.T) {
	p, reg := newProc(t, "drop")
	process(p,
		fl{typ: typeDrop, sub: 133, verdict: drop, l4: tcp(80, "SYN"), reason: flowpb.DropReason_POLICY_DENIED},
		fl{typ: typeDrop, sub: 133, verdict: drop, l4: tcp(443, "SYN"), reason: flowpb.DropReason_POLICY_DENIED},
		fl{typ: typeDrop, sub: 133, verdict: drop, l4: udp(53), reason: flowpb.DropReason_POLICY_DENIED},
		fl{typ: typeDrop, sub: 130, verdict: drop, l4: icmp6(128, 0), v6: true, reason: flowpb.DropReason_INVALID_SOURCE_IP},
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "SYN")},                        // not a drop
		fl{typ: typePolicyVerdict, verdict: audit, l4: tcp(80, "SYN"), reason: 133}, // audit: nothing dropped
	)
	expect(t, reg, `
# HELP hubble_drop_total Number of drops
# TYPE hubble_drop_total counter
hubble_drop_total{protocol="TCP",reason="POLICY_DENIED"} 2
hubble_drop_total{protocol="UDP",reason="POLICY_DENIED"} 1
hubble_drop_total{protocol="ICMPv6",reason="INVALID_SOURCE_IP"} 1
`, "hubble_drop_total")
}

func TestTCPFlags(t *testing.T) {
	p, reg := newProc(t, "tcp")
	process(p,
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "SYN")},
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "SYN")},
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "SYN|ACK")},
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "ACK")}, // plain ACK is not counted
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "FIN|ACK")},
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "RST")},
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "SYN"), v6: true},
		fl{typ: typeTrace, verdict: flowpb.Verdict_REDIRECTED, l4: tcp(80, "FIN"), v6: true},
		fl{typ: typeDrop, verdict: drop, l4: tcp(80, "SYN"), reason: 133}, // dropped: no connection happened
		fl{typ: typeTrace, verdict: fwd, l4: udp(53)},
	)
	expect(t, reg, `
# HELP hubble_tcp_flags_total TCP flag occurrences
# TYPE hubble_tcp_flags_total counter
hubble_tcp_flags_total{family="IPv4",flag="SYN"} 2
hubble_tcp_flags_total{family="IPv4",flag="SYN-ACK"} 1
hubble_tcp_flags_total{family="IPv4",flag="FIN"} 1
hubble_tcp_flags_total{family="IPv4",flag="RST"} 1
hubble_tcp_flags_total{family="IPv6",flag="SYN"} 1
hubble_tcp_flags_total{family="IPv6",flag="FIN"} 1
`, "hubble_tcp_flags_total")
}

func TestPortDistribution(t *testing.T) {
	p, reg := newProc(t, "port-distribution")
	process(p,
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "SYN"), reply: &no},
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "ACK"), reply: &no},
		fl{typ: typeTrace, verdict: fwd, l4: tcp(40000, "SYN|ACK"), reply: &yes}, // reply: ephemeral port
		fl{typ: typeTrace, verdict: fwd, l4: tcp(8080, "SYN")},                   // reply unknown
		fl{typ: typeTrace, verdict: fwd, l4: udp(53), reply: &no},
		fl{typ: typeTrace, verdict: fwd, l4: icmp6(128, 0), v6: true, reply: &no},
		fl{typ: typeDrop, verdict: drop, l4: tcp(22, "SYN"), reply: &no, reason: 133},
	)
	expect(t, reg, `
# HELP hubble_port_distribution_total Numbers of packets distributed by destination port
# TYPE hubble_port_distribution_total counter
hubble_port_distribution_total{port="80",protocol="TCP"} 2
hubble_port_distribution_total{port="53",protocol="UDP"} 1
hubble_port_distribution_total{port="0",protocol="ICMPv6"} 1
`, "hubble_port_distribution_total")
}

func TestICMP(t *testing.T) {
	p, reg := newProc(t, "icmp")
	process(p,
		fl{typ: typeTrace, verdict: fwd, l4: icmp4(8, 0)},
		fl{typ: typeTrace, verdict: fwd, l4: icmp4(8, 0)},
		fl{typ: typeTrace, verdict: fwd, l4: icmp4(8, 1)},
		fl{typ: typeTrace, verdict: fwd, l4: icmp4(3, 3)},
		fl{typ: typeTrace, verdict: fwd, l4: icmp4(3, 99)},
		fl{typ: typeTrace, verdict: fwd, l4: icmp4(42, 7)},
		fl{typ: typeDrop, verdict: drop, l4: icmp6(129, 0), v6: true, reason: 133}, // any verdict counts
		fl{typ: typeTrace, verdict: fwd, l4: icmp6(1, 4), v6: true},
		fl{typ: typeTrace, verdict: fwd, l4: icmp6(143, 0), v6: true},
		fl{typ: typeTrace, verdict: fwd, l4: tcp(80, "SYN")},
	)
	expect(t, reg, `
# HELP hubble_icmp_total Number of ICMP messages
# TYPE hubble_icmp_total counter
hubble_icmp_total{family="IPv4",type="EchoRequest"} 2
hubble_icmp_total{family="IPv4",type="EchoRequest(Code: 1)"} 1
hubble_icmp_total{family="IPv4",type="DestinationUnreachable(Port)"} 1
hubble_icmp_total{family="IPv4",type="DestinationUnreachable(Code: 99)"} 1
hubble_icmp_total{family="IPv4",type="42(7)"} 1
hubble_icmp_total{family="IPv6",type="EchoReply"} 1
hubble_icmp_total{family="IPv6",type="DestinationUnreachable(PortUnreachable)"} 1
hubble_icmp_total{family="IPv6",type="143(0)"} 1
`, "hubble_icmp_total")
}

func TestPolicyVerdicts(t *testing.T) {
	p, reg := newProc(t, "policy")
	process(p,
		fl{typ: typePolicyVerdict, verdict: fwd, dir: ing, match: 2, src: 256, l4: tcp(80, "SYN")},
		fl{typ: typePolicyVerdict, verdict: fwd, dir: ing, match: 2, src: 257, l4: tcp(80, "SYN")},
		fl{typ: typePolicyVerdict, verdict: drop, dir: egr, match: 0, src: 256, l4: udp(53)},
		fl{typ: typePolicyVerdict, verdict: audit, dir: egr, match: 3, src: 256, l4: udp(53)},
		fl{typ: typePolicyVerdict, verdict: fwd, dir: ing, match: 4, src: 256},
		fl{typ: typePolicyVerdict, verdict: fwd, dir: ing, match: 5, src: 256},
		fl{typ: typePolicyVerdict, verdict: fwd, dir: ing, match: 6, src: 256},
		fl{typ: typePolicyVerdict, verdict: fwd, dir: ing, match: 1, src: 256},
		fl{typ: typePolicyVerdict, verdict: fwd, dir: ing, match: 99, src: 256},
		fl{typ: typePolicyVerdict, verdict: fwd, dir: ing, match: 4, src: identityHost}, // the node: ignored
		fl{typ: typeAccessLog, verdict: drop, dir: ing, l7: &flowpb.Layer7{Record: &flowpb.Layer7_Http{Http: &flowpb.HTTP{}}}},
		fl{typ: typeDrop, verdict: drop, dir: ing, reason: 133, l4: tcp(80, "SYN")}, // a drop event is not a verdict event
	)
	expect(t, reg, `
# HELP hubble_policy_verdicts_total Total number of Cilium network policy verdicts
# TYPE hubble_policy_verdicts_total counter
hubble_policy_verdicts_total{action="forwarded",direction="ingress",match="l3-l4"} 2
hubble_policy_verdicts_total{action="dropped",direction="egress",match="none"} 1
hubble_policy_verdicts_total{action="audit",direction="egress",match="l4-only"} 1
hubble_policy_verdicts_total{action="forwarded",direction="ingress",match="all"} 1
hubble_policy_verdicts_total{action="forwarded",direction="ingress",match="l3-proto"} 1
hubble_policy_verdicts_total{action="forwarded",direction="ingress",match="proto-only"} 1
hubble_policy_verdicts_total{action="forwarded",direction="ingress",match="l3-only"} 1
hubble_policy_verdicts_total{action="forwarded",direction="ingress",match="unknown"} 1
hubble_policy_verdicts_total{action="dropped",direction="ingress",match="l7/http"} 1
`, "hubble_policy_verdicts_total")
}

func TestFlowsToWorld(t *testing.T) {
	world := []string{"reserved:world"}
	flows := []fl{
		{typ: typeTrace, verdict: fwd, l4: tcp(443, "SYN"), reply: &no, dst: 16777217, dstLabels: []string{"cidr:1.1.1.1/32", "reserved:world"}},
		{typ: typeTrace, verdict: fwd, l4: tcp(443, "ACK"), reply: &no, dst: 2, dstLabels: world},
		{typ: typeTrace, verdict: fwd, l4: tcp(443, "SYN|ACK"), reply: &yes, dst: 2, dstLabels: world}, // reply
		{typ: typeTrace, verdict: fwd, l4: udp(53), reply: &no, dst: 2},                                // identity only
		{typ: typeTrace, verdict: fwd, l4: icmp4(8, 0), reply: &no, dst: 9, dstLabels: []string{"reserved:world-ipv4"}},
		{typ: typeDrop, verdict: drop, l4: tcp(22, "SYN"), dst: 2, dstLabels: world, reason: flowpb.DropReason_POLICY_DENIED},
		{typ: typeDrop, verdict: drop, l4: tcp(22, "SYN"), dst: 2, dstLabels: world, reason: flowpb.DropReason_CT_MAP_INSERTION_FAILED},
		{typ: typeTrace, verdict: fwd, l4: tcp(80, "SYN"), reply: &no, dst: 256, dstLabels: []string{"k8s:app=web"}}, // in-cluster
		{verdict: fwd, l4: tcp(80, "SYN"), reply: &no, dst: 2},                                                       // no event type
	}

	p, reg := newProc(t, "flows-to-world")
	process(p, flows...)
	expect(t, reg, `
# HELP hubble_flows_to_world_total Total number of flows to reserved:world
# TYPE hubble_flows_to_world_total counter
hubble_flows_to_world_total{protocol="TCP",verdict="FORWARDED"} 2
hubble_flows_to_world_total{protocol="UDP",verdict="FORWARDED"} 1
hubble_flows_to_world_total{protocol="ICMPv4",verdict="FORWARDED"} 1
hubble_flows_to_world_total{protocol="TCP",verdict="DROPPED"} 1
`, "hubble_flows_to_world_total")

	p, reg = newProc(t, "flows-to-world:any-drop;port;syn-only")
	process(p, flows...)
	expect(t, reg, `
# HELP hubble_flows_to_world_total Total number of flows to reserved:world
# TYPE hubble_flows_to_world_total counter
hubble_flows_to_world_total{port="443",protocol="TCP",verdict="FORWARDED"} 1
hubble_flows_to_world_total{port="22",protocol="TCP",verdict="DROPPED"} 2
`, "hubble_flows_to_world_total")
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		metrics []string
		err     string // substring; "" means success
		enabled string
	}{
		{metrics: nil, enabled: ""},
		{metrics: []string{"drop,tcp flow", "port-distribution"}, enabled: "drop,tcp,flow,port-distribution"},
		{metrics: []string{"drop", "tcp", "flow", "port-distribution", "icmp", "policy", "flows-to-world"},
			enabled: "drop,tcp,flow,port-distribution,icmp,policy,flows-to-world"},
		{metrics: []string{"flows-to-world:port;any-drop"}, enabled: "flows-to-world"},
		{metrics: []string{"drops"}, err: `unknown hubble metric "drops"; valid metrics: drop, flow, flows-to-world, icmp, policy, port-distribution, tcp`},
		{metrics: []string{"dns"}, err: `"dns" is not supported by seta (needs L7 (DNS proxy) visibility)`},
		{metrics: []string{"drop,drop"}, err: `"drop" is listed twice`},
		{metrics: []string{"drop:sourceContext=pod"}, err: `context option "sourceContext" is not supported`},
		{metrics: []string{"drop:any-drop"}, err: `"drop" takes no options`},
		{metrics: []string{"flows-to-world:syn"}, err: `unknown option "syn" (valid: any-drop, port, syn-only)`},
	} {
		reg := prometheus.NewRegistry()
		p, err := New(reg, Options{Metrics: tc.metrics})
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.metrics, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want it to contain %q", tc.metrics, err, tc.err)
		case tc.err == "":
			if got := strings.Join(p.Enabled(), ","); got != tc.enabled {
				t.Errorf("%q: enabled %q, want %q", tc.metrics, got, tc.enabled)
			}
		}
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("nil registerer accepted")
	}
}

// Only the enabled families are registered; lost events always are.
func TestOnlyEnabledRegistered(t *testing.T) {
	p, reg := newProc(t, "drop")
	all := fl{typ: typeDrop, verdict: drop, reply: &no, l4: tcp(80, "SYN"), reason: 133, dst: 2}
	process(p, all, fl{typ: typePolicyVerdict, verdict: fwd, l4: icmp4(8, 0)})
	p.SetLostEvents(LostSourceHubbleRing, 0)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if got := strings.Join(names, ","); got != "hubble_drop_total,hubble_lost_events_total" {
		t.Errorf("registered %s", got)
	}
}

func TestRegisterConflictLeavesRegistryClean(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, Options{Metrics: []string{"flow"}}); err != nil {
		t.Fatal(err)
	}
	// The second processor's drop_total would register, then flows_processed
	// collides: New must fail and take drop_total back out.
	if _, err := New(reg, Options{Metrics: []string{"drop", "flow"}}); err == nil {
		t.Fatal("a second registration of the same metrics succeeded")
	}
	if _, err := New(prometheus.WrapRegistererWithPrefix("x_", reg), Options{Metrics: []string{"drop"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg, Options{Metrics: []string{"flow"}}); err == nil {
		t.Fatal("lost events registered twice")
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "hubble_drop_total" {
			t.Error("a failed New left hubble_drop_total registered")
		}
	}
}

func TestLostEvents(t *testing.T) {
	ringLost := uint64(5)
	var broken error
	reg := prometheus.NewRegistry()
	p, err := New(reg, Options{
		Metrics: []string{"drop"},
		LostEvents: map[string]func() (uint64, error){
			LostSourcePerfRing: func() (uint64, error) { return ringLost, broken },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.SetLostEvents(LostSourceObserverQueue, 10)
	p.SetLostEvents(LostSourceObserverQueue, 12) // a total, not an increment
	p.AddLostEvents(LostSourceHubbleRing, 3)
	p.AddLostEvents(LostSourceHubbleRing, 4)
	p.AddLostEvents(LostSourcePerfRing, 1) // added to the pulled value
	want := `
# HELP hubble_lost_events_total Number of lost events
# TYPE hubble_lost_events_total counter
hubble_lost_events_total{source="hubble_ring_buffer"} 7
hubble_lost_events_total{source="observer_events_queue"} 12
hubble_lost_events_total{source="perf_event_ring_buffer"} 6
`
	expect(t, reg, want, "hubble_lost_events_total")
	ringLost = 8 // read at scrape time
	expect(t, reg, strings.Replace(want, "} 6", "} 9", 1), "hubble_lost_events_total")

	broken = errors.New("map gone")
	mfs, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "map gone") {
		t.Errorf("a failing source was not reported: %v", err)
	}
	// The other sources are still exported, and the failing one is left
	// out rather than shown with only its pushed part.
	var got []string
	for _, mf := range mfs {
		if mf.GetName() != "hubble_lost_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got = append(got, m.GetLabel()[0].GetValue())
		}
	}
	if strings.Join(got, ",") != "hubble_ring_buffer,observer_events_queue" {
		t.Errorf("with a failing source, exported %v", got)
	}
}

func TestNilIsSafe(t *testing.T) {
	var p *Processor
	p.ProcessFlow(&flowpb.Flow{})
	p.SetLostEvents(LostSourceHubbleRing, 1)
	p.AddLostEvents(LostSourceHubbleRing, 1)
	if p.Enabled() != nil {
		t.Error("nil processor has enabled metrics")
	}
	p2, _ := newProc(t, Names()...)
	p2.ProcessFlow(nil)
	p2.ProcessFlow(&flowpb.Flow{}) // every field missing
}

// A flow whose label combination was seen before costs no allocation.
func TestNoAllocationsOnHit(t *testing.T) {
	p, _ := newProc(t, Names()...)
	fs := benchFlows()
	for _, f := range fs {
		p.ProcessFlow(f)
	}
	for i, f := range fs {
		if n := testing.AllocsPerRun(100, func() { p.ProcessFlow(f) }); n != 0 {
			t.Errorf("flow %d: %v allocations per ProcessFlow", i, n)
		}
	}
}

func TestConcurrentProcessing(t *testing.T) {
	p, _ := newProc(t, "flow", "port-distribution")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				process(p, fl{typ: typeTrace, verdict: fwd, reply: &no, l4: tcp(uint32(i%50), "SYN")})
			}
		}(g)
	}
	wg.Wait()
	if got := testutil.ToFloat64(p.flows.vec); got != 8000 {
		t.Errorf("flows counted %v, want 8000", got)
	}
	if n := testutil.CollectAndCount(p.ports.vec); n != 50 {
		t.Errorf("%d port series, want 50", n)
	}
}

// benchFlows is a mix as a busy node sees it: mostly forwarded TCP, some
// UDP, ICMP, drops, verdicts, traffic to the world.
func benchFlows() []*flowpb.Flow {
	return []*flowpb.Flow{
		fl{typ: typeTrace, verdict: fwd, reply: &no, l4: tcp(80, "SYN"), dst: 256}.flow(),
		fl{typ: typeTrace, verdict: fwd, reply: &yes, l4: tcp(40000, "SYN|ACK"), dst: 257}.flow(),
		fl{typ: typeTrace, verdict: fwd, reply: &no, l4: tcp(80, "ACK|PSH"), dst: 256}.flow(),
		fl{typ: typeTrace, sub: 3, verdict: fwd, reply: &no, l4: tcp(443, "ACK"), dst: 2, dstLabels: []string{"reserved:world"}}.flow(),
		fl{typ: typeTrace, verdict: fwd, reply: &no, l4: udp(53), dst: 256, v6: true}.flow(),
		fl{typ: typeTrace, verdict: fwd, reply: &no, l4: icmp4(8, 0), dst: 256}.flow(),
		fl{typ: typeDrop, sub: 133, verdict: drop, reply: &no, l4: tcp(22, "SYN"), reason: flowpb.DropReason_POLICY_DENIED, dst: 256}.flow(),
		fl{typ: typePolicyVerdict, verdict: audit, dir: ing, match: 2, src: 256, reply: &no, l4: tcp(8080, "SYN"), dst: 257}.flow(),
	}
}

// BenchmarkProcessFlow: every metric enabled, the label combinations
// already seen (the steady state).
func BenchmarkProcessFlow(b *testing.B) {
	p, _ := newProc(b, "flow", "drop", "tcp", "port-distribution", "icmp", "policy", "flows-to-world")
	fs := benchFlows()
	for _, f := range fs {
		p.ProcessFlow(f)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.ProcessFlow(fs[i%len(fs)])
	}
}

// BenchmarkProcessFlowParallel: several decoders sharing one Processor.
func BenchmarkProcessFlowParallel(b *testing.B) {
	p, _ := newProc(b, Names()...)
	fs := benchFlows()
	for _, f := range fs {
		p.ProcessFlow(f)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			p.ProcessFlow(fs[i%len(fs)])
			i++
		}
	})
}

func TestValidate(t *testing.T) {
	if err := Validate([]string{"drop,tcp", "flows-to-world:port"}); err != nil {
		t.Error(err)
	}
	if err := Validate([]string{"drop", "tpc"}); err == nil || !strings.Contains(err.Error(), `unknown hubble metric "tpc"`) {
		t.Errorf("Validate(tpc) = %v", err)
	}
}

// A key seen again is soon served from the published map (without the
// lock), and publishing costs copies linear in the number of keys: 5000
// new keys, then each again, publish twice.
func TestVecCachePublishes(t *testing.T) {
	c := newVecCache("t_total", "test", []string{"protocol", "port"}, portKey.labels)
	publications := 0
	last := c.read.Load()
	for round := range 2 {
		for i := range 5000 {
			c.inc(portKey{proto: protoTCP, port: uint16(i)})
			if m := c.read.Load(); m != last {
				publications, last = publications+1, m
			}
			if round == 1 && i > 0 {
				if _, ok := (*last)[portKey{proto: protoTCP, port: uint16(i)}]; !ok {
					t.Fatalf("port %d, seen twice, is not in the published map", i)
				}
			}
		}
	}
	if publications != 2 || len(*last) != 5000 {
		t.Errorf("%d publications, %d keys published; want 2 and 5000", publications, len(*last))
	}
	if n := testutil.CollectAndCount(c.vec); n != 5000 {
		t.Errorf("%d series, want 5000", n)
	}
	if got := testutil.ToFloat64(c.vec.WithLabelValues("TCP", "4999")); got != 2 {
		t.Errorf("port 4999 counted %v, want 2", got)
	}
}
