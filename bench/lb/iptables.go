package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/seta-net/seta/pkg/nsutil"
)

// The iptables peer is a small routed "node" in the way kube-proxy's
// iptables mode sees one: pods in their own namespaces, each joined to the
// node namespace by a veth, the node forwarding between them, and the
// kube-proxy nat rules in the node namespace, where a pod's packets meet
// PREROUTING. Nothing here is connected to the machine's interfaces.
const (
	iptNode = "seta-benchlb-ipt-node"
	iptCli  = "seta-benchlb-ipt-cli"
	iptWeb0 = "seta-benchlb-ipt-web0"
	iptWeb1 = "seta-benchlb-ipt-web1"
	// iptPodCIDR covers the three pod subnets; kube-proxy's
	// --cluster-cidr, which decides what is masqueraded.
	iptPodCIDR = "10.250.0.0/16"
)

var iptNamespaces = []string{iptNode, iptCli, iptWeb0, iptWeb1}

// iptPod is one pod namespace of the iptables node.
type iptPod struct {
	ns, addr, gw, subnet string
}

var (
	iptClient  = iptPod{iptCli, "10.250.0.2", "10.250.0.1", "10.250.0.0/24"}
	iptServers = []iptPod{
		{iptWeb0, "10.250.1.2", "10.250.1.1", "10.250.1.0/24"},
		{iptWeb1, "10.250.2.2", "10.250.2.1", "10.250.2.0/24"},
	}
)

// iptBackends are the backends every iptables service has: the two
// server pods, on the port the Seta services use too.
func iptBackends() []netip.AddrPort {
	var out []netip.AddrPort
	for _, p := range iptServers {
		out = append(out, netip.AddrPortFrom(netip.MustParseAddr(p.addr), backendPort))
	}
	return out
}

// setupIptablesNode builds the namespaces, starts a server in each server
// pod, and installs kube-proxy's static nat skeleton (the jumps from the
// built-in chains, which kube-proxy adds with iptables -I, not with
// iptables-restore).
func setupIptablesNode(b *bench) error {
	for _, n := range iptNamespaces {
		if err := nsutil.Create(n); err != nil {
			return err
		}
	}
	var cmds [][]string
	for i, p := range append([]iptPod{iptClient}, iptServers...) {
		dev := fmt.Sprintf("pod%d", i)
		prefix := "/" + strings.Split(p.subnet, "/")[1]
		cmds = append(cmds,
			[]string{iptNode, "ip", "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", nsutil.Path(p.ns)},
			[]string{iptNode, "ip", "addr", "add", p.gw + prefix, "dev", dev},
			[]string{iptNode, "ip", "link", "set", dev, "up"},
			[]string{p.ns, "ip", "addr", "add", p.addr + prefix, "dev", "eth0"},
			[]string{p.ns, "ip", "link", "set", "eth0", "up"},
			[]string{p.ns, "ip", "link", "set", "lo", "up"},
			[]string{p.ns, "ip", "route", "add", "default", "via", p.gw},
		)
	}
	cmds = append(cmds, []string{iptNode, "ip", "link", "set", "lo", "up"})
	for _, c := range cmds {
		if out, err := inNS(c[0], nil, c[1], c[2:]...); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	// Forwarding in the node namespace only (a per-namespace sysctl).
	if err := nsSysctl(iptNode, "net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if err := clientSysctls(iptCli); err != nil {
		return err
	}
	for _, p := range iptServers {
		srv := exec.Command("taskset", "-c", fmt.Sprint(*serverCPU), b.bin("seta-nettool"), "serve",
			"--tcp", fmt.Sprintf(":%d", backendPort), "--udp", "", "--http", "")
		if err := nsutil.Start(nsutil.Path(p.ns), srv); err != nil {
			return fmt.Errorf("start server in %s: %w", p.ns, err)
		}
		b.started = append(b.started, srv)
	}
	if _, err := iptRestore(kpWholeTable(nil), false); err != nil {
		return err
	}
	return nil
}

// kpWholeTable is the whole nat table: the built-in chains with the jumps
// kube-proxy adds to them (with iptables -I, outside its restores), and
// what a full sync writes.
func kpWholeTable(svcs []kpService) *bytes.Buffer {
	return kpSync(svcs, svcs, nil, true)
}

// nsSysctl writes a sysctl of a namespace of ours (under /proc/sys/net,
// which shows the namespace of the thread that opens it).
func nsSysctl(ns, key, val string) error {
	return nsutil.Do(nsutil.Path(ns), func() error {
		if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(val), 0o644); err != nil {
			return fmt.Errorf("sysctl %s in %s: %w", key, ns, err)
		}
		return nil
	})
}

