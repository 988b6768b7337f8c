package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/lab"
	"github.com/seta-net/seta/pkg/nsutil"
)

// Ports the servers listen on, in every topology.
const (
	perfTCPPort = 7100 // seta-nettool perf-serve, TCP
	perfUDPPort = 7101 // seta-nettool perf-serve, UDP
	iperfPort   = 5201 // iperf3 -s
	// closedPort has no listener; the policy of (d) and (e) does not admit
	// it, so a connection to it times out there and is refused elsewhere.
	closedPort = 7999
)

// topoKind is what a topology is, before it exists.
type topoKind struct {
	Name string
	Desc string
	// Seta topologies: whether the policy is imported, and whether flow
	// visibility (trace events, Hubble) is on.
	seta, policy, visibility bool
}

var topologyKinds = map[string]topoKind{
	"a": {Name: "veth", Desc: "two namespaces joined by a bare veth pair, no programs, no iptables rules"},
	"b": {Name: "bridge", Desc: "reference CNI plugins (containernetworking-plugins): bridge (isGateway, ipMasq) + host-local, portmap, firewall (iptables backend), run through libcni in a node namespace; br_netfilter passes bridged packets through iptables and conntrack"},
	"c": {Name: "seta", Desc: "one-node Seta lab, no policy; no trace events, no Hubble, no metrics server", seta: true},
	"d": {Name: "seta+policy", Desc: "as (c), with a CiliumNetworkPolicy of %d L3/L4 rules selecting both pods (ingress and egress), imported with `seta policy import`", seta: true, policy: true},
	"f": {Name: "veth floor", Desc: "the floor of any veth-based datapath: each pod's veth pair ends in a node namespace, and the smallest program that can forward (bpf_redirect_peer on the host-side veth's ingress, nothing else: pkg/datapath/floor) joins them; static neighbours"},
	"e": {Name: "seta+policy+visibility", Desc: "as (d), with flow visibility on: trace events (medium aggregation), Hubble, Hubble metrics (the agent's defaults)", seta: true, policy: true, visibility: true},
}

// topology is one built topology.
type topology struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Desc      string   `json:"description"`
	ClientNS  string   `json:"clientNetns"`
	ServerNS  string   `json:"serverNetns"`
	ServerIP  string   `json:"serverIP"`
	MTU       int      `json:"mtu"`
	AgentArgs []string `json:"agentArgs,omitempty"`
	Lab       string   `json:"lab,omitempty"`
	// Checks are what was verified about the topology before measuring.
	Checks []string `json:"checks"`

	kind   topoKind
	cgroup string // the Seta node's cgroup, where its pod processes run
	socket string // the Seta agent's API socket
	// The Seta node's bpffs root, and the directories under it that hold
	// the links of its tc programs and of its socket hooks.
	bpfRoot          string
	tcDirs, sockDirs []string
	// servers are the PIDs of the server processes: perf-serve under
	// "TCP_RR" (it serves every request/response workload), iperf3 under
	// "TCP_STREAM".
	servers map[string]int
}

// serverPID is the process that serves workload w.
func (t *topology) serverPID(w string) int {
	if w != "TCP_STREAM" {
		w = "TCP_RR"
	}
	return t.servers[w]
}

func newTopology(id string) *topology {
	k := topologyKinds[id]
	desc := k.Desc
	if strings.Contains(desc, "%d") {
		desc = fmt.Sprintf(desc, *ruleCount)
	}
	return &topology{ID: id, Name: k.Name, Desc: desc, kind: k}
}

func (t *topology) label() string { return "(" + t.ID + ") " + t.Name }

// setup builds the topologies, starts their servers and checks each.
func setup(ctx context.Context, p plan) (map[string]*topology, error) {
	topos := map[string]*topology{}
	for _, id := range p.topologies {
		logf("building %s", topologyKinds[id].Name)
		var t *topology
		var err error
		switch k := topologyKinds[id]; {
		case id == "a":
			t, err = setupVeth()
		case id == "f":
			t, err = setupFloor()
		case id == "b":
			t, err = setupBridge(ctx)
		case k.seta:
			t, err = setupSeta(ctx, id)
		}
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", topologyKinds[id].Name, err)
		}
		if err := startServers(ctx, t, p); err != nil {
			return nil, fmt.Errorf("%s: %w", t.label(), err)
		}
		if err := verify(ctx, t); err != nil {
			return nil, fmt.Errorf("%s: %w", t.label(), err)
		}
		topos[id] = t
	}
	return topos, nil
}

