package service

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/seta-net/seta/pkg/loadbalancer"
)

// Errors the API maps to status codes (pkg/api/server).
var (
	// ErrInvalid: the service is malformed; nothing was changed.
	ErrInvalid = errors.New("invalid service")
	// ErrNotFound: no service has that ID or frontend.
	ErrNotFound = errors.New("service not found")
	// ErrConflict: the frontend (or the NodePort it overlaps) belongs to
	// another service.
	ErrConflict = errors.New("frontend conflict")
	// ErrLimit: no free service or backend ID, or the maps are full.
	ErrLimit = errors.New("service limit reached")
)

// Type says where a service's frontend is reachable from.
type Type string

const (
	// ClusterIP: a virtual address for the node and its pods.
	ClusterIP Type = "ClusterIP"
	// NodePort: a port on the node's addresses (every one of them when the
	// frontend address is unspecified), for traffic from outside too.
	NodePort Type = "NodePort"
	// LoadBalancer: an address an external load balancer sends to the
	// nodes. Inside the node it works like a ClusterIP, from outside like
	// a NodePort.
	LoadBalancer Type = "LoadBalancer"
	// ExternalIPs: an address routed to the nodes from outside; handled as
	// LoadBalancer is.
	ExternalIPs Type = "ExternalIPs"
)

// ParseType takes a type name in any case; "" is ClusterIP.
func ParseType(s string) (Type, error) {
	for _, t := range []Type{ClusterIP, NodePort, LoadBalancer, ExternalIPs} {
		if strings.EqualFold(s, string(t)) {
			return t, nil
		}
	}
	if s == "" {
		return ClusterIP, nil
	}
	return "", fmt.Errorf("unknown service type %q (want ClusterIP, NodePort, LoadBalancer or ExternalIPs)", s)
}

// external says whether traffic from outside the node reaches the
// frontend, so that externalTrafficPolicy and Maglev mean something.
func (t Type) external() bool { return t != ClusterIP }

// Affinity is the session affinity of a service.
type Affinity string

const (
	AffinityNone     Affinity = "None"
	AffinityClientIP Affinity = "ClientIP"
)

// ParseAffinity takes None or ClientIP in any case; "" is None.
func ParseAffinity(s string) (Affinity, error) {
	switch {
	case s == "" || strings.EqualFold(s, string(AffinityNone)):
		return AffinityNone, nil
	case strings.EqualFold(s, string(AffinityClientIP)):
		return AffinityClientIP, nil
	}
	return "", fmt.Errorf("unknown session affinity %q (want None or ClientIP)", s)
}

// Session affinity timeouts, in seconds, as Kubernetes has them.
const (
	DefaultAffinityTimeout = 10800
	MaxAffinityTimeout     = 86400
)

// TrafficPolicy says which backends a scope's traffic may reach.
type TrafficPolicy string

const (
	// TrafficCluster: every backend of the service.
	TrafficCluster TrafficPolicy = "Cluster"
	// TrafficLocal: only the backends on this node.
	TrafficLocal TrafficPolicy = "Local"
)

// ParseTrafficPolicy takes Cluster or Local in any case; "" is Cluster.
func ParseTrafficPolicy(s string) (TrafficPolicy, error) {
	switch {
	case s == "" || strings.EqualFold(s, string(TrafficCluster)):
		return TrafficCluster, nil
	case strings.EqualFold(s, string(TrafficLocal)):
		return TrafficLocal, nil
	}
	return "", fmt.Errorf("unknown traffic policy %q (want Cluster or Local)", s)
}

// Algorithm is how new connections from outside the node pick a backend.
type Algorithm string

const (
	// AlgorithmRandom picks a slot at random.
	AlgorithmRandom Algorithm = "random"
	// AlgorithmMaglev hashes the connection into the service's Maglev
	// table, so every node picks the same backend for it. Traffic from
	// inside the node still picks at random.
	AlgorithmMaglev Algorithm = "maglev"
)

// ParseAlgorithm takes random or maglev in any case; "" is random.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch {
	case s == "" || strings.EqualFold(s, string(AlgorithmRandom)):
		return AlgorithmRandom, nil
	case strings.EqualFold(s, string(AlgorithmMaglev)):
		return AlgorithmMaglev, nil
	}
	return "", fmt.Errorf("unknown algorithm %q (want random or maglev)", s)
}

