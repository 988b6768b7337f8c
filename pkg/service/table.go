package service

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

// Config of a Table.
type Config struct {
	// StateDir holds services.json; empty keeps everything in memory.
	StateDir string
	// NodeName is this node's name: a backend with this NodeName is local.
	NodeName string
	// NodePorts is the range NodePort frontends must use; zero is
	// DefaultNodePortRange.
	NodePorts PortRange
	// IsLocal tells whether an address belongs to an endpoint of this
	// node; nil: none does. It is asked on every sync (Refresh), so it
	// should be cheap.
	IsLocal func(netip.Addr) bool
	// ServiceMapSize is the capacity of the datapath's service map, where
	// a frontend entry takes one place plus one per slot; BackendMapSize
	// that of its backend map. 0: only the ID spaces limit (65535
	// service IDs, 2^32-1 backend IDs).
	ServiceMapSize, BackendMapSize int
}

// ID spaces; 0 is invalid in both.
const (
	maxServiceID = 1<<16 - 1
	maxBackendID = 1<<32 - 1
)

// Table holds the desired services, keyed by frontend, and keeps the
// load-balancer maps in step with them. Every change is validated first
// (and refused whole), written to the maps as differences only, and
// persisted; a change whose writes fail is undone.
//
// A change costs in proportion to the service changed, not to the table:
// only its entries and backends are expanded, diffed and written, the
// capacity check uses running counts, and it is persisted as one journal
// record. Whole-table work is left to New and Refresh.
type Table struct {
	log *slog.Logger
	cfg Config
	lbm lb.LBMap

	mu   sync.Mutex
	svcs map[L4Addr]*Service

	// Indexes kept in step with svcs (index.go): who lists each backend
	// address, and the NodePort services of each port.
	use         map[L4Addr]*beUse
	listedLocal map[L4Addr][]bool
	nodePorts   map[npKey]map[L4Addr]struct{}

	// ID allocation. An ID is held while its entry (backend) is desired
	// or still in the maps, so no ID is reused while conntrack or a slot
	// may name it; allocation is next-fit after the last ID handed out
	// for the same reason.
	entryIDs     map[lb.Frontend]lb.ServiceID
	entryOwner   map[lb.ServiceID]lb.Frontend
	lastEntry    lb.ServiceID
	backendIDs   map[L4Addr]lb.BackendID
	backendOwner map[lb.BackendID]L4Addr
	lastBackend  lb.BackendID

	// written is what the maps hold (as far as writes succeeded), want
	// what they should hold as of the last sync.
	written, want mapState
	maglev        map[lb.Frontend]maglevCache
	// Running counts over want and written (sync.go): how many written
	// entries name each backend and service ID, and the capacity sums.
	wBackendRefs map[lb.BackendID]int
	wIDRefs      map[lb.ServiceID]int
	placesNeed   int // service-map places want ∪ written need (see checkCapacityLocked)
	placesNow    int // service-map places the written entries take
	backendUnion int // backend IDs in want or written
	// failed holds, per datapath item, the error of its last write while
	// it still differs from what it should be.
	failed map[item]error

	journal journal
}

type mapState struct {
	services map[lb.Frontend]lb.LBService
	backends map[lb.BackendID]lb.Backend
	revnats  map[lb.ServiceID]lb.RevNat
}

func newMapState() mapState {
	return mapState{services: map[lb.Frontend]lb.LBService{}, backends: map[lb.BackendID]lb.Backend{}, revnats: map[lb.ServiceID]lb.RevNat{}}
}

type maglevCache struct{ slots, table []lb.BackendID }

// orphanKey owns service IDs that only a pinned reverse-NAT entry uses; no
// service ever has it, so the ID is freed once that entry is deleted.
var orphanKey = lb.Frontend{}

