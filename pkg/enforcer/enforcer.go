// Package enforcer keeps the datapath's policy in step with the desired
// state: it gives every endpoint its security identity, resolves its policy
// from the repository, writes only the differences to the policy map, keeps
// the ipcache (address -> identity) complete, and persists imported
// policies in the state directory. It is plain Go behind the Datapath
// interface.
package enforcer

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/labels"
	"github.com/seta-net/seta/pkg/policy"
	"github.com/seta-net/seta/pkg/policy/api"
)

// Datapath is what the enforcer writes to. Established connections skip
// policy until a write changes it: every method that writes moves the
// datapath's policy revision on after its writes (pkg/datapath,
// policyrev.go), so a change takes effect for them at their next packet
// after the last call that makes it.
type Datapath interface {
	WritePolicy(epID uint16, u policy.Update) error
	PolicyState() (map[uint16]map[policy.Key]policy.Value, error)
	SyncIPCache(want map[netip.Prefix]uint32) error
	UpdateEndpoint(ep *endpoint.Endpoint) error
	// SetPolicyOpen tells the datapath which directions of an endpoint no
	// policy enforces, so it can skip their policy lookups; see
	// regenerateLocked for the order of calls that keeps this safe.
	SetPolicyOpen(epID uint16, ingress, egress bool) error
	NodeAddrs() ([]netip.Addr, error)
	PolicyCapacity() int
}

// Config of the enforcer.
type Config struct {
	Mode           policy.EnforcementMode
	AuditMode      bool // agent-wide audit: report policy drops, drop nothing
	AllowLocalhost bool
	LabelFilter    *labels.Filter
	// StateDir holds policies.json; empty keeps policies in memory.
	StateDir string
	// HostFirewall enforces the node's own policy (nodeSelector rules);
	// without it the node's entries allow everything.
	HostFirewall bool
	// NodeLabels are the node's labels (k=v), which nodeSelectors match.
	NodeLabels []string
	// OnRegenerate, if set, is told how long each endpoint regeneration
	// took (metrics).
	OnRegenerate func(time.Duration, error)
}

// HostEndpointID is the endpoint ID under which the node's own policy is
// written (HOST_EP_ID in bpf/lib/policy.h).
const HostEndpointID = 0

type epState struct {
	ep       endpoint.Endpoint
	labels   labels.Labels
	identity identity.ID
	resolved *policy.Resolved
	written  map[policy.Key]policy.Value
}

// Enforcer is the policy reconciler.
type Enforcer struct {
	log   *slog.Logger
	cfg   Config
	alloc *identity.Allocator
	dp    Datapath

	mu          sync.Mutex
	repo        *policy.Repository
	eps         map[uint16]*epState
	cookies     map[string]uint32
	cookieNames map[uint32][]string
	// pinned is the policy map as found at startup, until RestoreDone.
	pinned map[uint16]map[policy.Key]policy.Value
	// host is the node's own policy state, from RestoreDone on.
	host *epState
	// stats counts policy changes, for status and metrics.
	stats Stats
}

// Stats counts policy changes since the agent started.
type Stats struct {
	Imports int `json:"imports"`
	// ImportErrors counts changes refused or failed, TooLarge those of
	// them refused because they would overflow the policy map.
	ImportErrors int `json:"importErrors"`
	TooLarge     int `json:"refusedTooLarge"`
	Deletes      int `json:"deletes"`
}

// Stats returns the counters.
func (e *Enforcer) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// New returns an enforcer with the persisted policies loaded.
func New(log *slog.Logger, cfg Config, alloc *identity.Allocator, dp Datapath) (*Enforcer, error) {
	if cfg.LabelFilter == nil {
		cfg.LabelFilter, _ = labels.NewFilter(labels.DefaultExclusions)
	}
	e := &Enforcer{
		log: log.With("subsys", "policy"), cfg: cfg, alloc: alloc, dp: dp, repo: policy.NewRepository(),
		eps: map[uint16]*epState{}, cookies: map[string]uint32{}, cookieNames: map[uint32][]string{},
	}
	ps, err := e.loadPolicies()
	if err != nil {
		return nil, err
	}
	if len(ps) > 0 {
		if _, err := e.repo.Import(ps); err != nil {
			return nil, fmt.Errorf("restore policies: %w", err)
		}
		e.log.Info("Restored policies", "count", len(ps))
	}
	return e, nil
}

