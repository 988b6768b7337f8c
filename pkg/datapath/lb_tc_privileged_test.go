package datapath_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/datapath"
	"github.com/seta-net/seta/pkg/datapath/lb"
	"github.com/seta-net/seta/pkg/datapath/monitor"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/policy"
	"github.com/seta-net/seta/pkg/testutils"
)

// The tc path's tests: services translated by the programs on the pods'
// veths and on the node's devices, with socket LB off, so every packet
// goes through the tc programs. Clients are children of the test binary
// (the socket LB tests' client, see sockClient) started in a pod's or an
// outside client's namespace; servers run in the test process inside the
// backends' namespaces and answer "NAME PEER" with the address they saw
// the client at.

// tcEnv is a node with a datapath whose socket LB is off, and its pods.
type tcEnv struct {
	f   *fixture
	dp  *datapath.Datapath
	lbm *lb.Map
}

func newTCEnv(t *testing.T, change func(*datapath.Config)) *tcEnv {
	t.Helper()
	f := newFixture(t, "auto")
	dp := f.loadWith(t, func(c *datapath.Config) {
		c.LBMapSize, c.LBAffinityMapSize, c.LBSockRevNatMapSize, c.NATMapSize = 1024, 256, 1024, 4096
		if change != nil {
			change(c)
		}
	})
	return &tcEnv{f: f, dp: dp, lbm: dp.LBMap()}
}

// serveNamed runs a TCP server on addr:tcpPort and a UDP server on
// addr:udpPort inside ns, in the test process (outside any test cgroup,
// so socket programs never touch their sockets). Both answer with name,
// followed by the client's address as they see it when withPeer is set
// (the tc path's tests check what the backend saw).
func serveNamed(t *testing.T, ns *testutils.NetNS, addr netip.Addr, name string, withPeer bool) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := ns.Do(t, func() error {
		var err error
		if ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, tcpPort).String()); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(addr, udpPort).String())
		return err
	})
	if err != nil {
		t.Fatalf("serve on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	answer := func(peer net.Addr) string {
		if withPeer {
			return name + " " + peer.String()
		}
		return name
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(answer(c.RemoteAddr()) + "\n"))
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(answer(from)), from)
		}
	}()
}

// runClient runs the test client in ns (no cgroup: socket LB is off) and
// returns its results.
func runClient(t *testing.T, ns *testutils.NetNS, args ...string) []clientResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), sockClientEnv+"=1", "GODEBUG=asyncpreemptoff=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := ns.Do(t, cmd.Run); err != nil {
		t.Fatalf("client %v: %v\n%s", args, err, stderr.String())
	}
	return decodeResults(t, stdout.Bytes())
}

// startUDPSessionIn starts a udp-session client in ns (no cgroup).
func startUDPSessionIn(t *testing.T, ns *testutils.NetNS, addr netip.AddrPort) *udpSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, os.Args[0], "udp-session", addr.String())
	cmd.Env = append(os.Environ(), sockClientEnv+"=1", "GODEBUG=asyncpreemptoff=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := ns.Do(t, cmd.Start); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
		cancel()
	})
	return &udpSession{in: in, out: json.NewDecoder(outp), cmd: cmd}
}

// answer is a server's reply, split.
type answer struct {
	Name string
	Peer netip.AddrPort // the client as the server saw it
}

func parseAnswer(t *testing.T, r clientResult) answer {
	t.Helper()
	name, peer, ok := strings.Cut(r.Backend, " ")
	if !ok {
		t.Fatalf("bad answer %+v", r)
	}
	ap, err := netip.ParseAddrPort(peer)
	if err != nil {
		t.Fatalf("bad peer in answer %+v: %v", r, err)
	}
	return answer{Name: name, Peer: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
}

// answers checks that every result succeeded, that the client saw the
// reply come from wantFrom (getpeername or recvfrom) and that the server
// saw the client at an address of wantPeer (invalid: any); it counts the
// answers by backend name.
func answers(t *testing.T, what string, rs []clientResult, wantFrom netip.AddrPort, wantPeer netip.Addr) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i, r := range rs {
		if r.Err != "" || r.Backend == "" {
			t.Fatalf("%s: attempt %d failed: %+v", what, i, r)
		}
		if r.Peer != wantFrom.String() && r.From != wantFrom.String() {
			t.Fatalf("%s: attempt %d: reply from %q / peer %q, want %s", what, i, r.From, r.Peer, wantFrom)
		}
		a := parseAnswer(t, r)
		if wantPeer.IsValid() && a.Peer.Addr() != wantPeer {
			t.Fatalf("%s: attempt %d: the server saw the client at %s, want %s", what, i, a.Peer, wantPeer)
		}
		got[a.Name]++
	}
	t.Logf("%s: %d answers by backend: %v", what, len(rs), got)
	return got
}

