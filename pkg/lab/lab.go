// Package lab builds a Seta cluster on one machine out of network
// namespaces: an underlay namespace with a bridge, one namespace per node
// running its own seta-agent, and pods as namespaces attached through the
// real seta-cni binary via libcni, as a container runtime would. Nothing in
// a lab is connected to the machine's own interfaces.
//
// Each node also has a cgroup (its agent's --cgroup-root, holding its pods'
// processes) and a cluster DNS server (package clusterdns); lab services
// (service.go) get ClusterIPs, DNS names and backends that follow the pods,
// and are pushed to every agent (svcpush.go).
package lab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/nsutil"
)

// MetricsAddr is where every lab agent serves Prometheus metrics, inside its
// node's network namespace.
const MetricsAddr = "127.0.0.1:9962"

// MaxNodes is how many nodes one lab may have.
const MaxNodes = 8

// Addressing. The underlay uses the benchmarking range 198.18.0.0/15 (RFC
// 2544) and a ULA prefix, so nothing in a lab can be confused with a real
// network; pods use 10.244.N.0/24 and fd00:5e7a:0:N::/64 on node N.
func underlayIP(i int) string  { return fmt.Sprintf("198.18.0.%d/24", 10+i) }
func underlayIP6(i int) string { return fmt.Sprintf("fd00:5e7a:ffff::%d/64", 10+i) }
func podCIDRv4(i int) string   { return fmt.Sprintf("10.244.%d.0/24", i) }
func podCIDRv6(i int) string   { return fmt.Sprintf("fd00:5e7a:0:%x::/64", i) }

// UpOptions configure Up.
type UpOptions struct {
	Name  string
	Nodes int
	// AgentBin and CNIBinDir locate the binaries; see FindBinaries.
	AgentBin  string
	CNIBinDir string
	// AgentArgs are extra flags for every agent (e.g. --attach-mode=clsact).
	AgentArgs []string
	// SetaBin is the seta binary, which runs each node's cluster DNS
	// server; by default FindSeta's.
	SetaBin string
	Out     io.Writer
}

// FindBinaries locates seta-agent and seta-cni: beside the running
// executable first, then on PATH.
func FindBinaries() (agent, cniDir string, err error) {
	find := func(name string) (string, error) {
		if self, err := os.Executable(); err == nil {
			p := filepath.Join(filepath.Dir(self), name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
		}
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("cannot find %s beside the seta binary or on PATH (build it with: go build -o bin/ ./cmd/...)", name)
		}
		return filepath.Abs(p)
	}
	if agent, err = find("seta-agent"); err != nil {
		return "", "", err
	}
	cni, err := find("seta-cni")
	if err != nil {
		return "", "", err
	}
	return agent, filepath.Dir(cni), nil
}

// FindSeta locates the seta binary: the running executable if it is seta,
// else beside it, else on PATH. Empty if there is none.
func FindSeta() string {
	self, err := os.Executable()
	if err == nil {
		if filepath.Base(self) == "seta" {
			return self
		}
		p := filepath.Join(filepath.Dir(self), "seta")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("seta"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return ""
}

func checkRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab creates network namespaces and loads eBPF programs: run it as root")
	}
	return nil
}

func step(w io.Writer, format string, a ...any) {
	fmt.Fprintf(w, "  • "+format+"\n", a...)
}

