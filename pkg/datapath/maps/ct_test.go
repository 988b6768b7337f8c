package maps

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// The two directions of a connection give one key, the side that sorts
// first (address bytes, then port, network order) as side a, and the
// source's side says which direction a packet goes.
func TestCTConnKeyOrder(t *testing.T) {
	for _, c := range []struct {
		name     string
		fwd      CTTuple
		wantA    netip.AddrPort // side a of the key
		wantSrcB bool           // the forward packet's source is side b
	}{
		{"v4 lower address first", CTTuple{unix.IPPROTO_TCP, ap("10.0.0.1:40000"), ap("10.0.0.2:80")}, ap("10.0.0.1:40000"), false},
		{"v4 higher address first", CTTuple{unix.IPPROTO_TCP, ap("10.0.0.9:40000"), ap("10.0.0.2:80")}, ap("10.0.0.2:80"), true},
		// Bytes, not dotted-quad text: 10.0.0.10 > 10.0.0.9.
		{"v4 by byte value", CTTuple{unix.IPPROTO_UDP, ap("10.0.0.10:53"), ap("10.0.0.9:53")}, ap("10.0.0.9:53"), true},
		{"v4 first byte decides", CTTuple{unix.IPPROTO_UDP, ap("9.255.255.255:1"), ap("10.0.0.0:1")}, ap("9.255.255.255:1"), false},
		{"same address, lower port first", CTTuple{unix.IPPROTO_TCP, ap("10.0.0.1:8080"), ap("10.0.0.1:80")}, ap("10.0.0.1:80"), true},
		// Ports compare in network order: 256 (0x0100) > 255 (0x00ff).
		{"port by value", CTTuple{unix.IPPROTO_TCP, ap("10.0.0.1:256"), ap("10.0.0.1:255")}, ap("10.0.0.1:255"), true},
		{"v6", CTTuple{unix.IPPROTO_TCP, ap("[fd00::2]:1"), ap("[fd00::1:0]:2")}, ap("[fd00::2]:1"), false},
		{"v6 last byte decides", CTTuple{unix.IPPROTO_TCP, ap("[fd00::3]:1"), ap("[fd00::2]:2")}, ap("[fd00::2]:2"), true},
		{"equal sides keep the source as a", CTTuple{unix.IPPROTO_UDP, ap("10.0.0.1:9"), ap("10.0.0.1:9")}, ap("10.0.0.1:9"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, srcB := CTConnKeyOf(c.fwd)
			if srcB != c.wantSrcB {
				t.Errorf("source is side b: %v, want %v", srcB, c.wantSrcB)
			}
			a := netip.AddrPortFrom(ctAddr(k.AddrA, k.Family), portOf(k.PortA))
			if a != c.wantA {
				t.Errorf("side a = %s, want %s", a, c.wantA)
			}
			rk, rSrcB := CTConnKeyOf(CTTuple{c.fwd.Proto, c.fwd.Dst, c.fwd.Src})
			if rk != k {
				t.Errorf("the reply's key %+v differs from the forward one %+v", rk, k)
			}
			if c.fwd.Src != c.fwd.Dst && rSrcB == srcB {
				t.Errorf("both directions say the source is side b=%v", srcB)
			}
		})
	}
}

// The key's bytes are what the datapath builds: IPv4 in the first four
// address bytes, ports in network order in memory, the family code.
func TestCTConnKeyLayout(t *testing.T) {
	k, _ := CTConnKeyOf(CTTuple{unix.IPPROTO_TCP, ap("10.0.0.1:80"), ap("10.0.0.2:443")})
	if k.Family != 4 || k.AddrA != [16]byte{10, 0, 0, 1} || k.AddrB != [16]byte{10, 0, 0, 2} || k.Proto != unix.IPPROTO_TCP {
		t.Errorf("key %+v", k)
	}
	if k.PortA != htons(80) || k.PortB != htons(443) {
		t.Errorf("ports %#x %#x, want network order of 80 and 443", k.PortA, k.PortB)
	}
	// A v4-mapped address is an IPv4 tuple.
	m, _ := CTConnKeyOf(CTTuple{unix.IPPROTO_TCP, ap("[::ffff:10.0.0.1]:80"), ap("[::ffff:10.0.0.2]:443")})
	if m != k {
		t.Errorf("mapped: %+v, want %+v", m, k)
	}
	k6, _ := CTConnKeyOf(CTTuple{unix.IPPROTO_UDP, ap("[fd00::1]:53"), ap("[fd00::2]:53")})
	if k6.Family != 6 || k6.AddrA[0] != 0xfd || k6.AddrA[15] != 1 {
		t.Errorf("v6 key %+v", k6)
	}
}

