package loader

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/datapath/bpf"
	"github.com/seta-net/seta/pkg/testutils"
)

// An upgrade from an agent that did not mark translated sockets: its
// revnat table (here with two entries) is found without a mark map, so
// Load records the largest cookie in it before anything is loaded; a
// later Load, with the mark map pinned, records nothing more and keeps
// the value.
func TestPrivilegedLoadRecordsUnmarkedSockets(t *testing.T) {
	testutils.Privileged(t)
	root := filepath.Join("/sys/fs/bpf", testutils.RandName("seta-loadertest-"))
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	cs, err := bpf.LoadSock()
	if err != nil {
		t.Fatal(err)
	}
	rn, err := ebpf.NewMapWithOptions(cs.Maps[sockRevNatMapName], ebpf.MapOptions{PinPath: root})
	if err != nil {
		t.Fatal(err)
	}
	defer rn.Close()
	put := func(cookie uint64) {
		t.Helper()
		k := make([]byte, rn.KeySize())
		binary.NativeEndian.PutUint64(k, cookie)
		k[8] = byte(cookie) // distinct keys
		if err := rn.Put(k, make([]byte, rn.ValueSize())); err != nil {
			t.Fatal(err)
		}
	}
	put(4711)
	put(815)

	opts := Options{BPFRoot: root, EndpointMapSize: 64, PolicyMapSize: 64}
	o, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if o.UnmarkedSockets != 4711 {
		t.Errorf("recorded %d, want the largest cookie 4711", o.UnmarkedSockets)
	}
	if got := unmarkedPinned(t, root); got != 4711 {
		t.Errorf("pinned %s holds %d, want 4711", sockUnmarkedMapName, got)
	}

	put(9999) // a socket this agent translated (and marked)
	o, err = Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if o.UnmarkedSockets != 0 || unmarkedPinned(t, root) != 4711 {
		t.Errorf("second load recorded %d, pinned %d; want nothing new and 4711 kept", o.UnmarkedSockets, unmarkedPinned(t, root))
	}
}

func unmarkedPinned(t *testing.T, root string) uint64 {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(root, sockUnmarkedMapName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var v uint64
	if err := m.Lookup(uint32(0), &v); err != nil {
		t.Fatal(err)
	}
	return v
}
