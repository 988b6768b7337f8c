package maps

import (
	"net"
	"net/netip"
	"testing"
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

func TestReasonNames(t *testing.T) {
	if Reason(0).String() != "Forwarded" || Reason(132).String() != "Invalid source ip" || Reason(181).String() != "Policy denied by denylist" {
		t.Error("reason names do not match bpf/lib/drop.h")
	}
	if Reason(250).String() != "Unknown reason 250" {
		t.Errorf("unknown reason: %s", Reason(250))
	}
}
