// Package datapath is the agent's kernel side: it probes the kernel, loads
// and pins the eBPF programs and maps, attaches them to endpoint devices and
// keeps the endpoint map in step with the endpoints it is given. It
// implements endpoint.Datapath.
//
// Only packages under pkg/datapath import cilium/ebpf or netlink.
package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/seta-net/seta/pkg/datapath/attach"
	"github.com/seta-net/seta/pkg/datapath/lb"
	"github.com/seta-net/seta/pkg/datapath/linux"
	"github.com/seta-net/seta/pkg/datapath/loader"
	"github.com/seta-net/seta/pkg/datapath/maps"
	"github.com/seta-net/seta/pkg/datapath/probe"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/identity"
)

// Config of the datapath.
type Config struct {
	// BPFRoot is the bpffs directory for pinned maps and links.
	BPFRoot string
	// AttachMode is "auto" (tcx when the kernel has it, else clsact),
	// "tcx" or "clsact".
	AttachMode string
	// EndpointMapSize is the capacity of the endpoint maps.
	EndpointMapSize uint32
	// Gateways of the pod CIDRs; an invalid one means that family is off.
	GatewayV4, GatewayV6 netip.Addr
	// PolicyMapSize is the capacity of the policy map.
	PolicyMapSize uint32
	// AuditMode makes every endpoint report policy drops instead of
	// dropping (agent-wide policy audit mode).
	AuditMode bool
	// Devices are the node's network devices that get the device programs
	// (bpf/bpf_netdev.c) when HostFirewall or EnableNodePort is on. With
	// neither, no device gets them, and those a previous agent attached
	// are detached.
	Devices []string
	// HostFirewall enforces the node's own policy on Devices.
	HostFirewall bool
	// EnableNodePort translates NodePort and ExternalIP/LoadBalancer
	// traffic arriving on Devices from outside the node (Cilium's
	// --enable-node-port). Service translation for pods' packets
	// (bpf_lxc.c) is always on: it only acts on packets that socket LB
	// did not translate.
	EnableNodePort bool
	// NATMapSize is the capacity of the service NAT map (two entries per
	// translated connection). Zero: lb.DefaultNATMapSize.
	NATMapSize uint32

	// TraceEvents turns on trace events (monitor.TypeTrace): packets the
	// datapath forwards, reported to the event ring as the aggregation
	// below allows. Off (the zero value), the programs carry no trace code
	// at all. Drop and policy verdict events do not depend on it.
	TraceEvents bool
	// NoEvents stops the programs from emitting events at all (drops,
	// policy verdicts, traces) for an agent in which nothing reads the
	// event ring (Hubble off): a ring nobody drains fills once, and then
	// every event costs a failed reserve. Counters and metrics do not
	// depend on it.
	NoEvents bool
	// MonitorAggregation is the level, MonitorAggregationNone (0) to
	// MonitorAggregationMaximum (4), Cilium's --monitor-aggregation. It is
	// taken as given, 0 included: an agent passes
	// DefaultMonitorAggregation (medium) unless configured otherwise.
	MonitorAggregation int
	// MonitorAggregationFlags is the mask of TCP flags (TCPFlag*) whose
	// first sighting in a direction of a connection is traced at medium and
	// maximum; 0 means DefaultMonitorAggregationFlags (SYN|FIN|RST).
	MonitorAggregationFlags uint8
	// MonitorAggregationInterval is how long a direction of a connection
	// may go without a trace at medium and maximum; 0 means
	// DefaultMonitorAggregationInterval (5 s); at most
	// MaxMonitorAggregationInterval. The datapath keeps report times in
	// ticks of 2^30 ns (~1.07 s) and rounds the interval up to whole ticks,
	// so the periodic trace comes within a tick of it (Cilium's report
	// clock has whole seconds).
	MonitorAggregationInterval time.Duration

	// EnableSocketLB attaches the socket load-balancing programs
	// (bpf/bpf_sock.c: connect, sendmsg, recvmsg and getpeername, IPv4 and
	// IPv6) to CgroupRoot, so every process below it reaches services by
	// their VIPs and NodePorts. Off (the zero value), they are not loaded,
	// and the links a previous agent pinned are detached; the
	// load-balancing maps exist either way. The agent turns it on unless
	// configured otherwise, as Cilium does.
	EnableSocketLB bool
	// CgroupRoot is the cgroup v2 directory the socket programs attach to:
	// a cgroup2 mount or any cgroup below one (a lab node's own cgroup) is
	// used as it is, a missing directory below a cgroup2 mount is created
	// as a new cgroup, and any other path gets the cgroup2 hierarchy
	// mounted on it (its root: every process of the machine). Empty:
	// DefaultCgroupRoot.
	CgroupRoot string
	// NodePortMin and NodePortMax are the NodePort range, inclusive: a
	// connection to one of the node's addresses on a port in it is looked
	// up as a NodePort. Zero: DefaultNodePortMin, DefaultNodePortMax.
	NodePortMin, NodePortMax uint16
	// LBMapSize is Cilium's --bpf-lb-map-max: the capacity of the services
	// map (each frontend takes one entry plus one per backend) and the
	// backends map, and, up to 65536 (the rev-NAT ID is 16 bits), of the
	// rev-NAT and Maglev maps. Zero: lb.DefaultMapSize (65536).
	LBMapSize uint32
	// LBAffinityMapSize is the capacity of the session-affinity map. Zero:
	// lb.DefaultAffinityMapSize (65536).
	LBAffinityMapSize uint32
	// LBSockRevNatMapSize is the capacity of the socket rev-NAT map (one
	// entry per translated socket and backend, one more per unconnected
	// UDP flow). Zero: lb.DefaultSockRevNatMapSize (262144).
	LBSockRevNatMapSize uint32
}

