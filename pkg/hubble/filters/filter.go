package filters

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// matchFunc reports whether a flow satisfies one field of a filter.
type matchFunc func(fl *flowpb.Flow) bool

// Filter is one compiled FlowFilter: every field that is set must match
// (AND); within a repeated field any value may match (OR).
type Filter struct {
	matchers []matchFunc
}

// supportedFields lists the FlowFilter fields (by proto name) Compile knows.
var supportedFields = map[protoreflect.Name]bool{
	"source_pod":           true,
	"destination_pod":      true,
	"source_ip":            true,
	"destination_ip":       true,
	"source_label":         true,
	"destination_label":    true,
	"verdict":              true,
	"event_type":           true,
	"protocol":             true,
	"source_port":          true,
	"destination_port":     true,
	"tcp_flags":            true,
	"source_identity":      true,
	"destination_identity": true,
	"node_name":            true,
	"traffic_direction":    true,
	"reply":                true,
}

// Compile validates f and turns it into a Filter. An empty FlowFilter
// matches every flow.
func Compile(f *flowpb.FlowFilter) (*Filter, error) {
	if f == nil {
		return nil, errors.New("nil flow filter")
	}
	var unsupported []string
	f.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !supportedFields[fd.Name()] {
			unsupported = append(unsupported, string(fd.Name()))
		}
		return true
	})
	if len(unsupported) > 0 {
		slices.Sort(unsupported) // Range order is unspecified
		return nil, fmt.Errorf("unsupported filter field(s): %s", strings.Join(unsupported, ", "))
	}

	var ms []matchFunc
	add := func(m matchFunc, err error) error {
		if err != nil {
			return err
		}
		if m != nil {
			ms = append(ms, m)
		}
		return nil
	}
	src := (*flowpb.Flow).GetSource
	dst := (*flowpb.Flow).GetDestination
	srcIP := func(fl *flowpb.Flow) string { return fl.GetIP().GetSource() }
	dstIP := func(fl *flowpb.Flow) string { return fl.GetIP().GetDestination() }

	for _, err := range []error{
		add(podFilter("source_pod", f.GetSourcePod(), src)),
		add(podFilter("destination_pod", f.GetDestinationPod(), dst)),
		add(ipFilter("source_ip", f.GetSourceIp(), srcIP)),
		add(ipFilter("destination_ip", f.GetDestinationIp(), dstIP)),
		add(labelFilter("source_label", f.GetSourceLabel(), src)),
		add(labelFilter("destination_label", f.GetDestinationLabel(), dst)),
		add(verdictFilter(f.GetVerdict())),
		add(eventTypeFilter(f.GetEventType())),
		add(protocolFilter(f.GetProtocol())),
		add(portFilter("source_port", f.GetSourcePort(), true)),
		add(portFilter("destination_port", f.GetDestinationPort(), false)),
		add(tcpFlagsFilter(f.GetTcpFlags())),
		add(identityFilter(f.GetSourceIdentity(), src)),
		add(identityFilter(f.GetDestinationIdentity(), dst)),
		add(nodeNameFilter(f.GetNodeName())),
		add(trafficDirectionFilter(f.GetTrafficDirection())),
		add(replyFilter(f.GetReply())),
	} {
		if err != nil {
			return nil, err
		}
	}
	return &Filter{matchers: ms}, nil
}

// Match reports whether fl satisfies every field set in the filter.
func (f *Filter) Match(fl *flowpb.Flow) bool {
	for _, m := range f.matchers {
		if !m(fl) {
			return false
		}
	}
	return true
}

// Set is a whitelist and a blacklist: a flow passes if it matches at least
// one whitelist filter (or the whitelist is empty) and no blacklist filter.
type Set struct {
	whitelist []*Filter
	blacklist []*Filter
}

// NewSet compiles the whitelist and blacklist filters into a Set.
func NewSet(whitelist, blacklist []*flowpb.FlowFilter) (*Set, error) {
	compileAll := func(kind string, in []*flowpb.FlowFilter) ([]*Filter, error) {
		out := make([]*Filter, 0, len(in))
		for i, ff := range in {
			c, err := Compile(ff)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", kind, i, err)
			}
			out = append(out, c)
		}
		return out, nil
	}
	w, err := compileAll("whitelist", whitelist)
	if err != nil {
		return nil, err
	}
	b, err := compileAll("blacklist", blacklist)
	if err != nil {
		return nil, err
	}
	return &Set{whitelist: w, blacklist: b}, nil
}

