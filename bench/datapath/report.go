package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// results is everything a run measured; results.json is this.
type results struct {
	// Version 2: many short rounds, warm-up and cost rounds, pinning per
	// workload, intervals. 0 (absent): the first harness, which ran a few
	// long rounds with one pinning for every workload.
	Version     int       `json:"version"`
	Date        time.Time `json:"date"`
	Commit      string    `json:"commit"`
	Command     string    `json:"command"`
	Preliminary bool      `json:"preliminary"`
	Remark      string    `json:"remark,omitempty"`
	Machine     machine   `json:"machine"`
	Rounds      int       `json:"rounds"`
	Warmup      int       `json:"warmupRounds"`
	CostRounds  int       `json:"costRounds"`
	Parts       int       `json:"parts"`
	Duration    string    `json:"duration"`
	// CPUs of the request/response clients and server, and of TCP_STREAM's.
	ClientCPU       int          `json:"clientCPU"`
	ServerCPU       int          `json:"serverCPU"`
	StreamClientCPU int          `json:"streamClientCPU"`
	StreamServerCPU int          `json:"streamServerCPU"`
	Rules           int          `json:"policyRules"`
	Workloads       []string     `json:"workloads"`
	Topologies      []*topology  `json:"topologies"`
	Samples         []sample     `json:"samples"`
	Summary         []summary    `json:"summary"`
	Ratios          []ratio      `json:"ratios"`
	Goals           []goal       `json:"goals"`
	BPF             []bpfSummary `json:"bpfCost,omitempty"`
}

// resultsVersion is the Version this harness writes.
const resultsVersion = 2

type machine struct {
	CPUs     int     `json:"cpus"`
	CPUModel string  `json:"cpuModel"`
	MemGiB   float64 `json:"memGiB"`
	Kernel   string  `json:"kernel"`
	LoadAvg  string  `json:"loadAverageAtStart"`
	// BusyBefore is the share of CPU time busy in the 2 s before the
	// run (-1 if it could not be read): how quiet the machine was.
	BusyBefore float64 `json:"busyBeforeStart"`
}

