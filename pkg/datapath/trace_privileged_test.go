package datapath_test

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/datapath"
	"github.com/seta-net/seta/pkg/datapath/monitor"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/policy"
	"github.com/seta-net/seta/pkg/testutils"
)

// eventLog reads a datapath's event ring in the background.
type eventLog struct {
	rd *monitor.Reader
	ch chan monitor.Event
}

func readEvents(t *testing.T, dp *datapath.Datapath) *eventLog {
	t.Helper()
	rd, err := dp.NewEventReader()
	if err != nil {
		t.Fatal(err)
	}
	l := &eventLog{rd: rd, ch: make(chan monitor.Event, 4096)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := rd.Read()
			if err != nil {
				return
			}
			l.ch <- ev
		}
	}()
	t.Cleanup(func() {
		rd.Close()
		<-done
		if n, err := rd.Lost(); err != nil || n != 0 {
			t.Errorf("lost events: %d %v", n, err)
		}
	})
	return l
}

// drain returns the events that arrive until none has for a while. Events
// are written while the packet is processed, so traffic that has finished
// has all of its events in the ring already.
func (l *eventLog) drain() []monitor.Event {
	var out []monitor.Event
	for {
		select {
		case ev := <-l.ch:
			out = append(out, ev)
		case <-time.After(300 * time.Millisecond):
			return out
		}
	}
}

func filter(evs []monitor.Event, keep func(monitor.Event) bool) []monitor.Event {
	var out []monitor.Event
	for _, ev := range evs {
		if keep(ev) {
			out = append(out, ev)
		}
	}
	return out
}

func ofType(typ monitor.Type) func(monitor.Event) bool {
	return func(ev monitor.Event) bool { return ev.Type == typ }
}

func between(src, dst netip.Addr) func(monitor.Event) bool {
	return func(ev monitor.Event) bool { return ev.Src == src && ev.Dst == dst }
}

func and(fs ...func(monitor.Event) bool) func(monitor.Event) bool {
	return func(ev monitor.Event) bool {
		for _, f := range fs {
			if !f(ev) {
				return false
			}
		}
		return true
	}
}

func pingN(t *testing.T, ns *testutils.NetNS, dst netip.Addr, n int) {
	t.Helper()
	out, err := ns.Run(t, "ping", "-c", strconv.Itoa(n), "-i", "0.05", "-W", "2", dst.String())
	if err != nil {
		t.Fatalf("ping %s: %v\n%s", dst, err, out)
	}
}