// State is a backend's lifecycle state (loadbalancer.BackendState) with a
// text form for JSON: active, terminating or quarantined.
type State loadbalancer.BackendState

const (
	// Active backends are in the slots and take new connections.
	Active = State(loadbalancer.Active)
	// Terminating backends leave the slots; their connections go on.
	Terminating = State(loadbalancer.Terminating)
	// Quarantined backends (failed health) leave the slots; their
	// connections are left alone.
	Quarantined = State(loadbalancer.Quarantined)
)

func (s State) String() string { return loadbalancer.BackendState(s).String() }

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) {
	if s > Quarantined {
		return nil, fmt.Errorf("invalid backend state %d", uint8(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a state's name ("" is active).
func (s *State) UnmarshalText(b []byte) error {
	st, err := loadbalancer.ParseBackendState(string(b))
	*s = State(st)
	return err
}

// L4Addr is an address, a port and an L4 protocol: a service's frontend, or
// the key of a backend in the datapath. Its text form is "10.96.0.10:80/TCP"
// or "[fd00::10]:53/UDP"; without "/PROTO" it is TCP.
type L4Addr struct {
	Addr  netip.Addr
	Port  uint16
	Proto loadbalancer.Proto
}

// AddrPort is the address and port.
func (a L4Addr) AddrPort() netip.AddrPort { return netip.AddrPortFrom(a.Addr, a.Port) }

func (a L4Addr) String() string {
	if !a.Addr.IsValid() {
		return ""
	}
	return a.AddrPort().String() + "/" + a.Proto.String()
}

// MarshalText writes the text form; the zero value is "".
func (a L4Addr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads the text form. "" gives the zero value, which
// validation reports as a missing frontend (a clearer message than a
// decoding error).
func (a *L4Addr) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*a = L4Addr{}
		return nil
	}
	v, err := ParseL4Addr(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ParseL4Addr reads "IP:PORT/PROTO" (PROTO TCP or UDP in any case, TCP when
// left out); IPv6 addresses go in brackets.
func ParseL4Addr(s string) (L4Addr, error) {
	hostport, proto := s, ""
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		hostport, proto = s[:i], s[i+1:]
		if proto == "" {
			return L4Addr{}, fmt.Errorf("%q: protocol missing after \"/\" (want IP:PORT/TCP or IP:PORT/UDP)", s)
		}
	}
	p, err := loadbalancer.ParseProto(proto)
	if err != nil {
		return L4Addr{}, fmt.Errorf("%q: %w", s, err)
	}
	ap, err := ParseAddrPort(hostport)
	if err != nil {
		return L4Addr{}, err
	}
	return L4Addr{Addr: ap.Addr(), Port: ap.Port(), Proto: p}, nil
}

// ParseAddrPort reads "IP:PORT" or "[IPv6]:PORT". Unlike netip's parser it
// says which part is wrong in terms a user typed, and refuses port 0.
func ParseAddrPort(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: want IP:PORT, with an IPv6 address in brackets ([fd00::10]:80)", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: %q is not an IP address", s, host)
	}
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: port %q is not a number", s, port)
	}
	if n == 0 || n > 65535 {
		return netip.AddrPort{}, fmt.Errorf("%q: port %d is out of range (1-65535)", s, n)
	}
	return netip.AddrPortFrom(a, uint16(n)), nil
}

// PortRange is an inclusive range of ports, such as the NodePort range.
type PortRange struct{ Min, Max uint16 }

// DefaultNodePortRange is Kubernetes' default.
var DefaultNodePortRange = PortRange{30000, 32767}

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.Min, r.Max) }

// Contains says whether p is in the range.
func (r PortRange) Contains(p uint16) bool { return p >= r.Min && p <= r.Max }

// ParsePortRange reads "MIN-MAX" (1 <= MIN <= MAX <= 65535).
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("port range %q: want MIN-MAX, e.g. 30000-32767", s)
	}
	if a == 0 || a > b {
		return PortRange{}, fmt.Errorf("port range %q: want 1 <= MIN <= MAX <= 65535", s)
	}
	return PortRange{uint16(a), uint16(b)}, nil
}