// Match reports whether fl passes the whitelist and is not blacklisted.
func (s *Set) Match(fl *flowpb.Flow) bool {
	if len(s.whitelist) > 0 {
		ok := false
		for _, f := range s.whitelist {
			if f.Match(fl) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, f := range s.blacklist {
		if f.Match(fl) {
			return false
		}
	}
	return true
}

type endpointGetter func(*flowpb.Flow) *flowpb.Endpoint

func podFilter(field string, values []string, ep endpointGetter) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	type podSel struct {
		anyNamespace bool
		namespace    string
		prefix       string
	}
	sels := make([]podSel, 0, len(values))
	for _, v := range values {
		if v == "" {
			return nil, fmt.Errorf("%s: %q is empty", field, v)
		}
		ns, prefix, hasSlash := strings.Cut(v, "/")
		switch {
		case !hasSlash:
			sels = append(sels, podSel{anyNamespace: true, prefix: v})
		case ns == "":
			return nil, fmt.Errorf("%s: %q has an empty namespace", field, v)
		case strings.Contains(prefix, "/"):
			return nil, fmt.Errorf("%s: %q has more than one \"/\"", field, v)
		default:
			sels = append(sels, podSel{namespace: ns, prefix: prefix})
		}
	}
	return func(fl *flowpb.Flow) bool {
		e := ep(fl)
		ns, pod := e.GetNamespace(), e.GetPodName()
		for _, s := range sels {
			if s.anyNamespace {
				if pod != "" && strings.HasPrefix(pod, s.prefix) {
					return true
				}
				continue
			}
			if ns == s.namespace && strings.HasPrefix(pod, s.prefix) {
				return true
			}
		}
		return false
	}, nil
}

func ipFilter(field string, values []string, get func(*flowpb.Flow) string) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	prefixes := make([]netip.Prefix, 0, len(values))
	for _, v := range values {
		var p netip.Prefix
		if strings.Contains(v, "/") {
			pp, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not an IP or CIDR", field, v)
			}
			p = pp.Masked()
		} else {
			a, err := netip.ParseAddr(v)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%s: %q is not an IP or CIDR", field, v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		prefixes = append(prefixes, p)
	}
	return func(fl *flowpb.Flow) bool {
		a, err := netip.ParseAddr(get(fl))
		if err != nil {
			return false
		}
		a = a.WithZone("")
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}, nil
}

func labelFilter(field string, values []string, ep endpointGetter) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	sels := make([]selector, 0, len(values))
	for _, v := range values {
		s, err := parseSelector(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a valid label selector: %w", field, v, err)
		}
		sels = append(sels, s)
	}
	return func(fl *flowpb.Flow) bool {
		ls := parseFlowLabels(ep(fl).GetLabels())
		for _, s := range sels {
			if s.matches(ls) {
				return true
			}
		}
		return false
	}, nil
}

func verdictFilter(values []flowpb.Verdict) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	for _, v := range values {
		if _, ok := flowpb.Verdict_name[int32(v)]; !ok {
			return nil, fmt.Errorf("verdict: %d is not a known verdict", int32(v))
		}
	}
	return func(fl *flowpb.Flow) bool {
		got := fl.GetVerdict()
		for _, v := range values {
			if got == v {
				return true
			}
		}
		return false
	}, nil
}

func trafficDirectionFilter(values []flowpb.TrafficDirection) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	for _, v := range values {
		if _, ok := flowpb.TrafficDirection_name[int32(v)]; !ok {
			return nil, fmt.Errorf("traffic_direction: %d is not a known traffic direction", int32(v))
		}
	}
	return func(fl *flowpb.Flow) bool {
		got := fl.GetTrafficDirection()
		for _, v := range values {
			if got == v {
				return true
			}
		}
		return false
	}, nil
}

func eventTypeFilter(values []*flowpb.EventTypeFilter) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	type et struct {
		typ, subType int32
		matchSub     bool
	}
	ets := make([]et, 0, len(values))
	for _, v := range values {
		ets = append(ets, et{typ: v.GetType(), subType: v.GetSubType(), matchSub: v.GetMatchSubType()})
	}
	return func(fl *flowpb.Flow) bool {
		e := fl.GetEventType()
		if e == nil {
			return false
		}
		for _, want := range ets {
			if e.GetType() == want.typ && (!want.matchSub || e.GetSubType() == want.subType) {
				return true
			}
		}
		return false
	}, nil
}

