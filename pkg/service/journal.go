package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

// minCompactRecords is the fewest journal records that lead to a
// compaction: below it the journal stays small whatever the table's size.
const minCompactRecords = 1024

// journalRecord is one line of services.journal: a service as saved (with
// the IDs of its entries and backends), or the frontend of a deleted one,
// and the allocation cursors after the change.
type journalRecord struct {
	Upsert        *savedService  `json:"upsert,omitempty"`
	Delete        *L4Addr        `json:"delete,omitempty"`
	Backends      []savedBackend `json:"backends,omitempty"`
	LastServiceID lb.ServiceID   `json:"lastServiceID"`
	LastBackendID lb.BackendID   `json:"lastBackendID"`
}

// journal is the open journal file.
type journal struct {
	f       *os.File
	size    int64
	records int
	// broken: a failed append could not be cut off again, so the next
	// change rewrites the snapshot and starts a new journal.
	broken bool
}

func (t *Table) journalPath() string { return filepath.Join(t.cfg.StateDir, "services.journal") }

// readJournal reads the records. A last line without its newline is a
// record whose append was cut short (a crash): it was never answered, so
// it is dropped. Any other line that does not decode is an error.
func (t *Table) readJournal() ([]journalRecord, error) {
	b, err := os.ReadFile(t.journalPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read services: %w", err)
	}
	var recs []journalRecord
	for n := 1; len(b) > 0; n++ {
		line, rest, complete := bytes.Cut(b, []byte("\n"))
		b = rest
		if !complete {
			t.log.Warn("Dropping a torn last record of the service journal", "path", t.journalPath(), "line", n)
			break
		}
		var r journalRecord
		if err := json.Unmarshal(line, &r); err != nil || (r.Upsert == nil) == (r.Delete == nil) {
			return nil, fmt.Errorf("decode %s line %d: not a service record (%v)", t.journalPath(), n, err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// replay applies journal records to a snapshot: the last record of a
// frontend decides it, and a backend ID given to an address is taken from
// any address that held it before.
func (st *savedState) replay(recs []journalRecord) {
	if len(recs) == 0 {
		return
	}
	at := map[L4Addr]int{}
	for i, ss := range st.Services {
		at[ss.Service.Frontend] = i
	}
	byAddr, byID := map[L4Addr]lb.BackendID{}, map[lb.BackendID]L4Addr{}
	setBackend := func(sb savedBackend) {
		if old, ok := byAddr[sb.Addr]; ok {
			delete(byID, old)
		}
		if addr, ok := byID[sb.ID]; ok {
			delete(byAddr, addr)
		}
		byAddr[sb.Addr], byID[sb.ID] = sb.ID, sb.Addr
	}
	for _, sb := range st.Backends {
		setBackend(sb)
	}
	deleted := map[int]bool{}
	for _, r := range recs {
		switch {
		case r.Upsert != nil:
			if i, ok := at[r.Upsert.Service.Frontend]; ok && !deleted[i] {
				st.Services[i] = *r.Upsert
			} else {
				at[r.Upsert.Service.Frontend] = len(st.Services)
				st.Services = append(st.Services, *r.Upsert)
			}
		case r.Delete != nil:
			if i, ok := at[*r.Delete]; ok {
				deleted[i] = true
				delete(at, *r.Delete)
			}
		}
		for _, sb := range r.Backends {
			setBackend(sb)
		}
		st.LastServiceID, st.LastBackendID = r.LastServiceID, r.LastBackendID
	}
	kept := st.Services[:0]
	for i, ss := range st.Services {
		if !deleted[i] {
			kept = append(kept, ss)
		}
	}
	st.Services = kept
	st.Backends = st.Backends[:0]
	for id, addr := range byID {
		st.Backends = append(st.Backends, savedBackend{ID: id, Addr: addr})
	}
}

// persistLocked records the change of old to new (new nil: old deleted)
// in the journal, or folds the journal into a new snapshot when it is due.
func (t *Table) persistLocked(old, new *Service) error {
	if t.cfg.StateDir == "" {
		return nil
	}
	if t.journal.broken {
		return t.compactLocked()
	}
	r := journalRecord{LastServiceID: t.lastEntry, LastBackendID: t.lastBackend}
	if new != nil {
		ss := t.savedLocked(new)
		r.Upsert = &ss
		for _, b := range new.Backends {
			k := backendKey(new, b)
			r.Backends = append(r.Backends, savedBackend{ID: t.backendIDs[k], Addr: k})
		}
	} else {
		f := old.Frontend
		r.Delete = &f
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode the service change: %w", err)
	}
	if err := t.appendJournal(append(line, '\n')); err != nil {
		return fmt.Errorf("save the service change: %w", err)
	}
	if t.journal.records >= max(minCompactRecords, len(t.svcs)) {
		// The change is saved; a failed compaction only leaves the
		// journal longer, and is tried again with the next change.
		if err := t.compactLocked(); err != nil {
			t.log.Warn("Folding the service journal into services.json failed", "error", err)
		}
	}
	return nil
}

// appendJournal writes one record and fsyncs it. A failed append is cut
// off again, so the next record starts on a line of its own.
func (t *Table) appendJournal(line []byte) error {
	j := &t.journal
	if j.f == nil {
		f, err := os.OpenFile(t.journalPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		j.f, j.size = f, st.Size()
	}
	_, err := j.f.Write(line)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.broken = true
		}
		return err
	}
	j.size += int64(len(line))
	j.records++
	return nil
}

// compactLocked writes the whole table as the snapshot, then empties the
// journal. Should emptying fail, the journal is replayed onto a snapshot
// that already holds it, which changes nothing.
func (t *Table) compactLocked() error {
	if t.cfg.StateDir == "" {
		return nil
	}
	if err := t.saveLocked(); err != nil {
		return err
	}
	f, err := os.OpenFile(t.journalPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return fmt.Errorf("empty the service journal: %w", err)
	}
	if t.journal.f != nil {
		t.journal.f.Close()
	}
	t.journal = journal{f: f}
	return nil
}