func (e *tcEnv) backend(t *testing.T, id loadbalancer.BackendID, a netip.Addr, port uint16, p loadbalancer.Proto) loadbalancer.BackendID {
	t.Helper()
	if err := e.lbm.UpsertBackend(loadbalancer.Backend{ID: id, Addr: netip.AddrPortFrom(a, port), Proto: p}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *tcEnv) service(t *testing.T, s loadbalancer.LBService) {
	t.Helper()
	if err := e.lbm.UpsertService(s); err != nil {
		t.Fatal(err)
	}
	if err := e.lbm.UpsertRevNat(loadbalancer.RevNat{ID: s.ID, Addr: netip.AddrPortFrom(s.Frontend.Addr, s.Frontend.Port)}); err != nil {
		t.Fatal(err)
	}
}

func TestPrivilegedTCServiceClusterIP(t *testing.T) {
	e := newTCEnv(t, nil)
	client, clientNS := e.f.endpoint(t, e.dp, 1)
	ep2, ns2 := e.f.endpoint(t, e.dp, 2)
	ep3, ns3 := e.f.endpoint(t, e.dp, 3)
	for _, x := range []struct {
		ns   *testutils.NetNS
		a    netip.Addr
		name string
	}{{ns2, ep2.IPv4, "b2"}, {ns2, ep2.IPv6, "b2"}, {ns3, ep3.IPv4, "b3"}, {ns3, ep3.IPv6, "b3"}} {
		serveNamed(t, x.ns, x.a, x.name, true)
	}
	// A backend on the node itself (host network): its replies reach the
	// client through seta_host and the from-host program.
	hostBE4, hostBE6 := netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("fd00:99::2")
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", hostBE4.String() + "/32", "dev", "lo"},
		{"addr", "add", hostBE6.String() + "/128", "dev", "lo", "nodad"},
	} {
		if out, err := e.f.node.Run(t, "ip", args...); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	serveNamed(t, e.f.node, hostBE4, "host", true)
	serveNamed(t, e.f.node, hostBE6, "host", true)

	var id loadbalancer.BackendID
	backends := func(p loadbalancer.Proto, port uint16, addrs ...netip.Addr) []loadbalancer.BackendID {
		var ids []loadbalancer.BackendID
		for _, a := range addrs {
			id++
			ids = append(ids, e.backend(t, id, a, port, p))
		}
		return ids
	}
	hostVIP4, hostVIP6 := netip.MustParseAddr("10.96.0.20"), netip.MustParseAddr("fd00:96::20")
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 80, loadbalancer.TCP), ID: 1, Backends: backends(loadbalancer.TCP, tcpPort, ep2.IPv4, ep3.IPv4)})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 53, loadbalancer.UDP), ID: 2, Backends: backends(loadbalancer.UDP, udpPort, ep2.IPv4, ep3.IPv4)})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip6, 80, loadbalancer.TCP), ID: 3, Backends: backends(loadbalancer.TCP, tcpPort, ep2.IPv6, ep3.IPv6)})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip6, 53, loadbalancer.UDP), ID: 4, Backends: backends(loadbalancer.UDP, udpPort, ep2.IPv6, ep3.IPv6)})
	e.service(t, loadbalancer.LBService{Frontend: fe(hostVIP4, 80, loadbalancer.TCP), ID: 5, Backends: backends(loadbalancer.TCP, tcpPort, hostBE4)})
	e.service(t, loadbalancer.LBService{Frontend: fe(hostVIP6, 53, loadbalancer.UDP), ID: 6, Backends: backends(loadbalancer.UDP, udpPort, hostBE6)})

	for _, c := range []struct {
		name, mode string
		vip        netip.AddrPort
		peer       netip.Addr
	}{
		{"tcp v4", "tcp", ap(vip4, 80), client.IPv4},
		{"tcp v6", "tcp", ap(vip6, 80), client.IPv6},
		{"udp v4, a socket each", "udp-each", ap(vip4, 53), client.IPv4},
		{"udp v6, a socket each", "udp-each", ap(vip6, 53), client.IPv6},
	} {
		t.Run(c.name+" reaches both backends, the client sees the VIP", func(t *testing.T) {
			got := answers(t, c.name, runClient(t, clientNS, c.mode, c.vip.String(), "60"), c.vip, c.peer)
			if got["b2"] < 10 || got["b3"] < 10 {
				t.Errorf("60 connections: %v, want each backend at least 10", got)
			}
		})
	}
	t.Run("udp: one unconnected socket stays on its backend, replies come from the VIP", func(t *testing.T) {
		for _, vip := range []netip.AddrPort{ap(vip4, 53), ap(vip6, 53)} {
			if got := answers(t, "udp", runClient(t, clientNS, "udp", vip.String(), "10"), vip, netip.Addr{}); len(got) != 1 {
				t.Errorf("%s: one socket's datagrams went to %v, want one backend", vip, got)
			}
		}
	})
	t.Run("backend on the node: replies restored by the from-host program", func(t *testing.T) {
		answers(t, "host tcp v4", runClient(t, clientNS, "tcp", ap(hostVIP4, 80).String(), "5"), ap(hostVIP4, 80), client.IPv4)
		answers(t, "host udp v6", runClient(t, clientNS, "udp", ap(hostVIP6, 53).String(), "5"), ap(hostVIP6, 53), client.IPv6)
	})
	t.Run("not a service: untouched", func(t *testing.T) {
		direct := ap(ep3.IPv4, tcpPort)
		if got := answers(t, "direct", runClient(t, clientNS, "tcp", direct.String(), "3"), direct, client.IPv4); got["b3"] != 3 {
			t.Errorf("direct connections: %v", got)
		}
	})
	t.Run("the NAT map holds both directions of the connections", func(t *testing.T) {
		nat, err := e.dp.NATMap().Dump()
		if err != nil {
			t.Fatal(err)
		}
		var fwd, rev int
		for _, n := range nat {
			if n.Reverse {
				rev++
			} else {
				fwd++
			}
		}
		if fwd == 0 || fwd != rev {
			t.Errorf("NAT entries: %d forward, %d reverse; want as many of each, more than 0", fwd, rev)
		}
		rows := lb.NATRows(nat)
		t.Logf("first NAT rows: %+v", rows[:min(4, len(rows))])
	})
}

