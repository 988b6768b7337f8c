package service

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

func TestWriteOrderAndDiffOnly(t *testing.T) {
	f := newFakeLB(t)
	tbl := newTable(t, f, Config{StateDir: t.TempDir()})
	f.take()

	web := Service{Name: "web", Namespace: "default", Frontend: fe("10.96.0.10:80/TCP"), Backends: backends("10.244.1.2:8080", "10.244.2.2:8080")}
	d, created, err := tbl.Upsert(web)
	if err != nil || !created {
		t.Fatalf("upsert: %v %v", created, err)
	}
	if d.ID != 1 || len(d.Backends) != 2 || d.Backends[0].ID != 1 || d.Backends[1].ID != 2 || len(d.Entries) != 1 ||
		!slices.Equal(d.Entries[0].Slots, []lb.BackendID{1, 2}) {
		t.Errorf("detail = %+v", d)
	}
	wantCalls(t, "create", f.take(),
		"UpsertBackend 1 10.244.1.2:8080/TCP active",
		"UpsertBackend 2 10.244.2.2:8080/TCP active",
		"UpsertRevNat 1 10.96.0.10:80",
		"UpsertService 1 10.96.0.10:80/TCP flags= slots=[1 2]")

	// The same service again writes nothing.
	if _, created, err := tbl.Upsert(web); err != nil || created {
		t.Fatalf("again: %v %v", created, err)
	}
	wantCalls(t, "unchanged", f.take())

	// One backend more, one less: the new backend first, then the slots,
	// then the backend that left.
	web.Backends = backends("10.244.2.2:8080", "10.244.3.2:8080")
	if _, _, err := tbl.Upsert(web); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "replace backend", f.take(),
		"UpsertBackend 3 10.244.3.2:8080/TCP active",
		"UpsertService 1 10.96.0.10:80/TCP flags= slots=[2 3]",
		"DeleteBackend 1")

	// Affinity changes only the entry.
	web.SessionAffinity = AffinityClientIP
	if _, _, err := tbl.Upsert(web); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "affinity", f.take(), "UpsertService 1 10.96.0.10:80/TCP flags=affinity slots=[2 3]")
	if e := f.services[lb.Frontend{Addr: web.Frontend.Addr, Port: 80, Proto: lb.TCP}]; e.AffinityTimeout != DefaultAffinityTimeout {
		t.Errorf("affinity timeout = %d", e.AffinityTimeout)
	}

	// Deleting: the entry, then its reverse NAT, then its backends.
	if _, err := tbl.Delete(1); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "delete", f.take(), "DeleteService 10.96.0.10:80/TCP", "DeleteRevNat 1", "DeleteBackend 2", "DeleteBackend 3")
	if len(f.services)+len(f.backends)+len(f.revnats) != 0 || tbl.Len() != 0 {
		t.Errorf("left in the maps: %v %v %v", f.services, f.backends, f.revnats)
	}
	if _, err := tbl.Delete(1); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete again: %v", err)
	}
}

