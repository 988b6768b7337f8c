package api

import (
	yaml "go.yaml.in/yaml/v3"
)

// This file parses the networking.k8s.io/v1 NetworkPolicy spec.

// Policy types of a NetworkPolicy.
const (
	PolicyTypeIngress = "Ingress"
	PolicyTypeEgress  = "Egress"
)

var (
	npSpecFields    = []string{"podSelector", "ingress", "egress", "policyTypes"}
	npIngressFields = []string{"from", "ports"}
	npEgressFields  = []string{"to", "ports"}
	npPeerFields    = []string{"podSelector", "namespaceSelector", "ipBlock"}
	npPortFields    = []string{"protocol", "port", "endPort"}
	npProtocols     = []Protocol{ProtoTCP, ProtoUDP, ProtoSCTP}
)

func (d *docParser) networkPolicySpec(n *yaml.Node, path string) *NetworkPolicySpec {
	f, ok := d.object(n, path, npSpecFields, nil)
	if !ok {
		return nil
	}
	spec := &NetworkPolicySpec{}
	if v := f.val("podSelector"); v != nil && !isNull(d.resolve(v)) {
		spec.PodSelector = *d.selector(v, join(path, "podSelector"))
	} else if !f.unknown {
		d.errorf(f.keyOr("podSelector", d.resolve(n)), join(path, "podSelector"), "podSelector is required ({} selects all pods of the namespace)")
	}

	p := join(path, "ingress")
	items, _ := d.seq(f.val("ingress"), p)
	for i, item := range items {
		ip := index(p, i)
		rf, ok := d.object(item, ip, npIngressFields, nil)
		if !ok {
			continue
		}
		spec.Ingress = append(spec.Ingress, NPIngressRule{
			From:  d.npPeers(rf.val("from"), join(ip, "from")),
			Ports: d.npPorts(rf.val("ports"), join(ip, "ports")),
		})
	}
	p = join(path, "egress")
	items, _ = d.seq(f.val("egress"), p)
	for i, item := range items {
		ep := index(p, i)
		rf, ok := d.object(item, ep, npEgressFields, nil)
		if !ok {
			continue
		}
		spec.Egress = append(spec.Egress, NPEgressRule{
			To:    d.npPeers(rf.val("to"), join(ep, "to")),
			Ports: d.npPorts(rf.val("ports"), join(ep, "ports")),
		})
	}

	p = join(path, "policyTypes")
	types, _ := d.seq(f.val("policyTypes"), p)
	for i, t := range types {
		s, ok := d.str(t, index(p, i))
		switch {
		case !ok:
		case s != PolicyTypeIngress && s != PolicyTypeEgress:
			d.errorf(d.resolve(t), index(p, i), "invalid policy type %q (accepted: Ingress, Egress)", s)
		case !contains(spec.PolicyTypes, s):
			spec.PolicyTypes = append(spec.PolicyTypes, s)
		}
	}
	if len(types) == 0 {
		// As the API server defaults it: Ingress always, Egress when
		// there are egress rules.
		spec.PolicyTypes = []string{PolicyTypeIngress}
		if len(spec.Egress) > 0 {
			spec.PolicyTypes = append(spec.PolicyTypes, PolicyTypeEgress)
		}
	}
	return spec
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func (d *docParser) npPeers(n *yaml.Node, path string) []NPPeer {
	items, _ := d.seq(n, path)
	var out []NPPeer
	for i, item := range items {
		p := index(path, i)
		f, ok := d.object(item, p, npPeerFields, nil)
		if !ok {
			continue
		}
		var peer NPPeer
		if v := f.val("podSelector"); v != nil && !isNull(d.resolve(v)) {
			peer.PodSelector = d.selector(v, join(p, "podSelector"))
		}
		if v := f.val("namespaceSelector"); v != nil && !isNull(d.resolve(v)) {
			peer.NamespaceSelector = d.selector(v, join(p, "namespaceSelector"))
		}
		if v := f.val("ipBlock"); v != nil && !isNull(d.resolve(v)) {
			if r, ok := d.cidrRule(v, join(p, "ipBlock"), true); ok {
				peer.IPBlock = &r
			}
			if peer.PodSelector != nil || peer.NamespaceSelector != nil {
				d.errorf(f.key("ipBlock"), join(p, "ipBlock"), "ipBlock cannot be combined with podSelector or namespaceSelector")
			}
		} else if peer.PodSelector == nil && peer.NamespaceSelector == nil && !f.unknown {
			d.errorf(d.resolve(item), p, "a peer needs podSelector, namespaceSelector or ipBlock")
		}
		out = append(out, peer)
	}
	return out
}

func (d *docParser) npPorts(n *yaml.Node, path string) []NPPort {
	items, _ := d.seq(n, path)
	var out []NPPort
	for i, item := range items {
		p := index(path, i)
		f, ok := d.object(item, p, npPortFields, nil)
		if !ok {
			continue
		}
		port := NPPort{Protocol: ProtoTCP}
		if v := f.val("protocol"); v != nil {
			port.Protocol = d.protocol(v, join(p, "protocol"), npProtocols, ProtoTCP)
		}
		port.Port, port.EndPort = d.portRange(f, p)
		out = append(out, port)
	}
	return out
}
