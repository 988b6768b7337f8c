package maps

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

func TestEndpointKeyRoundTrip(t *testing.T) {
	for _, s := range []string{"10.244.1.2", "fd00:5e7a:0:1::2", "::ffff:10.0.0.1"} {
		a := netip.MustParseAddr(s)
		k := NewEndpointKey(a)
		if got := KeyAddr(k); got != a.Unmap() {
			t.Errorf("%s: round trip gave %s", s, got)
		}
	}
	k4 := NewEndpointKey(netip.MustParseAddr("10.0.0.1"))
	if k4.Family != 4 || k4.Addr[4] != 0 || k4.Addr[15] != 0 {
		t.Errorf("IPv4 key must use the first four bytes only: %+v", k4)
	}
	if NewEndpointKey(netip.MustParseAddr("::ffff:10.0.0.1")) != k4 {
		t.Error("a mapped address must give the IPv4 key the datapath looks up")
	}
}

func TestEndpointInfo(t *testing.T) {
	pod, _ := net.ParseMAC("02:00:00:00:00:01")
	host, _ := net.ParseMAC("02:00:00:00:00:02")
	v := NewEndpointInfo(7, 42, pod, host, 300, false)
	if v.Id != 7 || v.Ifindex != 42 {
		t.Fatalf("%+v", v)
	}
	if got := FormatEndpointInfo(v); got != "id=7 ifindex=42 identity=300 mac=02:00:00:00:00:01 node_mac=02:00:00:00:00:02" {
		t.Errorf("FormatEndpointInfo = %q", got)
	}
}

// Every drop reason has Hubble's number for it, so flows carry the code
// Hubble names (flowpb.DropReason); a reason Hubble does not know would
// print as a bare number there.
func TestReasonsAreHubbles(t *testing.T) {
	want := map[Reason]flowpb.DropReason{
		132: flowpb.DropReason_INVALID_SOURCE_IP, 133: flowpb.DropReason_POLICY_DENIED,
		134: flowpb.DropReason_INVALID_PACKET_DROPPED, 151: flowpb.DropReason_STALE_OR_UNROUTABLE_IP,
		152: flowpb.DropReason_NO_MATCHING_LOCAL_CONTAINER_FOUND, 155: flowpb.DropReason_CT_MAP_INSERTION_FAILED,
		158: flowpb.DropReason_SERVICE_BACKEND_NOT_FOUND, 167: flowpb.DropReason_NO_MAPPING_FOR_NAT_MASQUERADE,
		169: flowpb.DropReason_FIB_LOOKUP_FAILED, 181: flowpb.DropReason_POLICY_DENY,
	}
	for r := range reasonNames {
		if r == 0 {
			continue
		}
		if w, ok := want[r]; !ok || flowpb.DropReason(r) != w {
			t.Errorf("reason %d (%s) is Hubble's %s, want it listed here as such", r, r, flowpb.DropReason(r))
		}
	}
}

func TestReasonNames(t *testing.T) {
	if Reason(0).String() != "Forwarded" || Reason(132).String() != "Invalid source ip" || Reason(181).String() != "Policy denied by denylist" {
		t.Error("reason names do not match bpf/lib/drop.h")
	}
	for r, want := range map[Reason]string{158: "Service backend not found", 167: "No mapping for NAT masquerade", 169: "FIB lookup failed"} {
		if r.String() != want {
			t.Errorf("reason %d = %q, want %q", r, r.String(), want)
		}
	}
	if Reason(250).String() != "Unknown reason 250" {
		t.Errorf("unknown reason: %s", Reason(250))
	}
}

// metricsSlot inverts metrics_index (bpf/lib/maps.h): reason << 1 | dir.
func TestMetricsSlot(t *testing.T) {
	for _, c := range []struct {
		idx    uint32
		reason Reason
		dir    string
	}{{0, 0, "egress"}, {1, 0, "ingress"}, {2 * 133, 133, "egress"}, {2*255 + 1, 255, "ingress"}} {
		r, d := metricsSlot(c.idx)
		if r != c.reason || d != c.dir {
			t.Errorf("slot %d: %v %s, want %v %s", c.idx, r, d, c.reason, c.dir)
		}
	}
}

func TestOpenFlags(t *testing.T) {
	if f := OpenFlags(false, false); f != 0 {
		t.Errorf("no open direction: %#x", f)
	}
	if f := OpenFlags(true, true); f != EndpointFlagIngressOpen|EndpointFlagEgressOpen {
		t.Errorf("both open: %#x", f)
	}
	v := NewEndpointInfo(7, 42, nil, nil, 300, true)
	v.Flags |= OpenFlags(false, true)
	if s := FormatEndpointInfo(v); !strings.HasSuffix(s, " audit egress-open") {
		t.Errorf("formatted as %q", s)
	}
}
