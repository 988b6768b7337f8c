package nettool

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// fakeDNS serves on loopback UDP: "web.test." has an A record, every other
// name under test. is NXDOMAIN, anything else is REFUSED.
func fakeDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		switch q := r.Question[0]; {
		case q.Name == "web.test." && q.Qtype == dns.TypeA:
			rr, _ := dns.NewRR("web.test. 5 IN A 10.96.0.100")
			m.Answer = append(m.Answer, rr)
		case dns.IsSubDomain("test.", q.Name):
			m.Rcode = dns.RcodeNameError
		default:
			m.Rcode = dns.RcodeRefused
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestDNS(t *testing.T) {
	addr := fakeDNS(t)
	code, out, errOut := run(t, "dns", "web.test", "--server", addr)
	wantCode(t, code, exitOK, out, errOut)
	wantContains(t, "stdout", out, "web.test.", "10.96.0.100")

	code, out, errOut = run(t, "dns", "nope.test", "--server", addr)
	wantCode(t, code, exitFailure, out, errOut)
	wantContains(t, "stderr", errOut, "NXDOMAIN")

	code, out, errOut = run(t, "dns", "example.com", "--server", addr, "--type", "aaaa")
	wantCode(t, code, exitFailure, out, errOut)
	wantContains(t, "stderr", errOut, "REFUSED")

	code, out, errOut = run(t, "dns", "web.test", "--server", addr, "--type", "BOGUS")
	wantCode(t, code, exitUsage, out, errOut)

	resolvConf = "/nonexistent"
	t.Cleanup(func() { resolvConf = "/etc/resolv.conf" })
	code, out, errOut = run(t, "dns", "web.test")
	wantCode(t, code, exitFailure, out, errOut)
	wantContains(t, "stderr", errOut, "no --server")
}