// clientSysctls lets a client namespace make many short connections in a
// row: the whole port range, and TIME_WAIT ports reused for new outgoing
// connections (the client closes first, so it holds TIME_WAIT).
func clientSysctls(ns string) error {
	if err := nsSysctl(ns, "net/ipv4/ip_local_port_range", "1024 65535"); err != nil {
		return err
	}
	return nsSysctl(ns, "net/ipv4/tcp_tw_reuse", "1")
}

// iptRestore runs iptables-restore in the node namespace and returns how
// long the command took (exec included: kube-proxy execs it too).
func iptRestore(rules io.Reader, noflush bool) (time.Duration, error) {
	args := []string{"-w", "5"}
	if noflush {
		args = append(args, "--noflush")
	}
	var d time.Duration
	var out []byte
	err := nsutil.Do(nsutil.Path(iptNode), func() error {
		cmd := exec.Command(*iptablesRestore, args...)
		cmd.Stdin = rules
		t0 := time.Now()
		var err error
		out, err = cmd.CombinedOutput()
		d = time.Since(t0)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("%s %s: %v: %s", *iptablesRestore, strings.Join(args, " "), err, out)
	}
	return d, nil
}

// iptCountRules counts the rules of the node's nat table (a check that a
// load did what it should).
func iptCountRules() (int, error) {
	save := strings.Replace(*iptablesRestore, "-restore", "-save", 1)
	out, err := inNS(iptNode, nil, save, "-t", "nat")
	if err != nil {
		return 0, fmt.Errorf("%s: %v: %s", save, err, out)
	}
	return strings.Count(out, "\n-A "), nil
}

// kpService is one service port as kube-proxy's iptables mode sees it.
type kpService struct {
	name     string // namespace/name:port, kube-proxy's servicePortName
	vip      netip.Addr
	port     uint16
	backends []netip.AddrPort
}

// kpHash is kube-proxy's chain-name hash: the first 16 characters of the
// base32 encoding of the SHA-256 of the inputs.
func kpHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "")))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

func (s kpService) svcChain() string { return "KUBE-SVC-" + kpHash(s.name, "tcp") }

func (s kpService) sepChain(b netip.AddrPort) string {
	return "KUBE-SEP-" + kpHash(s.name, "tcp", b.String())
}

// kpStaticRules are the rules of those chains that do not depend on the
// services.
func kpStaticRules(w *bytes.Buffer) {
	w.WriteString("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n")
	w.WriteString("-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n")
	w.WriteString("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n")
	w.WriteString("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n")
}

func kpChainDecls(w *bytes.Buffer, s kpService) {
	fmt.Fprintf(w, ":%s - [0:0]\n", s.svcChain())
	for _, b := range s.backends {
		fmt.Fprintf(w, ":%s - [0:0]\n", s.sepChain(b))
	}
}

// kpServicesRule is the service's rule in KUBE-SERVICES: every new
// connection walks these in order until one matches.
func kpServicesRule(w *bytes.Buffer, s kpService) {
	fmt.Fprintf(w, "-A KUBE-SERVICES -m comment --comment \"%s cluster IP\" -m tcp -p tcp -d %s/32 --dport %d -j %s\n",
		s.name, s.vip, s.port, s.svcChain())
}

// kpNodePortsRule must be the last rule of KUBE-SERVICES.
func kpNodePortsRule(w *bytes.Buffer) {
	w.WriteString("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n")
}

