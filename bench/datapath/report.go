package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// results is everything a run measured; results.json is this.
type results struct {
	Date        time.Time   `json:"date"`
	Commit      string      `json:"commit"`
	Command     string      `json:"command"`
	Preliminary bool        `json:"preliminary"`
	Remark      string      `json:"remark,omitempty"`
	Machine     machine     `json:"machine"`
	Rounds      int         `json:"rounds"`
	Duration    string      `json:"duration"`
	ClientCPU   int         `json:"clientCPU"`
	ServerCPU   int         `json:"serverCPU"`
	Rules       int         `json:"policyRules"`
	Workloads   []string    `json:"workloads"`
	Topologies  []*topology `json:"topologies"`
	Samples     []sample    `json:"samples"`
	Summary     []summary   `json:"summary"`
	Ratios      []ratio     `json:"ratios"`
	Goals       []goal      `json:"goals"`
}

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

// summary is one workload on one topology over the rounds.
type summary struct {
	Workload string  `json:"workload"`
	Topology string  `json:"topology"`
	Median   float64 `json:"median"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	// Spread is (max-min)/median.
	Spread  float64 `json:"spread"`
	CPUCost float64 `json:"cpuCostMedian"`
	Lost    int     `json:"lostTotal,omitempty"`
	Flows   float64 `json:"flowsMedian,omitempty"`
}

// ratio is Num/Den for one workload, taken within each round.
type ratio struct {
	Workload string    `json:"workload"`
	Num      string    `json:"num"`
	Den      string    `json:"den"`
	PerRound []float64 `json:"perRound"`
	Median   float64   `json:"median"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
}

// goal is one of issue 6's goals, judged on the median of a ratio.
type goal struct {
	Text   string  `json:"text"`
	Ratio  ratio   `json:"ratio"`
	Bound  float64 `json:"bound"`
	Strict bool    `json:"strict"` // > rather than ≥
	Met    bool    `json:"met"`
	// Clear: every round is on the same side of the bound as the median.
	Clear bool `json:"clear"`
}

func (g goal) ok(v float64) bool {
	if g.Strict {
		return v > g.Bound
	}
	return v >= g.Bound
}