func TestPrivilegedTCServiceUDPSticky(t *testing.T) {
	e := newTCEnv(t, nil)
	_, clientNS := e.f.endpoint(t, e.dp, 1)
	ep2, ns2 := e.f.endpoint(t, e.dp, 2)
	ep3, ns3 := e.f.endpoint(t, e.dp, 3)
	serveNamed(t, ns2, ep2.IPv4, "b2", true)
	serveNamed(t, ns3, ep3.IPv4, "b3", true)
	e.backend(t, 1, ep2.IPv4, udpPort, loadbalancer.UDP)
	e.backend(t, 2, ep3.IPv4, udpPort, loadbalancer.UDP)
	svc := loadbalancer.LBService{Frontend: fe(vip4, 53, loadbalancer.UDP), ID: 1, Backends: []loadbalancer.BackendID{1, 2}}
	e.service(t, svc)

	s := startUDPSessionIn(t, clientNS, ap(vip4, 53))
	first := s.exchange(t)
	if first.Err != "" || first.From != ap(vip4, 53).String() {
		t.Fatalf("first datagram: %+v", first)
	}
	bound := parseAnswer(t, first).Name
	boundID, otherID, other := loadbalancer.BackendID(1), loadbalancer.BackendID(2), "b3"
	if bound == "b3" {
		boundID, otherID, other = 2, 1, "b2"
	}
	// The flow's backend terminates and leaves the slots: the flow stays.
	addrOf := map[loadbalancer.BackendID]netip.Addr{1: ep2.IPv4, 2: ep3.IPv4}
	if err := e.lbm.UpsertBackend(loadbalancer.Backend{ID: boundID, Addr: ap(addrOf[boundID], udpPort), Proto: loadbalancer.UDP, State: loadbalancer.Terminating}); err != nil {
		t.Fatal(err)
	}
	svc.Backends = []loadbalancer.BackendID{otherID}
	e.service(t, svc)
	for i := range 5 {
		if r := s.exchange(t); parseAnswer(t, r).Name != bound || r.From != ap(vip4, 53).String() {
			t.Fatalf("datagram %d after the backend set changed: %+v, want %s", i, r, bound)
		}
	}
	// New flows only get the remaining backend.
	if got := answers(t, "new flows", runClient(t, clientNS, "udp-each", ap(vip4, 53).String(), "10"), ap(vip4, 53), netip.Addr{}); got[other] != 10 {
		t.Errorf("new flows: %v, want all on %s", got, other)
	}
	// Once the backend's entry is gone, the flow moves on.
	if err := e.lbm.DeleteBackend(boundID); err != nil {
		t.Fatal(err)
	}
	if r := s.exchange(t); parseAnswer(t, r).Name != other || r.From != ap(vip4, 53).String() {
		t.Errorf("after the backend was deleted: %+v, want %s", r, other)
	}
}

func TestPrivilegedTCServiceHairpin(t *testing.T) {
	e := newTCEnv(t, nil)
	pod, podNS := e.f.endpoint(t, e.dp, 1)
	serveNamed(t, podNS, pod.IPv4, "self", true)
	serveNamed(t, podNS, pod.IPv6, "self", true)
	e.backend(t, 1, pod.IPv4, tcpPort, loadbalancer.TCP)
	e.backend(t, 2, pod.IPv6, udpPort, loadbalancer.UDP)
	e.backend(t, 3, pod.IPv6, tcpPort, loadbalancer.TCP)
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 80, loadbalancer.TCP), ID: 1, Backends: []loadbalancer.BackendID{1}})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip6, 53, loadbalancer.UDP), ID: 2, Backends: []loadbalancer.BackendID{2}})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip6, 80, loadbalancer.TCP), ID: 3, Backends: []loadbalancer.BackendID{3}})

	// The pod reaches itself; it sees the connection come from the hairpin
	// address, and the client end sees the VIP answer.
	answers(t, "hairpin tcp v4", runClient(t, podNS, "tcp", ap(vip4, 80).String(), "5"), ap(vip4, 80), lb.HairpinV4)
	answers(t, "hairpin tcp v6", runClient(t, podNS, "tcp", ap(vip6, 80).String(), "5"), ap(vip6, 80), lb.HairpinV6)
	answers(t, "hairpin udp v6", runClient(t, podNS, "udp", ap(vip6, 53).String(), "5"), ap(vip6, 53), lb.HairpinV6)

	nat, err := e.dp.NATMap().Dump()
	if err != nil {
		t.Fatal(err)
	}
	hairpins := 0
	for _, n := range nat {
		if n.Flags&lb.NATFlagHairpin != 0 {
			hairpins++
		}
	}
	if hairpins == 0 {
		t.Errorf("no hairpin entries in the NAT map: %+v", lb.NATRows(nat))
	}
}

