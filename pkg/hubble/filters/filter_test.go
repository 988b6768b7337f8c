package filters

import (
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// flow builds a test flow; tweak functions adjust the defaults.
func flow(tweaks ...func(*flowpb.Flow)) *flowpb.Flow {
	fl := &flowpb.Flow{
		Source: &flowpb.Endpoint{
			Namespace: "shop", PodName: "frontend-7d9f", Identity: 1001,
			Labels: []string{"k8s:app=web", "k8s:tier=front", "k8s:io.kubernetes.pod.namespace=shop"},
		},
		Destination: &flowpb.Endpoint{
			Namespace: "db", PodName: "postgres-0", Identity: 2002,
			Labels: []string{"k8s:app=postgres", "container:app=sidecar"},
		},
		IP: &flowpb.IP{Source: "10.0.1.5", Destination: "10.1.2.3"},
		L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{
			SourcePort: 40000, DestinationPort: 5432,
			Flags: &flowpb.TCPFlags{SYN: true, ACK: true},
		}}},
		Verdict:          flowpb.Verdict_FORWARDED,
		EventType:        &flowpb.CiliumEventType{Type: 4, SubType: 3},
		NodeName:         "kind-worker2",
		TrafficDirection: flowpb.TrafficDirection_EGRESS,
	}
	for _, t := range tweaks {
		t(fl)
	}
	return fl
}

func withUDP(src, dst uint32) func(*flowpb.Flow) {
	return func(fl *flowpb.Flow) {
		fl.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: src, DestinationPort: dst}}}
	}
}

func withSCTP(src, dst uint32) func(*flowpb.Flow) {
	return func(fl *flowpb.Flow) {
		fl.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_SCTP{SCTP: &flowpb.SCTP{SourcePort: src, DestinationPort: dst}}}
	}
}

func withICMPv4(fl *flowpb.Flow) {
	fl.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv4{ICMPv4: &flowpb.ICMPv4{Type: 8}}}
}

func withICMPv6(fl *flowpb.Flow) {
	fl.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_ICMPv6{ICMPv6: &flowpb.ICMPv6{Type: 128}}}
}

func withTCPFlags(f *flowpb.TCPFlags) func(*flowpb.Flow) {
	return func(fl *flowpb.Flow) { fl.GetL4().GetTCP().Flags = f }
}

func withIPs(src, dst string) func(*flowpb.Flow) {
	return func(fl *flowpb.Flow) { fl.IP = &flowpb.IP{Source: src, Destination: dst} }
}

func withSrcPod(ns, pod string) func(*flowpb.Flow) {
	return func(fl *flowpb.Flow) { fl.Source.Namespace, fl.Source.PodName = ns, pod }
}

func withSrcLabels(ls ...string) func(*flowpb.Flow) {
	return func(fl *flowpb.Flow) { fl.Source.Labels = ls }
}

func withReply(v bool) func(*flowpb.Flow) {
	return func(fl *flowpb.Flow) { fl.IsReply = wrapperspb.Bool(v) }
}

