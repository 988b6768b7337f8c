package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/datapath/maps"
)

// The conntrack table changed its layout (bpf/lib/conntrack.h): seta_ct
// was keyed by the tuple of a connection's first packet, seta_ct2 is keyed
// by its two sides in a fixed order, with the opener in the entry, and
// its entries grew by the policy revision. The new layout has a new name,
// so neither agent nor programs can take one for the other: a pinned
// seta_ct is always the old layout (or something to refuse), and
// seta_ct2 is checked like any other pin. Programs of the earlier agent
// keep using seta_ct until they are replaced, which for the endpoint
// programs happens when the endpoints are restored; so the migration is
// two passes: one at load, before anything is attached, and one after
// every endpoint program was replaced (CTMigration.Finish), which copies
// the connections the old programs opened meanwhile and removes the old
// pin.

// openCTv1 opens the conntrack table an earlier agent pinned, nil if there
// is none. A pin of that name with any other shape is an error, and stays.
func openCTv1(root string) (*ebpf.Map, error) {
	path := filepath.Join(root, maps.CTMapV1Name)
	m, err := ebpf.LoadPinnedMap(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load datapath: open pinned %s: %w", path, err)
	}
	keySize, valueSize := binary.Size(maps.CTv1Key{}), binary.Size(maps.CTv1Entry{})
	if m.Type() != ebpf.LRUHash || int(m.KeySize()) != keySize || int(m.ValueSize()) != valueSize {
		err := fmt.Errorf("load datapath: the pinned %s is a %s with %d-byte keys and %d-byte values, not the "+
			"conntrack table of an earlier agent (an LRU hash, %d and %d bytes); remove the stale pin "+
			"(established connections are then checked against policy as new ones)",
			path, m.Type(), m.KeySize(), m.ValueSize(), keySize, valueSize)
		m.Close()
		return nil, err
	}
	return m, nil
}

// CTMigrated counts one pass of a migration.
type CTMigrated struct {
	// Copied are the live connections copied into seta_ct2.
	Copied int
	// Present are live connections seta_ct2 had already, from an earlier
	// pass or from the new programs; the entry there is kept.
	Present int
	// Expired are entries past their lifetime, left behind.
	Expired int
}

// CTMigration moves the connections of a conntrack table an earlier agent
// pinned (seta_ct) into seta_ct2: each live entry with its key in order,
// the opener taken from the old key's orientation, and policy revision 0,
// so policy checks the connection's next forward packet.
type CTMigration struct {
	old  *ebpf.Map
	path string
	to   *maps.CTMap
}

// pass copies every live connection of the old table that seta_ct2 does
// not have.
func (m *CTMigration) pass() (CTMigrated, error) {
	var (
		st CTMigrated
		k  maps.CTv1Key
		v  maps.CTv1Entry
	)
	now := maps.MonotonicNow()
	it := m.old.Iterate()
	for it.Next(&k, &v) {
		if !v.Live(k.Proto, now) {
			st.Expired++
			continue
		}
		ok, err := m.to.Insert(maps.MigrateCTv1(k, v))
		if err != nil {
			return st, fmt.Errorf("migrate %s: %w", m.path, err)
		}
		if ok {
			st.Copied++
		} else {
			st.Present++
		}
	}
	if err := it.Err(); err != nil {
		return st, fmt.Errorf("migrate %s: %w", m.path, err)
	}
	return st, nil
}

// Finish makes the second pass, once no program that uses the old table
// is attached any more, then removes its pin and closes it.
func (m *CTMigration) Finish() (CTMigrated, error) {
	st, err := m.pass()
	if err != nil {
		return st, err
	}
	if err := os.Remove(m.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("remove migrated %s: %w", m.path, err)
	}
	return st, m.old.Close()
}

// Path is the old table's pin.
func (m *CTMigration) Path() string { return m.path }

// close releases the old table without finishing: its pin stays, and the
// next agent migrates it again (what it copied stays copied).
func (m *CTMigration) close() error { return m.old.Close() }

// migrateCT makes the first pass of the migration of old, if there is
// one, into to.
func migrateCT(old *ebpf.Map, root string, to *maps.CTMap) (*CTMigration, CTMigrated, error) {
	if old == nil {
		return nil, CTMigrated{}, nil
	}
	m := &CTMigration{old: old, path: filepath.Join(root, maps.CTMapV1Name), to: to}
	st, err := m.pass()
	if err != nil {
		m.close()
		return nil, st, err
	}
	return m, st, nil
}
