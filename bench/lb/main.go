// Command lb measures Seta's service load balancing against kube-proxy's
// iptables mode, with the same backends (two seta-nettool servers) and the
// same client, N services at a time for N in --services:
//
//  1. Connection rate (TCP_CRR: connect, one request and response, close;
//     one connection at a time) and first-packet latency (how long a
//     blocking connect() takes: SYN to SYN-ACK) to the LAST of N services.
//     Seta: a one-node lab; the client runs in a pod (so in the node's
//     cgroup, where socket LB translates the VIP at connect()). iptables:
//     a routed node namespace holding kube-proxy's nat chains
//     (KUBE-SERVICES → KUBE-SVC-… → KUBE-SEP-…, statistic --mode random,
//     DNAT), loaded with iptables-restore, with client and server pods
//     around it; the measured service's rule is the last one a new
//     connection reaches in KUBE-SERVICES.
//
//  2. Time to program one more service when N exist: Seta through the
//     agent's REST API (PUT /v1/services, and `seta service update` as a
//     user runs it), and in-process through the same service table and
//     lb maps with a breakdown; iptables-restore --noflush as kube-proxy's
//     full sync and as its partial sync (MinimizeIPTablesRestore).
//
//  3. TCP_RR (seta-nettool rr) through the ClusterIP of a one-backend
//     service vs straight to that backend, for both.
//
// Also recorded per N: Seta's map entries per service, the agent's RSS and
// Go heap, and how long the agent takes to restart with N services.
//
// Seta holds at most 65,535 frontends (16-bit service IDs), so larger N
// are measured for iptables only. Seta gets its N services through its
// own restore path (see setaSide.load): one PUT at a time would take hours.
// iptables defaults to the legacy (x_tables) backend: the nf_tables one's
// --noflush restores grow quadratically with the chains.
//
//	go build -o bin/ ./cmd/... ./bench/lb && sudo bin/lb --bin bin
//
// It builds its own lab ("benchlb") and namespaces, refuses to run over
// leftovers, and removes everything at the end, also when interrupted.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seta-net/seta/pkg/lab"
	"github.com/seta-net/seta/pkg/nsutil"
)

const labName = "benchlb"

var (
	binDir          = flag.String("bin", "bin", "directory holding the seta binaries")
	serviceCounts   = flag.String("services", "10,1000,10000,65000,100000", "numbers of services N to measure, ascending")
	setupsFlag      = flag.String("setups", "seta,iptables", "setups to measure: seta, iptables or both")
	rounds          = flag.Int("rounds", 5, "CRR measurements per setup and N (setups alternate; median and spread reported)")
	crrCount        = flag.Int("crr-count", 3000, "connections per CRR measurement")
	crrTime         = flag.Duration("crr-duration", 5*time.Second, "time limit of one CRR measurement")
	rrTime          = flag.Duration("rr-duration", 3*time.Second, "length of each TCP_RR measurement")
	rrRounds        = flag.Int("rr-rounds", 5, "TCP_RR measurements per path (ClusterIP, direct) and setup")
	rrAt            = flag.String("rr-at", "first,last", "at which N to run TCP_RR: first, last (the largest N Seta can hold), all, none")
	programRepeats  = flag.Int("program-repeats", 7, "times one service is added (and removed again) per N and method")
	programGoalAt   = flag.Int("program-goal-at", 10000, "N of the goal row of the programming time (< 1 ms for Seta)")
	inprocAt        = flag.String("inproc-at", "10,1000,10000,65000", "N at which to time the service table in-process (empty: never)")
	inprocProfile   = flag.String("inproc-profile", "", "write a CPU profile of the in-process adds at the largest --inproc-at N to this file")
	iptablesRestore = flag.String("iptables-restore", "iptables-legacy-restore", "iptables-restore binary: iptables-legacy-restore (x_tables), or iptables-nft-restore / iptables-restore (nf_tables on Debian; its --noflush restores grow quadratically: minutes at 10,000 services)")
	programTime     = flag.Duration("program-time", time.Minute, "stop repeating one programming method at one N after this long (at least 2 adds)")
	agentArgs       = flag.String("agent-args", "--bpf-events-trace-enabled=false", "extra agent flags, space-separated (the bench adds --bpf-lb-map-max)")
	clientCPU       = flag.Int("client-cpu", 1, "CPU the clients are pinned to")
	serverCPU       = flag.Int("server-cpu", 0, "CPU the servers are pinned to")
	jsonOut         = flag.String("json", "", "write the raw results as JSON to this file (default: printed after the tables)")
	bpfStats        = flag.Bool("bpf-stats", true, "turn on the kernel's BPF run statistics (BPF_ENABLE_STATS) for the run to time Seta's programs per run (costs every BPF program two clock reads per run)")

	dumpRules = flag.Int("dump-iptables", 0, "print the whole kube-proxy-style nat table (iptables-restore input) for this many services and exit")
	crrChild  = flag.String("crr-child", "", "internal: run the CRR client against this address and print JSON")
)

