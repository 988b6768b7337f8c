// Command hubble measures Seta's flow observability (the Hubble pipeline):
//
//  1. decode: decoder throughput on one core. Pre-built raw ring samples (70%
//     traces of TCP between 32 local endpoints, 20% drops with reasons and
//     cookies, 10% allowed policy verdicts) go through the agent's
//     per-event work: the ring reader's copy, monitor.Decode,
//     parser.Fill with an enricher doing the agent's lookups, the Hubble
//     flow metrics (every family), and the flow ring (4095). It runs in a
//     child process pinned to one CPU with GOMAXPROCS=1.
//
//  2. loss: events lost at a sustained rate. In a lab, "other" sends UDP
//     to "web" (seta-nettool blast, pinned to one CPU), which a policy
//     admits only from app=client, so every datagram is a policy drop
//     event. The deltas of datagrams sent, datapath drops, flows seen,
//     ring losses and decode errors, and the agent's CPU, per run; then a
//     few higher rates (also with one sender per CPU) to find where losses
//     begin.
//
//  3. rr: TCP_RR (seta-nettool rr, client and server pinned to different
//     CPUs) from "client" to "web" with the agent restarted between modes
//     "off" (no Hubble, no trace events, no metrics server), "on" (the
//     defaults: Hubble, trace events, medium aggregation, Hubble metrics)
//     and "none" (like on, with monitor aggregation none: every forwarded
//     packet traced), interleaved with the order rotated each round;
//     on/off per round. Optional modes "trace" and "agent" split "on".
//
//     go build -o bin/ ./cmd/... ./bench/hubble && sudo bin/hubble --bin bin
//
// It builds its own lab ("benchhub"), refuses to run over leftovers, and
// removes everything at the end, also when interrupted.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/lab"
	"github.com/seta-net/seta/pkg/nsutil"
)

const labName = "benchhub"

var (
	binDir  = flag.String("bin", "bin", "directory holding the seta binaries")
	measure = flag.String("measure", "decode,loss,rr", "measurements to run: decode, loss, rr")
	appendF = flag.String("append", "", "also append the markdown section to this file (e.g. bench/RESULTS.md)")

	decEvents  = flag.Int("decode-events", 2_000_000, "events per decoder run")
	decRuns    = flag.Int("decode-runs", 5, "decoder runs (the median is reported)")
	decCPU     = flag.Int("decode-cpu", 1, "CPU the decoder child is pinned to")
	decProfile = flag.String("decode-profile", "", "write a CPU profile of the decoder runs to this file")
	decChild   = flag.Bool("decode-child", false, "internal: run the decoder measurement and print JSON")

	lossRate  = flag.Int("loss-rate", 20000, "events per second for the loss measurement")
	lossTime  = flag.Duration("loss-duration", 30*time.Second, "length of each loss run")
	lossRuns  = flag.Int("loss-runs", 3, "loss runs")
	highRates = flag.String("loss-high-rates", "100000,400000,200000x2", "further total rates to try once each for --loss-high-duration, RATE[xSENDERS] (empty: none)")
	highTime  = flag.Duration("loss-high-duration", 10*time.Second, "length of each higher-rate run")
	blastCPU  = flag.Int("blast-cpu", 1, "CPU the blast sender is pinned to")

	rrTime    = flag.Duration("rr-duration", 2*time.Second, "length of each TCP_RR measurement")
	rrRepeats = flag.Int("rr-repeats", 3, "TCP_RR measurements per mode and round (the median is used)")
	rrRounds  = flag.Int("rr-rounds", 6, "rounds of the modes (a multiple of their number balances the order)")
	rrModes   = flag.String("rr-modes", "off,on,none", "agent modes per round, in order (off, on, none; also trace, agent)")
	rrCPU     = flag.Int("rr-cpu", 1, "CPU the rr client is pinned to")
	serveCPU  = flag.Int("serve-cpu", 0, "CPU the web pod's server is pinned to (-1: not pinned)")
)

func main() { os.Exit(run()) }