// SecurityLabels are the labels an endpoint's identity stands for: its
// labels (source k8s unless given), its namespace, and its namespace's name
// label (for namespaceSelectors), filtered to the security-relevant ones.
func (e *Enforcer) SecurityLabels(ep *endpoint.Endpoint) (labels.Labels, error) {
	ls, err := labels.ParseAll(ep.Labels, labels.SourceK8s)
	if err != nil {
		return nil, err
	}
	if ep.Namespace != "" {
		ls = labels.New(append(ls,
			labels.Label{Source: labels.SourceK8s, Key: labels.NamespaceKey, Value: ep.Namespace},
			labels.Label{Source: labels.SourceK8s, Key: policy.NamespaceLabelPrefix + policy.NamespaceNameLabel, Value: ep.Namespace},
		)...)
	}
	return e.cfg.LabelFilter.Apply(ls), nil
}

// Prepare gives a new endpoint its identity and installs its policy, before
// the datapath delivers any of its traffic. It sets ep.Identity and
// ep.SecurityLabels.
func (e *Enforcer) Prepare(ep *endpoint.Endpoint) error {
	ls, err := e.SecurityLabels(ep)
	if err != nil {
		return fmt.Errorf("%w: %v", endpoint.ErrInvalid, err)
	}
	id, err := e.alloc.Acquire(ls)
	if err != nil {
		return fmt.Errorf("allocate identity: %w", err)
	}
	ep.Identity, ep.SecurityLabels = uint32(id.ID), ls.Strings()
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &epState{ep: *ep, labels: ls, identity: id.ID, written: map[policy.Key]policy.Value{}}
	if err := e.regenerateLocked(st, e.repo); err != nil {
		e.dp.WritePolicy(ep.ID, policy.Update{Remove: keysOf(st.written)})
		e.alloc.Release(id.ID)
		return err
	}
	e.eps[ep.ID] = st
	if id.RefCount == 1 {
		// A new identity (or one back in use): policies of other endpoints
		// that select it must learn about it before it sends traffic.
		if err := e.regenerateAllLocked(e.repo); err != nil {
			e.log.Warn("Regenerating endpoints for a new identity failed", "identity", id.ID, "error", err)
		}
	} else if err := e.syncIPCacheLocked(); err != nil {
		e.log.Warn("Updating the ipcache failed", "error", err)
	}
	return nil
}

// Remove forgets an endpoint: its policy entries go and its identity is
// released.
func (e *Enforcer) Remove(ep *endpoint.Endpoint) {
	e.mu.Lock()
	st, ok := e.eps[ep.ID]
	if ok {
		delete(e.eps, ep.ID)
		if err := e.dp.WritePolicy(ep.ID, policy.Update{Remove: keysOf(st.written)}); err != nil {
			e.log.Warn("Removing policy entries failed", "endpoint", ep.ID, "error", err)
		}
		if err := e.syncIPCacheLocked(); err != nil {
			e.log.Warn("Updating the ipcache failed", "error", err)
		}
	}
	e.mu.Unlock()
	if ok {
		e.alloc.Release(st.identity)
	}
}

