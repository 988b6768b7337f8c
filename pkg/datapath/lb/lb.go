package lb

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/datapath/bpf"
	"github.com/seta-net/seta/pkg/loadbalancer"
)

// Pinned map names, as declared in bpf/lib/lb.h.
const (
	ServicesMapName   = "seta_lb_services"
	BackendsMapName   = "seta_lb_backends"
	RevNatMapName     = "seta_lb_revnat"
	AffinityMapName   = "seta_lb_affinity"
	MaglevMapName     = "seta_lb_maglev"
	SockRevNatMapName = "seta_lb_sock_revnat"
)

// MapNames lists every map of this package.
var MapNames = []string{ServicesMapName, BackendsMapName, RevNatMapName, AffinityMapName, MaglevMapName, SockRevNatMapName}

// Default capacities (bpf/lib/lb.h). DefaultMapSize is Cilium's
// --bpf-lb-map-max default; the socket rev-NAT map holds up to two entries
// per UDP flow and one per connected socket, hence the larger default.
const (
	DefaultMapSize           = 65536
	DefaultAffinityMapSize   = 65536
	DefaultSockRevNatMapSize = 262144
	// MaxRevNatMapSize bounds the rev-NAT and Maglev maps: their keys are
	// 16-bit ServiceIDs, so more entries could never be used.
	MaxRevNatMapSize = 1 << 16
)

// Maps are the loaded maps a Map works on.
type Maps struct {
	Services, Backends, RevNat, Affinity, Maglev, SockRevNat *ebpf.Map
}

func (m Maps) close() error {
	var errs []error
	for _, x := range []*ebpf.Map{m.Services, m.Backends, m.RevNat, m.Affinity, m.Maglev, m.SockRevNat} {
		if x != nil {
			errs = append(errs, x.Close())
		}
	}
	return errors.Join(errs...)
}

// Map is typed access to the load-balancing maps. It implements
// loadbalancer.LBMap. It is not safe for concurrent writers: the service
// control plane is its one writer.
type Map struct {
	m     Maps
	owned bool // Close closes the maps (OpenPinned, NewUnpinned)
}

var _ loadbalancer.LBMap = (*Map)(nil)

// New wraps maps the loader loaded (and pinned). Close does not close them:
// the loader owns them.
func New(m Maps) *Map { return &Map{m: m} }

// OpenPinned opens the agent's pinned maps under bpfRoot (for the CLI).
func OpenPinned(bpfRoot string) (*Map, error) {
	var m Maps
	for _, x := range []struct {
		name string
		dst  **ebpf.Map
	}{
		{ServicesMapName, &m.Services}, {BackendsMapName, &m.Backends}, {RevNatMapName, &m.RevNat},
		{AffinityMapName, &m.Affinity}, {MaglevMapName, &m.Maglev}, {SockRevNatMapName, &m.SockRevNat},
	} {
		path := filepath.Join(bpfRoot, x.name)
		mp, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("open pinned map %s (is the agent running with --bpf-root %s, and are you root?): %w", path, bpfRoot, err)
		}
		*x.dst = mp
	}
	return &Map{m: m, owned: true}, nil
}

// Sizes are the capacities of the maps; zero keeps the default.
type Sizes struct {
	// Map is the capacity of the services map (every frontend takes
	// 1 + its number of backends), the backends map, and, up to
	// MaxRevNatMapSize, the rev-NAT and Maglev maps.
	Map uint32
	// Affinity is the capacity of the affinity map.
	Affinity uint32
	// SockRevNat is the capacity of the socket rev-NAT map.
	SockRevNat uint32
}

// Apply sets the capacities in the map specs of cs that this package owns;
// maps cs does not declare are skipped, so it serves every collection that
// includes bpf/lib/lb.h.
func (s Sizes) Apply(cs *ebpf.CollectionSpec) {
	set := func(name string, n uint32) {
		if ms, ok := cs.Maps[name]; ok && n > 0 {
			ms.MaxEntries = n
		}
	}
	set(ServicesMapName, s.Map)
	set(BackendsMapName, s.Map)
	set(RevNatMapName, min(s.Map, MaxRevNatMapSize))
	set(MaglevMapName, min(s.Map, MaxRevNatMapSize))
	set(AffinityMapName, s.Affinity)
	set(SockRevNatMapName, s.SockRevNat)
}

