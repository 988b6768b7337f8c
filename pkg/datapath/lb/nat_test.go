package lb

import (
	"net/netip"
	"testing"

	"github.com/seta-net/seta/pkg/datapath/bpf"
)

func TestNATPortRange(t *testing.T) {
	cs, err := bpf.LoadLxc()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint16{"seta_nat_port_min": DefaultNATPortMin, "seta_nat_port_max": DefaultNATPortMax} {
		var got uint16
		v, ok := cs.Variables[name]
		if !ok {
			t.Fatalf("no variable %s in the endpoint program", name)
		}
		if err := v.Get(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %d in the C, %d in Go", name, got, want)
		}
	}
}

func natKey(t *testing.T, src, dst string, proto uint8, dir uint8) NATKey {
	t.Helper()
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	var k NATKey
	fam, err := putAddr(&k.Saddr, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	putAddr(&k.Daddr, d.Addr())
	k.Sport, k.Dport, k.Proto, k.Family, k.Dir = htons(s.Port()), htons(d.Port()), proto, fam, dir
	return k
}

func TestNATRows(t *testing.T) {
	var fwd, rev NATEntry
	putAddr(&fwd.Addr, netip.MustParseAddr("10.244.1.5"))
	fwd.Port, fwd.BackendId, fwd.RevNatId = htons(8080), 7, 3
	putAddr(&rev.Addr, netip.MustParseAddr("10.96.0.10"))
	rev.Port, rev.BackendId, rev.RevNatId = htons(80), 7, 3
	// A NodePort connection to another node: SNAT both ways.
	var sfwd, srev NATEntry
	putAddr(&sfwd.Addr, netip.MustParseAddr("fd00::2"))
	putAddr(&sfwd.Peer, netip.MustParseAddr("fd00::1"))
	sfwd.Port, sfwd.PeerPort, sfwd.Flags = htons(8080), htons(61234), NATFlagSNAT|NATFlagExternal
	putAddr(&srev.Addr, netip.MustParseAddr("fd00::1"))
	putAddr(&srev.Peer, netip.MustParseAddr("fd00::99"))
	srev.Port, srev.PeerPort, srev.Flags = htons(30080), htons(40000), NATFlagSNAT|NATFlagExternal
	entries := []NAT{
		DecodeNAT(natKey(t, "10.244.1.2:40000", "10.96.0.10:80", 6, NATForward), fwd),
		DecodeNAT(natKey(t, "10.244.1.5:8080", "10.244.1.2:40000", 6, NATReverse), rev),
		DecodeNAT(natKey(t, "[fd00::99]:40000", "[fd00::1]:30080", 17, NATForward), sfwd),
		DecodeNAT(natKey(t, "[fd00::2]:8080", "[fd00::1]:61234", 17, NATReverse), srev),
	}
	want := []NATRow{
		{Direction: "forward", Proto: "TCP", Tuple: "10.244.1.2:40000 -> 10.96.0.10:80", Rewrite: "dst 10.244.1.5:8080", Backend: 7, Service: 3},
		{Direction: "reverse", Proto: "TCP", Tuple: "10.244.1.5:8080 -> 10.244.1.2:40000", Rewrite: "src 10.96.0.10:80", Backend: 7, Service: 3},
		{Direction: "forward", Proto: "UDP", Tuple: "[fd00::99]:40000 -> [fd00::1]:30080", Rewrite: "dst [fd00::2]:8080, src [fd00::1]:61234", Flags: "snat,external"},
		{Direction: "reverse", Proto: "UDP", Tuple: "[fd00::2]:8080 -> [fd00::1]:61234", Rewrite: "src [fd00::1]:30080, dst [fd00::99]:40000", Flags: "snat,external"},
	}
	got := NATRows(entries)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}