func protocolFilter(values []string) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	var tcp, udp, sctp, icmp4, icmp6 bool
	for _, v := range values {
		switch strings.ToLower(v) {
		case "tcp":
			tcp = true
		case "udp":
			udp = true
		case "sctp":
			sctp = true
		case "icmp":
			icmp4, icmp6 = true, true
		case "icmpv4":
			icmp4 = true
		case "icmpv6":
			icmp6 = true
		default:
			return nil, fmt.Errorf("protocol: %q is not a known protocol (want tcp, udp, sctp, icmp, icmpv4 or icmpv6)", v)
		}
	}
	return func(fl *flowpb.Flow) bool {
		l4 := fl.GetL4()
		return (tcp && l4.GetTCP() != nil) ||
			(udp && l4.GetUDP() != nil) ||
			(sctp && l4.GetSCTP() != nil) ||
			(icmp4 && l4.GetICMPv4() != nil) ||
			(icmp6 && l4.GetICMPv6() != nil)
	}, nil
}

func portFilter(field string, values []string, source bool) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	ports := make(map[uint32]bool, len(values))
	for _, v := range values {
		p, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a port number (0-65535)", field, v)
		}
		ports[uint32(p)] = true
	}
	return func(fl *flowpb.Flow) bool {
		l4 := fl.GetL4()
		var port uint32
		switch {
		case l4.GetTCP() != nil:
			port = pick(source, l4.GetTCP().GetSourcePort(), l4.GetTCP().GetDestinationPort())
		case l4.GetUDP() != nil:
			port = pick(source, l4.GetUDP().GetSourcePort(), l4.GetUDP().GetDestinationPort())
		case l4.GetSCTP() != nil:
			port = pick(source, l4.GetSCTP().GetSourcePort(), l4.GetSCTP().GetDestinationPort())
		default:
			return false
		}
		return ports[port]
	}, nil
}

func pick(first bool, a, b uint32) uint32 {
	if first {
		return a
	}
	return b
}

// tcpFlagBits packs the flags of f into a bit set.
func tcpFlagBits(f *flowpb.TCPFlags) uint16 {
	var bits uint16
	for i, set := range []bool{
		f.GetFIN(), f.GetSYN(), f.GetRST(), f.GetPSH(), f.GetACK(),
		f.GetURG(), f.GetECE(), f.GetCWR(), f.GetNS(),
	} {
		if set {
			bits |= 1 << i
		}
	}
	return bits
}

func tcpFlagsFilter(values []*flowpb.TCPFlags) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	wants := make([]uint16, 0, len(values))
	for _, v := range values {
		wants = append(wants, tcpFlagBits(v))
	}
	return func(fl *flowpb.Flow) bool {
		flags := fl.GetL4().GetTCP().GetFlags()
		if flags == nil {
			return false
		}
		have := tcpFlagBits(flags)
		for _, w := range wants {
			if have&w == w {
				return true
			}
		}
		return false
	}, nil
}

func identityFilter(values []uint32, ep endpointGetter) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	return func(fl *flowpb.Flow) bool {
		id := ep(fl).GetIdentity()
		for _, v := range values {
			if id == v {
				return true
			}
		}
		return false
	}, nil
}

func nodeNameFilter(values []string) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	type pattern struct {
		name string
		glob bool
	}
	pats := make([]pattern, 0, len(values))
	for _, v := range values {
		if v == "" {
			return nil, fmt.Errorf("node_name: %q is empty", v)
		}
		name, glob := strings.CutSuffix(v, "*")
		if strings.Contains(name, "*") {
			return nil, fmt.Errorf("node_name: %q may only use \"*\" at the end", v)
		}
		pats = append(pats, pattern{name: name, glob: glob})
	}
	return func(fl *flowpb.Flow) bool {
		node := fl.GetNodeName()
		for _, p := range pats {
			if p.glob && strings.HasPrefix(node, p.name) || !p.glob && node == p.name {
				return true
			}
		}
		return false
	}, nil
}

func replyFilter(values []bool) (matchFunc, error) {
	if len(values) == 0 {
		return nil, nil
	}
	return func(fl *flowpb.Flow) bool {
		got := fl.GetIsReply().GetValue()
		for _, v := range values {
			if got == v {
				return true
			}
		}
		return false
	}, nil
}
