package api

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// This file parses the CiliumNetworkPolicy rule schema (spec/specs).

// Limits Cilium applies to one toPorts / icmps element.
const (
	maxPorts      = 40
	maxICMPFields = 40
)

func notSupported(fields ...string) map[string]string {
	m := map[string]string{}
	for _, f := range fields {
		m[f] = `field "` + f + `" is not supported yet`
	}
	return m
}

var (
	ruleFields      = []string{"endpointSelector", "nodeSelector", "ingress", "ingressDeny", "egress", "egressDeny", "description", "labels"}
	ruleUnsupported = notSupported("enableDefaultDeny", "log")

	ingressFields      = []string{"fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet", "toPorts", "icmps"}
	ingressUnsupported = notSupported("fromRequires", "fromGroups", "fromNodes", "authentication")

	egressFields      = []string{"toEndpoints", "toEntities", "toCIDR", "toCIDRSet", "toPorts", "icmps"}
	egressUnsupported = notSupported("toRequires", "toServices", "toFQDNs", "toGroups", "toNodes", "authentication")

	selectorFields    = []string{"matchLabels", "matchExpressions"}
	requirementFields = []string{"key", "operator", "values"}

	cidrRuleFields      = []string{"cidr", "except"}
	cidrRuleUnsupported = notSupported("cidrGroupRef", "cidrGroupSelector")

	portRuleFields      = []string{"ports", "rules"}
	portRuleUnsupported = notSupported("serverNames", "terminatingTLS", "originatingTLS", "listener")

	portFields      = []string{"port", "endPort", "protocol"}
	icmpRuleFields  = []string{"fields"}
	icmpFieldFields = []string{"type", "family"}
	labelFields     = []string{"key", "value", "source"}
)

// rule parses one CNP rule; nil if it had errors.
func (d *docParser) rule(n *yaml.Node, path string) *Rule {
	errs := len(d.errs)
	n = d.resolve(n)
	if n.Kind == yaml.SequenceNode && path == "spec" {
		d.errorf(n, path, "expected a mapping (one rule), got a list; use specs for a list of rules")
		return nil
	}
	f, ok := d.object(n, path, ruleFields, ruleUnsupported)
	if !ok {
		return nil
	}
	r := &Rule{}
	if v := f.val("endpointSelector"); v != nil && !isNull(d.resolve(v)) {
		r.EndpointSelector = d.selector(v, join(path, "endpointSelector"))
	}
	if v := f.val("nodeSelector"); v != nil && !isNull(d.resolve(v)) {
		r.NodeSelector = d.selector(v, join(path, "nodeSelector"))
	}
	switch {
	case r.EndpointSelector == nil && r.NodeSelector == nil && len(d.errs) == errs:
		d.errorf(n, path, "a rule needs one of endpointSelector or nodeSelector ({} selects all)")
	case r.EndpointSelector != nil && r.NodeSelector != nil:
		d.errorf(f.key("nodeSelector"), join(path, "nodeSelector"), "a rule cannot have both endpointSelector and nodeSelector")
	}

	for _, dir := range []struct {
		key  string
		dst  *[]IngressRule
		deny bool
	}{{"ingress", &r.Ingress, false}, {"ingressDeny", &r.IngressDeny, true}} {
		if !f.has(dir.key) {
			continue
		}
		r.HasIngress = true
		p := join(path, dir.key)
		items, _ := d.seq(f.val(dir.key), p)
		for i, item := range items {
			if ir, ok := d.ingressRule(item, index(p, i), dir.deny); ok {
				*dir.dst = append(*dir.dst, ir)
			}
		}
	}
	for _, dir := range []struct {
		key  string
		dst  *[]EgressRule
		deny bool
	}{{"egress", &r.Egress, false}, {"egressDeny", &r.EgressDeny, true}} {
		if !f.has(dir.key) {
			continue
		}
		r.HasEgress = true
		p := join(path, dir.key)
		items, _ := d.seq(f.val(dir.key), p)
		for i, item := range items {
			if er, ok := d.egressRule(item, index(p, i), dir.deny); ok {
				*dir.dst = append(*dir.dst, er)
			}
		}
	}

	if v := f.val("description"); v != nil {
		r.Description, _ = d.str(v, join(path, "description"))
	}
	if v := f.val("labels"); v != nil {
		r.Labels = d.ruleLabels(v, join(path, "labels"))
	}
	if len(d.errs) != errs {
		return nil
	}
	return r
}