func run() int {
	flag.Parse()
	if *decChild {
		return decodeChild(*decEvents, *decRuns, *decProfile)
	}
	want := map[string]bool{}
	for _, m := range strings.Split(*measure, ",") {
		m = strings.TrimSpace(m)
		if m != "decode" && m != "loss" && m != "rr" {
			fmt.Fprintf(os.Stderr, "hubble bench: --measure: unknown measurement %q (decode, loss, rr)\n", m)
			return 2
		}
		want[m] = true
	}
	if err := checkBounds(); err != nil {
		fmt.Fprintln(os.Stderr, "hubble bench:", err)
		return 2
	}
	if msg := leftovers(); msg != "" {
		fmt.Fprintln(os.Stderr, "hubble bench: "+msg)
		return 1
	}
	// SIGPIPE too: a closed stdout (| head) must not skip the cleanup.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()
	defer cleanup()
	var out bytes.Buffer
	w := io.MultiWriter(os.Stdout, &out)
	header(w)
	if err := bench(ctx, w, want); err != nil {
		fmt.Fprintln(os.Stderr, "hubble bench:", err)
		return 1
	}
	if *appendF != "" {
		f, err := os.OpenFile(*appendF, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hubble bench:", err)
			return 1
		}
		defer f.Close()
		if _, err := f.Write(append([]byte("\n"), out.Bytes()...)); err != nil {
			fmt.Fprintln(os.Stderr, "hubble bench:", err)
			return 1
		}
	}
	return 0
}

// checkBounds keeps every load loop bounded in count and time.
func checkBounds() error {
	switch {
	case *decEvents < 1 || *decEvents > 50_000_000:
		return errors.New("--decode-events must be 1 to 50,000,000")
	case *decRuns < 1 || *decRuns > 20:
		return errors.New("--decode-runs must be 1 to 20")
	case *lossRate < 1 || *lossRate > 1_000_000:
		return errors.New("--loss-rate must be 1 to 1,000,000")
	case *lossTime <= 0 || *lossTime > 2*time.Minute || *highTime <= 0 || *highTime > 2*time.Minute:
		return errors.New("--loss-duration and --loss-high-duration must be at most 2m")
	case *lossRuns < 1 || *lossRuns > 10:
		return errors.New("--loss-runs must be 1 to 10")
	case *rrTime <= 0 || *rrTime > time.Minute:
		return errors.New("--rr-duration must be at most 1m")
	case *rrRepeats < 1 || *rrRepeats > 10 || *rrRounds < 1 || *rrRounds > 10:
		return errors.New("--rr-repeats and --rr-rounds must be 1 to 10")
	}
	for _, c := range []struct {
		name string
		cpu  int
	}{{"decode-cpu", *decCPU}, {"blast-cpu", *blastCPU}, {"rr-cpu", *rrCPU}, {"serve-cpu", max(*serveCPU, 0)}} {
		if c.cpu < 0 || c.cpu >= runtime.NumCPU() {
			return fmt.Errorf("--%s must be a CPU from 0 to %d", c.name, runtime.NumCPU()-1)
		}
	}
	if _, err := parseRates(*highRates); err != nil {
		return err
	}
	if _, err := parseModes(*rrModes); err != nil {
		return err
	}
	return nil
}

// leftovers names what an earlier run left behind, and how to remove it.
func leftovers() string {
	var found []string
	if _, err := os.Stat(lab.Dir(labName)); err == nil {
		found = append(found, "lab state "+lab.Dir(labName))
	}
	ents, _ := os.ReadDir(nsutil.Dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "seta-"+labName+"-") {
			found = append(found, "network namespace "+e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(lab.BPFRoot, labName)); err == nil {
		found = append(found, "bpf pins "+filepath.Join(lab.BPFRoot, labName))
	}
	var load []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) >= 2 && filepath.Base(args[0]) == "seta-nettool" && (args[1] == "blast" || args[1] == "rr") {
			load = append(load, p.Name())
		}
	}
	var msg []string
	if len(found) > 0 {
		msg = append(msg, fmt.Sprintf("leftovers of an earlier run: %s; remove them with: %s lab down --name %s",
			strings.Join(found, ", "), abs("seta"), labName))
	}
	if len(load) > 0 {
		msg = append(msg, fmt.Sprintf("load generators are running (seta-nettool blast/rr, pid %s); they stop on their own within their --duration, or: kill PID",
			strings.Join(load, ", ")))
	}
	return strings.Join(msg, "; ")
}

var started []*exec.Cmd

func cleanup() {
	for _, p := range started {
		if p.Process != nil && p.ProcessState == nil {
			p.Process.Kill()
			p.Wait()
		}
	}
	if _, err := os.Stat(lab.Dir(labName)); err == nil || len(leftovers()) > 0 {
		if err := lab.Down(context.Background(), lab.DownOptions{Name: labName, Out: io.Discard}); err != nil {
			fmt.Fprintln(os.Stderr, "hubble bench: cleanup:", err)
		}
	}
}