// kpServiceChains are the service's KUBE-SVC chain (masquerade what does
// not come from a pod, then pick a backend with statistic --mode random)
// and one KUBE-SEP chain per backend (hairpin masquerade, DNAT).
func kpServiceChains(w *bytes.Buffer, s kpService) {
	svc := s.svcChain()
	fmt.Fprintf(w, "-A %s -m comment --comment \"%s cluster IP\" -m tcp -p tcp -d %s/32 --dport %d ! -s %s -j KUBE-MARK-MASQ\n",
		svc, s.name, s.vip, s.port, iptPodCIDR)
	for i, b := range s.backends {
		left := len(s.backends) - i
		if left > 1 {
			fmt.Fprintf(w, "-A %s -m comment --comment \"%s -> %s\" -m statistic --mode random --probability %.10f -j %s\n",
				svc, s.name, b, 1/float64(left), s.sepChain(b))
		} else {
			fmt.Fprintf(w, "-A %s -m comment --comment \"%s -> %s\" -j %s\n", svc, s.name, b, s.sepChain(b))
		}
	}
	for _, b := range s.backends {
		sep := s.sepChain(b)
		fmt.Fprintf(w, "-A %s -m comment --comment %s -s %s/32 -j KUBE-MARK-MASQ\n", sep, s.name, b.Addr())
		fmt.Fprintf(w, "-A %s -m comment --comment %s -m tcp -p tcp -j DNAT --to-destination %s\n", sep, s.name, b)
	}
}

// kpFullSync is what kube-proxy's full sync writes: every chain, every
// rule, the services' rules in order (the measured one last). Chains of
// services that are gone are declared (which flushes them, so nothing
// jumps to them any more) and deleted with -X, in the same transaction.
func kpFullSync(svcs, gone []kpService) *bytes.Buffer {
	return kpSync(svcs, svcs, gone, false)
}

// kpPartialSync is what kube-proxy writes with MinimizeIPTablesRestore
// (on by default since 1.27) when only the services in changed are new
// and those in gone were removed: KUBE-SERVICES and the other top-level
// chains in full, the chains of the changed services, the deletion of the
// gone ones; the other services' chains are left as they are.
func kpPartialSync(svcs, changed, gone []kpService) *bytes.Buffer {
	return kpSync(svcs, changed, gone, false)
}