// summary is one workload on one topology over the rate rounds.
type summary struct {
	Workload string  `json:"workload"`
	Topology string  `json:"topology"`
	Median   float64 `json:"median"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	// Spread is (max-min)/median.
	Spread  float64 `json:"spread"`
	CPUCost float64 `json:"cpuCostMedian"`
	// ProcCost is the client's and the server's own CPU time per unit
	// (sample.ProcCost), median; 0 in results of the first harness.
	ProcCost float64 `json:"procCostMedian,omitempty"`
	// OwnCPU is the share of their CPU the client and the server had
	// when they shared one (median): below 1, something else ran there.
	OwnCPU float64 `json:"ownCPUShare,omitempty"`
	Lost   int     `json:"lostTotal,omitempty"`
	Flows  float64 `json:"flowsMedian,omitempty"`
	// ForeignStats counts the rounds in which another process had the BPF
	// run statistics on (their rates carry the statistics' overhead).
	ForeignStats int `json:"foreignStatsRounds,omitempty"`
}

// ratio is Num/Den for one workload, taken within each rate round: of the
// rates, and of the CPU costs.
type ratio struct {
	Workload string    `json:"workload"`
	Num      string    `json:"num"`
	Den      string    `json:"den"`
	PerRound []float64 `json:"perRound"`
	Rate     estimate  `json:"rate"`
	// RatioOfSums is Num's mean rate over Den's in the same rounds: an
	// estimate that weighs fast rounds more, as a cross-check.
	RatioOfSums float64 `json:"ratioOfSums"`
	// Of the machine's CPU per transaction, and of the client's and
	// server's own.
	CPUPerRound  []float64 `json:"cpuPerRound"`
	CPU          estimate  `json:"cpu"`
	ProcPerRound []float64 `json:"procPerRound,omitempty"`
	Proc         estimate  `json:"proc"`
}

// goal is one of issue 6's goals, judged on the median of the per-round
// ratios of the rates.
type goal struct {
	Text   string  `json:"text"`
	Ratio  ratio   `json:"ratio"`
	Bound  float64 `json:"bound"`
	Strict bool    `json:"strict"` // > rather than ≥
	Met    bool    `json:"met"`
	// Decided: the confidence interval of the median and the median of
	// every part of the run are on the same side of the bound.
	Decided bool `json:"decided"`
}

func (g goal) ok(v float64) bool {
	if g.Strict {
		return v > g.Bound
	}
	return v >= g.Bound
}

func newResults(p plan) *results {
	return &results{
		Version: resultsVersion, Date: time.Now().UTC(), Commit: commit(), Command: shellJoin(os.Args), Preliminary: *prelim, Remark: *remark,
		Machine: machineInfo(), Rounds: p.rounds, Warmup: p.warmup, CostRounds: p.costRounds, Parts: p.parts, Duration: p.duration.String(),
		ClientCPU: *clientCPU, ServerCPU: *serverCPU, StreamClientCPU: *streamCCPU, StreamServerCPU: *streamSCPU,
		Rules: *ruleCount, Workloads: p.workloads,
	}
}

// planOf is the plan a stored run followed, as far as the statistics need
// it; results of the first harness (version 0) pinned every workload alike
// and had no parts.
func planOf(r *results) plan {
	if r.Version == 0 {
		r.StreamClientCPU, r.StreamServerCPU = r.ClientCPU, r.ServerCPU
		r.Parts = 1
	}
	p := plan{workloads: r.Workloads, rounds: r.Rounds, warmup: r.Warmup, costRounds: r.CostRounds, parts: max(1, r.Parts)}
	for _, t := range r.Topologies {
		p.topologies = append(p.topologies, t.ID)
	}
	return p
}

// shellJoin joins args as a shell would need them typed.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`!*?;&|<>()[]{}#~") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

func commit() string {
	b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(b))
	if b, err := exec.Command("git", "status", "--porcelain", "--", "pkg", "cmd", "bpf", "bench", "go.mod").Output(); err == nil && len(bytes.TrimSpace(b)) > 0 {
		c += " plus the working tree"
	}
	return c
}

