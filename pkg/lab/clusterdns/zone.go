// Package clusterdns is the lab's cluster DNS: an authoritative server for
// the services of a lab under cluster.local, following the Kubernetes DNS
// specification for Services (A/AAAA for NAME.NAMESPACE.svc.ZONE, SRV for
// named ports). It is authoritative only: it has no upstream, never
// recurses and never forwards, so a query for a name outside its zone is
// REFUSED and no lab query ever reaches a real resolver.
//
// It does not import pkg/lab: the lab hands it services through a Source.
package clusterdns

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TTL of every answer, and of negative answers (the SOA minimum). Short:
// lab services come and go within seconds.
const TTL = 5

// Service is what the server knows of one service.
type Service struct {
	Name, Namespace string
	// IPs are its ClusterIPs.
	IPs   []netip.Addr
	Ports []Port
}

// Port is one service port; only named ports get SRV records.
type Port struct {
	Name     string
	Protocol string // TCP or UDP
	Port     uint16
}

// Zone is an immutable index of the records of one cluster domain.
type Zone struct {
	origin string              // "cluster.local."
	rrs    map[string][]dns.RR // owner name → records
	names  map[string]struct{} // every owner name and its ancestors in the zone
	soa    *dns.SOA
}

// NewZone builds the zone for domain (e.g. "cluster.local") from services.
func NewZone(domain string, services []Service) *Zone {
	origin := dns.CanonicalName(domain)
	z := &Zone{origin: origin, rrs: map[string][]dns.RR{}, names: map[string]struct{}{}}
	z.soa = &dns.SOA{
		Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: TTL},
		Ns:  "ns.dns." + origin, Mbox: "hostmaster." + origin,
		// The serial only has to grow when the data changes; the build
		// time does.
		Serial:  uint32(time.Now().Unix()),
		Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: TTL,
	}
	z.add(z.soa)
	for _, s := range services {
		owner := dns.CanonicalName(s.Name + "." + s.Namespace + ".svc." + origin)
		if _, ok := dns.IsDomainName(owner); !ok {
			continue
		}
		for _, ip := range s.IPs {
			hdr := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: TTL}
			if ip.Is4() {
				hdr.Rrtype = dns.TypeA
				z.add(&dns.A{Hdr: hdr, A: ip.AsSlice()})
			} else {
				hdr.Rrtype = dns.TypeAAAA
				z.add(&dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()})
			}
		}
		// Kubernetes DNS spec: for each named port, an SRV record at
		// _PORT._PROTO.NAME.NS.svc.ZONE pointing at the service's name.
		// The service's own name holds them all as well, as CoreDNS does.
		for _, p := range s.Ports {
			if p.Name == "" {
				continue
			}
			srv := func(name string) *dns.SRV {
				return &dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: TTL},
					Priority: 0, Weight: 100, Port: p.Port, Target: owner}
			}
			z.add(srv(dns.CanonicalName("_" + p.Name + "._" + strings.ToLower(p.Protocol) + "." + owner)))
			z.add(srv(owner))
		}
	}
	for name, rrs := range z.rrs {
		slices.SortFunc(rrs, func(a, b dns.RR) int {
			return cmp.Or(cmp.Compare(a.Header().Rrtype, b.Header().Rrtype), strings.Compare(a.String(), b.String()))
		})
		z.rrs[name] = slices.CompactFunc(rrs, func(a, b dns.RR) bool { return dns.IsDuplicate(a, b) })
	}
	return z
}

func (z *Zone) add(rr dns.RR) {
	name := rr.Header().Name
	z.rrs[name] = append(z.rrs[name], rr)
	// The owner and each of its ancestors down to the origin exist: a
	// query for one of those gets NODATA, not NXDOMAIN (RFC 8020).
	for n := name; dns.IsSubDomain(z.origin, n); {
		z.names[n] = struct{}{}
		i, end := dns.NextLabel(n, 0)
		if end {
			break
		}
		n = n[i:]
	}
}

// Origin is the zone's apex, e.g. "cluster.local.".
func (z *Zone) Origin() string { return z.origin }

// Answer builds the response to req. Names outside the zone are REFUSED:
// the server is authoritative for its zone only and never recurses.
func (z *Zone) Answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = false
	if req.Opcode != dns.OpcodeQuery {
		return m.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return m.SetRcode(req, dns.RcodeFormatError)
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	if (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) || !dns.IsSubDomain(z.origin, name) {
		return m.SetRcode(req, dns.RcodeRefused)
	}
	m.Authoritative = true
	for _, rr := range z.rrs[name] {
		if q.Qtype == dns.TypeANY || rr.Header().Rrtype == q.Qtype {
			c := dns.Copy(rr)
			// Answer with the name as asked (case preserved, RFC 4343).
			c.Header().Name = q.Name
			m.Answer = append(m.Answer, c)
		}
	}
	if len(m.Answer) > 0 {
		return m
	}
	if _, ok := z.names[name]; !ok {
		m.Rcode = dns.RcodeNameError
	}
	// Negative answers carry the SOA, whose minimum TTL bounds how long
	// resolvers cache them (RFC 2308).
	m.Ns = []dns.RR{dns.Copy(z.soa)}
	return m
}