// ---- (a) bare veth ----

func vethNS() (client, server string) { return base + "-a-client", base + "-a-server" }

func setupVeth() (*topology, error) {
	t := newTopology("a")
	t.ClientNS, t.ServerNS = vethNS()
	t.ServerIP = "10.250.0.2"
	for _, ns := range []string{t.ClientNS, t.ServerNS} {
		if err := createNS(ns); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		ns   string
		args []string
	}{
		{t.ClientNS, []string{"link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", nsutil.Path(t.ServerNS)}},
		{t.ClientNS, []string{"addr", "add", "10.250.0.1/24", "dev", "eth0"}},
		{t.ServerNS, []string{"addr", "add", t.ServerIP + "/24", "dev", "eth0"}},
	}
	for _, ns := range []string{t.ClientNS, t.ServerNS} {
		steps = append(steps, struct {
			ns   string
			args []string
		}{ns, []string{"link", "set", "eth0", "up"}}, struct {
			ns   string
			args []string
		}{ns, []string{"link", "set", "lo", "up"}})
	}
	for _, s := range steps {
		if _, err := inNS(s.ns, "ip", s.args...); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func teardownVeth() {
	c, s := vethNS()
	nsutil.Delete(c)
	nsutil.Delete(s)
}

// ---- (b) bridge + host-local ----

func bridgeNS() (node, client, server string) {
	return base + "-b-node", base + "-b-client", base + "-b-server"
}

const bridgeSubnet = "10.89.0.0/24"

// bridgeConfList is the network of (b): what containerd and podman set up
// by default with these plugins. IPAM state and the libcni cache stay in
// the harness's state directory, never in the machine's /var/lib/cni.
func bridgeConfList() []byte {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       base + "-bridge",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": bridgeSubnet}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(stateDir, "ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
			map[string]any{"type": "firewall", "backend": "iptables"},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	return b
}

func bridgeCNI() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{*cniBin}, filepath.Join(stateDir, "cni-cache"), nil)
}

func bridgeRuntimeConf(ns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: ns, NetNS: nsutil.Path(ns), IfName: "eth0"}
}

