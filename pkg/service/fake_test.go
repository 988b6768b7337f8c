package service

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

// fakeLB is an LBMap in memory. It records every call and checks, at each
// one, what the datapath relies on: a service entry only names backends and
// a reverse-NAT entry that exist (and its internal twin, with
// FlagTwoScopes); a backend or reverse-NAT entry is only deleted when no
// entry names it.
type fakeLB struct {
	t        testing.TB
	calls    []string
	services map[lb.Frontend]lb.LBService
	backends map[lb.BackendID]lb.Backend
	revnats  map[lb.ServiceID]lb.RevNat
	// fail, if set, may fail a call (by its recorded text).
	fail func(call string) error
}

func newFakeLB(t testing.TB) *fakeLB {
	return &fakeLB{t: t, services: map[lb.Frontend]lb.LBService{}, backends: map[lb.BackendID]lb.Backend{}, revnats: map[lb.ServiceID]lb.RevNat{}}
}

func (f *fakeLB) record(format string, a ...any) error {
	c := fmt.Sprintf(format, a...)
	if f.fail != nil {
		if err := f.fail(c); err != nil {
			return err
		}
	}
	f.calls = append(f.calls, c)
	return nil
}

// take returns the calls since the last take.
func (f *fakeLB) take() []string {
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeLB) UpsertBackend(b lb.Backend) error {
	if err := f.record("UpsertBackend %d %s/%s %s local=%v", b.ID, b.Addr, b.Proto, b.State, b.Local); err != nil {
		return err
	}
	f.backends[b.ID] = b
	return nil
}

func (f *fakeLB) DeleteBackend(id lb.BackendID) error {
	if err := f.record("DeleteBackend %d", id); err != nil {
		return err
	}
	for _, s := range f.services {
		if slices.Contains(s.Backends, id) || slices.Contains(s.Maglev, id) {
			f.t.Errorf("backend %d deleted while entry %d names it", id, s.ID)
		}
	}
	delete(f.backends, id)
	return nil
}

func (f *fakeLB) UpsertService(s lb.LBService) error {
	if err := f.record("UpsertService %d %s flags=%s slots=%v", s.ID, s.Frontend, strings.Join(FlagNames(s.Flags), ","), s.Backends); err != nil {
		return err
	}
	for _, id := range s.Backends {
		if _, ok := f.backends[id]; !ok {
			f.t.Errorf("entry %d names backend %d, which is not in the map", s.ID, id)
		}
	}
	if _, ok := f.revnats[s.ID]; !ok {
		f.t.Errorf("entry %d written before its reverse-NAT entry", s.ID)
	}
	if s.Flags&lb.FlagTwoScopes != 0 {
		in := s.Frontend
		in.Scope = lb.ScopeInternal
		if _, ok := f.services[in]; !ok {
			f.t.Errorf("entry %d has two scopes but no internal entry", s.ID)
		}
	}
	if s.Flags&lb.FlagMaglev != 0 && len(s.Maglev) != lb.MaglevTableSize {
		f.t.Errorf("entry %d: maglev table of %d slots", s.ID, len(s.Maglev))
	}
	s.Backends, s.Maglev = slices.Clone(s.Backends), slices.Clone(s.Maglev)
	f.services[s.Frontend] = s
	return nil
}

func (f *fakeLB) DeleteService(fe lb.Frontend) error {
	if err := f.record("DeleteService %s", fe); err != nil {
		return err
	}
	delete(f.services, fe)
	return nil
}

func (f *fakeLB) UpsertRevNat(r lb.RevNat) error {
	if err := f.record("UpsertRevNat %d %s", r.ID, r.Addr); err != nil {
		return err
	}
	f.revnats[r.ID] = r
	return nil
}

func (f *fakeLB) DeleteRevNat(id lb.ServiceID) error {
	if err := f.record("DeleteRevNat %d", id); err != nil {
		return err
	}
	for _, s := range f.services {
		if s.ID == id {
			f.t.Errorf("reverse NAT %d deleted while its entry is in the map", id)
		}
	}
	delete(f.revnats, id)
	return nil
}

func (f *fakeLB) Dump() ([]lb.LBService, []lb.Backend, []lb.RevNat, error) {
	var svcs []lb.LBService
	for _, s := range f.services {
		s.Backends, s.Maglev = slices.Clone(s.Backends), slices.Clone(s.Maglev)
		svcs = append(svcs, s)
	}
	return svcs, slices.Collect(maps.Values(f.backends)), slices.Collect(maps.Values(f.revnats)), nil
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// localSet is an IsLocal backed by a set the test changes.
type localSet map[netip.Addr]bool

func (l localSet) IsLocal(a netip.Addr) bool { return l[a] }

func newTable(t *testing.T, f *fakeLB, cfg Config) *Table {
	t.Helper()
	tbl, err := New(quietLog(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func fe(s string) L4Addr {
	a, err := ParseL4Addr(s)
	if err != nil {
		panic(err)
	}
	return a
}

func backends(addrs ...string) []Backend {
	out := []Backend{}
	for _, a := range addrs {
		out = append(out, Backend{Addr: netip.MustParseAddrPort(a)})
	}
	return out
}

// wantCalls compares calls with want, where a want entry matches a call
// it is a prefix of.
func wantCalls(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(got[i], want[i])
	}
	if !ok {
		t.Errorf("%s: calls\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
