package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/service"
)

// fakeAgent keeps services by frontend as the agent does: normalized on
// upsert, a frontend owned by one (namespace, name).
type fakeAgent struct {
	svcs    map[service.L4Addr]service.Detail
	nextID  lb.ServiceID
	upserts int
	deletes int
}

func newFakeAgent() *fakeAgent {
	return &fakeAgent{svcs: map[service.L4Addr]service.Detail{}, nextID: 1}
}

func (f *fakeAgent) ListServices(context.Context) ([]service.Detail, error) {
	var out []service.Detail
	for _, d := range f.svcs {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b service.Detail) int { return int(a.ID) - int(b.ID) })
	return out, nil
}

func (f *fakeAgent) UpsertService(_ context.Context, s service.Service) (service.Detail, error) {
	n, err := service.Normalize(s, service.DefaultNodePortRange)
	if err != nil {
		return service.Detail{}, err
	}
	d, ok := f.svcs[n.Frontend]
	if ok && (d.Service.Name != n.Name || d.Service.Namespace != n.Namespace) {
		return service.Detail{}, fmt.Errorf("%w: %s belongs to %s", service.ErrConflict, n.Frontend, d.Service.DisplayName())
	}
	if !ok {
		d.ID, f.nextID = f.nextID, f.nextID+1
	}
	d.Service = n
	f.svcs[n.Frontend] = d
	f.upserts++
	return d, nil
}

func (f *fakeAgent) DeleteService(_ context.Context, id lb.ServiceID) error {
	for k, d := range f.svcs {
		if d.ID == id {
			delete(f.svcs, k)
			f.deletes++
			return nil
		}
	}
	return service.ErrNotFound
}

// TestFrontendsAreValidServices: every frontend the lab makes passes the
// agent's own validation.
func TestFrontendsAreValidServices(t *testing.T) {
	st := testState()
	for _, sp := range []ServiceSpec{
		{Name: "web", Namespace: "default", Port: 80, TargetPort: 8080, Selector: map[string]string{"app": "web"}, SessionAffinity: AffinityClientIP},
		{Name: "np", Namespace: "default", Type: TypeNodePort, Port: 80, Protocol: "UDP", Selector: map[string]string{"app": "web"},
			ExternalTrafficPolicy: PolicyLocal, Algorithm: "maglev"},
		{Name: "random", Namespace: "default", Port: 81, Selector: map[string]string{"app": "web"}, Algorithm: "random"},
	} {
		s, err := newService(st, sp)
		if err != nil {
			t.Fatal(err)
		}
		st.Services = append(st.Services, s)
	}
	st.Pods[0].Terminating = true
	for _, f := range Frontends(st) {
		s := toService(f)
		if _, err := service.Normalize(s, service.DefaultNodePortRange); err != nil {
			t.Errorf("%s of %s/%s: %v", f, f.Namespace, f.Name, err)
		}
		if f.Type == TypeNodePort && (s.Algorithm != "maglev" || s.ExternalTrafficPolicy != service.TrafficLocal) {
			t.Errorf("%s: NodePort lost its algorithm or policy: %+v", f, s)
		}
		for _, b := range s.Backends {
			if b.NodeName == "" || (b.Addr.Addr() == netip.MustParseAddr("10.244.1.5") && b.State != service.Terminating) {
				t.Errorf("%s: backend %+v", f, b)
			}
		}
	}
}

func TestSyncAgent(t *testing.T) {
	ctx := context.Background()
	st := testState()
	agent := newFakeAgent()
	// Someone's own service outside the lab's ranges stays.
	agent.UpsertService(ctx, service.Service{Frontend: service.L4Addr{Addr: netip.MustParseAddr("192.0.2.1"), Port: 80, Proto: lb.TCP}})
	// A stale lab service, no longer in the lab.
	agent.UpsertService(ctx, service.Service{Name: "gone", Namespace: "default",
		Frontend: service.L4Addr{Addr: netip.MustParseAddr("10.96.0.100"), Port: 80, Proto: lb.TCP}})

	web, err := newService(st, ServiceSpec{Name: "web", Namespace: "default", Port: 80, TargetPort: 8080, Selector: map[string]string{"app": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	st.Services = append(st.Services, web) // takes over 10.96.0.100:80, which "gone" holds
	if err := syncAgent(ctx, agent, Frontends(st)); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range agent.svcs {
		got[d.Service.Frontend.String()] = d.Service.DisplayName()
	}
	want := map[string]string{
		"192.0.2.1:80/TCP":          "",
		"10.96.0.100:80/TCP":        "default/web",
		"[fd00:5e7a:96::64]:80/TCP": "default/web",
		"10.96.0.10:53/UDP":         "kube-system/kube-dns",
		"10.96.0.10:53/TCP":         "kube-system/kube-dns",
		"[fd00:5e7a:96::a]:53/UDP":  "kube-system/kube-dns",
		"[fd00:5e7a:96::a]:53/TCP":  "kube-system/kube-dns",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("agent services:\n%v\nwant\n%v", got, want)
	}

	// Nothing changed: nothing is written.
	agent.upserts, agent.deletes = 0, 0
	if err := syncAgent(ctx, agent, Frontends(st)); err != nil {
		t.Fatal(err)
	}
	if agent.upserts != 0 || agent.deletes != 0 {
		t.Errorf("an unchanged sync wrote %d services and deleted %d", agent.upserts, agent.deletes)
	}

	// A pod goes: only the services it backs are written.
	st.RemovePod(st.Pod("default", "web-2"))
	if err := syncAgent(ctx, agent, Frontends(st)); err != nil {
		t.Fatal(err)
	}
	if agent.upserts != 2 || agent.deletes != 0 {
		t.Errorf("after a pod went: %d upserts (want 2: web v4 and v6), %d deletes", agent.upserts, agent.deletes)
	}
	d := agent.svcs[service.L4Addr{Addr: netip.MustParseAddr("10.96.0.100"), Port: 80, Proto: lb.TCP}]
	if len(d.Service.Backends) != 1 || !strings.HasPrefix(d.Service.Backends[0].Addr.String(), "10.244.1.5") {
		t.Errorf("web backends: %+v", d.Service.Backends)
	}

	// The service goes: its frontends go from the agent.
	st.Services = st.Services[:1]
	if err := syncAgent(ctx, agent, Frontends(st)); err != nil {
		t.Fatal(err)
	}
	if len(agent.svcs) != 5 {
		t.Errorf("after deleting web: %d services, want kube-dns's 4 and the foreign one", len(agent.svcs))
	}
}
