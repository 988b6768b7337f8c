// Package loader loads the endpoint programs into the kernel with their maps
// pinned under the agent's bpffs directory, so maps outlive the agent and a
// restarted agent picks up the same maps (and their contents) again.
package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/seta-net/seta/pkg/datapath/bpf"
	"github.com/seta-net/seta/pkg/datapath/lb"
	"github.com/seta-net/seta/pkg/datapath/maps"
)

// Options for Load.
type Options struct {
	// BPFRoot is the directory on a bpffs where maps are pinned, e.g.
	// /sys/fs/bpf/seta. It is created if missing.
	BPFRoot string
	// EndpointMapSize is the capacity of the endpoints map (addresses).
	// Zero keeps the default from bpf/lib/maps.h. (The per-endpoint
	// counters have a slot for every 16-bit endpoint ID, whatever this is.)
	EndpointMapSize uint32
	// PolicyMapSize is the capacity of the policy map (entries over all
	// endpoints). Zero keeps the default.
	PolicyMapSize uint32
	// Trace configures trace events; the zero value turns them off.
	Trace Trace
	// LB are the capacities of the load-balancing maps (bpf/lib/lb.h);
	// zero sizes keep the defaults.
	LB lb.Sizes
	// SocketLB loads the socket load-balancing programs (bpf/bpf_sock.c).
	// Without it only their maps are loaded (the service control plane
	// writes them either way), so a kernel without the cgroup hooks can
	// still run the rest of the datapath.
	SocketLB bool
	// NodePortMin and NodePortMax are the NodePort range, inclusive, for
	// the socket and tc programs; zero keeps the default (30000-32767).
	NodePortMin, NodePortMax uint16
	// NATMapSize is the capacity of the service NAT map (seta_lb_nat: two
	// entries per translated connection), Cilium's --bpf-nat-global-max.
	// Zero keeps the default (262144).
	NATMapSize uint32
	// HostFirewall and NodePort switch the features of the device
	// programs (bpf/bpf_netdev.c); the programs are loaded either way.
	HostFirewall, NodePort bool
}

// Trace is the load-time configuration of trace events (bpf/lib/trace.h),
// with every default already resolved (pkg/datapath does that). The values
// become read-only constants of the programs, so the verifier drops the
// code a setting does not use: trace events that are off cost nothing.
type Trace struct {
	// Enabled turns trace events for forwarded packets on.
	Enabled bool
	// NoEvents turns every event off (seta_events_enabled = 0): nothing
	// reads the ring.
	NoEvents bool
	// Aggregation is the monitor aggregation level, 0 (none) to 4
	// (maximum), Cilium's numbering.
	Aggregation uint8
	// Flags is the mask of TCP flags whose first sighting in a direction of
	// a connection is traced (aggregation medium and maximum).
	Flags uint8
	// Interval is how long a direction of a connection stays quiet without
	// news before its next packet is traced anyway (medium and maximum).
	// The datapath counts it in ticks of 2^30 ns (~1.07 s), rounded up.
	Interval time.Duration
}

// Names of the constants in bpf/lib/trace.h.
const (
	varTraceEvents         = "seta_trace_events"
	varMonitorAggregation  = "seta_monitor_aggregation"
	varAggregationFlags    = "seta_monitor_aggregation_flags"
	varAggregationInterval = "seta_monitor_aggregation_interval"
	varEventsEnabled       = "seta_events_enabled" // bpf/lib/events.h
)

// setTrace writes the trace configuration into a collection's constants.
// A collection that lacks one (its program cannot trace) is left alone.
func setTrace(cs *ebpf.CollectionSpec, t Trace) error {
	var enabled, events uint8 = 0, 1
	if t.Enabled {
		enabled = 1
	}
	if t.NoEvents {
		events = 0
	}
	for name, v := range map[string]any{
		varTraceEvents: enabled, varEventsEnabled: events, varMonitorAggregation: t.Aggregation,
		varAggregationFlags: t.Flags, varAggregationInterval: uint64(t.Interval.Nanoseconds()),
	} {
		vs, ok := cs.Variables[name]
		if !ok {
			continue
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("load datapath: set %s: %w", name, err)
		}
	}
	return nil
}

// Names of the NodePort range constants in bpf/lib/lb_frontend.h.
const (
	varNodePortMin = "seta_nodeport_min"
	varNodePortMax = "seta_nodeport_max"
)

// Names of the feature switches of bpf/bpf_netdev.c.
const (
	varEnableHostFirewall = "seta_enable_host_firewall"
	varEnableNodePort     = "seta_enable_node_port"
)