// NewUnpinned creates fresh, unpinned maps with the datapath's layout (for
// tests). Close removes them.
func NewUnpinned(sizes Sizes) (*Map, error) {
	cs, err := bpf.LoadSock()
	if err != nil {
		return nil, fmt.Errorf("parse embedded ELF: %w", err)
	}
	sizes.Apply(cs)
	var m Maps
	for _, x := range []struct {
		name string
		dst  **ebpf.Map
	}{
		{ServicesMapName, &m.Services}, {BackendsMapName, &m.Backends}, {RevNatMapName, &m.RevNat},
		{AffinityMapName, &m.Affinity}, {MaglevMapName, &m.Maglev}, {SockRevNatMapName, &m.SockRevNat},
	} {
		spec := cs.Maps[x.name].Copy()
		spec.Pinning = ebpf.PinNone
		mp, err := ebpf.NewMap(spec)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("create %s: %w", x.name, err)
		}
		*x.dst = mp
	}
	return &Map{m: m, owned: true}, nil
}

// Close releases the maps' file descriptors if this Map opened them.
func (m *Map) Close() error {
	if !m.owned {
		return nil
	}
	return m.m.close()
}

// Maps returns the underlying maps.
func (m *Map) Maps() Maps { return m.m }

func mapErr(op string, mp *ebpf.Map, what any, err error) error {
	if errors.Is(err, syscall.E2BIG) {
		err = fmt.Errorf("map is full (%d entries); raise its size in the agent config: %w", mp.MaxEntries(), err)
	}
	return fmt.Errorf("%s %s[%v]: %w", op, mp.String(), what, err)
}

func deleteKey(mp *ebpf.Map, key any, what any) error {
	if err := mp.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return mapErr("delete", mp, what, err)
	}
	return nil
}

// UpsertBackend writes backend b.
func (m *Map) UpsertBackend(b loadbalancer.Backend) error {
	v, err := NewBackendValue(b)
	if err != nil {
		return err
	}
	id := uint32(b.ID)
	if err := m.m.Backends.Update(&id, &v, ebpf.UpdateAny); err != nil {
		return mapErr("update", m.m.Backends, id, err)
	}
	return nil
}

// DeleteBackend removes a backend; a missing one is not an error. The
// control plane removes a backend from every service's slots first.
func (m *Map) DeleteBackend(id loadbalancer.BackendID) error {
	k := uint32(id)
	return deleteKey(m.m.Backends, &k, k)
}

// lookupSlot reads one entry of a frontend.
func (m *Map) lookupSlot(k ServiceKey) (ServiceValue, bool, error) {
	var v ServiceValue
	err := m.m.Services.Lookup(&k, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return v, false, nil
	}
	if err != nil {
		return v, false, mapErr("lookup", m.m.Services, FrontendOf(k), err)
	}
	return v, true, nil
}

// slotBackends reads slots 1..count of the frontend key k names.
func (m *Map) slotBackends(k ServiceKey, count uint16) ([]loadbalancer.BackendID, error) {
	out := make([]loadbalancer.BackendID, 0, count)
	for i := uint16(1); i <= count; i++ {
		k.Slot = i
		v, ok, err := m.lookupSlot(k)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, loadbalancer.BackendID(v.BackendId))
		}
	}
	return out, nil
}

// deleteSlots removes slots from..to of the frontend k names, and then
// any further slots up to the first missing one: leftovers of a writer that
// died between writing slots and trimming them.
func (m *Map) deleteSlots(k ServiceKey, from, to uint16) error {
	for i := from; i >= from && i != 0; i++ { // stops at the uint16 wrap
		k.Slot = i
		err := m.m.Services.Delete(&k)
		if errors.Is(err, ebpf.ErrKeyNotExist) && i > to {
			return nil
		}
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return mapErr("delete", m.m.Services, fmt.Sprintf("%s slot %d", FrontendOf(k), i), err)
		}
	}
	return nil
}

func validateService(s loadbalancer.LBService) error {
	if s.ID == 0 {
		return fmt.Errorf("service %s: ID 0 is invalid", s.Frontend)
	}
	if len(s.Backends) > loadbalancer.MaxBackendsPerService {
		return fmt.Errorf("service %s: %d backends, at most %d are supported", s.Frontend, len(s.Backends), loadbalancer.MaxBackendsPerService)
	}
	for i, b := range s.Backends {
		if b == 0 {
			return fmt.Errorf("service %s: backend %d has ID 0", s.Frontend, i)
		}
	}
	if s.Flags&loadbalancer.FlagMaglev != 0 && len(s.Maglev) != loadbalancer.MaglevTableSize {
		return fmt.Errorf("service %s: Maglev table has %d entries, want %d", s.Frontend, len(s.Maglev), loadbalancer.MaglevTableSize)
	}
	if s.Flags&loadbalancer.FlagMaglev == 0 && len(s.Maglev) != 0 {
		return fmt.Errorf("service %s: Maglev table without FlagMaglev", s.Frontend)
	}
	return nil
}

