package loader

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

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

	// A map with state of the wrong shape is an error, and stays: under
	// the conntrack table's name, and under its earlier name (which an
	// agent would otherwise migrate).
	for _, name := range []string{maps.CTMapName, maps.CTMapV1Name} {
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
		if err := m.Pin(filepath.Join(root2, name)); err != nil {
			t.Fatal(err)
		}
		if o3, err := Load(Options{BPFRoot: root2, EndpointMapSize: 64, PolicyMapSize: 64}); err == nil {
			o3.Close()
			t.Fatalf("a stale %s pin was accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(root2, name)); err != nil {
			t.Errorf("stale %s pin: %v", name, err)
		}
	}
}

// ctV1 pins a conntrack table of the earlier layout (seta_ct) under root.
func ctV1(t *testing.T, root string) *ebpf.Map {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: uint32(binary.Size(maps.CTv1Key{})),
		ValueSize: uint32(binary.Size(maps.CTv1Entry{})), MaxEntries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Pin(filepath.Join(root, maps.CTMapV1Name)); err != nil {
		t.Fatal(err)
	}
	return m
}

// v1Conn is an entry of the earlier table: the key is the first packet's
// tuple.
func v1Conn(t *testing.T, m *ebpf.Map, proto uint8, src, dst string, age time.Duration, packets uint64) {
	t.Helper()
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	k := maps.CTv1Key{Proto: proto, Family: 4, Sport: swap16(s.Port()), Dport: swap16(d.Port())}
	s4, d4 := s.Addr().As4(), d.Addr().As4()
	copy(k.Saddr[:], s4[:])
	copy(k.Daddr[:], d4[:])
	v := maps.CTv1Entry{LastSeen: maps.MonotonicNow() - uint64(age), Packets: packets, Replies: packets - 1,
		Flags: maps.CTFlagRxReported}
	if err := m.Update(&k, &v, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
}

// swap16 turns a host-order port into the in-memory value of its network
// order (little-endian hosts, as the bpf2go objects are).
func swap16(p uint16) uint16 { return p<<8 | p>>8 }

// An earlier agent's conntrack table is migrated: at load its live
// connections move to seta_ct2 (in order, opener recorded, policy
// revision 0) and expired ones stay behind; the second pass copies what
// the old programs added meanwhile without overwriting what seta_ct2 has,
// and removes the old pin. An agent that stopped before the second pass
// leaves the pin, and the next one migrates again.
func TestPrivilegedLoadMigratesConntrack(t *testing.T) {
	testutils.Privileged(t)
	root := filepath.Join("/sys/fs/bpf", testutils.RandName("seta-loadertest-"))
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	old := ctV1(t, root)
	v1Conn(t, old, unix.IPPROTO_TCP, "10.0.0.1:40000", "10.0.0.2:80", time.Minute, 10)  // opener is side a
	v1Conn(t, old, unix.IPPROTO_TCP, "10.0.0.9:40001", "10.0.0.2:80", time.Second, 20)  // opener is side b
	v1Conn(t, old, unix.IPPROTO_UDP, "10.0.0.1:5353", "10.0.0.2:53", 2*time.Minute, 30) // expired (60 s)

	load := func() *Objects {
		t.Helper()
		o, err := Load(Options{BPFRoot: root, EndpointMapSize: 64, PolicyMapSize: 64})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	o := load()
	if want := (CTMigrated{Copied: 2, Expired: 1}); o.CTMigration == nil || o.CTMigrated != want {
		t.Fatalf("first pass: %+v (pending %v), want %+v", o.CTMigrated, o.CTMigration != nil, want)
	}
	conns, err := o.CT.Dump()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range conns {
		if c.PolicyRev != 0 || c.Flags&maps.CTFlagRxReported == 0 {
			t.Errorf("%s: revision %d, flags %#x", c.TupleString(), c.PolicyRev, c.Flags)
		}
		got = append(got, fmt.Sprintf("%s %s %d/%d", maps.ProtoName(c.Proto), c.TupleString(), c.Packets, c.Replies))
	}
	if want := []string{"TCP 10.0.0.1:40000 -> 10.0.0.2:80 10/9", "TCP 10.0.0.9:40001 -> 10.0.0.2:80 20/19"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("migrated %q, want %q", got, want)
	}
	// The agent stops before the second pass: the next one migrates again.
	o.Close()
	if _, err := os.Stat(filepath.Join(root, maps.CTMapV1Name)); err != nil {
		t.Fatalf("old pin gone before the migration finished: %v", err)
	}
	o = load()
	defer o.Close()
	if want := (CTMigrated{Present: 2, Expired: 1}); o.CTMigrated != want {
		t.Errorf("first pass again: %+v, want %+v", o.CTMigrated, want)
	}

	// Meanwhile the old programs open a connection, and refresh one the
	// new map has already (the new map's entry stays as it is).
	v1Conn(t, old, unix.IPPROTO_UDP, "10.0.0.3:1000", "10.0.0.2:53", 0, 2)
	v1Conn(t, old, unix.IPPROTO_TCP, "10.0.0.1:40000", "10.0.0.2:80", 0, 99)
	st, err := o.FinishCTMigration()
	if err != nil {
		t.Fatal(err)
	}
	if want := (CTMigrated{Copied: 1, Present: 2, Expired: 1}); st == nil || *st != want {
		t.Errorf("second pass: %+v, want %+v", st, want)
	}
	if _, err := os.Stat(filepath.Join(root, maps.CTMapV1Name)); !os.IsNotExist(err) {
		t.Errorf("old pin after the migration: %v", err)
	}
	c, ok, err := o.CT.Lookup(maps.CTTuple{Proto: unix.IPPROTO_TCP, Src: netip.MustParseAddrPort("10.0.0.2:80"),
		Dst: netip.MustParseAddrPort("10.0.0.1:40000")})
	if err != nil || !ok || c.Packets != 10 || c.Opener != netip.MustParseAddrPort("10.0.0.1:40000") {
		t.Errorf("entry present before the second pass: %+v %v %v", c, ok, err)
	}
	if _, ok, _ := o.CT.Lookup(maps.CTTuple{Proto: unix.IPPROTO_UDP, Src: netip.MustParseAddrPort("10.0.0.3:1000"),
		Dst: netip.MustParseAddrPort("10.0.0.2:53")}); !ok {
		t.Error("the connection opened meanwhile was not copied")
	}
	if st, err := o.FinishCTMigration(); st != nil || err != nil {
		t.Errorf("a finished migration finished again: %v %v", st, err)
	}
	// The next agent finds nothing to migrate.
	o2 := load()
	o2.Close()
	if o2.CTMigration != nil {
		t.Error("migration pending after it finished")
	}
}