// New restores the table: the services saved in cfg.StateDir are taken
// back, the IDs are those the pinned maps use (else the saved ones), and
// only what differs from the maps is written. A failed write is logged
// and retried by the next Refresh; an unreadable state file or maps are
// errors.
func New(log *slog.Logger, cfg Config, lbm lb.LBMap) (*Table, error) {
	if cfg.NodePorts == (PortRange{}) {
		cfg.NodePorts = DefaultNodePortRange
	}
	t := &Table{
		log: log.With("subsys", "service"), cfg: cfg, lbm: lbm,
		svcs:     map[L4Addr]*Service{},
		entryIDs: map[lb.Frontend]lb.ServiceID{}, entryOwner: map[lb.ServiceID]lb.Frontend{},
		backendIDs: map[L4Addr]lb.BackendID{}, backendOwner: map[lb.BackendID]L4Addr{},
		written: newMapState(), want: newMapState(), maglev: map[lb.Frontend]maglevCache{},
		wBackendRefs: map[lb.BackendID]int{}, wIDRefs: map[lb.ServiceID]int{}, failed: map[item]error{},
	}
	t.reindexLocked() // empty indexes
	saved, err := t.load()
	if err != nil {
		return nil, err
	}
	services, backends, revnats, err := lbm.Dump()
	if err != nil {
		return nil, fmt.Errorf("read the load-balancer maps: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Pinned IDs first: established connections name them in conntrack.
	for _, s := range services {
		s.Backends, s.Maglev = slices.Clone(s.Backends), slices.Clone(s.Maglev)
		t.setWritten(s.Frontend, s)
		t.claimEntry(s.Frontend, s.ID)
	}
	for _, b := range backends {
		t.setWrittenBackend(b)
		t.claimBackend(L4Addr{Addr: b.Addr.Addr(), Port: b.Addr.Port(), Proto: b.Proto}, b.ID)
	}
	for _, r := range revnats {
		t.written.revnats[r.ID] = r
		if _, used := t.entryOwner[r.ID]; !used && r.ID != 0 {
			t.entryOwner[r.ID] = orphanKey
		}
	}
	if saved != nil {
		t.restoreSaved(saved)
	}
	for _, k := range slices.SortedFunc(maps.Keys(t.svcs), compareL4) {
		if err := t.assignIDsLocked(t.svcs[k]); err != nil {
			return nil, err
		}
	}
	if err := t.syncAllLocked(); err != nil {
		t.log.Error("Writing the services to the datapath failed; retrying later", "error", err)
	}
	// Start from a fresh snapshot and an empty journal.
	if err := t.compactLocked(); err != nil {
		return nil, err
	}
	t.log.Info("Restored services", "services", len(t.svcs), "pinnedEntries", len(services), "pinnedBackends", len(backends))
	return t, nil
}

// restoreSaved takes back the saved services and, where the maps do not
// already name them, their saved IDs. A saved service that is no longer
// valid (the node port range changed, say) is dropped with an error in the
// log: the configuration decides what may run.
func (t *Table) restoreSaved(st *savedState) {
	t.lastEntry, t.lastBackend = st.LastServiceID, st.LastBackendID
	for _, ss := range st.Services {
		n, err := t.validateLocked(ss.Service)
		if err != nil {
			t.log.Error("Dropping a saved service", "frontend", ss.Service.Frontend.String(), "error", err)
			continue
		}
		t.swapLocked(t.svcs[n.Frontend], &n, nil)
		for _, p := range plan(&n) {
			id := ss.ID
			if p.key.Scope == lb.ScopeInternal {
				id = ss.InternalID
			}
			if _, has := t.entryIDs[p.key]; !has && id != 0 {
				if _, taken := t.entryOwner[id]; !taken {
					t.claimEntry(p.key, id)
				}
			}
		}
	}
	for _, sb := range st.Backends {
		if _, has := t.backendIDs[sb.Addr]; !has && sb.ID != 0 {
			if _, taken := t.backendOwner[sb.ID]; !taken {
				t.claimBackend(sb.Addr, sb.ID)
			}
		}
	}
}

func (t *Table) claimEntry(key lb.Frontend, id lb.ServiceID) {
	if id == 0 {
		return
	}
	if _, taken := t.entryOwner[id]; taken {
		return // two pinned entries with one ID: the second is deleted by the sync
	}
	t.entryOwner[id] = key
	if _, has := t.entryIDs[key]; !has {
		t.entryIDs[key] = id
	}
}

func (t *Table) claimBackend(key L4Addr, id lb.BackendID) {
	if id == 0 {
		return
	}
	if _, taken := t.backendOwner[id]; taken {
		return
	}
	t.backendOwner[id] = key
	if _, has := t.backendIDs[key]; !has {
		t.backendIDs[key] = id
	}
}

// Upsert adds the service, or replaces the one with the same frontend. It
// returns the service as applied and whether it is new. A service that is
// invalid (ErrInvalid), conflicts with another (ErrConflict) or does not fit
// (ErrLimit) changes nothing; nor does one whose writes fail.
func (t *Table) Upsert(s Service) (Detail, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.validateLocked(s)
	if err != nil {
		return Detail{}, false, err
	}
	prev := t.svcs[n.Frontend]
	if err := t.changeLocked(prev, &n); err != nil {
		return Detail{}, false, err
	}
	return t.detailLocked(&n), prev == nil, nil
}

// Delete removes the service that has id (the ID of either of its entries).
func (t *Table) Delete(id lb.ServiceID) (Detail, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.byIDLocked(id)
	if !ok {
		return Detail{}, fmt.Errorf("%w: no service has ID %d", ErrNotFound, id)
	}
	return t.deleteLocked(s)
}

// DeleteFrontend removes the service of a frontend.
func (t *Table) DeleteFrontend(f L4Addr) (Detail, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.svcs[f]
	if !ok {
		return Detail{}, fmt.Errorf("%w: no service has frontend %s", ErrNotFound, f)
	}
	return t.deleteLocked(s)
}

func (t *Table) deleteLocked(s *Service) (Detail, error) {
	d := t.detailLocked(s)
	if err := t.changeLocked(s, nil); err != nil {
		return Detail{}, err
	}
	return d, nil
}

// Get returns the service that has id (the ID of either of its entries).
func (t *Table) Get(id lb.ServiceID) (Detail, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.byIDLocked(id)
	if !ok {
		return Detail{}, fmt.Errorf("%w: no service has ID %d", ErrNotFound, id)
	}
	return t.detailLocked(s), nil
}

// Lookup returns the service of a frontend.
func (t *Table) Lookup(f L4Addr) (Detail, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.svcs[f]
	if !ok {
		return Detail{}, fmt.Errorf("%w: no service has frontend %s", ErrNotFound, f)
	}
	return t.detailLocked(s), nil
}

// List returns every service, ordered by ID.
func (t *Table) List() []Detail {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Detail, 0, len(t.svcs))
	for _, s := range t.svcs {
		out = append(out, t.detailLocked(s))
	}
	slices.SortFunc(out, func(a, b Detail) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Len is the number of services.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.svcs)
}

// Refresh recomputes every entry and writes what changed: call it when
// endpoints of the node come or go (which backends are local), and to
// retry writes that failed. Unlike a change, it costs in proportion to
// the whole table.
func (t *Table) Refresh() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.syncAllLocked()
}