// UpsertService writes a frontend entry so that a concurrent reader never
// selects a slot that is not written: slots 1..n first, then the Maglev
// table (swapped in whole), then slot 0 with the count n, then the removal
// of slots beyond n. Readers that saw the old count meanwhile pick old
// slots, whose backends still exist. A backend dropped from an affinity
// service loses its clients' bindings to it.
func (m *Map) UpsertService(s loadbalancer.LBService) error {
	if err := validateService(s); err != nil {
		return err
	}
	k, err := NewServiceKey(s.Frontend, 0)
	if err != nil {
		return err
	}
	old, hadOld, err := m.lookupSlot(k)
	if err != nil {
		return err
	}
	var oldBackends []loadbalancer.BackendID
	if hadOld && (old.Flags|uint16(s.Flags))&uint16(loadbalancer.FlagAffinity) != 0 {
		if oldBackends, err = m.slotBackends(k, old.Count); err != nil {
			return err
		}
	}
	for i, b := range s.Backends {
		k.Slot = uint16(i + 1)
		v := ServiceValue{BackendId: uint32(b), RevNatId: uint16(s.ID)}
		if err := m.m.Services.Update(&k, &v, ebpf.UpdateAny); err != nil {
			return mapErr("update", m.m.Services, fmt.Sprintf("%s slot %d", s.Frontend, k.Slot), err)
		}
	}
	if s.Flags&loadbalancer.FlagMaglev != 0 {
		if err := m.writeMaglev(s.ID, s.Maglev); err != nil {
			return err
		}
	}
	k.Slot = 0
	v := NewServiceValue(s)
	if err := m.m.Services.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return mapErr("update", m.m.Services, s.Frontend, err)
	}
	var oldCount uint16
	if hadOld {
		oldCount = old.Count
	}
	if err := m.deleteSlots(k, uint16(len(s.Backends))+1, oldCount); err != nil {
		return err
	}
	if hadOld && old.Flags&uint16(loadbalancer.FlagMaglev) != 0 &&
		(s.Flags&loadbalancer.FlagMaglev == 0 || old.RevNatId != uint16(s.ID)) {
		if err := m.deleteMaglev(loadbalancer.ServiceID(old.RevNatId)); err != nil {
			return err
		}
	}
	if len(oldBackends) > 0 {
		keep := map[loadbalancer.BackendID]bool{}
		for _, b := range s.Backends {
			keep[b] = true
		}
		gone := map[uint32]bool{}
		for _, b := range oldBackends {
			if !keep[b] {
				gone[uint32(b)] = true
			}
		}
		if len(gone) > 0 || old.RevNatId != uint16(s.ID) {
			oldID := old.RevNatId
			if err := m.purgeAffinity(func(k AffinityKey, v AffinityValue) bool {
				return k.RevNatId == oldID && (oldID != uint16(s.ID) || gone[v.BackendId])
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteService removes a frontend entry: slot 0 first, so readers stop
// selecting, then its slots, its Maglev table and its clients' affinity
// bindings. A missing entry is not an error.
func (m *Map) DeleteService(f loadbalancer.Frontend) error {
	k, err := NewServiceKey(f, 0)
	if err != nil {
		return err
	}
	old, ok, err := m.lookupSlot(k)
	if err != nil {
		return err
	}
	if err := deleteKey(m.m.Services, &k, f); err != nil {
		return err
	}
	var count uint16
	if ok {
		count = old.Count
	}
	if err := m.deleteSlots(k, 1, count); err != nil {
		return err
	}
	if !ok {
		return nil
	}
	if old.Flags&uint16(loadbalancer.FlagMaglev) != 0 {
		if err := m.deleteMaglev(loadbalancer.ServiceID(old.RevNatId)); err != nil {
			return err
		}
	}
	if old.Flags&uint16(loadbalancer.FlagAffinity) != 0 {
		id := old.RevNatId
		return m.purgeAffinity(func(k AffinityKey, _ AffinityValue) bool { return k.RevNatId == id })
	}
	return nil
}

// UpsertRevNat writes a reverse-NAT entry.
func (m *Map) UpsertRevNat(r loadbalancer.RevNat) error {
	v, err := NewRevNatValue(r)
	if err != nil {
		return err
	}
	id := uint16(r.ID)
	if err := m.m.RevNat.Update(&id, &v, ebpf.UpdateAny); err != nil {
		return mapErr("update", m.m.RevNat, id, err)
	}
	return nil
}

// DeleteRevNat removes a reverse-NAT entry; a missing one is not an error.
// Sockets translated for the service stop showing the VIP (the socket
// programs check their entries against this map).
func (m *Map) DeleteRevNat(id loadbalancer.ServiceID) error {
	k := uint16(id)
	return deleteKey(m.m.RevNat, &k, k)
}

// maglevInnerSpec is the inner map of seta_lb_maglev: one element, the
// whole table.
func maglevInnerSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{
		Name: "seta_maglev", Type: ebpf.Array, KeySize: 4,
		ValueSize: 4 * loadbalancer.MaglevTableSize, MaxEntries: 1,
	}
}

// writeMaglev builds the table in a new inner map and swaps it in with one
// update of the outer map: readers see the old table or the new one.
func (m *Map) writeMaglev(id loadbalancer.ServiceID, table []loadbalancer.BackendID) error {
	inner, err := ebpf.NewMap(maglevInnerSpec())
	if err != nil {
		return fmt.Errorf("create Maglev table for service %d: %w", id, err)
	}
	defer inner.Close() // the outer map holds its own reference
	vals := make([]uint32, len(table))
	for i, b := range table {
		vals[i] = uint32(b)
	}
	zero := uint32(0)
	if err := inner.Update(&zero, vals, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write Maglev table for service %d: %w", id, err)
	}
	k := uint16(id)
	if err := m.m.Maglev.Update(&k, inner, ebpf.UpdateAny); err != nil {
		return mapErr("update", m.m.Maglev, k, err)
	}
	return nil
}

func (m *Map) deleteMaglev(id loadbalancer.ServiceID) error {
	k := uint16(id)
	return deleteKey(m.m.Maglev, &k, k)
}

// Maglev returns the Maglev table of service id, or nil.
func (m *Map) Maglev(id loadbalancer.ServiceID) ([]loadbalancer.BackendID, error) {
	var inner *ebpf.Map
	k := uint16(id)
	err := m.m.Maglev.Lookup(&k, &inner)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr("lookup", m.m.Maglev, k, err)
	}
	defer inner.Close()
	vals := make([]uint32, loadbalancer.MaglevTableSize)
	zero := uint32(0)
	if err := inner.Lookup(&zero, vals); err != nil {
		return nil, fmt.Errorf("read Maglev table of service %d: %w", id, err)
	}
	out := make([]loadbalancer.BackendID, len(vals))
	for i, v := range vals {
		out[i] = loadbalancer.BackendID(v)
	}
	return out, nil
}

// purgeAffinity deletes the affinity entries drop selects.
func (m *Map) purgeAffinity(drop func(AffinityKey, AffinityValue) bool) error {
	var k AffinityKey
	var v AffinityValue
	var del []AffinityKey
	it := m.m.Affinity.Iterate()
	for it.Next(&k, &v) {
		if drop(k, v) {
			del = append(del, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate %s: %w", AffinityMapName, err)
	}
	for _, k := range del {
		if err := deleteKey(m.m.Affinity, &k, k.RevNatId); err != nil {
			return err
		}
	}
	return nil
}

// Affinity is one affinity binding.
type Affinity struct {
	Client   AffinityClient
	Service  loadbalancer.ServiceID
	Backend  loadbalancer.BackendID
	LastUsed uint32 // seconds of CLOCK_MONOTONIC
}

// Affinities lists the affinity bindings.
func (m *Map) Affinities() ([]Affinity, error) {
	var k AffinityKey
	var v AffinityValue
	var out []Affinity
	it := m.m.Affinity.Iterate()
	for it.Next(&k, &v) {
		out = append(out, Affinity{Client: AffinityClientOf(k), Service: loadbalancer.ServiceID(k.RevNatId),
			Backend: loadbalancer.BackendID(v.BackendId), LastUsed: v.LastUsed})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate %s: %w", AffinityMapName, err)
	}
	return out, nil
}

// Dump implements loadbalancer.LBMap: every frontend with its backends in
// slot order (slots beyond the count, leftovers of an interrupted write,
// are left out), every backend and every reverse-NAT entry, sorted.
func (m *Map) Dump() ([]loadbalancer.LBService, []loadbalancer.Backend, []loadbalancer.RevNat, error) {
	type fe struct {
		key   ServiceKey // slot 0
		slots map[uint16]uint32
	}
	fes := map[ServiceKey]*fe{}
	svc := map[ServiceKey]ServiceValue{}
	var k ServiceKey
	var v ServiceValue
	it := m.m.Services.Iterate()
	for it.Next(&k, &v) {
		k0 := k
		k0.Slot = 0
		f := fes[k0]
		if f == nil {
			f = &fe{key: k0, slots: map[uint16]uint32{}}
			fes[k0] = f
		}
		if k.Slot == 0 {
			svc[k0] = v
		} else {
			f.slots[k.Slot] = v.BackendId
		}
	}
	if err := it.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("iterate %s: %w", ServicesMapName, err)
	}
	var services []loadbalancer.LBService
	for k0, sv := range svc {
		s := loadbalancer.LBService{
			Frontend: FrontendOf(k0), ID: loadbalancer.ServiceID(sv.RevNatId),
			Flags: loadbalancer.Flags(sv.Flags), AffinityTimeout: sv.AffinityTimeout,
		}
		for i := uint16(1); i <= sv.Count; i++ {
			if b, ok := fes[k0].slots[i]; ok {
				s.Backends = append(s.Backends, loadbalancer.BackendID(b))
			}
		}
		if s.Flags&loadbalancer.FlagMaglev != 0 {
			t, err := m.Maglev(s.ID)
			if err != nil {
				return nil, nil, nil, err
			}
			s.Maglev = t
		}
		services = append(services, s)
	}
	slices.SortFunc(services, func(a, b loadbalancer.LBService) int { return compareFrontends(a.Frontend, b.Frontend) })

	var backends []loadbalancer.Backend
	var id uint32
	var bv BackendValue
	bit := m.m.Backends.Iterate()
	for bit.Next(&id, &bv) {
		backends = append(backends, BackendOf(id, bv))
	}
	if err := bit.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("iterate %s: %w", BackendsMapName, err)
	}
	slices.SortFunc(backends, func(a, b loadbalancer.Backend) int { return cmp.Compare(a.ID, b.ID) })

	var revnats []loadbalancer.RevNat
	var rid uint16
	var rv RevNatValue
	rit := m.m.RevNat.Iterate()
	for rit.Next(&rid, &rv) {
		revnats = append(revnats, RevNatOf(rid, rv))
	}
	if err := rit.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("iterate %s: %w", RevNatMapName, err)
	}
	slices.SortFunc(revnats, func(a, b loadbalancer.RevNat) int { return cmp.Compare(a.ID, b.ID) })
	return services, backends, revnats, nil
}

func compareFrontends(a, b loadbalancer.Frontend) int {
	return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Scope, b.Scope))
}

