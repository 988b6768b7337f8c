// Package policy turns network policies into the flat per-endpoint state the
// datapath enforces. The Repository holds the imported policies (CNP, CCNP,
// Kubernetes NetworkPolicy) compiled into one internal rule form; Resolve
// computes an endpoint's MapState from them and the current identities.
// It is plain Go, tested without root.
package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/labels"
	"github.com/seta-net/seta/pkg/policy/api"
)

// EnforcementMode is the agent-wide policy enforcement mode.
type EnforcementMode string

const (
	// ModeDefault enforces a direction once a policy selects the endpoint
	// with rules for that direction.
	ModeDefault EnforcementMode = "default"
	// ModeAlways enforces both directions on every endpoint.
	ModeAlways EnforcementMode = "always"
	// ModeNever allows everything.
	ModeNever EnforcementMode = "never"
)

// ParseMode validates a mode name.
func ParseMode(s string) (EnforcementMode, error) {
	switch EnforcementMode(s) {
	case ModeDefault, ModeAlways, ModeNever:
		return EnforcementMode(s), nil
	}
	return "", fmt.Errorf("unknown policy enforcement mode %q (want default, always or never)", s)
}

// l4 is a protocol and port range; any means every protocol and port.
type l4 struct {
	any    bool
	proto  uint8
	lo, hi uint16
	all    bool // every port of proto
}

type peers struct {
	any       bool
	selectors []selector
	entities  []api.Entity
	cidrs     []api.CIDRRule
}

type peerRule struct {
	peers peers
	ports []l4 // empty: every protocol and port
}

type rule struct {
	policy  string
	subject selector
	// node rules (nodeSelector) select only the node itself (Options.Host).
	node                  bool
	hasIngress, hasEgress bool
	ingress, ingressDeny  []peerRule
	egress, egressDeny    []peerRule
}

// Repository holds the imported policies.
type Repository struct {
	mu       sync.RWMutex
	policies map[string]*api.Policy
	rules    map[string][]*rule
	revision uint64
}

// NewRepository returns an empty repository at revision 1.
func NewRepository() *Repository {
	return &Repository{policies: map[string]*api.Policy{}, rules: map[string][]*rule{}, revision: 1}
}

// Revision is bumped by every change.
func (r *Repository) Revision() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.revision
}

// Import adds or replaces policies (by kind/namespace/name), all or none.
func (r *Repository) Import(ps []*api.Policy) (uint64, error) {
	compiled := map[string][]*rule{}
	for _, p := range ps {
		rs, err := compilePolicy(p)
		if err != nil {
			return 0, fmt.Errorf("policy %s: %w", p.Key(), err)
		}
		compiled[p.Key()] = rs
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		r.policies[p.Key()] = p
		r.rules[p.Key()] = compiled[p.Key()]
	}
	r.revision++
	return r.revision, nil
}

// Delete removes policies by key; unknown keys are an error and nothing is
// removed.
func (r *Repository) Delete(keys ...string) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if _, ok := r.policies[k]; !ok {
			return 0, fmt.Errorf("no policy %s", k)
		}
	}
	for _, k := range keys {
		delete(r.policies, k)
		delete(r.rules, k)
	}
	r.revision++
	return r.revision, nil
}

// DeleteAll removes every policy.
func (r *Repository) DeleteAll() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.policies = map[string]*api.Policy{}
	r.rules = map[string][]*rule{}
	r.revision++
	return r.revision
}

