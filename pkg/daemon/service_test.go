package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/config"
	"github.com/seta-net/seta/pkg/endpoint"
	lb "github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/service"
)

// memLB holds the service entries written to it.
type memLB struct {
	mu       sync.Mutex
	services map[lb.Frontend]lb.LBService
}

func (m *memLB) UpsertBackend(lb.Backend) error   { return nil }
func (m *memLB) DeleteBackend(lb.BackendID) error { return nil }
func (m *memLB) UpsertService(s lb.LBService) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.services[s.Frontend] = s
	return nil
}
func (m *memLB) DeleteService(f lb.Frontend) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.services, f)
	return nil
}
func (m *memLB) UpsertRevNat(lb.RevNat) error    { return nil }
func (m *memLB) DeleteRevNat(lb.ServiceID) error { return nil }
func (m *memLB) Dump() ([]lb.LBService, []lb.Backend, []lb.RevNat, error) {
	return nil, nil, nil, nil
}

func (m *memLB) slots(f lb.Frontend) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.services[f].Backends)
}

// fakeEndpoints is an endpointSource the test changes.
type fakeEndpoints struct {
	gen   atomic.Uint64
	mu    sync.Mutex
	eps   []*endpoint.Endpoint
	lists atomic.Int32
}

func (f *fakeEndpoints) Generation() uint64 { return f.gen.Load() }
func (f *fakeEndpoints) List() []*endpoint.Endpoint {
	f.lists.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*endpoint.Endpoint(nil), f.eps...)
}
func (f *fakeEndpoints) add(addr string) {
	f.mu.Lock()
	f.eps = append(f.eps, &endpoint.Endpoint{IPv4: netip.MustParseAddr(addr)})
	f.mu.Unlock()
	f.gen.Add(1)
}

func TestServicesFollowEndpoints(t *testing.T) {
	serviceRefreshInterval = 5 * time.Millisecond
	defer func() { serviceRefreshInterval = time.Second }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config.Defaults()
	cfg.StateDir = t.TempDir()
	m := &memLB{services: map[lb.Frontend]lb.LBService{}}
	eps := &fakeEndpoints{}
	eps.add("10.244.1.2")
	tbl, err := startServices(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg, m, eps)
	if err != nil {
		t.Fatal(err)
	}
	fe, _ := service.ParseL4Addr("0.0.0.0:30080/TCP")
	_, _, err = tbl.Upsert(service.Service{Frontend: fe, Type: service.NodePort, ExternalTrafficPolicy: service.TrafficLocal,
		InternalTrafficPolicy: service.TrafficLocal,
		Backends:              []service.Backend{{Addr: netip.MustParseAddrPort("10.244.1.2:80")}, {Addr: netip.MustParseAddrPort("10.244.1.3:80")}}})
	if err != nil {
		t.Fatal(err)
	}
	key := lb.Frontend{Addr: fe.Addr, Port: fe.Port, Proto: fe.Proto}
	if n := m.slots(key); n != 1 {
		t.Fatalf("slots = %d, want the one local backend", n)
	}
	// The address set is built once per generation, not per backend.
	lists := eps.lists.Load()
	tbl.Refresh()
	if eps.lists.Load() != lists {
		t.Error("the endpoint list was read again without a change")
	}
	// A second local pod: the refresh loop puts it into the slots.
	eps.add("10.244.1.3")
	deadline := time.Now().Add(10 * time.Second)
	for m.slots(key) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("slots = %d after the endpoint appeared", m.slots(key))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStartServicesRestores(t *testing.T) {
	cfg := config.Defaults()
	cfg.StateDir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := &memLB{services: map[lb.Frontend]lb.LBService{}}
	tbl, err := startServices(ctx, log, cfg, m, &fakeEndpoints{})
	if err != nil {
		t.Fatal(err)
	}
	fe, _ := service.ParseL4Addr("10.96.0.10:53/UDP")
	if _, _, err := tbl.Upsert(service.Service{Name: "dns", Frontend: fe}); err != nil {
		t.Fatal(err)
	}
	again, err := startServices(ctx, log, cfg, m, &fakeEndpoints{})
	if err != nil || again.Len() != 1 {
		t.Fatalf("restored %d services, %v", again.Len(), err)
	}
	cfg.NodePortRange = "nope"
	if _, err := startServices(ctx, log, cfg, m, &fakeEndpoints{}); err == nil {
		t.Error("a bad node port range was accepted")
	}
}