func newResults(p plan) *results {
	return &results{
		Date: time.Now().UTC(), Commit: commit(), Command: shellJoin(os.Args), Preliminary: *prelim, Remark: *remark,
		Machine: machineInfo(), Rounds: p.rounds, Duration: p.duration.String(), ClientCPU: *clientCPU, ServerCPU: *serverCPU,
		Rules: *ruleCount, Workloads: p.workloads,
	}
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

// medianMinMax of v (not empty); the median of an even count is the mean
// of the middle two.
func medianMinMax(v []float64) (med, lo, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

// ratioPairs are the ratios reported, numerator over denominator.
var ratioPairs = [][2]string{{"b", "a"}, {"c", "a"}, {"d", "a"}, {"e", "a"}, {"d", "c"}, {"e", "c"}, {"c", "b"}, {"e", "b"}}

// summarize computes the summaries, the per-round ratios and the goals.
func (r *results) summarize(p plan) {
	val := map[[3]string]float64{} // {workload, topology, round} → value
	for _, s := range r.Samples {
		val[[3]string{s.Workload, s.Topology, fmt.Sprint(s.Round)}] = s.Value
	}
	r.Summary, r.Ratios, r.Goals = nil, nil, nil
	for _, w := range p.workloads {
		for _, id := range p.topologies {
			var v, cpu, flows []float64
			sm := summary{Workload: w, Topology: id}
			for _, s := range r.Samples {
				if s.Workload == w && s.Topology == id {
					v, cpu = append(v, s.Value), append(cpu, s.CPUCost)
					sm.Lost += s.Lost
					if s.Flows != nil {
						flows = append(flows, float64(*s.Flows))
					}
				}
			}
			if len(v) == 0 {
				continue
			}
			sm.Median, sm.Min, sm.Max = medianMinMax(v)
			sm.Spread = (sm.Max - sm.Min) / sm.Median
			sm.CPUCost, _, _ = medianMinMax(cpu)
			if len(flows) > 0 {
				sm.Flows, _, _ = medianMinMax(flows)
			}
			r.Summary = append(r.Summary, sm)
		}
		for _, pr := range ratioPairs {
			q := ratio{Workload: w, Num: pr[0], Den: pr[1]}
			for round := 1; round <= p.rounds; round++ {
				n, okN := val[[3]string{w, pr[0], fmt.Sprint(round)}]
				d, okD := val[[3]string{w, pr[1], fmt.Sprint(round)}]
				if okN && okD && d > 0 {
					q.PerRound = append(q.PerRound, n/d)
				}
			}
			if len(q.PerRound) == 0 {
				continue
			}
			q.Median, q.Min, q.Max = medianMinMax(q.PerRound)
			r.Ratios = append(r.Ratios, q)
		}
	}
	r.judge()
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
		g.Met = g.ok(q.Median)
		g.Clear = g.ok(q.Min) == g.Met && g.ok(q.Max) == g.Met
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
	w("%s ", pinning(r.ClientCPU, r.ServerCPU))
	w("In the Seta topologies both run in the lab node's cgroup, as pod processes do, so Seta's socket-level hooks apply. %d round(s) of %s per measurement after one unrecorded warm-up run of each; a round runs each workload on every topology back to back, in the order %s, reversed every other round. Ratios are taken within a round, pair by pair; the tables give the median over the rounds and the range (min–max).\n\n",
		r.Rounds, r.Duration, strings.Join(topoIDs(r), ", "))

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

	var pairs [][2]string
	for _, pr := range ratioPairs {
		if r.topo(pr[0]) != nil && r.topo(pr[1]) != nil {
			pairs = append(pairs, pr)
		}
	}
	if len(pairs) > 0 {
		w("\nRatios within each round (median, min–max):\n\n| workload |")
		for _, pr := range pairs {
			w(" (%s)/(%s) |", pr[0], pr[1])
		}
		w("\n|---|%s\n", strings.Repeat("---|", len(pairs)))
		for _, wl := range r.Workloads {
			w("| %s |", wl)
			for _, pr := range pairs {
				if q, ok := r.ratioOf(wl, pr[0], pr[1]); ok {
					w(" %.3f (%.3f–%.3f) |", q.Median, q.Min, q.Max)
				} else {
					w(" |")
				}
			}
			w("\n")
		}
	}

	w("\nCPU cost: busy jiffies of the whole machine (both CPUs; user, system, irq, softirq and steal, from the first line of /proc/stat) from just before the client starts to just after it exits, per transaction (per GB for TCP_STREAM); median over the rounds. It includes everything else the machine did meanwhile (the agents, other users of a shared machine).\n\n| workload | unit |")
	for _, t := range r.Topologies {
		w(" (%s) |", t.ID)
	}
	w("\n|---|---|%s\n", strings.Repeat("---|", len(r.Topologies)))
	for _, wl := range r.Workloads {
		w("| %s | %s |", wl, workloads[wl].CPUUnit)
		for _, t := range r.Topologies {
			if s, ok := r.summaryOf(wl, t.ID); ok {
				w(" %.1f |", s.CPUCost)
			} else {
				w(" |")
			}
		}
		w("\n")
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

	if len(r.Goals) > 0 {
		w("\nGoals of issue 6 (on the median of the per-round ratios; \"clear\" when every round agrees):\n\n")
		for _, g := range r.Goals {
			verdict := "**met**"
			if !g.Met {
				verdict = "**not met**"
			}
			clear := "clear"
			if !g.Clear {
				clear = "not clear: the rounds straddle the bound"
			}
			w("- %s: %.3f (%.3f–%.3f), %s, %s\n", g.Text, g.Ratio.Median, g.Ratio.Min, g.Ratio.Max, verdict, clear)
		}
	}
	if *notesFile != "" {
		if notes, err := os.ReadFile(*notesFile); err == nil && len(bytes.TrimSpace(notes)) > 0 {
			w("\n%s\n", strings.TrimSpace(string(notes)))
		}
	}
	w("%s\n", endMarker)
	return b.String()
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

// replaceSection puts section (markers included) in place of the text
// between the markers of path, or at its end if it has neither. A file
// with only one of the markers, or them out of order, is left alone.
func replaceSection(path, section string) error {
	old, err := os.ReadFile(path)
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