func TestPrivilegedTCServiceNoBackends(t *testing.T) {
	e := newTCEnv(t, nil)
	_, clientNS := e.f.endpoint(t, e.dp, 1)
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 80, loadbalancer.TCP), ID: 1})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip6, 80, loadbalancer.TCP), ID: 2})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 53, loadbalancer.UDP), ID: 3})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip6, 53, loadbalancer.UDP), ID: 4})
	rd, err := e.dp.NewEventReader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	for _, c := range []struct{ mode, addr string }{
		{"tcp", ap(vip4, 80).String()}, {"tcp", ap(vip6, 80).String()},
		{"udp-connected", ap(vip4, 53).String()}, {"udp-connected", ap(vip6, 53).String()},
	} {
		start := time.Now()
		rs := runClient(t, clientNS, c.mode, c.addr)
		took := time.Since(start)
		if len(rs) != 1 || rs[0].Err != "ECONNREFUSED" {
			t.Errorf("%s %s to a service without backends: %+v, want ECONNREFUSED", c.mode, c.addr, rs)
		}
		// The client's own start-up is most of it; a timeout would be
		// seconds (the clients wait 3 s).
		if took > time.Second {
			t.Errorf("%s %s: refused after %v, want well under a second", c.mode, c.addr, took)
		}
	}
	// Each refusal is reported as a drop with Hubble's reason 158.
	deadline := time.After(5 * time.Second)
	got := make(chan monitor.Event, 16)
	go func() {
		for {
			ev, err := rd.Read()
			if err != nil {
				return
			}
			got <- ev
		}
	}()
	for seen := 0; seen < 4; {
		select {
		case ev := <-got:
			if ev.Type == monitor.TypeDrop && ev.Reason == 158 {
				seen++
			}
		case <-deadline:
			t.Fatalf("saw %d drop events with reason 158, want 4", seen)
		}
	}
	if drops := noServiceDrops(t, e.dp); drops != 4 {
		t.Errorf("%d drops counted as %q, want 4", drops, "Service backend not found")
	}
}

// noServiceDrops counts the packets dropped as "Service backend not
// found" so far.
func noServiceDrops(t *testing.T, dp *datapath.Datapath) uint64 {
	t.Helper()
	m, err := dp.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	var drops uint64
	for k, v := range m {
		if k.Reason.String() == "Service backend not found" {
			drops += v.Packets
		}
	}
	return drops
}

// A NodePort from outside the node: a client namespace on one link of the
// node, and a second "node" on another link whose own address is a
// backend (reached with SNAT); the node's pods are the local backends.
type nodePortEnv struct {
	*tcEnv
	client, node2      *testutils.NetNS
	nodeA4, nodeA6     netip.Addr // the node's address towards the client
	nodeB4, nodeB6     netip.Addr // its address towards node2
	client4, client6   netip.Addr
	node2IP4, node2IP6 netip.Addr
	pod                *testutils.NetNS
	podIP4, podIP6     netip.Addr
	extIP4, extIP6     netip.Addr // an ExternalIP the client routes via the node
}

func newNodePortEnv(t *testing.T) *nodePortEnv {
	t.Helper()
	return newNodePortEnvMode(t, "auto")
}

