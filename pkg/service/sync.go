package service

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

// dirtySet is what a sync looks at: the frontend entries, backends and
// service IDs (reverse-NAT entries) a change may touch. A change of one
// service marks its own; Refresh and New mark everything.
type dirtySet struct {
	entries  map[lb.Frontend]struct{}
	backends map[lb.BackendID]struct{}
	ids      map[lb.ServiceID]struct{}
}

func newDirtySet() *dirtySet {
	return &dirtySet{entries: map[lb.Frontend]struct{}{}, backends: map[lb.BackendID]struct{}{}, ids: map[lb.ServiceID]struct{}{}}
}

// addService marks the entries of s and its backends (nothing for nil).
func (d *dirtySet) addService(t *Table, s *Service) {
	if s == nil {
		return
	}
	for _, p := range plan(s) {
		d.entries[p.key] = struct{}{}
		if id, ok := t.entryIDs[p.key]; ok {
			d.ids[id] = struct{}{}
		}
	}
	for _, b := range s.Backends {
		if id, ok := t.backendIDs[backendKey(s, b)]; ok {
			d.backends[id] = struct{}{}
		}
	}
}

// expand marks what the marked entries name now, in want and in the maps:
// a slot that leaves may free a backend, an entry that goes its ID.
func (d *dirtySet) expand(t *Table) {
	for k := range d.entries {
		if id, ok := t.entryIDs[k]; ok {
			d.ids[id] = struct{}{}
		}
		for _, e := range [2]lb.LBService{t.want.services[k], t.written.services[k]} {
			if e.ID != 0 {
				d.ids[e.ID] = struct{}{}
			}
			for _, id := range e.Backends {
				d.backends[id] = struct{}{}
			}
		}
	}
}

// allDirtyLocked marks everything the table and the maps know of.
func (t *Table) allDirtyLocked() *dirtySet {
	d := newDirtySet()
	for _, s := range t.svcs {
		d.addService(t, s)
	}
	for _, m := range []map[lb.Frontend]lb.LBService{t.want.services, t.written.services} {
		for k := range m {
			d.entries[k] = struct{}{}
		}
	}
	for _, m := range []map[lb.BackendID]lb.Backend{t.want.backends, t.written.backends} {
		for id := range m {
			d.backends[id] = struct{}{}
		}
	}
	for id := range t.backendOwner {
		d.backends[id] = struct{}{}
	}
	for _, m := range []map[lb.ServiceID]lb.RevNat{t.want.revnats, t.written.revnats} {
		for id := range m {
			d.ids[id] = struct{}{}
		}
	}
	for id := range t.entryOwner {
		d.ids[id] = struct{}{}
	}
	d.expand(t)
	return d
}

// patch is what want should become for the marked entries and backends;
// nil: not wanted.
type patch struct {
	services map[lb.Frontend]*lb.LBService
	backends map[lb.BackendID]*lb.Backend
}

func (t *Table) desireLocked(d *dirtySet) patch {
	p := patch{services: make(map[lb.Frontend]*lb.LBService, len(d.entries)), backends: make(map[lb.BackendID]*lb.Backend, len(d.backends))}
	for k := range d.entries {
		p.services[k] = t.desiredEntryLocked(k)
	}
	for id := range d.backends {
		p.backends[id] = t.desiredBackendLocked(id)
	}
	return p
}

// desiredEntryLocked computes the entry k should be, nil if none.
func (t *Table) desiredEntryLocked(k lb.Frontend) *lb.LBService {
	s, ok := t.svcs[L4Addr{Addr: k.Addr, Port: k.Port, Proto: k.Proto}]
	if !ok {
		return nil
	}
	for _, p := range plan(s) {
		if p.key == k {
			return t.buildEntryLocked(s, p)
		}
	}
	return nil // a leftover of the service's previous shape
}