// With aggregation none every forwarded packet is traced once, at each of
// the three places the datapath forwards: pod to pod (TO_LXC), pod to the
// node (TO_STACK), node to pod (TO_LXC from cil_from_host).
func TestPrivilegedDatapathTraceEventsNone(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.loadWith(t, func(c *datapath.Config) {
		c.TraceEvents, c.MonitorAggregation = true, datapath.MonitorAggregationNone
	})
	ep1, pod1 := f.endpoint(t, dp, 1)
	ep2, _ := f.endpoint(t, dp, 2)
	// The node's address has the host identity, as the enforcer writes it.
	if err := dp.SyncIPCache(map[netip.Prefix]uint32{netip.PrefixFrom(gw4, 32): uint32(identity.Host)}); err != nil {
		t.Fatal(err)
	}
	log := readEvents(t, dp)
	log.drain()

	const n = 5
	pingN(t, pod1, ep2.IPv4, n)
	evs := log.drain()
	traces := filter(evs, ofType(monitor.TypeTrace))
	req := filter(traces, between(ep1.IPv4, ep2.IPv4))
	rep := filter(traces, between(ep2.IPv4, ep1.IPv4))
	if len(req) != n || len(rep) != n {
		t.Fatalf("%d pings: %d request and %d reply traces, want %d each:\n%v", n, len(req), len(rep), n, evs)
	}
	for i, ev := range req {
		wantReason := monitor.TraceReasonCTEstablished
		if i == 0 {
			wantReason = monitor.TraceReasonPolicy
		}
		if ev.TracePoint != monitor.TraceToLxc || ev.TraceReason != wantReason || ev.IsReply || !ev.Ingress ||
			ev.EndpointID != ep2.ID || int(ev.Ifindex) != ep2.HostIfIndex || ev.SrcIdentity != ep1.Identity ||
			ev.DstIdentity != ep2.Identity || ev.Proto != 1 || ev.L4Port != 8 || ev.Reason != 0 {
			t.Errorf("request trace %d: %+v", i, ev)
		}
	}
	for i, ev := range rep {
		if ev.TracePoint != monitor.TraceToLxc || ev.TraceReason != monitor.TraceReasonCTReply || !ev.IsReply ||
			ev.EndpointID != ep1.ID || ev.Proto != 1 {
			t.Errorf("reply trace %d: %+v", i, ev)
		}
	}
	// Unenforced allow-all entries decide nothing: no verdicts.
	if v := filter(evs, ofType(monitor.TypePolicyVerdict)); len(v) != 0 {
		t.Errorf("verdict events without policy: %v", v)
	}

	// To the node: the stack takes the requests; the replies come back
	// through cil_from_host.
	pingN(t, pod1, gw4, n)
	traces = filter(log.drain(), ofType(monitor.TypeTrace))
	req = filter(traces, between(ep1.IPv4, gw4))
	rep = filter(traces, between(gw4, ep1.IPv4))
	if len(req) != n || len(rep) != n {
		t.Fatalf("pod->node: %d request and %d reply traces, want %d each: %v", len(req), len(rep), n, traces)
	}
	if ev := req[0]; ev.TracePoint != monitor.TraceToStack || ev.Ingress || ev.EndpointID != ep1.ID ||
		ev.DstIdentity != uint32(identity.Host) || ev.TraceReason != monitor.TraceReasonPolicy {
		t.Errorf("pod->node request trace: %+v", ev)
	}
	if ev := rep[0]; ev.TracePoint != monitor.TraceToLxc || !ev.IsReply || ev.EndpointID != ep1.ID ||
		ev.SrcIdentity != uint32(identity.Host) {
		t.Errorf("node->pod reply trace: %+v", ev)
	}

	// From the node: cil_from_host traces the requests, the pod's replies
	// go to the stack.
	pingN(t, f.node, ep1.IPv4, n)
	traces = filter(log.drain(), ofType(monitor.TypeTrace))
	req = filter(traces, between(gw4, ep1.IPv4))
	rep = filter(traces, between(ep1.IPv4, gw4))
	if len(req) != n || len(rep) != n {
		t.Fatalf("node->pod: %d request and %d reply traces, want %d each: %v", len(req), len(rep), n, traces)
	}
	if ev := req[0]; ev.TracePoint != monitor.TraceToLxc || ev.TraceReason != monitor.TraceReasonPolicy || ev.EndpointID != ep1.ID {
		t.Errorf("node->pod request trace: %+v", ev)
	}
	if ev := rep[0]; ev.TracePoint != monitor.TraceToStack || !ev.IsReply || ev.EndpointID != ep1.ID {
		t.Errorf("pod->node reply trace: %+v", ev)
	}
}