func newNodePortEnvMode(t *testing.T, mode string) *nodePortEnv {
	t.Helper()
	e := &nodePortEnv{
		nodeA4: netip.MustParseAddr("10.98.0.1"), nodeA6: netip.MustParseAddr("fd00:98::1"),
		client4: netip.MustParseAddr("10.98.0.100"), client6: netip.MustParseAddr("fd00:98::100"),
		nodeB4: netip.MustParseAddr("10.97.0.1"), nodeB6: netip.MustParseAddr("fd00:97::1"),
		node2IP4: netip.MustParseAddr("10.97.0.2"), node2IP6: netip.MustParseAddr("fd00:97::2"),
		extIP4: netip.MustParseAddr("192.0.2.80"), extIP6: netip.MustParseAddr("fd00:80::80"),
	}
	f := newFixture(t, mode)
	e.client = testutils.NewNetNS(t, "seta-dpt-cli-")
	e.node2 = testutils.NewNetNS(t, "seta-dpt-n2-")
	// The links exist before the datapath loads: it attaches to them and
	// records their addresses.
	link := func(dev string, peer *testutils.NetNS, nodeA netip.Addr, nodeA6 netip.Addr, peerA, peerA6 netip.Addr) {
		peerDev := testutils.RandName("sdp")
		for _, args := range [][]string{
			{"link", "add", dev, "type", "veth", "peer", "name", peerDev, "netns", peer.Name},
			{"addr", "add", nodeA.String() + "/24", "dev", dev},
			{"addr", "add", nodeA6.String() + "/64", "dev", dev, "nodad"},
			{"link", "set", dev, "up"},
		} {
			if out, err := f.node.Run(t, "ip", args...); err != nil {
				t.Fatalf("node: ip %v: %v\n%s", args, err, out)
			}
		}
		for _, args := range [][]string{
			{"link", "set", "lo", "up"},
			{"link", "set", peerDev, "name", "eth0"},
			{"addr", "add", peerA.String() + "/24", "dev", "eth0"},
			{"addr", "add", peerA6.String() + "/64", "dev", "eth0", "nodad"},
			{"link", "set", "eth0", "up"},
		} {
			if out, err := peer.Run(t, "ip", args...); err != nil {
				t.Fatalf("%s: ip %v: %v\n%s", peer.Name, args, err, out)
			}
		}
	}
	link("eth0", e.client, e.nodeA4, e.nodeA6, e.client4, e.client6)
	link("eth1", e.node2, e.nodeB4, e.nodeB6, e.node2IP4, e.node2IP6)
	for _, r := range [][]string{
		{"route", "add", e.extIP4.String() + "/32", "via", e.nodeA4.String()},
		{"-6", "route", "add", e.extIP6.String() + "/128", "via", e.nodeA6.String()},
	} {
		if out, err := e.client.Run(t, "ip", r...); err != nil {
			t.Fatalf("client: ip %v: %v\n%s", r, err, out)
		}
	}
	// node2 reaches the pods directly (pods' own connections to it are
	// not SNATed), as lab nodes route each other's pod CIDRs.
	for _, r := range [][]string{
		{"route", "add", "10.77.0.0/24", "via", e.nodeB4.String()},
		{"-6", "route", "add", "fd00:77::/64", "via", e.nodeB6.String()},
	} {
		if out, err := e.node2.Run(t, "ip", r...); err != nil {
			t.Fatalf("node2: ip %v: %v\n%s", r, err, out)
		}
	}
	e.tcEnv = &tcEnv{f: f}
	dp := e.load(t, true)
	// The node's addresses have the host identity, as the enforcer writes
	// them: that is what makes them NodePort destinations.
	host := map[netip.Prefix]uint32{}
	for _, a := range []netip.Addr{e.nodeA4, e.nodeB4} {
		host[netip.PrefixFrom(a, 32)] = uint32(identity.Host)
	}
	for _, a := range []netip.Addr{e.nodeA6, e.nodeB6} {
		host[netip.PrefixFrom(a, 128)] = uint32(identity.Host)
	}
	if err := dp.SyncIPCache(host); err != nil {
		t.Fatal(err)
	}
	ep, podNS := f.endpoint(t, dp, 1)
	e.pod, e.podIP4, e.podIP6 = podNS, ep.IPv4, ep.IPv6
	serveNamed(t, podNS, ep.IPv4, "local", true)
	serveNamed(t, podNS, ep.IPv6, "local", true)
	serveNamed(t, e.node2, e.node2IP4, "remote", true)
	serveNamed(t, e.node2, e.node2IP6, "remote", true)
	return e
}

// load starts a datapath (again: a restarted agent) with NodePort on the
// two links, or off.
func (e *nodePortEnv) load(t *testing.T, nodePort bool) *datapath.Datapath {
	t.Helper()
	dp := e.f.loadWith(t, func(c *datapath.Config) {
		c.LBMapSize, c.LBAffinityMapSize, c.LBSockRevNatMapSize, c.NATMapSize = 1024, 256, 1024, 4096
		c.EnableNodePort, c.Devices = nodePort, []string{"eth0", "eth1"}
	})
	e.dp, e.lbm = dp, dp.LBMap()
	return dp
}

