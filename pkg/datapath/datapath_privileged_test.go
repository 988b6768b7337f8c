package datapath_test

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/datapath"
	"github.com/seta-net/seta/pkg/datapath/linux"
	"github.com/seta-net/seta/pkg/datapath/maps"
	"github.com/seta-net/seta/pkg/datapath/monitor"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/policy"
	"github.com/seta-net/seta/pkg/testutils"
)

var (
	gw4 = netip.MustParseAddr("10.77.0.1")
	gw6 = netip.MustParseAddr("fd00:77::1")
)

type fixture struct {
	node    *testutils.NetNS
	bpfRoot string
	mode    string
}

func newFixture(t *testing.T, mode string) *fixture {
	testutils.Privileged(t)
	f := &fixture{node: testutils.NewNetNS(t, "seta-dpt-node-"), mode: mode,
		bpfRoot: filepath.Join("/sys/fs/bpf", testutils.RandName("seta-dptest-"))}
	t.Cleanup(func() { os.RemoveAll(f.bpfRoot) })
	return f
}

// load creates a Datapath inside the node namespace.
func (f *fixture) load(t *testing.T) *datapath.Datapath {
	t.Helper()
	return f.loadWith(t, nil)
}

// loadWith is load with changes to the configuration.
func (f *fixture) loadWith(t *testing.T, change func(*datapath.Config)) *datapath.Datapath {
	t.Helper()
	cfg := datapath.Config{
		BPFRoot: f.bpfRoot, AttachMode: f.mode, EndpointMapSize: 64, GatewayV4: gw4, GatewayV6: gw6,
	}
	if change != nil {
		change(&cfg)
	}
	var dp *datapath.Datapath
	err := f.node.Do(t, func() error {
		var err error
		dp, err = datapath.New(slog.New(slog.NewTextHandler(io.Discard, nil)), cfg)
		return err
	})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(func() { dp.Close() })
	allowAll(t, dp, 0) // the node's own policy, as the enforcer writes it
	return dp
}

func (f *fixture) endpoint(t *testing.T, dp *datapath.Datapath, id uint16) (*endpoint.Endpoint, *testutils.NetNS) {
	t.Helper()
	pod := testutils.NewNetNS(t, "seta-dpt-pod-")
	ep := &endpoint.Endpoint{
		ID: id, ContainerID: pod.Name, IfName: "eth0", NetNS: pod.Path, MTU: 1500,
		IPv4:      netip.AddrFrom4([4]byte{10, 77, 0, byte(id + 1)}),
		IPv6:      netip.MustParseAddr("fd00:77::" + string(rune('0'+id+1))),
		GatewayV4: gw4, GatewayV6: gw6, Identity: 1000 + uint32(id),
	}
	// No policy: allow everything, as the enforcer does for an endpoint no
	// policy selects.
	allowAll(t, dp, id)
	if err := f.node.Do(t, func() error { return dp.SetupEndpoint(ep) }); err != nil {
		t.Fatalf("setup endpoint %d: %v", id, err)
	}
	return ep, pod
}

