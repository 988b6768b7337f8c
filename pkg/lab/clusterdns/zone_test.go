package clusterdns

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func testZone() *Zone {
	return NewZone("cluster.local", []Service{
		{Name: "web", Namespace: "default", IPs: []netip.Addr{netip.MustParseAddr("10.96.0.100"), netip.MustParseAddr("fd00:5e7a:96::64")}},
		{Name: "kube-dns", Namespace: "kube-system", IPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
			Ports: []Port{{Name: "dns", Protocol: "UDP", Port: 53}, {Name: "dns-tcp", Protocol: "TCP", Port: 53}}},
	})
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	return m
}

func TestZoneAnswer(t *testing.T) {
	z := testZone()
	for _, c := range []struct {
		name    string
		qname   string
		qtype   uint16
		rcode   int
		answers []string // the record data, in order
	}{
		{"A of a service", "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"10.96.0.100"}},
		{"AAAA of a service", "web.default.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00:5e7a:96::64"}},
		{"names are case-insensitive", "WEB.Default.SVC.cluster.LOCAL.", dns.TypeA, dns.RcodeSuccess, []string{"10.96.0.100"}},
		{"no AAAA: NODATA", "kube-dns.kube-system.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, nil},
		{"unknown service: NXDOMAIN", "nope.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil},
		{"unknown namespace: NXDOMAIN", "web.other.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil},
		{"search-list expansion: NXDOMAIN", "web.default.svc.cluster.local.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil},
		{"a namespace exists: NODATA", "default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, nil},
		{"SRV of a named port", "_dns._udp.kube-dns.kube-system.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"0 100 53 kube-dns.kube-system.svc.cluster.local."}},
		{"SRV of the service", "kube-dns.kube-system.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"0 100 53 kube-dns.kube-system.svc.cluster.local."}},
		{"SOA at the apex", "cluster.local.", dns.TypeSOA, dns.RcodeSuccess, []string{"ns.dns.cluster.local."}},
		{"outside the zone: REFUSED", "example.com.", dns.TypeA, dns.RcodeRefused, nil},
		{"a lookalike outside the zone: REFUSED", "web.default.svc.notcluster.local.", dns.TypeA, dns.RcodeRefused, nil},
		{"the root: REFUSED", ".", dns.TypeNS, dns.RcodeRefused, nil},
		{"reverse lookups: REFUSED", "100.0.96.10.in-addr.arpa.", dns.TypePTR, dns.RcodeRefused, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := z.Answer(query(c.qname, c.qtype))
			if m.Rcode != c.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[c.rcode])
			}
			if m.RecursionAvailable {
				t.Error("RA set: the server never recurses")
			}
			if len(m.Answer) != len(c.answers) {
				t.Fatalf("answers %v, want %v", m.Answer, c.answers)
			}
			for i, rr := range m.Answer {
				if !strings.Contains(rr.String(), c.answers[i]) {
					t.Errorf("answer %d: %s, want %s", i, rr, c.answers[i])
				}
				if rr.Header().Name != c.qname {
					t.Errorf("owner %s, want the name as asked %s", rr.Header().Name, c.qname)
				}
			}
			inZone := c.rcode != dns.RcodeRefused
			if m.Authoritative != inZone {
				t.Errorf("AA=%v for %s", m.Authoritative, c.qname)
			}
			if inZone && len(m.Answer) == 0 && (len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Errorf("negative answer without the SOA: %v", m.Ns)
			}
		})
	}
}

func TestZoneRejectsOtherOpcodesAndClasses(t *testing.T) {
	z := testZone()
	m := query("web.default.svc.cluster.local.", dns.TypeA)
	m.Opcode = dns.OpcodeUpdate
	if r := z.Answer(m); r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("UPDATE: %s", dns.RcodeToString[r.Rcode])
	}
	m = query("web.default.svc.cluster.local.", dns.TypeA)
	m.Question[0].Qclass = dns.ClassCHAOS
	if r := z.Answer(m); r.Rcode != dns.RcodeRefused {
		t.Errorf("CHAOS: %s", dns.RcodeToString[r.Rcode])
	}
}

// TestServe runs the server on loopback over UDP and TCP, and checks that
// it follows changes of its source file.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "services")
	write := func(s string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	// The test's file format: one "name namespace ip" per line.
	parse := func(b []byte) ([]Service, error) {
		var out []Service
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(l)
			if len(f) == 3 {
				out = append(out, Service{Name: f[0], Namespace: f[1], IPs: []netip.Addr{netip.MustParseAddr(f[2])}})
			}
		}
		return out, nil
	}
	write("web default 10.96.0.100\n")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &Handler{Source: FileSource("cluster.local", path, parse, log), Log: log}

	// A free port on loopback for both protocols.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, port, h, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Skipf("cannot listen on port %d: %v", port, err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	ask := func(netw, name string) *dns.Msg {
		t.Helper()
		c := &dns.Client{Net: netw, Timeout: 2 * time.Second}
		r, _, err := c.Exchange(query(name, dns.TypeA), net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("%s query %s: %v", netw, name, err)
		}
		return r
	}
	for _, netw := range []string{"udp", "tcp"} {
		r := ask(netw, "web.default.svc.cluster.local.")
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "10.96.0.100") {
			t.Errorf("%s: %v", netw, r)
		}
	}
	if r := ask("udp", "example.com."); r.Rcode != dns.RcodeRefused {
		t.Errorf("outside the zone: %s", dns.RcodeToString[r.Rcode])
	}
	write("web default 10.96.0.100\ndb prod 10.96.0.101\n")
	if r := ask("udp", "db.prod.svc.cluster.local."); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("after the file changed: %v", r)
	}
	write("")
	if r := ask("udp", "web.default.svc.cluster.local."); r.Rcode != dns.RcodeNameError {
		t.Errorf("after the service went: %v", r)
	}
}