// Defaults of Config's socket load-balancing fields.
const (
	DefaultCgroupRoot  = "/run/seta/cgroupv2"
	DefaultNodePortMin = 30000
	DefaultNodePortMax = 32767
)

// sockLinksDir is where the socket programs' cgroup links are pinned.
const sockLinksDir = "sock-links"

// socketLBOptions resolves the zero values of the socket LB settings.
func socketLBOptions(cfg Config) (root string, lo, hi uint16, err error) {
	root, lo, hi = cfg.CgroupRoot, cfg.NodePortMin, cfg.NodePortMax
	if root == "" {
		root = DefaultCgroupRoot
	}
	if lo == 0 {
		lo = DefaultNodePortMin
	}
	if hi == 0 {
		hi = DefaultNodePortMax
	}
	if lo > hi {
		return "", 0, 0, fmt.Errorf("node port range %d-%d is empty", lo, hi)
	}
	return root, lo, hi, nil
}

// Datapath is the loaded datapath.
type Datapath struct {
	log    *slog.Logger
	cfg    Config
	report probe.Report
	objs   *loader.Objects
	att    *attach.Attacher
	// cg attaches the socket programs; nil without socket LB.
	cg *attach.CgroupAttacher
	// devices carry the device programs.
	devices []string
	// eps are what the endpoints map holds per endpoint: addresses and
	// the policy flags the enforcer set (policyflags.go).
	eps epIndex
	// revMu serialises the policy revision's bumps (policyrev.go).
	revMu sync.Mutex
}

