package api

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// FuzzParse checks that Parse never panics, that failures are all
// *ParseError and return no policies, and that what it accepts is valid.
func FuzzParse(f *testing.F) {
	for _, tc := range validCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range errorCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pols, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if pols != nil {
				t.Fatalf("policies returned with error %v", err)
			}
			checkErrors(t, err)
			return
		}
		if len(pols) == 0 {
			t.Fatal("no policies and no error")
		}
		keys := map[string]bool{}
		for _, p := range pols {
			checkPolicy(t, p)
			if keys[p.Key()] {
				t.Fatalf("duplicate policy %s", p.Key())
			}
			keys[p.Key()] = true
		}
	})
}

func checkErrors(t *testing.T, err error) {
	t.Helper()
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T is not a join", err)
	}
	errs := j.Unwrap()
	if len(errs) == 0 || len(errs) > maxErrors+1 {
		t.Fatalf("%d errors", len(errs))
	}
	for _, e := range errs {
		var pe *ParseError
		if !errors.As(e, &pe) {
			t.Fatalf("error %v (%T) is not a *ParseError", e, e)
		}
		if pe.Msg == "" || pe.Error() == "" {
			t.Fatalf("empty error message: %#v", pe)
		}
	}
}

func checkPolicy(t *testing.T, p *Policy) {
	t.Helper()
	if p.Name == "" || !isDNS1123Subdomain(p.Name) {
		t.Fatalf("bad name %q", p.Name)
	}
	if p.Source == "" {
		t.Fatalf("%s: no source", p.Key())
	}
	switch p.Kind {
	case KindCNP, KindCCNP:
		if len(p.Rules) == 0 {
			t.Fatalf("%s: no rules", p.Key())
		}
		if p.NetworkPolicy != nil {
			t.Fatalf("%s: NetworkPolicy set", p.Key())
		}
		if (p.Kind == KindCCNP) != (p.Namespace == "") {
			t.Fatalf("%s: namespace %q", p.Key(), p.Namespace)
		}
		for _, r := range p.Rules {
			checkRule(t, p, r)
		}
	case KindKNP:
		if p.NetworkPolicy == nil || len(p.Rules) != 0 || p.Namespace == "" {
			t.Fatalf("%s: bad NetworkPolicy %+v", p.Key(), p)
		}
		np := p.NetworkPolicy
		if len(np.PolicyTypes) == 0 {
			t.Fatalf("%s: no policy types", p.Key())
		}
		for _, pt := range np.PolicyTypes {
			if pt != PolicyTypeIngress && pt != PolicyTypeEgress {
				t.Fatalf("%s: policy type %q", p.Key(), pt)
			}
		}
		checkSelector(t, p, &np.PodSelector)
		var peers []NPPeer
		var ports []NPPort
		for _, r := range np.Ingress {
			peers, ports = append(peers, r.From...), append(ports, r.Ports...)
		}
		for _, r := range np.Egress {
			peers, ports = append(peers, r.To...), append(ports, r.Ports...)
		}
		for _, peer := range peers {
			switch {
			case peer.IPBlock != nil:
				if peer.PodSelector != nil || peer.NamespaceSelector != nil {
					t.Fatalf("%s: ipBlock with selectors", p.Key())
				}
				checkCIDRRule(t, p, *peer.IPBlock)
			case peer.PodSelector == nil && peer.NamespaceSelector == nil:
				t.Fatalf("%s: empty peer", p.Key())
			}
			checkSelector(t, p, peer.PodSelector)
			checkSelector(t, p, peer.NamespaceSelector)
		}
		for _, port := range ports {
			if !slices.Contains(npProtocols, port.Protocol) {
				t.Fatalf("%s: protocol %q", p.Key(), port.Protocol)
			}
			checkPortRange(t, p, port.Port, port.EndPort)
		}
	default:
		t.Fatalf("bad kind %q", p.Kind)
	}
}