// Up creates the lab, or completes and repairs an existing one; it is
// idempotent.
func Up(ctx context.Context, o UpOptions) (*State, error) {
	if err := checkRoot(); err != nil {
		return nil, err
	}
	if err := ValidName("lab", o.Name, 12); err != nil {
		return nil, err
	}
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		return nil, fmt.Errorf("--nodes must be 1 to %d, got %d", MaxNodes, o.Nodes)
	}
	unlock, err := lock(o.Name, true)
	if err != nil {
		return nil, err
	}
	defer unlock()

	st, err := Load(o.Name)
	switch {
	case errors.Is(err, ErrNoLab):
		st = &State{Name: o.Name, UnderlayNS: "seta-" + o.Name + "-underlay"}
		fmt.Fprintf(o.Out, "Creating lab %q with %d node(s)\n", o.Name, o.Nodes)
	case err != nil:
		return nil, err
	default:
		if len(st.Nodes) > o.Nodes {
			return nil, fmt.Errorf("lab %q already has %d nodes; removing nodes is not supported (seta lab down --name %s, then up again)", o.Name, len(st.Nodes), o.Name)
		}
		fmt.Fprintf(o.Out, "Lab %q exists; checking it\n", o.Name)
	}
	st.AgentBin, st.CNIBin = o.AgentBin, o.CNIBinDir
	st.SetaBin = cmp.Or(o.SetaBin, FindSeta())

	if err := ensureUnderlay(st, o.Out); err != nil {
		return st, err
	}
	for i := 1; i <= o.Nodes; i++ {
		name := fmt.Sprintf("node%d", i)
		n := st.Node(name)
		if n == nil {
			n = newNode(st, i)
			st.Nodes = append(st.Nodes, n)
		}
		if err := ensureNode(st, n, i, o.Out); err != nil {
			st.Save()
			return st, err
		}
		if err := ensureCgroup(st, n, o.Out); err != nil {
			st.Save()
			return st, err
		}
		if err := st.Save(); err != nil {
			return st, err
		}
		if err := ensureAgent(ctx, st, n, o.AgentArgs, o.Out); err != nil {
			st.Save()
			return st, err
		}
		if err := writeCNIConfig(n); err != nil {
			return st, err
		}
		if err := st.Save(); err != nil {
			return st, err
		}
	}
	if err := ensureNodeRoutes(st, o.Out); err != nil {
		return st, err
	}
	// The state must hold the cluster DNS service before the servers
	// start: they answer from it.
	ensureDNSService(st)
	if err := st.Save(); err != nil {
		return st, err
	}
	for _, n := range st.Nodes {
		if st.SetaBin == "" {
			step(o.Out, "%s: no seta binary found (build it beside seta-agent): no cluster DNS", n.Name)
			continue
		}
		if err := ensureDNS(ctx, st, n, o.Out); err != nil {
			st.Save()
			return st, err
		}
	}
	if err := st.Save(); err != nil {
		return st, err
	}
	// Every agent gets every service, also after a restart that lost them.
	if err := syncServices(ctx, st); err != nil {
		step(o.Out, "services not pushed to every agent: %v", err)
	} else {
		step(o.Out, "services: %d pushed to every node's agent", len(st.Services))
	}
	return st, nil
}