// ruleLabels reads Cilium rule labels: strings ("source:key=value") or
// objects {key, value, source}, all stored as strings.
func (d *docParser) ruleLabels(n *yaml.Node, path string) []string {
	items, _ := d.seq(n, path)
	var out []string
	for i, item := range items {
		p := index(path, i)
		item = d.resolve(item)
		if item.Kind == yaml.ScalarNode {
			s, _ := d.str(item, p)
			if s == "" || strings.HasPrefix(s, "=") || strings.HasSuffix(s, ":") {
				d.errorf(item, p, "invalid label %q: empty key", s)
				continue
			}
			out = append(out, s)
			continue
		}
		f, ok := d.object(item, p, labelFields, nil)
		if !ok {
			continue
		}
		var key, value, source string
		if v := f.val("key"); v != nil {
			key, _ = d.str(v, join(p, "key"))
		}
		if v := f.val("value"); v != nil {
			value, _ = d.str(v, join(p, "value"))
		}
		if v := f.val("source"); v != nil {
			source, _ = d.str(v, join(p, "source"))
		}
		if key == "" {
			d.errorf(f.keyOr("key", item), join(p, "key"), "label key is required")
			continue
		}
		s := key
		if value != "" {
			s += "=" + value
		}
		if source != "" {
			s = source + ":" + s
		}
		out = append(out, s)
	}
	return out
}

func (d *docParser) ingressRule(n *yaml.Node, path string, deny bool) (IngressRule, bool) {
	var r IngressRule
	errs := len(d.errs)
	f, ok := d.object(n, path, ingressFields, ingressUnsupported)
	if !ok {
		return r, false
	}
	r.FromEndpoints = d.selectors(f.val("fromEndpoints"), join(path, "fromEndpoints"))
	r.FromEntities = d.entities(f.val("fromEntities"), join(path, "fromEntities"))
	r.FromCIDR = d.cidrs(f.val("fromCIDR"), join(path, "fromCIDR"))
	r.FromCIDRSet = d.cidrRules(f.val("fromCIDRSet"), join(path, "fromCIDRSet"))
	r.ToPorts = d.portRules(f.val("toPorts"), join(path, "toPorts"), deny)
	r.ICMPs = d.icmpRules(f.val("icmps"), join(path, "icmps"))
	if len(r.ICMPs) > 0 && len(r.ToPorts) > 0 {
		d.errorf(f.key("icmps"), join(path, "icmps"), "icmps and toPorts cannot be combined in one rule; use two rules")
	}
	return r, len(d.errs) == errs
}

func (d *docParser) egressRule(n *yaml.Node, path string, deny bool) (EgressRule, bool) {
	var r EgressRule
	errs := len(d.errs)
	f, ok := d.object(n, path, egressFields, egressUnsupported)
	if !ok {
		return r, false
	}
	r.ToEndpoints = d.selectors(f.val("toEndpoints"), join(path, "toEndpoints"))
	r.ToEntities = d.entities(f.val("toEntities"), join(path, "toEntities"))
	r.ToCIDR = d.cidrs(f.val("toCIDR"), join(path, "toCIDR"))
	r.ToCIDRSet = d.cidrRules(f.val("toCIDRSet"), join(path, "toCIDRSet"))
	r.ToPorts = d.portRules(f.val("toPorts"), join(path, "toPorts"), deny)
	r.ICMPs = d.icmpRules(f.val("icmps"), join(path, "icmps"))
	if len(r.ICMPs) > 0 && len(r.ToPorts) > 0 {
		d.errorf(f.key("icmps"), join(path, "icmps"), "icmps and toPorts cannot be combined in one rule; use two rules")
	}
	return r, len(d.errs) == errs
}

