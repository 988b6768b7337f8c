package endpoint

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/seta-net/seta/pkg/ipam"
)

// fakeDP is a Datapath made of function fields; nil fields succeed.
type fakeDP struct {
	mu      sync.Mutex
	setup   func(*Endpoint) error
	restore func(*Endpoint) (bool, error)
	removed []uint16
	synced  []*Endpoint
}

func (f *fakeDP) SetupEndpoint(ep *Endpoint) error {
	if f.setup != nil {
		if err := f.setup(ep); err != nil {
			return err
		}
	}
	ep.HostIfName, ep.HostIfIndex, ep.HostMAC, ep.PodMAC = "lxc"+ep.ContainerID, int(ep.ID)+100, "02:00:00:00:00:01", "02:00:00:00:00:02"
	return nil
}

func (f *fakeDP) RestoreEndpoint(ep *Endpoint) (bool, error) {
	if f.restore != nil {
		return f.restore(ep)
	}
	return true, nil
}

func (f *fakeDP) RemoveEndpoint(ep *Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, ep.ID)
	return nil
}

func (f *fakeDP) CheckEndpoint(*Endpoint) []string { return nil }
func (f *fakeDP) Sync(eps []*Endpoint) error       { f.synced = eps; return nil }
func (f *fakeDP) Stats(*Endpoint) (Stats, error)   { return Stats{TxPackets: 1}, nil }
func (f *fakeDP) UpdateEndpoint(*Endpoint) error   { return nil }

func newPools(t *testing.T, v4, v6 string) *ipam.IPAM {
	t.Helper()
	var m ipam.IPAM
	if v4 != "" {
		p, err := ipam.ParsePodCIDR(v4, 4)
		if err != nil {
			t.Fatal(err)
		}
		m.V4 = ipam.NewPool(p)
	}
	if v6 != "" {
		p, err := ipam.ParsePodCIDR(v6, 6)
		if err != nil {
			t.Fatal(err)
		}
		m.V6 = ipam.NewPool(p)
	}
	return &m
}

type env struct {
	dir   string
	netns string
	dp    *fakeDP
	m     *Manager
	pools *ipam.IPAM
}

func newEnv(t *testing.T, v4, v6 string) *env {
	t.Helper()
	dir := t.TempDir()
	netns := filepath.Join(dir, "netns")
	os.WriteFile(netns, nil, 0o644)
	e := &env{dir: dir, netns: netns, dp: &fakeDP{}}
	e.reload(t, v4, v6)
	return e
}

// reload builds a fresh manager over the same state dir, like an agent restart.
func (e *env) reload(t *testing.T, v4, v6 string) error {
	t.Helper()
	store, err := NewStore(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.pools = newPools(t, v4, v6)
	e.m = NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{MTU: 1500}, store, e.pools, e.dp)
	return e.m.Restore()
}

// req asks for an endpoint in a pod (netns) of its own.
func (e *env) req(cid string) CreateRequest {
	ns := filepath.Join(e.dir, "netns-"+cid)
	os.WriteFile(ns, nil, 0o644)
	return CreateRequest{ContainerID: cid, IfName: "eth0", NetNS: ns, Network: "seta", PodName: cid, Namespace: "default"}
}

func TestOneInterfacePerPod(t *testing.T) {
	e := newEnv(t, "10.1.0.0/24", "")
	first := e.req("a")
	if _, err := e.m.Create(first); err != nil {
		t.Fatal(err)
	}
	second := first
	second.IfName = "net1"
	if _, err := e.m.Create(second); !errors.Is(err, ErrExists) {
		t.Fatalf("second interface: err = %v, want ErrExists", err)
	}
	other := e.req("b")
	other.NetNS = first.NetNS // another container ID in the same pod netns
	if _, err := e.m.Create(other); !errors.Is(err, ErrExists) {
		t.Fatalf("same netns: err = %v, want ErrExists", err)
	}
	if e.m.Count() != 1 || e.pools.V4.Used() != 1 {
		t.Errorf("refusals left state: %d endpoints, %d addresses", e.m.Count(), e.pools.V4.Used())
	}
}