// setSwitches writes the device programs' feature switches into a
// collection that has them.
func setSwitches(cs *ebpf.CollectionSpec, opts Options) error {
	for name, on := range map[string]bool{varEnableHostFirewall: opts.HostFirewall, varEnableNodePort: opts.NodePort} {
		vs, ok := cs.Variables[name]
		if !ok {
			continue
		}
		var v uint8
		if on {
			v = 1
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("load datapath: set %s: %w", name, err)
		}
	}
	return nil
}

// setNodePort writes the NodePort range into a collection that has it.
func setNodePort(cs *ebpf.CollectionSpec, lo, hi uint16) error {
	for name, v := range map[string]uint16{varNodePortMin: lo, varNodePortMax: hi} {
		vs, ok := cs.Variables[name]
		if !ok || v == 0 {
			continue
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("load datapath: set %s: %w", name, err)
		}
	}
	return nil
}

// SockProg is one socket load-balancing program and the cgroup hook it
// goes on.
type SockProg struct {
	Name    string
	Attach  ebpf.AttachType
	Program *ebpf.Program
}

// Objects are the loaded programs and typed maps.
type Objects struct {
	// FromContainer goes on the ingress of every endpoint's host-side veth.
	FromContainer *ebpf.Program
	// FromHost goes on the ingress of seta_net, once per node.
	FromHost *ebpf.Program
	// FromNetdev and ToNetdev go on the node's devices: NodePort and the
	// host firewall.
	FromNetdev *ebpf.Program
	ToNetdev   *ebpf.Program
	Endpoints  *maps.EndpointMap
	EpStats    *maps.EpStatsMap
	Metrics    *maps.MetricsMap
	Policy     *maps.PolicyMap
	IPCache    *maps.IPCacheMap
	CT         *maps.CTMap
	// PolicyRev is the policy revision conntrack entries record
	// (bpf/lib/enforce.h).
	PolicyRev *maps.PolicyRevMap
	// Events is the event ring and EventsLost its per-CPU loss counter.
	Events     *ebpf.Map
	EventsLost *ebpf.Map
	// LB are the service load-balancing maps.
	LB *lb.Map
	// NAT is the tc path's per-connection service NAT table.
	NAT *lb.NATMap
	// NodeAddrs is the node's address per device, for NodePort SNAT.
	NodeAddrs *lb.NodeAddrMap
	// Sock are the socket load-balancing programs, one per cgroup hook
	// (empty without Options.SocketLB).
	Sock []SockProg
	// Replaced names the pinned counter maps of an earlier layout that
	// Load replaced with empty ones (their counts are lost), for the log.
	Replaced []string
	// UnmarkedSockets is the largest socket cookie an earlier agent that
	// did not mark translated sockets may have translated, recorded at
	// this load (0: nothing recorded now); for the log.
	UnmarkedSockets uint64
	// CTMigration is the migration of an earlier agent's conntrack table
	// (ctmigrate.go), nil if there was none; CTMigrated is what its first
	// pass, made by Load, moved. Finish it once every endpoint program is
	// replaced.
	CTMigration *CTMigration
	CTMigrated  CTMigrated

	lxc      bpf.LxcObjects
	host     bpf.HostObjects
	netdev   bpf.NetdevObjects
	sock     bpf.SockObjects
	sockMaps bpf.SockMaps // without SocketLB: the maps only
}

// Close releases file descriptors; pinned maps and attached links stay
// (an unfinished conntrack migration's old table too).
func (o *Objects) Close() error {
	var errs []error
	if o.CTMigration != nil {
		errs = append(errs, o.CTMigration.close())
	}
	return errors.Join(append(errs, o.lxc.Close(), o.host.Close(), o.netdev.Close(), o.sock.Close(), o.sockMaps.Close())...)
}

// FinishCTMigration makes the second pass of the conntrack migration, if
// one is pending, and removes the old table's pin. Call it once no program
// of the earlier agent is attached (after the endpoints are restored).
func (o *Objects) FinishCTMigration() (*CTMigrated, error) {
	if o.CTMigration == nil {
		return nil, nil
	}
	st, err := o.CTMigration.Finish()
	if err != nil {
		return &st, err
	}
	o.CTMigration = nil
	return &st, nil
}

const bpffsMagic = 0xcafe4a11

