package endpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Store persists endpoints as one JSON file each under <state-dir>/endpoints,
// written atomically (temporary file, fsync, rename), so a crash leaves
// either the old or the new record, never a torn one.
type Store struct{ dir string }

// NewStore creates the directory if needed.
func NewStore(stateDir string) (*Store, error) {
	dir := filepath.Join(stateDir, "endpoints")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create endpoint store: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(id uint16) string {
	return filepath.Join(s.dir, strconv.Itoa(int(id))+".json")
}

// Save writes ep.
func (s *Store) Save(ep *Endpoint) error {
	b, err := json.MarshalIndent(ep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode endpoint %d: %w", ep.ID, err)
	}
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("save endpoint %d: %w", ep.ID, err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save endpoint %d: %w", ep.ID, err)
	}
	if err := os.Rename(tmp, s.path(ep.ID)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save endpoint %d: %w", ep.ID, err)
	}
	return nil
}

// Delete removes the record of id; a missing record is not an error.
func (s *Store) Delete(id uint16) error {
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete endpoint record %d: %w", id, err)
	}
	return nil
}

// LoadAll reads every record. Unreadable records are returned as errors
// alongside the good ones, so one bad file does not lose the others.
func (s *Store) LoadAll() ([]*Endpoint, []error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, []error{fmt.Errorf("read endpoint store: %w", err)}
	}
	var out []*Endpoint
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			os.Remove(filepath.Join(s.dir, name)) // torn write from a crash
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", name, err))
			continue
		}
		var ep Endpoint
		if err := json.Unmarshal(b, &ep); err != nil {
			errs = append(errs, fmt.Errorf("decode %s: %w", name, err))
			continue
		}
		if strconv.Itoa(int(ep.ID))+".json" != name {
			errs = append(errs, fmt.Errorf("%s holds endpoint %d", name, ep.ID))
			continue
		}
		out = append(out, &ep)
	}
	return out, errs
}