// Service addresses: the measured services' VIPs are 10.112.0.1 onwards
// (outside the lab's 10.96.0.0/16, which the lab owns); the services
// added to time programming are in 10.126.0.0/16.
const (
	backendPort = 7000
	vipPort     = 80
	maxServices = 500_000
)

func main() { os.Exit(run()) }

func run() int {
	flag.Parse()
	if *crrChild != "" {
		return runCRRChild(*crrChild)
	}
	if *dumpRules > 0 {
		var svcs []kpService
		for i := range min(*dumpRules, maxServices) {
			svcs = append(svcs, kpServiceN(i))
		}
		kpWholeTable(svcs).WriteTo(os.Stdout)
		return 0
	}
	counts, err := checkFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lb bench:", err)
		return 2
	}
	if msg := leftovers(); msg != "" {
		fmt.Fprintln(os.Stderr, "lb bench: "+msg)
		return 1
	}
	// SIGPIPE too: a closed stdout (| head) must not skip the cleanup.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()
	b := &bench{counts: counts, setups: map[string]bool{}}
	for _, f := range strings.Split(*setupsFlag, ",") {
		b.setups[strings.TrimSpace(f)] = true
	}
	defer b.cleanup()
	res, err := b.run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lb bench:", err)
		return 1
	}
	report(os.Stdout, res)
	raw, _ := json.MarshalIndent(res, "", "  ")
	if *jsonOut != "" {
		if err := os.WriteFile(*jsonOut, append(raw, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "lb bench:", err)
			return 1
		}
	} else {
		fmt.Printf("\n```json\n%s\n```\n", raw)
	}
	return 0
}

// checkFlags keeps every loop bounded and the inputs sane.
func checkFlags() ([]int, error) {
	counts, err := parseCounts("--services", *serviceCounts, 1)
	if err != nil {
		return nil, err
	}
	if !slices.IsSorted(counts) || len(slices.Compact(slices.Clone(counts))) != len(counts) {
		return nil, errors.New("--services must be ascending without repeats (services are only ever added between steps)")
	}
	if _, err := parseCounts("--inproc-at", *inprocAt, 0); err != nil {
		return nil, err
	}
	for _, f := range strings.Split(*setupsFlag, ",") {
		if f = strings.TrimSpace(f); f != "seta" && f != "iptables" {
			return nil, fmt.Errorf("--setups: unknown setup %q (seta, iptables)", f)
		}
	}
	switch {
	case *rounds < 1 || *rounds > 20:
		return nil, errors.New("--rounds must be 1 to 20")
	case *crrCount < 10 || *crrCount > 100_000:
		return nil, errors.New("--crr-count must be 10 to 100,000")
	case *crrTime <= 0 || *crrTime > time.Minute:
		return nil, errors.New("--crr-duration must be at most 1m")
	case *rrTime <= 0 || *rrTime > time.Minute:
		return nil, errors.New("--rr-duration must be at most 1m")
	case *rrRounds < 1 || *rrRounds > 20:
		return nil, errors.New("--rr-rounds must be 1 to 20")
	case *programRepeats < 1 || *programRepeats > 100:
		return nil, errors.New("--program-repeats must be 1 to 100")
	case *programTime <= 0 || *programTime > 30*time.Minute:
		return nil, errors.New("--program-time must be at most 30m")
	case !slices.Contains([]string{"first", "last", "first,last", "all", "none"}, *rrAt):
		return nil, errors.New("--rr-at must be first, last, first,last, all or none")
	}
	for _, c := range []struct {
		name string
		cpu  int
	}{{"client-cpu", *clientCPU}, {"server-cpu", *serverCPU}} {
		if c.cpu < 0 || c.cpu >= runtime.NumCPU() {
			return nil, fmt.Errorf("--%s must be a CPU from 0 to %d", c.name, runtime.NumCPU()-1)
		}
	}
	if _, err := exec.LookPath(*iptablesRestore); err != nil {
		return nil, fmt.Errorf("--iptables-restore: %w", err)
	}
	for _, name := range []string{"seta", "seta-agent", "seta-cni", "seta-nettool"} {
		if _, err := os.Stat(filepath.Join(*binDir, name)); err != nil {
			return nil, fmt.Errorf("--bin %s: %w (go build -o %s/ ./cmd/...)", *binDir, err, *binDir)
		}
	}
	return counts, nil
}