// kpSync writes a nat table restore: the top-level chains for svcs, the
// chains of the services in write, the deletion of those in gone, and
// with builtins the built-in chains and their jumps into kube-proxy's.
func kpSync(svcs, write, gone []kpService, builtins bool) *bytes.Buffer {
	var w bytes.Buffer
	w.Grow(len(svcs)*200 + len(write)*700)
	w.WriteString("*nat\n")
	if builtins {
		w.WriteString(":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	}
	w.WriteString(":KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n")
	for _, s := range write {
		kpChainDecls(&w, s)
	}
	for _, s := range gone {
		kpChainDecls(&w, s)
	}
	if builtins {
		w.WriteString("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n")
		w.WriteString("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n")
		w.WriteString("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n")
	}
	kpStaticRules(&w)
	for _, s := range svcs {
		kpServicesRule(&w, s)
	}
	kpNodePortsRule(&w)
	for _, s := range write {
		kpServiceChains(&w, s)
	}
	kpDeleteChains(&w, gone)
	w.WriteString("COMMIT\n")
	return &w
}

func kpDeleteChains(w *bytes.Buffer, gone []kpService) {
	for _, s := range gone {
		fmt.Fprintf(w, "-X %s\n", s.svcChain())
		for _, b := range s.backends {
			fmt.Fprintf(w, "-X %s\n", s.sepChain(b))
		}
	}
}

// iptSide is the iptables node with the services it holds.
type iptSide struct {
	b *bench
	// svcs are the measured services; all of them follow the TCP_RR one.
	svcs []kpService
}

// rrService is the service TCP_RR goes through, first in KUBE-SERVICES:
// one backend, the one TCP_RR's direct path goes to.
func rrService() kpService {
	return kpService{name: "benchlb/rr:http", vip: rrVIP, port: vipPort, backends: iptBackends()[:1]}
}

// all is every service of the node in KUBE-SERVICES order.
func (p *iptSide) all() []kpService { return append([]kpService{rrService()}, p.svcs...) }

// kpRules is how many rules the nat table holds with svcs: 3 jumps from
// the built-in chains, 4 static rules, the KUBE-NODEPORTS rule, and per
// service one rule in KUBE-SERVICES, one masquerade rule and one jump per
// backend in its KUBE-SVC chain, and 2 in each KUBE-SEP chain.
func kpRules(svcs []kpService) int {
	n := 3 + 4 + 1
	for _, s := range svcs {
		n += 1 + 1 + 3*len(s.backends)
	}
	return n
}

func (p *iptSide) name() string   { return "iptables" }
func (p *iptSide) holds(int) bool { return true }
func (p *iptSide) direct() string { return iptBackends()[0].String() }
func (p *iptSide) crr(addr string, count int) (crrResult, error) {
	return crrInNS(iptCli, addr, count)
}

func (p *iptSide) rr(addr string) (float64, error) {
	out, err := inNS(iptCli, nil, "taskset", rrArgs(p.b, addr)...)
	return parseRR(out, err)
}

func (p *iptSide) load(_ context.Context, n int, st *step) error {
	var err error
	st.IptablesLoadSeconds, st.IptablesRules, err = p.loadRules(n)
	return err
}

func (p *iptSide) program(_ context.Context, n int) ([]programResult, error) {
	var out []programResult
	for _, partial := range []bool{false, true} {
		r, err := p.programOne(n, partial)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func kpServiceN(i int) kpService {
	return kpService{name: "benchlb/" + svcName(i) + ":http", vip: vip(i), port: vipPort, backends: iptBackends()}
}

// loadRules replaces the node's nat table with one holding n services (the
// services it had, the new ones at the end) and checks the rule count. It
// restores the whole table without --noflush: with the nf_tables backend a
// --noflush restore of tens of thousands of chains takes hours, and the
// load is not what is measured (programming one more service is).
func (p *iptSide) loadRules(n int) (float64, int, error) {
	for i := len(p.svcs); i < n; i++ {
		p.svcs = append(p.svcs, kpServiceN(i))
	}
	d, err := iptRestore(kpWholeTable(p.all()), false)
	if err != nil {
		return 0, 0, err
	}
	rules, err := iptCountRules()
	if err != nil {
		return 0, 0, err
	}
	if want := kpRules(p.all()); rules != want {
		return 0, 0, fmt.Errorf("the nat table holds %d rules after loading %d services, want %d", rules, n, want)
	}
	return d.Seconds(), rules, nil
}

// programOne times adding one service with iptables-restore --noflush as
// kube-proxy does, a full or a partial sync, and removing it again the
// same way.
func (p *iptSide) programOne(n int, partial bool) (programResult, error) {
	r := programResult{Method: "iptables: iptables-restore --noflush, full sync (whole nat table)", N: n}
	if partial {
		r.Method = "iptables: iptables-restore --noflush, partial sync (KUBE-SERVICES + the new chains)"
	}
	t0 := time.Now()
	for k := 0; moreRepeats(k, t0); k++ {
		extra := kpService{name: fmt.Sprintf("benchlb/extra-%d:http", k), vip: extraVIP(k), port: vipPort, backends: iptBackends()}
		with := append(p.all(), extra)
		add, del := kpFullSync(with, nil), kpFullSync(p.all(), []kpService{extra})
		if partial {
			add, del = kpPartialSync(with, []kpService{extra}, nil), kpPartialSync(p.all(), nil, []kpService{extra})
		}
		d, err := iptRestore(add, true)
		if err != nil {
			return r, err
		}
		r.AddMs = append(r.AddMs, ms(d))
		if k == 0 {
			if c, err := crrInNS(iptCli, netip.AddrPortFrom(extra.vip, vipPort).String(), 10); err != nil || c.Failed > 0 {
				return r, fmt.Errorf("the added iptables service carries no traffic: %v %s", err, c.FirstError)
			}
		}
		if d, err = iptRestore(del, true); err != nil {
			return r, err
		}
		r.RemoveMs = append(r.RemoveMs, ms(d))
	}
	r.summarize()
	return r, nil
}
