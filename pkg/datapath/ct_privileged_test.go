package datapath_test

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seta-net/seta/pkg/datapath"
	"github.com/seta-net/seta/pkg/datapath/maps"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/policy"
	"github.com/seta-net/seta/pkg/testutils"
)

// openConn opens a TCP connection from the namespace from to a one-byte
// echo server it starts in to on addr; both end with the test.
func openConn(t *testing.T, from, to *testutils.NetNS, addr netip.AddrPort) net.Conn {
	t.Helper()
	var ln net.Listener
	if err := to.Do(t, func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	c, err := dialFrom(t, from, addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialFrom(t *testing.T, from *testutils.NetNS, addr netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	err := from.Do(t, func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), timeout); return err })
	return c, err
}

// echo makes one round trip of one byte on c within timeout.
func echo(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, 1))
	return err
}

func openCT(t *testing.T, f *fixture) *maps.CTMap {
	t.Helper()
	m, err := maps.OpenPinnedCTMap(f.bpfRoot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func tupleOf(c net.Conn) maps.CTTuple {
	return maps.CTTuple{Proto: unix.IPPROTO_TCP, Src: netip.MustParseAddrPort(c.LocalAddr().String()),
		Dst: netip.MustParseAddrPort(c.RemoteAddr().String())}
}

// One conntrack entry serves both directions of a connection: the key the
// Go mirror computes from either direction's tuple finds the entry the
// datapath made, and the entry shows the connection as its opener sent it,
// whichever side of the key the opener is (10.77.0.2 sorts before
// 10.77.0.3, so pod1 opens from side a, pod2 from side b).
func TestPrivilegedDatapathConntrackOneEntry(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.load(t)
	ep1, pod1 := f.endpoint(t, dp, 1)
	ep2, pod2 := f.endpoint(t, dp, 2)
	ct := openCT(t, f)

	for _, c := range []struct {
		name     string
		from, to *testutils.NetNS
		dst      netip.AddrPort
	}{
		{"pod1->pod2 v4", pod1, pod2, netip.AddrPortFrom(ep2.IPv4, 7010)},
		{"pod2->pod1 v4", pod2, pod1, netip.AddrPortFrom(ep1.IPv4, 7011)},
		{"pod2->pod1 v6", pod2, pod1, netip.AddrPortFrom(ep1.IPv6, 7012)},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := openConn(t, c.from, c.to, c.dst)
			for range 5 {
				if err := echo(conn, 3*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			fwd := tupleOf(conn)
			got, ok, err := ct.Lookup(fwd)
			if err != nil || !ok {
				t.Fatalf("no entry for %v: %v", fwd, err)
			}
			back, ok, err := ct.Lookup(maps.CTTuple{Proto: fwd.Proto, Src: fwd.Dst, Dst: fwd.Src})
			if err != nil || !ok || back != got {
				t.Errorf("the reply's tuple finds %+v (%v), want %+v", back, err, got)
			}
			// SYN, ACK, 5 requests (and their ACKs of the echoes, which
			// may be delayed into the next request) from the opener;
			// SYN-ACK and 5 echoes from the responder.
			if got.Opener != fwd.Src || got.Responder != fwd.Dst || got.Packets < 7 || got.Replies < 6 {
				t.Errorf("entry %+v, want opener %s, responder %s, >= 7 packets and >= 6 replies", got, fwd.Src, fwd.Dst)
			}
			if rev, err := dp.PolicyRevision(); err != nil || got.PolicyRev != rev || rev == 0 {
				t.Errorf("entry recorded policy revision %d, the datapath's is %d (%v)", got.PolicyRev, rev, err)
			}
		})
	}

	// ICMP echo: the identifier is the requester's "port".
	if err := ping(t, pod2, ep1.IPv4); err != nil {
		t.Fatal(err)
	}
	conns, err := ct.Dump()
	if err != nil {
		t.Fatal(err)
	}
	var icmp []maps.CTConn
	for _, c := range conns {
		if c.Proto == unix.IPPROTO_ICMP {
			icmp = append(icmp, c)
		}
	}
	if len(icmp) != 1 || icmp[0].Opener.Addr() != ep2.IPv4 || icmp[0].Responder != netip.AddrPortFrom(ep1.IPv4, 0) ||
		icmp[0].Opener.Port() == 0 || icmp[0].Packets != 1 || icmp[0].Replies != 1 {
		t.Errorf("ICMP entries %+v, want one opened by %s with its echo identifier, one request and one reply", icmp, ep2.IPv4)
	}
}

// A forward packet of an established connection skips policy while its
// conntrack entry carries the current policy revision: an allow deleted
// from the map behind the datapath's back (no revision change) does not
// stop the connection, only new ones. The datapath's own write moves the
// revision on, and the connection's next packet is checked and dropped.
// Both paths: pod to pod (cil_from_container, egress and ingress) and
// node to pod (cil_from_host).
func TestPrivilegedDatapathPolicyRevision(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.load(t)
	ep1, pod1 := f.endpoint(t, dp, 1)
	ep2, pod2 := f.endpoint(t, dp, 2)
	ct := openCT(t, f)
	pm, err := maps.OpenPinnedPolicyMap(f.bpfRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	// The node reaches pods from its gateway address, which the ipcache
	// maps to the host identity (as the enforcer writes it).
	if err := dp.SyncIPCache(map[netip.Prefix]uint32{netip.PrefixFrom(gw4, 32): uint32(identity.Host)}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		from *testutils.NetNS
		peer identity.ID
		port uint16
	}{
		{"pod1->pod2", pod1, identity.ID(ep1.Identity), 7020},
		{"node->pod2", f.node, identity.Host, 7021},
	} {
		t.Run(c.name, func(t *testing.T) {
			allow := policy.Key{Dir: policy.Ingress, Identity: c.peer, Proto: policy.ProtoTCP, Port: c.port, PortBits: 16}
			// Only this allow admits anything into pod2.
			if err := dp.WritePolicy(ep2.ID, policy.Update{Upsert: map[policy.Key]policy.Value{allow: {Cookie: 9}},
				Remove: []policy.Key{{Dir: policy.Ingress}}}); err != nil {
				t.Fatal(err)
			}
			dst := netip.AddrPortFrom(ep2.IPv4, c.port)
			conn := openConn(t, c.from, pod2, dst)
			if err := echo(conn, 3*time.Second); err != nil {
				t.Fatal(err)
			}
			rev, err := dp.PolicyRevision()
			if err != nil {
				t.Fatal(err)
			}
			if e, ok, _ := ct.Lookup(tupleOf(conn)); !ok || e.PolicyRev != rev {
				t.Fatalf("entry %+v (found %v), want policy revision %d", e, ok, rev)
			}

			mk := maps.NewPolicyKey(ep2.ID, uint8(policy.Ingress), uint32(c.peer), policy.ProtoTCP, c.port, 16)
			if err := pm.Delete(mk); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := echo(conn, 3*time.Second); err != nil {
					t.Fatalf("round %d after the allow went without a revision change: %v", i, err)
				}
			}
			if nc, err := dialFrom(t, c.from, dst, time.Second); err == nil {
				nc.Close()
				t.Fatal("a new connection passed without an allow entry")
			}

			// The datapath's write (the entry is gone already) moves the
			// revision on.
			if err := dp.WritePolicy(ep2.ID, policy.Update{Remove: []policy.Key{allow}}); err != nil {
				t.Fatal(err)
			}
			if now, err := dp.PolicyRevision(); err != nil || now == rev {
				t.Fatalf("revision %d after a write, was %d (%v)", now, rev, err)
			}
			if err := echo(conn, 1500*time.Millisecond); err == nil {
				t.Fatal("the established connection survived the revision change")
			}
		})
	}
}

// In audit mode a denied connection passes and is reported, but its entry
// records no revision: each of its packets is checked (and reported) again.
func TestPrivilegedDatapathPolicyRevisionAudit(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.loadWith(t, func(c *datapath.Config) { c.AuditMode = true })
	_, pod1 := f.endpoint(t, dp, 1)
	ep2, pod2 := f.endpoint(t, dp, 2)
	if err := dp.WritePolicy(ep2.ID, policy.Update{Remove: []policy.Key{{Dir: policy.Ingress}}}); err != nil {
		t.Fatal(err)
	}
	log := readEvents(t, dp)
	conn := openConn(t, pod1, pod2, netip.AddrPortFrom(ep2.IPv4, 7030))
	for range 3 {
		if err := echo(conn, 3*time.Second); err != nil {
			t.Fatalf("audit mode dropped: %v", err)
		}
	}
	if e, ok, _ := openCT(t, f).Lookup(tupleOf(conn)); !ok || e.PolicyRev != 0 {
		t.Errorf("entry %+v (found %v), want policy revision 0", e, ok)
	}
	time.Sleep(200 * time.Millisecond)
	var audited int
	for _, ev := range log.drain() {
		if ev.Audit && ev.Dst == ep2.IPv4 {
			audited++
		}
	}
	// SYN, ACK and three requests at least.
	if audited < 5 {
		t.Errorf("%d audit verdicts, want one per forward packet (>= 5)", audited)
	}
}

// A bare SYN on a closing connection opens a new one, checked against
// policy. Here the former responder reuses the closed connection's ports
// in the other direction within the closing lifetime: its SYN matches the
// entry from the side that did not open it, which without the reopen rule
// would pass as a reply, past pod1's ingress policy that admits nothing.
func TestPrivilegedDatapathConntrackReopen(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.load(t)
	ep1, pod1 := f.endpoint(t, dp, 1)
	ep2, pod2 := f.endpoint(t, dp, 2)
	ct := openCT(t, f)
	// pod1 admits nothing: only replies reach it.
	if err := dp.WritePolicy(ep1.ID, policy.Update{Remove: []policy.Key{{Dir: policy.Ingress}}}); err != nil {
		t.Fatal(err)
	}

	const clientPort, serverPort = 40031, 7031
	var ln net.Listener
	if err := pod2.Do(t, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ep2.IPv4, serverPort).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	var c net.Conn
	err := pod1.Do(t, func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ep1.IPv4, clientPort))}
		c, err = d.Dial("tcp", netip.AddrPortFrom(ep2.IPv4, serverPort).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	ln.Close()
	// The client resets the connection (closing, as a FIN would make it,
	// but no socket keeps the ports in TIME_WAIT).
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	e, ok, err := ct.Lookup(maps.CTTuple{Proto: unix.IPPROTO_TCP, Src: netip.AddrPortFrom(ep1.IPv4, clientPort),
		Dst: netip.AddrPortFrom(ep2.IPv4, serverPort)})
	if err != nil || !ok || e.Flags&maps.CTFlagClosing == 0 {
		t.Fatalf("entry of the closed connection %+v (found %v, %v), want it live and closing", e, ok, err)
	}

	// pod1 listens where its client was; pod2 dials it from the port its
	// server had.
	var back net.Listener
	if err := pod1.Do(t, func() (err error) {
		back, err = net.Listen("tcp", netip.AddrPortFrom(ep1.IPv4, clientPort).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	err = pod2.Do(t, func() (err error) {
		d := net.Dialer{Timeout: time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ep2.IPv4, serverPort))}
		c, err = d.Dial("tcp", netip.AddrPortFrom(ep1.IPv4, clientPort).String())
		return err
	})
	if err == nil {
		c.Close()
		t.Fatal("pod2 reached pod1 through the closing connection's entry: its SYN passed as a reply")
	}
}