func (t *Table) buildEntryLocked(s *Service, p plannedEntry) *lb.LBService {
	id, ok := t.entryIDs[p.key]
	if !ok {
		return nil // its ID could not be given (a change being undone)
	}
	e := lb.LBService{Frontend: p.key, ID: id, Flags: p.flags}
	if p.localOnly {
		e.Flags |= lb.FlagLocal
	}
	if s.SessionAffinity == AffinityClientIP {
		e.AffinityTimeout = uint32(s.SessionAffinityTimeout)
	}
	var names []string
	for _, b := range s.Backends {
		k := backendKey(s, b)
		if b.State != Active || p.localOnly && !t.backendLocalLocked(k) {
			continue
		}
		bid, ok := t.backendIDs[k]
		if !ok {
			continue
		}
		e.Backends = append(e.Backends, bid)
		names = append(names, b.Addr.String())
	}
	if e.Flags&lb.FlagMaglev != 0 {
		if len(e.Backends) == 0 {
			// Nothing to select; a flag without a table would only
			// invite the datapath to read an empty one.
			e.Flags &^= lb.FlagMaglev
		} else {
			e.Maglev = t.maglevTable(p.key, e.Backends, names)
		}
	}
	return &e
}

func (t *Table) backendLocalLocked(k L4Addr) bool {
	u := t.use[k]
	return u != nil && u.local > 0
}

// desiredBackendLocked computes the backend entry id should be, nil if
// none: no service lists its address (any more).
func (t *Table) desiredBackendLocked(id lb.BackendID) *lb.Backend {
	key, ok := t.backendOwner[id]
	if !ok || t.backendIDs[key] != id {
		return nil
	}
	u := t.use[key]
	if u == nil {
		return nil
	}
	return &lb.Backend{ID: id, Addr: key.AddrPort(), Proto: key.Proto, State: lb.BackendState(u.state()), Local: u.local > 0}
}

