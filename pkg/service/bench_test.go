package service

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

// nopLB is an LBMap that accepts every write and holds nothing, so a
// benchmark times the table alone (and its state on disk).
type nopLB struct{}

func (nopLB) UpsertBackend(lb.Backend) error   { return nil }
func (nopLB) DeleteBackend(lb.BackendID) error { return nil }
func (nopLB) UpsertService(lb.LBService) error { return nil }
func (nopLB) DeleteService(lb.Frontend) error  { return nil }
func (nopLB) UpsertRevNat(lb.RevNat) error     { return nil }
func (nopLB) DeleteRevNat(lb.ServiceID) error  { return nil }
func (nopLB) Dump() ([]lb.LBService, []lb.Backend, []lb.RevNat, error) {
	return nil, nil, nil, nil
}

// benchService is a ClusterIP with the two backends every benchmark
// service shares (as bench/lb's services do: the worst case for shared
// backend bookkeeping).
func benchService(i int) Service {
	a := netip.AddrFrom4([4]byte{10, byte(96 + i>>16), byte(i >> 8), byte(i)})
	return Service{Name: fmt.Sprintf("svc-%d", i), Namespace: "bench", Frontend: L4Addr{Addr: a, Port: 80, Proto: lb.TCP},
		Backends: []Backend{{Addr: netip.MustParseAddrPort("10.244.1.2:8080"), NodeName: "node1"},
			{Addr: netip.MustParseAddrPort("10.244.1.3:8080"), NodeName: "node1"}}}
}

// benchTable restores a table of n services from a state file written
// directly (adding them one by one would time the table's growth, not
// its steady state).
func benchTable(b *testing.B, n int) *Table {
	b.Helper()
	dir := b.TempDir()
	st := savedState{Version: stateVersion, Backends: []savedBackend{}}
	for i := range n {
		st.Services = append(st.Services, savedService{Service: benchService(i)})
	}
	raw, err := json.Marshal(st)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "services.json"), raw, 0o600); err != nil {
		b.Fatal(err)
	}
	tbl, err := New(quietLog(), Config{StateDir: dir, NodeName: "node1", ServiceMapSize: 262144, BackendMapSize: 262144}, nopLB{})
	if err != nil {
		b.Fatal(err)
	}
	if tbl.Len() != n {
		b.Fatalf("restored %d services, want %d", tbl.Len(), n)
	}
	return tbl
}

// BenchmarkUpsertOne times adding one new service to a table of N, with
// the state kept on disk (fsync included), as the agent's PUT does. The
// service is deleted again, untimed, so every add starts from N.
func BenchmarkUpsertOne(b *testing.B) {
	for _, n := range []int{10, 10000, 65000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tbl := benchTable(b, n)
			extra := benchService(n + 1)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := tbl.Upsert(extra); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := tbl.DeleteFrontend(extra.Frontend); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkDeleteOne times removing one service from a table of N+1.
func BenchmarkDeleteOne(b *testing.B) {
	for _, n := range []int{10, 10000, 65000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tbl := benchTable(b, n)
			extra := benchService(n + 1)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				if _, _, err := tbl.Upsert(extra); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := tbl.DeleteFrontend(extra.Frontend); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