// Restore takes over an endpoint a restarted agent restored, before its
// datapath is reprogrammed: the identity is acquired again (the same labels
// give the same identity), the policy resolved, and only what differs from
// the pinned policy map is written.
func (e *Enforcer) Restore(ep *endpoint.Endpoint) error {
	ls, err := e.SecurityLabels(ep)
	if err != nil {
		return fmt.Errorf("endpoint %d: %w", ep.ID, err)
	}
	id, err := e.alloc.Acquire(ls)
	if err != nil {
		return fmt.Errorf("endpoint %d: allocate identity: %w", ep.ID, err)
	}
	ep.Identity, ep.SecurityLabels = uint32(id.ID), ls.Strings()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pinned == nil {
		if e.pinned, err = e.dp.PolicyState(); err != nil {
			e.alloc.Release(id.ID)
			return err
		}
	}
	written := e.pinned[ep.ID]
	if written == nil {
		written = map[policy.Key]policy.Value{}
	}
	delete(e.pinned, ep.ID)
	st := &epState{ep: *ep, labels: ls, identity: id.ID, written: written}
	if err := e.regenerateLocked(st, e.repo); err != nil {
		e.alloc.Release(id.ID)
		return fmt.Errorf("endpoint %d: %w", ep.ID, err)
	}
	e.eps[ep.ID] = st
	return nil
}

// RestoreDone removes the pinned entries of endpoints that were not
// restored and brings the ipcache up to date.
func (e *Enforcer) RestoreDone() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pinned == nil {
		var err error
		if e.pinned, err = e.dp.PolicyState(); err != nil {
			return err
		}
	}
	hl, err := e.hostLabels()
	if err != nil {
		return err
	}
	written := e.pinned[HostEndpointID]
	if written == nil {
		written = map[policy.Key]policy.Value{}
	}
	delete(e.pinned, HostEndpointID)
	host := &epState{ep: endpoint.Endpoint{ID: HostEndpointID}, labels: hl, identity: identity.Host, written: written}
	if err := e.regenerateLocked(host, e.repo); err != nil {
		return fmt.Errorf("host policy: %w", err)
	}
	e.host = host
	for id, entries := range e.pinned {
		if _, live := e.eps[id]; live {
			continue
		}
		if err := e.dp.WritePolicy(id, policy.Update{Remove: keysOf(entries)}); err != nil {
			return err
		}
	}
	e.pinned = nil
	return e.syncIPCacheLocked()
}

// resolve computes st's policy: an endpoint's from the repository, the
// node's from its nodeSelector rules when the host firewall is on.
func (e *Enforcer) resolve(st *epState, repo *policy.Repository, ids []identity.Identity) *policy.Resolved {
	if st.ep.ID == HostEndpointID && !e.cfg.HostFirewall {
		return &policy.Resolved{Revision: repo.Revision(), State: policy.MapState{
			{Dir: policy.Ingress}: {Rules: []string{"host firewall disabled"}},
			{Dir: policy.Egress}:  {Rules: []string{"host firewall disabled"}},
		}}
	}
	return repo.Resolve(st.labels, ids, policy.Options{Mode: e.cfg.Mode, AllowLocalhost: e.cfg.AllowLocalhost,
		Host: st.ep.ID == HostEndpointID})
}

// hostLabels are the node's: reserved:host and its node labels.
func (e *Enforcer) hostLabels() (labels.Labels, error) {
	ls, err := labels.ParseAll(e.cfg.NodeLabels, labels.SourceK8s)
	if err != nil {
		return nil, fmt.Errorf("node labels: %w", err)
	}
	return labels.New(append(ls, labels.Label{Source: labels.SourceReserved, Key: "host"})...), nil
}