func setupBridge(ctx context.Context) (*topology, error) {
	t := newTopology("b")
	node, cli, srv := bridgeNS()
	t.ClientNS, t.ServerNS = cli, srv
	for _, ns := range []string{node, cli, srv} {
		if err := createNS(ns); err != nil {
			return nil, err
		}
	}
	if _, err := inNS(node, "ip", "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	conf := bridgeConfList()
	if err := os.WriteFile(filepath.Join(stateDir, "bridge.conflist"), conf, 0o644); err != nil {
		return nil, err
	}
	list, err := libcni.NetworkConfFromBytes(conf)
	if err != nil {
		return nil, fmt.Errorf("bridge conflist: %w", err)
	}
	for _, ns := range []string{cli, srv} {
		// The plugins run in the node namespace (the runtime's, in which
		// they make the bridge and the iptables rules): libcni forks them
		// from this thread.
		var res types.Result
		err := nsutil.Do(nsutil.Path(node), func() error {
			var err error
			res, err = bridgeCNI().AddNetworkList(ctx, list, bridgeRuntimeConf(ns))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("CNI ADD of %s: %w", ns, err)
		}
		if ns == srv {
			r, err := current.NewResultFromResult(res)
			if err != nil || len(r.IPs) == 0 {
				return nil, fmt.Errorf("CNI result of %s: no address (%v)", ns, err)
			}
			t.ServerIP = r.IPs[0].Address.IP.String()
		}
	}
	for _, ns := range []string{cli, srv} {
		if _, err := inNS(ns, "ip", "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	return t, checkBridge(t, node)
}

// checkBridge records what makes (b) the iptables peer: the plugins' rules
// in the node namespace, and whether bridged packets pass through them.
func checkBridge(t *topology, node string) error {
	save, err := inNS(node, "iptables-save")
	if err != nil {
		return err
	}
	rules, cniRules := 0, 0
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "-A ") {
			rules++
			if strings.Contains(l, "CNI") {
				cniRules++
			}
		}
	}
	if cniRules == 0 {
		return fmt.Errorf("the CNI plugins made no iptables rules in %s:\n%s", node, save)
	}
	var nf []byte
	nsutil.Do(nsutil.Path(node), func() error {
		nf, err = os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
		return nil
	})
	switch v := strings.TrimSpace(string(nf)); {
	case err != nil:
		t.Checks = append(t.Checks, "br_netfilter is not loaded: bridged packets skip iptables (only routed ones see the rules)")
	case v == "1":
		t.Checks = append(t.Checks, "node namespace: net.bridge.bridge-nf-call-iptables=1, so bridged pod-to-pod packets pass iptables and conntrack")
	default:
		t.Checks = append(t.Checks, "node namespace: net.bridge.bridge-nf-call-iptables="+v+": bridged packets skip iptables")
	}
	t.Checks = append(t.Checks, fmt.Sprintf("node namespace: %d iptables rules, %d of them the plugins' (CNI chains)", rules, cniRules))
	return nil
}

func teardownBridge() {
	node, cli, srv := bridgeNS()
	if _, err := os.Stat(nsutil.Path(node)); err == nil {
		if list, err := libcni.NetworkConfFromBytes(bridgeConfList()); err == nil {
			for _, ns := range []string{cli, srv} {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := nsutil.Do(nsutil.Path(node), func() error {
					return bridgeCNI().DelNetworkList(ctx, list, bridgeRuntimeConf(ns))
				})
				cancel()
				if err != nil {
					logf("CNI DEL of %s: %v (the namespaces go anyway)", ns, err)
				}
			}
		}
	}
	for _, ns := range []string{cli, srv, node} {
		nsutil.Delete(ns)
	}
}

// ---- (c), (d), (e): Seta labs ----

func labName(id string) string { return base + "-" + id }

var setaIDs = []string{"c", "d", "e"}

// agentArgs are the agent flags of a Seta topology. Visibility off turns
// off trace events and the Hubble pipeline (and the metrics server, which
// would compute Hubble metrics): policy verdicts are still written to the
// event ring, nobody reads them. Without a cgroup2 mount the lab cannot
// give the agent a cgroup of its own, and socket LB stays off rather than
// apply to every process of the machine.
func agentArgs(k topoKind) []string {
	var args []string
	if k.visibility {
		args = []string{"--enable-hubble=true", "--bpf-events-trace-enabled=true", "--monitor-aggregation=medium"}
	} else {
		args = []string{"--enable-hubble=false", "--bpf-events-trace-enabled=false", "--prometheus-serve-addr="}
	}
	if !hasCgroup2() {
		args = append(args, "--enable-socket-lb=false")
	}
	return args
}

func setupSeta(ctx context.Context, id string) (*topology, error) {
	t := newTopology(id)
	t.Lab = labName(id)
	t.AgentArgs = agentArgs(t.kind)
	st, err := lab.Up(ctx, lab.UpOptions{Name: t.Lab, Nodes: 1, AgentBin: abs("seta-agent"), CNIBinDir: abs(""),
		SetaBin: abs("seta"), AgentArgs: t.AgentArgs, Out: discard})
	if err != nil {
		return nil, err
	}
	node := st.Nodes[0]
	t.socket, t.cgroup, t.bpfRoot = node.Socket, node.Cgroup, node.BPFRoot
	if err := checkAgent(ctx, t); err != nil {
		return nil, err
	}
	pods := map[string]*lab.Pod{}
	for _, role := range []string{"server", "client"} {
		p, err := lab.RunPod(ctx, lab.RunOptions{Lab: t.Lab, Name: role, Namespace: "default",
			Labels: []string{"bench=datapath", "role=" + role}, Out: discard})
		if err != nil {
			return nil, err
		}
		pods[role] = p
	}
	t.ServerNS, t.ClientNS, t.ServerIP = pods["server"].NetNS, pods["client"].NetNS, pods["server"].IPv4
	if t.tcDirs, err = progDirs(t.bpfRoot, tcLinkDirs); err != nil {
		return nil, err
	}
	if len(t.tcDirs) == 0 {
		return nil, fmt.Errorf("no tc links pinned under %s", t.bpfRoot)
	}
	if t.sockDirs, err = progDirs(t.bpfRoot, sockLinkDirs); err != nil {
		return nil, err
	}
	if t.kind.policy {
		if err := importPolicy(ctx, t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// checkAgent makes sure the agent runs as the topology says, and never
// load-balances sockets outside its own cgroup.
func checkAgent(ctx context.Context, t *topology) error {
	cfg, err := client.New(t.socket, 10*time.Second).Config(ctx)
	if err != nil {
		return err
	}
	if cfg.EnableSocketLB && (t.cgroup == "" || cfg.CgroupRoot != t.cgroup) {
		return fmt.Errorf("the agent load-balances sockets under %q, not the lab node's cgroup %q", cfg.CgroupRoot, t.cgroup)
	}
	if cfg.EnableHubble != t.kind.visibility || cfg.BPFEventsTraceEnabled != t.kind.visibility {
		return fmt.Errorf("the agent runs with enableHubble=%v bpfEventsTraceEnabled=%v, want %v", cfg.EnableHubble, cfg.BPFEventsTraceEnabled, t.kind.visibility)
	}
	mode := "unknown"
	if s, err := client.New(t.socket, 10*time.Second).Status(ctx); err == nil {
		mode = s.Datapath.Mode
	}
	t.Checks = append(t.Checks, fmt.Sprintf("agent: enableHubble=%v bpfEventsTraceEnabled=%v monitorAggregation=%s, attach mode %s, socket LB %v on cgroup %s",
		cfg.EnableHubble, cfg.BPFEventsTraceEnabled, cfg.MonitorAggregation, mode, cfg.EnableSocketLB, cfg.CgroupRoot))
	return nil
}

// policyPorts are the ports the benchmark uses, which the policy admits.
var policyPorts = []struct {
	port  int
	proto string
}{{perfTCPPort, "TCP"}, {perfUDPPort, "UDP"}, {iperfPort, "TCP"}}

// policyYAML is a CiliumNetworkPolicy of n rules, each selecting both pods
// and admitting both pods as peers on one port, in both directions: the
// first n-3 on ports nothing uses (TCP and UDP in turn, from 20000), the
// last three on the benchmark's ports. Every packet that is not a reply
// is checked against the sender's egress and the receiver's ingress rules.
func policyYAML(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: " + base + "-rules}\nspecs:\n")
	for i := 0; i < n; i++ {
		port, proto := 20000+i, "TCP"
		if i%2 == 1 {
			proto = "UDP"
		}
		if j := i - (n - len(policyPorts)); j >= 0 {
			port, proto = policyPorts[j].port, policyPorts[j].proto
		}
		fmt.Fprintf(&b, "- endpointSelector: {matchLabels: {bench: datapath}}\n"+
			"  ingress: [{fromEndpoints: [{matchLabels: {bench: datapath}}], toPorts: [{ports: [{port: \"%d\", protocol: %s}]}]}]\n"+
			"  egress: [{toEndpoints: [{matchLabels: {bench: datapath}}], toPorts: [{ports: [{port: \"%d\", protocol: %s}]}]}]\n",
			port, proto, port, proto)
	}
	return b.String()
}

func importPolicy(ctx context.Context, t *topology) error {
	file := filepath.Join(stateDir, "policy-"+t.ID+".yaml")
	if err := os.WriteFile(file, []byte(policyYAML(*ruleCount)), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{{"policy", "import", file}, {"policy", "wait", "--timeout", "30s"}} {
		cmd := exec.CommandContext(ctx, abs("seta"), append([]string{"--socket", t.socket}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("seta %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Checks = append(t.Checks, fmt.Sprintf("policy: %d rules imported with `seta policy import` (the file is policyYAML in bench/datapath/topo.go)", *ruleCount))
	return nil
}

func teardownLabs() {
	for _, id := range setaIDs {
		name := labName(id)
		if _, err := os.Stat(lab.Dir(name)); err != nil && !labLeftover(name) {
			continue
		}
		if err := lab.Down(context.Background(), lab.DownOptions{Name: name, Out: discard}); err != nil {
			logf("lab down %s: %v", name, err)
		}
	}
}

// ---- servers, clients and checks ----

// proc is a server the harness started.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

var procs []*proc

// pinned prefixes argv with taskset when cpu is a CPU.
func pinned(cpu int, argv ...string) []string {
	if cpu < 0 {
		return argv
	}
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
}

// startIn starts cmd in the network namespace ns and, for Seta pods, in
// the node's cgroup (cloned straight into it, as the lab starts pod
// processes, so Seta's socket-level hooks apply from the first call). The
// process dies with the harness (Pdeathsig), whatever ends the harness.
func startIn(ns, cgroup string, cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if cgroup != "" {
		f, err := os.OpenFile(cgroup, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			return fmt.Errorf("open cgroup: %w", err)
		}
		defer f.Close()
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(f.Fd())
	}
	return nsutil.Start(nsutil.Path(ns), cmd)
}

// startServers starts perf-serve and, for TCP_STREAM, iperf3 in the
// server pod, each pinned to the server CPU of its workloads, and waits
// until they listen.
func startServers(ctx context.Context, t *topology, p plan) error {
	// Ample: the setup of the other topologies comes on top of the
	// measurements.
	lifetime := min(2*p.length()+20*time.Minute, 24*time.Hour)
	type server struct {
		workload string // whose pinning the server takes
		argv     []string
	}
	servers := []server{{"TCP_RR", []string{abs("seta-nettool"), "perf-serve", "--tcp", fmt.Sprintf(":%d", perfTCPPort),
		"--udp", fmt.Sprintf(":%d", perfUDPPort), "--lifetime", lifetime.String()}}}
	if p.has("TCP_STREAM") {
		servers = append(servers, server{"TCP_STREAM", []string{"iperf3", "-s", "-p", strconv.Itoa(iperfPort)}})
	}
	for _, sv := range servers {
		log, err := os.Create(filepath.Join(stateDir, t.ID+"-"+filepath.Base(sv.argv[0])+".log"))
		if err != nil {
			return err
		}
		_, cpu := pinFor(sv.workload)
		argv := pinned(cpu, sv.argv...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = log, log
		err = startIn(t.ServerNS, t.cgroup, cmd)
		log.Close()
		if err != nil {
			return fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
		}
		if t.servers == nil {
			t.servers = map[string]int{}
		}
		// taskset execs the server: the PID is the server's.
		t.servers[sv.workload] = cmd.Process.Pid
		pr := &proc{name: t.ID + ": " + strings.Join(argv, " "), cmd: cmd, done: make(chan struct{})}
		go func() { cmd.Wait(); close(pr.done) }()
		procs = append(procs, pr)
	}
	ports := []string{fmt.Sprintf("tcp:%d", perfTCPPort), fmt.Sprintf("udp:%d", perfUDPPort)}
	if p.has("TCP_STREAM") {
		ports = append(ports, fmt.Sprintf("tcp:%d", iperfPort))
	}
	return waitListening(ctx, t.ServerNS, ports)
}

// waitListening waits until a socket listens on each "proto:port" in ns.
func waitListening(ctx context.Context, ns string, ports []string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var missing []string
		for _, pp := range ports {
			proto, port, _ := strings.Cut(pp, ":")
			flag := "-Hltn"
			if proto == "udp" {
				flag = "-Hlun"
			}
			out, err := inNS(ns, "ss", flag, "sport = :"+port)
			if err != nil || strings.TrimSpace(out) == "" {
				missing = append(missing, pp)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("servers not listening on %s in %s after 10s (logs in %s)", strings.Join(missing, ", "), ns, stateDir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopProcs ends the servers: SIGTERM, then SIGKILL after 3 s.
func stopProcs() {
	for _, p := range procs {
		select {
		case <-p.done:
			continue
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	procs = nil
}

// runClient runs argv in the client pod, pinned to the client CPU of
// workload w, and kills it if it runs past limit; cpu is the CPU time the
// client took (user and system, all its threads).
func runClient(ctx context.Context, t *topology, w string, limit time.Duration, argv ...string) (stdout, stderr string, cpu time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	prog := filepath.Base(argv[0])
	onCPU, _ := pinFor(w)
	argv = pinned(onCPU, argv...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := startIn(t.ClientNS, t.cgroup, cmd); err != nil {
		return "", "", 0, err
	}
	err = cmd.Wait()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("%s did not finish within %v", prog, limit)
	}
	if st := cmd.ProcessState; st != nil {
		cpu = st.UserTime() + st.SystemTime()
	}
	return out.String(), errb.String(), cpu, err
}

// verify checks that a topology carries the benchmark's traffic, enforces
// policy exactly when it should, and reports flows exactly when it should.
func verify(ctx context.Context, t *topology) error {
	for _, c := range []struct {
		test string
		port int
	}{{"TCP_RR", perfTCPPort}, {"TCP_CRR", perfTCPPort}, {"UDP_RR", perfUDPPort}} {
		out, errs, _, err := runClient(ctx, t, c.test, 30*time.Second, abs("seta-nettool"), "perf", net.JoinHostPort(t.ServerIP, strconv.Itoa(c.port)),
			"--test", c.test, "--count", "200", "--duration", "10s")
		if err != nil {
			return fmt.Errorf("%s from the client to %s: %v: %s%s", c.test, t.ServerIP, err, out, errs)
		}
	}
	// A port nothing listens on and the policy does not admit: refused
	// without policy, dropped (a timeout) with it.
	closed := net.JoinHostPort(t.ServerIP, strconv.Itoa(closedPort))
	_, errs, _, err := runClient(ctx, t, "TCP_RR", 10*time.Second, abs("seta-nettool"), "tcp", closed, "--timeout", "500ms")
	got := "refused"
	switch {
	case err == nil:
		return fmt.Errorf("something answers on %s", closed)
	case strings.Contains(errs, "timeout"):
		got = "dropped"
	case !strings.Contains(errs, "refused"):
		return fmt.Errorf("probe of %s: %s", closed, errs)
	}
	want := "refused"
	if t.kind.policy {
		want = "dropped"
	}
	if got != want {
		return fmt.Errorf("a connection to %d/TCP, which no rule admits, was %s, want %s", closedPort, got, want)
	}
	t.Checks = append(t.Checks, fmt.Sprintf("a connection to %d/TCP (no listener, not admitted by any rule) is %s", closedPort, got))
	if t.kind.seta {
		flows, ok := hubbleFlows(ctx, t)
		switch {
		case t.kind.visibility && (!ok || flows == 0):
			return errors.New("Hubble saw no flows after the checks")
		case !t.kind.visibility && ok:
			return errors.New("Hubble runs, but visibility should be off")
		case ok:
			t.Checks = append(t.Checks, fmt.Sprintf("Hubble saw %d flows from the checks", flows))
		}
	}
	mtu, err := mtuOf(t.ClientNS)
	if err != nil {
		return err
	}
	t.MTU = mtu
	return nil
}

// hubbleFlows is the number of flows the topology's agent has seen; false
// when Hubble is off (or the topology is not Seta).
func hubbleFlows(ctx context.Context, t *topology) (uint64, bool) {
	if t.socket == "" {
		return 0, false
	}
	s, err := client.New(t.socket, 5*time.Second).Status(ctx)
	if err != nil || s.Hubble == nil {
		return 0, false
	}
	return s.Hubble.SeenFlows, true
}

func mtuOf(ns string) (int, error) {
	out, err := inNS(ns, "ip", "-j", "link", "show", "dev", "eth0")
	if err != nil {
		return 0, err
	}
	var links []struct {
		MTU int `json:"mtu"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip -j link show dev eth0 in %s: %q", ns, out)
	}
	return links[0].MTU, nil
}

// createNS creates a namespace of the harness's own, which must not exist
// yet (nsutil.Create would keep it, and with it whatever runs inside).
func createNS(name string) error {
	if _, err := os.Stat(nsutil.Path(name)); err == nil {
		return fmt.Errorf("network namespace %s exists already (another run?)", name)
	}
	return nsutil.Create(name)
}

// inNS runs a short command in the network namespace ns.
func inNS(ns, name string, args ...string) (string, error) {
	out, err := nsutil.Output(nsutil.Path(ns), exec.Command(name, args...))
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %v: %s", name, strings.Join(args, " "), ns, err, out)
	}
	return string(out), nil
}
