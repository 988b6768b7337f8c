// Command datapath measures how fast a pod talks through Seta, against two
// namespaces joined by a bare veth pair and against the reference bridge CNI
// plugin with iptables (issue 6).
//
// Five topologies, each in namespaces of its own, with the same layout: a
// client pod and a server pod on one node, IPv4.
//
//	(a) veth:   two namespaces joined by a veth pair, no programs
//	(b) bridge: the bridge + host-local CNI plugins (with portmap and
//	            firewall, iptables backend) of containernetworking-plugins,
//	            run through libcni inside a node namespace of this harness
//	(c) seta:   a one-node Seta lab; no policy, no trace events, no Hubble
//	(d) seta+policy: as (c), with a CiliumNetworkPolicy of N L3/L4 rules
//	            (default 100) selecting both pods, imported with
//	            `seta policy import`
//	(e) seta+policy+visibility: as (d), with the agent's defaults: trace
//	            events (medium aggregation), Hubble and its metrics
//
// Workloads: TCP_RR, TCP_CRR and UDP_RR with `seta-nettool perf` against
// `seta-nettool perf-serve` (1-byte requests and responses), and TCP_STREAM
// with iperf3. The request/response clients and servers share one CPU,
// the TCP_STREAM ones run on two (the steadier placement of each on the
// 2-core VM, see notes.md). A round runs every workload on every topology
// back to back for a short slice (1 s), the topology order reversed every
// other round; many rounds follow one another, and ratios are taken within
// a round, pair by pair, so that the machine's slow drifts cancel. The
// goals are judged on the median of the per-round ratios, with its 95 %
// confidence interval and the medians of consecutive parts of the run. CPU
// cost per transaction comes from /proc/stat (busy jiffies of the whole
// machine, softirq included, over the run, per transaction) and from the
// CPU clocks of the client and the server (their own work, the packet
// processing in their context included); the cost of Seta's programs from
// the kernel's BPF run statistics, in a few rounds of their own.
//
//	go build -o bin/ ./cmd/... ./bench/datapath && bin/datapath --bin bin
//
// It writes bench/datapath/results.json and the datapath section of
// bench/RESULTS.md. It refuses to start over leftovers of an earlier run
// (and names them; --clean removes them) and removes everything it made at
// the end, also on failure, SIGINT, SIGTERM or SIGPIPE.
package main

import (
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
	"strings"
	"syscall"
	"time"

	"github.com/seta-net/seta/pkg/datapath/progstats"
)

// base prefixes every name the harness gives: namespaces, labs, the state
// directory. Fixed, so that a later run finds what an earlier one left.
const base = "dpbench"

// stateDir holds the bridge topology's CNI configuration, IPAM and cache,
// and the policy file.
var stateDir = filepath.Join("/run/seta", base)

var (
	binDir     = flag.String("bin", "bin", "directory holding the seta binaries")
	cniBin     = flag.String("cni-bin", "/usr/lib/cni", "directory holding the reference CNI plugins (Debian: containernetworking-plugins)")
	rounds     = flag.Int("rounds", 30, "rounds (1 to 200); each runs every workload on every topology; the ratios come from these")
	duration   = flag.Duration("duration", time.Second, "length of each measurement (1s to 60s)")
	warmup     = flag.Int("warmup-rounds", 2, "rounds before the measured ones, recorded but not used (0 to 20)")
	costRounds = flag.Int("cost-rounds", 5, "rounds of the Seta topologies with BPF run statistics on, spread through the run, for the programs' cost (0 to 50)")
	parts      = flag.Int("parts", 3, "consecutive parts of the rounds whose medians must agree for a goal to be decided (1 to 10; at most one per round)")
	topoFlag   = flag.String("topologies", "a,f,b,c,d,e", "topologies to run, in round order; a is the baseline of the ratios")
	loadFlag   = flag.String("workloads", "TCP_RR,TCP_CRR,UDP_RR,TCP_STREAM", "workloads to run")
	clientCPU  = flag.Int("client-cpu", 1, "CPU the TCP_RR, TCP_CRR and UDP_RR clients are pinned to (-1: not pinned)")
	serverCPU  = flag.Int("server-cpu", 1, "CPU the TCP_RR, TCP_CRR and UDP_RR server is pinned to (-1: not pinned)")
	streamCCPU = flag.Int("stream-client-cpu", 1, "CPU the TCP_STREAM client is pinned to (-1: not pinned)")
	streamSCPU = flag.Int("stream-server-cpu", 0, "CPU the TCP_STREAM server is pinned to (-1: not pinned)")
	ruleCount  = flag.Int("rules", 100, "L3/L4 rules of the policy of (d) and (e) (3 to 10000)")
	jsonOut    = flag.String("json", "bench/datapath/results.json", "write the raw results here (empty: do not)")
	resultsOut = flag.String("results", "bench/RESULTS.md", "replace the datapath section of this file (empty: do not)")
	notesFile  = flag.String("notes", "bench/datapath/notes.md", "notes appended to the section, if the file exists")
	prelim     = flag.Bool("preliminary", false, "mark the section as preliminary (measured on a busy machine)")
	remark     = flag.String("remark", "", "a paragraph to add to the section about this run (how it was built, what ran meanwhile)")
	clean      = flag.Bool("clean", false, "remove the leftovers of an earlier run, then exit")
	fromJSON   = flag.String("from-json", "", "measure nothing: write the section again from this results.json (with the current notes)")
)

