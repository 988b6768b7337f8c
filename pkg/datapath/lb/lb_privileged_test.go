package lb

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/testutils"
)

func newTestMap(t *testing.T) *Map {
	t.Helper()
	testutils.Privileged(t)
	m, err := NewUnpinned(Sizes{Map: 1024, Affinity: 64, SockRevNat: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func dump(t *testing.T, m *Map) ([]loadbalancer.LBService, []loadbalancer.Backend, []loadbalancer.RevNat) {
	t.Helper()
	s, b, r, err := m.Dump()
	if err != nil {
		t.Fatal(err)
	}
	return s, b, r
}

// slotCount counts the entries of one frontend in the services map (slot 0
// and its slots), leftovers included.
func slotCount(t *testing.T, m *Map, f loadbalancer.Frontend) int {
	t.Helper()
	var k ServiceKey
	var v ServiceValue
	n := 0
	it := m.m.Services.Iterate()
	for it.Next(&k, &v) {
		k.Slot = 0
		if FrontendOf(k) == f {
			n++
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func maglevTable(ids ...loadbalancer.BackendID) []loadbalancer.BackendID {
	t := make([]loadbalancer.BackendID, loadbalancer.MaglevTableSize)
	for i := range t {
		t[i] = ids[i%len(ids)]
	}
	return t
}

func TestPrivilegedLBMapRoundTrip(t *testing.T) {
	m := newTestMap(t)
	backends := []loadbalancer.Backend{
		{ID: 1, Addr: netip.MustParseAddrPort("10.244.1.5:8080"), Proto: loadbalancer.TCP, Local: true},
		{ID: 2, Addr: netip.MustParseAddrPort("10.244.2.5:8080"), Proto: loadbalancer.TCP, State: loadbalancer.Terminating},
		{ID: 3, Addr: netip.MustParseAddrPort("[fd00:244:1::5]:53"), Proto: loadbalancer.UDP, State: loadbalancer.Quarantined},
	}
	services := []loadbalancer.LBService{
		{Frontend: loadbalancer.Frontend{Addr: netip.IPv4Unspecified(), Port: 30080, Proto: loadbalancer.TCP},
			ID: 2, Flags: loadbalancer.FlagNodePort | loadbalancer.FlagMaglev | loadbalancer.FlagTwoScopes, Backends: []loadbalancer.BackendID{1, 2}, Maglev: maglevTable(1, 2)},
		{Frontend: loadbalancer.Frontend{Addr: netip.IPv4Unspecified(), Port: 30080, Proto: loadbalancer.TCP, Scope: loadbalancer.ScopeInternal},
			ID: 3, Flags: loadbalancer.FlagNodePort | loadbalancer.FlagLocal, Backends: []loadbalancer.BackendID{1}},
		{Frontend: loadbalancer.Frontend{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Proto: loadbalancer.TCP},
			ID: 1, Flags: loadbalancer.FlagAffinity, AffinityTimeout: 10800, Backends: []loadbalancer.BackendID{1, 2}},
		{Frontend: loadbalancer.Frontend{Addr: netip.MustParseAddr("fd00:96::a"), Port: 53, Proto: loadbalancer.UDP},
			ID: 4},
	}
	revnats := []loadbalancer.RevNat{
		{ID: 1, Addr: netip.MustParseAddrPort("10.96.0.10:80")},
		{ID: 2, Addr: netip.MustParseAddrPort("0.0.0.0:30080")},
		{ID: 4, Addr: netip.MustParseAddrPort("[fd00:96::a]:53")},
	}
	for _, b := range backends {
		if err := m.UpsertBackend(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range services {
		if err := m.UpsertService(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range revnats {
		if err := m.UpsertRevNat(r); err != nil {
			t.Fatal(err)
		}
	}
	// Idempotent: writing everything again changes nothing.
	for _, s := range services {
		if err := m.UpsertService(s); err != nil {
			t.Fatal(err)
		}
	}
	gs, gb, gr := dump(t, m)
	if !reflect.DeepEqual(gs, services) {
		t.Errorf("services:\n got %+v\nwant %+v", gs, services)
	}
	if !reflect.DeepEqual(gb, backends) {
		t.Errorf("backends:\n got %+v\nwant %+v", gb, backends)
	}
	if !reflect.DeepEqual(gr, revnats) {
		t.Errorf("revnats:\n got %+v\nwant %+v", gr, revnats)
	}

	// Shrinking removes the slots beyond the new count; dropping Maglev
	// removes the table.
	s := services[0]
	s.Backends, s.Flags, s.Maglev = []loadbalancer.BackendID{2}, loadbalancer.FlagNodePort, nil
	if err := m.UpsertService(s); err != nil {
		t.Fatal(err)
	}
	if n := slotCount(t, m, s.Frontend); n != 2 {
		t.Errorf("after shrinking to one backend: %d entries, want 2", n)
	}
	if tbl, err := m.Maglev(s.ID); err != nil || tbl != nil {
		t.Errorf("Maglev table after clearing FlagMaglev: %d entries, %v", len(tbl), err)
	}
	// Growing again, and down to zero backends (a service that refuses
	// connections keeps its entry with count 0).
	s.Backends = []loadbalancer.BackendID{2, 1, 3}
	if err := m.UpsertService(s); err != nil {
		t.Fatal(err)
	}
	gs, _, _ = dump(t, m)
	if !reflect.DeepEqual(gs[0], s) {
		t.Errorf("after growing: %+v", gs[0])
	}
	s.Backends = nil
	if err := m.UpsertService(s); err != nil {
		t.Fatal(err)
	}
	if n := slotCount(t, m, s.Frontend); n != 1 {
		t.Errorf("no backends: %d entries, want 1", n)
	}

	// Delete removes every slot and the Maglev table; deleting again is fine.
	if err := m.DeleteService(services[1].Frontend); err != nil {
		t.Fatal(err)
	}
	maglevSvc := services[0]
	if err := m.UpsertService(maglevSvc); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteService(maglevSvc.Frontend); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteService(maglevSvc.Frontend); err != nil {
		t.Fatal(err)
	}
	if tbl, _ := m.Maglev(maglevSvc.ID); tbl != nil {
		t.Error("Maglev table left behind by DeleteService")
	}
	for _, f := range []loadbalancer.Frontend{services[0].Frontend, services[1].Frontend} {
		if n := slotCount(t, m, f); n != 0 {
			t.Errorf("%s: %d entries left", f, n)
		}
	}
	if err := m.DeleteBackend(3); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteBackend(3); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteRevNat(4); err != nil {
		t.Fatal(err)
	}
	gs, gb, gr = dump(t, m)
	if len(gs) != 2 || len(gb) != 2 || len(gr) != 2 {
		t.Errorf("after deletes: %d services, %d backends, %d revnats", len(gs), len(gb), len(gr))
	}
	u, err := m.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u[0].Name != ServicesMapName || u[0].Entries != 4 || u[0].MaxEntries != 1024 || u[3].Name != MaglevMapName || u[3].Entries != 0 {
		t.Errorf("usage %+v", u)
	}
	if _, err := m.List(); err != nil {
		t.Error(err)
	}
}

// Slots beyond the count that an interrupted writer left are cleaned up by
// the next write of the frontend.
func TestPrivilegedLBMapLeftoverSlots(t *testing.T) {
	m := newTestMap(t)
	f := loadbalancer.Frontend{Addr: netip.MustParseAddr("10.96.0.20"), Port: 443, Proto: loadbalancer.TCP}
	for slot := uint16(3); slot <= 5; slot++ {
		k, _ := NewServiceKey(f, slot)
		v := ServiceValue{BackendId: 9}
		if err := m.m.Services.Update(&k, &v, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.UpsertService(loadbalancer.LBService{Frontend: f, ID: 8, Backends: []loadbalancer.BackendID{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if n := slotCount(t, m, f); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
}

// Affinity bindings to a backend that leaves an affinity service go; a
// deleted service's bindings go.
func TestPrivilegedLBMapAffinityPurge(t *testing.T) {
	m := newTestMap(t)
	f := loadbalancer.Frontend{Addr: netip.MustParseAddr("10.96.0.30"), Port: 80, Proto: loadbalancer.TCP}
	s := loadbalancer.LBService{Frontend: f, ID: 5, Flags: loadbalancer.FlagAffinity, AffinityTimeout: 60, Backends: []loadbalancer.BackendID{1, 2}}
	if err := m.UpsertService(s); err != nil {
		t.Fatal(err)
	}
	bind := func(cookie uint64, svc loadbalancer.ServiceID, backend uint32) {
		k, err := NewAffinityKey(AffinityClient{NetNS: true, NetNSCookie: cookie}, svc, 4)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.m.Affinity.Update(&k, &AffinityValue{BackendId: backend, LastUsed: 1}, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	bind(100, 5, 1)
	bind(101, 5, 2)
	bind(102, 6, 1) // another service
	s.Backends = []loadbalancer.BackendID{2}
	if err := m.UpsertService(s); err != nil {
		t.Fatal(err)
	}
	aff, err := m.Affinities()
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]bool{}
	for _, a := range aff {
		got[a.Client.NetNSCookie] = true
	}
	if !reflect.DeepEqual(got, map[uint64]bool{101: true, 102: true}) {
		t.Errorf("after removing backend 1: %+v", aff)
	}
	if err := m.DeleteService(f); err != nil {
		t.Fatal(err)
	}
	aff, _ = m.Affinities()
	if len(aff) != 1 || aff[0].Client.NetNSCookie != 102 {
		t.Errorf("after deleting the service: %+v", aff)
	}
}