// List returns the policies sorted by key.
func (r *Repository) List() []*api.Policy {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*api.Policy, 0, len(r.policies))
	for _, p := range r.policies {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// Prefixes returns every CIDR (and except) the policies mention; each needs
// a CIDR identity for the datapath to tell them apart.
func (r *Repository) Prefixes() []netip.Prefix {
	r.mu.RLock()
	defer r.mu.RUnlock()
	seen := map[netip.Prefix]bool{}
	for _, rs := range r.rules {
		for _, ru := range rs {
			for _, set := range [][]peerRule{ru.ingress, ru.ingressDeny, ru.egress, ru.egressDeny} {
				for _, pr := range set {
					for _, c := range pr.peers.cidrs {
						seen[c.CIDR.Prefix] = true
						for _, e := range c.Except {
							seen[e.Prefix] = true
						}
					}
				}
			}
		}
	}
	out := make([]netip.Prefix, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Options for Resolve.
type Options struct {
	Mode EnforcementMode
	// AllowLocalhost admits ingress from the node itself (kubelet probes)
	// whatever the policy says, unless a deny rule matches, as Cilium's
	// default allow-localhost does.
	AllowLocalhost bool
	// Host resolves the policy of the node itself: only nodeSelector rules
	// select it, and ls are the node's labels.
	Host bool
}

// Resolved is an endpoint's policy.
type Resolved struct {
	Revision        uint64
	IngressEnforced bool
	EgressEnforced  bool
	State           MapState
	// Policies that select the endpoint.
	Policies []string
}

// Resolve computes the policy of an endpoint with labels ls, given every
// identity known to the node.
func (r *Repository) Resolve(ls labels.Labels, ids []identity.Identity, o Options) *Resolved {
	r.mu.RLock()
	defer r.mu.RUnlock()
	res := &Resolved{Revision: r.revision, State: MapState{}}
	var selecting []*rule
	for _, rs := range r.rules {
		for _, ru := range rs {
			if ru.node == o.Host && ru.subject.matches(ls) {
				selecting = append(selecting, ru)
				if !slices.Contains(res.Policies, ru.policy) {
					res.Policies = append(res.Policies, ru.policy)
				}
			}
		}
	}
	slices.Sort(res.Policies)
	u := newUniverse(ids)
	for _, dir := range []Direction{Ingress, Egress} {
		enforced := o.Mode == ModeAlways
		if o.Mode == ModeDefault {
			for _, ru := range selecting {
				if dir == Ingress && ru.hasIngress || dir == Egress && ru.hasEgress {
					enforced = true
				}
			}
		}
		if dir == Ingress {
			res.IngressEnforced = enforced
		} else {
			res.EgressEnforced = enforced
		}
		if !enforced {
			res.State.add(Key{Dir: dir}, Entry{Rules: []string{"enforcement disabled"}})
			continue
		}
		if dir == Ingress && o.AllowLocalhost && !o.Host {
			res.State.add(Key{Dir: Ingress, Identity: identity.Host}, Entry{Rules: []string{"allow-localhost"}})
		}
		for _, ru := range selecting {
			allow, deny := ru.egress, ru.egressDeny
			if dir == Ingress {
				allow, deny = ru.ingress, ru.ingressDeny
			}
			for _, pr := range allow {
				u.addEntries(res.State, dir, pr, Entry{Rules: []string{ru.policy}})
			}
			for _, pr := range deny {
				u.addEntries(res.State, dir, pr, Entry{Deny: true, Rules: []string{ru.policy}})
			}
		}
	}
	res.State.resolveDenies()
	return res
}

// universe is the set of identities a resolution can refer to.
type universe struct {
	ids   []identity.Identity
	cidrs map[identity.ID]netip.Prefix
}

func newUniverse(ids []identity.Identity) *universe {
	u := &universe{ids: ids, cidrs: map[identity.ID]netip.Prefix{}}
	for _, id := range ids {
		if !id.ID.IsLocal() {
			continue
		}
		for _, l := range id.Labels {
			if l.Source == labels.SourceCIDR {
				if p, err := netip.ParsePrefix(l.Key); err == nil {
					u.cidrs[id.ID] = p
				}
			}
		}
	}
	return u
}

// isEndpoint reports whether id stands for workload endpoints.
func isEndpoint(id identity.ID) bool {
	return id >= identity.MinAllocated && id <= identity.MaxAllocated
}

// resolvePeers returns the identities a peer set stands for, or any=true.
func (u *universe) resolvePeers(p peers) (any bool, out []identity.ID) {
	if p.any {
		return true, nil
	}
	set := map[identity.ID]bool{}
	for _, sel := range p.selectors {
		for _, id := range u.ids {
			if id.ID.IsLocal() {
				continue
			}
			if id.ID.IsReserved() && !selectsReserved(sel) {
				continue
			}
			if !id.ID.IsReserved() && !isEndpoint(id.ID) {
				continue
			}
			if sel.matches(id.Labels) {
				set[id.ID] = true
			}
		}
	}
	for _, e := range p.entities {
		switch e {
		case api.EntityAll:
			return true, nil
		case api.EntityWorld:
			set[identity.World] = true
			for id := range u.cidrs {
				set[id] = true
			}
		case api.EntityCluster:
			for _, id := range u.ids {
				if isEndpoint(id.ID) || (id.ID.IsReserved() && id.ID != identity.World) {
					set[id.ID] = true
				}
			}
		case api.EntityHost:
			set[identity.Host] = true
		case api.EntityRemoteNode:
			set[identity.RemoteNode] = true
		case api.EntityHealth:
			set[identity.Health] = true
		case api.EntityInit:
			set[identity.Init] = true
		case api.EntityUnmanaged:
			set[identity.Unmanaged] = true
		case api.EntityKubeAPIServer:
			set[identity.KubeAPIServer] = true
		}
	}
	for _, c := range p.cidrs {
		if c.CIDR.Prefix.Bits() == 0 && len(c.Except) == 0 {
			set[identity.World] = true
		}
		for id, pfx := range u.cidrs {
			if !within(pfx, c.CIDR.Prefix) {
				continue
			}
			excluded := false
			for _, e := range c.Except {
				if within(pfx, e.Prefix) {
					excluded = true
					break
				}
			}
			if !excluded {
				set[id] = true
			}
		}
	}
	out = make([]identity.ID, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.Sort(out)
	return false, out
}

// within reports whether inner lies inside outer.
func within(inner, outer netip.Prefix) bool {
	return inner.Addr().Is4() == outer.Addr().Is4() && inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

// selectsReserved reports whether a selector names a reserved label.
func selectsReserved(s selector) bool {
	for _, r := range s.reqs {
		if src, _ := labels.SplitSelectorKey(r.key); src == labels.SourceReserved {
			return true
		}
	}
	return false
}

func (u *universe) addEntries(m MapState, dir Direction, pr peerRule, e Entry) {
	any, ids := u.resolvePeers(pr.peers)
	if !any && len(ids) == 0 {
		return // selects no peer (yet): an empty rule, or no matching identity
	}
	if any {
		ids = []identity.ID{0}
	}
	keys := l4Keys(pr.ports)
	for _, id := range ids {
		for _, k := range keys {
			k.Dir, k.Identity = dir, id
			m.add(k, Entry{Deny: e.Deny, Rules: slices.Clone(e.Rules)})
		}
	}
}

// l4Keys expands port rules into keys (identity and direction unset).
func l4Keys(ports []l4) []Key {
	if len(ports) == 0 {
		return []Key{{}}
	}
	var out []Key
	for _, p := range ports {
		switch {
		case p.any:
			out = append(out, Key{})
		case p.all:
			out = append(out, Key{Proto: p.proto})
		default:
			for _, pp := range PortPrefixes(p.lo, p.hi) {
				out = append(out, Key{Proto: p.proto, Port: uint16(pp[0]), PortBits: uint8(pp[1])})
			}
		}
	}
	return out
}

// Clone returns an independent copy (policies are shared, read-only).
func (r *Repository) Clone() *Repository {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := &Repository{policies: map[string]*api.Policy{}, rules: map[string][]*rule{}, revision: r.revision}
	for k, v := range r.policies {
		c.policies[k] = v
	}
	for k, v := range r.rules {
		c.rules[k] = v
	}
	return c
}
