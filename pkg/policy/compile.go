package policy

import (
	"fmt"

	"github.com/seta-net/seta/pkg/policy/api"
)

// compilePolicy translates one policy into internal rules, applying the
// scoping rules of its kind.
func compilePolicy(p *api.Policy) ([]*rule, error) {
	switch p.Kind {
	case api.KindCNP, api.KindCCNP:
		var out []*rule
		for i, r := range p.Rules {
			ru, err := compileRule(p, r)
			if err != nil {
				return nil, fmt.Errorf("rule %d: %w", i, err)
			}
			out = append(out, ru)
		}
		return out, nil
	case api.KindKNP:
		if p.NetworkPolicy == nil {
			return nil, fmt.Errorf("NetworkPolicy without spec")
		}
		return []*rule{compileKNP(p)}, nil
	}
	return nil, fmt.Errorf("unknown kind %q", p.Kind)
}

// namespaced reports whether a policy's selectors are scoped to its
// namespace: CiliumNetworkPolicy and NetworkPolicy are, clusterwide ones not.
func namespaced(p *api.Policy) bool { return p.Kind != api.KindCCNP }

func compileRule(p *api.Policy, r *api.Rule) (*rule, error) {
	ru := &rule{
		policy:     p.Key(),
		hasIngress: len(r.Ingress)+len(r.IngressDeny) > 0,
		hasEgress:  len(r.Egress)+len(r.EgressDeny) > 0,
	}
	switch {
	case r.NodeSelector != nil:
		// Host policy: it selects nodes by their labels, in any namespace.
		ru.node = true
		ru.subject = compile(r.NodeSelector)
	case namespaced(p):
		// "A CiliumNetworkPolicy only selects endpoints in its namespace."
		ru.subject = compile(r.EndpointSelector, inNamespace(p.Namespace))
	default:
		ru.subject = compile(r.EndpointSelector)
	}
	for _, in := range r.Ingress {
		ru.ingress = append(ru.ingress, cnpPeerRule(p, in.FromEndpoints, in.FromEntities, in.FromCIDR, in.FromCIDRSet, in.ToPorts, in.ICMPs))
	}
	for _, in := range r.IngressDeny {
		ru.ingressDeny = append(ru.ingressDeny, cnpPeerRule(p, in.FromEndpoints, in.FromEntities, in.FromCIDR, in.FromCIDRSet, in.ToPorts, in.ICMPs))
	}
	for _, eg := range r.Egress {
		ru.egress = append(ru.egress, cnpPeerRule(p, eg.ToEndpoints, eg.ToEntities, eg.ToCIDR, eg.ToCIDRSet, eg.ToPorts, eg.ICMPs))
	}
	for _, eg := range r.EgressDeny {
		ru.egressDeny = append(ru.egressDeny, cnpPeerRule(p, eg.ToEndpoints, eg.ToEntities, eg.ToCIDR, eg.ToCIDRSet, eg.ToPorts, eg.ICMPs))
	}
	return ru, nil
}

// cnpPeerRule compiles one ingress/egress element. A rule with ports but no
// peer applies to every peer; an empty element ({}) selects nothing.
func cnpPeerRule(p *api.Policy, eps []api.EndpointSelector, ents []api.Entity, cidrs []api.CIDR,
	sets []api.CIDRRule, ports []api.PortRule, icmps []api.ICMPRule) peerRule {
	var pr peerRule
	for i := range eps {
		s := &eps[i]
		if namespaced(p) && !mentionsNamespace(s) && !selectsReservedAPI(s) {
			// Peers of a namespaced policy are in its namespace unless
			// the selector names a namespace itself.
			pr.peers.selectors = append(pr.peers.selectors, compile(s, inNamespace(p.Namespace)))
		} else {
			pr.peers.selectors = append(pr.peers.selectors, compile(s))
		}
	}
	pr.peers.entities = ents
	for _, c := range cidrs {
		pr.peers.cidrs = append(pr.peers.cidrs, api.CIDRRule{CIDR: c})
	}
	pr.peers.cidrs = append(pr.peers.cidrs, sets...)
	hasPeer := len(eps)+len(ents)+len(cidrs)+len(sets) > 0
	for _, r := range ports {
		for _, pp := range r.Ports {
			pr.ports = append(pr.ports, portL4(pp.Protocol, pp.Port, pp.EndPort)...)
		}
	}
	for _, r := range icmps {
		for _, f := range r.Fields {
			proto := ProtoICMP
			if f.Family == "IPv6" {
				proto = ProtoICMPv6
			}
			pr.ports = append(pr.ports, l4{proto: proto, lo: uint16(f.Type), hi: uint16(f.Type)})
		}
	}
	hasL4 := len(pr.ports) > 0
	if !hasPeer && hasL4 {
		pr.peers.any = true
	}
	return pr
}