func parseCounts(flagName, s string, minLen int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > maxServices {
			return nil, fmt.Errorf("%s: %q is not a number of services from 1 to %d", flagName, f, maxServices)
		}
		out = append(out, n)
	}
	if len(out) < minLen {
		return nil, fmt.Errorf("%s: give at least %d number(s)", flagName, minLen)
	}
	return out, nil
}

// leftovers names what an earlier run left behind, and how to remove it.
func leftovers() string {
	var found, fix []string
	if _, err := os.Stat(lab.Dir(labName)); err == nil {
		found = append(found, "lab state "+lab.Dir(labName))
	}
	if _, err := os.Stat(filepath.Join(lab.BPFRoot, labName)); err == nil {
		found = append(found, "bpf pins "+filepath.Join(lab.BPFRoot, labName))
	}
	ents, _ := os.ReadDir(nsutil.Dir)
	labNS := false
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "seta-"+labName+"-") {
			continue
		}
		found = append(found, "network namespace "+e.Name())
		if slices.Contains(iptNamespaces, e.Name()) {
			fix = append(fix, "ip netns del "+e.Name())
		} else {
			labNS = true
		}
	}
	if len(found) == 0 {
		return ""
	}
	if labNS || len(fix) < len(found) {
		fix = append([]string{fmt.Sprintf("%s lab down --name %s", abs(filepath.Join(*binDir, "seta")), labName)}, fix...)
	}
	return fmt.Sprintf("leftovers of an earlier run: %s; remove them with: %s", strings.Join(found, ", "), strings.Join(fix, "; "))
}

func abs(p string) string { a, _ := filepath.Abs(p); return a }

// bench holds the run's state and what cleanup must undo.
type bench struct {
	counts  []int
	setups  map[string]bool
	started []*exec.Cmd
	// bpfStats keeps the BPF run statistics on; nil without them.
	bpfStats io.Closer
}

func (b *bench) bin(name string) string { return abs(filepath.Join(*binDir, name)) }

func (b *bench) cleanup() {
	for _, p := range b.started {
		if p.Process != nil && p.ProcessState == nil {
			p.Process.Kill()
			p.Wait()
		}
	}
	for _, n := range iptNamespaces {
		if err := nsutil.Delete(n); err != nil {
			fmt.Fprintln(os.Stderr, "lb bench: cleanup:", err)
		}
	}
	if _, err := os.Stat(lab.Dir(labName)); err == nil || leftovers() != "" {
		if err := lab.Down(context.Background(), lab.DownOptions{Name: labName, Out: io.Discard}); err != nil {
			fmt.Fprintln(os.Stderr, "lb bench: cleanup:", err)
		}
	}
	if b.bpfStats != nil {
		b.bpfStats.Close()
	}
}

// inNS runs a command in one of our namespaces and returns its output.
func inNS(ns string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	return nsutil.Output(nsutil.Path(ns), cmd)
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "lb bench: "+format+"\n", a...)
}

// machine describes where the run happened.
type machine struct {
	Date, Commit, Kernel, IptablesVersion string
	CPUs                                  int
	LoadAvg                               string
}

func describeMachine() machine {
	m := machine{Date: time.Now().Format("2006-01-02 15:04"), CPUs: runtime.NumCPU(), Commit: "unknown"}
	if b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(b))
		if b, err := exec.Command("git", "status", "--porcelain", "--", "pkg", "cmd", "bpf", "bench", "go.mod").Output(); err == nil && len(bytes.TrimSpace(b)) > 0 {
			m.Commit += " plus the working tree"
		}
	}
	if b, err := exec.Command("uname", "-r").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	ipt := strings.Replace(*iptablesRestore, "-restore", "", 1)
	if b, err := exec.Command(ipt, "-V").Output(); err == nil {
		m.IptablesVersion = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}