// regenerateLocked resolves st's policy against repo and writes the
// difference.
func (e *Enforcer) regenerateLocked(st *epState, repo *policy.Repository) (err error) {
	if f := e.cfg.OnRegenerate; f != nil {
		start := time.Now()
		defer func() { f(time.Since(start), err) }()
	}
	if err := e.ensureCIDRIdentities(repo); err != nil {
		return err
	}
	res := e.resolve(st, repo, e.alloc.List())
	want := make(map[policy.Key]policy.Value, len(res.State))
	for k, en := range res.State {
		// A direction that is not enforced has only its allow-all entry.
		enforced := res.EgressEnforced
		if k.Dir == policy.Ingress {
			enforced = res.IngressEnforced
		}
		want[k] = policy.Value{Deny: en.Deny, Cookie: e.cookie(en.Rules), Unenforced: !enforced}
	}
	// A direction is marked open (no policy lookups) only while its only
	// entry is the allow-all one: a direction that becomes enforced loses
	// the mark before its entries are written, one that stops being
	// enforced gets it after its allow-all entry is. A state not known
	// (a new or restored endpoint) counts as enforced.
	wasIn, wasEg := false, false
	if st.resolved != nil {
		wasIn, wasEg = !st.resolved.IngressEnforced, !st.resolved.EgressEnforced
	}
	openIn, openEg := !res.IngressEnforced, !res.EgressEnforced
	if err := e.dp.SetPolicyOpen(st.ep.ID, wasIn && openIn, wasEg && openEg); err != nil {
		return err
	}
	u := policy.Update{Upsert: map[policy.Key]policy.Value{}}
	for k, v := range want {
		if cur, ok := st.written[k]; !ok || cur != v {
			u.Upsert[k] = v
		}
	}
	for k := range st.written {
		if _, ok := want[k]; !ok {
			u.Remove = append(u.Remove, k)
		}
	}
	if len(u.Upsert)+len(u.Remove) > 0 {
		if err := e.dp.WritePolicy(st.ep.ID, u); err != nil {
			// What was written is unknown: read it back next time.
			if have, rerr := e.dp.PolicyState(); rerr == nil {
				st.written = have[st.ep.ID]
			}
			return err
		}
	}
	st.written, st.resolved = want, res
	return e.dp.SetPolicyOpen(st.ep.ID, openIn, openEg)
}

// ensureCIDRIdentities gives every prefix the policies mention a CIDR
// identity, so the ipcache can tell the prefixes apart.
func (e *Enforcer) ensureCIDRIdentities(repo *policy.Repository) error {
	for _, p := range repo.Prefixes() {
		if _, ok := e.alloc.Lookup(labels.New(labels.Label{Source: labels.SourceCIDR, Key: p.Masked().String()})); ok {
			continue
		}
		if _, err := e.alloc.AcquireCIDR(p); err != nil {
			return err
		}
	}
	return nil
}

func (e *Enforcer) cookie(rules []string) uint32 {
	key := strings.Join(rules, "\x00")
	if c, ok := e.cookies[key]; ok {
		return c
	}
	c := uint32(len(e.cookies) + 1)
	e.cookies[key] = c
	e.cookieNames[c] = slices.Clone(rules)
	return c
}

// RulesOf names the rules behind a cookie from a datapath event.
func (e *Enforcer) RulesOf(cookie uint32) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.cookieNames[cookie])
}

// syncIPCacheLocked writes address -> identity for endpoints, the node and
// the policies' CIDRs.
func (e *Enforcer) syncIPCacheLocked() error {
	want := map[netip.Prefix]uint32{}
	for _, id := range e.alloc.List() {
		if !id.ID.IsLocal() {
			continue
		}
		for _, l := range id.Labels {
			if p, err := netip.ParsePrefix(l.Key); err == nil && l.Source == labels.SourceCIDR {
				want[p.Masked()] = uint32(id.ID)
			}
		}
	}
	addrs, err := e.dp.NodeAddrs()
	if err != nil {
		return err
	}
	for _, a := range addrs {
		want[netip.PrefixFrom(a, a.BitLen())] = uint32(identity.Host)
	}
	for _, st := range e.eps {
		for _, a := range st.ep.Addrs() {
			want[netip.PrefixFrom(a, a.BitLen())] = uint32(st.identity)
		}
	}
	return e.dp.SyncIPCache(want)
}

// regenerateAllLocked resolves every endpoint against repo.
func (e *Enforcer) regenerateAllLocked(repo *policy.Repository) error {
	var errs []error
	if e.host != nil {
		if err := e.regenerateLocked(e.host, repo); err != nil {
			errs = append(errs, fmt.Errorf("host: %w", err))
		}
	}
	for _, st := range e.eps {
		if err := e.regenerateLocked(st, repo); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %d: %w", st.ep.ID, err))
		}
	}
	if err := e.syncIPCacheLocked(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Regenerate recomputes every endpoint, e.g. after identities changed.
func (e *Enforcer) Regenerate() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.regenerateAllLocked(e.repo)
}