func main() { os.Exit(run()) }

func run() int {
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "datapath: unexpected argument %q\n", flag.Arg(0))
		return 2
	}
	if *fromJSON != "" {
		return rewrite(*fromJSON)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "datapath: run as root: it creates network namespaces and loads eBPF programs")
		return 1
	}
	if *clean {
		return removeLeftovers()
	}
	plan, err := parsePlan()
	if err != nil {
		fmt.Fprintln(os.Stderr, "datapath:", err)
		return 2
	}
	if *resultsOut != "" {
		if err := checkResultsFile(*resultsOut); err != nil {
			fmt.Fprintln(os.Stderr, "datapath:", err)
			return 2
		}
	}
	if err := checkTools(); err != nil {
		fmt.Fprintln(os.Stderr, "datapath:", err)
		return 1
	}
	if err := checkStats(plan); err != nil {
		fmt.Fprintln(os.Stderr, "datapath:", err)
		return 1
	}
	if found := leftovers(); len(found) > 0 {
		fmt.Fprintln(os.Stderr, leftoverMessage(found))
		return 1
	}
	// The state directory is the run's claim on the names: a second run
	// started meanwhile finds it and stops here.
	if err := os.MkdirAll(filepath.Dir(stateDir), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "datapath:", err)
		return 1
	}
	if err := os.Mkdir(stateDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "datapath: %v (another run of the harness?)\n", err)
		return 1
	}
	// SIGPIPE too: a closed stdout (| head) must not skip the cleanup. A
	// second signal during the cleanup is caught as well (stop runs last).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()
	defer cleanup()
	res, err := measure(ctx, plan)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted (%v)", err)
		}
		fmt.Fprintln(os.Stderr, "datapath:", err)
		return 1
	}
	if err := write(res); err != nil {
		fmt.Fprintln(os.Stderr, "datapath:", err)
		return 1
	}
	return 0
}

// plan is what the flags ask for, checked.
type plan struct {
	topologies []string // IDs, "a" first when present
	workloads  []string
	rounds     int
	warmup     int
	costRounds int
	parts      int
	duration   time.Duration
}

func parsePlan() (plan, error) {
	// No more parts than rounds (--rounds 2 with the default --parts).
	p := plan{rounds: *rounds, warmup: *warmup, costRounds: *costRounds, parts: min(*parts, max(*rounds, 1)), duration: *duration}
	switch {
	case p.rounds < 1 || p.rounds > 200:
		return p, errors.New("--rounds must be 1 to 200")
	case p.warmup < 0 || p.warmup > 20:
		return p, errors.New("--warmup-rounds must be 0 to 20")
	case p.costRounds < 0 || p.costRounds > 50:
		return p, errors.New("--cost-rounds must be 0 to 50")
	case *parts < 1 || *parts > 10:
		return p, errors.New("--parts must be 1 to 10")
	case p.duration < time.Second || p.duration > time.Minute:
		return p, errors.New("--duration must be 1s to 60s")
	case *ruleCount < 3 || *ruleCount > 10000:
		return p, errors.New("--rules must be 3 to 10000 (three of them admit the benchmark's traffic)")
	}
	for _, c := range []struct {
		name string
		cpu  int
	}{{"client-cpu", *clientCPU}, {"server-cpu", *serverCPU}, {"stream-client-cpu", *streamCCPU}, {"stream-server-cpu", *streamSCPU}} {
		if c.cpu < -1 || c.cpu >= runtime.NumCPU() {
			return p, fmt.Errorf("--%s must be -1 or a CPU from 0 to %d", c.name, runtime.NumCPU()-1)
		}
	}
	for _, f := range strings.Split(*topoFlag, ",") {
		id := strings.TrimSpace(f)
		if _, ok := topologyKinds[id]; !ok {
			return p, fmt.Errorf("--topologies: unknown topology %q (a, b, c, d, e, f)", f)
		}
		if slices.Contains(p.topologies, id) {
			return p, fmt.Errorf("--topologies: %q given twice", id)
		}
		p.topologies = append(p.topologies, id)
	}
	for _, f := range strings.Split(*loadFlag, ",") {
		w := strings.ToUpper(strings.TrimSpace(f))
		if _, ok := workloads[w]; !ok {
			return p, fmt.Errorf("--workloads: unknown workload %q (TCP_RR, TCP_CRR, UDP_RR, TCP_STREAM)", f)
		}
		if slices.Contains(p.workloads, w) {
			return p, fmt.Errorf("--workloads: %q given twice", w)
		}
		p.workloads = append(p.workloads, w)
	}
	return p, nil
}