// New probes the kernel, prepares the node and loads the programs.
func New(log *slog.Logger, cfg Config) (*Datapath, error) {
	log = log.With("subsys", "datapath")
	// A bad setting fails before anything on the node changes.
	trace, err := traceOptions(cfg)
	if err != nil {
		return nil, err
	}
	cgroupRoot, npMin, npMax, err := socketLBOptions(cfg)
	if err != nil {
		return nil, err
	}
	report := probe.Run()
	for _, f := range report.Features {
		if f.Status == probe.Inconclusive {
			log.Warn("Kernel feature probe was inconclusive", "feature", f.Name, "detail", f.Detail)
		}
	}
	if err := report.Err(); err != nil {
		return nil, err
	}
	if cfg.EnableSocketLB {
		if err := report.ErrFor("socket load balancing", probe.SocketLBFeatures...); err != nil {
			return nil, fmt.Errorf("%w (run the agent with --enable-socket-lb=false to do without it)", err)
		}
	}
	mode, err := chooseMode(cfg.AttachMode, report)
	if err != nil {
		return nil, err
	}
	netIfindex, err := linux.SetupNode(linux.Node{GatewayV4: cfg.GatewayV4, GatewayV6: cfg.GatewayV6})
	if err != nil {
		return nil, fmt.Errorf("set up node: %w", err)
	}
	objs, err := loader.Load(loader.Options{BPFRoot: cfg.BPFRoot, EndpointMapSize: cfg.EndpointMapSize,
		PolicyMapSize: cfg.PolicyMapSize, Trace: trace,
		LB:       lb.Sizes{Map: cfg.LBMapSize, Affinity: cfg.LBAffinityMapSize, SockRevNat: cfg.LBSockRevNatMapSize},
		SocketLB: cfg.EnableSocketLB, NodePortMin: npMin, NodePortMax: npMax,
		NATMapSize: cfg.NATMapSize, HostFirewall: cfg.HostFirewall, NodePort: cfg.EnableNodePort})
	if err != nil {
		return nil, err
	}
	if objs.UnmarkedSockets != 0 {
		log.Info("Sockets translated by an earlier agent keep their reverse translation", "up-to-socket-cookie", objs.UnmarkedSockets)
	}
	for _, r := range objs.Replaced {
		log.Warn("Replaced a pinned counter map of an earlier layout; its counters start from zero", "map", r)
	}
	if m := objs.CTMigration; m != nil {
		st := objs.CTMigrated
		log.Info("Migrating the conntrack table of an earlier layout", "from", m.Path(), "to", maps.CTMapName,
			"copied", st.Copied, "present", st.Present, "expired", st.Expired)
	}
	// Endpoint links and node links are pinned apart, so garbage collection
	// of endpoint pins never touches the node's own.
	att, err := attach.New(mode, filepath.Join(cfg.BPFRoot, "links"))
	if err != nil {
		objs.Close()
		return nil, err
	}
	nodeAtt, err := attach.New(mode, filepath.Join(cfg.BPFRoot, "node-links"))
	if err != nil {
		objs.Close()
		return nil, err
	}
	if err := nodeAtt.Attach(netIfindex, linux.NetDevice, attach.Ingress, objs.FromHost); err != nil {
		objs.Close()
		return nil, fmt.Errorf("attach from-host program: %w", err)
	}
	devices, err := attachDevices(log, cfg, nodeAtt, objs)
	if err != nil {
		objs.Close()
		return nil, err
	}
	cg, err := attachSocketLB(cfg, cgroupRoot, objs)
	if err != nil {
		objs.Close()
		return nil, err
	}
	if cg != nil {
		log.Info("Socket load balancing attached", "cgroup-root", cg.Path(), "node-port-range", fmt.Sprintf("%d-%d", npMin, npMax))
	}
	log.Info("Datapath loaded", "kernel", report.Kernel, "attach", mode, "bpf-root", cfg.BPFRoot,
		"events", !trace.NoEvents, "trace-events", trace.Enabled, "monitor-aggregation", MonitorAggregationName(int(trace.Aggregation)),
		"monitor-aggregation-flags", fmt.Sprintf("%#02x", trace.Flags), "monitor-aggregation-interval", trace.Interval,
		"socket-lb", cfg.EnableSocketLB, "node-port", cfg.EnableNodePort, "host-firewall", cfg.HostFirewall,
		"devices", devices)
	d := &Datapath{log: log, cfg: cfg, report: report, objs: objs, att: att, cg: cg, devices: devices}
	if err := d.indexEndpoints(); err != nil {
		objs.Close()
		return nil, err
	}
	// Entries recorded under an earlier agent are checked again: this
	// agent's programs and its view of policy may differ. It also makes
	// the revision nonzero on a new map, as the datapath expects.
	if err := d.bumpPolicyRev(); err != nil {
		objs.Close()
		return nil, err
	}
	return d, nil
}

