package service

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

// checkConsistent fails unless the incremental bookkeeping matches a
// recomputation from scratch: a full sync writes nothing, the maps hold
// what the table wants, and the running counts are right.
func checkConsistent(t *testing.T, what string, tbl *Table, f *fakeLB) {
	t.Helper()
	f.take()
	placesNeed, placesNow, union := 0, 0, 0
	idRefs, beRefs := map[lb.ServiceID]int{}, map[lb.BackendID]int{}
	for k, e := range tbl.written.services {
		placesNow += 1 + len(e.Backends)
		idRefs[e.ID]++
		for _, id := range e.Backends {
			beRefs[id]++
		}
		if _, ok := tbl.want.services[k]; !ok {
			placesNeed += 1 + len(e.Backends)
		}
	}
	for k, e := range tbl.want.services {
		placesNeed += 1 + max(len(e.Backends), len(tbl.written.services[k].Backends))
	}
	union += len(tbl.want.backends)
	for id := range tbl.written.backends {
		if _, ok := tbl.want.backends[id]; !ok {
			union++
		}
	}
	if placesNeed != tbl.placesNeed || placesNow != tbl.placesNow || union != tbl.backendUnion {
		t.Errorf("%s: counts need=%d now=%d union=%d, recomputed %d %d %d", what, tbl.placesNeed, tbl.placesNow, tbl.backendUnion, placesNeed, placesNow, union)
	}
	if fmt.Sprint(idRefs) != fmt.Sprint(tbl.wIDRefs) || fmt.Sprint(beRefs) != fmt.Sprint(tbl.wBackendRefs) {
		t.Errorf("%s: refs %v %v, recomputed %v %v", what, tbl.wIDRefs, tbl.wBackendRefs, idRefs, beRefs)
	}
	if err := tbl.Refresh(); err != nil {
		t.Errorf("%s: refresh: %v", what, err)
	}
	if calls := f.take(); len(calls) > 0 {
		t.Errorf("%s: the incremental path left work for a full sync: %v", what, calls)
	}
	if len(f.services) != len(tbl.want.services) || len(f.backends) != len(tbl.want.backends) || len(f.revnats) != len(tbl.want.revnats) {
		t.Errorf("%s: maps hold %d/%d/%d, want %d/%d/%d", what, len(f.services), len(f.backends), len(f.revnats),
			len(tbl.want.services), len(tbl.want.backends), len(tbl.want.revnats))
	}
	for k, e := range tbl.want.services {
		if !sameService(f.services[k], e) {
			t.Errorf("%s: map entry %s = %+v, want %+v", what, k, f.services[k], e)
		}
	}
}

// TestIncrementalMatchesFull churns services that share backends (states,
// locality, policies, Maglev) and checks after every change that writing
// only the changed service left the maps as a full recomputation would.
func TestIncrementalMatchesFull(t *testing.T) {
	f := newFakeLB(t)
	local := localSet{netip.MustParseAddr("10.244.1.1"): true, netip.MustParseAddr("10.244.1.2"): true}
	dir := t.TempDir()
	cfg := Config{StateDir: dir, NodeName: "node1", IsLocal: local.IsLocal}
	tbl := newTable(t, f, cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	pool := []string{"10.244.1.1:80", "10.244.1.2:80", "10.244.2.1:80", "10.244.2.2:80", "10.244.3.1:80", "10.244.3.2:80"}
	for step := range 300 {
		i := rng.IntN(12)
		s := Service{Name: fmt.Sprintf("s%d", i), Frontend: L4Addr{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Port: 80, Proto: lb.TCP}}
		if rng.IntN(5) == 0 {
			if _, err := tbl.DeleteFrontend(s.Frontend); err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			checkConsistent(t, fmt.Sprintf("step %d delete %d", step, i), tbl, f)
			continue
		}
		s.Type = []Type{ClusterIP, LoadBalancer, ExternalIPs}[rng.IntN(3)]
		if s.Type != ClusterIP && rng.IntN(2) == 0 {
			s.ExternalTrafficPolicy = TrafficLocal
		}
		if rng.IntN(2) == 0 {
			s.InternalTrafficPolicy = TrafficLocal
		}
		if s.Type != ClusterIP && rng.IntN(2) == 0 {
			s.Algorithm = AlgorithmMaglev
		}
		for _, a := range pool {
			if rng.IntN(2) == 0 {
				continue
			}
			b := Backend{Addr: netip.MustParseAddrPort(a), State: State(rng.IntN(3))}
			if rng.IntN(4) == 0 {
				b.NodeName = "node1" // local by name: may flip another service's local-only slots
			}
			s.Backends = append(s.Backends, b)
		}
		if _, _, err := tbl.Upsert(s); err != nil {
			t.Fatal(err)
		}
		checkConsistent(t, fmt.Sprintf("step %d upsert %d", step, i), tbl, f)
	}
	// And what was journaled restores the same table.
	before := tbl.List()
	again := newTable(t, f, cfg)
	if !sameDetails(again.List(), before) {
		t.Errorf("after restart\n%+v\nwant\n%+v", again.List(), before)
	}
	if calls := f.take(); len(calls) > 0 {
		t.Errorf("restart wrote %v", calls)
	}
}

// TestSharedBackendLocalityFlip: a backend is local because one service
// says so (its nodeName); another service's local-only slots follow when
// that listing comes and goes.
func TestSharedBackendLocalityFlip(t *testing.T) {
	f := newFakeLB(t)
	tbl := newTable(t, f, Config{NodeName: "node1"})
	be := netip.MustParseAddrPort("10.244.1.2:80")
	lo := Service{Name: "lo", Frontend: fe("10.96.0.10:80"), InternalTrafficPolicy: TrafficLocal, Backends: []Backend{{Addr: be}}}
	named := Service{Name: "named", Frontend: fe("10.96.0.11:80"), Backends: []Backend{{Addr: be, NodeName: "node1"}}}
	if _, _, err := tbl.Upsert(lo); err != nil {
		t.Fatal(err)
	}
	f.take()
	if _, _, err := tbl.Upsert(named); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "named makes it local", f.take(),
		"UpsertBackend 1 10.244.1.2:80/TCP active local=true",
		"UpsertRevNat 2", "UpsertService 1 10.96.0.10:80/TCP flags=local slots=[1]",
		"UpsertService 2 10.96.0.11:80/TCP flags= slots=[1]")
	if _, err := tbl.DeleteFrontend(named.Frontend); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, "named gone", f.take(),
		"UpsertBackend 1 10.244.1.2:80/TCP active local=false",
		"UpsertService 1 10.96.0.10:80/TCP flags=local slots=[]",
		"DeleteService 10.96.0.11:80/TCP", "DeleteRevNat 2")
	checkConsistent(t, "after", tbl, f)
}

