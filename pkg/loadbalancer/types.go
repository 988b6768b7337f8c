// Package loadbalancer holds the model of services shared by the service
// control plane (pkg/service: desired state, backend selection tables,
// the reconciler) and the datapath (pkg/datapath/lb: the BPF maps). It is
// plain Go with no kernel dependencies.
//
// A Service as users see it (a ClusterIP with ports, a NodePort, ...) is
// expanded by the control plane into datapath Frontends: one per address,
// port and protocol, and per scope when internal and external traffic see
// different backends. The datapath knows only frontends, backends and
// reverse-NAT entries.
package loadbalancer

import (
	"fmt"
	"net/netip"
	"strings"
)

// Proto is an L4 protocol number (IPPROTO_*).
type Proto uint8

const (
	TCP  Proto = 6
	UDP  Proto = 17
	SCTP Proto = 132
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// ParseProto takes TCP or UDP (any case). SCTP is refused: the datapath
// does not translate it.
func ParseProto(s string) (Proto, error) {
	switch strings.ToUpper(s) {
	case "TCP", "":
		return TCP, nil
	case "UDP":
		return UDP, nil
	case "SCTP":
		return 0, fmt.Errorf("protocol SCTP is not supported for services (TCP and UDP are)")
	}
	return 0, fmt.Errorf("unknown protocol %q (want TCP or UDP)", s)
}

// Scope says which traffic a frontend entry serves when a service's
// internal and external traffic policies differ.
type Scope uint8

const (
	// ScopeExternal: traffic from outside the node (NodePort,
	// LoadBalancer, ExternalIPs from outside), and all traffic of a
	// service with one backend set.
	ScopeExternal Scope = 0
	// ScopeInternal: traffic from local pods and the node itself, when
	// it must see another backend set (internalTrafficPolicy Local vs
	// externalTrafficPolicy Cluster, or the reverse).
	ScopeInternal Scope = 1
)

func (s Scope) String() string {
	switch s {
	case ScopeExternal:
		return "external"
	case ScopeInternal:
		return "internal"
	}
	return fmt.Sprintf("scope-%d", uint8(s))
}

// ServiceID numbers a frontend; it is also its reverse-NAT ID. 0 is
// invalid.
type ServiceID uint16

// BackendID numbers a backend address (address, port, protocol); 0 is
// invalid.
type BackendID uint32

// Frontend is what a client addresses.
type Frontend struct {
	Addr  netip.Addr // unspecified (0.0.0.0 or ::) for a NodePort on every node address
	Port  uint16
	Proto Proto
	Scope Scope
}

func (f Frontend) String() string {
	s := netip.AddrPortFrom(f.Addr, f.Port).String() + "/" + f.Proto.String()
	if f.Scope == ScopeInternal {
		s += " (internal)"
	}
	return s
}

// Flags of a frontend entry.
type Flags uint16

const (
	// FlagNodePort: the frontend is a NodePort (matched on the node's
	// addresses; its Addr may be unspecified).
	FlagNodePort Flags = 1 << iota
	// FlagExternal: a LoadBalancer or ExternalIP address.
	FlagExternal
	// FlagAffinity: ClientIP session affinity (AffinityTimeout).
	FlagAffinity
	// FlagLocal: only node-local backends are in the slots (a Local
	// traffic policy for this scope).
	FlagLocal
	// FlagMaglev: traffic from outside the node picks backends with the
	// service's Maglev table instead of at random.
	FlagMaglev
	// FlagTwoScopes: the service has a separate ScopeInternal entry; the
	// datapath looks it up for traffic from inside the node.
	FlagTwoScopes
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{FlagNodePort, "nodeport"}, {FlagExternal, "external"}, {FlagAffinity, "affinity"},
	{FlagLocal, "local"}, {FlagMaglev, "maglev"}, {FlagTwoScopes, "two-scopes"},
}

// String lists the set flags, comma-separated ("nodeport,affinity"); bits
// without a name show as hex; no flag is "".
func (f Flags) String() string {
	var parts []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			parts = append(parts, n.name)
			f &^= n.f
		}
	}
	if f != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint16(f)))
	}
	return strings.Join(parts, ",")
}

// BackendState is a backend's lifecycle state.
type BackendState uint8

const (
	// Active backends take new connections.
	Active BackendState = 0
	// Terminating backends keep their connections and take no new ones.
	Terminating BackendState = 1
	// Quarantined backends (failed health) take no new connections;
	// existing ones are left alone.
	Quarantined BackendState = 2
)

func (s BackendState) String() string {
	switch s {
	case Active:
		return "active"
	case Terminating:
		return "terminating"
	case Quarantined:
		return "quarantined"
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// ParseBackendState takes active, terminating or quarantined.
func ParseBackendState(s string) (BackendState, error) {
	switch strings.ToLower(s) {
	case "active", "":
		return Active, nil
	case "terminating":
		return Terminating, nil
	case "quarantined":
		return Quarantined, nil
	}
	return 0, fmt.Errorf("unknown backend state %q (want active, terminating or quarantined)", s)
}

// Backend is one backend address as the datapath holds it.
type Backend struct {
	ID    BackendID
	Addr  netip.AddrPort
	Proto Proto
	State BackendState
	// Local: the backend is a pod of this node.
	Local bool
}

// LBService is one frontend entry, fully resolved for the datapath.
type LBService struct {
	Frontend Frontend
	ID       ServiceID
	Flags    Flags
	// AffinityTimeout, in seconds, with FlagAffinity.
	AffinityTimeout uint32
	// Backends are the backends that take new connections, in slot
	// order. Terminating and quarantined backends are not in it; their
	// Backend entries stay while connections may use them.
	Backends []BackendID
	// Maglev is the lookup table (length MaglevTableSize) with FlagMaglev.
	Maglev []BackendID
}

// RevNat is where replies of a frontend's connections must appear to come
// from.
type RevNat struct {
	ID   ServiceID
	Addr netip.AddrPort
}

// MaglevTableSize is the size of a Maglev lookup table: a prime, so every
// backend's permutation visits every slot (Cilium's default, 16381).
const MaglevTableSize = 16381

// MaxBackendsPerService bounds one frontend's slots (the slot number is 16
// bits; the rest keeps the map sizes sane).
const MaxBackendsPerService = 8192

// LBMap is the datapath's side: the BPF maps of services, backends and
// reverse NAT. Writes are idempotent. UpsertService writes the slots before
// the entry that counts them, and removes slots beyond the new count after
// it, so a reader never selects a slot that is not written.
type LBMap interface {
	UpsertBackend(b Backend) error
	DeleteBackend(id BackendID) error
	UpsertService(s LBService) error
	DeleteService(f Frontend) error
	UpsertRevNat(r RevNat) error
	DeleteRevNat(id ServiceID) error
	// Dump returns what the maps hold (after an agent restart, the
	// reconciler converges from it).
	Dump() (services []LBService, backends []Backend, revnats []RevNat, err error)
}