func TestPrivilegedTCNodePort(t *testing.T) {
	e := newNodePortEnv(t)
	if got := e.dp.Devices(); len(got) != 2 || !e.dp.NodePort() {
		t.Fatalf("devices %v, node port %v", got, e.dp.NodePort())
	}
	be := func(id loadbalancer.BackendID, a netip.Addr, port uint16, p loadbalancer.Proto) loadbalancer.BackendID {
		return e.backend(t, id, a, port, p)
	}
	local4, local6 := be(1, e.podIP4, tcpPort, loadbalancer.TCP), be(2, e.podIP6, tcpPort, loadbalancer.TCP)
	remote4, remote6 := be(3, e.node2IP4, tcpPort, loadbalancer.TCP), be(4, e.node2IP6, tcpPort, loadbalancer.TCP)
	localU4, remoteU6 := be(5, e.podIP4, udpPort, loadbalancer.UDP), be(6, e.node2IP6, udpPort, loadbalancer.UDP)
	np := func(id loadbalancer.ServiceID, a netip.Addr, port uint16, p loadbalancer.Proto, flags loadbalancer.Flags, ids ...loadbalancer.BackendID) {
		e.service(t, loadbalancer.LBService{Frontend: fe(a, port, p), ID: id, Flags: flags, Backends: ids})
	}
	np(1, netip.IPv4Unspecified(), 30001, loadbalancer.TCP, loadbalancer.FlagNodePort, local4)
	np(2, netip.IPv6Unspecified(), 30001, loadbalancer.TCP, loadbalancer.FlagNodePort, local6)
	np(3, netip.IPv4Unspecified(), 30002, loadbalancer.TCP, loadbalancer.FlagNodePort, remote4)
	np(4, netip.IPv6Unspecified(), 30002, loadbalancer.TCP, loadbalancer.FlagNodePort, remote6)
	np(5, netip.IPv4Unspecified(), 30003, loadbalancer.UDP, loadbalancer.FlagNodePort|loadbalancer.FlagLocal, localU4)
	np(6, netip.IPv6Unspecified(), 30003, loadbalancer.UDP, loadbalancer.FlagNodePort, remoteU6)
	np(7, e.extIP4, 80, loadbalancer.TCP, loadbalancer.FlagExternal, local4, remote4)
	np(8, e.extIP6, 80, loadbalancer.TCP, loadbalancer.FlagExternal, local6, remote6)
	// A ClusterIP is no service from outside.
	np(9, vip4, 80, loadbalancer.TCP, 0, local4)

	t.Run("local backend: the pod sees the client's address", func(t *testing.T) {
		answers(t, "np local v4", runClient(t, e.client, "tcp", ap(e.nodeA4, 30001).String(), "10"), ap(e.nodeA4, 30001), e.client4)
		answers(t, "np local v6", runClient(t, e.client, "tcp", ap(e.nodeA6, 30001).String(), "10"), ap(e.nodeA6, 30001), e.client6)
	})
	t.Run("remote backend: SNAT to the node's address towards it", func(t *testing.T) {
		answers(t, "np remote v4", runClient(t, e.client, "tcp", ap(e.nodeA4, 30002).String(), "10"), ap(e.nodeA4, 30002), e.nodeB4)
		answers(t, "np remote v6", runClient(t, e.client, "tcp", ap(e.nodeA6, 30002).String(), "10"), ap(e.nodeA6, 30002), e.nodeB6)
	})
	t.Run("udp: Local policy keeps the client address; remote over SNAT", func(t *testing.T) {
		answers(t, "np udp local", runClient(t, e.client, "udp", ap(e.nodeA4, 30003).String(), "5"), ap(e.nodeA4, 30003), e.client4)
		answers(t, "np udp remote v6", runClient(t, e.client, "udp-each", ap(e.nodeA6, 30003).String(), "5"), ap(e.nodeA6, 30003), e.nodeB6)
	})
	t.Run("NodePort on the node's other address", func(t *testing.T) {
		// Reachable at any node address: the client routes nodeB via nodeA.
		if out, err := e.client.Run(t, "ip", "route", "add", e.nodeB4.String()+"/32", "via", e.nodeA4.String()); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		answers(t, "np via B", runClient(t, e.client, "tcp", ap(e.nodeB4, 30001).String(), "3"), ap(e.nodeB4, 30001), e.client4)
	})
	t.Run("ExternalIP from outside reaches both backends", func(t *testing.T) {
		for _, ext := range []netip.Addr{e.extIP4, e.extIP6} {
			got := answers(t, "external", runClient(t, e.client, "tcp", ap(ext, 80).String(), "40"), ap(ext, 80), netip.Addr{})
			if got["local"] == 0 || got["remote"] == 0 {
				t.Errorf("ExternalIP %s: %v, want both backends", ext, got)
			}
		}
	})
	t.Run("Maglev: traffic from outside follows the table, from inside the slots", func(t *testing.T) {
		// The table sends every flow to the remote backend; a random
		// pick over the two slots would hit the local one half the time.
		table := make([]loadbalancer.BackendID, loadbalancer.MaglevTableSize)
		for i := range table {
			table[i] = remote4
		}
		ext := netip.MustParseAddr("192.0.2.81")
		if out, err := e.client.Run(t, "ip", "route", "add", ext.String()+"/32", "via", e.nodeA4.String()); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		e.service(t, loadbalancer.LBService{Frontend: fe(ext, 80, loadbalancer.TCP), ID: 12,
			Flags: loadbalancer.FlagExternal | loadbalancer.FlagMaglev, Backends: []loadbalancer.BackendID{local4, remote4}, Maglev: table})
		if got := answers(t, "maglev outside", runClient(t, e.client, "tcp", ap(ext, 80).String(), "20"), ap(ext, 80), netip.Addr{}); got["remote"] != 20 {
			t.Errorf("from outside: %v, want all 20 on the table's backend", got)
		}
		if got := answers(t, "maglev inside", runClient(t, e.pod, "tcp", ap(ext, 80).String(), "40"), ap(ext, 80), netip.Addr{}); got["local"] == 0 || got["remote"] == 0 {
			t.Errorf("from a pod: %v, want both slots", got)
		}
	})
	t.Run("ClientIP affinity by the client's address", func(t *testing.T) {
		e.service(t, loadbalancer.LBService{Frontend: fe(netip.IPv4Unspecified(), 30020, loadbalancer.TCP), ID: 13,
			Flags: loadbalancer.FlagNodePort | loadbalancer.FlagAffinity, AffinityTimeout: 300, Backends: []loadbalancer.BackendID{local4, remote4}})
		if got := answers(t, "affinity", runClient(t, e.client, "tcp", ap(e.nodeA4, 30020).String(), "20"), ap(e.nodeA4, 30020), netip.Addr{}); len(got) != 1 {
			t.Errorf("20 connections from one client: %v, want one backend", got)
		}
		aff, err := e.lbm.Affinities()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range aff {
			found = found || (!a.Client.NetNS && a.Service == 13)
		}
		if !found {
			t.Errorf("no affinity entry by address for service 13: %+v", aff)
		}
	})
	t.Run("a pod reaches a NodePort on its node's address", func(t *testing.T) {
		answers(t, "pod to np remote", runClient(t, e.pod, "tcp", ap(e.nodeA4, 30002).String(), "5"), ap(e.nodeA4, 30002), e.podIP4)
		answers(t, "pod to np local (hairpin)", runClient(t, e.pod, "tcp", ap(e.nodeA6, 30001).String(), "5"), ap(e.nodeA6, 30001), lb.HairpinV6)
	})
	t.Run("a ClusterIP from outside is not translated", func(t *testing.T) {
		if out, err := e.client.Run(t, "ip", "route", "add", vip4.String()+"/32", "via", e.nodeA4.String()); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		rs := runClient(t, e.client, "tcp", ap(vip4, 80).String(), "1")
		if len(rs) != 1 || rs[0].Err == "" {
			t.Errorf("ClusterIP from outside answered: %+v", rs)
		}
	})
	t.Run("no backends: refused at once, by the program", func(t *testing.T) {
		// The node's own stack would refuse a TCP port nobody listens
		// on as well; the count of refusals tells who answered. Over
		// UDP, the stack would answer too: the datapath's ICMP error
		// comes from the ExternalIP, which no stack of this test owns.
		np(10, netip.IPv4Unspecified(), 30010, loadbalancer.TCP, loadbalancer.FlagNodePort)
		np(11, e.extIP6, 53, loadbalancer.UDP, loadbalancer.FlagExternal)
		before := noServiceDrops(t, e.dp)
		start := time.Now()
		rs := runClient(t, e.client, "tcp", ap(e.nodeA4, 30010).String(), "1")
		if len(rs) != 1 || rs[0].Err != "ECONNREFUSED" || time.Since(start) > time.Second {
			t.Errorf("NodePort without backends: %+v after %v, want ECONNREFUSED at once", rs, time.Since(start))
		}
		rs = runClient(t, e.client, "udp-connected", ap(e.extIP6, 53).String())
		if len(rs) != 1 || rs[0].Err != "ECONNREFUSED" || time.Since(start) > time.Second {
			t.Errorf("ExternalIP without backends over UDP: %+v after %v, want ECONNREFUSED at once", rs, time.Since(start))
		}
		if n := noServiceDrops(t, e.dp) - before; n != 2 {
			t.Errorf("%d refusals counted, want 2", n)
		}
	})
	t.Run("the remote connections' SNAT ports are in the NAT range", func(t *testing.T) {
		nat, err := e.dp.NATMap().Dump()
		if err != nil {
			t.Fatal(err)
		}
		snat := 0
		for _, n := range nat {
			if n.Flags&lb.NATFlagSNAT == 0 || n.Flags&lb.NATFlagExternal == 0 {
				continue
			}
			snat++
			port := n.Peer.Port()
			if !n.Reverse && (port < lb.DefaultNATPortMin || port > lb.DefaultNATPortMax) {
				t.Errorf("SNAT port %d outside %d-%d: %+v", port, lb.DefaultNATPortMin, lb.DefaultNATPortMax, n)
			}
		}
		if snat == 0 {
			t.Errorf("no SNAT entries: %+v", lb.NATRows(nat))
		}
	})
}