// selector parses a label selector. It never returns nil.
func (d *docParser) selector(n *yaml.Node, path string) *EndpointSelector {
	sel := &EndpointSelector{}
	f, ok := d.object(n, path, selectorFields, nil)
	if !ok {
		return sel
	}
	if v := f.val("matchLabels"); v != nil && !isNull(d.resolve(v)) {
		p := join(path, "matchLabels")
		m := d.resolve(v)
		if m.Kind != yaml.MappingNode {
			d.errorf(m, p, "expected a mapping of label keys to values, got %s", describe(m))
		} else {
			for _, e := range d.pairs(m, p) {
				key := e.key.Value
				val := d.resolve(e.val)
				if key == "" {
					d.errorf(e.key, p, "label key must not be empty")
					continue
				}
				if val.Kind != yaml.ScalarNode {
					d.errorf(val, join(p, key), "label value must be a string, got %s", describe(val))
					continue
				}
				if sel.MatchLabels == nil {
					sel.MatchLabels = map[string]string{}
				}
				sel.MatchLabels[key], _ = d.str(val, join(p, key))
			}
		}
	}
	if v := f.val("matchExpressions"); v != nil {
		p := join(path, "matchExpressions")
		items, _ := d.seq(v, p)
		for i, item := range items {
			if req, ok := d.requirement(item, index(p, i)); ok {
				sel.MatchExpressions = append(sel.MatchExpressions, req)
			}
		}
	}
	return sel
}

func (d *docParser) requirement(n *yaml.Node, path string) (Requirement, bool) {
	var req Requirement
	f, ok := d.object(n, path, requirementFields, nil)
	if !ok {
		return req, false
	}
	errs := len(d.errs)
	if v := f.val("key"); v != nil {
		req.Key, _ = d.str(v, join(path, "key"))
	}
	if req.Key == "" && len(d.errs) == errs && !f.unknown {
		d.errorf(f.keyOr("key", d.resolve(n)), join(path, "key"), "key is required")
	}
	var op string
	if v := f.val("operator"); v != nil {
		op, _ = d.str(v, join(path, "operator"))
	}
	req.Operator = Operator(op)
	opNode := f.keyOr("operator", d.resolve(n))
	if v := f.val("operator"); v != nil {
		opNode = d.resolve(v)
	}
	if v := f.val("values"); v != nil {
		req.Values, _ = d.strList(v, join(path, "values"))
	}
	switch {
	case f.unknown:
		// A misspelt key; do not guess at what is missing.
	case req.Operator == OpIn || req.Operator == OpNotIn:
		if len(req.Values) == 0 {
			d.errorf(opNode, join(path, "values"), "operator %s needs at least one value", op)
		}
	case req.Operator == OpExists || req.Operator == OpDoesNotExist:
		if len(req.Values) > 0 {
			d.errorf(f.keyOr("values", opNode), join(path, "values"), "operator %s takes no values", op)
		}
	case op == "":
		if d.missing(f, "operator") {
			d.errorf(opNode, join(path, "operator"), "operator is required (In, NotIn, Exists or DoesNotExist)")
		}
	default:
		d.errorf(opNode, join(path, "operator"), "unknown operator %q (accepted: In, NotIn, Exists, DoesNotExist)", op)
	}
	return req, len(d.errs) == errs
}

func (d *docParser) selectors(n *yaml.Node, path string) []EndpointSelector {
	items, _ := d.seq(n, path)
	var out []EndpointSelector
	for i, item := range items {
		out = append(out, *d.selector(item, index(path, i)))
	}
	return out
}

func (d *docParser) entities(n *yaml.Node, path string) []Entity {
	items, _ := d.seq(n, path)
	var out []Entity
	for i, item := range items {
		s, ok := d.str(item, index(path, i))
		if !ok {
			continue
		}
		if !isEntity(Entity(s)) {
			d.errorf(d.resolve(item), index(path, i), "unknown entity %q (accepted: %s)", s, entityList())
			continue
		}
		out = append(out, Entity(s))
	}
	return out
}