// EnsureBPFFS makes sure dir lies on a bpffs, mounting one at /sys/fs/bpf
// when dir is below it and nothing is mounted there yet.
func EnsureBPFFS(dir string) error {
	if onBPFFS(dir) {
		return nil
	}
	const std = "/sys/fs/bpf"
	if dir != std && !strings.HasPrefix(filepath.Clean(dir), std+"/") {
		return fmt.Errorf("bpf root %s is not on a bpf filesystem (mount one with: mount -t bpf bpf %s)", dir, filepath.Dir(dir))
	}
	if err := os.MkdirAll(std, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", std, err)
	}
	if err := unix.Mount("bpf", std, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", std, err)
	}
	return nil
}

// onBPFFS reports whether the nearest existing ancestor of dir is on bpffs.
func onBPFFS(dir string) bool {
	for p := dir; ; p = filepath.Dir(p) {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil {
			return uint32(st.Type) == bpffsMagic
		}
		if p == "/" || p == "." {
			return false
		}
	}
}

// Load loads the endpoint programs. Maps already pinned under BPFRoot are
// reused; a pinned map whose shape differs from the current one (say, a
// changed size) is an error that names the map and how to resolve it,
// except for counter maps of an earlier layout, which are replaced, and an
// earlier agent's conntrack table, whose live connections are migrated
// (ctmigrate.go: Load makes the first pass).
func Load(opts Options) (*Objects, error) {
	if opts.BPFRoot == "" {
		return nil, errors.New("load datapath: no bpf root given")
	}
	if err := EnsureBPFFS(opts.BPFRoot); err != nil {
		return nil, fmt.Errorf("load datapath: %w", err)
	}
	if err := os.MkdirAll(opts.BPFRoot, 0o700); err != nil {
		return nil, fmt.Errorf("load datapath: create bpf root: %w", err)
	}
	// Only needed on kernels before 5.11, which charged BPF memory to
	// RLIMIT_MEMLOCK; harmless elsewhere.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("load datapath: %w", err)
	}
	unmarked, err := recordUnmarkedSockets(opts.BPFRoot)
	if err != nil {
		return nil, err
	}
	oldCT, err := openCTv1(opts.BPFRoot)
	if err != nil {
		return nil, err
	}
	o := &Objects{UnmarkedSockets: unmarked}
	// Closing what is not loaded yet is a no-op.
	fail := func(err error) (*Objects, error) {
		o.Close()
		if oldCT != nil {
			oldCT.Close()
		}
		return nil, err
	}
	if o.Replaced, err = replaceStaleCounters(bpf.LoadLxc, opts.BPFRoot); err != nil {
		return fail(err)
	}
	// Both collections declare the same maps, pinned by name: the first
	// load creates (or reuses) the pins, the second reuses them, so the
	// programs share one endpoint map.
	if err := load(bpf.LoadLxc, &o.lxc, opts); err != nil {
		return fail(err)
	}
	if err := load(bpf.LoadHost, &o.host, opts); err != nil {
		return fail(err)
	}
	if err := load(bpf.LoadNetdev, &o.netdev, opts); err != nil {
		return fail(err)
	}
	if err := loadSock(o, opts); err != nil {
		return fail(err)
	}
	o.FromNetdev, o.ToNetdev = o.netdev.CilFromNetdev, o.netdev.CilToNetdev
	o.FromContainer = o.lxc.CilFromContainer
	o.FromHost = o.host.CilFromHost
	o.Endpoints = maps.NewEndpointMap(o.lxc.SetaEndpoints)
	o.EpStats = maps.NewEpStatsMap(o.lxc.SetaEpStats)
	o.Metrics = maps.NewMetricsMap(o.lxc.SetaMetrics)
	o.Policy = maps.NewPolicyMap(o.lxc.SetaPolicy)
	o.IPCache = maps.NewIPCacheMap(o.lxc.SetaIpcache)
	o.CT = maps.NewCTMap(o.lxc.SetaCt2)
	o.PolicyRev = maps.NewPolicyRevMap(o.lxc.SetaPolicyRev)
	o.Events, o.EventsLost = o.lxc.SetaEvents, o.lxc.SetaEventsLost
	o.NAT = lb.NewNATMap(o.lxc.SetaLbNat)
	o.NodeAddrs = lb.NewNodeAddrMap(o.lxc.SetaNodeAddrs)
	// migrateCT owns oldCT from here: on an error it has closed it.
	mig, st, err := migrateCT(oldCT, opts.BPFRoot, o.CT)
	if err != nil {
		o.Close()
		return nil, err
	}
	o.CTMigration, o.CTMigrated = mig, st
	return o, nil
}