func machineInfo() machine {
	m := machine{CPUs: runtime.NumCPU(), BusyBefore: busyFraction(2 * time.Second)}
	if m.BusyBefore != m.BusyBefore { // NaN: /proc/stat unreadable
		m.BusyBefore = -1
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(string(b), "MemTotal: %f kB", &kb)
		m.MemGiB = kb / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// ratioPairs are the ratios reported, numerator over denominator.
var ratioPairs = [][2]string{{"f", "a"}, {"c", "f"}, {"b", "a"}, {"c", "a"}, {"d", "a"}, {"e", "a"}, {"d", "c"}, {"e", "c"}, {"c", "b"}, {"e", "b"}}

// summarize computes the summaries, the per-round ratios, the goals and
// the programs' cost, from the samples.
func (r *results) summarize(p plan) {
	rate := map[[2]string][]sample{}  // {workload, topology} → rate samples in round order
	byRound := map[[3]string]sample{} // {workload, topology, round}
	cost := map[[2]string][]sample{}
	for _, s := range r.Samples {
		k := [2]string{s.Workload, s.Topology}
		switch s.Kind {
		case kindRate:
			rate[k] = append(rate[k], s)
			byRound[[3]string{s.Workload, s.Topology, fmt.Sprint(s.Round)}] = s
		case kindCost:
			cost[k] = append(cost[k], s)
		}
	}
	r.Summary, r.Ratios, r.Goals, r.BPF = nil, nil, nil, nil
	for _, w := range p.workloads {
		for _, id := range p.topologies {
			if sm, ok := summarizeRates(w, id, rate[[2]string{w, id}], r.oneCPU(w)); ok {
				r.Summary = append(r.Summary, sm)
			}
			if b, ok := summarizeBPF(w, id, cost[[2]string{w, id}]); ok {
				r.BPF = append(r.BPF, b)
			}
		}
		for _, pr := range ratioPairs {
			if q, ok := pairRatio(w, pr, r.Rounds, byRound, p.parts); ok {
				r.Ratios = append(r.Ratios, q)
			}
		}
	}
	r.judge()
}

// oneCPU tells whether the client and the server of workload w shared
// one CPU.
func (r *results) oneCPU(w string) bool {
	c, s := r.ClientCPU, r.ServerCPU
	if w == "TCP_STREAM" {
		c, s = r.StreamClientCPU, r.StreamServerCPU
	}
	return c >= 0 && c == s
}

// summarizeRates summarizes the rate samples of one workload on one
// topology; oneCPU: client and server shared a CPU.
func summarizeRates(w, id string, samples []sample, oneCPU bool) (summary, bool) {
	sm := summary{Workload: w, Topology: id}
	if len(samples) == 0 {
		return sm, false
	}
	var v, cpu, proc, share, flows []float64
	for _, s := range samples {
		v, cpu = append(v, s.Value), append(cpu, s.CPUCost)
		if s.ProcCost > 0 {
			proc = append(proc, s.ProcCost)
		}
		if oneCPU && s.ProcCPUns > 0 && s.Seconds > 0 {
			share = append(share, float64(s.ProcCPUns)/1e9/s.Seconds)
		}
		sm.Lost += s.Lost
		if s.Flows != nil {
			flows = append(flows, float64(*s.Flows))
		}
		if s.ForeignStatsRuns > 0 {
			sm.ForeignStats++
		}
	}
	sm.Median, sm.Min, sm.Max = medianMinMax(v)
	sm.Spread = (sm.Max - sm.Min) / sm.Median
	sm.CPUCost, _, _ = medianMinMax(cpu)
	if len(proc) > 0 {
		sm.ProcCost, _, _ = medianMinMax(proc)
	}
	if len(share) > 0 {
		sm.OwnCPU, _, _ = medianMinMax(share)
	}
	if len(flows) > 0 {
		sm.Flows, _, _ = medianMinMax(flows)
	}
	return sm, true
}

// pairRatio is pr[0]/pr[1] of workload w in every round 1..rounds that
// has both.
func pairRatio(w string, pr [2]string, rounds int, byRound map[[3]string]sample, parts int) (ratio, bool) {
	q := ratio{Workload: w, Num: pr[0], Den: pr[1]}
	var sumN, sumD float64
	for round := 1; round <= rounds; round++ {
		n, okN := byRound[[3]string{w, pr[0], fmt.Sprint(round)}]
		d, okD := byRound[[3]string{w, pr[1], fmt.Sprint(round)}]
		if !okN || !okD || d.Value <= 0 {
			continue
		}
		q.PerRound = append(q.PerRound, n.Value/d.Value)
		sumN, sumD = sumN+n.Value, sumD+d.Value
		if d.CPUCost > 0 {
			q.CPUPerRound = append(q.CPUPerRound, n.CPUCost/d.CPUCost)
		}
		if n.ProcCost > 0 && d.ProcCost > 0 {
			q.ProcPerRound = append(q.ProcPerRound, n.ProcCost/d.ProcCost)
		}
	}
	if len(q.PerRound) == 0 {
		return q, false
	}
	q.Rate = estimateOf(q.PerRound, parts)
	q.RatioOfSums = sumN / sumD
	if len(q.CPUPerRound) > 0 {
		q.CPU = estimateOf(q.CPUPerRound, parts)
	}
	if len(q.ProcPerRound) > 0 {
		q.Proc = estimateOf(q.ProcPerRound, parts)
	}
	return q, true
}

// cOverA are issue 6's goals for Seta without policy against the bare veth.
var cOverA = map[string]float64{"TCP_RR": 0.95, "TCP_CRR": 0.90, "TCP_STREAM": 0.95, "UDP_RR": 0.95}

// judge checks the goals of issue 6 against the ratios.
func (r *results) judge() {
	for _, q := range r.Ratios {
		var g goal
		switch pair := q.Num + "/" + q.Den; pair {
		case "c/a":
			g = goal{Text: fmt.Sprintf("%s (c)/(a) ≥ %.2f", q.Workload, cOverA[q.Workload]), Bound: cOverA[q.Workload]}
		case "d/c", "e/c":
			g = goal{Text: fmt.Sprintf("%s (%s)/(c) ≥ 0.97 (within 3%% of (c))", q.Workload, q.Num), Bound: 0.97}
		case "c/b":
			g = goal{Text: fmt.Sprintf("%s (c)/(b) > 1 (Seta ahead of bridge+iptables)", q.Workload), Bound: 1, Strict: true}
		default:
			continue
		}
		g.Ratio = q
		g.Met = g.ok(q.Rate.Median)
		g.Decided = q.Rate.side(g.ok) != 0
		r.Goals = append(r.Goals, g)
	}
}

func (r *results) topo(id string) *topology {
	for _, t := range r.Topologies {
		if t.ID == id {
			return t
		}
	}
	return nil
}

func (r *results) summaryOf(w, id string) (summary, bool) {
	for _, s := range r.Summary {
		if s.Workload == w && s.Topology == id {
			return s, true
		}
	}
	return summary{}, false
}

func (r *results) ratioOf(w, num, den string) (ratio, bool) {
	for _, q := range r.Ratios {
		if q.Workload == w && q.Num == num && q.Den == den {
			return q, true
		}
	}
	return ratio{}, false
}

// Markers of the datapath section of RESULTS.md.
const (
	beginMarker = "<!-- datapath:begin -->"
	endMarker   = "<!-- datapath:end -->"
)

// fmtValue prints a workload's value.
func fmtValue(w string, v float64) string {
	if w == "TCP_STREAM" {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// markdown renders the section, markers included.
func markdown(r *results) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("%s\n## Datapath speed: Seta against a bare veth pair and bridge+iptables (issue 6)\n\n", beginMarker)
	if r.Preliminary {
		w("> **Preliminary.** Measured on the shared 2-core machine while other jobs were running (busy %.0f%% before the start): the numbers are noise and prove only that the harness works. Rerun on a quiet machine for the record.\n\n", 100*r.Machine.BusyBefore)
	}
	w("Command (as root, from the repository root):\n\n```sh\ngo build -o bin/ ./cmd/... ./bench/datapath\n%s\n```\n\n", r.Command)
	if r.Remark != "" {
		w("%s\n\n", r.Remark)
	}
	w("Measured %s at commit %s; %d CPUs (%s), %.0f GiB, Linux %s; load average at the start %s; CPU busy in the 2 s before the start %.1f%%. Raw samples: `bench/datapath/results.json`.\n\n",
		r.Date.Format("2006-01-02"), r.Commit, r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemGiB, r.Machine.Kernel, r.Machine.LoadAvg, 100*r.Machine.BusyBefore)
	w("Topologies, each in namespaces of its own, the same layout in each (a client pod and a server pod on one node, IPv4):\n\n")
	for _, t := range r.Topologies {
		w("- **(%s) %s**: %s; MTU %d", t.ID, t.Name, t.Desc, t.MTU)
		if len(t.AgentArgs) > 0 {
			w("; agent flags `%s`", strings.Join(t.AgentArgs, " "))
		}
		w(".")
		if len(t.Checks) > 0 {
			w(" Checked: %s.", strings.Join(t.Checks, "; "))
		}
		w("\n")
	}
	w("\nWorkloads: TCP_RR, TCP_CRR and UDP_RR are `seta-nettool perf` against `seta-nettool perf-serve` (1-byte request and response, blocking sockets, plain read/write; TCP_CRR: connect, one exchange, the server closes first); TCP_STREAM is iperf3, one stream, client to server, `-t %s`. ",
		strings.TrimSuffix(r.Duration, "s"))
	w("%s ", pinningText(r))
	w("In the Seta topologies both run in the lab node's cgroup, as pod processes do, so Seta's socket-level hooks apply. ")
	w("%s\n\n", methodText(r))
	rateTables(&b, r)
	cpuTables(&b, r)
	bpfTable(&b, r)
	goalList(&b, r)
	if *notesFile != "" {
		if notes, err := os.ReadFile(*notesFile); err == nil && len(bytes.TrimSpace(notes)) > 0 {
			w("\n%s\n", strings.TrimSpace(string(notes)))
		}
	}
	w("%s\n", endMarker)
	return b.String()
}

// methodText says how the rounds ran and what the intervals mean.
func methodText(r *results) string {
	ids := strings.Join(topoIDs(r), ", ")
	if r.Version == 0 {
		return fmt.Sprintf("%d round(s) of %s per measurement after one unrecorded warm-up run of each; a round runs each workload on every topology back to back, in the order %s, reversed every other round. Ratios are taken within a round, pair by pair; the tables give the median over the rounds and the range (min–max).",
			r.Rounds, r.Duration, ids)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d rounds of %s per measurement, after %d warm-up round(s) (recorded in the JSON, not used); a round runs each workload on every topology back to back, in the order %s, reversed every other round. ",
		r.Rounds, r.Duration, r.Warmup, ids)
	b.WriteString("Every ratio is taken within a round, pair by pair, so that drifts of the machine slower than a round cancel; the tables give the median of the per-round ratios and, in brackets, its 95 % confidence interval (distribution-free: the k-th smallest and largest of the n per-round ratios, k from the binomial distribution; it assumes only that the rounds are independent; with fewer than 6 rounds, the range in parentheses instead). ")
	if r.Parts > 1 {
		fmt.Fprintf(&b, "The rounds are also cut into %d consecutive parts (%s), repeats of the measurement within the run; ", r.Parts, partRanges(r.Rounds, r.Parts))
		b.WriteString("a goal is **decided** when the interval and the median of every part lie on the same side of its bound. ")
	} else {
		b.WriteString("A goal is **decided** when the interval lies on one side of its bound. ")
	}
	if r.CostRounds > 0 {
		fmt.Fprintf(&b, "The programs' cost comes from %d further rounds of the Seta topologies alone, spread through the run, with the kernel's BPF run statistics on (off in every other round: they cost two clock reads per program run).", r.CostRounds)
	}
	return strings.TrimSpace(b.String())
}

// partRanges names the rounds of each part: "1–10, 11–20, 21–30".
func partRanges(rounds, parts int) string {
	idx := make([]float64, rounds)
	for i := range idx {
		idx[i] = float64(i + 1)
	}
	var out []string
	for _, p := range splitParts(idx, parts) {
		out = append(out, fmt.Sprintf("%.0f–%.0f", p[0], p[len(p)-1]))
	}
	return strings.Join(out, ", ")
}

// fmtEstimate prints a median with its interval: [lo–hi] for a confidence
// interval, (lo–hi) for a range.
func fmtEstimate(e estimate) string {
	if e.CI {
		return fmt.Sprintf("%.3f [%.3f–%.3f]", e.Median, e.Lo, e.Hi)
	}
	return fmt.Sprintf("%.3f (%.3f–%.3f)", e.Median, e.Lo, e.Hi)
}

// pairsOf are the ratio pairs whose topologies both ran.
func pairsOf(r *results) [][2]string {
	var pairs [][2]string
	for _, pr := range ratioPairs {
		if r.topo(pr[0]) != nil && r.topo(pr[1]) != nil {
			pairs = append(pairs, pr)
		}
	}
	return pairs
}

// rateTables are the rates and their ratios.
func rateTables(b *strings.Builder, r *results) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("| workload | unit |")
	for _, t := range r.Topologies {
		w(" (%s) %s |", t.ID, t.Name)
	}
	w("\n|---|---|%s\n", strings.Repeat("---|", len(r.Topologies)))
	for _, wl := range r.Workloads {
		w("| %s | %s |", wl, workloads[wl].Unit)
		for _, t := range r.Topologies {
			if s, ok := r.summaryOf(wl, t.ID); ok {
				w(" %s (%s–%s)", fmtValue(wl, s.Median), fmtValue(wl, s.Min), fmtValue(wl, s.Max))
				if s.Lost > 0 {
					w(", %d lost", s.Lost)
				}
			}
			w(" |")
		}
		w("\n")
	}
	var shares []string
	for _, wl := range r.Workloads {
		var ts []string
		for _, t := range r.Topologies {
			if s, ok := r.summaryOf(wl, t.ID); ok && s.OwnCPU > 0 {
				ts = append(ts, fmt.Sprintf("(%s) %.0f %%", t.ID, 100*min(s.OwnCPU, 1)))
			}
		}
		if len(ts) > 0 {
			shares = append(shares, wl+" "+strings.Join(ts, ", "))
		}
	}
	if len(shares) > 0 {
		w("\nShare of their one CPU the client and the server had (their run time over the measurement's, median over the rounds; below 100 %%, the CPU was idle at times or something else ran there: ksoftirqd, an agent, another user of the machine): %s.\n", strings.Join(shares, "; "))
	}
	ratioTable(b, r, "\nRatios of the rates within each round (median [95 % CI]):", func(q ratio) estimate { return q.Rate })
}

// ratioTable is one table of per-round ratios.
func ratioTable(b *strings.Builder, r *results, title string, of func(ratio) estimate) {
	pairs := pairsOf(r)
	measured := false
	for _, q := range r.Ratios {
		measured = measured || of(q).N > 0
	}
	if len(pairs) == 0 || !measured {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("%s\n\n| workload |", title)
	for _, pr := range pairs {
		w(" (%s)/(%s) |", pr[0], pr[1])
	}
	w("\n|---|%s\n", strings.Repeat("---|", len(pairs)))
	for _, wl := range r.Workloads {
		w("| %s |", wl)
		for _, pr := range pairs {
			if q, ok := r.ratioOf(wl, pr[0], pr[1]); ok && of(q).N > 0 {
				w(" %s |", fmtEstimate(of(q)))
			} else {
				w(" |")
			}
		}
		w("\n")
	}
}

// cpuTables are the CPU costs, their ratios and Hubble's flows.
func cpuTables(b *strings.Builder, r *results) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	proc := r.Version > 0
	w("\nCPU cost per transaction (per GB for TCP_STREAM), median over the rounds: busy jiffies of the whole machine (both CPUs; user, system, irq, softirq and steal, from the first line of /proc/stat) from just before the client starts to just after it exits. It includes everything else the machine did meanwhile (the agents, other users of a shared machine), and the client's start and exit.")
	if proc {
		w(" In parentheses: the run time of the client and the server processes themselves (their CPU clocks, ns precision). This kernel charges interrupt and softirq time to the task it interrupts (no CONFIG_IRQ_TIME_ACCOUNTING), so this includes the packet processing done in their context, all of it when both run on one CPU; it leaves out the agents, the other processes and the time the hypervisor stole, and so does not change when something else runs.")
	}
	w("\n\n| workload | unit |")
	for _, t := range r.Topologies {
		w(" (%s) |", t.ID)
	}
	w("\n|---|---|%s\n", strings.Repeat("---|", len(r.Topologies)))
	for _, wl := range r.Workloads {
		w("| %s | %s |", wl, workloads[wl].CPUUnit)
		for _, t := range r.Topologies {
			s, ok := r.summaryOf(wl, t.ID)
			switch {
			case !ok:
				w(" |")
			case proc && s.ProcCost > 0:
				w(" %.1f (%.1f) |", s.CPUCost, s.ProcCost)
			default:
				w(" %.1f |", s.CPUCost)
			}
		}
		w("\n")
	}
	if proc {
		ratioTable(b, r, "\nRatios of the client's and server's own CPU per transaction (per GB) within each round (median [95 % CI]; above 1: the first spends more CPU for the same work):", func(q ratio) estimate { return q.Proc })
		ratioTable(b, r, "\nThe same for the whole machine's busy time:", func(q ratio) estimate { return q.CPU })
	}
	if t := r.topo("e"); t != nil {
		var parts []string
		for _, wl := range r.Workloads {
			if s, ok := r.summaryOf(wl, "e"); ok {
				parts = append(parts, fmt.Sprintf("%s %.0f", wl, s.Flows))
			}
		}
		w("\nFlows Hubble decoded per measurement in (e) (median): %s.\n", strings.Join(parts, ", "))
	}
}

// bpfTable is the cost of the Seta topologies' programs.
func bpfTable(b *strings.Builder, r *results) {
	if len(r.BPF) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	w("\nSeta's programs, from the kernel's BPF run statistics in the cost rounds (the lab node's own programs: the tc programs of the links pinned under its bpffs `links` and `node-links`, the socket hooks of `sock-links`): time inside the programs per transaction (per MB for TCP_STREAM), as runs per transaction × ns per run; median over the cost rounds, range of the tc time in parentheses; programs under 0.5 ns per transaction (per MB) are not listed by name. The share is the tc programs' time against the CPU time of the client and the server per transaction (the machine's busy time in results without it).\n\n")
	w("| workload | topology | tc programs | socket hooks | tc share of the CPU | by program (ns per transaction) |\n|---|---|---|---|---|---|\n")
	for _, c := range r.BPF {
		unit := workloads[c.Workload].CostUnit
		w("| %s | (%s) | %s ns per %s (%s–%s) = %s × %s ns | ", c.Workload, c.Topology, fmtNum(c.TC.NsPerUnit), unit,
			fmtNum(c.TCRange[0]), fmtNum(c.TCRange[1]), fmtNum(c.TC.RunsPerUnit), fmtNum(c.TC.NsPerRun))
		if c.Sock.RunsPerUnit > 0 {
			w("%s ns per %s = %s × %s ns", fmtNum(c.Sock.NsPerUnit), unit, fmtNum(c.Sock.RunsPerUnit), fmtNum(c.Sock.NsPerRun))
		} else {
			w("none ran")
		}
		w(" | %.1f %% | %s |\n", 100*c.TCShare, programList(c.Programs))
	}
}

// programList prints programs by cost, the costliest first.
func programList(p map[string]float64) string {
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if p[names[i]] != p[names[j]] {
			return p[names[i]] > p[names[j]]
		}
		return names[i] < names[j]
	})
	var out []string
	for _, n := range names {
		out = append(out, fmt.Sprintf("`%s` %s", n, fmtNum(p[n])))
	}
	return strings.Join(out, ", ")
}