func TestFilterMatch(t *testing.T) {
	tests := []struct {
		name   string
		filter *flowpb.FlowFilter
		flow   *flowpb.Flow
		want   bool
	}{
		{"empty filter matches all", &flowpb.FlowFilter{}, flow(), true},
		{"empty filter matches empty flow", &flowpb.FlowFilter{}, &flowpb.Flow{}, true},

		// source_pod / destination_pod
		{"source_pod ns/prefix", &flowpb.FlowFilter{SourcePod: []string{"shop/front"}}, flow(), true},
		{"source_pod ns/full name", &flowpb.FlowFilter{SourcePod: []string{"shop/frontend-7d9f"}}, flow(), true},
		{"source_pod ns/ matches whole namespace", &flowpb.FlowFilter{SourcePod: []string{"shop/"}}, flow(), true},
		{"source_pod ns/ other namespace", &flowpb.FlowFilter{SourcePod: []string{"db/"}}, flow(), false},
		{"source_pod wrong prefix", &flowpb.FlowFilter{SourcePod: []string{"shop/back"}}, flow(), false},
		{"source_pod namespace is exact", &flowpb.FlowFilter{SourcePod: []string{"sho/frontend"}}, flow(), false},
		{"source_pod prefix any namespace", &flowpb.FlowFilter{SourcePod: []string{"front"}}, flow(), true},
		{"source_pod prefix any namespace miss", &flowpb.FlowFilter{SourcePod: []string{"postgres"}}, flow(), false},
		{"source_pod prefix needs a pod", &flowpb.FlowFilter{SourcePod: []string{"front"}}, flow(withSrcPod("", "")), false},
		{"source_pod OR", &flowpb.FlowFilter{SourcePod: []string{"db/", "shop/frontend"}}, flow(), true},
		{"source_pod no source endpoint", &flowpb.FlowFilter{SourcePod: []string{"shop/"}}, &flowpb.Flow{}, false},
		{"destination_pod match", &flowpb.FlowFilter{DestinationPod: []string{"db/postgres"}}, flow(), true},
		{"destination_pod checks destination", &flowpb.FlowFilter{DestinationPod: []string{"shop/"}}, flow(), false},

		// source_ip / destination_ip
		{"source_ip exact", &flowpb.FlowFilter{SourceIp: []string{"10.0.1.5"}}, flow(), true},
		{"source_ip exact miss", &flowpb.FlowFilter{SourceIp: []string{"10.0.1.6"}}, flow(), false},
		{"source_ip CIDR", &flowpb.FlowFilter{SourceIp: []string{"10.0.0.0/16"}}, flow(), true},
		{"source_ip CIDR miss", &flowpb.FlowFilter{SourceIp: []string{"10.1.0.0/16"}}, flow(), false},
		{"source_ip CIDR with host bits", &flowpb.FlowFilter{SourceIp: []string{"10.0.9.9/16"}}, flow(), true},
		{"source_ip OR", &flowpb.FlowFilter{SourceIp: []string{"192.168.0.0/16", "10.0.1.5"}}, flow(), true},
		{"source_ip IPv6", &flowpb.FlowFilter{SourceIp: []string{"fd00::/64"}}, flow(withIPs("fd00::1", "fd00::2")), true},
		{"source_ip IPv6 exact", &flowpb.FlowFilter{SourceIp: []string{"fd00::1"}}, flow(withIPs("fd00:0::1", "fd00::2")), true},
		{"source_ip v4 CIDR vs v6 flow", &flowpb.FlowFilter{SourceIp: []string{"0.0.0.0/0"}}, flow(withIPs("fd00::1", "fd00::2")), false},
		{"source_ip no IP layer", &flowpb.FlowFilter{SourceIp: []string{"0.0.0.0/0"}}, &flowpb.Flow{}, false},
		{"destination_ip match", &flowpb.FlowFilter{DestinationIp: []string{"10.1.0.0/16"}}, flow(), true},
		{"destination_ip checks destination", &flowpb.FlowFilter{DestinationIp: []string{"10.0.1.5"}}, flow(), false},

		// source_label / destination_label (selector details in labels_test.go)
		{"source_label key=value", &flowpb.FlowFilter{SourceLabel: []string{"app=web"}}, flow(), true},
		{"source_label with source", &flowpb.FlowFilter{SourceLabel: []string{"k8s:app=web"}}, flow(), true},
		{"source_label miss", &flowpb.FlowFilter{SourceLabel: []string{"app=api"}}, flow(), false},
		{"source_label OR", &flowpb.FlowFilter{SourceLabel: []string{"app=api", "tier=front"}}, flow(), true},
		{"source_label AND in one selector", &flowpb.FlowFilter{SourceLabel: []string{"app=web,tier=back"}}, flow(), false},
		{"source_label reserved", &flowpb.FlowFilter{SourceLabel: []string{"reserved:host"}}, flow(withSrcLabels("reserved:host")), true},
		{"destination_label match", &flowpb.FlowFilter{DestinationLabel: []string{"app=postgres"}}, flow(), true},
		{"destination_label checks destination", &flowpb.FlowFilter{DestinationLabel: []string{"app=web"}}, flow(), false},

		// verdict
		{"verdict match", &flowpb.FlowFilter{Verdict: []flowpb.Verdict{flowpb.Verdict_FORWARDED}}, flow(), true},
		{"verdict miss", &flowpb.FlowFilter{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}, flow(), false},
		{"verdict OR", &flowpb.FlowFilter{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED, flowpb.Verdict_FORWARDED}}, flow(), true},

		// event_type
		{"event_type type only", &flowpb.FlowFilter{EventType: []*flowpb.EventTypeFilter{{Type: 4}}}, flow(), true},
		{"event_type type ignores sub_type unless asked", &flowpb.FlowFilter{EventType: []*flowpb.EventTypeFilter{{Type: 4, SubType: 9}}}, flow(), true},
		{"event_type type miss", &flowpb.FlowFilter{EventType: []*flowpb.EventTypeFilter{{Type: 1}}}, flow(), false},
		{"event_type sub_type match", &flowpb.FlowFilter{EventType: []*flowpb.EventTypeFilter{{Type: 4, MatchSubType: true, SubType: 3}}}, flow(), true},
		{"event_type sub_type miss", &flowpb.FlowFilter{EventType: []*flowpb.EventTypeFilter{{Type: 4, MatchSubType: true, SubType: 0}}}, flow(), false},
		{"event_type OR", &flowpb.FlowFilter{EventType: []*flowpb.EventTypeFilter{{Type: 1}, {Type: 4}}}, flow(), true},
		{"event_type flow without event type", &flowpb.FlowFilter{EventType: []*flowpb.EventTypeFilter{{Type: 0}}}, &flowpb.Flow{}, false},

		// protocol
		{"protocol tcp", &flowpb.FlowFilter{Protocol: []string{"tcp"}}, flow(), true},
		{"protocol case-insensitive", &flowpb.FlowFilter{Protocol: []string{"TCP"}}, flow(), true},
		{"protocol udp vs tcp", &flowpb.FlowFilter{Protocol: []string{"udp"}}, flow(), false},
		{"protocol udp", &flowpb.FlowFilter{Protocol: []string{"udp"}}, flow(withUDP(1, 53)), true},
		{"protocol sctp", &flowpb.FlowFilter{Protocol: []string{"sctp"}}, flow(withSCTP(1, 2)), true},
		{"protocol icmp v4", &flowpb.FlowFilter{Protocol: []string{"icmp"}}, flow(withICMPv4), true},
		{"protocol icmp v6", &flowpb.FlowFilter{Protocol: []string{"icmp"}}, flow(withICMPv6), true},
		{"protocol icmpv4 vs v6", &flowpb.FlowFilter{Protocol: []string{"icmpv4"}}, flow(withICMPv6), false},
		{"protocol icmpv6", &flowpb.FlowFilter{Protocol: []string{"ICMPv6"}}, flow(withICMPv6), true},
		{"protocol OR", &flowpb.FlowFilter{Protocol: []string{"udp", "tcp"}}, flow(), true},
		{"protocol no L4", &flowpb.FlowFilter{Protocol: []string{"tcp"}}, &flowpb.Flow{}, false},

		// source_port / destination_port
		{"source_port tcp", &flowpb.FlowFilter{SourcePort: []string{"40000"}}, flow(), true},
		{"source_port miss", &flowpb.FlowFilter{SourcePort: []string{"5432"}}, flow(), false},
		{"destination_port tcp", &flowpb.FlowFilter{DestinationPort: []string{"5432"}}, flow(), true},
		{"destination_port OR", &flowpb.FlowFilter{DestinationPort: []string{"80", "5432"}}, flow(), true},
		{"destination_port udp", &flowpb.FlowFilter{DestinationPort: []string{"53"}}, flow(withUDP(1234, 53)), true},
		{"source_port udp", &flowpb.FlowFilter{SourcePort: []string{"1234"}}, flow(withUDP(1234, 53)), true},
		{"destination_port sctp", &flowpb.FlowFilter{DestinationPort: []string{"2"}}, flow(withSCTP(1, 2)), true},
		{"destination_port icmp has no port", &flowpb.FlowFilter{DestinationPort: []string{"0"}}, flow(withICMPv4), false},

		// tcp_flags
		{"tcp_flags subset", &flowpb.FlowFilter{TcpFlags: []*flowpb.TCPFlags{{SYN: true}}}, flow(), true},
		{"tcp_flags all of element", &flowpb.FlowFilter{TcpFlags: []*flowpb.TCPFlags{{SYN: true, ACK: true}}}, flow(), true},
		{"tcp_flags element needs every flag", &flowpb.FlowFilter{TcpFlags: []*flowpb.TCPFlags{{SYN: true, FIN: true}}}, flow(), false},
		{"tcp_flags miss", &flowpb.FlowFilter{TcpFlags: []*flowpb.TCPFlags{{RST: true}}}, flow(), false},
		{"tcp_flags OR", &flowpb.FlowFilter{TcpFlags: []*flowpb.TCPFlags{{RST: true}, {ACK: true}}}, flow(), true},
		{"tcp_flags every flag", &flowpb.FlowFilter{TcpFlags: []*flowpb.TCPFlags{{FIN: true, PSH: true, URG: true, ECE: true, CWR: true, NS: true}}},
			flow(withTCPFlags(&flowpb.TCPFlags{FIN: true, PSH: true, URG: true, ECE: true, CWR: true, NS: true, RST: true})), true},
		{"tcp_flags NS not set", &flowpb.FlowFilter{TcpFlags: []*flowpb.TCPFlags{{NS: true}}}, flow(), false},
		{"tcp_flags non-TCP flow", &flowpb.FlowFilter{TcpFlags: []*flowpb.TCPFlags{{SYN: true}}}, flow(withUDP(1, 2)), false},

		// source_identity / destination_identity
		{"source_identity match", &flowpb.FlowFilter{SourceIdentity: []uint32{1001}}, flow(), true},
		{"source_identity miss", &flowpb.FlowFilter{SourceIdentity: []uint32{2002}}, flow(), false},
		{"source_identity OR", &flowpb.FlowFilter{SourceIdentity: []uint32{1, 1001}}, flow(), true},
		{"destination_identity match", &flowpb.FlowFilter{DestinationIdentity: []uint32{2002}}, flow(), true},
		{"destination_identity miss", &flowpb.FlowFilter{DestinationIdentity: []uint32{1001}}, flow(), false},

		// node_name
		{"node_name exact", &flowpb.FlowFilter{NodeName: []string{"kind-worker2"}}, flow(), true},
		{"node_name exact is not a prefix", &flowpb.FlowFilter{NodeName: []string{"kind-worker"}}, flow(), false},
		{"node_name glob", &flowpb.FlowFilter{NodeName: []string{"kind-*"}}, flow(), true},
		{"node_name glob miss", &flowpb.FlowFilter{NodeName: []string{"prod-*"}}, flow(), false},
		{"node_name star matches all", &flowpb.FlowFilter{NodeName: []string{"*"}}, flow(), true},
		{"node_name OR", &flowpb.FlowFilter{NodeName: []string{"a", "kind-worker2"}}, flow(), true},

		// traffic_direction
		{"traffic_direction match", &flowpb.FlowFilter{TrafficDirection: []flowpb.TrafficDirection{flowpb.TrafficDirection_EGRESS}}, flow(), true},
		{"traffic_direction miss", &flowpb.FlowFilter{TrafficDirection: []flowpb.TrafficDirection{flowpb.TrafficDirection_INGRESS}}, flow(), false},
		{"traffic_direction OR", &flowpb.FlowFilter{TrafficDirection: []flowpb.TrafficDirection{flowpb.TrafficDirection_INGRESS, flowpb.TrafficDirection_EGRESS}}, flow(), true},

		// reply
		{"reply false matches unset", &flowpb.FlowFilter{Reply: []bool{false}}, flow(), true},
		{"reply true vs unset", &flowpb.FlowFilter{Reply: []bool{true}}, flow(), false},
		{"reply true", &flowpb.FlowFilter{Reply: []bool{true}}, flow(withReply(true)), true},
		{"reply false vs true", &flowpb.FlowFilter{Reply: []bool{false}}, flow(withReply(true)), false},
		{"reply false explicit", &flowpb.FlowFilter{Reply: []bool{false}}, flow(withReply(false)), true},
		{"reply OR", &flowpb.FlowFilter{Reply: []bool{false, true}}, flow(withReply(true)), true},

		// AND across fields
		{"AND all match", &flowpb.FlowFilter{
			SourcePod: []string{"shop/"}, DestinationPort: []string{"5432"}, Protocol: []string{"tcp"},
			Verdict: []flowpb.Verdict{flowpb.Verdict_FORWARDED}, NodeName: []string{"kind-*"},
		}, flow(), true},
		{"AND one field fails", &flowpb.FlowFilter{
			SourcePod: []string{"shop/"}, DestinationPort: []string{"5432"}, Protocol: []string{"tcp"},
			Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED},
		}, flow(), false},
		{"AND source and destination ip", &flowpb.FlowFilter{SourceIp: []string{"10.0.1.5"}, DestinationIp: []string{"10.1.2.3"}}, flow(), true},
		{"AND source ip matches, destination not", &flowpb.FlowFilter{SourceIp: []string{"10.0.1.5"}, DestinationIp: []string{"10.0.1.5"}}, flow(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Compile(tc.filter)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if got := f.Match(tc.flow); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		filter  *flowpb.FlowFilter
		wantErr string
	}{
		{"nil filter", nil, "nil flow filter"},
		{"unsupported field", &flowpb.FlowFilter{Uuid: []string{"x"}, HttpMethod: []string{"GET"}}, "unsupported filter field(s): http_method, uuid"},
		{"source_pod empty", &flowpb.FlowFilter{SourcePod: []string{""}}, `source_pod: "" is empty`},
		{"source_pod empty namespace", &flowpb.FlowFilter{SourcePod: []string{"/pod"}}, `source_pod: "/pod" has an empty namespace`},
		{"destination_pod two slashes", &flowpb.FlowFilter{DestinationPod: []string{"a/b/c"}}, `destination_pod: "a/b/c" has more than one "/"`},
		{"source_ip bad IP", &flowpb.FlowFilter{SourceIp: []string{"10.0.0.300"}}, `source_ip: "10.0.0.300" is not an IP or CIDR`},
		{"source_ip bad CIDR", &flowpb.FlowFilter{SourceIp: []string{"10.0.0.0/33"}}, `source_ip: "10.0.0.0/33" is not an IP or CIDR`},
		{"destination_ip name", &flowpb.FlowFilter{DestinationIp: []string{"10.0.0.1", "example.com"}}, `destination_ip: "example.com" is not an IP or CIDR`},
		{"destination_ip zone", &flowpb.FlowFilter{DestinationIp: []string{"fe80::1%eth0"}}, `destination_ip: "fe80::1%eth0" is not an IP or CIDR`},
		{"source_label bad selector", &flowpb.FlowFilter{SourceLabel: []string{"app==="}}, `source_label: "app===" is not a valid label selector`},
		{"destination_label empty", &flowpb.FlowFilter{DestinationLabel: []string{" "}}, `destination_label: " " is not a valid label selector: empty selector`},
		{"verdict unknown", &flowpb.FlowFilter{Verdict: []flowpb.Verdict{99}}, "verdict: 99 is not a known verdict"},
		{"traffic_direction unknown", &flowpb.FlowFilter{TrafficDirection: []flowpb.TrafficDirection{7}}, "traffic_direction: 7 is not a known traffic direction"},
		{"protocol unknown", &flowpb.FlowFilter{Protocol: []string{"tcp", "quic"}}, `protocol: "quic" is not a known protocol`},
		{"source_port not a number", &flowpb.FlowFilter{SourcePort: []string{"http"}}, `source_port: "http" is not a port number`},
		{"destination_port too large", &flowpb.FlowFilter{DestinationPort: []string{"65536"}}, `destination_port: "65536" is not a port number`},
		{"destination_port negative", &flowpb.FlowFilter{DestinationPort: []string{"-1"}}, `destination_port: "-1" is not a port number`},
		{"node_name empty", &flowpb.FlowFilter{NodeName: []string{""}}, `node_name: "" is empty`},
		{"node_name inner star", &flowpb.FlowFilter{NodeName: []string{"kind-*-2"}}, `node_name: "kind-*-2" may only use "*" at the end`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Compile(tc.filter)
			if err == nil {
				t.Fatalf("Compile = %v, want error containing %q", f, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestSet(t *testing.T) {
	shop := &flowpb.FlowFilter{SourcePod: []string{"shop/"}}
	db := &flowpb.FlowFilter{SourcePod: []string{"db/"}}
	dropped := &flowpb.FlowFilter{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}
	port53 := &flowpb.FlowFilter{DestinationPort: []string{"53"}}

	dropFlow := flow(func(fl *flowpb.Flow) { fl.Verdict = flowpb.Verdict_DROPPED })
	dbFlow := flow(withSrcPod("db", "postgres-0"))
	otherFlow := flow(withSrcPod("kube-system", "coredns-1"))

	tests := []struct {
		name                 string
		whitelist, blacklist []*flowpb.FlowFilter
		flow                 *flowpb.Flow
		want                 bool
	}{
		{"no filters passes all", nil, nil, flow(), true},
		{"whitelist match", []*flowpb.FlowFilter{shop}, nil, flow(), true},
		{"whitelist miss", []*flowpb.FlowFilter{shop}, nil, dbFlow, false},
		{"whitelist OR first", []*flowpb.FlowFilter{shop, db}, nil, flow(), true},
		{"whitelist OR second", []*flowpb.FlowFilter{shop, db}, nil, dbFlow, true},
		{"whitelist OR none", []*flowpb.FlowFilter{shop, db}, nil, otherFlow, false},
		{"blacklist only, not listed", nil, []*flowpb.FlowFilter{dropped}, flow(), true},
		{"blacklist only, listed", nil, []*flowpb.FlowFilter{dropped}, dropFlow, false},
		{"blacklist OR", nil, []*flowpb.FlowFilter{port53, dropped}, dropFlow, false},
		{"whitelist match, blacklist miss", []*flowpb.FlowFilter{shop}, []*flowpb.FlowFilter{dropped}, flow(), true},
		{"whitelist match, blacklist match", []*flowpb.FlowFilter{shop}, []*flowpb.FlowFilter{dropped}, dropFlow, false},
		{"whitelist miss, blacklist miss", []*flowpb.FlowFilter{shop}, []*flowpb.FlowFilter{dropped}, dbFlow, false},
		{"empty whitelist filter matches all", []*flowpb.FlowFilter{{}}, []*flowpb.FlowFilter{dropped}, otherFlow, true},
		{"empty blacklist filter blocks all", []*flowpb.FlowFilter{shop}, []*flowpb.FlowFilter{{}}, flow(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSet(tc.whitelist, tc.blacklist)
			if err != nil {
				t.Fatalf("NewSet: %v", err)
			}
			if got := s.Match(tc.flow); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewSetErrors(t *testing.T) {
	bad := &flowpb.FlowFilter{SourceIp: []string{"10.0.0.300"}}
	good := &flowpb.FlowFilter{}
	tests := []struct {
		name                 string
		whitelist, blacklist []*flowpb.FlowFilter
		wantErr              string
	}{
		{"bad whitelist", []*flowpb.FlowFilter{good, bad}, nil, `whitelist[1]: source_ip: "10.0.0.300" is not an IP or CIDR`},
		{"bad blacklist", []*flowpb.FlowFilter{good}, []*flowpb.FlowFilter{bad}, `blacklist[0]: source_ip: "10.0.0.300" is not an IP or CIDR`},
		{"nil blacklist element", nil, []*flowpb.FlowFilter{nil}, "blacklist[0]: nil flow filter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSet(tc.whitelist, tc.blacklist)
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
