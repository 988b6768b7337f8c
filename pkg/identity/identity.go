// Package identity maps sets of security-relevant labels to numeric
// identities. Reserved identities are fixed; the same labels always get the
// same allocated identity (kept across restarts in the state directory);
// identities nobody references are released after a grace period; CIDR
// peers get node-local identities. It is plain Go.
package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/seta-net/seta/pkg/labels"
)

// ID is a numeric identity as the datapath sees it.
type ID uint32

// Reserved identities.
const (
	Unknown       ID = 0
	Host          ID = 1
	World         ID = 2
	Unmanaged     ID = 3
	Health        ID = 4
	Init          ID = 5
	RemoteNode    ID = 6
	KubeAPIServer ID = 7

	// MinAllocated is the first identity handed out for endpoint labels.
	MinAllocated ID = 256
	// MaxAllocated is the last; cluster identities fit in 16 bits.
	MaxAllocated ID = 65535
	// MinLocal is the first node-local identity (CIDR peers).
	MinLocal ID = 1 << 24
	// MaxLocal is the last node-local identity.
	MaxLocal ID = 1<<24 + 1<<16 - 1
)

// ReservedNames maps reserved identities to their reserved: label key.
var ReservedNames = map[ID]string{
	Host: "host", World: "world", Unmanaged: "unmanaged", Health: "health",
	Init: "init", RemoteNode: "remote-node", KubeAPIServer: "kube-apiserver",
}

// IsReserved reports whether id is one of the fixed identities.
func (id ID) IsReserved() bool { _, ok := ReservedNames[id]; return ok }

// IsLocal reports whether id is a node-local (CIDR) identity.
func (id ID) IsLocal() bool { return id >= MinLocal && id <= MaxLocal }

// ReservedLabels returns the label set of a reserved identity.
func ReservedLabels(id ID) labels.Labels {
	return labels.New(labels.Label{Source: labels.SourceReserved, Key: ReservedNames[id]})
}

// Identity is an identity and the labels it stands for.
type Identity struct {
	ID     ID            `json:"id"`
	Labels labels.Labels `json:"-"`
	// LabelStrings is Labels rendered, for JSON.
	LabelStrings []string `json:"labels"`
	// RefCount is the number of endpoints (or CIDR users) holding it.
	RefCount int `json:"refCount"`
	// Unused is when the reference count last dropped to zero.
	Unused *time.Time `json:"unusedSince,omitempty"`
}

// ErrExhausted means no identity is free in the range.
var ErrExhausted = errors.New("no free identity")

// Allocator hands out identities for label sets.
type Allocator struct {
	mu       sync.Mutex
	path     string // persisted allocations; "" keeps them in memory
	grace    time.Duration
	now      func() time.Time
	byKey    map[string]*Identity
	byID     map[ID]*Identity
	next     ID
	nextLoc  ID
	onChange []func()
}

// Options configure an allocator.
type Options struct {
	// StateDir holds identities.json; empty keeps state in memory.
	StateDir string
	// Grace is how long an unreferenced identity is kept before GC frees it.
	Grace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type persisted struct {
	ID     ID       `json:"id"`
	Labels []string `json:"labels"`
}

// NewAllocator returns an allocator with the reserved identities and the
// persisted allocations loaded (all with reference count zero until their
// endpoints are restored).
func NewAllocator(o Options) (*Allocator, error) {
	a := &Allocator{grace: o.Grace, now: o.Now, byKey: map[string]*Identity{}, byID: map[ID]*Identity{},
		next: MinAllocated, nextLoc: MinLocal}
	if a.now == nil {
		a.now = time.Now
	}
	for id := range ReservedNames {
		a.add(&Identity{ID: id, Labels: ReservedLabels(id)})
	}
	if o.StateDir == "" {
		return a, nil
	}
	a.path = filepath.Join(o.StateDir, "identities.json")
	b, err := os.ReadFile(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read identities: %w", err)
	}
	var ps []persisted
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.path, err)
	}
	t := a.now()
	for _, p := range ps {
		ls, err := labels.ParseAll(p.Labels, labels.SourceUnspec)
		if err != nil || p.ID < MinAllocated || p.ID > MaxAllocated || a.byID[p.ID] != nil {
			return nil, fmt.Errorf("%s: bad entry %d %v", a.path, p.ID, p.Labels)
		}
		a.add(&Identity{ID: p.ID, Labels: ls, Unused: &t})
		if p.ID >= a.next {
			a.next = p.ID + 1
		}
	}
	return a, nil
}

func (a *Allocator) add(id *Identity) {
	id.LabelStrings = id.Labels.Strings()
	a.byKey[id.Labels.String()] = id
	a.byID[id.ID] = id
}

// OnChange registers fn, called (without the lock) after identities are
// added or removed, so policy can be recomputed.
func (a *Allocator) OnChange(fn func()) {
	a.mu.Lock()
	a.onChange = append(a.onChange, fn)
	a.mu.Unlock()
}

