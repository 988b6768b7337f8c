package loader

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/seta-net/seta/pkg/datapath/lb"
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