// fmtNum prints a cost with about three significant digits, without an
// exponent: 1234, 56.7, 0.89, 0.0012.
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	// Two significant digits below 1.
	d := min(9, 1-int(math.Floor(math.Log10(math.Abs(v)))))
	return fmt.Sprintf("%.*f", d, v)
}

// goalList judges the goals and says which are decided.
func goalList(b *strings.Builder, r *results) {
	if len(r.Goals) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	if r.Version == 0 {
		w("\nGoals of issue 6 (on the median of the per-round ratios; \"decided\" when every round agrees):\n\n")
	} else {
		w("\nGoals of issue 6 (on the median of the per-round ratios of the rates; \"decided\" as above):\n\n")
	}
	var undecided []string
	decided := 0
	straddle := "the interval straddles the bound"
	if r.Parts > 1 {
		straddle = "the interval straddles the bound, or a part's median is on the other side"
	}
	for _, g := range r.Goals {
		verdict := "**met**"
		if !g.Met {
			verdict = "**not met**"
		}
		w("- %s: %s", g.Text, fmtEstimate(g.Ratio.Rate))
		if len(g.Ratio.Rate.Parts) > 1 {
			var ps []string
			for _, p := range g.Ratio.Rate.Parts {
				ps = append(ps, fmt.Sprintf("%.3f", p))
			}
			w(", parts %s", strings.Join(ps, " "))
		}
		if g.Ratio.Proc.N > 0 {
			w("; CPU per transaction (client and server) %s", fmtEstimate(g.Ratio.Proc))
		}
		if g.Decided {
			decided++
			w("; %s, decided\n", verdict)
		} else {
			undecided = append(undecided, g.Text)
			w("; %s, **not decided**: %s\n", verdict, straddle)
		}
	}
	w("\nDecided: %d of %d goals.", decided, len(r.Goals))
	if len(undecided) > 0 {
		w(" Not decided by this run (closer to the bound than its noise): %s.", strings.Join(undecided, "; "))
	}
	w("\n")
	var foreign []string
	for _, s := range r.Summary {
		if s.ForeignStats > 0 {
			foreign = append(foreign, fmt.Sprintf("%s (%s) %d", s.Workload, s.Topology, s.ForeignStats))
		}
	}
	if len(foreign) > 0 {
		w("\n**BPF run statistics were on in rate rounds** (turned on by another process; their rates carry the statistics' overhead), rounds: %s.\n", strings.Join(foreign, ", "))
	}
}