// attachDevices puts the device programs on the configured devices when
// NodePort or the host firewall is on (both halves: the egress half is a
// no-op without the host firewall), records each device's addresses for
// NodePort SNAT, and detaches the programs from devices a previous agent
// attached them to that are no longer wanted. It returns the devices the
// programs are on.
func attachDevices(log *slog.Logger, cfg Config, nodeAtt *attach.Attacher, objs *loader.Objects) ([]string, error) {
	var want []string
	if cfg.HostFirewall || cfg.EnableNodePort {
		want = cfg.Devices
	}
	var addrs []lb.DeviceAddr
	keep := map[string]bool{linux.NetDevice: true}
	for _, dev := range want {
		idx, devAddrs, err := linux.DeviceAddrs(dev)
		if err == nil {
			err = nodeAtt.Attach(idx, dev, attach.Ingress, objs.FromNetdev)
		}
		if err == nil {
			err = nodeAtt.Attach(idx, dev, attach.Egress, objs.ToNetdev)
		}
		if err != nil {
			return nil, fmt.Errorf("attach device programs to %s: %w", dev, err)
		}
		keep[dev] = true
		for _, a := range devAddrs {
			addrs = append(addrs, lb.DeviceAddr{Ifindex: idx, Addr: a})
		}
		log.Info("Device programs attached", "device", dev, "node-port", cfg.EnableNodePort, "host-firewall", cfg.HostFirewall)
	}
	if err := objs.NodeAddrs.Sync(addrs); err != nil {
		return nil, err
	}
	// Devices a previous agent attached to (their link pins; in clsact
	// mode the filters live on the devices, and only the configured ones
	// are known).
	stale, err := nodeAtt.PinnedDevices()
	if err != nil {
		return nil, err
	}
	if len(want) == 0 && nodeAtt.Mode() == attach.ModeClsact {
		stale = append(stale, cfg.Devices...)
	}
	for _, dev := range stale {
		if keep[dev] {
			continue
		}
		if err := nodeAtt.Detach(dev); err != nil {
			return nil, fmt.Errorf("detach device programs from %s: %w", dev, err)
		}
		log.Info("Device programs detached", "device", dev)
	}
	return want, nil
}

// Devices are the node devices the device programs are attached to (none
// without NodePort and host firewall).
func (d *Datapath) Devices() []string { return d.devices }

// NodePort reports whether NodePort translation on the devices is on.
func (d *Datapath) NodePort() bool { return d.cfg.EnableNodePort }

// NATMap is the tc path's per-connection service NAT table.
func (d *Datapath) NATMap() *lb.NATMap { return d.objs.NAT }