func abs(name string) string { p, _ := filepath.Abs(filepath.Join(*binDir, name)); return p }

func header(w io.Writer) {
	commit := "unknown"
	if b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(b))
		if b, err := exec.Command("git", "status", "--porcelain", "--", "pkg", "cmd", "bpf", "bench", "go.mod").Output(); err == nil && len(bytes.TrimSpace(b)) > 0 {
			commit += " plus the working tree"
		}
	}
	nproc, _ := exec.Command("nproc").Output()
	kernel, _ := exec.Command("uname", "-r").Output()
	fmt.Fprintf(w, "## Flow observability (issue: observability)\n\n")
	fmt.Fprintf(w, "Command (as root, from the repository root; nothing else running):\n\n```sh\ngo build -o bin/ ./cmd/... ./bench/hubble\n%s\n```\n\n",
		strings.Join(os.Args, " "))
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "Measured %s at commit %s; %s CPUs, Linux %s; load average at the start %s.\n", time.Now().Format("2006-01-02"), commit,
		strings.TrimSpace(string(nproc)), strings.TrimSpace(string(kernel)), strings.Join(strings.Fields(string(load))[:3], " "))
}

func bench(ctx context.Context, w io.Writer, want map[string]bool) error {
	if want["decode"] {
		if err := decodeBench(ctx, w); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
	}
	if !want["loss"] && !want["rr"] {
		return nil
	}
	fmt.Fprintln(os.Stderr, "hubble bench: starting lab", labName)
	st, err := lab.Up(ctx, lab.UpOptions{Name: labName, Nodes: 1, AgentBin: abs("seta-agent"), CNIBinDir: abs(""), Out: io.Discard})
	if err != nil {
		return err
	}
	os.Setenv("PATH", abs("")+":"+os.Getenv("PATH"))
	serve := []string{abs("seta-nettool"), "serve"}
	if *serveCPU >= 0 {
		serve = append([]string{"taskset", "-c", strconv.Itoa(*serveCPU)}, serve...)
	}
	web, err := lab.RunPod(ctx, lab.RunOptions{Lab: labName, Name: "web", Namespace: "default", Labels: []string{"app=web"}, Command: serve})
	if err != nil {
		return err
	}
	other, err := lab.RunPod(ctx, lab.RunOptions{Lab: labName, Name: "other", Namespace: "default", Labels: []string{"app=other"}})
	if err != nil {
		return err
	}
	cli, err := lab.RunPod(ctx, lab.RunOptions{Lab: labName, Name: "client", Namespace: "default", Labels: []string{"app=client"}})
	if err != nil {
		return err
	}
	c := client.New(st.Nodes[0].Socket, time.Minute)
	pol := "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web-from-client}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n"
	if _, err := c.ImportPolicy(ctx, v1.PolicyImport{Files: []v1.PolicyFile{{Name: "web.yaml", Content: pol}}}); err != nil {
		return fmt.Errorf("import policy: %w", err)
	}
	webTCP := net.JoinHostPort(web.IPv4, "7000")
	if err := waitTCP(ctx, cli.NetNS, webTCP); err != nil {
		return err
	}
	if want["loss"] {
		if err := lossBench(ctx, w, st, other, net.JoinHostPort(web.IPv4, "7001")); err != nil {
			return fmt.Errorf("loss: %w", err)
		}
	}
	if want["rr"] {
		if err := rrBench(ctx, w, cli, webTCP); err != nil {
			return fmt.Errorf("rr: %w", err)
		}
	}
	return nil
}

// ---- 1. decoder ----