// ensureNodeRoutes gives every node a route to every other node's pod CIDRs
// via that node's underlay address (direct routing, as Cilium's
// auto-direct-node-routes does). A packet for a remote pod leaves the pod,
// finds no local endpoint, and the node's stack forwards it over the
// underlay; the receiving node routes it to seta_host, and the from-host
// program delivers it.
func ensureNodeRoutes(st *State, out io.Writer) error {
	if len(st.Nodes) < 2 {
		return nil
	}
	for _, n := range st.Nodes {
		err := nsutil.Do(nsutil.Path(n.NetNS), func() error {
			eth0, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			for _, peer := range st.Nodes {
				if peer == n {
					continue
				}
				for _, r := range []struct{ cidr, via string }{{peer.PodCIDRv4, peer.UnderlayIP}, {peer.PodCIDRv6, peer.UnderlayIP6}} {
					_, dst, err := net.ParseCIDR(r.cidr)
					if err != nil {
						return err
					}
					gw, _, err := net.ParseCIDR(r.via)
					if err != nil {
						return err
					}
					route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: dst, Gw: gw}
					if err := netlink.RouteReplace(route); err != nil {
						return fmt.Errorf("route %s via %s on %s: %w", r.cidr, gw, n.Name, err)
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	step(out, "routes: every node reaches every other node's pod CIDRs over the underlay")
	return nil
}

func newNode(st *State, i int) *Node {
	name := fmt.Sprintf("node%d", i)
	dir := filepath.Join(Dir(st.Name), "nodes", name)
	return &Node{
		Name: name, NetNS: "seta-" + st.Name + "-" + name,
		UnderlayIP: underlayIP(i), UnderlayIP6: underlayIP6(i),
		PodCIDRv4: podCIDRv4(i), PodCIDRv6: podCIDRv6(i),
		Socket: filepath.Join(dir, "agent.sock"), StateDir: filepath.Join(dir, "state"),
		BPFRoot: filepath.Join(BPFRoot, st.Name, name), Log: filepath.Join(dir, "agent.log"),
		CNIConfDir: filepath.Join(dir, "cni"),
	}
}

// ensureUnderlay creates the underlay namespace and its bridge.
func ensureUnderlay(st *State, out io.Writer) error {
	if err := nsutil.Create(st.UnderlayNS); err != nil {
		return err
	}
	err := nsutil.Do(nsutil.Path(st.UnderlayNS), func() error {
		if lo, err := netlink.LinkByName("lo"); err == nil {
			netlink.LinkSetUp(lo)
		}
		br, err := netlink.LinkByName("br0")
		if err != nil {
			// No multicast snooping: it drops IPv6 neighbour solicitations
			// to groups the bridge has not seen a report for yet, which
			// stalls the first packets between nodes for seconds.
			snoop := false
			if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}, MulticastSnooping: &snoop}); err != nil {
				return fmt.Errorf("create underlay bridge: %w", err)
			}
			if br, err = netlink.LinkByName("br0"); err != nil {
				return err
			}
		}
		return netlink.LinkSetUp(br)
	})
	if err != nil {
		return err
	}
	step(out, "underlay: namespace %s with bridge br0", st.UnderlayNS)
	return nil
}

// ensureNode creates the node namespace and its link to the underlay.
func ensureNode(st *State, n *Node, i int, out io.Writer) error {
	if err := nsutil.Create(n.NetNS); err != nil {
		return err
	}
	peer := fmt.Sprintf("%s-n%d", st.Name, i)
	if len(peer) > 15 {
		peer = fmt.Sprintf("lab-n%d", i)
	}
	// The veth is created inside the underlay namespace, with its node end
	// moved straight into the node's namespace as eth0.
	err := nsutil.Do(nsutil.Path(st.UnderlayNS), func() error {
		if _, err := netlink.LinkByName(peer); err == nil {
			return nil
		}
		nodeNS, err := os.Open(nsutil.Path(n.NetNS))
		if err != nil {
			return err
		}
		defer nodeNS.Close()
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: peer}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(nodeNS.Fd()))}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("create underlay link for %s: %w", n.Name, err)
		}
		l, err := netlink.LinkByName(peer)
		if err != nil {
			return err
		}
		br, err := netlink.LinkByName("br0")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetMaster(l, br); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		return err
	}
	err = nsutil.Do(nsutil.Path(n.NetNS), func() error {
		// The underlay is a lab bridge with nothing else on it: skip
		// duplicate address detection, so IPv6 (link-local included) works
		// the moment the node is up rather than a second or two later.
		for _, k := range []string{"all", "default", "eth0"} {
			os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/accept_dad", []byte("0"), 0o644)
		}
		for _, name := range []string{"lo", "eth0"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return fmt.Errorf("%s in %s: %w", name, n.NetNS, err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}
		eth0, _ := netlink.LinkByName("eth0")
		for _, a := range []string{n.UnderlayIP, n.UnderlayIP6} {
			addr, err := netlink.ParseAddr(a)
			if err != nil {
				return err
			}
			addr.Flags = syscall.IFA_F_NODAD
			if err := netlink.AddrReplace(eth0, addr); err != nil {
				return fmt.Errorf("add %s to %s: %w", a, n.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	step(out, "%s: namespace %s, underlay %s, pod CIDRs %s %s", n.Name, n.NetNS,
		strings.Split(n.UnderlayIP, "/")[0], n.PodCIDRv4, n.PodCIDRv6)
	return nil
}

// ensureAgent starts the node's agent unless it already runs and answers.
func ensureAgent(ctx context.Context, st *State, n *Node, extra []string, out io.Writer) error {
	c := client.New(n.Socket, 2*time.Second)
	if n.Agent.Alive() {
		if _, err := c.Health(ctx); err == nil {
			step(out, "%s: seta-agent running (pid %d)", n.Name, n.Agent.PID)
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(n.Log), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open agent log: %w", err)
	}
	defer logf.Close()
	args := []string{
		"--node-name", n.Name, "--ipv4-pod-cidr", n.PodCIDRv4, "--ipv6-pod-cidr", n.PodCIDRv6,
		"--state-dir", n.StateDir, "--api-socket", n.Socket, "--bpf-root", n.BPFRoot,
		"--hubble-socket-path", n.HubbleSocket(),
		// Metrics on the node's own loopback: `seta lab metrics` reads them.
		"--prometheus-serve-addr", MetricsAddr,
		"--hubble-metrics", "drop,tcp,flow,port-distribution,icmp,policy,flows-to-world",
	}
	if n.Cgroup != "" {
		// The node's socket load balancer then applies to exactly the
		// node's pods, which run in this cgroup.
		args = append(args, "--cgroup-root", n.Cgroup)
	}
	args = append(args, extra...) // last, so an --agent-arg overrides the above
	cmd := exec.Command(st.AgentBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := nsutil.Start(nsutil.Path(n.NetNS), cmd); err != nil {
		return fmt.Errorf("start seta-agent for %s: %w", n.Name, err)
	}
	n.Agent = procOf(cmd.Process.Pid)
	// Reap the child if this process lives on (tests); harmless otherwise.
	go cmd.Wait()

	deadline := time.Now().Add(30 * time.Second)
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Health(hctx)
		cancel()
		if err == nil {
			break
		}
		if !n.Agent.Alive() || time.Now().After(deadline) {
			return fmt.Errorf("seta-agent for %s did not become ready; its log %s ends with:\n%s", n.Name, n.Log, tail(n.Log, 15))
		}
		time.Sleep(50 * time.Millisecond)
	}
	step(out, "%s: seta-agent started (pid %d, socket %s)", n.Name, n.Agent.PID, n.Socket)
	return nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// DownOptions configure Down.
type DownOptions struct {
	Name string
	Out  io.Writer
}

// Down removes everything the lab made: pod processes, endpoints, agents,
// namespaces, pins and its state directory. It works from partial state too.
func Down(ctx context.Context, o DownOptions) error {
	if err := checkRoot(); err != nil {
		return err
	}
	if err := ValidName("lab", o.Name, 12); err != nil {
		return err
	}
	if _, err := os.Stat(Dir(o.Name)); errors.Is(err, os.ErrNotExist) {
		if !hasLeftovers(o.Name) {
			fmt.Fprintf(o.Out, "Lab %q is not running; nothing to do\n", o.Name)
			return nil
		}
	}
	unlock, err := lock(o.Name, true) // down also cleans up leftovers of a lab whose dir is gone
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	st, err := Load(o.Name)
	if err != nil && !errors.Is(err, ErrNoLab) {
		fmt.Fprintf(o.Out, "  ! %v; removing what can be found\n", err)
	}
	if st != nil {
		for _, p := range st.Pods {
			if err := teardownPod(ctx, st, p); err != nil {
				errs = append(errs, err)
			}
			step(o.Out, "pod %s removed", p.Key())
		}
		for _, n := range st.Nodes {
			if err := n.DNS.Stop(5 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("stop cluster DNS of %s: %w", n.Name, err))
			}
			if err := n.Agent.Stop(10 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("stop agent of %s: %w", n.Name, err))
			}
			step(o.Out, "%s: seta-agent and cluster DNS stopped", n.Name)
		}
	}
	// Cgroups go once their processes are gone: the recorded one, and the
	// one this machine's cgroup2 mount gives, for a lab whose state is lost.
	cgroups := []string{}
	if st != nil && st.Cgroup != "" {
		cgroups = append(cgroups, st.Cgroup)
	}
	if mount, err := cgroup2Mount(); err == nil && !slices.Contains(cgroups, labCgroup(mount, o.Name)) {
		cgroups = append(cgroups, labCgroup(mount, o.Name))
	}
	for _, cg := range cgroups {
		if err := removeCgroup(cg); err != nil {
			errs = append(errs, err)
		}
	}
	step(o.Out, "cgroups removed")
	for _, ns := range labEtcDirs(o.Name) {
		if err := removePodEtc(ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range labNetNS(o.Name) {
		if err := nsutil.Delete(ns); err != nil {
			errs = append(errs, err)
		}
	}
	step(o.Out, "network namespaces removed")
	if err := os.RemoveAll(filepath.Join(BPFRoot, o.Name)); err != nil {
		errs = append(errs, fmt.Errorf("remove bpf pins: %w", err))
	}
	os.Remove(BPFRoot) // only if empty
	step(o.Out, "bpf pins under %s removed", filepath.Join(BPFRoot, o.Name))
	if err := os.RemoveAll(Dir(o.Name)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab %q removed with errors: %w", o.Name, errors.Join(errs...))
	}
	fmt.Fprintf(o.Out, "Lab %q removed\n", o.Name)
	return nil
}

// hasLeftovers reports whether anything of a lab whose state directory is
// gone is still there.
func hasLeftovers(name string) bool {
	if len(labNetNS(name)) > 0 || len(labEtcDirs(name)) > 0 {
		return true
	}
	if mount, err := cgroup2Mount(); err == nil {
		if _, err := os.Stat(labCgroup(mount, name)); err == nil {
			return true
		}
	}
	return false
}

// labNetNS lists the named namespaces that belong to a lab.
func labNetNS(name string) []string { return labNames(nsutil.Dir, name) }

// labEtcDirs lists the namespaces of a lab that have an /etc/netns
// directory (pods, for their resolv.conf).
func labEtcDirs(name string) []string { return labNames(filepath.Dir(nsutil.EtcDir("x")), name) }

// labNames lists the entries of dir named like the lab's namespaces.
func labNames(dir, name string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "seta-"+name+"-")
		// Match the exact shapes the lab creates, so lab "a" never takes
		// the namespaces of lab "a-b".
		if ok && labNSRE.MatchString(rest) {
			out = append(out, e.Name())
		}
	}
	return out
}

var labNSRE = regexp.MustCompile(`^(underlay|node[0-9]+|pod-[0-9a-f]{10})$`)