func TestTwoScopes(t *testing.T) {
	f := newFakeLB(t)
	local := localSet{netip.MustParseAddr("10.244.1.2"): true}
	tbl := newTable(t, f, Config{IsLocal: local.IsLocal, NodeName: "node1"})
	np := Service{Name: "np", Frontend: fe("0.0.0.0:30080/TCP"), Type: NodePort,
		Backends:              append(backends("10.244.1.2:80", "10.244.2.2:80"), Backend{Addr: netip.MustParseAddrPort("10.244.3.2:80"), NodeName: "node1"}),
		ExternalTrafficPolicy: TrafficLocal}
	d, _, err := tbl.Upsert(np)
	if err != nil {
		t.Fatal(err)
	}
	// Internal entry first: the external one points at it.
	wantCalls(t, "etp local", f.take(),
		"UpsertBackend 1 10.244.1.2:80/TCP active local=true",
		"UpsertBackend 2 10.244.2.2:80/TCP active local=false",
		"UpsertBackend 3 10.244.3.2:80/TCP active local=true",
		"UpsertRevNat 1 0.0.0.0:30080",
		"UpsertRevNat 2 0.0.0.0:30080",
		"UpsertService 2 0.0.0.0:30080/TCP (internal) flags=nodeport slots=[1 2 3]",
		"UpsertService 1 0.0.0.0:30080/TCP flags=nodeport,local,two-scopes slots=[1 3]")
	if d.ID != 1 || len(d.Entries) != 2 || d.Entries[1].Scope != "internal" || d.Entries[1].ID != 2 ||
		!d.Backends[0].Local || d.Backends[1].Local || !d.Backends[2].Local {
		t.Errorf("detail = %+v", d)
	}
	if g, err := tbl.Get(2); err != nil || g.ID != 1 {
		t.Errorf("get by the internal entry's ID: %+v %v", g, err)
	}

	// Internal Local as well: one entry again, local only; the internal
	// one goes after the external lost its flag.
	np.InternalTrafficPolicy = TrafficLocal
	if _, _, err := tbl.Upsert(np); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "both local", f.take(),
		"UpsertService 1 0.0.0.0:30080/TCP flags=nodeport,local slots=[1 3]",
		"DeleteService 0.0.0.0:30080/TCP (internal)",
		"DeleteRevNat 2")

	// Internal Local only, external Cluster: the internal entry is the local one.
	np.ExternalTrafficPolicy = TrafficCluster
	if _, _, err := tbl.Upsert(np); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "itp local", f.take(),
		"UpsertRevNat 3 0.0.0.0:30080",
		"UpsertService 3 0.0.0.0:30080/TCP (internal) flags=nodeport,local slots=[1 3]",
		"UpsertService 1 0.0.0.0:30080/TCP flags=nodeport,two-scopes slots=[1 2 3]")

	// A ClusterIP with internal Local: one entry, local only.
	cip := Service{Frontend: fe("10.96.0.20:80/UDP"), Backends: backends("10.244.1.2:53", "10.244.2.2:53"), InternalTrafficPolicy: TrafficLocal}
	if _, _, err := tbl.Upsert(cip); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "clusterip itp local", f.take(),
		"UpsertBackend 4 10.244.1.2:53/UDP active local=true",
		"UpsertBackend 5 10.244.2.2:53/UDP active local=false",
		"UpsertRevNat 4 10.96.0.20:80",
		"UpsertService 4 10.96.0.20:80/UDP flags=local slots=[4]")

	// LoadBalancer and ExternalIPs are external.
	for i, typ := range []Type{LoadBalancer, ExternalIPs} {
		s := Service{Frontend: L4Addr{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Port: 443, Proto: lb.TCP}, Type: typ, Backends: backends("10.244.2.2:443")}
		d, _, err := tbl.Upsert(s)
		if err != nil || !slices.Equal(d.Entries[0].Flags, []string{"external"}) {
			t.Errorf("%s: %+v %v", typ, d.Entries, err)
		}
	}
}

func TestRefreshFollowsLocalEndpoints(t *testing.T) {
	f := newFakeLB(t)
	local := localSet{}
	tbl := newTable(t, f, Config{IsLocal: local.IsLocal})
	s := Service{Frontend: fe("192.0.2.1:80"), Type: LoadBalancer, ExternalTrafficPolicy: TrafficLocal, InternalTrafficPolicy: TrafficLocal,
		Backends: backends("10.244.1.2:80", "10.244.1.3:80")}
	if _, _, err := tbl.Upsert(s); err != nil {
		t.Fatal(err)
	}
	f.take()
	if err := tbl.Refresh(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "nothing changed", f.take())

	local[netip.MustParseAddr("10.244.1.3")] = true
	if err := tbl.Refresh(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "a pod became local", f.take(),
		"UpsertBackend 2 10.244.1.3:80/TCP active local=true",
		"UpsertService 1 192.0.2.1:80/TCP flags=external,local slots=[2]")
	delete(local, netip.MustParseAddr("10.244.1.3"))
	if err := tbl.Refresh(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "the pod left", f.take(),
		"UpsertBackend 2 10.244.1.3:80/TCP active local=false",
		"UpsertService 1 192.0.2.1:80/TCP flags=external,local slots=[]")
}