func decodeBench(ctx context.Context, w io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"-c", strconv.Itoa(*decCPU), self, "--decode-child", "--decode-events", strconv.Itoa(*decEvents),
		"--decode-runs", strconv.Itoa(*decRuns)}
	if *decProfile != "" {
		args = append(args, "--decode-profile", *decProfile)
	}
	fmt.Fprintf(os.Stderr, "hubble bench: decoder, %d runs of %d events on CPU %d\n", *decRuns, *decEvents, *decCPU)
	cmd := exec.CommandContext(ctx, "taskset", args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	started = append(started, cmd)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("decoder child: %w", err)
	}
	var res decodeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return fmt.Errorf("decoder child output %q: %w", stdout.String(), err)
	}
	if res.Errors != 0 {
		return fmt.Errorf("%d decode errors", res.Errors)
	}
	total := res.Mix.Trace + res.Mix.Drop + res.Mix.Verdict
	fmt.Fprintf(w, "\n### Decoder throughput on one core\n\n")
	fmt.Fprintf(w, "%d events per run, %d runs, GOMAXPROCS=1, pinned to CPU %v; sample mix: %.0f%% traces, %.0f%% drops (%.0f%% to the world), %.0f%% allowed verdicts.\n\n",
		*decEvents, len(res.Runs), res.CPUs, pct(res.Mix.Trace, total), pct(res.Mix.Drop, total), pct(res.Mix.World, total), pct(res.Mix.Verdict, total))
	fmt.Fprintln(w, "| run | events/s | ns/event | allocs/event | bytes/event | GCs | GC pauses |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	var rates []float64
	for i, r := range res.Runs {
		rates = append(rates, r.PerSec)
		fmt.Fprintf(w, "| %d | %.0f | %.0f | %.1f | %.0f | %d | %.1f ms |\n", i+1, r.PerSec, 1e9/r.PerSec, r.AllocsPerEv, r.BytesPerEv, r.GCs, r.GCPauseTotal)
	}
	med, lo, hi := medianSpread(rates)
	verdict := "**met**"
	if med < 200_000 {
		verdict = "**not met**"
	}
	fmt.Fprintf(w, "\nMedian %.0f events/s (min %.0f, max %.0f, spread %.1f%%); goal ≥ 200,000 events/s: %s.\n",
		med, lo, hi, 100*(hi-lo)/med, verdict)
	return nil
}

func pct(a, b int) float64 { return 100 * float64(a) / float64(b) }

func medianSpread(v []float64) (med, lo, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

// ---- 2. events lost ----

type counters struct {
	at                 time.Time
	seen, lost, decErr uint64
	grpcSeen           uint64
	drops, policyDrops float64 // seta_drop_count_total: all, and ingress policy denials
	hubbleDrops        float64 // hubble_drop_total
	agentTicks         uint64  // utime+stime of the agent
}

func readCounters(ctx context.Context, st *lab.State) (counters, error) {
	n := st.Nodes[0]
	c := client.New(n.Socket, 10*time.Second)
	s, err := c.Status(ctx)
	if err != nil {
		return counters{}, err
	}
	if s.Hubble == nil {
		return counters{}, errors.New("the agent reports no Hubble status (is Hubble on?)")
	}
	k := counters{at: time.Now(), seen: s.Hubble.SeenFlows, lost: s.Hubble.EventsLost, decErr: s.Hubble.DecodeErrors}
	if k.grpcSeen, err = grpcSeen(ctx, n.HubbleSocket()); err != nil {
		return counters{}, err
	}
	m, err := lab.FetchMetrics(n)
	if err != nil {
		return counters{}, err
	}
	sc := bufio.NewScanner(bytes.NewReader(m))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, "seta_drop_count_total{"):
			k.drops += v
			if strings.Contains(line, `reason="Policy denied"`) && strings.Contains(line, `direction="ingress"`) {
				k.policyDrops += v
			}
		case strings.HasPrefix(line, "hubble_drop_total{"):
			k.hubbleDrops += v
		}
	}
	if k.agentTicks, err = procTicks(n.Agent.PID); err != nil {
		return counters{}, err
	}
	return k, nil
}

// procTicks is utime+stime of a process, in clock ticks.
func procTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st, nil
}

// procCtxSwitches sums the voluntary and involuntary context switches of
// a process's threads (threads that exited in between are not counted).
func procCtxSwitches(pid int) uint64 {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, _ := os.ReadDir(dir)
	var n uint64
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				x, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				n += x
			}
		}
	}
	return n
}

const clkTck = 100 // sysconf(_SC_CLK_TCK) on Linux

func grpcSeen(ctx context.Context, sock string) (uint64, error) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := observerpb.NewObserverClient(conn).ServerStatus(cctx, &observerpb.ServerStatusRequest{})
	if err != nil {
		return 0, fmt.Errorf("observer ServerStatus: %w", err)
	}
	return r.GetSeenFlows(), nil
}

var blastRE = regexp.MustCompile(`sent=(\d+) errors=(\d+) elapsed=(\S+) rate=([0-9.]+)/s`)

type lossRun struct {
	load                         loadSpec
	dur                          time.Duration
	sent, errs                   uint64
	achieved                     float64
	drops, policyDrops, hubDrops float64
	seen, grpcSeen, lost, decErr uint64
	cpu                          float64 // agent CPU, fraction of one core
	cpuSec                       float64 // agent CPU seconds over the run
	ctxsw                        uint64  // context switches of the agent's threads
}

