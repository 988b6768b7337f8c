package lab

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Lab services play the part of Kubernetes Services: the lab allocates their
// addresses, keeps their backends in step with the pods their selector
// matches, and pushes the resulting frontends to every node's agent. The
// cluster DNS (seta lab dns-server) answers for their names.

// Service types, traffic policies and the session affinity, spelled as in
// Kubernetes.
const (
	TypeClusterIP = "ClusterIP"
	TypeNodePort  = "NodePort"

	PolicyCluster = "Cluster"
	PolicyLocal   = "Local"

	AffinityNone     = "None"
	AffinityClientIP = "ClientIP"
)

// Service address ranges. The service CIDR is Kubernetes' usual default;
// the IPv6 one is a /112 of the lab's ULA prefix.
var (
	serviceCIDRv4 = netip.MustParsePrefix("10.96.0.0/16")
	serviceCIDRv6 = netip.MustParsePrefix("fd00:5e7a:96::/112")
)

// firstServiceOffset is where allocation starts, keeping the low addresses
// for the lab's own services (the cluster DNS is .10, as in kubeadm).
const firstServiceOffset = 100

// NodePort range, as kube-apiserver's default --service-node-port-range.
const (
	MinNodePort = 30000
	MaxNodePort = 32767
)

// The cluster DNS service.
const (
	DNSServiceName      = "kube-dns"
	DNSServiceNamespace = "kube-system"
	DNSPort             = 53
	// ClusterDomain is the DNS zone of the lab's services.
	ClusterDomain = "cluster.local"
)

var (
	DNSClusterIPv4 = serviceAddr(serviceCIDRv4, 10)
	DNSClusterIPv6 = serviceAddr(serviceCIDRv6, 10)
)

// Service is a lab service.
type Service struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Type      string `json:"type"`
	// ClusterIPs holds the IPv4 address, then the IPv6 one.
	ClusterIPs []string      `json:"clusterIPs"`
	Ports      []ServicePort `json:"ports"`
	// Selector picks the backend pods in the service's namespace: each
	// key=value must be among the pod's labels.
	Selector              map[string]string `json:"selector,omitempty"`
	SessionAffinity       string            `json:"sessionAffinity,omitempty"`
	ExternalTrafficPolicy string            `json:"externalTrafficPolicy,omitempty"`
	InternalTrafficPolicy string            `json:"internalTrafficPolicy,omitempty"`
	// Algorithm is the backend selection: "" (the agent's default),
	// "random" or "maglev".
	Algorithm string `json:"algorithm,omitempty"`
	// NodeDNS marks the cluster DNS service, whose backends are every
	// node's DNS server rather than pods.
	NodeDNS bool `json:"nodeDNS,omitempty"`
}

// ServicePort is one port of a service.
type ServicePort struct {
	Name       string `json:"name,omitempty"`
	Protocol   string `json:"protocol"`
	Port       uint16 `json:"port"`
	TargetPort uint16 `json:"targetPort"`
	NodePort   uint16 `json:"nodePort,omitempty"`
}

// Key is namespace/name.
func (s *Service) Key() string { return s.Namespace + "/" + s.Name }