// A restarted agent keeps the NAT state (pinned maps) and swaps the device
// programs in place: flows through NodePort continue, local and over SNAT.
// An agent with NodePort off detaches the device programs.
func TestPrivilegedTCNodePortRestart(t *testing.T) {
	for _, mode := range []string{"tcx", "clsact"} {
		t.Run(mode, func(t *testing.T) { testNodePortRestart(t, mode) })
	}
}

func testNodePortRestart(t *testing.T, mode string) {
	e := newNodePortEnvMode(t, mode)
	e.backend(t, 1, e.podIP4, udpPort, loadbalancer.UDP)
	e.backend(t, 2, e.node2IP4, udpPort, loadbalancer.UDP)
	e.service(t, loadbalancer.LBService{Frontend: fe(netip.IPv4Unspecified(), 30001, loadbalancer.UDP), ID: 1,
		Flags: loadbalancer.FlagNodePort, Backends: []loadbalancer.BackendID{1}})
	e.service(t, loadbalancer.LBService{Frontend: fe(netip.IPv4Unspecified(), 30002, loadbalancer.UDP), ID: 2,
		Flags: loadbalancer.FlagNodePort, Backends: []loadbalancer.BackendID{2}})
	local := startUDPSessionIn(t, e.client, ap(e.nodeA4, 30001))
	remote := startUDPSessionIn(t, e.client, ap(e.nodeA4, 30002))
	first := map[*udpSession]answer{}
	for _, s := range []*udpSession{local, remote} {
		r := s.exchange(t)
		if r.Err != "" {
			t.Fatalf("before the restart: %+v", r)
		}
		first[s] = parseAnswer(t, r)
	}
	if first[remote].Peer.Addr() != e.nodeB4 {
		t.Fatalf("remote flow not SNATed: %+v", first[remote])
	}
	natBefore, err := e.dp.NATMap().Count()
	if err != nil {
		t.Fatal(err)
	}

	e.load(t, true)
	if n, _ := e.dp.NATMap().Count(); n < natBefore {
		t.Errorf("NAT entries after the restart: %d, before: %d", n, natBefore)
	}
	for _, s := range []*udpSession{local, remote} {
		r := s.exchange(t)
		// The same backend sees the same client address and port: the
		// flow kept its NAT entries (and SNAT port).
		if r.Err != "" || parseAnswer(t, r) != first[s] {
			t.Errorf("after the restart: %+v, before: %+v", r, first[s])
		}
	}

	if mode == "clsact" {
		if out, _ := e.f.node.Run(t, "tc", "filter", "show", "dev", "eth0", "ingress"); !strings.Contains(out, "cil_from_netdev") {
			t.Fatalf("no device program on eth0 in clsact mode:\n%s", out)
		}
	}
	e.load(t, false)
	if len(e.dp.Devices()) != 0 || e.dp.NodePort() {
		t.Errorf("NodePort off: devices %v", e.dp.Devices())
	}
	if mode == "tcx" {
		if out, err := e.f.node.Run(t, "ls", e.f.bpfRoot+"/node-links"); err != nil || strings.Contains(out, "eth0") || strings.Contains(out, "eth1") {
			t.Errorf("device link pins left with NodePort off: %v %s", err, out)
		}
	}
	for _, dir := range []string{"ingress", "egress"} {
		if out, _ := e.f.node.Run(t, "tc", "filter", "show", "dev", "eth0", dir); strings.Contains(out, "cil_") {
			t.Errorf("device programs left on eth0 %s with NodePort off:\n%s", dir, out)
		}
	}
	// Nothing translates the NodePort now: the node's own stack answers
	// (nothing listens there).
	if rs := runClient(t, e.client, "udp-connected", ap(e.nodeA4, 30001).String()); len(rs) != 1 || rs[0].Err != "ECONNREFUSED" {
		t.Errorf("NodePort with NodePort off: %+v, want the node's own refusal", rs)
	}
}