func isEntity(e Entity) bool {
	for _, x := range Entities {
		if x == e {
			return true
		}
	}
	return false
}

func entityList() string {
	var s []string
	for _, e := range Entities {
		s = append(s, string(e))
	}
	return strings.Join(s, ", ")
}

// cidr reads one CIDR string.
func (d *docParser) cidr(n *yaml.Node, path string) (CIDR, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return CIDR{}, false
	}
	p, err := parseCIDR(s)
	if err != nil {
		d.errorf(d.resolve(n), path, "%v", err)
		return CIDR{}, false
	}
	return CIDR{Prefix: p}, true
}

func (d *docParser) cidrs(n *yaml.Node, path string) []CIDR {
	items, _ := d.seq(n, path)
	var out []CIDR
	for i, item := range items {
		if c, ok := d.cidr(item, index(path, i)); ok {
			out = append(out, c)
		}
	}
	return out
}

func (d *docParser) cidrRules(n *yaml.Node, path string) []CIDRRule {
	items, _ := d.seq(n, path)
	var out []CIDRRule
	for i, item := range items {
		if r, ok := d.cidrRule(item, index(path, i), false); ok {
			out = append(out, r)
		}
	}
	return out
}

// cidrRule parses {cidr, except}. strict (NetworkPolicy ipBlock) requires
// each except to be strictly smaller than cidr.
func (d *docParser) cidrRule(n *yaml.Node, path string, strict bool) (CIDRRule, bool) {
	var r CIDRRule
	unsupported := cidrRuleUnsupported
	if strict {
		unsupported = nil
	}
	f, ok := d.object(n, path, cidrRuleFields, unsupported)
	if !ok {
		return r, false
	}
	v := f.val("cidr")
	if v == nil || isNull(d.resolve(v)) {
		if !f.unknown {
			d.errorf(f.keyOr("cidr", d.resolve(n)), join(path, "cidr"), "cidr is required")
		}
		return r, false
	}
	if r.CIDR, ok = d.cidr(v, join(path, "cidr")); !ok {
		return r, false
	}
	p := join(path, "except")
	items, ok := d.seq(f.val("except"), p)
	for i, item := range items {
		ex, eok := d.cidr(item, index(p, i))
		if !eok {
			ok = false
			continue
		}
		if err := checkExcept(r.CIDR.Prefix, ex.Prefix, strict); err != "" {
			d.errorf(d.resolve(item), index(p, i), "%s", err)
			ok = false
			continue
		}
		r.Except = append(r.Except, ex)
	}
	return r, ok
}

func checkExcept(cidr, except netip.Prefix, strict bool) string {
	inside := cidr.Addr().Is4() == except.Addr().Is4() && except.Bits() >= cidr.Bits() && cidr.Contains(except.Addr())
	if !inside {
		return "except " + except.String() + " is not inside cidr " + cidr.String()
	}
	if strict && except.Bits() == cidr.Bits() {
		return "except " + except.String() + " must be a strict subset of cidr " + cidr.String()
	}
	return ""
}

func (d *docParser) portRules(n *yaml.Node, path string, deny bool) []PortRule {
	items, _ := d.seq(n, path)
	var out []PortRule
	for i, item := range items {
		p := index(path, i)
		f, ok := d.object(item, p, portRuleFields, portRuleUnsupported)
		if !ok {
			continue
		}
		if k := f.key("rules"); k != nil {
			v := d.resolve(f.val("rules"))
			if !isNull(v) && !(v.Kind == yaml.MappingNode && len(v.Content) == 0) {
				d.errorf(k, join(p, "rules"), "L7 rules are not supported yet")
			}
		}
		var pr PortRule
		pp := join(p, "ports")
		ports, _ := d.seq(f.val("ports"), pp)
		if len(ports) > maxPorts {
			d.errorf(f.key("ports"), pp, "too many ports (%d, the maximum is %d)", len(ports), maxPorts)
			continue
		}
		for j, port := range ports {
			if pt, ok := d.portProtocol(port, index(pp, j)); ok {
				pr.Ports = append(pr.Ports, pt)
			}
		}
		out = append(out, pr)
	}
	return out
}

