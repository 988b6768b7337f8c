package policy

import (
	"math/rand"
	"net/netip"
	"testing"

	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/labels"
	"github.com/seta-net/seta/pkg/policy/api"
)

// world of identities used by the tests.
type fixture struct {
	t     *testing.T
	alloc *identity.Allocator
	ids   map[string]identity.ID
}

func newFixture(t *testing.T) *fixture {
	a, _ := identity.NewAllocator(identity.Options{})
	f := &fixture{t: t, alloc: a, ids: map[string]identity.ID{}}
	f.pod("web", "default", "app=web")
	f.pod("client", "default", "app=client")
	f.pod("other", "other", "app=client")
	f.pod("db", "prod", "app=db")
	return f
}

func (f *fixture) podLabels(ns string, ls ...string) labels.Labels {
	all := append([]string{"k8s:io.kubernetes.pod.namespace=" + ns,
		"k8s:" + NamespaceLabelPrefix + NamespaceNameLabel + "=" + ns}, ls...)
	out, err := labels.ParseAll(all, labels.SourceK8s)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) pod(name, ns string, ls ...string) {
	id, err := f.alloc.Acquire(f.podLabels(ns, ls...))
	if err != nil {
		f.t.Fatal(err)
	}
	f.ids[name] = id.ID
}

func (f *fixture) cidr(p string) identity.ID {
	id, err := f.alloc.AcquireCIDR(netip.MustParsePrefix(p))
	if err != nil {
		f.t.Fatal(err)
	}
	return id.ID
}

func (f *fixture) resolve(repo *Repository, name string, mode EnforcementMode) *Resolved {
	id, _ := f.alloc.Get(f.ids[name])
	return repo.Resolve(id.Labels, f.alloc.List(), Options{Mode: mode})
}