// Backend is one backend of a service as the user gives it.
type Backend struct {
	// Addr is where the backend listens; its protocol is the frontend's.
	Addr netip.AddrPort `json:"addr"`
	// State: only active backends take new connections.
	State State `json:"state"`
	// NodeName is the node the backend runs on; a backend is local when
	// it is this agent's node. Without it (and without Local), a backend
	// is local when its address belongs to an endpoint of this node.
	NodeName string `json:"nodeName,omitempty"`
	// Local marks the backend as on this node whatever its address.
	Local bool `json:"local,omitempty"`
}

// Service is a frontend and the backends that serve it. It is the persisted
// record and the body of PUT /v1/services.
type Service struct {
	// Name and Namespace name the service (for display and DNS); both are
	// optional. A frontend belongs to one (namespace, name): another
	// service may not take it over without deleting it first.
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// Frontend is what clients connect to. For a NodePort it may be the
	// unspecified address (0.0.0.0 or ::): every address of the node.
	Frontend L4Addr `json:"frontend"`
	// Type is ClusterIP (the default), NodePort, LoadBalancer or
	// ExternalIPs.
	Type     Type      `json:"type,omitempty"`
	Backends []Backend `json:"backends"`
	// SessionAffinity ClientIP sends a client's connections to the same
	// backend for SessionAffinityTimeout seconds (default 10800).
	SessionAffinity        Affinity `json:"sessionAffinity,omitempty"`
	SessionAffinityTimeout int      `json:"sessionAffinityTimeout,omitempty"`
	// ExternalTrafficPolicy Local: traffic from outside the node reaches
	// only this node's backends (and keeps its source address).
	ExternalTrafficPolicy TrafficPolicy `json:"externalTrafficPolicy,omitempty"`
	// InternalTrafficPolicy Local: traffic from this node and its pods
	// reaches only this node's backends.
	InternalTrafficPolicy TrafficPolicy `json:"internalTrafficPolicy,omitempty"`
	// Algorithm is random (the default) or maglev; maglev applies to
	// traffic from outside the node.
	Algorithm Algorithm `json:"algorithm,omitempty"`
}

// DisplayName is "namespace/name", "name", or "" for an unnamed service.
func (s *Service) DisplayName() string {
	if s.Namespace == "" {
		return s.Name
	}
	return s.Namespace + "/" + s.Name
}

func (s *Service) clone() Service {
	c := *s
	c.Backends = slices.Clone(s.Backends)
	return c
}

