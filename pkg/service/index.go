package service

import lb "github.com/seta-net/seta/pkg/loadbalancer"

// beUse is how the services list one backend address. The address has a
// single datapath entry whatever service lists it: it is as usable as the
// most usable listing (an active listing keeps connections going) and
// local if any listing says so. Counts, not a scan of the services, give
// both, so a change costs the size of the service changed.
type beUse struct {
	listings int
	states   [Quarantined + 1]int
	local    int
	// users are the frontends of the services that list the address:
	// when its locality flips, their local-only slots change.
	users map[L4Addr]struct{}
}

func (u *beUse) state() State {
	for s, n := range u.states {
		if n > 0 {
			return State(s)
		}
	}
	return Active
}

// npKey groups the NodePort services that may overlap: same port, protocol
// and family.
type npKey struct {
	port  uint16
	proto lb.Proto
	v4    bool
}

func nodePortKey(f L4Addr) npKey { return npKey{port: f.Port, proto: f.Proto, v4: f.Addr.Is4()} }

// indexLocked adds s to the indexes (add) or takes it out, and marks in d
// the entries of other services whose slots a flip of a backend's
// locality changes. The locality of each listing is remembered, so taking
// it out removes exactly what adding it put in even if IsLocal changed in
// between.
func (t *Table) indexLocked(s *Service, add bool, d *dirtySet) {
	if s == nil {
		return
	}
	delta := 1
	local := t.listedLocal[s.Frontend]
	if add {
		local = make([]bool, len(s.Backends))
		for i, b := range s.Backends {
			local[i] = t.local(b)
		}
		t.listedLocal[s.Frontend] = local
	} else {
		delta = -1
		delete(t.listedLocal, s.Frontend)
	}
	for i, b := range s.Backends {
		k := backendKey(s, b)
		u := t.use[k]
		if u == nil {
			u = &beUse{users: map[L4Addr]struct{}{}}
			t.use[k] = u
		}
		wasLocal := u.local > 0
		u.listings += delta
		u.states[b.State] += delta
		if local[i] {
			u.local += delta
		}
		if add {
			u.users[s.Frontend] = struct{}{}
		} else {
			delete(u.users, s.Frontend)
		}
		if wasLocal != (u.local > 0) && d != nil {
			for f := range u.users {
				d.addService(t, t.svcs[f])
			}
		}
		if u.listings == 0 {
			delete(t.use, k)
		}
	}
	if s.Type == NodePort {
		nk := nodePortKey(s.Frontend)
		if add {
			if t.nodePorts[nk] == nil {
				t.nodePorts[nk] = map[L4Addr]struct{}{}
			}
			t.nodePorts[nk][s.Frontend] = struct{}{}
		} else if delete(t.nodePorts[nk], s.Frontend); len(t.nodePorts[nk]) == 0 {
			delete(t.nodePorts, nk)
		}
	}
}

// swapLocked replaces old by new in svcs and the indexes (either may be
// nil).
func (t *Table) swapLocked(old, new *Service, d *dirtySet) {
	if old != nil {
		delete(t.svcs, old.Frontend)
		t.indexLocked(old, false, d)
	}
	if new != nil {
		t.svcs[new.Frontend] = new
		t.indexLocked(new, true, d)
	}
}

// reindexLocked builds the indexes again from svcs: IsLocal may answer
// otherwise now.
func (t *Table) reindexLocked() {
	t.use, t.listedLocal, t.nodePorts = map[L4Addr]*beUse{}, map[L4Addr][]bool{}, map[npKey]map[L4Addr]struct{}{}
	for _, s := range t.svcs {
		t.indexLocked(s, true, nil)
	}
}