func TestBackendStates(t *testing.T) {
	f := newFakeLB(t)
	tbl := newTable(t, f, Config{})
	s := Service{Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:80", "10.244.1.3:80", "10.244.1.4:80")}
	if _, _, err := tbl.Upsert(s); err != nil {
		t.Fatal(err)
	}
	f.take()

	// Terminating and quarantined backends leave the slots and keep
	// their backend entry (their connections go on).
	s.Backends[0].State, s.Backends[2].State = Terminating, Quarantined
	d, _, err := tbl.Upsert(s)
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "terminating", f.take(),
		"UpsertBackend 1 10.244.1.2:80/TCP terminating",
		"UpsertBackend 3 10.244.1.4:80/TCP quarantined",
		"UpsertService 1 10.96.0.10:80/TCP flags= slots=[2]")
	if d.Backends[0].State != Terminating || !slices.Equal(d.Entries[0].Slots, []lb.BackendID{2}) {
		t.Errorf("detail = %+v", d)
	}

	// Gone from the service: deleted after it left the slots (it had).
	s.Backends = s.Backends[1:]
	if _, _, err := tbl.Upsert(s); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "removed", f.take(), "DeleteBackend 1")

	// Back to active: back in the slots, same ID.
	s.Backends[1].State = Active
	if _, _, err := tbl.Upsert(s); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "active again", f.take(),
		"UpsertBackend 3 10.244.1.4:80/TCP active",
		"UpsertService 1 10.96.0.10:80/TCP flags= slots=[2 3]")
}