// checkTools makes sure every program the run needs is there, before
// anything is created.
func checkTools() error {
	var missing []string
	for _, b := range []string{"seta", "seta-agent", "seta-cni", "seta-nettool"} {
		if st, err := os.Stat(abs(b)); err != nil || st.IsDir() {
			missing = append(missing, fmt.Sprintf("%s (build with: go build -o %s/ ./cmd/...)", abs(b), *binDir))
		}
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "firewall"} {
		if _, err := os.Stat(filepath.Join(*cniBin, p)); err != nil {
			missing = append(missing, fmt.Sprintf("CNI plugin %s in %s (apt-get install containernetworking-plugins)", p, *cniBin))
		}
	}
	for _, t := range []struct{ name, pkg string }{
		{"iperf3", "iperf3"}, {"taskset", "util-linux"}, {"ip", "iproute2"}, {"ss", "iproute2"}, {"iptables", "iptables"}, {"iptables-save", "iptables"},
	} {
		if _, err := exec.LookPath(t.name); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t.name, t.pkg))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing: %s", strings.Join(missing, "; "))
	}
	return nil
}

// checkStats makes sure the kernel keeps BPF run statistics when cost
// rounds need them, before anything is created.
func checkStats(p plan) error {
	if p.costRounds == 0 || len(p.setaTopologies()) == 0 {
		return nil
	}
	c, err := progstats.Enable()
	if err != nil {
		return fmt.Errorf("%w (run with --cost-rounds 0 to measure without the programs' cost)", err)
	}
	return c.Close()
}

// pinFor is the client and the server CPU of workload w (-1: not pinned).
func pinFor(w string) (client, server int) {
	if w == "TCP_STREAM" {
		return *streamCCPU, *streamSCPU
	}
	return *clientCPU, *serverCPU
}

func abs(name string) string { p, _ := filepath.Abs(filepath.Join(*binDir, name)); return p }

// started is when the harness started; the log counts from it.
var started = time.Now()

// logf reports progress on stderr.
func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "datapath: [%4.0fs] "+format+"\n", append([]any{time.Since(started).Seconds()}, a...)...)
}

// cleanup removes everything this run made, whatever state it got to.
func cleanup() {
	logf("cleaning up")
	stopProcs()
	teardownBridge()
	teardownVeth()
	teardownFloor()
	teardownLabs()
	os.RemoveAll(stateDir)
	if found := leftovers(); len(found) > 0 {
		fmt.Fprintln(os.Stderr, "datapath: cleanup left something behind: "+leftoverMessage(found))
	}
}

// removeLeftovers is --clean.
func removeLeftovers() int {
	found := leftovers()
	if len(found) == 0 {
		logf("nothing left over")
		return 0
	}
	for _, l := range found {
		logf("removing %s", l.what)
	}
	killStrays()
	cleanup()
	if len(leftovers()) > 0 {
		return 1
	}
	return 0
}

// write stores the results: JSON, and the section of RESULTS.md.
func write(res *results) error {
	md := markdown(res)
	fmt.Print(md)
	var errs []error
	if *jsonOut != "" {
		errs = append(errs, writeJSON(*jsonOut, res))
	}
	if *resultsOut != "" {
		errs = append(errs, replaceSection(*resultsOut, md))
	}
	return errors.Join(errs...)
}

// rewrite is --from-json: the section again from stored results, e.g.
// after the notes changed.
func rewrite(path string) int {
	b, err := os.ReadFile(path)
	if err == nil {
		var res results
		if err = json.Unmarshal(b, &res); err == nil && len(res.Topologies) == 0 {
			err = errors.New("no topologies: not a results file of this harness")
		}
		if err == nil {
			// The statistics again from the samples: the section shows
			// what the current harness makes of them.
			res.summarize(planOf(&res))
			md := markdown(&res)
			fmt.Print(md)
			if *resultsOut != "" {
				err = replaceSection(*resultsOut, md)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "datapath: %s: %v\n", path, err)
		return 1
	}
	return 0
}

// discard is where library chatter (lab steps) goes.
var discard io.Writer = io.Discard