// Normalize checks s on its own (not against other services) and returns
// it with every default filled in and every name in its canonical form.
// All problems are reported at once; the error wraps ErrInvalid.
func Normalize(s Service, nodePorts PortRange) (Service, error) {
	s = s.clone()
	var probs []string
	bad := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }

	for _, f := range []struct{ field, v string }{{"name", s.Name}, {"namespace", s.Namespace}} {
		if len(f.v) > 253 || strings.ContainsAny(f.v, "/ \t\r\n") {
			bad("%s %q: at most 253 characters, without \"/\" or spaces", f.field, f.v)
		}
	}
	if s.Namespace != "" && s.Name == "" {
		bad("namespace %q given without a name", s.Namespace)
	}

	var err error
	if s.Type, err = ParseType(string(s.Type)); err != nil {
		bad("type: %v", err)
	}
	fe := s.Frontend
	switch {
	case !fe.Addr.IsValid():
		bad("frontend: required (IP:PORT/PROTO, e.g. 10.96.0.10:80/TCP)")
	default:
		if msg := checkAddr(fe.Addr); msg != "" {
			bad("frontend %s: %s", fe, msg)
		}
		if fe.Port == 0 {
			bad("frontend %s: port 0 is out of range (1-65535)", fe)
		}
		if _, err := loadbalancer.ParseProto(fe.Proto.String()); err != nil {
			bad("frontend %s: %v", fe, err)
		}
		if fe.Addr.IsUnspecified() && s.Type != NodePort && s.Type != "" {
			// Only a NodePort stands for "every node address".
			bad("frontend %s: a %s service needs a specific address; only a NodePort may use %s (every address of the node)", fe, s.Type, fe.Addr)
		}
		if s.Type == NodePort && fe.Port != 0 && !nodePorts.Contains(fe.Port) {
			bad("frontend %s: NodePort port %d is outside the node port range %s (--node-port-range)", fe, fe.Port, nodePorts)
		}
	}

	if n := len(s.Backends); n > loadbalancer.MaxBackendsPerService {
		bad("%d backends are too many (at most %d per service)", n, loadbalancer.MaxBackendsPerService)
	}
	seen := make(map[netip.AddrPort]int, len(s.Backends))
	for i, b := range s.Backends {
		at := fmt.Sprintf("backends[%d] %s", i, b.Addr)
		switch {
		case !b.Addr.Addr().IsValid():
			bad("backends[%d]: address required (IP:PORT)", i)
			continue
		case b.Addr.Addr().IsUnspecified():
			bad("%s: a backend needs a specific address", at)
		case b.Addr.Port() == 0:
			bad("%s: port 0 is out of range (1-65535)", at)
		}
		if msg := checkAddr(b.Addr.Addr()); msg != "" {
			bad("%s: %s", at, msg)
		}
		if fe.Addr.IsValid() && b.Addr.Addr().Is4() != fe.Addr.Is4() {
			bad("%s: is %s but the frontend %s is %s (the datapath does not translate between families)", at, family(b.Addr.Addr()), fe, family(fe.Addr))
		}
		if j, dup := seen[b.Addr]; dup {
			bad("%s: listed twice (also backends[%d])", at, j)
		}
		seen[b.Addr] = i
		if b.State > Quarantined {
			bad("%s: invalid state %d", at, uint8(b.State))
		}
		if b.Local && b.NodeName != "" {
			bad("%s: give nodeName or local, not both", at)
		}
	}

	if s.SessionAffinity, err = ParseAffinity(string(s.SessionAffinity)); err != nil {
		bad("sessionAffinity: %v", err)
	}
	switch {
	case s.SessionAffinity == AffinityClientIP && s.SessionAffinityTimeout == 0:
		s.SessionAffinityTimeout = DefaultAffinityTimeout
	case s.SessionAffinity == AffinityClientIP && (s.SessionAffinityTimeout < 1 || s.SessionAffinityTimeout > MaxAffinityTimeout):
		bad("sessionAffinityTimeout: must be 1 to %d seconds, got %d", MaxAffinityTimeout, s.SessionAffinityTimeout)
	case s.SessionAffinity != AffinityClientIP && s.SessionAffinityTimeout != 0:
		bad("sessionAffinityTimeout: only with sessionAffinity ClientIP")
	}

	if s.ExternalTrafficPolicy, err = ParseTrafficPolicy(string(s.ExternalTrafficPolicy)); err != nil {
		bad("externalTrafficPolicy: %v", err)
	}
	if s.InternalTrafficPolicy, err = ParseTrafficPolicy(string(s.InternalTrafficPolicy)); err != nil {
		bad("internalTrafficPolicy: %v", err)
	}
	if s.Algorithm, err = ParseAlgorithm(string(s.Algorithm)); err != nil {
		bad("algorithm: %v", err)
	}
	// Both act only on traffic from outside the node, which a ClusterIP
	// does not get; accepting them would promise something that cannot
	// happen (Kubernetes refuses externalTrafficPolicy there too).
	if s.Type == ClusterIP && s.ExternalTrafficPolicy == TrafficLocal {
		bad("externalTrafficPolicy Local: applies to traffic from outside the node, which a ClusterIP service does not get (use NodePort, LoadBalancer or ExternalIPs)")
	}
	if s.Type == ClusterIP && s.Algorithm == AlgorithmMaglev {
		bad("algorithm maglev: applies to traffic from outside the node, which a ClusterIP service does not get (use NodePort, LoadBalancer or ExternalIPs)")
	}

	if len(probs) > 0 {
		return Service{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(probs, "; "))
	}
	if s.Backends == nil {
		s.Backends = []Backend{}
	}
	return s, nil
}

// checkAddr refuses addresses the datapath cannot match or reach.
func checkAddr(a netip.Addr) string {
	switch {
	case a.Zone() != "":
		return "an address with a zone is not supported"
	case a.Is4In6():
		return fmt.Sprintf("IPv4-mapped IPv6 address; use %s", a.Unmap())
	case a.IsMulticast():
		return "a multicast address cannot be a service address"
	}
	return ""
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