// tcpExchange opens a TCP connection from pod1 to ep2 (a listener in pod2),
// does rounds one-byte request/response round trips, so every data packet is
// a packet of its own, and closes it cleanly from both sides. It returns
// the client's port.
func tcpExchange(t *testing.T, from, to *testutils.NetNS, dst netip.Addr, port uint16, rounds int) uint16 {
	t.Helper()
	addr := netip.AddrPortFrom(dst, port).String()
	var ln net.Listener
	if err := to.Do(t, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c) // echo until the client's FIN, then close (our FIN)
		srvErr <- err
	}()
	var c net.Conn
	if err := from.Do(t, func() (err error) { c, err = net.DialTimeout("tcp", addr, 3*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1)
	for i := range rounds {
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err != nil { // until the server's FIN
		t.Fatal(err)
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	return uint16(netip.MustParseAddrPort(c.LocalAddr().String()).Port())
}

const (
	fin = 0x01
	syn = 0x02
	rst = 0x04
	psh = 0x08
	ack = 0x10
)

// Medium and maximum aggregation trace a TCP connection's news, not its
// packets: within the report interval, every trace of a direction carries
// a flag (of the mask) not traced in that direction before.
func TestPrivilegedDatapathTraceAggregation(t *testing.T) {
	for _, c := range []struct {
		name  string
		level int
		mask  uint8
		// Exact traces per direction for the exchange (handshake, data,
		// clean close), in order.
		fwd, rev []uint8
	}{
		// The default mask (0: SYN, FIN and RST): the first packet, the
		// first reply, FINs.
		{"medium", datapath.MonitorAggregationMedium, 0, []uint8{syn, fin | ack}, []uint8{syn | ack, fin | ack}},
		// Every flag: also ACK (the handshake's last) and PSH (the first
		// data) in each direction.
		{"medium-all-flags", datapath.MonitorAggregationMedium, 0xff, []uint8{syn, ack, psh | ack, fin | ack}, []uint8{syn | ack, psh | ack, fin | ack}},
		{"maximum", datapath.MonitorAggregationMaximum, syn | fin | rst, []uint8{syn, fin | ack}, []uint8{syn | ack, fin | ack}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, "auto")
			dp := f.loadWith(t, func(cfg *datapath.Config) {
				cfg.TraceEvents, cfg.MonitorAggregation, cfg.MonitorAggregationFlags = true, c.level, c.mask
			})
			ep1, pod1 := f.endpoint(t, dp, 1)
			ep2, pod2 := f.endpoint(t, dp, 2)
			log := readEvents(t, dp)
			log.drain()
			before := stats(t, f, dp, ep1)

			const rounds = 200
			start := time.Now()
			sport := tcpExchange(t, pod1, pod2, ep2.IPv4, 7001, rounds)
			took := time.Since(start)
			evs := filter(log.drain(), ofType(monitor.TypeTrace))
			fwd := filter(evs, func(ev monitor.Event) bool {
				return ev.Src == ep1.IPv4 && ev.SrcPort == sport && ev.DstPort == 7001
			})
			rev := filter(evs, func(ev monitor.Event) bool {
				return ev.Dst == ep1.IPv4 && ev.DstPort == sport && ev.SrcPort == 7001
			})
			sent := stats(t, f, dp, ep1).TxPackets - before.TxPackets
			t.Logf("%d packets sent by the client in %s; %d forward and %d reply traces", sent, took, len(fwd), len(rev))
			if sent < rounds {
				t.Fatalf("the client sent %d packets, want at least %d", sent, rounds)
			}
			if took > 4*time.Second {
				t.Skipf("the exchange took %s, longer than the report interval: periodic traces are due", took)
			}
			check := func(dir string, got []monitor.Event, want []uint8, reply bool) {
				t.Helper()
				var flags []uint8
				for _, ev := range got {
					flags = append(flags, ev.TCPFlags)
					if ev.IsReply != reply || ev.TracePoint != monitor.TraceToLxc {
						t.Errorf("%s trace %+v", dir, ev)
					}
				}
				if fmt.Sprint(flags) != fmt.Sprint(want) {
					t.Errorf("%s traces have flags %#x, want %#x", dir, flags, want)
				}
			}
			check("forward", fwd, c.fwd, false)
			check("reply", rev, c.rev, true)
			if len(fwd) > 0 && fwd[0].TraceReason != monitor.TraceReasonPolicy {
				t.Errorf("the SYN's trace reason is %d, want new (policy)", fwd[0].TraceReason)
			}
			for _, ev := range fwd[1:] {
				if ev.TraceReason != monitor.TraceReasonCTEstablished {
					t.Errorf("forward trace after the SYN with reason %d: %+v", ev.TraceReason, ev)
				}
			}
		})
	}
}

// A connection without news is traced again once the report interval has
// passed since its direction's last trace (1 s here: ticks of ~1.07 s, so
// at most one trace per tick and at least one every two).
func TestPrivilegedDatapathTraceInterval(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.loadWith(t, func(c *datapath.Config) {
		c.TraceEvents, c.MonitorAggregation, c.MonitorAggregationInterval = true, datapath.MonitorAggregationMedium, time.Second
	})
	ep1, pod1 := f.endpoint(t, dp, 1)
	ep2, _ := f.endpoint(t, dp, 2)
	log := readEvents(t, dp)
	log.drain()
	start := time.Now()
	out, err := pod1.Run(t, "ping", "-c", "36", "-i", "0.1", "-W", "2", ep2.IPv4.String())
	if err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	took := time.Since(start)
	traces := filter(log.drain(), ofType(monitor.TypeTrace))
	req := filter(traces, between(ep1.IPv4, ep2.IPv4))
	rep := filter(traces, between(ep2.IPv4, ep1.IPv4))
	t.Logf("36 echoes in %s: %d request and %d reply traces", took, len(req), len(rep))
	ticks := int(took/(1<<30)) + 2 // tick boundaries the exchange can cross, plus the first trace
	for _, c := range []struct {
		dir string
		got []monitor.Event
	}{{"request", req}, {"reply", rep}} {
		if len(c.got) < 2 || len(c.got) > ticks {
			t.Errorf("%s traces: %d, want between 2 and %d", c.dir, len(c.got), ticks)
		}
		for i := 1; i < len(c.got); i++ {
			if gap := c.got[i].Time.Sub(c.got[i-1].Time); gap < 50*time.Millisecond {
				t.Errorf("%s traces %d and %d only %s apart", c.dir, i-1, i, gap)
			}
		}
	}
}

func stats(t *testing.T, f *fixture, dp *datapath.Datapath, ep *endpoint.Endpoint) endpoint.Stats {
	t.Helper()
	var st endpoint.Stats
	if err := f.node.Do(t, func() (err error) { st, err = dp.Stats(ep); return err }); err != nil {
		t.Fatal(err)
	}
	return st
}

// Trace events off: the same traffic gives no traces at all (drops and
// verdicts are unaffected).
func TestPrivilegedDatapathTraceEventsOff(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.loadWith(t, func(c *datapath.Config) {
		c.TraceEvents, c.MonitorAggregation = false, datapath.MonitorAggregationNone
	})
	_, pod1 := f.endpoint(t, dp, 1)
	ep2, pod2 := f.endpoint(t, dp, 2)
	log := readEvents(t, dp)
	pingN(t, pod1, ep2.IPv4, 3)
	pingN(t, pod1, gw4, 3)
	pingN(t, f.node, ep2.IPv4, 3)
	tcpExchange(t, pod1, pod2, ep2.IPv4, 7002, 20)
	if evs := log.drain(); len(evs) != 0 {
		t.Errorf("events with trace events off and no policy: %v", evs)
	}
}

// A new connection that an endpoint's policy allows gets one allowed
// verdict with the matching entry's cookie and match type; its further
// packets, and what unenforced directions let through, get none. Drops by
// a deny entry carry its match type too. Reading the policy back gives what
// was written.
func TestPrivilegedDatapathAllowedVerdicts(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.load(t) // trace events off: verdicts do not depend on them
	ep1, pod1 := f.endpoint(t, dp, 1)
	ep2, pod2 := f.endpoint(t, dp, 2)
	id1 := identity.ID(ep1.Identity)
	tcpKey := policy.Key{Dir: policy.Ingress, Identity: id1, Proto: policy.ProtoTCP, Port: 7003, PortBits: 16}
	icmpKey := policy.Key{Dir: policy.Ingress, Proto: policy.ProtoICMP, Port: 8, PortBits: 16}
	udpKey := policy.Key{Dir: policy.Ingress, Identity: id1, Proto: policy.ProtoUDP}
	err := dp.WritePolicy(ep2.ID, policy.Update{
		Upsert: map[policy.Key]policy.Value{
			tcpKey:  {Cookie: 42},
			icmpKey: {Cookie: 43},
			udpKey:  {Deny: true, Cookie: 44},
		},
		Remove: []policy.Key{{Dir: policy.Ingress}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var state map[uint16]map[policy.Key]policy.Value
	if err := f.node.Do(t, func() (err error) { state, err = dp.PolicyState(); return err }); err != nil {
		t.Fatal(err)
	}
	want := map[policy.Key]policy.Value{tcpKey: {Cookie: 42}, icmpKey: {Cookie: 43}, udpKey: {Deny: true, Cookie: 44},
		{Dir: policy.Egress}: {Unenforced: true}}
	if fmt.Sprint(state[ep2.ID]) != fmt.Sprint(want) {
		t.Errorf("policy read back as %v, want %v", state[ep2.ID], want)
	}

	log := readEvents(t, dp)
	tcpExchange(t, pod1, pod2, ep2.IPv4, 7003, 20)
	pingN(t, pod1, ep2.IPv4, 3)
	// A UDP datagram the deny entry drops.
	err = pod1.Do(t, func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(ep2.IPv4, 7004).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	evs := log.drain()
	verdicts := filter(evs, ofType(monitor.TypePolicyVerdict))
	if len(verdicts) != 2 {
		t.Fatalf("%d verdicts, want 2 (the TCP connection's SYN, the first echo request): %v", len(verdicts), verdicts)
	}
	if v := verdicts[0]; !v.Allowed || v.Audit || v.Reason != 0 || !v.Ingress || v.EndpointID != ep2.ID ||
		v.Cookie != 42 || v.MatchType != monitor.MatchL3L4 || v.TCPFlags != syn || v.DstPort != 7003 ||
		v.SrcIdentity != ep1.Identity || v.DstIdentity != ep2.Identity {
		t.Errorf("TCP verdict: %+v", v)
	}
	if v := verdicts[1]; !v.Allowed || v.Cookie != 43 || v.MatchType != monitor.MatchL4Only || v.Proto != 1 || v.L4Port != 8 {
		t.Errorf("ICMP verdict: %+v", v)
	}
	drops := filter(evs, and(ofType(monitor.TypeDrop), between(ep1.IPv4, ep2.IPv4)))
	if len(drops) != 1 || drops[0].Reason != 181 || drops[0].Cookie != 44 || drops[0].MatchType != monitor.MatchL3Proto {
		t.Errorf("deny drops: %v", drops)
	}
	if traces := filter(evs, ofType(monitor.TypeTrace)); len(traces) != 0 {
		t.Errorf("traces with trace events off: %v", traces)
	}
}