// Err tells why the maps do not hold what they should (the failed writes
// not yet made good), nil when they do.
func (t *Table) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failedErrLocked()
}

func (t *Table) byIDLocked(id lb.ServiceID) (*Service, bool) {
	key, ok := t.entryOwner[id]
	if !ok || t.entryIDs[key] != id {
		return nil, false
	}
	s, ok := t.svcs[L4Addr{Addr: key.Addr, Port: key.Port, Proto: key.Proto}]
	if !ok {
		return nil, false
	}
	for _, p := range plan(s) {
		if p.key == key {
			return s, true
		}
	}
	return nil, false // a leftover entry of the service's previous shape
}

// validateLocked normalizes s and checks it against the other services.
func (t *Table) validateLocked(s Service) (Service, error) {
	n, err := Normalize(s, t.cfg.NodePorts)
	if err != nil {
		return Service{}, err
	}
	if cur, ok := t.svcs[n.Frontend]; ok && cur.DisplayName() != n.DisplayName() {
		return Service{}, fmt.Errorf("%w: frontend %s belongs to %s; delete it first to give the frontend to %s",
			ErrConflict, n.Frontend, t.describeLocked(cur), describeName(n.DisplayName()))
	}
	if n.Type == NodePort {
		// A NodePort on the unspecified address takes the port on every
		// node address, so it overlaps any other NodePort of that port.
		for f := range t.nodePorts[nodePortKey(n.Frontend)] {
			o := t.svcs[f]
			of, nf := o.Frontend, n.Frontend
			if of == nf {
				continue
			}
			if of.Addr.IsUnspecified() || nf.Addr.IsUnspecified() {
				return Service{}, fmt.Errorf("%w: NodePort frontend %s overlaps %s of %s (a NodePort on the unspecified address takes the port on every node address)",
					ErrConflict, nf, of, t.describeLocked(o))
			}
		}
	}
	return n, nil
}

func (t *Table) describeLocked(s *Service) string {
	id := t.entryIDs[lb.Frontend{Addr: s.Frontend.Addr, Port: s.Frontend.Port, Proto: s.Frontend.Proto}]
	if name := s.DisplayName(); name != "" {
		return fmt.Sprintf("service %s (ID %d)", name, id)
	}
	return fmt.Sprintf("service ID %d", id)
}

func describeName(name string) string {
	if name == "" {
		return "an unnamed service"
	}
	return name
}

// plannedEntry is one datapath entry of a service, before IDs.
type plannedEntry struct {
	key   lb.Frontend
	flags lb.Flags
	// localOnly: the slots hold only this node's backends.
	localOnly bool
}

