package service

import (
	"net/netip"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

// Detail is a service as the agent runs it: the service as given (with
// defaults filled in), its backends with their IDs and locality, and the
// datapath entries it became. It is the answer of the service routes.
type Detail struct {
	// ID is the service's ID: that of its (external-scope) entry.
	ID       lb.ServiceID    `json:"id"`
	Service  Service         `json:"service"`
	Backends []BackendDetail `json:"backends"`
	Entries  []EntryDetail   `json:"entries"`
}

// BackendDetail is one backend of a service.
type BackendDetail struct {
	ID    lb.BackendID   `json:"id"`
	Addr  netip.AddrPort `json:"addr"`
	State State          `json:"state"`
	// Local: the backend runs on this node.
	Local    bool   `json:"local"`
	NodeName string `json:"nodeName,omitempty"`
}

// EntryDetail is one datapath frontend entry of a service.
type EntryDetail struct {
	ID lb.ServiceID `json:"id"`
	// Scope is "external" (all traffic, or traffic from outside the node
	// when the service has two entries) or "internal" (traffic from this
	// node and its pods).
	Scope string `json:"scope"`
	// Flags are the entry's flags by name (see FlagNames).
	Flags           []string `json:"flags,omitempty"`
	AffinityTimeout uint32   `json:"affinityTimeout,omitempty"`
	// Slots are the IDs of the backends that take new connections, in
	// slot order.
	Slots []lb.BackendID `json:"slots"`
}

// ScopeName names a scope: "external" or "internal".
func ScopeName(s lb.Scope) string {
	if s == lb.ScopeInternal {
		return "internal"
	}
	return "external"
}

var flagNames = []struct {
	f    lb.Flags
	name string
}{
	{lb.FlagNodePort, "nodeport"},
	{lb.FlagExternal, "external"},
	{lb.FlagAffinity, "affinity"},
	{lb.FlagLocal, "local"},
	{lb.FlagMaglev, "maglev"},
	{lb.FlagTwoScopes, "two-scopes"},
}

// FlagNames names the flags set in f.
func FlagNames(f lb.Flags) []string {
	var out []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (t *Table) detailLocked(s *Service) Detail {
	d := Detail{Service: s.clone(), Backends: []BackendDetail{}, Entries: []EntryDetail{}}
	for i, p := range plan(s) {
		id := t.entryIDs[p.key]
		if i == 0 {
			d.ID = id
		}
		e := t.want.services[p.key]
		slots := e.Backends
		if slots == nil {
			slots = []lb.BackendID{}
		}
		d.Entries = append(d.Entries, EntryDetail{ID: id, Scope: ScopeName(p.key.Scope), Flags: FlagNames(e.Flags),
			AffinityTimeout: e.AffinityTimeout, Slots: slots})
	}
	for _, b := range s.Backends {
		id := t.backendIDs[backendKey(s, b)]
		d.Backends = append(d.Backends, BackendDetail{ID: id, Addr: b.Addr, State: b.State,
			Local: t.want.backends[id].Local, NodeName: b.NodeName})
	}
	return d
}