func selectsReservedAPI(s *api.EndpointSelector) bool {
	return selectsReserved(compile(s))
}

// portL4 expands one port/protocol. ANY with a port means TCP, UDP and
// SCTP; a port of 0 means every port.
func portL4(proto api.Protocol, port, end uint16) []l4 {
	if end == 0 {
		end = port
	}
	one := func(p uint8) l4 {
		if port == 0 {
			return l4{proto: p, all: true}
		}
		return l4{proto: p, lo: port, hi: end}
	}
	switch proto {
	case api.ProtoTCP:
		return []l4{one(ProtoTCP)}
	case api.ProtoUDP:
		return []l4{one(ProtoUDP)}
	case api.ProtoSCTP:
		return []l4{one(ProtoSCTP)}
	case api.ProtoICMP:
		if port == 0 {
			return []l4{{proto: ProtoICMP, all: true}, {proto: ProtoICMPv6, all: true}}
		}
		return []l4{one(ProtoICMP)}
	}
	if port == 0 {
		return []l4{{any: true}}
	}
	return []l4{one(ProtoTCP), one(ProtoUDP), one(ProtoSCTP)}
}

// compileKNP translates a Kubernetes NetworkPolicy.
func compileKNP(p *api.Policy) *rule {
	np := p.NetworkPolicy
	ru := &rule{policy: p.Key(), subject: compile(&np.PodSelector, inNamespace(p.Namespace))}
	for _, t := range np.PolicyTypes {
		switch t {
		case "Ingress":
			ru.hasIngress = true
		case "Egress":
			ru.hasEgress = true
		}
	}
	if ru.hasIngress {
		for _, in := range np.Ingress {
			ru.ingress = append(ru.ingress, knpPeerRule(p, in.From, in.Ports))
		}
	}
	if ru.hasEgress {
		for _, eg := range np.Egress {
			ru.egress = append(ru.egress, knpPeerRule(p, eg.To, eg.Ports))
		}
	}
	return ru
}

// knpPeerRule follows the NetworkPolicy API: "If this field is empty or
// missing, this rule matches all sources"; ports likewise.
func knpPeerRule(p *api.Policy, peersIn []api.NPPeer, ports []api.NPPort) peerRule {
	var pr peerRule
	if len(peersIn) == 0 {
		pr.peers.any = true
	}
	for _, peer := range peersIn {
		switch {
		case peer.IPBlock != nil:
			pr.peers.cidrs = append(pr.peers.cidrs, *peer.IPBlock)
		case peer.NamespaceSelector != nil:
			// "selects particular Pods in the Namespaces selected by
			// NamespaceSelector" (all pods there without a podSelector).
			ns := namespaceSelector(peer.NamespaceSelector)
			pod := compile(peer.PodSelector)
			pr.peers.selectors = append(pr.peers.selectors, selector{reqs: append(append([]requirement{}, ns.reqs...), pod.reqs...)})
		case peer.PodSelector != nil:
			// "selects particular Pods in the same namespace as the
			// NetworkPolicy".
			pr.peers.selectors = append(pr.peers.selectors, compile(peer.PodSelector, inNamespace(p.Namespace)))
		}
	}
	for _, port := range ports {
		proto := port.Protocol
		if proto == "" {
			proto = api.ProtoTCP
		}
		pr.ports = append(pr.ports, portL4(proto, port.Port, port.EndPort)...)
	}
	return pr
}