// attachSocketLB attaches the socket programs to the cgroup root with links
// pinned under <bpf-root>/sock-links: a restarted agent updates each link
// in place (atomic: every socket call runs the old program or the new one),
// and links left by a previous agent that this one does not want are
// detached. Without socket LB it only detaches, and returns nil.
func attachSocketLB(cfg Config, root string, objs *loader.Objects) (*attach.CgroupAttacher, error) {
	pins := filepath.Join(cfg.BPFRoot, sockLinksDir)
	if !cfg.EnableSocketLB {
		if err := attach.DetachCgroupLinks(pins, nil); err != nil {
			return nil, fmt.Errorf("detach socket load balancing: %w", err)
		}
		return nil, nil
	}
	if err := attach.EnsureCgroup2(root); err != nil {
		return nil, fmt.Errorf("socket load balancing: %w", err)
	}
	cg, err := attach.NewCgroupAttacher(root, pins)
	if err != nil {
		return nil, fmt.Errorf("socket load balancing: %w", err)
	}
	keep := map[string]bool{}
	for _, p := range objs.Sock {
		if err := cg.Attach(p.Name, p.Attach, p.Program); err != nil {
			return nil, fmt.Errorf("socket load balancing: %w", err)
		}
		keep[p.Name] = true
	}
	if err := attach.DetachCgroupLinks(pins, keep); err != nil {
		return nil, fmt.Errorf("socket load balancing: detach stale links: %w", err)
	}
	return cg, nil
}

// LBMap is the service load-balancing maps, for the service control plane
// (it implements loadbalancer.LBMap).
func (d *Datapath) LBMap() *lb.Map { return d.objs.LB }

// SocketLBCgroup is the cgroup the socket load-balancing programs are
// attached to; "" when socket LB is off.
func (d *Datapath) SocketLBCgroup() string {
	if d.cg == nil {
		return ""
	}
	return d.cg.Path()
}

// CheckSocketLB lists what is wrong with the socket load-balancing
// attachments (a program not attached to the cgroup root); nil when all are
// in place or socket LB is off.
func (d *Datapath) CheckSocketLB() []string {
	if d.cg == nil {
		return nil
	}
	var probs []string
	for _, p := range d.objs.Sock {
		ok, err := d.cg.Attached(p.Name)
		switch {
		case err != nil:
			probs = append(probs, fmt.Sprintf("socket program %s: %v", p.Name, err))
		case !ok:
			probs = append(probs, fmt.Sprintf("socket program %s is not attached to %s", p.Name, d.cg.Path()))
		}
	}
	return probs
}

func chooseMode(want string, r probe.Report) (attach.Mode, error) {
	hasTCX := r.Has(probe.FeatTCX)
	switch want {
	case "", "auto":
		if hasTCX {
			return attach.ModeTCX, nil
		}
		return attach.ModeClsact, nil
	case string(attach.ModeTCX):
		if !hasTCX {
			return "", fmt.Errorf("attach mode tcx requested, but kernel %s has no tcx (needs Linux 6.6); use --attach-mode=clsact or auto", r.Kernel)
		}
		return attach.ModeTCX, nil
	case string(attach.ModeClsact):
		return attach.ModeClsact, nil
	}
	return "", fmt.Errorf("unknown attach mode %q (want auto, tcx or clsact)", want)
}

// Mode returns how programs are attached.
func (d *Datapath) Mode() attach.Mode { return d.att.Mode() }

// Features returns the kernel probe report.
func (d *Datapath) Features() probe.Report { return d.report }

// Metrics returns the node-wide forward/drop counters.
func (d *Datapath) Metrics() (map[maps.MetricsKey]maps.MetricsValue, error) {
	return d.objs.Metrics.Dump()
}

// Close releases file descriptors. Programs stay attached and maps pinned,
// so traffic keeps flowing while the agent is away.
func (d *Datapath) Close() error { return d.objs.Close() }

func podNet(ep *endpoint.Endpoint) linux.PodNet {
	return linux.PodNet{
		NetNS: ep.NetNS, IfName: ep.IfName, IPv4: ep.IPv4, IPv6: ep.IPv6,
		GatewayV4: ep.GatewayV4, GatewayV6: ep.GatewayV6, MTU: ep.MTU,
	}
}

