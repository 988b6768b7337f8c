package lab

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func testState() *State {
	st := &State{Name: "t"}
	for i := 1; i <= 2; i++ {
		st.Nodes = append(st.Nodes, newNode(st, i))
	}
	st.Pods = []*Pod{
		{Name: "web-1", Namespace: "default", Node: "node1", IPv4: "10.244.1.5", IPv6: "fd00:5e7a:0:1::5", Labels: []string{"app=web", "tier=fe"}},
		{Name: "web-2", Namespace: "default", Node: "node2", IPv4: "10.244.2.7", IPv6: "fd00:5e7a:0:2::7", Labels: []string{"app=web"}},
		{Name: "web-other-ns", Namespace: "prod", Node: "node1", IPv4: "10.244.1.9", IPv6: "fd00:5e7a:0:1::9", Labels: []string{"app=web"}},
		{Name: "client", Namespace: "default", Node: "node1", IPv4: "10.244.1.6", IPv6: "fd00:5e7a:0:1::6", Labels: []string{"app=client"}},
	}
	ensureDNSService(st)
	return st
}

func TestNewServiceAllocates(t *testing.T) {
	st := testState()
	a, err := newService(st, ServiceSpec{Name: "web", Namespace: "default", Port: 80, TargetPort: 8080, Selector: map[string]string{"app": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.ClusterIPs, ","); got != "10.96.0.100,fd00:5e7a:96::64" {
		t.Errorf("first ClusterIPs: %s", got)
	}
	if a.Type != TypeClusterIP || a.Ports[0] != (ServicePort{Protocol: "TCP", Port: 80, TargetPort: 8080}) {
		t.Errorf("service: %+v", a)
	}
	st.Services = append(st.Services, a)
	b, err := newService(st, ServiceSpec{Name: "np", Namespace: "default", Type: TypeNodePort, Port: 80, Protocol: "udp", Selector: map[string]string{"app": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	if b.ClusterIPs[0] != "10.96.0.101" || b.Ports[0].NodePort != MinNodePort || b.Ports[0].Protocol != "UDP" || b.Ports[0].TargetPort != 80 {
		t.Errorf("second service: %+v", b)
	}
	if b.ExternalTrafficPolicy != PolicyCluster {
		t.Errorf("NodePort default external traffic policy: %q", b.ExternalTrafficPolicy)
	}
	st.Services = append(st.Services, b)
	c, err := newService(st, ServiceSpec{Name: "np2", Namespace: "default", Type: TypeNodePort, Port: 80, Selector: map[string]string{"app": "web"}})
	if err != nil || c.Ports[0].NodePort != MinNodePort+1 {
		t.Errorf("next node port: %+v %v", c, err)
	}
	// A deleted service's addresses are reused.
	st.Services = st.Services[:1]
	d, err := newService(st, ServiceSpec{Name: "again", Namespace: "default", Port: 80, Selector: map[string]string{"app": "web"}})
	if err != nil || d.ClusterIPs[0] != "10.96.0.100" {
		t.Errorf("after delete: %+v %v", d, err)
	}
}

func TestNewServiceRejects(t *testing.T) {
	st := testState()
	st.Services = append(st.Services, &Service{Name: "taken", Namespace: "default", Type: TypeNodePort,
		Ports: []ServicePort{{Protocol: "TCP", Port: 80, TargetPort: 80, NodePort: 30080}}})
	sel := map[string]string{"app": "web"}
	for _, c := range []struct {
		name string
		sp   ServiceSpec
		want string
	}{
		{"exists", ServiceSpec{Name: "taken", Port: 80, Selector: sel}, "already exists"},
		{"the DNS service exists", ServiceSpec{Name: "kube-dns", Namespace: "kube-system", Port: 53, Selector: sel}, "already exists"},
		{"no port", ServiceSpec{Name: "a", Selector: sel}, "--port"},
		{"bad target port", ServiceSpec{Name: "a", Port: 80, TargetPort: 70000, Selector: sel}, "--target-port"},
		{"no selector", ServiceSpec{Name: "a", Port: 80}, "--selector"},
		{"bad protocol", ServiceSpec{Name: "a", Port: 80, Protocol: "SCTP", Selector: sel}, "protocol"},
		{"bad type", ServiceSpec{Name: "a", Port: 80, Type: "LoadBalancer", Selector: sel}, "service type"},
		{"node port without NodePort", ServiceSpec{Name: "a", Port: 80, NodePort: 30001, Selector: sel}, "--node-port needs"},
		{"external policy without NodePort", ServiceSpec{Name: "a", Port: 80, ExternalTrafficPolicy: "Local", Selector: sel}, "needs --type"},
		{"bad external policy", ServiceSpec{Name: "a", Type: TypeNodePort, Port: 80, ExternalTrafficPolicy: "Nearby", Selector: sel}, "external traffic policy"},
		{"node port out of range", ServiceSpec{Name: "a", Type: TypeNodePort, Port: 80, NodePort: 8080, Selector: sel}, "30000"},
		{"node port taken", ServiceSpec{Name: "a", Type: TypeNodePort, Port: 80, NodePort: 30080, Selector: sel}, "already used"},
		{"bad affinity", ServiceSpec{Name: "a", Port: 80, SessionAffinity: "Cookie", Selector: sel}, "session affinity"},
		{"maglev without NodePort", ServiceSpec{Name: "a", Port: 80, Algorithm: "maglev", Selector: sel}, "--algorithm maglev needs"},
		{"bad algorithm", ServiceSpec{Name: "a", Port: 80, Algorithm: "round-robin", Selector: sel}, "algorithm"},
		{"bad name", ServiceSpec{Name: "Web", Port: 80, Selector: sel}, "invalid service name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.sp.Namespace == "" {
				c.sp.Namespace = "default"
			}
			_, err := newService(st, c.sp)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestFrontends(t *testing.T) {
	st := testState()
	web, err := newService(st, ServiceSpec{Name: "web", Namespace: "default", Type: TypeNodePort, Port: 80, TargetPort: 8080,
		Selector: map[string]string{"app": "web"}, ExternalTrafficPolicy: PolicyLocal, SessionAffinity: AffinityClientIP})
	if err != nil {
		t.Fatal(err)
	}
	st.Services = append(st.Services, web)
	st.Pods[1].Terminating = true

	byAddr := map[string]Frontend{}
	for _, f := range Frontends(st) {
		byAddr[f.String()] = f
	}
	backends := func(f Frontend) string {
		var s []string
		for _, b := range f.Backends {
			v := b.Addr.String() + "@" + b.Node
			if b.Terminating {
				v += "(terminating)"
			}
			s = append(s, v)
		}
		return strings.Join(s, " ")
	}
	for _, c := range []struct{ frontend, typ, backends string }{
		// kube-dns: every node's gateway, both families, UDP and TCP.
		{"10.96.0.10:53/UDP", TypeClusterIP, "10.244.1.1:53@node1 10.244.2.1:53@node2"},
		{"10.96.0.10:53/TCP", TypeClusterIP, "10.244.1.1:53@node1 10.244.2.1:53@node2"},
		{"[fd00:5e7a:96::a]:53/UDP", TypeClusterIP, "[fd00:5e7a:0:1::1]:53@node1 [fd00:5e7a:0:2::1]:53@node2"},
		// web: the two default/app=web pods (not prod's), target port,
		// one terminating.
		{"10.96.0.100:80/TCP", TypeClusterIP, "10.244.1.5:8080@node1 10.244.2.7:8080@node2(terminating)"},
		{"[fd00:5e7a:96::64]:80/TCP", TypeClusterIP, "[fd00:5e7a:0:1::5]:8080@node1 [fd00:5e7a:0:2::7]:8080@node2(terminating)"},
		{"0.0.0.0:30000/TCP", TypeNodePort, "10.244.1.5:8080@node1 10.244.2.7:8080@node2(terminating)"},
		{"[::]:30000/TCP", TypeNodePort, "[fd00:5e7a:0:1::5]:8080@node1 [fd00:5e7a:0:2::7]:8080@node2(terminating)"},
	} {
		f, ok := byAddr[c.frontend]
		if !ok {
			t.Errorf("no frontend %s among %v", c.frontend, byAddr)
			continue
		}
		if f.Type != c.typ || backends(f) != c.backends {
			t.Errorf("%s: %s with %s, want %s with %s", c.frontend, f.Type, backends(f), c.typ, c.backends)
		}
	}
	if len(byAddr) != 8 {
		t.Errorf("%d frontends, want 8 (kube-dns 4, web 4)", len(byAddr))
	}
	if f := byAddr["10.96.0.10:53/UDP"]; f.InternalTrafficPolicy != PolicyLocal || f.Port != "dns" {
		t.Errorf("kube-dns: %+v", f)
	}
	if f := byAddr["0.0.0.0:30000/TCP"]; f.ExternalTrafficPolicy != PolicyLocal || f.SessionAffinity != AffinityClientIP {
		t.Errorf("web NodePort: %+v", f)
	}
}

func TestServiceAddr(t *testing.T) {
	for _, c := range []struct {
		p    string
		i    int
		want string
	}{
		{"10.96.0.0/16", 10, "10.96.0.10"},
		{"10.96.0.0/16", 300, "10.96.1.44"},
		{"fd00:5e7a:96::/112", 100, "fd00:5e7a:96::64"},
		{"fd00:5e7a:96::/112", 65534, "fd00:5e7a:96::fffe"},
	} {
		if got := serviceAddr(netip.MustParsePrefix(c.p), c.i); got.String() != c.want {
			t.Errorf("serviceAddr(%s, %d) = %s, want %s", c.p, c.i, got, c.want)
		}
	}
}

func TestResolvConf(t *testing.T) {
	want := "nameserver 10.96.0.10\nsearch prod.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	if got := resolvConf("prod"); got != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}
}

func TestPodNsswitch(t *testing.T) {
	host := "# comment\npasswd:         files systemd\nhosts:          files mdns4_minimal [NOTFOUND=return] resolve dns\nnetworks: files\n"
	want := "# comment\npasswd:         files systemd\nhosts:          files dns\nnetworks: files\n"
	if got := podNsswitch(host); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := podNsswitch("passwd: files\n"); got != "passwd: files\nhosts:          files dns\n" {
		t.Errorf("without a hosts line: %q", got)
	}
}

func TestDNSServicesFromState(t *testing.T) {
	st := testState()
	st.Services = append(st.Services, &Service{Name: "web", Namespace: "default", ClusterIPs: []string{"10.96.0.100", "fd00:5e7a:96::64"},
		Ports: []ServicePort{{Protocol: "TCP", Port: 80, TargetPort: 8080}}})
	b := mustJSON(t, st)
	svcs, err := dnsServices(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[1].Name != "web" || len(svcs[1].IPs) != 2 || svcs[0].Ports[0].Name != "dns" {
		t.Errorf("services: %+v", svcs)
	}
}

func TestParseCgroup2Mount(t *testing.T) {
	for _, c := range []struct{ name, mountinfo, want string }{
		{"hybrid", `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`, "/sys/fs/cgroup/unified"},
		{"pure v2 with optional fields", `30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
`, "/sys/fs/cgroup"},
		{"a bind mount of a subtree is skipped", `50 23 0:26 /some/pod /mnt/cg rw - cgroup2 cgroup2 rw
51 23 0:26 / /mnt/with\040space rw - cgroup2 cgroup2 rw
`, "/mnt/with space"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseCgroup2Mount(strings.NewReader(c.mountinfo))
			if err != nil || got != c.want {
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
	if _, err := parseCgroup2Mount(strings.NewReader("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")); err == nil {
		t.Error("no cgroup2: want an error")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