// plan expands a normalized service into its datapath entries: one entry,
// or two when traffic from inside and from outside the node must see
// different backends.
func plan(s *Service) []plannedEntry {
	fe := lb.Frontend{Addr: s.Frontend.Addr, Port: s.Frontend.Port, Proto: s.Frontend.Proto, Scope: lb.ScopeExternal}
	var flags lb.Flags
	switch s.Type {
	case NodePort:
		flags |= lb.FlagNodePort
	case LoadBalancer, ExternalIPs:
		// Handled like a ClusterIP from inside and like a NodePort from
		// outside; the flag tells the datapath it is reachable from outside.
		flags |= lb.FlagExternal
	}
	if s.SessionAffinity == AffinityClientIP {
		flags |= lb.FlagAffinity
	}
	if !s.Type.external() {
		// No traffic from outside: only the internal policy matters,
		// and it goes into the single (ScopeExternal) entry.
		return []plannedEntry{{key: fe, flags: flags, localOnly: s.InternalTrafficPolicy == TrafficLocal}}
	}
	ext := plannedEntry{key: fe, flags: flags, localOnly: s.ExternalTrafficPolicy == TrafficLocal}
	if s.Algorithm == AlgorithmMaglev {
		ext.flags |= lb.FlagMaglev // the datapath uses it for traffic from outside only
	}
	if s.ExternalTrafficPolicy == s.InternalTrafficPolicy {
		return []plannedEntry{ext}
	}
	// The policies differ, so the scopes differ even when every backend
	// happens to be local: keeping the shape fixed means entries do not
	// come and go with pods.
	ext.flags |= lb.FlagTwoScopes
	in := fe
	in.Scope = lb.ScopeInternal
	return []plannedEntry{ext, {key: in, flags: flags, localOnly: s.InternalTrafficPolicy == TrafficLocal}}
}

func backendKey(s *Service, b Backend) L4Addr {
	return L4Addr{Addr: b.Addr.Addr(), Port: b.Addr.Port(), Proto: s.Frontend.Proto}
}

// assignIDsLocked gives every entry and backend of s an ID (none for a nil
// s).
func (t *Table) assignIDsLocked(s *Service) error {
	if s == nil {
		return nil
	}
	for _, p := range plan(s) {
		if _, ok := t.entryIDs[p.key]; ok {
			continue
		}
		id, err := t.allocEntry(p.key)
		if err != nil {
			return err
		}
		t.entryIDs[p.key], t.entryOwner[id] = id, p.key
	}
	for _, b := range s.Backends {
		bk := backendKey(s, b)
		if _, ok := t.backendIDs[bk]; ok {
			continue
		}
		id, err := t.allocBackend()
		if err != nil {
			return err
		}
		t.backendIDs[bk], t.backendOwner[id] = id, bk
	}
	return nil
}

func (t *Table) allocEntry(key lb.Frontend) (lb.ServiceID, error) {
	id := t.lastEntry
	for range maxServiceID {
		if id++; id == 0 {
			id = 1
		}
		if _, used := t.entryOwner[id]; !used {
			t.lastEntry = id
			return id, nil
		}
	}
	return 0, fmt.Errorf("%w: no free service ID for %s (all %d are in use)", ErrLimit, key, maxServiceID)
}

func (t *Table) allocBackend() (lb.BackendID, error) {
	if len(t.backendOwner) >= maxBackendID {
		return 0, fmt.Errorf("%w: no free backend ID", ErrLimit)
	}
	id := t.lastBackend
	for {
		if id++; id == 0 {
			id = 1
		}
		if _, used := t.backendOwner[id]; !used {
			t.lastBackend = id
			return id, nil
		}
	}
}

// local says whether b runs on this node.
func (t *Table) local(b Backend) bool {
	switch {
	case b.Local:
		return true
	case b.NodeName != "":
		return b.NodeName == t.cfg.NodeName
	}
	return t.cfg.IsLocal != nil && t.cfg.IsLocal(b.Addr.Addr())
}

// maglevTable returns the entry's table, computing it only when its slots
// changed (a table costs M probes or more; syncs happen on every endpoint
// change).
func (t *Table) maglevTable(key lb.Frontend, slots []lb.BackendID, names []string) []lb.BackendID {
	if c, ok := t.maglev[key]; ok && slices.Equal(c.slots, slots) {
		return c.table
	}
	idx := MaglevTable(names, lb.MaglevTableSize)
	table := make([]lb.BackendID, len(idx))
	for i, j := range idx {
		table[i] = slots[j]
	}
	t.maglev[key] = maglevCache{slots: slices.Clone(slots), table: table}
	return table
}

func sameService(a, b lb.LBService) bool {
	return a.Frontend == b.Frontend && a.ID == b.ID && a.Flags == b.Flags && a.AffinityTimeout == b.AffinityTimeout &&
		slices.Equal(a.Backends, b.Backends) && slices.Equal(a.Maglev, b.Maglev)
}

func upsertOrder(a, b lb.Frontend) int {
	// Internal scope (1) first.
	return cmp.Or(cmp.Compare(b.Scope, a.Scope), compareFrontend(a, b))
}

func deleteOrder(a, b lb.Frontend) int {
	return cmp.Or(cmp.Compare(a.Scope, b.Scope), compareFrontend(a, b))
}

func compareFrontend(a, b lb.Frontend) int {
	return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Scope, b.Scope))
}

func compareL4(a, b L4Addr) int {
	return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
}
