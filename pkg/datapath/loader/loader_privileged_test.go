package loader

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/datapath/lb"
	"github.com/seta-net/seta/pkg/datapath/maps"
	"github.com/seta-net/seta/pkg/testutils"
)

// The socket programs load with socket LB on, sizes and the NodePort range
// applied; their sizes are logged (go test -v) so a change that makes them
// grow shows in review.
func TestPrivilegedLoadSocketLB(t *testing.T) {
	testutils.Privileged(t)
	root := filepath.Join("/sys/fs/bpf", testutils.RandName("seta-loadertest-"))
	t.Cleanup(func() { os.RemoveAll(root) })
	o, err := Load(Options{BPFRoot: root, EndpointMapSize: 64, PolicyMapSize: 64, SocketLB: true,
		LB: lb.Sizes{Map: 512, Affinity: 128, SockRevNat: 256}, NodePortMin: 31000, NodePortMax: 31999})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if len(o.Sock) != 8 {
		t.Fatalf("%d socket programs, want 8", len(o.Sock))
	}
	var lines []string
	for _, p := range o.Sock {
		if p.Program == nil || p.Attach == ebpf.AttachNone {
			t.Errorf("%s: program %v, attach type %v", p.Name, p.Program, p.Attach)
			continue
		}
		info, err := p.Program.Info()
		if err != nil {
			t.Fatal(err)
		}
		insns, _ := info.Instructions()
		verified, _ := info.VerifiedInstructions()
		lines = append(lines, fmt.Sprintf("%s: %d instructions, %d verified", p.Name, len(insns), verified))
	}
	sort.Strings(lines)
	for _, l := range lines {
		t.Log(l)
	}
	if got := o.LB.Maps().Services.MaxEntries(); got != 512 {
		t.Errorf("services map has %d entries, want 512", got)
	}
	var lo, hi uint16
	if err := o.sock.SetaNodeportMin.Get(&lo); err != nil {
		t.Fatal(err)
	}
	if err := o.sock.SetaNodeportMax.Get(&hi); err != nil {
		t.Fatal(err)
	}
	if lo != 31000 || hi != 31999 {
		t.Errorf("NodePort range %d-%d, want 31000-31999", lo, hi)
	}
	// Every collection that declares a map shares its pin.
	for _, name := range lb.MapNames {
		if _, err := os.Stat(filepath.Join(root, name)); err != nil {
			t.Errorf("pin of %s: %v", name, err)
		}
	}

	// Without socket LB only the maps are loaded, reusing the pins.
	o2, err := Load(Options{BPFRoot: root, EndpointMapSize: 64, PolicyMapSize: 64,
		LB: lb.Sizes{Map: 512, Affinity: 128, SockRevNat: 256}})
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	if len(o2.Sock) != 0 || o2.LB == nil {
		t.Errorf("without socket LB: %d programs, LB map %v", len(o2.Sock), o2.LB)
	}
}

// An upgrade from counter maps of an earlier layout (per-CPU hashes)
// replaces those pins with the current arrays and says so; a stale pin of
// a map that holds state is still refused, and left in place.
func TestPrivilegedLoadReplacesStaleCounters(t *testing.T) {
	testutils.Privileged(t)
	root := filepath.Join("/sys/fs/bpf", testutils.RandName("seta-loadertest-"))
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	pinOld := func(name string, spec *ebpf.MapSpec) {
		t.Helper()
		m, err := ebpf.NewMap(spec)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Pin(filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	pinOld(maps.EpStatsMapName, &ebpf.MapSpec{Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 32, MaxEntries: 64})
	pinOld(maps.MetricsMapName, &ebpf.MapSpec{Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: 16, MaxEntries: 1024})

	o, err := Load(Options{BPFRoot: root, EndpointMapSize: 64, PolicyMapSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if len(o.Replaced) != 2 {
		t.Errorf("replaced %q, want the two counter maps", o.Replaced)
	}
	for _, name := range []string{maps.EpStatsMapName, maps.MetricsMapName} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(root, name), nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type() != ebpf.PerCPUArray {
			t.Errorf("%s is a %s after the upgrade, want a per-CPU array", name, m.Type())
		}
		m.Close()
	}
	// Loading again keeps the (now current) counter maps.
	o2, err := Load(Options{BPFRoot: root, EndpointMapSize: 64, PolicyMapSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	o2.Close()
	if len(o2.Replaced) != 0 {
		t.Errorf("second load replaced %q", o2.Replaced)
	}

	// A map with state of the wrong shape is an error, and stays.
	root2 := filepath.Join("/sys/fs/bpf", testutils.RandName("seta-loadertest-"))
	if err := os.MkdirAll(root2, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root2) })
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Pin(filepath.Join(root2, maps.CTMapName)); err != nil {
		t.Fatal(err)
	}
	if o3, err := Load(Options{BPFRoot: root2, EndpointMapSize: 64, PolicyMapSize: 64}); err == nil {
		o3.Close()
		t.Fatal("a stale conntrack pin was accepted")
	}
	if _, err := os.Stat(filepath.Join(root2, maps.CTMapName)); err != nil {
		t.Errorf("stale conntrack pin: %v", err)
	}
}
