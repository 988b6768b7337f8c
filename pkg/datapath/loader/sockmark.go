package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/datapath/bpf"
)

// Socket LB marks the sockets it translates (seta_lb_sock_mark, socket
// storage), and the reverse hooks skip the revnat lookup for unmarked
// sockets (bpf/lib/lb.h). Sockets an agent without marks translated have
// revnat entries and no mark; seta_lb_sock_unmarked holds the largest
// socket cookie among them, and the hooks still look up unmarked sockets
// up to that cookie (cookies only grow, so later sockets were never
// translated unmarked).

const (
	sockMarkMapName     = "seta_lb_sock_mark"
	sockUnmarkedMapName = "seta_lb_sock_unmarked"
	sockRevNatMapName   = "seta_lb_sock_revnat"
)

// recordUnmarkedSockets runs before anything is loaded: when there is no
// mark map yet but a revnat table of an earlier agent, it pins
// seta_lb_sock_unmarked with the table's largest cookie (or raises the
// value a pin has), so the value is in place before any program can see
// the mark map. Redone after an interruption, it only raises the value:
// a larger one costs unmarked sockets a lookup, never a translation. It
// returns the recorded cookie, 0 when there was nothing to record.
func recordUnmarkedSockets(root string) (uint64, error) {
	if _, err := os.Stat(filepath.Join(root, sockMarkMapName)); err == nil {
		return 0, nil
	}
	rn, err := ebpf.LoadPinnedMap(filepath.Join(root, sockRevNatMapName), nil)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load datapath: open pinned %s: %w", sockRevNatMapName, err)
	}
	defer rn.Close()
	// The key starts with the socket cookie (struct lb_sock_key).
	if rn.KeySize() < 8 {
		return 0, fmt.Errorf("load datapath: pinned %s has %d-byte keys, too short for a socket cookie", sockRevNatMapName, rn.KeySize())
	}
	var (
		largest uint64
		k       = make([]byte, rn.KeySize())
		v       = make([]byte, rn.ValueSize())
	)
	it := rn.Iterate()
	for it.Next(&k, &v) {
		largest = max(largest, binary.NativeEndian.Uint64(k[:8]))
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("load datapath: read %s: %w", sockRevNatMapName, err)
	}
	if largest == 0 {
		return 0, nil
	}
	cs, err := bpf.LoadSock()
	if err != nil {
		return 0, fmt.Errorf("load datapath: %w", err)
	}
	spec, ok := cs.Maps[sockUnmarkedMapName]
	if !ok {
		return 0, fmt.Errorf("load datapath: the socket programs have no %s", sockUnmarkedMapName)
	}
	m, err := ebpf.NewMapWithOptions(spec, ebpf.MapOptions{PinPath: root})
	if err != nil {
		return 0, fmt.Errorf("load datapath: create %s: %w", sockUnmarkedMapName, err)
	}
	defer m.Close()
	var old uint64
	if err := m.Lookup(uint32(0), &old); err != nil {
		return 0, fmt.Errorf("load datapath: read %s: %w", sockUnmarkedMapName, err)
	}
	largest = max(largest, old)
	if err := m.Put(uint32(0), largest); err != nil {
		return 0, fmt.Errorf("load datapath: write %s: %w", sockUnmarkedMapName, err)
	}
	return largest, nil
}