// SetupEndpoint implements endpoint.Datapath.
func (d *Datapath) SetupEndpoint(ep *endpoint.Endpoint) (err error) {
	hostIf := linux.HostIfName(ep.ContainerID, ep.IfName)
	lk, err := linux.CreateEndpoint(hostIf, podNet(ep))
	if err != nil {
		if errors.Is(err, linux.ErrNetNSNotFound) {
			return fmt.Errorf("%w: %v", endpoint.ErrNetNSNotFound, err)
		}
		if errors.Is(err, linux.ErrIfaceExists) {
			return fmt.Errorf("%w: %v", endpoint.ErrExists, err)
		}
		return err
	}
	ep.HostIfName, ep.HostIfIndex = lk.HostIfName, lk.HostIfIndex
	ep.HostMAC, ep.PodMAC = lk.HostMAC.String(), lk.PodMAC.String()
	defer func() {
		if err != nil {
			d.RemoveEndpoint(ep)
		}
	}()
	// The ID may have counted for an endpoint that went while the agent
	// was away; a new endpoint starts from zero (a restored one keeps its
	// counters: RestoreEndpoint does not come here).
	if err := d.objs.EpStats.Reset(ep.ID); err != nil {
		return err
	}
	if err := d.program(ep, lk); err != nil {
		return err
	}
	return linux.EnsureHostRoutes(lk, podNet(ep))
}

// program attaches the endpoint's program and writes its map entries. The
// map entries come last: until they exist, nothing is redirected to the
// endpoint.
func (d *Datapath) program(ep *endpoint.Endpoint, lk linux.Link) error {
	if err := d.att.Attach(lk.HostIfIndex, lk.HostIfName, attach.Ingress, d.objs.FromContainer); err != nil {
		return err
	}
	return d.writeEndpoint(ep, lk.HostIfIndex, lk)
}

func linkOf(ep *endpoint.Endpoint) (linux.Link, error) {
	hm, err := net.ParseMAC(ep.HostMAC)
	if err != nil {
		return linux.Link{}, fmt.Errorf("endpoint %d: bad host MAC %q: %w", ep.ID, ep.HostMAC, err)
	}
	pm, err := net.ParseMAC(ep.PodMAC)
	if err != nil {
		return linux.Link{}, fmt.Errorf("endpoint %d: bad pod MAC %q: %w", ep.ID, ep.PodMAC, err)
	}
	return linux.Link{HostIfName: ep.HostIfName, HostIfIndex: ep.HostIfIndex, HostMAC: hm, PodMAC: pm}, nil
}

// RestoreEndpoint implements endpoint.Datapath.
func (d *Datapath) RestoreEndpoint(ep *endpoint.Endpoint) (bool, error) {
	idx, mac, ok, err := linux.HostLink(ep.HostIfName)
	if err != nil || !ok {
		return false, err
	}
	ep.HostIfIndex, ep.HostMAC = idx, mac.String()
	lk, err := linkOf(ep)
	if err != nil {
		return false, err
	}
	if err := linux.EnsureHostRoutes(lk, podNet(ep)); err != nil {
		return true, err
	}
	// Replacing the programs is atomic; map entries are rewritten in place.
	return true, d.program(ep, lk)
}

// RemoveEndpoint implements endpoint.Datapath. Map entries go first, so no
// packet is redirected to a device that is going away.
func (d *Datapath) RemoveEndpoint(ep *endpoint.Endpoint) error {
	var errs []error
	errs = append(errs, d.removeEndpointEntries(ep))
	errs = append(errs, d.objs.EpStats.Reset(ep.ID))
	if ep.HostMAC != "" {
		// Only an endpoint that was set up has routes; its addresses may
		// already be routed to a newer endpoint otherwise.
		errs = append(errs, linux.DeleteHostRoutes(ep.Addrs()...))
	}
	if ep.HostIfName != "" {
		errs = append(errs, linux.DeleteEndpoint(ep.HostIfName), d.att.Release(ep.HostIfName))
	}
	return errors.Join(errs...)
}

