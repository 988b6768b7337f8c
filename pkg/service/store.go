package service

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

// The state of the table on disk is a snapshot, services.json, and a
// journal, services.journal, of the changes since: one JSON line per
// change, appended and fsync'd before the change is answered, so a change
// costs the size of one service, not of the table. The journal is folded
// into the snapshot at start and once it holds about as many records as
// the table has services (so the rewrite costs O(1) per change on
// average).
//
// Replaying the journal on a snapshot that already holds its records
// gives that snapshot again (the last record of a frontend says what it
// is), so a crash between writing a snapshot and emptying the journal
// loses nothing. Tools may add services to services.json while the agent
// is stopped (bench/lb does); the journal is replayed on top of them.

// stateVersion is the format of services.json.
const stateVersion = 1

// savedState is <state-dir>/services.json: the services and the IDs they
// were given, so a restarted agent gives them the same IDs even when the
// maps are gone (a reboot), and the allocation cursors, so freed IDs are
// not handed out again at once.
type savedState struct {
	Version       int            `json:"version"`
	Services      []savedService `json:"services"`
	Backends      []savedBackend `json:"backends"`
	LastServiceID lb.ServiceID   `json:"lastServiceID"`
	LastBackendID lb.BackendID   `json:"lastBackendID"`
}

type savedService struct {
	// ID of the external-scope entry, InternalID of the internal-scope
	// one (if the service has it).
	ID         lb.ServiceID `json:"id"`
	InternalID lb.ServiceID `json:"internalID,omitempty"`
	Service    Service      `json:"service"`
}

type savedBackend struct {
	ID   lb.BackendID `json:"id"`
	Addr L4Addr       `json:"addr"`
}

func (t *Table) statePath() string { return filepath.Join(t.cfg.StateDir, "services.json") }

func (t *Table) load() (*savedState, error) {
	if t.cfg.StateDir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(t.statePath())
	if errors.Is(err, os.ErrNotExist) {
		// No snapshot: the journal, if any, starts from nothing.
		b, err = []byte(`{"version":1,"services":[],"backends":[]}`), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read services: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode %s: %w", t.statePath(), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%s has format version %d; this agent reads version %d", t.statePath(), st.Version, stateVersion)
	}
	recs, err := t.readJournal()
	if err != nil {
		return nil, err
	}
	st.replay(recs)
	return &st, nil
}

// saveLocked writes the snapshot, services.json, atomically (temporary file, fsync,
// rename), so a crash leaves the old or the new file, never a torn one.
func (t *Table) saveLocked() error {
	if t.cfg.StateDir == "" {
		return nil
	}
	st := savedState{Version: stateVersion, Services: []savedService{}, Backends: []savedBackend{},
		LastServiceID: t.lastEntry, LastBackendID: t.lastBackend}
	for _, s := range t.svcs {
		st.Services = append(st.Services, t.savedLocked(s))
	}
	slices.SortFunc(st.Services, func(a, b savedService) int { return cmp.Compare(a.ID, b.ID) })
	for k, id := range t.backendIDs {
		st.Backends = append(st.Backends, savedBackend{ID: id, Addr: k})
	}
	slices.SortFunc(st.Backends, func(a, b savedBackend) int { return cmp.Compare(a.ID, b.ID) })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode services: %w", err)
	}
	f, err := os.CreateTemp(t.cfg.StateDir, ".services-*.tmp")
	if err != nil {
		return fmt.Errorf("save services: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save services: %w", err)
	}
	if err := os.Rename(tmp, t.statePath()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save services: %w", err)
	}
	return nil
}

// savedLocked is s with the IDs of its entries.
func (t *Table) savedLocked(s *Service) savedService {
	ss := savedService{Service: *s}
	for _, p := range plan(s) {
		if p.key.Scope == lb.ScopeInternal {
			ss.InternalID = t.entryIDs[p.key]
		} else {
			ss.ID = t.entryIDs[p.key]
		}
	}
	return ss
}