// ClusterIP returns the service's address of one family (4 or 6).
func (s *Service) ClusterIP(family int) (netip.Addr, bool) {
	for _, c := range s.ClusterIPs {
		a, err := netip.ParseAddr(c)
		if err == nil && (a.Is4() == (family == 4)) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// FQDN is the service's DNS name.
func (s *Service) FQDN() string {
	return s.Name + "." + s.Namespace + ".svc." + ClusterDomain
}

// ServiceSpec is what `seta lab service create` asks for.
type ServiceSpec struct {
	Name, Namespace string
	Type            string // default ClusterIP
	Port            int
	TargetPort      int    // default: Port
	Protocol        string // default TCP
	NodePort        int    // 0: allocate (NodePort only)
	Selector        map[string]string
	SessionAffinity string // None or ClientIP
	// ExternalTrafficPolicy: Cluster or Local (NodePort only).
	ExternalTrafficPolicy string
	Algorithm             string // "", random or maglev
}

// ParseSelector parses "k=v,k2=v2".
func ParseSelector(s string) (map[string]string, error) {
	ls, err := ParseLabels(s)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range ls {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m, nil
}

// newService checks a spec and turns it into a service with addresses and
// a node port allocated among those st already uses.
func newService(st *State, sp ServiceSpec) (*Service, error) {
	if err := ValidName("service", sp.Name, 63); err != nil {
		return nil, err
	}
	if err := ValidName("namespace", sp.Namespace, 63); err != nil {
		return nil, err
	}
	if st.Service(sp.Namespace, sp.Name) != nil {
		return nil, fmt.Errorf("service %s/%s already exists in lab %q", sp.Namespace, sp.Name, st.Name)
	}
	svc := &Service{Name: sp.Name, Namespace: sp.Namespace, Type: cmp.Or(sp.Type, TypeClusterIP),
		Selector: sp.Selector, SessionAffinity: cmp.Or(sp.SessionAffinity, AffinityNone),
		ExternalTrafficPolicy: sp.ExternalTrafficPolicy, InternalTrafficPolicy: PolicyCluster,
		Algorithm: sp.Algorithm}
	switch svc.Type {
	case TypeClusterIP:
		if sp.NodePort != 0 {
			return nil, fmt.Errorf("--node-port needs --type %s", TypeNodePort)
		}
		if sp.ExternalTrafficPolicy != "" {
			// Kubernetes: externalTrafficPolicy may only be set on
			// externally-accessible services.
			return nil, fmt.Errorf("--external-traffic-policy needs --type %s", TypeNodePort)
		}
		if sp.Algorithm == "maglev" {
			// Maglev picks backends for traffic from outside the node,
			// which a ClusterIP does not get (the agent refuses it too).
			return nil, fmt.Errorf("--algorithm maglev needs --type %s", TypeNodePort)
		}
	case TypeNodePort:
		svc.ExternalTrafficPolicy = cmp.Or(svc.ExternalTrafficPolicy, PolicyCluster)
	default:
		return nil, fmt.Errorf("invalid service type %q: want %s or %s", sp.Type, TypeClusterIP, TypeNodePort)
	}
	if p := svc.ExternalTrafficPolicy; p != "" && p != PolicyCluster && p != PolicyLocal {
		return nil, fmt.Errorf("invalid external traffic policy %q: want %s or %s", p, PolicyCluster, PolicyLocal)
	}
	if a := svc.SessionAffinity; a != AffinityNone && a != AffinityClientIP {
		return nil, fmt.Errorf("invalid session affinity %q: want %s or %s", a, AffinityNone, AffinityClientIP)
	}
	if a := svc.Algorithm; a != "" && a != "random" && a != "maglev" {
		return nil, fmt.Errorf("invalid load-balancing algorithm %q: want random or maglev", a)
	}
	if len(sp.Selector) == 0 {
		return nil, fmt.Errorf("service %s/%s needs a --selector (k=v,...): its backends are the pods it matches", sp.Namespace, sp.Name)
	}
	proto := strings.ToUpper(cmp.Or(sp.Protocol, "TCP"))
	if proto != "TCP" && proto != "UDP" {
		return nil, fmt.Errorf("invalid protocol %q: want TCP or UDP", sp.Protocol)
	}
	if sp.Port < 1 || sp.Port > 65535 {
		return nil, fmt.Errorf("--port must be 1 to 65535, got %d", sp.Port)
	}
	target := cmp.Or(sp.TargetPort, sp.Port)
	if target < 1 || target > 65535 {
		return nil, fmt.Errorf("--target-port must be 1 to 65535, got %d", sp.TargetPort)
	}
	port := ServicePort{Protocol: proto, Port: uint16(sp.Port), TargetPort: uint16(target)}
	if svc.Type == TypeNodePort {
		np, err := allocNodePort(st, sp.NodePort)
		if err != nil {
			return nil, err
		}
		port.NodePort = np
	}
	svc.Ports = []ServicePort{port}
	v4, v6, err := allocClusterIPs(st)
	if err != nil {
		return nil, err
	}
	svc.ClusterIPs = []string{v4.String(), v6.String()}
	return svc, nil
}

// dnsService is the cluster DNS service: the kubeadm address, DNS over UDP
// and TCP, backed by every node's DNS server. internalTrafficPolicy Local
// keeps each pod's queries on its own node, as NodeLocal DNSCache does.
func dnsService() *Service {
	return &Service{
		Name: DNSServiceName, Namespace: DNSServiceNamespace, Type: TypeClusterIP,
		ClusterIPs: []string{DNSClusterIPv4.String(), DNSClusterIPv6.String()},
		Ports: []ServicePort{
			{Name: "dns", Protocol: "UDP", Port: DNSPort, TargetPort: DNSPort},
			{Name: "dns-tcp", Protocol: "TCP", Port: DNSPort, TargetPort: DNSPort},
		},
		SessionAffinity: AffinityNone, InternalTrafficPolicy: PolicyLocal, NodeDNS: true,
	}
}

// serviceAddr is the address at offset i in a service CIDR.
func serviceAddr(p netip.Prefix, i int) netip.Addr {
	b := p.Addr().AsSlice()
	for j := len(b) - 1; j >= 0 && i > 0; j-- {
		v := int(b[j]) + i
		b[j] = byte(v)
		i = v >> 8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// allocClusterIPs picks the lowest offset free in both service CIDRs, so a
// service's two addresses end alike (10.96.0.100 and fd00:5e7a:96::64).
func allocClusterIPs(st *State) (v4, v6 netip.Addr, err error) {
	used := map[netip.Addr]bool{}
	for _, s := range st.Services {
		for _, c := range s.ClusterIPs {
			if a, err := netip.ParseAddr(c); err == nil {
				used[a] = true
			}
		}
	}
	size := 1 << (32 - serviceCIDRv4.Bits())
	for i := firstServiceOffset; i < size-1; i++ {
		v4, v6 = serviceAddr(serviceCIDRv4, i), serviceAddr(serviceCIDRv6, i)
		if !used[v4] && !used[v6] {
			return v4, v6, nil
		}
	}
	return v4, v6, fmt.Errorf("no free service address left in %s", serviceCIDRv4)
}

// allocNodePort checks a requested node port, or picks the lowest free one.
func allocNodePort(st *State, want int) (uint16, error) {
	used := map[int]bool{}
	for _, s := range st.Services {
		for _, p := range s.Ports {
			if p.NodePort != 0 {
				used[int(p.NodePort)] = true
			}
		}
	}
	if want != 0 {
		if want < MinNodePort || want > MaxNodePort {
			return 0, fmt.Errorf("--node-port must be %d to %d, got %d", MinNodePort, MaxNodePort, want)
		}
		if used[want] {
			return 0, fmt.Errorf("node port %d is already used by another service", want)
		}
		return uint16(want), nil
	}
	for p := MinNodePort; p <= MaxNodePort; p++ {
		if !used[p] {
			return uint16(p), nil
		}
	}
	return 0, fmt.Errorf("no free node port left in %d-%d", MinNodePort, MaxNodePort)
}

// selects reports whether a service's selector matches a pod: same
// namespace, and every key=value of the selector among the pod's labels.
func (s *Service) selects(p *Pod) bool {
	if s.NodeDNS || len(s.Selector) == 0 || p.Namespace != s.Namespace {
		return false
	}
	for k, v := range s.Selector {
		if !slices.Contains(p.Labels, k+"="+v) {
			return false
		}
	}
	return true
}

// Frontend is one load-balanced address of a service, what the lab pushes
// to every agent: a ClusterIP of one family and port, or (for a NodePort
// service) the node port on every address of the node of one family.
type Frontend struct {
	// Namespace and Name are the service's; Port is its port's name.
	Namespace, Name string
	Port            string
	Type            string
	Addr            netip.AddrPort
	Protocol        string
	// SessionAffinity, ExternalTrafficPolicy, InternalTrafficPolicy and
	// Algorithm are the service's.
	SessionAffinity       string
	ExternalTrafficPolicy string
	InternalTrafficPolicy string
	Algorithm             string
	Backends              []Backend
}

// Backend is one backend of a frontend.
type Backend struct {
	Addr netip.AddrPort
	// Node runs the backend: traffic policy Local picks the backends of the
	// node the traffic arrives on (or comes from).
	Node string
	// Terminating backends take no new connections but keep their old ones.
	Terminating bool
	// Pod is namespace/name, empty for a node's own server.
	Pod string
}

// String is "10.96.0.100:80/TCP".
func (f Frontend) String() string { return f.Addr.String() + "/" + f.Protocol }

// Frontends computes the desired frontends of every service from the
// pods and nodes in st: for each port, the ClusterIPs (IPv4 frontend to the
// pods' IPv4 addresses, IPv6 to IPv6) and for a NodePort service the
// unspecified addresses with the node port. Sorted, so equal states give
// equal lists.
func Frontends(st *State) []Frontend {
	var out []Frontend
	for _, s := range st.Services {
		for _, sp := range s.Ports {
			for _, fam := range []int{4, 6} {
				bes := backends(st, s, sp, fam)
				mk := func(typ string, addr netip.AddrPort) Frontend {
					return Frontend{Namespace: s.Namespace, Name: s.Name, Port: sp.Name, Type: typ, Addr: addr, Protocol: sp.Protocol,
						SessionAffinity: s.SessionAffinity, ExternalTrafficPolicy: s.ExternalTrafficPolicy,
						InternalTrafficPolicy: s.InternalTrafficPolicy, Algorithm: s.Algorithm,
						Backends: slices.Clone(bes)}
				}
				if ip, ok := s.ClusterIP(fam); ok {
					out = append(out, mk(TypeClusterIP, netip.AddrPortFrom(ip, sp.Port)))
				}
				if s.Type == TypeNodePort && sp.NodePort != 0 {
					any := netip.IPv4Unspecified()
					if fam == 6 {
						any = netip.IPv6Unspecified()
					}
					out = append(out, mk(TypeNodePort, netip.AddrPortFrom(any, sp.NodePort)))
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b Frontend) int {
		return cmp.Or(a.Addr.Compare(b.Addr), strings.Compare(a.Protocol, b.Protocol))
	})
	return out
}

// backends lists a service port's backends of one family.
func backends(st *State, s *Service, sp ServicePort, fam int) []Backend {
	var out []Backend
	if s.NodeDNS {
		for _, n := range st.Nodes {
			if gw, ok := nodeGateway(n, fam); ok {
				out = append(out, Backend{Addr: netip.AddrPortFrom(gw, sp.TargetPort), Node: n.Name})
			}
		}
		return out
	}
	for _, p := range st.Pods {
		if !s.selects(p) {
			continue
		}
		a, err := netip.ParseAddr(map[int]string{4: p.IPv4, 6: p.IPv6}[fam])
		if err != nil {
			continue
		}
		out = append(out, Backend{Addr: netip.AddrPortFrom(a, sp.TargetPort), Node: p.Node, Terminating: p.Terminating, Pod: p.Key()})
	}
	slices.SortFunc(out, func(a, b Backend) int { return a.Addr.Compare(b.Addr) })
	return out
}

// nodeGateway is a node's pod gateway address (the first of its pod CIDR),
// where its DNS server is reached from the pods of every node.
func nodeGateway(n *Node, fam int) (netip.Addr, bool) {
	c := n.PodCIDRv4
	if fam == 6 {
		c = n.PodCIDRv6
	}
	p, err := netip.ParsePrefix(c)
	if err != nil {
		return netip.Addr{}, false
	}
	return p.Masked().Addr().Next(), true
}

// portsString is "80/TCP" or "80:30001/TCP", as kubectl prints ports.
func (s *Service) portsString() string {
	var ps []string
	for _, p := range s.Ports {
		v := strconv.Itoa(int(p.Port))
		if p.NodePort != 0 {
			v += ":" + strconv.Itoa(int(p.NodePort))
		}
		ps = append(ps, v+"/"+p.Protocol)
	}
	return strings.Join(ps, ",")
}