// blast runs the senders in the pod, each pinned to its own CPU, and sums
// what they report.
func blast(ctx context.Context, ns, addr string, l loadSpec, dur time.Duration, r *lossRun) error {
	type res struct {
		out string
		err error
	}
	ch := make(chan res, l.senders)
	for i := 0; i < l.senders; i++ {
		cpu := (*blastCPU + i) % runtime.NumCPU()
		rate := l.rate / l.senders
		go func() {
			out, err := inNS(ctx, ns, "taskset", "-c", strconv.Itoa(cpu), abs("seta-nettool"), "blast", addr,
				"--rate", strconv.Itoa(rate), "--duration", dur.String())
			ch <- res{out, err}
		}()
	}
	var errs []error
	for i := 0; i < l.senders; i++ {
		x := <-ch
		if x.err != nil {
			errs = append(errs, fmt.Errorf("blast: %v: %s", x.err, x.out))
			continue
		}
		m := blastRE.FindStringSubmatch(x.out)
		if m == nil {
			errs = append(errs, fmt.Errorf("unexpected blast output %q", x.out))
			continue
		}
		sent, _ := strconv.ParseUint(m[1], 10, 64)
		e, _ := strconv.ParseUint(m[2], 10, 64)
		a, _ := strconv.ParseFloat(m[4], 64)
		r.sent, r.errs, r.achieved = r.sent+sent, r.errs+e, r.achieved+a
	}
	return errors.Join(errs...)
}

func lossOnce(ctx context.Context, st *lab.State, other *lab.Pod, addr string, l loadSpec, dur time.Duration) (lossRun, error) {
	r := lossRun{load: l, dur: dur}
	// Events from before the run may still wait in the event ring (the
	// reader polls it every monitor.PollInterval): let them be counted
	// before the run starts, not in it.
	c := client.New(st.Nodes[0].Socket, 10*time.Second)
	if err := waitFlowsSettled(ctx, c); err != nil {
		return r, err
	}
	k0, err := readCounters(ctx, st)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	tick0, err := procTicks(st.Nodes[0].Agent.PID)
	if err != nil {
		return r, err
	}
	cs0 := procCtxSwitches(st.Nodes[0].Agent.PID)
	if err := blast(ctx, other.NetNS, addr, l, dur, &r); err != nil {
		return r, err
	}
	// Let the agent drain the ring.
	if err := waitFlowsSettled(ctx, c); err != nil {
		return r, err
	}
	tick1, err := procTicks(st.Nodes[0].Agent.PID)
	if err != nil {
		return r, err
	}
	r.ctxsw = procCtxSwitches(st.Nodes[0].Agent.PID) - cs0
	wall := time.Since(t0)
	k1, err := readCounters(ctx, st)
	if err != nil {
		return r, err
	}
	r.cpuSec = float64(tick1-tick0) / clkTck
	r.cpu = r.cpuSec / wall.Seconds()
	r.drops, r.policyDrops, r.hubDrops = k1.drops-k0.drops, k1.policyDrops-k0.policyDrops, k1.hubbleDrops-k0.hubbleDrops
	r.seen, r.grpcSeen, r.lost, r.decErr = k1.seen-k0.seen, k1.grpcSeen-k0.grpcSeen, k1.lost-k0.lost, k1.decErr-k0.decErr
	return r, nil
}

