package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/identity"
)

// The enricher answers repeated lookups from its tables, and stops doing
// so the moment the endpoints or identities change.
func TestEnricherFollowsChanges(t *testing.T) {
	alloc, err := identity.NewAllocator(identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &enricher{alloc: alloc, ids: map[uint32][]string{}, rules: map[uint32][]string{}}
	alloc.OnChange(func() { e.idGen.Add(1) })

	// Endpoints: a lookup is answered again only while the generation
	// stays.
	addr := netip.MustParseAddr("10.244.1.7")
	eps := map[netip.Addr]*endpoint.Endpoint{addr: {ID: 7, Namespace: "default", PodName: "a"}}
	var gen uint64
	lookups := 0
	e.byIP = func(a netip.Addr) (*endpoint.Endpoint, bool) { lookups++; ep, ok := eps[a]; return ep, ok }
	e.epGen = func() uint64 { return gen }
	for range 3 {
		if ep, ok := e.EndpointByIP(addr); !ok || ep.PodName != "a" || ep.ID != 7 {
			t.Fatalf("endpoint %+v, %v", ep, ok)
		}
	}
	if lookups != 1 {
		t.Errorf("3 lookups of one address reached the endpoint cache %d times, want 1", lookups)
	}
	eps[addr] = &endpoint.Endpoint{ID: 8, Namespace: "default", PodName: "b"}
	gen++
	if ep, ok := e.EndpointByIP(addr); !ok || ep.PodName != "b" {
		t.Errorf("after the endpoints changed: %+v, %v; want pod b", ep, ok)
	}
	delete(eps, addr)
	gen++
	if ep, ok := e.EndpointByIP(addr); ok {
		t.Errorf("after the endpoint went away: %+v", ep)
	}

	// Identities: a released CIDR identity is gone at once.
	id, err := alloc.AcquireCIDR(netip.MustParsePrefix("192.0.2.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if ls, ok := e.IdentityLabels(uint32(id.ID)); !ok || !slices.Equal(ls, id.LabelStrings) {
			t.Fatalf("labels of %d: %v, %v; want %v", id.ID, ls, ok, id.LabelStrings)
		}
	}
	alloc.Release(id.ID)
	if ls, ok := e.IdentityLabels(uint32(id.ID)); ok {
		t.Errorf("labels of the released identity %d: %v", id.ID, ls)
	}
	if ls, ok := e.IdentityLabels(uint32(identity.World)); !ok || len(ls) == 0 {
		t.Errorf("labels of world: %v, %v", ls, ok)
	}
}