// ErrTooLarge means the policy would not fit in the policy map.
var ErrTooLarge = errors.New("policy does not fit in the policy map")

// Import adds or replaces policies, all or none: the new repository is
// resolved for every endpoint first, and refused if its entries would
// overflow the policy map.
func (e *Enforcer) Import(ps []*api.Policy) (uint64, error) {
	return e.change(func(r *policy.Repository) error {
		_, err := r.Import(ps)
		return err
	})
}

// Delete removes policies by key (kind/namespace/name).
func (e *Enforcer) Delete(keys ...string) (uint64, error) {
	return e.change(func(r *policy.Repository) error {
		_, err := r.Delete(keys...)
		return err
	})
}

// DeleteAll removes every policy.
func (e *Enforcer) DeleteAll() (uint64, error) {
	return e.change(func(r *policy.Repository) error { r.DeleteAll(); return nil })
}

func (e *Enforcer) change(apply func(*policy.Repository) error) (rev uint64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer func() {
		switch {
		case errors.Is(err, ErrTooLarge):
			e.stats.ImportErrors++
			e.stats.TooLarge++
			e.log.Warn("Policy refused", "error", err)
		case err != nil:
			e.stats.ImportErrors++
		default:
			e.stats.Imports++
		}
	}()
	next := e.repo.Clone()
	if err := apply(next); err != nil {
		return 0, err
	}
	if err := e.ensureCIDRIdentities(next); err != nil {
		return 0, err
	}
	total := 0
	ids := e.alloc.List()
	for _, st := range e.eps {
		total += len(e.resolve(st, next, ids).State)
	}
	if e.host != nil {
		total += len(e.resolve(e.host, next, ids).State)
	}
	if c := e.dp.PolicyCapacity(); total > c {
		return 0, fmt.Errorf("%w: it needs %d entries for %d endpoints, the map holds %d (raise --policy-map-size)", ErrTooLarge, total, len(e.eps), c)
	}
	if err := e.savePolicies(next.List()); err != nil {
		return 0, err
	}
	e.repo = next
	start := time.Now()
	err = e.regenerateAllLocked(next)
	e.log.Info("Policy changed", "revision", next.Revision(), "policies", len(next.List()), "endpoints", len(e.eps), "duration", time.Since(start))
	return next.Revision(), err
}

// Policies lists the imported policies.
func (e *Enforcer) Policies() []*api.Policy {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.repo.List()
}

// Revision is the repository revision.
func (e *Enforcer) Revision() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.repo.Revision()
}

// Status reports how policy applies to an endpoint.
func (e *Enforcer) Status(id uint16) (*endpoint.PolicyStatus, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.eps[id]
	if !ok || st.resolved == nil {
		return nil, false
	}
	mode := func(enforced bool) string {
		switch {
		case !enforced:
			return "disabled"
		case e.cfg.AuditMode || st.ep.PolicyAudit:
			return "audit"
		}
		return "enabled"
	}
	return &endpoint.PolicyStatus{
		Ingress: mode(st.resolved.IngressEnforced), Egress: mode(st.resolved.EgressEnforced),
		Revision: st.resolved.Revision, Policies: st.resolved.Policies,
	}, true
}

// State returns an endpoint's resolved map state (for dumps and trace).
func (e *Enforcer) State(id uint16) (policy.MapState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.eps[id]
	if !ok || st.resolved == nil {
		return nil, false
	}
	return st.resolved.State, true
}

// Resolve computes the policy of labels that need not belong to an endpoint
// (policy trace).
func (e *Enforcer) Resolve(ls labels.Labels) *policy.Resolved {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.repo.Resolve(ls, e.alloc.List(), policy.Options{Mode: e.cfg.Mode, AllowLocalhost: e.cfg.AllowLocalhost})
}