// pinningText says where the clients and servers of each kind of
// workload ran.
func pinningText(r *results) string {
	if r.Version == 0 || (r.ClientCPU == r.StreamClientCPU && r.ServerCPU == r.StreamServerCPU) {
		return pinning(r.ClientCPU, r.ServerCPU)
	}
	return "TCP_RR, TCP_CRR, UDP_RR: " + pinning(r.ClientCPU, r.ServerCPU) + " TCP_STREAM: " + pinning(r.StreamClientCPU, r.StreamServerCPU)
}

// pinning says where clients and servers ran, and what that means for a
// transaction.
func pinning(client, server int) string {
	switch {
	case client < 0 && server < 0:
		return "Clients and servers are not pinned (the scheduler places them; the agents are never pinned)."
	case client < 0 || server < 0:
		return fmt.Sprintf("Clients run on CPU %s, servers on CPU %s (taskset; the agents are not pinned).", cpuName(client), cpuName(server))
	case client == server:
		return fmt.Sprintf("Clients and servers both run on CPU %d (taskset; the agents are not pinned): a transaction is CPU work on that one CPU, with no cross-CPU wakeup.", client)
	}
	return fmt.Sprintf("Clients run on CPU %d, servers on CPU %d (taskset; the agents are not pinned): every request and every response wakes a process on the other CPU, as between two pods on different cores.", client, server)
}