// waitFlowsSettled waits (at most 15 s) until the agent's count of flows
// seen has not moved for 300 ms, six times the reader's poll interval.
func waitFlowsSettled(ctx context.Context, c *client.Client) error {
	last, stable := uint64(math.MaxUint64), 0
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && stable < 3; {
		s, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if s.Hubble.SeenFlows == last {
			stable++
		} else {
			stable, last = 0, s.Hubble.SeenFlows
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

func lossBench(ctx context.Context, w io.Writer, st *lab.State, other *lab.Pod, addr string) error {
	highs, _ := parseRates(*highRates)
	type plan struct {
		load loadSpec
		dur  time.Duration
	}
	var plans []plan
	for i := 0; i < *lossRuns; i++ {
		plans = append(plans, plan{loadSpec{*lossRate, 1}, *lossTime})
	}
	for _, h := range highs {
		plans = append(plans, plan{h, *highTime})
	}
	var runs []lossRun
	for i, p := range plans {
		fmt.Fprintf(os.Stderr, "hubble bench: loss run %d/%d: %d/s (%d sender(s)) for %v\n", i+1, len(plans), p.load.rate, p.load.senders, p.dur)
		r, err := lossOnce(ctx, st, other, addr, p.load, p.dur)
		if err != nil {
			return err
		}
		runs = append(runs, r)
		time.Sleep(time.Second)
	}
	fmt.Fprintf(w, "\n### Events lost at a sustained event rate\n\n")
	fmt.Fprintf(w, "UDP from \"other\" to \"web\" (`seta-nettool blast`, each sender pinned to its own CPU from CPU %d on), which a policy admits only from app=client: every datagram is a policy drop event. Deltas over each run; the agent has the lab's defaults (Hubble on, medium aggregation, Hubble metrics on) and is not pinned. Agent CPU is its utime+stime from the start of the blast until the flows seen stop moving, per wall second (100%% = one core). The first %d rows are the goal's runs; the rest look for where losses begin.\n\n", *blastCPU, *lossRuns)
	fmt.Fprintln(w, "| target rate | senders | duration | sent | sent/s | datapath drops | flows seen (API / gRPC) | hubble_drop_total | ring losses | decode errors | drops − seen − lost | agent CPU | agent µs CPU/event | agent ctx switches/event |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	goalLost := uint64(0)
	mismatch := false
	for i, r := range runs {
		fmt.Fprintf(w, "| %d/s | %d | %v | %d | %.0f | %.0f | %d / %d | %.0f | %d | %d | %.0f | %.1f%% | %.1f | %.2f |\n", r.load.rate, r.load.senders, r.dur, r.sent, r.achieved, r.drops,
			r.seen, r.grpcSeen, r.hubDrops, r.lost, r.decErr, r.drops-float64(r.seen)-float64(r.lost), 100*r.cpu,
			r.cpuSec*1e6/float64(max(r.seen, 1)), float64(r.ctxsw)/float64(max(r.seen, 1)))
		if i < *lossRuns {
			goalLost += r.lost
			if float64(r.seen) != r.drops || r.drops != float64(r.sent) || r.grpcSeen != r.seen {
				mismatch = true
			}
		}
	}
	verdict := "**met**"
	if goalLost > 0 {
		verdict = fmt.Sprintf("**not met** (%d lost)", goalLost)
	}
	fmt.Fprintf(w, "\nGoal 0 events lost at %d/s for %v: %s.", *lossRate, *lossTime, verdict)
	if mismatch {
		fmt.Fprintf(w, " Flows seen, datapath drops and datagrams sent differ in at least one of those runs (see the table).\n")
	} else {
		fmt.Fprintf(w, " In each of those runs, datagrams sent = datapath drops = flows seen.\n")
	}
	return nil
}

// loadSpec is a total rate and the number of senders sharing it (each
// pinned to its own CPU, from --blast-cpu on).
type loadSpec struct {
	rate, senders int
}

// parseRates reads "RATE[xSENDERS],...".
func parseRates(s string) ([]loadSpec, error) {
	var out []loadSpec
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, x, hasX := strings.Cut(f, "x")
		n, err := strconv.Atoi(r)
		if err != nil || n < 1 || n > 1_000_000 {
			return nil, fmt.Errorf("--loss-high-rates: %q is not a rate from 1 to 1,000,000", f)
		}
		l := loadSpec{rate: n, senders: 1}
		if hasX {
			if l.senders, err = strconv.Atoi(x); err != nil || l.senders < 1 || l.senders > 4 {
				return nil, fmt.Errorf("--loss-high-rates: %q: senders must be 1 to 4", f)
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// ---- 3. TCP_RR with observability on and off ----

type mode struct {
	name string
	args []string
	desc string
	// What the agent must report with these flags.
	hubble, trace, metrics bool
	agg                    string
}

var modes = map[string]mode{
	// The lab always passes --prometheus-serve-addr and --hubble-metrics;
	// the flag parser takes the last value of a string flag, but appends
	// to a list flag (a second --hubble-metrics= adds nothing), so "off"
	// turns the metrics server off instead (without it no flow metrics
	// are computed; without Hubble no flows are decoded anyway).
	"off": {"off", []string{"--enable-hubble=false", "--bpf-events-trace-enabled=false", "--prometheus-serve-addr="},
		"no Hubble, no trace events, no metrics server", false, false, false, "medium"},
	"on": {"on", nil, "defaults: Hubble, trace events, medium aggregation, Hubble metrics", true, true, true, "medium"},
	"none": {"none", []string{"--monitor-aggregation=none"}, "as on, monitor aggregation none (every forwarded packet traced)",
		true, true, true, "none"},
	// Not in the default run; they split "on" into its datapath and agent
	// parts.
	"trace": {"trace", []string{"--enable-hubble=false", "--prometheus-serve-addr="},
		"datapath trace events on (medium aggregation), no Hubble, no metrics server", false, true, false, "medium"},
	"agent": {"agent", []string{"--bpf-events-trace-enabled=false"},
		"Hubble and metrics on, datapath trace events off", true, false, true, "medium"},
}

func parseModes(s string) ([]mode, error) {
	var out []mode
	for _, f := range strings.Split(s, ",") {
		m, ok := modes[strings.TrimSpace(f)]
		if !ok {
			return nil, fmt.Errorf("--rr-modes: unknown mode %q (off, on, none, trace, agent)", f)
		}
		out = append(out, m)
	}
	return out, nil
}

// restartAgent stops the lab's agent (the datapath keeps forwarding) and
// starts it again with the mode's flags, then checks the configuration it
// reports.
func restartAgent(ctx context.Context, m mode) (*lab.State, error) {
	st, err := lab.Load(labName)
	if err != nil {
		return nil, err
	}
	if err := st.Nodes[0].Agent.Stop(10 * time.Second); err != nil {
		return nil, err
	}
	st, err = lab.Up(ctx, lab.UpOptions{Name: labName, Nodes: 1, AgentBin: abs("seta-agent"), CNIBinDir: abs(""), AgentArgs: m.args, Out: io.Discard})
	if err != nil {
		return nil, err
	}
	cfg, err := client.New(st.Nodes[0].Socket, 10*time.Second).Config(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.EnableHubble != m.hubble || cfg.BPFEventsTraceEnabled != m.trace || (cfg.PrometheusServeAddr != "") != m.metrics ||
		cfg.MonitorAggregation != m.agg || len(cfg.HubbleMetrics) == 0 {
		return nil, fmt.Errorf("mode %s: the agent runs with enableHubble=%v bpfEventsTraceEnabled=%v prometheusServeAddr=%q monitorAggregation=%s hubbleMetrics=%v",
			m.name, cfg.EnableHubble, cfg.BPFEventsTraceEnabled, cfg.PrometheusServeAddr, cfg.MonitorAggregation, cfg.HubbleMetrics)
	}
	return st, nil
}

func rrBench(ctx context.Context, w io.Writer, cli *lab.Pod, addr string) error {
	ms, _ := parseModes(*rrModes)
	res := map[string][]float64{}
	pooled := map[string][]float64{}
	events := map[string][]uint64{}
	// One measurement that is thrown away: the first after the loss runs
	// (or the lab's start) is slower in every mode.
	if _, err := medianRR(ctx, cli.NetNS, addr); err != nil {
		return err
	}
	// Round r runs the modes rotated by r, so that each mode takes each
	// place in a round equally often (over a multiple of len(modes)
	// rounds): on this VM the place in the round moves TCP_RR by a few
	// percent, as much as the modes differ.
	orders := make([][]mode, *rrRounds)
	for round := range orders {
		k := round % len(ms)
		orders[round] = append(slices.Clone(ms[k:]), ms[:k]...)
	}
	for round := 0; round < *rrRounds; round++ {
		for _, m := range orders[round] {
			fmt.Fprintf(os.Stderr, "hubble bench: rr round %d/%d, mode %s\n", round+1, *rrRounds, m.name)
			st, err := restartAgent(ctx, m)
			if err != nil {
				return err
			}
			if err := waitTCP(ctx, cli.NetNS, addr); err != nil {
				return err
			}
			// Let the restarted agent settle (endpoint restore, GC).
			time.Sleep(time.Second)
			var seen0 uint64
			c := client.New(st.Nodes[0].Socket, 10*time.Second)
			if s, err := c.Status(ctx); err == nil && s.Hubble != nil {
				seen0 = s.Hubble.SeenFlows
			}
			r, all, err := rrSamples(ctx, cli.NetNS, addr)
			if err != nil {
				return err
			}
			var seen uint64
			if s, err := c.Status(ctx); err == nil && s.Hubble != nil {
				seen = s.Hubble.SeenFlows - seen0
			}
			res[m.name] = append(res[m.name], r)
			pooled[m.name] = append(pooled[m.name], all...)
			events[m.name] = append(events[m.name], seen)
		}
	}
	fmt.Fprintf(w, "\n### TCP_RR with observability on and off\n\n")
	pin := "not pinned"
	if *serveCPU >= 0 {
		pin = fmt.Sprintf("pinned to CPU %d", *serveCPU)
	}
	fmt.Fprintf(w, "`seta-nettool rr` from \"client\" (pinned to CPU %d) to `seta-nettool serve` in \"web\" (%s), one connection, %v per measurement, median of %d per mode and round; the agent (not pinned) is restarted between modes; %d rounds of the modes %s, the order rotated by one each round, after one warm-up measurement that is not counted. \"flows\" are the flows the agent decoded during the measurements.\n\n",
		*rrCPU, pin, *rrTime, *rrRepeats, *rrRounds, *rrModes)
	for _, m := range ms {
		flags := "no extra agent flags"
		if len(m.args) > 0 {
			flags = "`" + strings.Join(m.args, " ") + "`"
		}
		fmt.Fprintf(w, "- %s: %s (%s)\n", m.name, m.desc, flags)
	}
	fmt.Fprintln(w)
	hdr, sep := "| round | order |", "|---|---|"
	for _, m := range ms {
		hdr += fmt.Sprintf(" %s RR/s | %s flows |", m.name, m.name)
		sep += "---|---|"
	}
	var others []string
	if _, ok := res["off"]; ok {
		for _, m := range ms {
			if m.name != "off" {
				others = append(others, m.name)
				hdr += fmt.Sprintf(" %s/off |", m.name)
				sep += "---|"
			}
		}
	}
	fmt.Fprintln(w, hdr)
	fmt.Fprintln(w, sep)
	ratios := map[string][]float64{}
	for round := 0; round < *rrRounds; round++ {
		var names []string
		for _, m := range orders[round] {
			names = append(names, m.name)
		}
		row := fmt.Sprintf("| %d | %s |", round+1, strings.Join(names, ", "))
		for _, m := range ms {
			row += fmt.Sprintf(" %.0f | %d |", res[m.name][round], events[m.name][round])
		}
		for _, o := range others {
			q := res[o][round] / res["off"][round]
			ratios[o] = append(ratios[o], q)
			row += fmt.Sprintf(" %.3f |", q)
		}
		fmt.Fprintln(w, row)
	}
	fmt.Fprintln(w)
	for _, o := range others {
		med, lo, hi := medianSpread(ratios[o])
		pm, _, _ := medianSpread(pooled[o])
		po, _, _ := medianSpread(pooled["off"])
		line := fmt.Sprintf("- %s/off: median of the rounds' ratios %.3f (min %.3f, max %.3f); median of all %d %s measurements over median of all %d off measurements %.0f/%.0f = %.3f",
			o, med, lo, hi, len(pooled[o]), o, len(pooled["off"]), pm, po, pm/po)
		if o == "on" {
			v := "**met**"
			if med < 0.97 {
				v = "**not met**"
			}
			line += fmt.Sprintf("; goal ≥ 0.97: %s", v)
		}
		fmt.Fprintln(w, line+".")
	}
	return nil
}

// ---- helpers ----

func inNS(ctx context.Context, ns string, name string, args ...string) (string, error) {
	return nsutil.Output(nsutil.Path(ns), exec.CommandContext(ctx, name, args...))
}

func waitTCP(ctx context.Context, ns, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := inNS(ctx, ns, abs("seta-nettool"), "tcp", addr, "--timeout", "200ms")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s unreachable from %s: %w", addr, ns, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var rateRE = regexp.MustCompile(`rate=([0-9.]+)/s`)

func medianRR(ctx context.Context, ns, addr string) (float64, error) {
	med, _, err := rrSamples(ctx, ns, addr)
	return med, err
}

// rrSamples runs --rr-repeats measurements and returns their median and
// every rate.
func rrSamples(ctx context.Context, ns, addr string) (float64, []float64, error) {
	var rates []float64
	for i := 0; i < *rrRepeats; i++ {
		out, err := inNS(ctx, ns, "taskset", "-c", strconv.Itoa(*rrCPU), abs("seta-nettool"), "rr", addr, "--count", "10000000", "--duration", rrTime.String())
		if err != nil {
			return 0, nil, fmt.Errorf("%v: %s", err, out)
		}
		m := rateRE.FindStringSubmatch(out)
		if m == nil {
			return 0, nil, fmt.Errorf("unexpected rr output %q", out)
		}
		r, _ := strconv.ParseFloat(m[1], 64)
		rates = append(rates, r)
	}
	fmt.Fprintf(os.Stderr, "hubble bench: rr %v\n", rates)
	med, _, _ := medianSpread(rates)
	return med, rates, nil
}
