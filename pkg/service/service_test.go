package service

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

func TestParseL4Addr(t *testing.T) {
	good := map[string]string{
		"10.96.0.10:80":       "10.96.0.10:80/TCP",
		"10.96.0.10:53/udp":   "10.96.0.10:53/UDP",
		"[fd00::10]:443/TCP":  "[fd00::10]:443/TCP",
		"0.0.0.0:30080/tcp":   "0.0.0.0:30080/TCP",
		"[::]:30080":          "[::]:30080/TCP",
		"10.0.0.1:65535/UDP":  "10.0.0.1:65535/UDP",
		"192.168.1.5:1/TCP":   "192.168.1.5:1/TCP",
		"[fd00::1]:8080/Udp":  "[fd00::1]:8080/UDP",
		"10.96.0.10:0080/TCP": "10.96.0.10:80/TCP",
	}
	for in, want := range good {
		a, err := ParseL4Addr(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseL4Addr(%q) = %s, %v; want %s", in, a, err, want)
		}
	}
	bad := map[string]string{
		"10.96.0.10:0/TCP":     "port 0 is out of range",
		"10.96.0.10:65536/TCP": "port 65536 is out of range",
		"10.96.0.10:80/SCTP":   "SCTP is not supported",
		"10.96.0.10:80/ICMP":   "unknown protocol",
		"10.96.0.10:80/":       "protocol missing",
		"10.96.0.10/TCP":       "want IP:PORT",
		"fd00::10:80":          "want IP:PORT",
		"web:80":               "not an IP address",
		"10.96.0.10:http":      "not a number",
	}
	for in, want := range bad {
		if _, err := ParseL4Addr(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseL4Addr(%q): err = %v, want %q", in, err, want)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	if r, err := ParsePortRange("30000-32767"); err != nil || r != DefaultNodePortRange {
		t.Errorf("got %v %v", r, err)
	}
	for _, s := range []string{"", "30000", "0-10", "20-10", "1-70000", "a-b"} {
		if _, err := ParsePortRange(s); err == nil {
			t.Errorf("ParsePortRange(%q) accepted", s)
		}
	}
}

func TestNormalizeDefaults(t *testing.T) {
	n, err := Normalize(Service{Frontend: fe("10.96.0.10:80"), SessionAffinity: "clientip", Type: "clusterip"}, DefaultNodePortRange)
	if err != nil {
		t.Fatal(err)
	}
	if n.Type != ClusterIP || n.SessionAffinity != AffinityClientIP || n.SessionAffinityTimeout != DefaultAffinityTimeout ||
		n.ExternalTrafficPolicy != TrafficCluster || n.InternalTrafficPolicy != TrafficCluster || n.Algorithm != AlgorithmRandom ||
		n.Backends == nil {
		t.Errorf("normalized = %+v", n)
	}
}

func TestNormalizeRejects(t *testing.T) {
	v4 := fe("10.96.0.10:80/TCP")
	cases := []struct {
		name string
		svc  Service
		want string
	}{
		{"no frontend", Service{}, "frontend: required"},
		{"port 0", Service{Frontend: L4Addr{Addr: v4.Addr, Proto: lb.TCP}}, "port 0 is out of range"},
		{"sctp", Service{Frontend: L4Addr{Addr: v4.Addr, Port: 80, Proto: lb.SCTP}}, "SCTP is not supported"},
		{"clusterip unspecified", Service{Frontend: fe("0.0.0.0:80")}, "a ClusterIP service needs a specific address"},
		{"lb unspecified", Service{Frontend: fe("[::]:80"), Type: LoadBalancer}, "a LoadBalancer service needs a specific address"},
		{"multicast", Service{Frontend: fe("224.0.0.1:80")}, "multicast"},
		{"4in6", Service{Frontend: fe("[::ffff:10.0.0.1]:80")}, "use 10.0.0.1"},
		{"nodeport range", Service{Frontend: fe("0.0.0.0:80"), Type: NodePort}, "outside the node port range 30000-32767"},
		{"type", Service{Frontend: v4, Type: "Headless"}, "unknown service type"},
		{"family", Service{Frontend: v4, Backends: backends("[fd00::1]:80")}, "is IPv6 but the frontend 10.96.0.10:80/TCP is IPv4"},
		{"backend port 0", Service{Frontend: v4, Backends: backends("10.0.0.1:0")}, "backends[0] 10.0.0.1:0: port 0"},
		{"backend unspecified", Service{Frontend: v4, Backends: backends("0.0.0.0:80")}, "needs a specific address"},
		{"backend missing", Service{Frontend: v4, Backends: []Backend{{}}}, "backends[0]: address required"},
		{"duplicate backend", Service{Frontend: v4, Backends: backends("10.0.0.1:80", "10.0.0.1:80")}, "listed twice"},
		{"local and node", Service{Frontend: v4, Backends: []Backend{{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Local: true, NodeName: "n"}}}, "not both"},
		{"bad state", Service{Frontend: v4, Backends: []Backend{{Addr: netip.MustParseAddrPort("10.0.0.1:80"), State: 9}}}, "invalid state"},
		{"timeout range", Service{Frontend: v4, SessionAffinity: AffinityClientIP, SessionAffinityTimeout: 86401}, "1 to 86400 seconds"},
		{"timeout negative", Service{Frontend: v4, SessionAffinity: AffinityClientIP, SessionAffinityTimeout: -1}, "1 to 86400 seconds"},
		{"timeout without affinity", Service{Frontend: v4, SessionAffinityTimeout: 10}, "only with sessionAffinity ClientIP"},
		{"affinity", Service{Frontend: v4, SessionAffinity: "Cookie"}, "unknown session affinity"},
		{"etp on clusterip", Service{Frontend: v4, ExternalTrafficPolicy: TrafficLocal}, "a ClusterIP service does not get"},
		{"maglev on clusterip", Service{Frontend: v4, Algorithm: AlgorithmMaglev}, "algorithm maglev"},
		{"policy", Service{Frontend: v4, InternalTrafficPolicy: "Node"}, "unknown traffic policy"},
		{"algorithm", Service{Frontend: v4, Type: NodePort, Algorithm: "roundrobin"}, "unknown algorithm"},
		{"namespace only", Service{Frontend: v4, Namespace: "default"}, "without a name"},
		{"name slash", Service{Frontend: v4, Name: "a/b"}, `name "a/b"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Normalize(c.svc, DefaultNodePortRange)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}

	// Too many backends.
	many := Service{Frontend: v4}
	for i := range lb.MaxBackendsPerService + 1 {
		many.Backends = append(many.Backends, Backend{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 80)})
	}
	if _, err := Normalize(many, DefaultNodePortRange); err == nil || !strings.Contains(err.Error(), "too many") {
		t.Errorf("too many backends: %v", err)
	}

	// Every problem is reported at once.
	_, err := Normalize(Service{Frontend: v4, Type: "x", Algorithm: "y", Backends: backends("10.0.0.1:0")}, DefaultNodePortRange)
	for _, want := range []string{"unknown service type", "unknown algorithm", "port 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %q", err, want)
		}
	}
}

func TestServiceJSON(t *testing.T) {
	in := `{"name":"web","namespace":"default","frontend":"[fd00::10]:80/tcp","type":"NodePort",
		"backends":[{"addr":"[fd00::1]:8080","state":"terminating","nodeName":"n1"}],"algorithm":"maglev"}`
	var s Service
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.Frontend.String() != "[fd00::10]:80/TCP" || s.Backends[0].State != Terminating || s.Backends[0].NodeName != "n1" {
		t.Errorf("decoded %+v", s)
	}
	out, _ := json.Marshal(s)
	for _, want := range []string{`"frontend":"[fd00::10]:80/TCP"`, `"state":"terminating"`, `"addr":"[fd00::1]:8080"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("encoded %s lacks %s", out, want)
		}
	}
	for _, bad := range []string{`{"frontend":"10.0.0.1:80/SCTP"}`, `{"frontend":"x"}`, `{"frontend":"10.0.0.1:80","backends":[{"addr":"10.0.0.2:80","state":"gone"}]}`} {
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("decoded %s", bad)
		}
	}
}