func cpuName(c int) string {
	if c < 0 {
		return "any (not pinned)"
	}
	return fmt.Sprint(c)
}

func topoIDs(r *results) []string {
	var ids []string
	for _, t := range r.Topologies {
		ids = append(ids, t.ID)
	}
	return ids
}

func writeJSON(path string, r *results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// checkResultsFile makes sure the section can be written to path once the
// measurements are done: its directory exists, and the file, if there is
// one, has sane markers. Checked before measuring, so that a run does not
// end in an error after a quarter of an hour.
func checkResultsFile(path string) error {
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		return fmt.Errorf("--results %s: no directory %s", path, filepath.Dir(path))
	}
	old, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--results: %w", err)
	}
	if _, err := spliceSection(string(old), beginMarker+"\n"+endMarker+"\n"); err != nil {
		return fmt.Errorf("--results %s: %w", path, err)
	}
	return nil
}

// replaceSection puts section (markers included) in place of the text
// between the markers of path, or at its end if it has neither; a missing
// file is created. A file with only one of the markers, or them out of
// order, is left alone.
func replaceSection(path, section string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		// A new file holds the section alone.
		return os.WriteFile(path, []byte(section), 0o644)
	}
	if err != nil {
		return err
	}
	updated, err := spliceSection(string(old), section)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(updated), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func spliceSection(doc, section string) (string, error) {
	i, j := strings.Index(doc, beginMarker), strings.Index(doc, endMarker)
	switch {
	case i < 0 && j < 0:
		return strings.TrimRight(doc, "\n") + "\n\n" + section, nil
	case i < 0 || j < 0:
		return "", errors.New("has only one of the datapath section's markers " + beginMarker + " and " + endMarker + "; fix it by hand")
	case j < i || strings.Count(doc, beginMarker) > 1 || strings.Count(doc, endMarker) > 1:
		return "", errors.New("the datapath section's markers are out of order or repeated; fix them by hand")
	}
	rest := strings.TrimPrefix(doc[j+len(endMarker):], "\n")
	return doc[:i] + section + rest, nil
}