// loadSock loads the socket load-balancing programs with their maps, or,
// without Options.SocketLB, only the maps.
func loadSock(o *Objects, opts Options) error {
	var m bpf.SockMaps
	if opts.SocketLB {
		if err := load(bpf.LoadSock, &o.sock, opts); err != nil {
			return err
		}
		m = o.sock.SockMaps
		cs, err := bpf.LoadSock()
		if err != nil {
			return fmt.Errorf("load datapath: parse embedded ELF: %w", err)
		}
		p := o.sock.SockPrograms
		for _, x := range []struct {
			name string
			prog *ebpf.Program
		}{
			{bpf.SockProgCilSock4Connect, p.CilSock4Connect}, {bpf.SockProgCilSock6Connect, p.CilSock6Connect},
			{bpf.SockProgCilSock4Sendmsg, p.CilSock4Sendmsg}, {bpf.SockProgCilSock6Sendmsg, p.CilSock6Sendmsg},
			{bpf.SockProgCilSock4Recvmsg, p.CilSock4Recvmsg}, {bpf.SockProgCilSock6Recvmsg, p.CilSock6Recvmsg},
			{bpf.SockProgCilSock4Getpeername, p.CilSock4Getpeername}, {bpf.SockProgCilSock6Getpeername, p.CilSock6Getpeername},
		} {
			o.Sock = append(o.Sock, SockProg{Name: x.name, Attach: cs.Programs[x.name].AttachType, Program: x.prog})
		}
	} else {
		if err := load(bpf.LoadSock, &o.sockMaps, opts); err != nil {
			return err
		}
		m = o.sockMaps
	}
	o.LB = lb.New(lb.Maps{
		Services: m.SetaLbServices, Backends: m.SetaLbBackends, RevNat: m.SetaLbRevnat,
		Affinity: m.SetaLbAffinity, Maglev: m.SetaLbMaglev, SockRevNat: m.SetaLbSockRevnat,
	})
	return nil
}

// counterMaps are the pinned maps that only hold counters: losing their
// contents costs counts, never state that traffic depends on, so a pin of
// an earlier layout is replaced instead of refused.
var counterMaps = []string{maps.EpStatsMapName, maps.MetricsMapName}

// replaceStaleCounters removes the pins of counter maps whose type, key,
// value or size differ from this agent's (say, the per-CPU hashes that
// came before the arrays), so loading creates them anew; programs still
// attached keep the old map until they are replaced. It returns what it
// removed. Any other mismatch stays an error of load.
func replaceStaleCounters(spec func() (*ebpf.CollectionSpec, error), root string) ([]string, error) {
	cs, err := spec()
	if err != nil {
		return nil, fmt.Errorf("load datapath: parse embedded ELF: %w", err)
	}
	var replaced []string
	for _, name := range counterMaps {
		ms, ok := cs.Maps[name]
		if !ok {
			continue
		}
		path := filepath.Join(root, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return replaced, fmt.Errorf("load datapath: open pinned %s: %w", path, err)
		}
		old := m.Type()
		incompatible := ms.Compatible(m)
		m.Close()
		if incompatible == nil {
			continue
		}
		if err := os.Remove(path); err != nil {
			return replaced, fmt.Errorf("load datapath: replace stale counter map %s: %w", path, err)
		}
		replaced = append(replaced, fmt.Sprintf("%s (was %s: %v)", name, old, incompatible))
	}
	return replaced, nil
}

func load(spec func() (*ebpf.CollectionSpec, error), objs any, opts Options) error {
	cs, err := spec()
	if err != nil {
		return fmt.Errorf("load datapath: parse embedded ELF: %w", err)
	}
	// Every collection gets the same sizes for the maps it declares, so
	// whichever loads first creates the pin the others reuse.
	setSize := func(name string, n uint32) {
		if ms, ok := cs.Maps[name]; ok && n > 0 {
			ms.MaxEntries = n
		}
	}
	setSize(maps.EndpointsMapName, opts.EndpointMapSize)
	setSize(maps.PolicyMapName, opts.PolicyMapSize)
	setSize(lb.NATMapName, opts.NATMapSize)
	opts.LB.Apply(cs)
	if err := setTrace(cs, opts.Trace); err != nil {
		return err
	}
	if err := setNodePort(cs, opts.NodePortMin, opts.NodePortMax); err != nil {
		return err
	}
	if err := setSwitches(cs, opts); err != nil {
		return err
	}
	err = cs.LoadAndAssign(objs, &ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: opts.BPFRoot},
	})
	if err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return fmt.Errorf("load datapath: a map pinned under %s does not match this agent's map (changed size or layout); "+
				"remove the stale pin (the datapath loses its state until the agent restores it): %w", opts.BPFRoot, err)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("load datapath: verifier rejected program: %+v", ve)
		}
		return fmt.Errorf("load datapath: %w", err)
	}
	return nil
}