func (a *Allocator) notify() {
	a.mu.Lock()
	fns := slices.Clone(a.onChange)
	a.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Acquire returns the identity of ls, allocating one if needed, and takes a
// reference. A set that is exactly one reserved label gets that reserved
// identity.
func (a *Allocator) Acquire(ls labels.Labels) (Identity, error) { return a.acquire(ls, false) }

func (a *Allocator) acquire(ls labels.Labels, local bool) (Identity, error) {
	a.mu.Lock()
	id, isNew, err := a.acquireLocked(ls, local)
	out := a.copyOf(id)
	a.mu.Unlock()
	if err != nil {
		return Identity{}, err
	}
	if isNew {
		a.notify()
	}
	return out, nil
}

func (a *Allocator) acquireLocked(ls labels.Labels, local bool) (*Identity, bool, error) {
	key := ls.String()
	if id, ok := a.byKey[key]; ok {
		id.RefCount++
		id.Unused = nil
		return id, false, nil
	}
	lo, hi, next := MinAllocated, MaxAllocated, &a.next
	if local {
		lo, hi, next = MinLocal, MaxLocal, &a.nextLoc
	}
	n, err := a.freeID(lo, hi, next)
	if err != nil {
		return nil, false, err
	}
	id := &Identity{ID: n, Labels: ls, RefCount: 1}
	a.add(id)
	if !local {
		if err := a.saveLocked(); err != nil {
			delete(a.byKey, key)
			delete(a.byID, n)
			return nil, false, err
		}
	}
	return id, true, nil
}

func (a *Allocator) freeID(lo, hi ID, next *ID) (ID, error) {
	for i := ID(0); i <= hi-lo; i++ {
		n := *next
		*next++
		if *next > hi {
			*next = lo
		}
		if a.byID[n] == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w between %d and %d", ErrExhausted, lo, hi)
}

// AcquireCIDR returns the node-local identity of a CIDR peer and takes a
// reference.
func (a *Allocator) AcquireCIDR(p netip.Prefix) (Identity, error) {
	return a.acquire(labels.New(labels.Label{Source: labels.SourceCIDR, Key: p.Masked().String()}), true)
}

// Release drops a reference. Reserved identities are never released;
// others become unused and are freed by GC after the grace period (CIDR
// identities at once: nothing outside this node knows them).
func (a *Allocator) Release(n ID) {
	a.mu.Lock()
	id := a.byID[n]
	if id == nil || n.IsReserved() || id.RefCount == 0 {
		a.mu.Unlock()
		return
	}
	id.RefCount--
	removed := false
	if id.RefCount == 0 {
		if n.IsLocal() {
			delete(a.byKey, id.Labels.String())
			delete(a.byID, n)
			removed = true
		} else {
			t := a.now()
			id.Unused = &t
		}
	}
	a.mu.Unlock()
	if removed {
		a.notify()
	}
}

// GC frees allocated identities unused for longer than the grace period and
// returns them.
func (a *Allocator) GC() []ID {
	a.mu.Lock()
	var freed []ID
	now := a.now()
	for n, id := range a.byID {
		if n.IsReserved() || n.IsLocal() || id.RefCount > 0 || id.Unused == nil || now.Sub(*id.Unused) < a.grace {
			continue
		}
		delete(a.byKey, id.Labels.String())
		delete(a.byID, n)
		freed = append(freed, n)
	}
	var err error
	if len(freed) > 0 {
		err = a.saveLocked()
	}
	a.mu.Unlock()
	_ = err // the next allocation retries the save; GC must not fail
	slices.Sort(freed)
	if len(freed) > 0 {
		a.notify()
	}
	return freed
}

// Get returns identity n.
func (a *Allocator) Get(n ID) (Identity, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.byID[n]
	if !ok {
		return Identity{}, false
	}
	return a.copyOf(id), true
}

// Lookup returns the identity of ls without taking a reference.
func (a *Allocator) Lookup(ls labels.Labels) (Identity, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.byKey[ls.String()]
	if !ok {
		return Identity{}, false
	}
	return a.copyOf(id), true
}

// List returns every identity, by ID.
func (a *Allocator) List() []Identity {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Identity, 0, len(a.byID))
	for _, id := range a.byID {
		out = append(out, a.copyOf(id))
	}
	slices.SortFunc(out, func(x, y Identity) int { return int(x.ID) - int(y.ID) })
	return out
}

func (a *Allocator) copyOf(id *Identity) Identity {
	if id == nil {
		return Identity{}
	}
	c := *id
	c.Labels = slices.Clone(id.Labels)
	c.LabelStrings = slices.Clone(id.LabelStrings)
	if id.Unused != nil {
		t := *id.Unused
		c.Unused = &t
	}
	return c
}

// saveLocked persists the allocated (not reserved, not local) identities.
func (a *Allocator) saveLocked() error {
	if a.path == "" {
		return nil
	}
	var ps []persisted
	for n, id := range a.byID {
		if !n.IsReserved() && !n.IsLocal() {
			ps = append(ps, persisted{ID: n, Labels: id.LabelStrings})
		}
	}
	slices.SortFunc(ps, func(x, y persisted) int { return int(x.ID) - int(y.ID) })
	b, err := json.MarshalIndent(ps, "", "  ")
	if err != nil {
		return err
	}
	tmp := a.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save identities: %w", err)
	}
	if err := os.Rename(tmp, a.path); err != nil {
		return fmt.Errorf("save identities: %w", err)
	}
	return nil
}