func TestSharedBackends(t *testing.T) {
	f := newFakeLB(t)
	tbl := newTable(t, f, Config{})
	a := Service{Name: "a", Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:80", "10.244.1.3:80")}
	b := Service{Name: "b", Frontend: fe("10.96.0.11:80"), Backends: backends("10.244.1.3:80")}
	b.Backends[0].State = Terminating
	// The same address with another protocol is another backend.
	c := Service{Name: "c", Frontend: fe("10.96.0.11:80/UDP"), Backends: backends("10.244.1.3:80")}
	for _, s := range []Service{a, b, c} {
		if _, _, err := tbl.Upsert(s); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.backends) != 3 {
		t.Fatalf("backends = %v", f.backends)
	}
	// Shared: one entry, as usable as its most usable listing.
	if be := f.backends[2]; be.State != lb.Active || be.Addr.String() != "10.244.1.3:80" {
		t.Errorf("shared backend = %+v", be)
	}
	f.take()
	if _, err := tbl.DeleteFrontend(a.Frontend); err != nil {
		t.Fatal(err)
	}
	// b still lists 10.244.1.3:80 (terminating): kept, now terminating.
	wantCalls(t, "delete a", f.take(),
		"UpsertBackend 2 10.244.1.3:80/TCP terminating",
		"DeleteService 10.96.0.10:80/TCP", "DeleteRevNat 1", "DeleteBackend 1")
}

func TestConflicts(t *testing.T) {
	f := newFakeLB(t)
	dir := t.TempDir()
	tbl := newTable(t, f, Config{StateDir: dir})
	if _, _, err := tbl.Upsert(Service{Name: "web", Namespace: "default", Frontend: fe("10.96.0.10:80")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tbl.Upsert(Service{Name: "np", Frontend: fe("192.168.1.5:30080"), Type: NodePort}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "services.json"))
	f.take()
	cases := []struct {
		svc  Service
		want string
	}{
		{Service{Name: "api", Namespace: "default", Frontend: fe("10.96.0.10:80")}, "frontend 10.96.0.10:80/TCP belongs to service default/web (ID 1); delete it first to give the frontend to default/api"},
		{Service{Frontend: fe("10.96.0.10:80")}, "belongs to service default/web (ID 1); delete it first to give the frontend to an unnamed service"},
		{Service{Name: "all", Frontend: fe("0.0.0.0:30080"), Type: NodePort}, "NodePort frontend 0.0.0.0:30080/TCP overlaps 192.168.1.5:30080/TCP of service np (ID 2)"},
	}
	for _, c := range cases {
		_, _, err := tbl.Upsert(c.svc)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want ErrConflict with %q", err, c.want)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "services.json")); string(after) != string(before) || len(f.take()) > 0 {
		t.Error("a refused service changed the state file or the maps")
	}
	// Other families and protocols do not overlap.
	for _, s := range []Service{{Name: "v6", Frontend: fe("[::]:30080"), Type: NodePort}, {Name: "udp", Frontend: fe("0.0.0.0:30080/UDP"), Type: NodePort}} {
		if _, _, err := tbl.Upsert(s); err != nil {
			t.Errorf("%s: %v", s.Frontend, err)
		}
	}
}

func TestRefusedChangesNothing(t *testing.T) {
	f := newFakeLB(t)
	dir := t.TempDir()
	tbl := newTable(t, f, Config{StateDir: dir, ServiceMapSize: 6, BackendMapSize: 3})
	web := Service{Name: "web", Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:80", "10.244.1.3:80")}
	if _, _, err := tbl.Upsert(web); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "services.json")
	before, _ := os.ReadFile(path)
	listBefore := tbl.List()
	f.take()

	cases := []struct {
		name string
		svc  Service
		err  error
	}{
		{"invalid", Service{Name: "web", Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:0")}, ErrInvalid},
		{"sctp", Service{Frontend: L4Addr{Addr: netip.MustParseAddr("10.96.0.11"), Port: 80, Proto: lb.SCTP}}, ErrInvalid},
		{"conflict", Service{Name: "other", Frontend: fe("10.96.0.10:80")}, ErrConflict},
		{"backend map full", Service{Name: "x", Frontend: fe("10.96.0.12:80"), Backends: backends("10.244.1.4:80", "10.244.1.5:80")}, ErrLimit},
		{"service map full", Service{Name: "y", Frontend: fe("192.0.2.1:80"), Type: LoadBalancer, ExternalTrafficPolicy: TrafficLocal,
			Backends: backends("10.244.1.2:80", "10.244.1.3:80")}, ErrLimit},
	}
	for _, c := range cases {
		_, _, err := tbl.Upsert(c.svc)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.err)
		}
		if c.name == "backend map full" && !strings.Contains(fmt.Sprint(err), "need 4 backends, the backend map holds 3") ||
			c.name == "service map full" && !strings.Contains(fmt.Sprint(err), "need 7 entries in the service map") {
			t.Errorf("%s: err = %v", c.name, err)
		}
		if calls := f.take(); len(calls) > 0 {
			t.Errorf("%s: wrote %v", c.name, calls)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Errorf("%s: services.json changed", c.name)
		}
		if got := tbl.List(); len(got) != len(listBefore) || got[0].ID != listBefore[0].ID || len(got[0].Backends) != 2 {
			t.Errorf("%s: table changed: %+v", c.name, got)
		}
	}
	// The IDs the refused services took for a moment were given back, and
	// a service that fits is fine.
	d, _, err := tbl.Upsert(Service{Name: "z", Frontend: fe("10.96.0.13:80"), Backends: backends("10.244.1.2:80")})
	if err != nil || d.Backends[0].ID != 1 {
		t.Errorf("fitting service: %+v %v", d, err)
	}
	if len(tbl.backendOwner) != 2 {
		t.Errorf("backend IDs held: %v", tbl.backendOwner)
	}
	// Deleting is never refused, even when the maps are fuller than the
	// limit allows (it was lowered).
	tbl.cfg.ServiceMapSize = 1
	if _, err := tbl.Delete(1); err != nil {
		t.Errorf("delete over the limit: %v", err)
	}
}

func TestWriteFailureRollsBack(t *testing.T) {
	f := newFakeLB(t)
	tbl := newTable(t, f, Config{StateDir: t.TempDir()})
	web := Service{Name: "web", Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:80")}
	if _, _, err := tbl.Upsert(web); err != nil {
		t.Fatal(err)
	}
	f.take()
	// The new entry cannot be written: the request fails and the maps
	// go back to what they held.
	f.fail = func(c string) error {
		if strings.HasPrefix(c, "UpsertService") && strings.Contains(c, "slots=[1 2]") {
			return errors.New("map full")
		}
		return nil
	}
	web.Backends = backends("10.244.1.2:80", "10.244.1.3:80")
	_, _, err := tbl.Upsert(web)
	if err == nil || !strings.Contains(err.Error(), "map full") {
		t.Fatalf("err = %v", err)
	}
	wantCalls(t, "failed and undone", f.take(),
		"UpsertBackend 2 10.244.1.3:80/TCP", "DeleteBackend 2")
	d, _ := tbl.Get(1)
	if len(d.Backends) != 1 || tbl.Err() != nil {
		t.Errorf("after the failure: %+v, %v", d, tbl.Err())
	}
	if len(f.backends) != 1 {
		t.Errorf("backends = %v", f.backends)
	}
}

func TestFailedWritesRetriedByRefresh(t *testing.T) {
	f := newFakeLB(t)
	tbl := newTable(t, f, Config{})
	s := Service{Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:80", "10.244.1.3:80")}
	if _, _, err := tbl.Upsert(s); err != nil {
		t.Fatal(err)
	}
	f.take()
	// A deletion that fails leaves the backend in the map, and its ID
	// taken, until a later sync gets it out.
	f.fail = func(c string) error {
		if c == "DeleteBackend 2" {
			return errors.New("busy")
		}
		return nil
	}
	s.Backends = s.Backends[:1]
	if _, _, err := tbl.Upsert(s); err == nil {
		t.Fatal("want the failed deletion reported")
	}
	// Undone: the service still has both.
	if d, _ := tbl.Get(1); len(d.Backends) != 2 {
		t.Fatalf("not undone: %+v", d)
	}
	f.fail = nil
	if err := tbl.Refresh(); err != nil || tbl.Err() != nil {
		t.Fatal(err)
	}
}

func TestRestartConverges(t *testing.T) {
	f := newFakeLB(t)
	dir := t.TempDir()
	local := localSet{netip.MustParseAddr("10.244.1.2"): true}
	cfg := Config{StateDir: dir, IsLocal: local.IsLocal}
	tbl := newTable(t, f, cfg)
	svcs := []Service{
		{Name: "web", Namespace: "default", Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:80", "10.244.2.2:80")},
		{Name: "np", Frontend: fe("0.0.0.0:30080"), Type: NodePort, ExternalTrafficPolicy: TrafficLocal, Algorithm: AlgorithmMaglev,
			SessionAffinity: AffinityClientIP, SessionAffinityTimeout: 60, Backends: backends("10.244.1.2:80", "10.244.2.2:80", "10.244.3.2:80")},
		{Name: "dns", Frontend: fe("[fd00::a]:53/UDP"), Backends: backends("[fd00:5e7a::2]:53")},
	}
	for _, s := range svcs {
		if _, _, err := tbl.Upsert(s); err != nil {
			t.Fatal(err)
		}
	}
	// Churn, so IDs are not simply 1..n.
	if _, _, err := tbl.Upsert(Service{Name: "tmp", Frontend: fe("10.96.0.99:80"), Backends: backends("10.244.9.9:80")}); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.DeleteFrontend(fe("10.96.0.99:80")); err != nil {
		t.Fatal(err)
	}
	before := tbl.List()
	f.take()

	// A restarted agent writes nothing and keeps every ID.
	again := newTable(t, f, cfg)
	wantCalls(t, "restart", f.take())
	if got := again.List(); !sameDetails(got, before) {
		t.Errorf("after restart\n%+v\nwant\n%+v", got, before)
	}
	// And the next service does not reuse a freed ID.
	d, _, err := again.Upsert(Service{Name: "new", Frontend: fe("10.96.0.100:80"), Backends: backends("10.244.9.10:80")})
	if err != nil || d.ID <= 5 || d.Backends[0].ID <= 5 {
		t.Errorf("new service after restart: ID %d, backend %d, %v", d.ID, d.Backends[0].ID, err)
	}

	// Maps gone (a reboot): everything is written again with the saved IDs.
	f2 := newFakeLB(t)
	rebooted := newTable(t, f2, cfg)
	if got := rebooted.List(); !sameDetails(got, again.List()) {
		t.Errorf("after reboot\n%+v\nwant\n%+v", got, again.List())
	}
	if len(f2.services) != len(f.services) || len(f2.backends) != len(f.backends) {
		t.Errorf("reboot wrote %d entries, %d backends; want %d, %d", len(f2.services), len(f2.backends), len(f.services), len(f.backends))
	}

	// State dir lost: the desired state is empty, the maps are emptied.
	f.take()
	lost := newTable(t, f, Config{StateDir: t.TempDir()})
	if lost.Len() != 0 || len(f.services)+len(f.backends)+len(f.revnats) != 0 {
		t.Errorf("maps after losing the state dir: %v %v %v", f.services, f.backends, f.revnats)
	}
}

func TestRestartPinnedIDsWin(t *testing.T) {
	f := newFakeLB(t)
	dir := t.TempDir()
	tbl := newTable(t, f, Config{StateDir: dir})
	if _, _, err := tbl.Upsert(Service{Name: "web", Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:80")}); err != nil {
		t.Fatal(err)
	}
	// The maps say otherwise than the file (say, the file is older):
	// conntrack names what is pinned, so the pinned IDs stay.
	key := lb.Frontend{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Proto: lb.TCP}
	e := f.services[key]
	e.ID, e.Backends = 7, []lb.BackendID{9}
	f.services[key] = e
	f.backends = map[lb.BackendID]lb.Backend{9: {ID: 9, Addr: netip.MustParseAddrPort("10.244.1.2:80"), Proto: lb.TCP}}
	f.revnats = map[lb.ServiceID]lb.RevNat{7: {ID: 7, Addr: netip.MustParseAddrPort("10.96.0.10:80")},
		// A stale reverse-NAT entry nothing uses.
		3: {ID: 3, Addr: netip.MustParseAddrPort("10.96.0.3:80")}}
	f.take()
	again := newTable(t, f, Config{StateDir: dir})
	wantCalls(t, "restart", f.take(), "DeleteRevNat 3")
	if d := again.List(); d[0].ID != 7 || d[0].Backends[0].ID != 9 {
		t.Errorf("IDs = %+v", d)
	}
}

func TestRestartDropsInvalidSaved(t *testing.T) {
	f := newFakeLB(t)
	dir := t.TempDir()
	tbl := newTable(t, f, Config{StateDir: dir})
	if _, _, err := tbl.Upsert(Service{Frontend: fe("0.0.0.0:30080"), Type: NodePort, Backends: backends("10.244.1.2:80")}); err != nil {
		t.Fatal(err)
	}
	f.take()
	// The node port range changed under it.
	again := newTable(t, f, Config{StateDir: dir, NodePorts: PortRange{31000, 32000}})
	if again.Len() != 0 || len(f.services) != 0 {
		t.Errorf("kept a service outside the node port range")
	}
}

func TestIDsNotReusedAtOnce(t *testing.T) {
	f := newFakeLB(t)
	tbl := newTable(t, f, Config{})
	var ids []lb.ServiceID
	for i := range 3 {
		s := Service{Frontend: L4Addr{Addr: netip.AddrFrom4([4]byte{10, 96, 0, byte(i + 1)}), Port: 80, Proto: lb.TCP}}
		d, _, err := tbl.Upsert(s)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
		if _, err := tbl.Delete(d.ID); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(ids, []lb.ServiceID{1, 2, 3}) {
		t.Errorf("ids = %v", ids)
	}
}

func TestServiceIDsRunOut(t *testing.T) {
	f := newFakeLB(t)
	tbl := newTable(t, f, Config{})
	// Next-fit wraps around past 65535.
	tbl.lastEntry = maxServiceID - 1
	for _, want := range []lb.ServiceID{maxServiceID, 1} {
		if id, err := tbl.allocEntry(orphanKey); err != nil || id != want {
			t.Errorf("alloc = %d %v, want %d", id, err, want)
		}
		tbl.entryOwner[tbl.lastEntry] = orphanKey
	}
	for id := lb.ServiceID(1); id < maxServiceID; id++ {
		tbl.entryOwner[id] = orphanKey
	}
	_, err := tbl.allocEntry(lb.Frontend{Addr: netip.MustParseAddr("10.96.0.1"), Port: 80, Proto: lb.TCP})
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "no free service ID for 10.96.0.1:80/TCP") {
		t.Errorf("err = %v", err)
	}
}

func TestMaglevEntry(t *testing.T) {
	f := newFakeLB(t)
	dir := t.TempDir()
	tbl := newTable(t, f, Config{StateDir: dir})
	s := Service{Frontend: fe("192.0.2.1:443"), Type: LoadBalancer, Algorithm: AlgorithmMaglev, Backends: backends("10.244.1.2:443", "10.244.1.3:443", "10.244.1.4:443")}
	d, _, err := tbl.Upsert(s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Entries[0].Flags, []string{"external", "maglev"}) {
		t.Errorf("flags = %v", d.Entries[0].Flags)
	}
	e := f.services[lb.Frontend{Addr: s.Frontend.Addr, Port: 443, Proto: lb.TCP}]
	counts := map[lb.BackendID]int{}
	for _, id := range e.Maglev {
		counts[id]++
	}
	if len(counts) != 3 {
		t.Errorf("maglev table uses %v", counts)
	}
	// The order of the backends does not change the table.
	f.take()
	slices.Reverse(s.Backends)
	if _, _, err := tbl.Upsert(s); err != nil {
		t.Fatal(err)
	}
	if got := f.services[e.Frontend]; !slices.Equal(got.Maglev, e.Maglev) {
		t.Error("reordering the backends changed the maglev table")
	}
	// No active backend: no table, no flag.
	for i := range s.Backends {
		s.Backends[i].State = Terminating
	}
	if d, _, err = tbl.Upsert(s); err != nil || slices.Contains(d.Entries[0].Flags, "maglev") {
		t.Errorf("no backends: %v %v", d.Entries, err)
	}
}

func sameDetails(a, b []Detail) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Service.Frontend != b[i].Service.Frontend || len(a[i].Backends) != len(b[i].Backends) ||
			len(a[i].Entries) != len(b[i].Entries) {
			return false
		}
		for j := range a[i].Backends {
			if a[i].Backends[j] != b[i].Backends[j] {
				return false
			}
		}
		for j := range a[i].Entries {
			x, y := a[i].Entries[j], b[i].Entries[j]
			if x.ID != y.ID || !slices.Equal(x.Flags, y.Flags) || !slices.Equal(x.Slots, y.Slots) {
				return false
			}
		}
	}
	return true
}