// TestRollbackSharedBackend: a failed change of one service that shares a
// backend with another leaves both, the maps and the counts as they were.
func TestRollbackSharedBackend(t *testing.T) {
	f := newFakeLB(t)
	dir := t.TempDir()
	tbl := newTable(t, f, Config{StateDir: dir, NodeName: "node1"})
	a := Service{Name: "a", Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:80", "10.244.1.3:80")}
	b := Service{Name: "b", Frontend: fe("10.96.0.11:80"), Backends: backends("10.244.1.3:80")}
	for _, s := range []Service{a, b} {
		if _, _, err := tbl.Upsert(s); err != nil {
			t.Fatal(err)
		}
	}
	checkConsistent(t, "before", tbl, f)
	// b marks the shared backend terminating and adds one; its entry
	// cannot be written.
	f.fail = func(c string) error {
		if strings.HasPrefix(c, "UpsertService 2") {
			return errors.New("map full")
		}
		return nil
	}
	b2 := b
	b2.Backends = []Backend{{Addr: netip.MustParseAddrPort("10.244.1.3:80"), State: Terminating}, {Addr: netip.MustParseAddrPort("10.244.1.4:80")}}
	if _, _, err := tbl.Upsert(b2); err == nil || !strings.Contains(err.Error(), "map full") {
		t.Fatalf("err = %v", err)
	}
	f.fail = nil
	if d, _ := tbl.Lookup(b.Frontend); len(d.Backends) != 1 || d.Backends[0].State != Active {
		t.Errorf("b after the failure: %+v", d)
	}
	if be := f.backends[2]; be.State != lb.Active {
		t.Errorf("shared backend left %v", be.State)
	}
	if _, ok := f.backends[3]; ok || len(tbl.backendOwner) != 2 {
		t.Errorf("the new backend stayed: %v %v", f.backends, tbl.backendOwner)
	}
	if tbl.Err() != nil {
		t.Errorf("Err = %v", tbl.Err())
	}
	checkConsistent(t, "after", tbl, f)
	// Nothing of the failed change reached the disk.
	again := newTable(t, newFakeLB(t), Config{StateDir: dir, NodeName: "node1"})
	if d, _ := again.Lookup(b.Frontend); len(d.Backends) != 1 {
		t.Errorf("restored b: %+v", d)
	}
}

// TestJournalFailureRollsBack: a change that cannot be journaled is undone
// in the maps; the next change rewrites the snapshot.
func TestJournalFailureRollsBack(t *testing.T) {
	f := newFakeLB(t)
	dir := t.TempDir()
	tbl := newTable(t, f, Config{StateDir: dir})
	if _, _, err := tbl.Upsert(Service{Name: "a", Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:80")}); err != nil {
		t.Fatal(err)
	}
	f.take()
	tbl.journal.f.Close() // appends (and cutting them off) now fail
	_, _, err := tbl.Upsert(Service{Name: "b", Frontend: fe("10.96.0.11:80"), Backends: backends("10.244.1.3:80")})
	if err == nil || !strings.Contains(err.Error(), "save the service change") {
		t.Fatalf("err = %v", err)
	}
	wantCalls(t, "written and undone", f.take(),
		"UpsertBackend 2", "UpsertRevNat 2", "UpsertService 2",
		"DeleteService 10.96.0.11:80/TCP", "DeleteRevNat 2", "DeleteBackend 2")
	if tbl.Len() != 1 || !tbl.journal.broken {
		t.Fatalf("len %d, broken %v", tbl.Len(), tbl.journal.broken)
	}
	if _, _, err := tbl.Upsert(Service{Name: "c", Frontend: fe("10.96.0.12:80"), Backends: backends("10.244.1.4:80")}); err != nil {
		t.Fatal(err)
	}
	again := newTable(t, newFakeLB(t), Config{StateDir: dir})
	var got []string
	for _, d := range again.List() {
		got = append(got, d.Service.Name)
	}
	if !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("restored %v", got)
	}
}

// TestJournalReplay: the journal is read on top of services.json, a torn
// last record is dropped, a bad one in the middle is an error, and
// services added to services.json while the agent is stopped (as bench/lb
// does) are taken with the journal's changes.
func TestJournalReplay(t *testing.T) {
	f := newFakeLB(t)
	dir := t.TempDir()
	tbl := newTable(t, f, Config{StateDir: dir})
	for i := range 3 {
		if _, _, err := tbl.Upsert(Service{Name: fmt.Sprintf("s%d", i), Frontend: L4Addr{Addr: netip.AddrFrom4([4]byte{10, 96, 0, byte(i + 1)}), Port: 80, Proto: lb.TCP},
			Backends: backends(fmt.Sprintf("10.244.1.%d:80", i+1))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tbl.DeleteFrontend(fe("10.96.0.2:80")); err != nil {
		t.Fatal(err)
	}
	jpath, spath := filepath.Join(dir, "services.journal"), filepath.Join(dir, "services.json")
	journal, _ := os.ReadFile(jpath)
	if n := strings.Count(string(journal), "\n"); n != 4 {
		t.Fatalf("journal has %d records, want 4", n)
	}
	snapshot, _ := os.ReadFile(spath)
	if strings.Contains(string(snapshot), "10.96.0.1") {
		t.Fatal("a change rewrote services.json")
	}
	// A torn record at the end (a crash mid-append).
	os.WriteFile(jpath, append(journal, `{"upsert":{"id":9,"serv`...), 0o600)
	// A service added to the snapshot with the agent stopped.
	os.WriteFile(spath, []byte(strings.Replace(string(snapshot), `"services": []`,
		`"services": [{"id":0,"service":{"name":"added","frontend":"10.96.1.1:80/TCP","backends":[{"addr":"10.244.9.9:80"}]}}]`, 1)), 0o600)
	before := tbl.List()
	again := newTable(t, newFakeLB(t), Config{StateDir: dir})
	got := again.List()
	if len(got) != 3 || !sameDetails(got[:2], before) || got[2].Service.Name != "added" || got[2].ID != 4 {
		t.Errorf("restored\n%+v\nwant\n%+v and added with ID 4", got, before)
	}
	// Compacted at start: snapshot holds all, journal empty.
	if j, _ := os.ReadFile(jpath); len(j) != 0 {
		t.Errorf("journal after start: %q", j)
	}
	// A bad record that is not the last: refused, not guessed at.
	os.WriteFile(jpath, []byte("{\"delete\":\"10.96.0.1:80/TCP\",\"lastServiceID\":4,\"lastBackendID\":4}\nnot json\n"), 0o600)
	if _, err := New(quietLog(), Config{StateDir: dir}, newFakeLB(t)); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad record: %v", err)
	}
}

// TestJournalCompacts: the journal is folded into services.json once it
// holds as many records as the bound.
func TestJournalCompacts(t *testing.T) {
	f := newFakeLB(t)
	dir := t.TempDir()
	tbl := newTable(t, f, Config{StateDir: dir})
	s := Service{Name: "s", Frontend: fe("10.96.0.10:80"), Backends: backends("10.244.1.2:80")}
	for i := range minCompactRecords + 5 {
		s.Backends[0].State = State(i % 2)
		if _, _, err := tbl.Upsert(s); err != nil {
			t.Fatal(err)
		}
	}
	if tbl.journal.records != 5 {
		t.Errorf("journal holds %d records, want 5", tbl.journal.records)
	}
	again := newTable(t, newFakeLB(t), Config{StateDir: dir})
	if d, _ := again.Lookup(s.Frontend); d.Backends[0].State != State((minCompactRecords+4)%2) {
		t.Errorf("restored %+v", d)
	}
}