// checkCapacityLocked refuses a patch the maps could not hold. New and
// changed entries are written before old ones are deleted, so for a
// moment the maps hold both: every entry counts with the larger of its old
// and new slots, and entries on their way out count too. A change that
// needs no more room than the maps use now is never refused, so services
// can always be deleted or shrunk. The sums over the whole table are kept
// as running counts; the patch only adjusts them.
func (t *Table) checkCapacityLocked(p patch) error {
	if size := t.cfg.ServiceMapSize; size > 0 {
		need := t.placesNeed
		for k, e := range p.services {
			need += t.entryNeed(k, e) - t.entryNeed(k, t.wantPtr(k))
		}
		if need > size && need > t.placesNow {
			return fmt.Errorf("%w: the services need %d entries in the service map (one per frontend entry and backend slot), it holds %d (raise --bpf-lb-map-max)", ErrLimit, need, size)
		}
	}
	if size := t.cfg.BackendMapSize; size > 0 {
		need := t.backendUnion
		for id, b := range p.backends {
			_, written := t.written.backends[id]
			_, wanted := t.want.backends[id]
			need += b2i(b != nil || written) - b2i(wanted || written)
		}
		if need > size && need > len(t.written.backends) {
			return fmt.Errorf("%w: the services need %d backends, the backend map holds %d (raise --bpf-lb-map-max)", ErrLimit, need, size)
		}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// entryNeed is the service-map places entry k counts with when want is
// what it should be (nil: not wanted).
func (t *Table) entryNeed(k lb.Frontend, want *lb.LBService) int {
	w, written := t.written.services[k]
	switch {
	case want != nil:
		return 1 + max(len(want.Backends), len(w.Backends))
	case written:
		return 1 + len(w.Backends)
	}
	return 0
}

func (t *Table) wantPtr(k lb.Frontend) *lb.LBService {
	if e, ok := t.want.services[k]; ok {
		return &e
	}
	return nil
}

func (t *Table) applyPatchLocked(p patch) {
	for k, e := range p.services {
		t.setWant(k, e)
	}
	for id, b := range p.backends {
		t.setWantBackend(id, b)
	}
}

// setWant makes e what entry k should be (nil: none), with its reverse-NAT
// entry, keeping the running counts.
func (t *Table) setWant(k lb.Frontend, e *lb.LBService) {
	t.placesNeed -= t.entryNeed(k, t.wantPtr(k))
	if old, ok := t.want.services[k]; ok {
		delete(t.want.revnats, old.ID)
	}
	if e == nil {
		delete(t.want.services, k)
		delete(t.maglev, k)
	} else {
		t.want.services[k] = *e
		t.want.revnats[e.ID] = lb.RevNat{ID: e.ID, Addr: netip.AddrPortFrom(k.Addr, k.Port)}
	}
	t.placesNeed += t.entryNeed(k, t.wantPtr(k))
}

func (t *Table) setWantBackend(id lb.BackendID, b *lb.Backend) {
	_, written := t.written.backends[id]
	_, wanted := t.want.backends[id]
	t.backendUnion -= b2i(wanted || written)
	if b == nil {
		delete(t.want.backends, id)
	} else {
		t.want.backends[id] = *b
	}
	t.backendUnion += b2i(b != nil || written)
}

// setWritten records that the maps hold e for its frontend.
func (t *Table) setWritten(k lb.Frontend, e lb.LBService) { t.writtenEntry(k, &e) }

func (t *Table) deleteWritten(k lb.Frontend) { t.writtenEntry(k, nil) }

func (t *Table) writtenEntry(k lb.Frontend, e *lb.LBService) {
	want := t.wantPtr(k)
	t.placesNeed -= t.entryNeed(k, want)
	if old, ok := t.written.services[k]; ok {
		t.placesNow -= 1 + len(old.Backends)
		t.refEntry(old, -1)
	}
	if e == nil {
		delete(t.written.services, k)
	} else {
		t.written.services[k] = *e
		t.placesNow += 1 + len(e.Backends)
		t.refEntry(*e, 1)
	}
	t.placesNeed += t.entryNeed(k, want)
}

// refEntry counts what a written entry names: its ID and, once each, the
// backends of its slots and Maglev table.
func (t *Table) refEntry(e lb.LBService, delta int) {
	if t.wIDRefs[e.ID] += delta; t.wIDRefs[e.ID] <= 0 {
		delete(t.wIDRefs, e.ID)
	}
	ref := func(id lb.BackendID) {
		if t.wBackendRefs[id] += delta; t.wBackendRefs[id] <= 0 {
			delete(t.wBackendRefs, id)
		}
	}
	for _, id := range e.Backends {
		ref(id)
	}
	if len(e.Maglev) == 0 {
		return
	}
	// The table normally names only the slots' backends; a pinned entry
	// from an older agent might not.
	extra := map[lb.BackendID]bool{}
	for _, id := range e.Maglev {
		if !extra[id] && !slices.Contains(e.Backends, id) {
			extra[id] = true
			ref(id)
		}
	}
}

func (t *Table) setWrittenBackend(b lb.Backend) {
	_, written := t.written.backends[b.ID]
	_, wanted := t.want.backends[b.ID]
	t.backendUnion += b2i(!written && !wanted)
	t.written.backends[b.ID] = b
}

func (t *Table) deleteWrittenBackend(id lb.BackendID) {
	_, wanted := t.want.backends[id]
	t.backendUnion -= b2i(!wanted)
	delete(t.written.backends, id)
}

// syncAllLocked rebuilds the indexes, recomputes every entry and writes
// what differs.
func (t *Table) syncAllLocked() error {
	t.reindexLocked()
	d := t.allDirtyLocked()
	t.applyPatchLocked(t.desireLocked(d))
	return t.writeLocked(d)
}

// changeLocked replaces the service old by new (either may be nil: an add
// or a delete): IDs, datapath, journal. If any step fails, the previous
// service is put back and the maps are brought back to it, so the failed
// request changes nothing.
func (t *Table) changeLocked(old, new *Service) error {
	d := newDirtySet()
	d.addService(t, old)
	t.swapLocked(old, new, d)
	err := t.assignIDsLocked(new)
	d.addService(t, new) // also what was given before a failure, to free it
	if err == nil {
		d.expand(t)
		p := t.desireLocked(d)
		if err = t.checkCapacityLocked(p); err == nil {
			t.applyPatchLocked(p)
			if err = t.writeLocked(d); err == nil {
				err = t.persistLocked(old, new)
			}
		}
	}
	if err == nil {
		return nil
	}
	t.swapLocked(new, old, d)
	// The failed writes may have freed the IDs of entries they deleted.
	if aerr := t.assignIDsLocked(old); aerr != nil {
		t.log.Error("Restoring the previous service failed", "error", aerr)
		return err
	}
	d.addService(t, old)
	d.expand(t)
	t.applyPatchLocked(t.desireLocked(d))
	if werr := t.writeLocked(d); werr != nil {
		t.log.Warn("Restoring the previous service in the datapath failed; retrying later", "error", werr)
	}
	return err
}

// item names one datapath entry, for the record of failed writes.
type item struct {
	kind byte // 's'ervice entry, 'b'ackend, 'r'everse NAT
	fe   lb.Frontend
	id   uint32
}

// writeLocked writes the differences between want and the maps for the
// marked entries, in an order that never lets the datapath see a
// reference to something missing:
//
//  1. backends (new and changed), before any slot names them;
//  2. reverse-NAT entries, before the service entry whose replies need them;
//  3. service entries, internal scope first (an external entry with
//     FlagTwoScopes must find its twin) — each only once its backends and
//     reverse-NAT entry are in;
//  4. deletions of service entries (external first), then of reverse-NAT
//     entries and backends that no written entry names any more.
//
// A failed write does not stop independent ones; what depends on it waits
// for the next sync. The errors are returned together.
func (t *Table) writeLocked(d *dirtySet) error {
	var errs []error
	fail := func(it item, err error) {
		errs = append(errs, err)
		t.failed[it] = err
	}
	w := &t.written
	backends := slices.Sorted(maps.Keys(d.backends))
	ids := slices.Sorted(maps.Keys(d.ids))

	for _, id := range backends {
		b, ok := t.want.backends[id]
		if cur, has := w.backends[id]; !ok || has && cur == b {
			continue
		}
		if err := t.lbm.UpsertBackend(b); err != nil {
			fail(item{kind: 'b', id: uint32(id)}, fmt.Errorf("write backend %d (%s/%s): %w", id, b.Addr, b.Proto, err))
			continue
		}
		t.setWrittenBackend(b)
	}
	for _, id := range ids {
		r, ok := t.want.revnats[id]
		if cur, has := w.revnats[id]; !ok || has && cur == r {
			continue
		}
		if err := t.lbm.UpsertRevNat(r); err != nil {
			fail(item{kind: 'r', id: uint32(id)}, fmt.Errorf("write reverse NAT %d (%s): %w", id, r.Addr, err))
			continue
		}
		w.revnats[id] = r
	}
	for _, k := range slices.SortedFunc(maps.Keys(d.entries), upsertOrder) {
		e, ok := t.want.services[k]
		if cur, has := w.services[k]; !ok || has && sameService(cur, e) {
			continue
		}
		if missing := t.missingLocked(e); missing != "" {
			fail(item{kind: 's', fe: k}, fmt.Errorf("service entry %d (%s) not written: %s", e.ID, k, missing))
			continue
		}
		if err := t.lbm.UpsertService(e); err != nil {
			fail(item{kind: 's', fe: k}, fmt.Errorf("write service entry %d (%s): %w", e.ID, k, err))
			continue
		}
		t.setWritten(k, e)
	}

	for _, k := range slices.SortedFunc(maps.Keys(d.entries), deleteOrder) {
		cur, has := w.services[k]
		if _, ok := t.want.services[k]; ok || !has {
			continue
		}
		if err := t.lbm.DeleteService(k); err != nil {
			fail(item{kind: 's', fe: k}, fmt.Errorf("delete service entry %d (%s): %w", cur.ID, k, err))
			continue
		}
		t.deleteWritten(k)
	}
	for _, id := range ids {
		_, has := w.revnats[id]
		if _, ok := t.want.revnats[id]; ok || !has || t.wIDRefs[id] > 0 {
			continue
		}
		if err := t.lbm.DeleteRevNat(id); err != nil {
			fail(item{kind: 'r', id: uint32(id)}, fmt.Errorf("delete reverse NAT %d: %w", id, err))
			continue
		}
		delete(w.revnats, id)
	}
	for _, id := range backends {
		cur, has := w.backends[id]
		if _, ok := t.want.backends[id]; ok || !has || t.wBackendRefs[id] > 0 {
			continue
		}
		if err := t.lbm.DeleteBackend(id); err != nil {
			fail(item{kind: 'b', id: uint32(id)}, fmt.Errorf("delete backend %d (%s): %w", id, cur.Addr, err))
			continue
		}
		t.deleteWrittenBackend(id)
	}
	t.gcIDsLocked(d, ids, backends)
	t.settleLocked()
	return errors.Join(errs...)
}

// missingLocked names what e refers to that the maps do not hold yet.
func (t *Table) missingLocked(e lb.LBService) string {
	for _, id := range e.Backends {
		if _, ok := t.written.backends[id]; !ok {
			return fmt.Sprintf("backend %d is not in the map", id)
		}
	}
	if r, ok := t.written.revnats[e.ID]; !ok || r != t.want.revnats[e.ID] {
		return "its reverse-NAT entry is not in the map"
	}
	if e.Flags&lb.FlagTwoScopes != 0 {
		in := e.Frontend
		in.Scope = lb.ScopeInternal
		if _, ok := t.written.services[in]; !ok {
			return "its internal-scope entry is not in the map"
		}
	}
	return ""
}

// gcIDsLocked frees the marked IDs that neither a desired nor a written
// entry (backend) holds.
func (t *Table) gcIDsLocked(d *dirtySet, ids []lb.ServiceID, backends []lb.BackendID) {
	for k := range d.entries {
		if id, ok := t.entryIDs[k]; ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		key, ok := t.entryOwner[id]
		if !ok {
			continue
		}
		if e, wanted := t.want.services[key]; wanted && e.ID == id {
			continue
		}
		if _, written := t.written.revnats[id]; written || t.wIDRefs[id] > 0 {
			continue
		}
		delete(t.entryOwner, id)
		if t.entryIDs[key] == id {
			delete(t.entryIDs, key)
		}
	}
	for _, id := range backends {
		key, ok := t.backendOwner[id]
		if !ok {
			continue
		}
		_, wanted := t.want.backends[id]
		_, written := t.written.backends[id]
		if wanted || written {
			continue
		}
		delete(t.backendOwner, id)
		if t.backendIDs[key] == id {
			delete(t.backendIDs, key)
		}
	}
}

// settleLocked forgets the failures of items that now hold what they
// should (rewritten, or no longer wanted as they were).
func (t *Table) settleLocked() {
	for it := range t.failed {
		var same bool
		switch it.kind {
		case 's':
			v, vok := t.want.services[it.fe]
			w, wok := t.written.services[it.fe]
			same = vok == wok && (!vok || sameService(v, w))
		case 'b':
			v, vok := t.want.backends[lb.BackendID(it.id)]
			w, wok := t.written.backends[lb.BackendID(it.id)]
			same = vok == wok && v == w
		case 'r':
			v, vok := t.want.revnats[lb.ServiceID(it.id)]
			w, wok := t.written.revnats[lb.ServiceID(it.id)]
			same = vok == wok && v == w
		}
		if same {
			delete(t.failed, it)
		}
	}
}

// failedErrLocked joins the standing failures, in a stable order (the
// refresh loop logs a failure only when its text changes).
func (t *Table) failedErrLocked() error {
	if len(t.failed) == 0 {
		return nil
	}
	errs := slices.SortedFunc(maps.Values(t.failed), func(a, b error) int { return cmp.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}