func sel(kv ...string) *api.EndpointSelector {
	s := &api.EndpointSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func cnp(ns, name string, rules ...*api.Rule) *api.Policy {
	return &api.Policy{Kind: api.KindCNP, Namespace: ns, Name: name, Rules: rules}
}

func imp(t *testing.T, ps ...*api.Policy) *Repository {
	t.Helper()
	r := NewRepository()
	if _, err := r.Import(ps); err != nil {
		t.Fatal(err)
	}
	return r
}

// verdict is what the datapath would do for one packet.
func verdict(res *Resolved, dir Direction, peer identity.ID, proto uint8, port uint16) string {
	_, e, ok := res.State.Lookup(dir, peer, proto, port)
	switch {
	case !ok:
		return "drop"
	case e.Deny:
		return "deny"
	}
	return "allow"
}

func tcp(p api.Protocol, port, end uint16) []api.PortRule {
	return []api.PortRule{{Ports: []api.PortProtocol{{Port: port, EndPort: end, Protocol: p}}}}
}

func TestNoPolicyAllowsAll(t *testing.T) {
	f := newFixture(t)
	res := f.resolve(NewRepository(), "web", ModeDefault)
	if res.IngressEnforced || res.EgressEnforced {
		t.Fatal("enforced without policy")
	}
	if v := verdict(res, Ingress, f.ids["client"], ProtoTCP, 80); v != "allow" {
		t.Errorf("verdict %s", v)
	}
	if v := verdict(f.resolve(NewRepository(), "web", ModeAlways), Ingress, f.ids["client"], ProtoTCP, 80); v != "drop" {
		t.Errorf("always mode without policy: %s", v)
	}
}

func TestL3L4Ingress(t *testing.T) {
	f := newFixture(t)
	repo := imp(t, cnp("default", "web-in", &api.Rule{
		EndpointSelector: sel("app", "web"),
		Ingress:          []api.IngressRule{{FromEndpoints: []api.EndpointSelector{*sel("app", "client")}, ToPorts: tcp(api.ProtoTCP, 80, 0)}},
	}))
	res := f.resolve(repo, "web", ModeDefault)
	if !res.IngressEnforced || res.EgressEnforced {
		t.Fatalf("enforcement ingress=%v egress=%v", res.IngressEnforced, res.EgressEnforced)
	}
	cases := []struct {
		peer  string
		proto uint8
		port  uint16
		want  string
	}{
		{"client", ProtoTCP, 80, "allow"},
		{"client", ProtoTCP, 81, "drop"},
		{"client", ProtoUDP, 80, "drop"},
		{"other", ProtoTCP, 80, "drop"}, // app=client, but in namespace "other"
		{"db", ProtoTCP, 80, "drop"},
	}
	for _, c := range cases {
		if v := verdict(res, Ingress, f.ids[c.peer], c.proto, c.port); v != c.want {
			t.Errorf("%s %s/%d: %s, want %s", c.peer, ProtoName(c.proto), c.port, v, c.want)
		}
	}
	if v := verdict(res, Egress, f.ids["db"], ProtoTCP, 5432); v != "allow" {
		t.Errorf("egress must stay open: %s", v)
	}
	// The policy does not select the client.
	if res := f.resolve(repo, "client", ModeDefault); res.IngressEnforced || len(res.Policies) != 0 {
		t.Errorf("client selected: %+v", res.Policies)
	}
	// A selector that names the namespace reaches across namespaces.
	repo2 := imp(t, cnp("default", "x", &api.Rule{
		EndpointSelector: sel("app", "web"),
		Ingress: []api.IngressRule{{FromEndpoints: []api.EndpointSelector{
			*sel("app", "client", "k8s:io.kubernetes.pod.namespace", "other")}}},
	}))
	res2 := f.resolve(repo2, "web", ModeDefault)
	if verdict(res2, Ingress, f.ids["other"], ProtoTCP, 1) != "allow" || verdict(res2, Ingress, f.ids["client"], ProtoTCP, 1) != "drop" {
		t.Errorf("namespace-qualified selector:\n%v", res2.State.Strings())
	}
}

func TestDenyWins(t *testing.T) {
	f := newFixture(t)
	repo := imp(t,
		cnp("default", "allow-all-client", &api.Rule{
			EndpointSelector: sel("app", "web"),
			Ingress:          []api.IngressRule{{FromEndpoints: []api.EndpointSelector{*sel("app", "client")}}},
		}),
		&api.Policy{Kind: api.KindCCNP, Name: "deny-80", Rules: []*api.Rule{{
			EndpointSelector: sel(),
			IngressDeny:      []api.IngressRule{{ToPorts: tcp(api.ProtoTCP, 80, 0)}},
		}}},
		cnp("default", "allow-db-any-l4", &api.Rule{
			EndpointSelector: sel("app", "web"),
			Ingress:          []api.IngressRule{{FromEntities: []api.Entity{api.EntityAll}, ToPorts: tcp(api.ProtoTCP, 80, 90)}},
		}),
	)
	res := f.resolve(repo, "web", ModeDefault)
	cases := []struct {
		peer string
		port uint16
		want string
	}{
		{"client", 80, "deny"},
		{"client", 81, "allow"},
		{"client", 443, "allow"},
		{"db", 80, "deny"},
		{"db", 85, "allow"},
		{"db", 443, "drop"},
	}
	for _, c := range cases {
		if v := verdict(res, Ingress, f.ids[c.peer], ProtoTCP, c.port); v != c.want {
			t.Errorf("%s tcp/%d: %s, want %s\n%v", c.peer, c.port, v, c.want, res.State.Strings())
		}
	}
	_, e, _ := res.State.Lookup(Ingress, f.ids["client"], ProtoTCP, 80)
	if len(e.Rules) != 1 || e.Rules[0] != "CiliumClusterwideNetworkPolicy//deny-80" {
		t.Errorf("deny entry names %v", e.Rules)
	}
}

func TestEntitiesAndCIDR(t *testing.T) {
	f := newFixture(t)
	c8 := f.cidr("10.0.0.0/8")
	c16 := f.cidr("10.1.0.0/16")
	c24 := f.cidr("10.2.3.0/24")
	repo := imp(t, cnp("default", "egress", &api.Rule{
		EndpointSelector: sel("app", "web"),
		Egress: []api.EgressRule{
			{ToCIDRSet: []api.CIDRRule{{CIDR: api.CIDR{Prefix: netip.MustParsePrefix("10.0.0.0/8")},
				Except: []api.CIDR{{Prefix: netip.MustParsePrefix("10.2.0.0/16")}}}}},
			{ToEntities: []api.Entity{api.EntityHost}},
			{ToEntities: []api.Entity{api.EntityCluster}, ToPorts: tcp(api.ProtoUDP, 53, 0)},
		},
	}))
	res := f.resolve(repo, "web", ModeDefault)
	cases := []struct {
		peer  identity.ID
		proto uint8
		port  uint16
		want  string
	}{
		{c8, ProtoTCP, 1, "allow"},
		{c16, ProtoTCP, 1, "allow"},
		{c24, ProtoTCP, 1, "drop"}, // inside the except
		{identity.World, ProtoTCP, 1, "drop"},
		{identity.Host, ProtoTCP, 22, "allow"},
		{f.ids["db"], ProtoUDP, 53, "allow"},
		{f.ids["db"], ProtoTCP, 53, "drop"},
		{identity.World, ProtoUDP, 53, "drop"},
	}
	for _, c := range cases {
		if v := verdict(res, Egress, c.peer, c.proto, c.port); v != c.want {
			t.Errorf("egress to %d %s/%d: %s, want %s", c.peer, ProtoName(c.proto), c.port, v, c.want)
		}
	}
	world := imp(t, cnp("default", "w", &api.Rule{EndpointSelector: sel("app", "web"),
		Egress: []api.EgressRule{{ToEntities: []api.Entity{api.EntityWorld}}}}))
	rw := f.resolve(world, "web", ModeDefault)
	if verdict(rw, Egress, identity.World, ProtoTCP, 1) != "allow" || verdict(rw, Egress, c24, ProtoTCP, 1) != "allow" ||
		verdict(rw, Egress, f.ids["db"], ProtoTCP, 1) != "drop" {
		t.Errorf("world entity:\n%v", rw.State.Strings())
	}
	if got := repo.Prefixes(); len(got) != 2 {
		t.Errorf("prefixes %v", got)
	}
}

func TestEmptyRuleIsDefaultDeny(t *testing.T) {
	f := newFixture(t)
	repo := imp(t, cnp("default", "lockdown", &api.Rule{EndpointSelector: sel("app", "web"), Ingress: []api.IngressRule{{}}}))
	res := f.resolve(repo, "web", ModeDefault)
	if !res.IngressEnforced || verdict(res, Ingress, f.ids["client"], ProtoTCP, 80) != "drop" {
		t.Errorf("ingress: [{}] must deny everything: %v", res.State.Strings())
	}
	localhost := repo.Resolve(mustGet(t, f, "web"), f.alloc.List(), Options{Mode: ModeDefault, AllowLocalhost: true})
	if verdict(localhost, Ingress, identity.Host, ProtoTCP, 8080) != "allow" {
		t.Error("allow-localhost")
	}
	if verdict(f.resolve(repo, "web", ModeNever), Ingress, f.ids["client"], ProtoTCP, 80) != "allow" {
		t.Error("never mode must allow")
	}
}

func mustGet(t *testing.T, f *fixture, name string) labels.Labels {
	id, ok := f.alloc.Get(f.ids[name])
	if !ok {
		t.Fatal(name)
	}
	return id.Labels
}

func TestKubernetesNetworkPolicy(t *testing.T) {
	f := newFixture(t)
	f.pod("api", "prod", "app=api")
	deny := &api.Policy{Kind: api.KindKNP, Namespace: "prod", Name: "deny-all",
		NetworkPolicy: &api.NetworkPolicySpec{PolicyTypes: []string{"Ingress"}}}
	allow := &api.Policy{Kind: api.KindKNP, Namespace: "prod", Name: "db-from-default",
		NetworkPolicy: &api.NetworkPolicySpec{
			PodSelector: *sel("app", "db"),
			PolicyTypes: []string{"Ingress"},
			Ingress: []api.NPIngressRule{{
				From: []api.NPPeer{
					{NamespaceSelector: sel(NamespaceNameLabel, "default"), PodSelector: sel("app", "client")},
					{PodSelector: sel("app", "api")},
				},
				Ports: []api.NPPort{{Port: 5432}, {Protocol: api.ProtoUDP, Port: 6000, EndPort: 6010}},
			}},
		}}
	repo := imp(t, deny, allow)
	res := f.resolve(repo, "db", ModeDefault)
	cases := []struct {
		peer  string
		proto uint8
		port  uint16
		want  string
	}{
		{"client", ProtoTCP, 5432, "allow"},
		{"client", ProtoUDP, 6005, "allow"},
		{"client", ProtoUDP, 6011, "drop"},
		{"client", ProtoTCP, 80, "drop"},
		{"other", ProtoTCP, 5432, "drop"}, // app=client in the wrong namespace
		{"api", ProtoTCP, 5432, "allow"},  // podSelector alone: same namespace
		{"web", ProtoTCP, 5432, "drop"},
	}
	for _, c := range cases {
		if v := verdict(res, Ingress, f.ids[c.peer], c.proto, c.port); v != c.want {
			t.Errorf("%s %s/%d: %s, want %s", c.peer, ProtoName(c.proto), c.port, v, c.want)
		}
	}
	if res.EgressEnforced {
		t.Error("policyTypes [Ingress] must leave egress open")
	}
	// deny-all selects api too (podSelector {}) but not pods of other namespaces.
	if r := f.resolve(repo, "api", ModeDefault); !r.IngressEnforced {
		t.Error("deny-all must select every pod in prod")
	}
	if r := f.resolve(repo, "web", ModeDefault); r.IngressEnforced {
		t.Error("deny-all must not select pods of other namespaces")
	}
}

func TestPortPrefixes(t *testing.T) {
	for _, c := range []struct {
		lo, hi uint16
		n      int
	}{{80, 80, 1}, {0, 65535, 1}, {8000, 8080, 3}, {1, 65535, 16}, {1024, 2047, 1}} {
		got := PortPrefixes(c.lo, c.hi)
		if len(got) != c.n {
			t.Errorf("%d-%d: %d blocks %v, want %d", c.lo, c.hi, len(got), got, c.n)
		}
		// The blocks cover exactly [lo, hi].
		next := uint32(c.lo)
		for _, b := range got {
			if b[0] != next {
				t.Fatalf("%d-%d: gap at %d: %v", c.lo, c.hi, next, got)
			}
			next = b[0] + 1<<(16-b[1])
		}
		if next != uint32(c.hi)+1 {
			t.Errorf("%d-%d: ends at %d", c.lo, c.hi, next-1)
		}
	}
}

// TestDenyPrecedenceProperty checks the invariant the datapath relies on:
// for random allow/deny rule sets, the most-specific-match lookup gives
// deny whenever any deny key matches, allow when only allows match.
func TestDenyPrecedenceProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ids := []identity.ID{0, 256, 257}
	protos := []uint8{0, ProtoTCP, ProtoUDP}
	randKey := func() Key {
		k := Key{Dir: Ingress, Identity: ids[rng.Intn(3)], Proto: protos[rng.Intn(3)]}
		if k.Proto != 0 && rng.Intn(2) == 0 {
			bits := uint8(12 + rng.Intn(5))
			k.PortBits = bits
			k.Port = uint16(rng.Intn(64)) &^ (uint16(1)<<(16-bits) - 1)
		}
		return k
	}
	for iter := 0; iter < 300; iter++ {
		m := MapState{}
		var raw []struct {
			k Key
			e Entry
		}
		for i := 0; i < 6; i++ {
			k, e := randKey(), Entry{Deny: rng.Intn(3) == 0, Rules: []string{"r"}}
			m.add(k, e)
			raw = append(raw, struct {
				k Key
				e Entry
			}{k, e})
		}
		m.resolveDenies()
		for _, id := range []identity.ID{256, 257, 300} {
			for _, p := range []uint8{ProtoTCP, ProtoUDP, ProtoSCTP} {
				for port := uint16(0); port < 64; port++ {
					pkt := Key{Dir: Ingress, Identity: id, Proto: p, Port: port, PortBits: 16}
					want := "drop"
					for _, r := range raw {
						if r.k.covers(pkt) {
							if r.e.Deny {
								want = "deny"
								break
							}
							want = "allow"
						}
					}
					got := verdict(&Resolved{State: m}, Ingress, id, p, port)
					if got != want {
						t.Fatalf("iteration %d, packet %v: got %s, want %s\nrules %v\nstate %v", iter, pkt, got, want, raw, m.Strings())
					}
				}
			}
		}
	}
}