func TestCreateAssignsAddressesAndPersists(t *testing.T) {
	e := newEnv(t, "10.1.0.0/24", "fd00:1::/64")
	ep, err := e.m.Create(e.req("a"))
	if err != nil {
		t.Fatal(err)
	}
	if ep.ID != 1 || ep.IPv4 != netip.MustParseAddr("10.1.0.2") || ep.IPv6 != netip.MustParseAddr("fd00:1::2") {
		t.Errorf("unexpected endpoint %+v", ep)
	}
	if ep.GatewayV4 != netip.MustParseAddr("10.1.0.1") || ep.State != StateReady || ep.HostIfName != "lxca" {
		t.Errorf("unexpected endpoint %+v", ep)
	}
	if err := e.reload(t, "10.1.0.0/24", "fd00:1::/64"); err != nil {
		t.Fatal(err)
	}
	got, err := e.m.Lookup("a", "eth0")
	if err != nil || got.IPv4 != ep.IPv4 {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	// The restored address is held again: the next pod gets another one.
	ep2, err := e.m.Create(e.req("b"))
	if err != nil || ep2.IPv4 == ep.IPv4 || ep2.ID == ep.ID {
		t.Fatalf("second endpoint reused state: %+v %v", ep2, err)
	}
	if len(e.dp.synced) != 1 {
		t.Errorf("Sync got %d endpoints, want 1", len(e.dp.synced))
	}
}

func TestCreateRejectsBadInputWithoutSideEffects(t *testing.T) {
	e := newEnv(t, "10.1.0.0/24", "")
	cases := map[string]CreateRequest{
		"no container": {IfName: "eth0", NetNS: e.netns},
		"slash in id":  {ContainerID: "a/b", IfName: "eth0", NetNS: e.netns},
		"long ifname":  {ContainerID: "a", IfName: "eth0123456789012", NetNS: e.netns},
		"bad ifname":   {ContainerID: "a", IfName: "eth 0", NetNS: e.netns},
		"relative ns":  {ContainerID: "a", IfName: "eth0", NetNS: "netns"},
		"bad label":    {ContainerID: "a", IfName: "eth0", NetNS: e.netns, Labels: []string{""}},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := e.m.Create(r); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	r := e.req("x")
	r.NetNS = "/nonexistent/netns"
	if _, err := e.m.Create(r); !errors.Is(err, ErrNetNSNotFound) {
		t.Errorf("missing netns: err = %v", err)
	}
	if e.m.Count() != 0 || e.pools.V4.Used() != 0 {
		t.Errorf("bad input left state: %d endpoints, %d addresses", e.m.Count(), e.pools.V4.Used())
	}
}

func TestCreateDuplicateAndDatapathFailure(t *testing.T) {
	e := newEnv(t, "10.1.0.0/24", "")
	if _, err := e.m.Create(e.req("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(e.req("a")); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: err = %v", err)
	}
	boom := errors.New("boom")
	e.dp.setup = func(*Endpoint) error { return boom }
	if _, err := e.m.Create(e.req("b")); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if e.m.Count() != 1 || e.pools.V4.Used() != 1 {
		t.Errorf("failed create left state: %d endpoints, %d addresses", e.m.Count(), e.pools.V4.Used())
	}
	ents, _ := os.ReadDir(filepath.Join(e.dir, "endpoints"))
	if len(ents) != 1 {
		t.Errorf("store holds %d records, want 1", len(ents))
	}
}

func TestExhaustion(t *testing.T) {
	e := newEnv(t, "10.1.0.0/29", "")
	for i := 0; i < 5; i++ {
		if _, err := e.m.Create(e.req(string(rune('a' + i)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.m.Create(e.req("z")); !errors.Is(err, ipam.ErrExhausted) {
		t.Fatalf("err = %v, want exhausted", err)
	}
	if _, err := e.m.DeleteByAttachment("a", "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(e.req("z")); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
}

func TestDeleteAndGC(t *testing.T) {
	e := newEnv(t, "10.1.0.0/24", "")
	for _, c := range []string{"a", "b", "c"} {
		if _, err := e.m.Create(e.req(c)); err != nil {
			t.Fatal(err)
		}
	}
	other := e.req("d")
	other.Network = "other"
	if _, err := e.m.Create(other); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Delete(99); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete unknown: %v", err)
	}
	removed, err := e.m.GC("seta", []Attachment{{ContainerID: "a", IfName: "eth0"}})
	if err != nil || len(removed) != 2 {
		t.Fatalf("GC removed %d (%v), want 2", len(removed), err)
	}
	if e.m.Count() != 2 { // a, and d of the other network
		t.Errorf("after GC: %d endpoints", e.m.Count())
	}
	if _, err := e.m.Lookup("d", "eth0"); err != nil {
		t.Errorf("GC touched another network's endpoint: %v", err)
	}
}

func TestRestoreCleansUp(t *testing.T) {
	e := newEnv(t, "10.1.0.0/24", "")
	a, _ := e.m.Create(e.req("a"))
	b, _ := e.m.Create(e.req("b"))
	// A record left "creating" by a crash, and an endpoint whose pod is gone.
	store, _ := NewStore(e.dir)
	store.Save(&Endpoint{ID: 50, ContainerID: "crash", IfName: "eth0", State: StateCreating, IPv4: netip.MustParseAddr("10.1.0.50")})
	e.dp.restore = func(ep *Endpoint) (bool, error) { return ep.ID != b.ID, nil }
	if err := e.reload(t, "10.1.0.0/24", ""); err != nil {
		t.Fatal(err)
	}
	if e.m.Count() != 1 {
		t.Fatalf("restored %d endpoints, want 1", e.m.Count())
	}
	if _, err := e.m.Get(a.ID); err != nil {
		t.Error(err)
	}
	if e.pools.V4.Used() != 1 {
		t.Errorf("IPAM holds %d addresses, want 1", e.pools.V4.Used())
	}
	// A pod CIDR change under live endpoints is refused.
	if err := e.reload(t, "10.2.0.0/24", ""); err == nil {
		t.Error("restore accepted an endpoint outside the pod CIDR")
	}
}

func TestConcurrentCreates(t *testing.T) {
	e := newEnv(t, "10.1.0.0/24", "fd00:1::/64")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := e.m.Create(e.req(string(rune('A' + i))))
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[netip.Addr]bool{}
	for _, ep := range e.m.List() {
		if seen[ep.IPv4] {
			t.Fatalf("duplicate address %s", ep.IPv4)
		}
		seen[ep.IPv4] = true
	}
	if len(seen) != 40 {
		t.Fatalf("%d endpoints", len(seen))
	}
}