// CheckEndpoint implements endpoint.Datapath.
func (d *Datapath) CheckEndpoint(ep *endpoint.Endpoint) []string {
	lk, err := linkOf(ep)
	if err != nil {
		return []string{err.Error()}
	}
	probs := linux.CheckEndpoint(lk, podNet(ep))
	ok, err := d.att.Attached(lk.HostIfIndex, lk.HostIfName, attach.Ingress)
	if err != nil {
		probs = append(probs, fmt.Sprintf("ingress program on %s: %v", lk.HostIfName, err))
	} else if !ok {
		probs = append(probs, fmt.Sprintf("no ingress program on %s", lk.HostIfName))
	}
	for _, a := range ep.Addrs() {
		v, ok, err := d.objs.Endpoints.Lookup(a)
		switch {
		case err != nil:
			probs = append(probs, err.Error())
		case !ok:
			probs = append(probs, fmt.Sprintf("endpoint map has no entry for %s", a))
		case v.Id != ep.ID || int(v.Ifindex) != lk.HostIfIndex:
			probs = append(probs, fmt.Sprintf("endpoint map entry for %s is %s", a, maps.FormatEndpointInfo(v)))
		}
	}
	return probs
}

// Sync implements endpoint.Datapath: it removes map entries, counters and
// link pins that belong to no live endpoint, e.g. after an endpoint was
// deleted while the agent was down. The manager calls it once every
// endpoint is restored, i.e. once every endpoint runs this agent's
// program, which is when a conntrack migration can finish.
func (d *Datapath) Sync(eps []*endpoint.Endpoint) error {
	d.finishCTMigration()
	addrs := map[netip.Addr]uint16{}
	ids := map[uint16]bool{}
	devs := map[string]bool{}
	for _, ep := range eps {
		for _, a := range ep.Addrs() {
			addrs[a] = ep.ID
		}
		ids[ep.ID] = true
		devs[ep.HostIfName] = true
	}
	var errs []error
	entries, err := d.objs.Endpoints.Dump()
	if err != nil {
		return err
	}
	stale := false
	for a, v := range entries {
		if id, ok := addrs[a]; !ok || id != v.Id {
			d.log.Info("Removing stale endpoint map entry", "addr", a, "entry", maps.FormatEndpointInfo(v))
			errs = append(errs, d.objs.Endpoints.Delete(a))
			stale = true
		}
	}
	if stale {
		errs = append(errs, d.bumpPolicyRev())
	}
	stats, err := d.objs.EpStats.Dump()
	if err != nil {
		return err
	}
	for id := range stats {
		if !ids[id] {
			errs = append(errs, d.objs.EpStats.Reset(id))
		}
	}
	pinned, err := d.att.PinnedDevices()
	if err != nil {
		return err
	}
	for _, dev := range pinned {
		if !devs[dev] {
			d.log.Info("Removing stale link pins", "device", dev)
			errs = append(errs, d.att.Release(dev))
		}
	}
	return errors.Join(errs...)
}

// finishCTMigration makes the second pass of a conntrack migration Load
// began, if any: it copies the connections the earlier agent's programs
// opened since, and removes the old table. A failure is logged, not
// fatal: the first pass moved the connections that existed at load, and
// the next agent start tries again (the old pin stays).
func (d *Datapath) finishCTMigration() {
	st, err := d.objs.FinishCTMigration()
	switch {
	case err != nil:
		d.log.Warn("Finishing the conntrack migration failed; connections the earlier agent's programs opened since the agent started may be checked against policy as new ones", "error", err)
	case st != nil:
		d.log.Info("Migrated the conntrack table of an earlier layout; removed its pin", "to", maps.CTMapName,
			"copied", st.Copied, "present", st.Present, "expired", st.Expired)
	}
}

// Stats implements endpoint.Datapath.
func (d *Datapath) Stats(ep *endpoint.Endpoint) (endpoint.Stats, error) {
	s, _, err := d.objs.EpStats.Get(ep.ID)
	return endpoint.Stats(s), err
}

func identityOf(v uint32) identity.ID { return identity.ID(v) }