// ICMP echo: the request carries the identifier as its source port, the
// reply as its destination port (bpf/lib/l4.h), so both find one key.
func TestCTConnKeyICMPEcho(t *testing.T) {
	req := CTTuple{unix.IPPROTO_ICMP, ap("10.0.0.2:4660"), ap("10.0.0.1:0")}
	rep := CTTuple{unix.IPPROTO_ICMP, ap("10.0.0.1:0"), ap("10.0.0.2:4660")}
	kq, qB := CTConnKeyOf(req)
	kr, rB := CTConnKeyOf(rep)
	if kq != kr || qB == rB {
		t.Errorf("request %+v (src b %v), reply %+v (src b %v)", kq, qB, kr, rB)
	}
	c := DecodeCT(kq, CTEntry{Flags: openedBy(qB)})
	if c.TupleString() != "10.0.0.2 -> 10.0.0.1 id=4660" || ProtoName(c.Proto) != "ICMP" {
		t.Errorf("shown as %s %q", ProtoName(c.Proto), c.TupleString())
	}
}

func openedBy(srcB bool) uint8 {
	if srcB {
		return CTFlagBOpened
	}
	return 0
}

// Decoding shows a connection as its opener sent it, whichever side of
// the key the opener is.
func TestDecodeCTOrientation(t *testing.T) {
	for _, fwd := range []CTTuple{
		{unix.IPPROTO_TCP, ap("10.0.0.1:40000"), ap("10.0.0.2:80")},
		{unix.IPPROTO_TCP, ap("10.0.0.2:40000"), ap("10.0.0.1:80")},
	} {
		k, srcB := CTConnKeyOf(fwd)
		c := DecodeCT(k, CTEntry{Packets: 3, Replies: 2, Flags: openedBy(srcB) | CTFlagNAT, PolicyRev: 7})
		if c.Opener != fwd.Src || c.Responder != fwd.Dst || c.Packets != 3 || c.Replies != 2 || c.PolicyRev != 7 {
			t.Errorf("%v decoded as %+v", fwd, c)
		}
		if c.FlagNames() != "nat" {
			t.Errorf("flags %q", c.FlagNames())
		}
	}
}

func TestCTLifetimeAndRows(t *testing.T) {
	if CTLifetime(unix.IPPROTO_TCP, 0) != 6*time.Hour || CTLifetime(unix.IPPROTO_TCP, CTFlagClosing) != 10*time.Second ||
		CTLifetime(unix.IPPROTO_UDP, 0) != time.Minute || CTLifetime(unix.IPPROTO_ICMP, CTFlagClosing) != time.Minute {
		t.Error("lifetimes differ from bpf/lib/conntrack.h")
	}
	now := uint64(1000 * time.Second)
	conns := []CTConn{
		{Proto: unix.IPPROTO_UDP, Opener: ap("10.0.0.1:5353"), Responder: ap("10.0.0.2:53"), LastSeen: now - uint64(20*time.Second), PolicyRev: 4},
		{Proto: unix.IPPROTO_TCP, Opener: ap("10.0.0.1:1"), Responder: ap("10.0.0.2:2"), Flags: CTFlagClosing, LastSeen: now - uint64(11*time.Second)},
	}
	rows := CTRows(conns, now)
	if r := rows[0]; r.Proto != "UDP" || r.Tuple != "10.0.0.1:5353 -> 10.0.0.2:53" || r.Expires != "40s" || r.PolicyRev != 4 {
		t.Errorf("row %+v", r)
	}
	if r := rows[1]; r.Expires != "expired" || r.Flags != "closing" {
		t.Errorf("row %+v", r)
	}
}

// An entry of the old table keeps its counters and report state, becomes
// keyed in order with the opener recorded, and is checked again by policy
// (revision 0).
func TestMigrateCTv1(t *testing.T) {
	var old CTv1Key
	copy(old.Saddr[:], []byte{10, 0, 0, 9})
	copy(old.Daddr[:], []byte{10, 0, 0, 2})
	old.Sport, old.Dport, old.Proto, old.Family = htons(40000), htons(80), unix.IPPROTO_TCP, 4
	v := CTv1Entry{LastSeen: 5, Packets: 10, Replies: 9, Flags: CTFlagClosing | CTFlagNAT | 0x80, TxFlagsSeen: 2,
		RxFlagsSeen: 0x12, LastTxReport: 3, LastRxReport: 4}
	k, e := MigrateCTv1(old, v)
	want, _ := CTConnKeyOf(CTTuple{unix.IPPROTO_TCP, ap("10.0.0.9:40000"), ap("10.0.0.2:80")})
	if k != want {
		t.Errorf("key %+v, want %+v", k, want)
	}
	if e.Flags != CTFlagClosing|CTFlagNAT|CTFlagBOpened || e.PolicyRev != 0 || e.Packets != 10 || e.Replies != 9 ||
		e.LastSeen != 5 || e.TxFlagsSeen != 2 || e.RxFlagsSeen != 0x12 || e.LastTxReport != 3 || e.LastRxReport != 4 {
		t.Errorf("entry %+v", e)
	}
	c := DecodeCT(k, e)
	if c.Opener != ap("10.0.0.9:40000") || c.Responder != ap("10.0.0.2:80") {
		t.Errorf("decoded as %s", c.TupleString())
	}
	if !v.Live(unix.IPPROTO_TCP, 5+uint64(9*time.Second)) || v.Live(unix.IPPROTO_TCP, 5+uint64(11*time.Second)) {
		t.Error("a closing TCP entry lives 10 s")
	}
}