// With the host firewall on as well, translated NodePort traffic that the
// programs send out of the devices is not the node's own: a host policy
// that lets the node send nothing does not stop it.
func TestPrivilegedTCNodePortWithHostFirewall(t *testing.T) {
	e := newNodePortEnv(t)
	dp := e.f.loadWith(t, func(c *datapath.Config) {
		c.LBMapSize, c.LBAffinityMapSize, c.LBSockRevNatMapSize, c.NATMapSize = 1024, 256, 1024, 4096
		c.EnableNodePort, c.HostFirewall, c.Devices = true, true, []string{"eth0", "eth1"}
	})
	e.dp, e.lbm = dp, dp.LBMap()
	// The node's egress: nothing allowed (its ingress stays open).
	if err := dp.WritePolicy(0, policy.Update{Remove: []policy.Key{{Dir: policy.Egress}}}); err != nil {
		t.Fatal(err)
	}
	e.backend(t, 1, e.podIP4, tcpPort, loadbalancer.TCP)
	e.backend(t, 2, e.node2IP4, tcpPort, loadbalancer.TCP)
	e.service(t, loadbalancer.LBService{Frontend: fe(netip.IPv4Unspecified(), 30001, loadbalancer.TCP), ID: 1,
		Flags: loadbalancer.FlagNodePort, Backends: []loadbalancer.BackendID{1}})
	e.service(t, loadbalancer.LBService{Frontend: fe(netip.IPv4Unspecified(), 30002, loadbalancer.TCP), ID: 2,
		Flags: loadbalancer.FlagNodePort, Backends: []loadbalancer.BackendID{2}})
	answers(t, "local", runClient(t, e.client, "tcp", ap(e.nodeA4, 30001).String(), "3"), ap(e.nodeA4, 30001), e.client4)
	answers(t, "remote", runClient(t, e.client, "tcp", ap(e.nodeA4, 30002).String(), "3"), ap(e.nodeA4, 30002), e.nodeB4)
	// The node's own traffic is stopped.
	if err := e.f.node.Do(t, func() error {
		c, err := net.DialTimeout("tcp", ap(e.node2IP4, tcpPort).String(), time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("the node connected to %s", e.node2IP4)
		}
		return nil
	}); err != nil {
		t.Errorf("host firewall egress: %v", err)
	}
}
