package nettool

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// resolvConf is read for the default DNS server.
var resolvConf = "/etc/resolv.conf"

func runDNS(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("dns", "dns NAME [--server ADDR] [--type T] [--tcp] [--timeout D]",
		`Send one DNS query for NAME (taken as absolute: no search list) and print
the answer records, one per line. Succeeds on NOERROR (also with no
records); fails on any other response code, which it names on stderr
(NXDOMAIN, REFUSED, SERVFAIL, ...), and on no answer at all.`, stdout, stderr)
	server := c.fs.String("server", "", "server `host[:port]` (default: the first nameserver of /etc/resolv.conf)")
	qtype := c.fs.String("type", "A", "query type: A, AAAA, SRV, SOA, ANY, ...")
	tcp := c.fs.Bool("tcp", false, "query over TCP instead of UDP")
	timeout := c.fs.Duration("timeout", 2*time.Second, "limit for the query")
	pos, code, done := c.parse(args, 1, "NAME")
	if done {
		return code
	}
	name := dns.Fqdn(pos[0])
	if _, ok := dns.IsDomainName(name); !ok {
		return c.usageError("invalid name %q", pos[0])
	}
	t, ok := dns.StringToType[strings.ToUpper(*qtype)]
	if !ok {
		return c.usageError("unknown query type %q", *qtype)
	}
	if err := checkDuration("timeout", *timeout, time.Millisecond, maxTimeout); err != nil {
		return c.usageError("%v", err)
	}
	addr := *server
	if addr == "" {
		cfg, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil || len(cfg.Servers) == 0 {
			return c.fail("no --server given and no nameserver in %s", resolvConf)
		}
		addr = cfg.Servers[0]
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "53")
	}
	netw := "udp"
	if *tcp {
		netw = "tcp"
	}
	q := new(dns.Msg).SetQuestion(name, t)
	cl := &dns.Client{Net: netw, Timeout: *timeout}
	r, _, err := cl.ExchangeContext(ctx, q, addr)
	if err != nil {
		if ctx.Err() != nil {
			return c.fail("%s %s from %s: %s", name, dns.TypeToString[t], addr, interrupted(ctx))
		}
		if isTimeout(err) {
			return c.fail("%s %s: no answer from %s within %v", name, dns.TypeToString[t], addr, *timeout)
		}
		return c.fail("%s %s from %s: %v", name, dns.TypeToString[t], addr, cause(err))
	}
	if r.Rcode != dns.RcodeSuccess {
		return c.fail("%s %s: %s from %s", name, dns.TypeToString[t], dns.RcodeToString[r.Rcode], addr)
	}
	for _, rr := range r.Answer {
		fmt.Fprintln(stdout, rr.String())
	}
	return exitOK
}