func keysOf(m map[policy.Key]policy.Value) []policy.Key {
	out := make([]policy.Key, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (e *Enforcer) policiesPath() string { return filepath.Join(e.cfg.StateDir, "policies.json") }

func (e *Enforcer) savePolicies(ps []*api.Policy) error {
	if e.cfg.StateDir == "" {
		return nil
	}
	b, err := json.Marshal(ps)
	if err != nil {
		return fmt.Errorf("encode policies: %w", err)
	}
	tmp := e.policiesPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save policies: %w", err)
	}
	return os.Rename(tmp, e.policiesPath())
}

func (e *Enforcer) loadPolicies() ([]*api.Policy, error) {
	if e.cfg.StateDir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(e.policiesPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read policies: %w", err)
	}
	var ps []*api.Policy
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("decode %s: %w", e.policiesPath(), err)
	}
	return ps, nil
}

// TraceLabels builds the security labels of a hypothetical endpoint for
// trace: labels without a source are k8s labels, and the namespace is the
// one its k8s:io.kubernetes.pod.namespace label names ("default" if none),
// as for a real endpoint.
func (e *Enforcer) TraceLabels(raw []string) (labels.Labels, error) {
	ls, err := labels.ParseAll(raw, labels.SourceK8s)
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		if l.Source == labels.SourceReserved {
			// A reserved identity (reserved:world, reserved:host) has
			// no namespace.
			return ls, nil
		}
	}
	ns, ok := ls.Namespace()
	if !ok {
		ns = "default"
	}
	var plain []string
	for _, l := range ls {
		if l.Source == labels.SourceK8s && (l.Key == labels.NamespaceKey || strings.HasPrefix(l.Key, policy.NamespaceLabelPrefix)) {
			continue
		}
		plain = append(plain, l.String())
	}
	return e.SecurityLabels(&endpoint.Endpoint{Labels: plain, Namespace: ns})
}

// Trace explains the verdict for a packet from an endpoint with labels src
// to one with labels dst.
func (e *Enforcer) Trace(src, dst labels.Labels, proto uint8, port uint16) v1.Trace {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := e.alloc.List()
	used := map[identity.ID]bool{}
	for _, id := range ids {
		used[id.ID] = true
	}
	// Labels no endpoint has yet get a free identity of the endpoint range
	// for the duration of the trace.
	next := identity.MaxAllocated
	idOf := func(ls labels.Labels) identity.ID {
		if id, ok := e.alloc.Lookup(ls); ok {
			return id.ID
		}
		for used[next] {
			next--
		}
		used[next] = true
		ids = append(ids, identity.Identity{ID: next, Labels: ls})
		return next
	}
	srcID, dstID := idOf(src), idOf(dst)
	opts := policy.Options{Mode: e.cfg.Mode, AllowLocalhost: e.cfg.AllowLocalhost}
	step := func(dir policy.Direction, ls labels.Labels, peer identity.ID) v1.TraceStep {
		res := e.repo.Resolve(ls, ids, opts)
		st := v1.TraceStep{Direction: dir.String(), Selecting: res.Policies}
		st.Enforced = res.IngressEnforced
		if dir == policy.Egress {
			st.Enforced = res.EgressEnforced
		}
		k, en, ok := res.State.Lookup(dir, peer, proto, port)
		switch {
		case !ok:
			st.Verdict = "dropped"
		case en.Deny:
			st.Verdict, st.Entry, st.Rules = "denied", k.String(), en.Rules
		default:
			st.Verdict, st.Entry, st.Rules = "allowed", k.String(), en.Rules
		}
		return st
	}
	t := v1.Trace{SrcIdentity: uint32(srcID), DstIdentity: uint32(dstID)}
	t.Steps = []v1.TraceStep{step(policy.Egress, src, dstID), step(policy.Ingress, dst, srcID)}
	t.Verdict = "allowed"
	for _, s := range t.Steps {
		if s.Verdict != "allowed" {
			t.Verdict = s.Verdict
			break
		}
	}
	return t
}