var ciliumProtocols = []Protocol{ProtoTCP, ProtoUDP, ProtoSCTP, ProtoICMP, ProtoAny}

func (d *docParser) portProtocol(n *yaml.Node, path string) (PortProtocol, bool) {
	var pp PortProtocol
	errs := len(d.errs)
	f, ok := d.object(n, path, portFields, nil)
	if !ok {
		return pp, false
	}
	pp.Port, pp.EndPort = d.portRange(f, path)
	pp.Protocol = ProtoAny
	if v := f.val("protocol"); v != nil {
		pp.Protocol = d.protocol(v, join(path, "protocol"), ciliumProtocols, ProtoAny)
	}
	return pp, len(d.errs) == errs
}

// portRange reads port and endPort of a port object and checks them.
func (d *docParser) portRange(f *fields, path string) (port, endPort uint16) {
	var portOK, endOK bool
	port, portOK = d.port(f.val("port"), join(path, "port"), true)
	endPort, endOK = d.port(f.val("endPort"), join(path, "endPort"), false)
	if !portOK || !endOK || endPort == 0 {
		return port, endPort
	}
	endNode := d.resolve(f.val("endPort"))
	switch {
	case port == 0:
		d.errorf(endNode, join(path, "endPort"), "endPort %d requires a non-zero port", endPort)
	case endPort < port:
		d.errorf(endNode, join(path, "endPort"), "endPort %d is less than port %d", endPort, port)
	}
	return port, endPort
}

// port reads a port number: an integer or a numeric string. A missing,
// null or empty value is 0. named says whether a name would be a (not
// supported) named port rather than plain garbage.
func (d *docParser) port(n *yaml.Node, path string, named bool) (uint16, bool) {
	if n == nil {
		return 0, true
	}
	n = d.resolve(n)
	what := path[strings.LastIndexByte(path, '.')+1:]
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a port number, got %s", describe(n))
		return 0, false
	}
	var v int64
	switch n.ShortTag() {
	case "!!null":
		return 0, true
	case "!!int":
		if err := n.Decode(&v); err != nil {
			d.errorf(n, path, "%s %s is out of range (0-65535)", what, n.Value)
			return 0, false
		}
	case "!!str":
		s := n.Value
		if s == "" {
			return 0, true
		}
		if !allDigits(s) {
			if named && hasLetter(s) {
				d.errorf(n, path, "named ports are not supported (%s %q); use a port number", what, s)
			} else {
				d.errorf(n, path, "invalid %s %q: expected a number", what, s)
			}
			return 0, false
		}
		if len(s) > 6 {
			d.errorf(n, path, "%s %s is out of range (0-65535)", what, s)
			return 0, false
		}
		for _, c := range s {
			v = v*10 + int64(c-'0')
		}
	default:
		d.errorf(n, path, "%s must be an integer, got %s", what, describe(n))
		return 0, false
	}
	if v < 0 || v > 65535 {
		d.errorf(n, path, "%s %d is out of range (0-65535)", what, v)
		return 0, false
	}
	return uint16(v), true
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func hasLetter(s string) bool {
	for _, c := range s {
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			return true
		}
	}
	return false
}

// protocol reads a protocol name, case-insensitively, from accepted.
func (d *docParser) protocol(n *yaml.Node, path string, accepted []Protocol, def Protocol) Protocol {
	s, ok := d.str(n, path)
	if !ok {
		return def
	}
	if s == "" {
		return def
	}
	p := Protocol(strings.ToUpper(s))
	for _, a := range accepted {
		if p == a {
			return p
		}
	}
	var names []string
	for _, a := range accepted {
		names = append(names, string(a))
	}
	d.errorf(d.resolve(n), path, "invalid protocol %q (accepted: %s)", s, strings.Join(names, ", "))
	return def
}