func checkRule(t *testing.T, p *Policy, r *Rule) {
	t.Helper()
	if (r.EndpointSelector == nil) == (r.NodeSelector == nil) {
		t.Fatalf("%s: rule needs exactly one selector", p.Key())
	}
	checkSelector(t, p, r.EndpointSelector)
	checkSelector(t, p, r.NodeSelector)
	if (len(r.Ingress) > 0 || len(r.IngressDeny) > 0) && !r.HasIngress {
		t.Fatalf("%s: ingress rules without HasIngress", p.Key())
	}
	if (len(r.Egress) > 0 || len(r.EgressDeny) > 0) && !r.HasEgress {
		t.Fatalf("%s: egress rules without HasEgress", p.Key())
	}
	var (
		sels    []EndpointSelector
		ents    []Entity
		cs      []CIDR
		sets    []CIDRRule
		portRls []PortRule
		icmps   []ICMPRule
	)
	for _, ir := range append(slices.Clone(r.Ingress), r.IngressDeny...) {
		sels, ents, cs, sets = append(sels, ir.FromEndpoints...), append(ents, ir.FromEntities...), append(cs, ir.FromCIDR...), append(sets, ir.FromCIDRSet...)
		portRls, icmps = append(portRls, ir.ToPorts...), append(icmps, ir.ICMPs...)
	}
	for _, er := range append(slices.Clone(r.Egress), r.EgressDeny...) {
		sels, ents, cs, sets = append(sels, er.ToEndpoints...), append(ents, er.ToEntities...), append(cs, er.ToCIDR...), append(sets, er.ToCIDRSet...)
		portRls, icmps = append(portRls, er.ToPorts...), append(icmps, er.ICMPs...)
	}
	for i := range sels {
		checkSelector(t, p, &sels[i])
	}
	for _, e := range ents {
		if !slices.Contains(Entities, e) {
			t.Fatalf("%s: entity %q", p.Key(), e)
		}
	}
	for _, c := range cs {
		checkPrefix(t, p, c.Prefix)
	}
	for _, s := range sets {
		checkCIDRRule(t, p, s)
	}
	for _, pr := range portRls {
		if len(pr.Ports) > maxPorts {
			t.Fatalf("%s: %d ports", p.Key(), len(pr.Ports))
		}
		for _, pp := range pr.Ports {
			if !slices.Contains(ciliumProtocols, pp.Protocol) {
				t.Fatalf("%s: protocol %q", p.Key(), pp.Protocol)
			}
			checkPortRange(t, p, pp.Port, pp.EndPort)
		}
	}
	for _, ic := range icmps {
		for _, f := range ic.Fields {
			if f.Family != "IPv4" && f.Family != "IPv6" {
				t.Fatalf("%s: ICMP family %q", p.Key(), f.Family)
			}
		}
	}
	for _, l := range r.Labels {
		if l == "" {
			t.Fatalf("%s: empty label", p.Key())
		}
	}
}

func checkSelector(t *testing.T, p *Policy, s *EndpointSelector) {
	t.Helper()
	if s == nil {
		return
	}
	for k := range s.MatchLabels {
		if k == "" {
			t.Fatalf("%s: empty label key", p.Key())
		}
	}
	for _, req := range s.MatchExpressions {
		if req.Key == "" {
			t.Fatalf("%s: empty requirement key", p.Key())
		}
		switch req.Operator {
		case OpIn, OpNotIn:
			if len(req.Values) == 0 {
				t.Fatalf("%s: %s without values", p.Key(), req.Operator)
			}
		case OpExists, OpDoesNotExist:
			if len(req.Values) != 0 {
				t.Fatalf("%s: %s with values", p.Key(), req.Operator)
			}
		default:
			t.Fatalf("%s: operator %q", p.Key(), req.Operator)
		}
	}
}

func checkPrefix(t *testing.T, p *Policy, pfx netip.Prefix) {
	t.Helper()
	if !pfx.IsValid() || pfx != pfx.Masked() || pfx.Addr().Zone() != "" {
		t.Fatalf("%s: bad prefix %v", p.Key(), pfx)
	}
}

func checkCIDRRule(t *testing.T, p *Policy, r CIDRRule) {
	t.Helper()
	checkPrefix(t, p, r.CIDR.Prefix)
	for _, ex := range r.Except {
		checkPrefix(t, p, ex.Prefix)
		if ex.Prefix.Addr().Is4() != r.CIDR.Prefix.Addr().Is4() || ex.Prefix.Bits() < r.CIDR.Prefix.Bits() || !r.CIDR.Prefix.Contains(ex.Prefix.Addr()) {
			t.Fatalf("%s: except %v outside %v", p.Key(), ex, r.CIDR)
		}
	}
}

func checkPortRange(t *testing.T, p *Policy, port, end uint16) {
	t.Helper()
	if end != 0 && (port == 0 || end < port) {
		t.Fatalf("%s: bad port range %d-%d", p.Key(), port, end)
	}
}