// allowAll writes the entries of an endpoint no policy selects: one
// unenforced allow-all entry per direction.
func allowAll(t *testing.T, dp *datapath.Datapath, id uint16) {
	t.Helper()
	err := dp.WritePolicy(id, policy.Update{Upsert: map[policy.Key]policy.Value{
		{Dir: policy.Ingress}: {Unenforced: true}, {Dir: policy.Egress}: {Unenforced: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func ping(t *testing.T, ns *testutils.NetNS, dst netip.Addr) error {
	t.Helper()
	out, err := ns.Run(t, "ping", "-c", "1", "-W", "2", dst.String())
	if err != nil {
		return &pingError{out: out, err: err}
	}
	return nil
}

type pingError struct {
	out string
	err error
}

func (p *pingError) Error() string { return p.err.Error() + ": " + p.out }

func TestPrivilegedDatapathForwarding(t *testing.T) {
	for _, mode := range []string{"tcx", "clsact"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t, mode)
			dp := f.load(t)
			if string(dp.Mode()) != mode {
				t.Fatalf("mode = %s, want %s", dp.Mode(), mode)
			}
			ep1, pod1 := f.endpoint(t, dp, 1)
			ep2, pod2 := f.endpoint(t, dp, 2)

			for _, c := range []struct {
				name string
				from *testutils.NetNS
				to   netip.Addr
			}{
				{"pod1->pod2 v4", pod1, ep2.IPv4},
				{"pod1->pod2 v6", pod1, ep2.IPv6},
				{"pod2->pod1 v4", pod2, ep1.IPv4},
				{"pod1->gateway v4", pod1, gw4},
				{"pod1->gateway v6", pod1, gw6},
				{"node->pod1 v4", f.node, ep1.IPv4},
				{"node->pod2 v6", f.node, ep2.IPv6},
			} {
				if err := ping(t, c.from, c.to); err != nil {
					t.Errorf("%s: %v", c.name, err)
				}
			}

			// Pod-to-pod traffic is routed by the program: TTL is
			// decremented once, as by a router.
			out, _ := pod1.Run(t, "ping", "-c", "1", "-W", "2", ep2.IPv4.String())
			if !strings.Contains(out, "ttl=63") {
				t.Errorf("expected ttl=63 (one routed hop) in ping output:\n%s", out)
			}

			var st endpoint.Stats
			f.node.Do(t, func() error {
				var err error
				st, err = dp.Stats(ep1)
				return err
			})
			if st.TxPackets == 0 || st.RxPackets == 0 || st.TxBytes == 0 {
				t.Errorf("endpoint 1 counters did not move: %+v", st)
			}
			var probs []string
			f.node.Do(t, func() error { probs = dp.CheckEndpoint(ep1); return nil })
			if len(probs) != 0 {
				t.Errorf("check endpoint 1: %v", probs)
			}
		})
	}
}

func TestPrivilegedDatapathSourceValidation(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.load(t)
	_, pod1 := f.endpoint(t, dp, 1)
	ep2, _ := f.endpoint(t, dp, 2)

	// A pod that sends from an address that is not its own is dropped.
	if out, err := pod1.Run(t, "ip", "addr", "add", "10.77.0.99/32", "dev", "eth0"); err != nil {
		t.Fatalf("add spoof address: %v %s", err, out)
	}
	out, err := pod1.Run(t, "ping", "-c", "1", "-W", "1", "-I", "10.77.0.99", ep2.IPv4.String())
	if err == nil {
		t.Fatalf("spoofed ping got through:\n%s", out)
	}
	objs, err := maps.OpenPinnedMetricsMap(f.bpfRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	m, err := objs.Dump()
	if err != nil {
		t.Fatal(err)
	}
	var drops uint64
	for k, v := range m {
		if k.Reason.String() == "Invalid source ip" {
			drops += v.Packets
		}
	}
	if drops == 0 {
		t.Errorf("no invalid-source drops counted: %v", m)
	}
}

func TestPrivilegedDatapathRestoreAndRemove(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.load(t)
	ep1, pod1 := f.endpoint(t, dp, 1)
	ep2, _ := f.endpoint(t, dp, 2)
	dp.Close()

	// A second datapath (a restarted agent) picks up the pinned maps and
	// links; traffic flows throughout.
	if err := ping(t, pod1, ep2.IPv4); err != nil {
		t.Fatalf("no traffic while no agent holds the datapath: %v", err)
	}
	dp2 := f.load(t)
	for _, ep := range []*endpoint.Endpoint{ep1, ep2} {
		var alive bool
		err := f.node.Do(t, func() error {
			var err error
			alive, err = dp2.RestoreEndpoint(ep)
			return err
		})
		if err != nil || !alive {
			t.Fatalf("restore endpoint %d: alive=%v err=%v", ep.ID, alive, err)
		}
	}
	if err := f.node.Do(t, func() error { return dp2.Sync([]*endpoint.Endpoint{ep1, ep2}) }); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, pod1, ep2.IPv6); err != nil {
		t.Fatalf("after restore: %v", err)
	}

	// Removing an endpoint takes its device, map entries and pins.
	if err := f.node.Do(t, func() error { return dp2.RemoveEndpoint(ep2) }); err != nil {
		t.Fatal(err)
	}
	if err := f.node.Do(t, func() error { return dp2.RemoveEndpoint(ep2) }); err != nil {
		t.Fatalf("second remove must be a no-op: %v", err)
	}
	f.node.Do(t, func() error {
		if _, _, ok, _ := linux.HostLink(ep2.HostIfName); ok {
			t.Errorf("device %s still exists", ep2.HostIfName)
		}
		return nil
	})
	em, err := maps.OpenPinnedEndpointMap(f.bpfRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if _, ok, _ := em.Lookup(ep2.IPv4); ok {
		t.Errorf("endpoint map still has %s", ep2.IPv4)
	}
	if _, err := os.Stat(filepath.Join(f.bpfRoot, "links", ep2.HostIfName+"_ingress")); err == nil {
		t.Errorf("link pin of %s remains", ep2.HostIfName)
	}
	if err := ping(t, pod1, ep2.IPv4); err == nil {
		t.Errorf("ping to a removed endpoint succeeded")
	}

	// An endpoint whose device vanished while the agent was away is
	// reported as gone on restore.
	f.node.Do(t, func() error { return linux.DeleteEndpoint(ep1.HostIfName) })
	var alive bool
	if err := f.node.Do(t, func() error {
		var err error
		alive, err = dp2.RestoreEndpoint(ep1)
		return err
	}); err != nil || alive {
		t.Fatalf("restore of an endpoint without device: alive=%v err=%v", alive, err)
	}
}

func TestPrivilegedDatapathBadNetNS(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.load(t)
	ep := &endpoint.Endpoint{ID: 9, ContainerID: "missing", IfName: "eth0", NetNS: "/run/netns/does-not-exist-seta",
		IPv4: netip.MustParseAddr("10.77.0.9"), GatewayV4: gw4, MTU: 1500}
	err := f.node.Do(t, func() error { return dp.SetupEndpoint(ep) })
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("setup with missing netns: err = %v, want netns not found", err)
	}
	f.node.Do(t, func() error {
		if _, _, ok, _ := linux.HostLink(linux.HostIfName("missing", "eth0")); ok {
			t.Errorf("half-made device left behind")
		}
		return nil
	})
}

// A policy drop reaches user space as an event with its reason.
func TestPrivilegedDatapathDropEvents(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.load(t)
	_, pod1 := f.endpoint(t, dp, 1)
	ep2, _ := f.endpoint(t, dp, 2)
	// Endpoint 2 keeps egress open but has no ingress entry: default deny.
	if err := dp.WritePolicy(2, policy.Update{Remove: []policy.Key{{Dir: policy.Ingress}}}); err != nil {
		t.Fatal(err)
	}
	rd, err := dp.NewEventReader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if err := ping(t, pod1, ep2.IPv4); err == nil {
		t.Fatal("ping got through a default-deny ingress")
	}
	got := make(chan monitor.Event, 1)
	go func() {
		for {
			ev, err := rd.Read()
			if err != nil {
				return
			}
			if ev.Dst == ep2.IPv4 {
				got <- ev
				return
			}
		}
	}()
	select {
	case ev := <-got:
		if ev.Type != monitor.TypeDrop || ev.Reason != 133 || !ev.Ingress || ev.EndpointID != 2 ||
			ev.Proto != 1 || ev.L4Port != 8 || ev.MatchType != monitor.MatchNone ||
			time.Since(ev.Time) > time.Minute || time.Since(ev.Time) < 0 {
			t.Errorf("unexpected event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no drop event")
	}
	if n, err := rd.Lost(); err != nil || n != 0 {
		t.Errorf("lost events: %d %v", n, err)
	}
}

// The "open" policy flags skip a direction's policy lookups, so they must
// only be set while the direction allows everything: here the ingress of
// pod 2 has no policy entry at all, which drops, unless the flag is set.
// SetPolicyOpen rewrites the live entries, and later rewrites of the entry
// (an identity change) keep the flag. Removing an endpoint zeroes its
// counters, so a new endpoint with the same ID starts from zero.
func TestPrivilegedDatapathPolicyOpenAndCounters(t *testing.T) {
	f := newFixture(t, "tcx")
	dp := f.load(t)
	_, pod1 := f.endpoint(t, dp, 1)
	ep2, _ := f.endpoint(t, dp, 2)
	if err := dp.WritePolicy(2, policy.Update{Remove: []policy.Key{{Dir: policy.Ingress}}}); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, pod1, ep2.IPv4); err == nil {
		t.Fatal("ping passed an ingress without policy entries")
	}
	do := func(fn func() error) {
		t.Helper()
		if err := f.node.Do(t, fn); err != nil {
			t.Fatal(err)
		}
	}
	do(func() error { return dp.SetPolicyOpen(2, true, false) })
	if err := ping(t, pod1, ep2.IPv4); err != nil {
		t.Errorf("ingress marked open: %v", err)
	}
	ep2.Identity++
	do(func() error { return dp.UpdateEndpoint(ep2) })
	if err := ping(t, pod1, ep2.IPv6); err != nil {
		t.Errorf("ingress marked open, after an endpoint update: %v", err)
	}
	do(func() error { return dp.SetPolicyOpen(2, false, false) })
	if err := ping(t, pod1, ep2.IPv4); err == nil {
		t.Error("ping passed after the open mark was cleared")
	}

	var st endpoint.Stats
	do(func() error { var err error; st, err = dp.Stats(ep2); return err })
	if st.RxPackets == 0 {
		t.Fatalf("endpoint 2 counted nothing: %+v", st)
	}
	do(func() error { return dp.RemoveEndpoint(ep2) })
	ep2b, _ := f.endpoint(t, dp, 2)
	do(func() error { var err error; st, err = dp.Stats(ep2b); return err })
	if st != (endpoint.Stats{}) {
		t.Errorf("a new endpoint with a used ID starts at %+v, want zero", st)
	}
}

// With NoEvents (an agent without Hubble: nothing reads the ring) the
// programs emit nothing, while the drop itself and its counting stay: the
// same default-deny drop as TestPrivilegedDatapathDropEvents reports,
// here never reaches the ring.
func TestPrivilegedDatapathNoEvents(t *testing.T) {
	f := newFixture(t, "auto")
	dp := f.loadWith(t, func(c *datapath.Config) { c.NoEvents = true })
	_, pod1 := f.endpoint(t, dp, 1)
	ep2, _ := f.endpoint(t, dp, 2)
	if err := dp.WritePolicy(2, policy.Update{Remove: []policy.Key{{Dir: policy.Ingress}}}); err != nil {
		t.Fatal(err)
	}
	rd, err := dp.NewEventReader()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan monitor.Event, 16)
	go func() {
		for {
			ev, err := rd.Read()
			if err != nil {
				close(got)
				return
			}
			got <- ev
		}
	}()
	if err := ping(t, pod1, ep2.IPv4); err == nil {
		t.Fatal("ping got through a default-deny ingress")
	}
	select {
	case ev, ok := <-got:
		if ok {
			t.Errorf("an event with events off: %+v", ev)
		}
	case <-time.After(time.Second):
	}
	rd.Close()
	if n, err := rd.Lost(); err != nil || n != 0 {
		t.Errorf("lost events: %d %v (events off count no losses either)", n, err)
	}
}