func (d *docParser) icmpRules(n *yaml.Node, path string) []ICMPRule {
	items, _ := d.seq(n, path)
	var out []ICMPRule
	for i, item := range items {
		p := index(path, i)
		f, ok := d.object(item, p, icmpRuleFields, nil)
		if !ok {
			continue
		}
		var r ICMPRule
		fp := join(p, "fields")
		fs, _ := d.seq(f.val("fields"), fp)
		if len(fs) > maxICMPFields {
			d.errorf(f.key("fields"), fp, "too many ICMP types (%d, the maximum is %d)", len(fs), maxICMPFields)
			continue
		}
		for j, field := range fs {
			if ff, ok := d.icmpField(field, index(fp, j)); ok {
				r.Fields = append(r.Fields, ff)
			}
		}
		out = append(out, r)
	}
	return out
}

// ICMP type names accepted in icmps.fields.type, per family.
var (
	icmpv4Types = map[string]uint8{
		"EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "EchoRequest": 8,
		"RouterAdvertisement": 9, "RouterSolicitation": 10, "TimeExceeded": 11,
		"ParameterProblem": 12, "Timestamp": 13, "TimestampReply": 14,
	}
	icmpv6Types = map[string]uint8{
		"DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3, "ParameterProblem": 4,
		"EchoRequest": 128, "EchoReply": 129, "RouterSolicitation": 133, "RouterAdvertisement": 134,
		"NeighborSolicitation": 135, "NeighborAdvertisement": 136, "RedirectMessage": 137,
	}
)

func (d *docParser) icmpField(n *yaml.Node, path string) (ICMPField, bool) {
	var ff ICMPField
	errs := len(d.errs)
	f, ok := d.object(n, path, icmpFieldFields, nil)
	if !ok {
		return ff, false
	}
	ff.Family = "IPv4"
	names := icmpv4Types
	if v := f.val("family"); v != nil {
		s, ok := d.str(v, join(path, "family"))
		switch {
		case !ok:
		case s == "" || strings.EqualFold(s, "IPv4"):
		case strings.EqualFold(s, "IPv6"):
			ff.Family, names = "IPv6", icmpv6Types
		default:
			d.errorf(d.resolve(v), join(path, "family"), "invalid family %q (accepted: IPv4, IPv6)", s)
		}
	}
	v := f.val("type")
	tn := d.resolve(v)
	tp := join(path, "type")
	switch {
	case v == nil || isNull(tn):
		if !f.unknown {
			d.errorf(f.keyOr("type", d.resolve(n)), tp, "type is required")
		}
	case tn.Kind != yaml.ScalarNode:
		d.errorf(tn, tp, "expected an ICMP type (0-255 or a name), got %s", describe(tn))
	case tn.ShortTag() == "!!int" || (tn.ShortTag() == "!!str" && allDigits(tn.Value)):
		var t int64
		if tn.ShortTag() == "!!int" {
			if err := tn.Decode(&t); err != nil {
				t = -1
			}
		} else if len(tn.Value) > 3 {
			t = 256
		} else {
			for _, c := range tn.Value {
				t = t*10 + int64(c-'0')
			}
		}
		if t < 0 || t > 255 {
			d.errorf(tn, tp, "ICMP type %s is out of range (0-255)", tn.Value)
		} else {
			ff.Type = uint8(t)
		}
	case tn.ShortTag() == "!!str":
		found := false
		for name, t := range names {
			if strings.EqualFold(name, tn.Value) {
				ff.Type, found = t, true
				break
			}
		}
		if !found {
			d.errorf(tn, tp, "unknown %s ICMP type %q (use a number 0-255 or one of: %s)", ff.Family, tn.Value, icmpNames(names))
		}
	default:
		d.errorf(tn, tp, "expected an ICMP type (0-255 or a name), got %s", describe(tn))
	}
	return ff, len(d.errs) == errs
}

func icmpNames(m map[string]uint8) string {
	var s []string
	for name := range m {
		s = append(s, name)
	}
	slices.SortFunc(s, func(a, b string) int { return cmp.Or(cmp.Compare(m[a], m[b]), cmp.Compare(a, b)) })
	return strings.Join(s, ", ")
}