// Usage is the fill level of one map.
type Usage struct {
	Name       string
	Entries    int
	MaxEntries uint32
}

// Usage counts the entries of the maps the control plane fills (services,
// backends, rev-NAT, Maglev) and of the datapath's own (affinity, socket
// rev-NAT), for metrics and status.
func (m *Map) Usage() ([]Usage, error) {
	var out []Usage
	for _, x := range []struct {
		name string
		m    *ebpf.Map
	}{
		{ServicesMapName, m.m.Services}, {BackendsMapName, m.m.Backends}, {RevNatMapName, m.m.RevNat},
		{MaglevMapName, m.m.Maglev}, {AffinityMapName, m.m.Affinity}, {SockRevNatMapName, m.m.SockRevNat},
	} {
		n, err := count(x.m, x.name == MaglevMapName)
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", x.name, err)
		}
		out = append(out, Usage{Name: x.name, Entries: n, MaxEntries: x.m.MaxEntries()})
	}
	return out, nil
}

// count counts a map's entries. A map of maps is counted by its keys: its
// values are inner maps, which iterating would open one by one.
func count(m *ebpf.Map, keysOnly bool) (int, error) {
	n := 0
	if keysOnly {
		var key []byte
		next := make([]byte, m.KeySize())
		for {
			var err error
			if key == nil {
				err = m.NextKey(nil, next)
			} else {
				err = m.NextKey(key, next)
			}
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			n++
			key = slices.Clone(next)
		}
	}
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	return n, it.Err()
}
