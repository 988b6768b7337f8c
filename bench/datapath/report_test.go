package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/policy/api"
)

func TestParseCPU(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	c, err := parseCPU("cpu  100 5 50 1000 20 3 7 2 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if err != nil {
		t.Fatal(err)
	}
	// Busy: user, nice, system, irq, softirq, steal; guest is inside user.
	if c.busy != 100+5+50+3+7+2 || c.total != 100+5+50+1000+20+3+7+2 {
		t.Errorf("busy %d total %d, want 167 and 1187", c.busy, c.total)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu 1 2 x 4 5 6 7 8\n"} {
		if _, err := parseCPU(bad); err == nil {
			t.Errorf("parseCPU(%q) succeeded", bad)
		}
	}
	if got, err := readCPU(); err != nil || got.total == 0 || got.busy > got.total {
		t.Errorf("readCPU of this machine: %+v, %v", got, err)
	}
}

func TestMedianMinMax(t *testing.T) {
	for _, tc := range []struct {
		in            []float64
		med, lo, hi   float64
		inputUnsorted bool
	}{
		{[]float64{3}, 3, 3, 3, false},
		{[]float64{5, 1, 3}, 3, 1, 5, true},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4, true},
	} {
		in := slices.Clone(tc.in)
		med, lo, hi := medianMinMax(in)
		if med != tc.med || lo != tc.lo || hi != tc.hi {
			t.Errorf("medianMinMax(%v) = %v %v %v, want %v %v %v", tc.in, med, lo, hi, tc.med, tc.lo, tc.hi)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("medianMinMax sorted its input: %v", in)
		}
	}
}

func TestRoundOrderAlternates(t *testing.T) {
	ids := []string{"a", "b", "c"}
	if got := roundOrder(ids, 0); !slices.Equal(got, ids) {
		t.Errorf("round 0: %v", got)
	}
	if got := roundOrder(ids, 1); !slices.Equal(got, []string{"c", "b", "a"}) {
		t.Errorf("round 1: %v", got)
	}
	if got := roundOrder(ids, 2); !slices.Equal(got, ids) {
		t.Errorf("round 2: %v", got)
	}
	if !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Errorf("roundOrder changed its input: %v", ids)
	}
}

// The policy of (d) and (e) must parse, have exactly n rules selecting both
// pods in both directions, and admit exactly the benchmark's ports among
// the ones the benchmark uses.
func TestPolicyYAML(t *testing.T) {
	for _, n := range []int{3, 100, 1001} {
		ps, err := api.Parse([]byte(policyYAML(n)), "test.yaml")
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(ps) != 1 || ps[0].Kind != api.KindCNP || len(ps[0].Rules) != n {
			t.Fatalf("n=%d: %d policies, want one CNP with %d rules", n, len(ps), n)
		}
		admitted := map[string]int{}
		for _, r := range ps[0].Rules {
			if r.EndpointSelector == nil || r.EndpointSelector.MatchLabels["bench"] != "datapath" || len(r.Ingress) != 1 || len(r.Egress) != 1 {
				t.Fatalf("n=%d: rule %+v does not select both pods in both directions", n, r)
			}
			in, eg := r.Ingress[0], r.Egress[0]
			if in.FromEndpoints[0].MatchLabels["bench"] != "datapath" || eg.ToEndpoints[0].MatchLabels["bench"] != "datapath" {
				t.Fatalf("n=%d: rule peers are not the benchmark's pods", n)
			}
			for _, pp := range []api.PortProtocol{in.ToPorts[0].Ports[0], eg.ToPorts[0].Ports[0]} {
				admitted[fmt.Sprintf("%d/%s", pp.Port, pp.Protocol)]++
			}
		}
		for _, want := range []string{"7100/TCP", "7101/UDP", "5201/TCP"} {
			if admitted[want] != 2 {
				t.Errorf("n=%d: %s admitted %d times, want once in each direction", n, want, admitted[want])
			}
		}
		if admitted[fmt.Sprintf("%d/TCP", closedPort)] != 0 {
			t.Errorf("n=%d: the closed-port probe %d is admitted", n, closedPort)
		}
		if len(admitted) != n {
			t.Errorf("n=%d: %d distinct ports, want %d", n, len(admitted), n)
		}
	}
}

func TestSpliceSection(t *testing.T) {
	sec := beginMarker + "\nNEW\n" + endMarker + "\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"appended when absent", "# R\n\ntext\n\n\n", "# R\n\ntext\n\n" + sec},
		{"replaced in place", "# R\n" + beginMarker + "\nOLD\n" + endMarker + "\n## next\n", "# R\n" + sec + "## next\n"},
		{"replaced at the end", "# R\n\n" + beginMarker + "\nOLD\nOLD\n" + endMarker, "# R\n\n" + sec},
	} {
		got, err := spliceSection(tc.doc, sec)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range []string{
		"only " + beginMarker,
		"only " + endMarker,
		endMarker + " then " + beginMarker,
		beginMarker + endMarker + beginMarker + endMarker,
	} {
		if _, err := spliceSection(bad, sec); err == nil {
			t.Errorf("spliceSection(%q) succeeded", bad)
		}
	}
}

// synthetic builds results of two rounds for topologies a, b, c, d, e with
// the values given per topology and round.
func synthetic(vals map[string][2]float64) *results {
	p := plan{topologies: []string{"a", "b", "c", "d", "e"}, workloads: []string{"TCP_RR"}, rounds: 2, duration: time.Second}
	r := &results{Rounds: 2, Duration: "1s", Workloads: p.workloads}
	for _, id := range p.topologies {
		r.Topologies = append(r.Topologies, newTopology(id))
		for round := 1; round <= 2; round++ {
			r.Samples = append(r.Samples, sample{Round: round, Workload: "TCP_RR", Topology: id, Value: vals[id][round-1], CPUCost: 10})
		}
	}
	r.summarize(p)
	return r
}

func TestSummarizePairsWithinRounds(t *testing.T) {
	// Round 2 is twice as fast for everyone (drift): the ratios must not
	// see it.
	r := synthetic(map[string][2]float64{
		"a": {100, 200}, "b": {80, 160}, "c": {96, 192}, "d": {95, 190}, "e": {90, 180},
	})
	q, ok := r.ratioOf("TCP_RR", "c", "a")
	if !ok || !slices.Equal(q.PerRound, []float64{0.96, 0.96}) || q.Rate.Median != 0.96 {
		t.Fatalf("(c)/(a): %+v", q)
	}
	s, _ := r.summaryOf("TCP_RR", "a")
	if s.Median != 150 || s.Min != 100 || s.Max != 200 || math.Abs(s.Spread-100.0/150) > 1e-9 {
		t.Errorf("summary of (a): %+v", s)
	}
	verdicts := map[string]bool{}
	for _, g := range r.Goals {
		verdicts[g.Text] = g.Met
		if !g.Decided {
			t.Errorf("%s: not decided, but both rounds agree", g.Text)
		}
	}
	want := map[string]bool{
		"TCP_RR (c)/(a) ≥ 0.95":                              true,
		"TCP_RR (d)/(c) ≥ 0.97 (within 3% of (c))":           true,  // 0.990
		"TCP_RR (e)/(c) ≥ 0.97 (within 3% of (c))":           false, // 0.9375
		"TCP_RR (c)/(b) > 1 (Seta ahead of bridge+iptables)": true,
	}
	for text, met := range want {
		if got, ok := verdicts[text]; !ok || got != met {
			t.Errorf("goal %q: met=%v (present %v), want %v; goals %v", text, got, ok, met, verdicts)
		}
	}
}

func TestGoalStraddling(t *testing.T) {
	r := synthetic(map[string][2]float64{
		"a": {100, 100}, "b": {50, 50}, "c": {99, 92}, "d": {99, 92}, "e": {99, 92},
	})
	for _, g := range r.Goals {
		if g.Text == "TCP_RR (c)/(a) ≥ 0.95" && (!g.Met || g.Decided) {
			t.Errorf("median 0.955 with rounds 0.99 and 0.92: met=%v decided=%v, want met and not decided", g.Met, g.Decided)
		}
	}
}

func TestMarkdown(t *testing.T) {
	r := synthetic(map[string][2]float64{
		"a": {100, 200}, "b": {80, 160}, "c": {96, 192}, "d": {95, 190}, "e": {90, 180},
	})
	r.Preliminary = true
	n := uint64(7)
	r.Samples[len(r.Samples)-1].Flows = &n
	r.summarize(plan{topologies: []string{"a", "b", "c", "d", "e"}, workloads: []string{"TCP_RR"}, rounds: 2})
	saved := *notesFile
	*notesFile = ""
	defer func() { *notesFile = saved }()
	md := markdown(r)
	for _, want := range []string{
		beginMarker, "**Preliminary.**", "| TCP_RR | transactions/s | 150 (100–200) | 120 (80–160) | 144 (96–192)",
		"| TCP_RR | 0.800 (0.800–0.800) | 0.960 (0.960–0.960) |", "TCP_RR (e)/(c) ≥ 0.97 (within 3% of (c)): 0.938 (0.938–0.938); **not met**, decided",
		"Flows Hubble decoded per measurement in (e) (median): TCP_RR 7.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if !strings.HasSuffix(md, endMarker+"\n") {
		t.Errorf("markdown does not end with the end marker")
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("results do not marshal: %v", err)
	}
}

func TestParsePlanRejectsBadInput(t *testing.T) {
	set := func(r int, d time.Duration, topos, loads string, rules, ccpu int) func() {
		saved := []any{*rounds, *duration, *topoFlag, *loadFlag, *ruleCount, *clientCPU}
		*rounds, *duration, *topoFlag, *loadFlag, *ruleCount, *clientCPU = r, d, topos, loads, rules, ccpu
		return func() {
			*rounds, *duration, *topoFlag, *loadFlag = saved[0].(int), saved[1].(time.Duration), saved[2].(string), saved[3].(string)
			*ruleCount, *clientCPU = saved[4].(int), saved[5].(int)
		}
	}
	for _, tc := range []struct {
		rounds int
		d      time.Duration
		topos  string
		loads  string
		rules  int
		cpu    int
		want   string
	}{
		{0, time.Second, "a", "TCP_RR", 100, -1, "--rounds"},
		{1, 500 * time.Millisecond, "a", "TCP_RR", 100, -1, "--duration"},
		{1, time.Second, "a,x", "TCP_RR", 100, -1, `unknown topology "x"`},
		{1, time.Second, "a,a", "TCP_RR", 100, -1, `"a" given twice`},
		{1, time.Second, "a", "TCP_RR,SCTP", 100, -1, `unknown workload "SCTP"`},
		{1, time.Second, "a", "TCP_RR", 2, -1, "--rules"},
		{1, time.Second, "a", "TCP_RR", 100, 4096, "--client-cpu"},
		{201, time.Second, "a", "TCP_RR", 100, -1, "--rounds"},
	} {
		restore := set(tc.rounds, tc.d, tc.topos, tc.loads, tc.rules, tc.cpu)
		_, err := parsePlan()
		restore()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc, err, tc.want)
		}
	}
	for _, tc := range []struct {
		flag *int
		v    int
		want string
	}{
		{warmup, -1, "--warmup-rounds"}, {warmup, 21, "--warmup-rounds"},
		{costRounds, 51, "--cost-rounds"}, {parts, 0, "--parts"}, {parts, 11, "--parts"},
		{streamSCPU, 4096, "--stream-server-cpu"}, {streamCCPU, -2, "--stream-client-cpu"},
	} {
		saved := *tc.flag
		*tc.flag = tc.v
		_, err := parsePlan()
		*tc.flag = saved
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %d: error %v", tc.want, tc.v, err)
		}
	}
	restore := set(2, 3*time.Second, "c, a", "tcp_rr,UDP_RR", 100, -1)
	p, err := parsePlan()
	restore()
	if err != nil || !slices.Equal(p.topologies, []string{"c", "a"}) || !slices.Equal(p.workloads, []string{"TCP_RR", "UDP_RR"}) {
		t.Errorf("good flags: %+v, %v", p, err)
	}
	// The default three parts, with two rounds: two parts.
	if p.parts != 2 {
		t.Errorf("parts with 2 rounds: %d, want 2", p.parts)
	}
}

func TestLeftoverMessageNamesTheFix(t *testing.T) {
	msg := leftoverMessage([]leftover{
		{what: "network namespace dpbench-a-client", remove: "ip netns del dpbench-a-client"},
		{what: "lab dpbench-c", remove: "bin/seta lab down --name dpbench-c"},
	})
	for _, want := range []string{"--clean", "network namespace dpbench-a-client: ip netns del dpbench-a-client", "lab dpbench-c: bin/seta lab down --name dpbench-c"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"bin/datapath", "--remark", "it's here", "--results", "", "--rounds", "2"})
	want := `bin/datapath --remark 'it'\''s here' --results '' --rounds 2`
	if got != want {
		t.Errorf("shellJoin: %s, want %s", got, want)
	}
}

// --from-json writes the same section from the stored results, in place
// of the old one, and refuses a file that is not a results file.
func TestRewriteFromJSON(t *testing.T) {
	r := synthetic(map[string][2]float64{
		"a": {100, 200}, "b": {80, 160}, "c": {96, 192}, "d": {95, 190}, "e": {90, 180},
	})
	dir := t.TempDir()
	js, md := dir+"/results.json", dir+"/RESULTS.md"
	if err := writeJSON(js, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(md, []byte("# R\n\n"+beginMarker+"\nold\n"+endMarker+"\n## after\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	saved, savedNotes := *resultsOut, *notesFile
	*resultsOut, *notesFile = md, ""
	defer func() { *resultsOut, *notesFile = saved, savedNotes }()
	if code := rewrite(js); code != 0 {
		t.Fatalf("rewrite: exit %d", code)
	}
	got, _ := os.ReadFile(md)
	if want := "# R\n\n" + markdown(r) + "## after\n"; string(got) != want {
		t.Errorf("RESULTS.md after rewrite:\n%s\nwant:\n%s", got, want)
	}
	os.WriteFile(js, []byte(`{"samples": []}`), 0o644)
	if code := rewrite(js); code == 0 {
		t.Error("rewrite accepted a file without topologies")
	}
}

// syntheticV2 is a run of 30 rounds on a, b, c, d with a drift of ±50 %
// between rounds, two warm-up rounds that must not count and one cost
// round of the Seta topologies: (c)/(a) 0.92 to 0.94 round by round,
// (d)/(c) 0.96 to 0.98 (around the 0.97 bound), (c)/(b) 1.2.
func syntheticV2() (*results, plan) {
	p := plan{topologies: []string{"a", "b", "c", "d"}, workloads: []string{"TCP_RR"}, rounds: 30, warmup: 2, costRounds: 1, parts: 3, duration: time.Second}
	r := &results{Version: resultsVersion, Rounds: 30, Warmup: 2, CostRounds: 1, Parts: 3, Duration: "1s", Workloads: p.workloads,
		ClientCPU: 1, ServerCPU: 1, StreamClientCPU: 1, StreamServerCPU: 0}
	for _, id := range p.topologies {
		r.Topologies = append(r.Topologies, newTopology(id))
	}
	add := func(kind string, round int, vals map[string]float64) {
		for _, id := range p.topologies {
			if v, ok := vals[id]; ok {
				// CPU per transaction inverse to the rate: one busy CPU,
				// half of it the client's and server's.
				r.Samples = append(r.Samples, sample{Kind: kind, Round: round, Workload: "TCP_RR", Topology: id, Value: v, CPUCost: 1e6 / v, ProcCost: 5e5 / v, Transactions: int64(v)})
			}
		}
	}
	for round := 1; round <= 2; round++ {
		add(kindWarmup, round, map[string]float64{"a": 1000, "b": 1000, "c": 100, "d": 100})
	}
	for round := 1; round <= 30; round++ {
		a := 40000 * (1 + 0.5*math.Sin(float64(round)))
		c := a * []float64{0.92, 0.93, 0.94}[round%3]
		add(kindRate, round, map[string]float64{"a": a, "b": c / 1.2, "c": c, "d": c * []float64{0.96, 0.97, 0.98}[round%3]})
	}
	r.Samples[len(r.Samples)-1].ForeignStatsRuns = 12 // (d) in round 30
	cost := costSample("TCP_RR", 1, 40000, 90, map[string]progRuns{"cil_from_container": {80000, 40_000_000}}, nil)
	r.Samples = append(r.Samples, cost)
	r.summarize(p)
	return r, p
}

func TestSummarizeManyRounds(t *testing.T) {
	r, _ := syntheticV2()
	q, ok := r.ratioOf("TCP_RR", "c", "a")
	if !ok || q.Rate.N != 30 || math.Abs(q.Rate.Median-0.93) > 1e-9 || math.Abs(q.Rate.Lo-0.92) > 1e-9 || math.Abs(q.Rate.Hi-0.94) > 1e-9 || len(q.Rate.Parts) != 3 {
		t.Fatalf("(c)/(a) without the warm-up: %+v", q.Rate)
	}
	// The CPU per transaction moves inversely to the rate here.
	if math.Abs(q.CPU.Median-1/0.93) > 1e-9 || !q.CPU.CI || math.Abs(q.Proc.Median-1/0.93) > 1e-9 {
		t.Errorf("CPU (c)/(a): machine %+v, processes %+v", q.CPU, q.Proc)
	}
	goals := map[string]goal{}
	for _, g := range r.Goals {
		goals[g.Text] = g
	}
	for text, want := range map[string][2]bool{ // met, decided
		"TCP_RR (c)/(a) ≥ 0.95":                              {false, true},
		"TCP_RR (d)/(c) ≥ 0.97 (within 3% of (c))":           {true, false},
		"TCP_RR (c)/(b) > 1 (Seta ahead of bridge+iptables)": {true, true},
	} {
		g, ok := goals[text]
		if !ok || g.Met != want[0] || g.Decided != want[1] {
			t.Errorf("%s: met=%v decided=%v (present %v), want %v", text, g.Met, g.Decided, ok, want)
		}
	}
	if len(r.BPF) != 1 || r.BPF[0].Topology != "c" || r.BPF[0].TC.NsPerUnit != 1000 {
		t.Errorf("program cost %+v", r.BPF)
	}
	if s, _ := r.summaryOf("TCP_RR", "d"); s.ForeignStats != 1 {
		t.Errorf("rounds with foreign statistics in (d): %d, want 1", s.ForeignStats)
	}
	if s, _ := r.summaryOf("TCP_RR", "a"); s.Max > 60000 || s.Min < 20000 {
		t.Errorf("summary of (a) includes the warm-up or the cost rounds: %+v", s)
	}
}

func TestMarkdownManyRounds(t *testing.T) {
	r, _ := syntheticV2()
	saved := *notesFile
	*notesFile = ""
	defer func() { *notesFile = saved }()
	md := markdown(r)
	for _, want := range []string{
		"30 rounds of 1s per measurement, after 2 warm-up round(s)",
		"cut into 3 consecutive parts (1–10, 11–20, 21–30)",
		"TCP_RR, TCP_CRR, UDP_RR: Clients and servers both run on CPU 1", "TCP_STREAM: Clients run on CPU 1, servers on CPU 0",
		"| TCP_RR | 0.775 [0.767–0.783] | 0.930 [0.920–0.940] | 0.902 [0.883–0.921] | 0.970 [0.960–0.980] | 1.200 [1.200–1.200] |",
		"Ratios of the client's and server's own CPU per transaction", "The same for the whole machine's busy time:",
		"| TCP_RR | µs CPU per transaction | 24.2 (12.1) | 31.4 (15.7) | 26.2 (13.1) | 27.1 (13.6) |",
		"| TCP_RR | (c) | 1000 ns per transaction (1000–1000) = 2.00 × 500 ns | none ran | 4.4 % | `cil_from_container` 1000 |",
		"- TCP_RR (c)/(a) ≥ 0.95: 0.930 [0.920–0.940], parts 0.930 0.930 0.930; CPU per transaction (client and server) 1.075 [1.064–1.087]; **not met**, decided",
		"TCP_RR (d)/(c) ≥ 0.97 (within 3% of (c)): 0.970 [0.960–0.980], parts 0.970 0.970 0.970; CPU per transaction (client and server) 1.031 [1.020–1.042]; **met**, **not decided**",
		"Decided: 2 of 3 goals. Not decided by this run (closer to the bound than its noise): TCP_RR (d)/(c) ≥ 0.97 (within 3% of (c)).",
		"**BPF run statistics were on in rate rounds**", "TCP_RR (d) 1",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// A results.json of the first harness (a few long rounds, one pinning,
// no parts) still renders, with its own method and the statistics of now.
func TestRewriteFirstHarness(t *testing.T) {
	var samples []string
	for round, v := range [][2]float64{{100, 90}, {200, 185}} {
		samples = append(samples, fmt.Sprintf(`{"round": %d, "workload": "UDP_RR", "topology": "a", "value": %v, "cpuCost": 40}`, round+1, v[0]),
			fmt.Sprintf(`{"round": %d, "workload": "UDP_RR", "topology": "c", "value": %v, "cpuCost": 44}`, round+1, v[1]))
	}
	old := `{"rounds": 2, "duration": "5s", "clientCPU": 1, "serverCPU": 0, "workloads": ["UDP_RR"],
		"topologies": [{"id": "a", "name": "veth"}, {"id": "c", "name": "seta"}],
		"samples": [` + strings.Join(samples, ",") + `], "goals": [{"text": "stale", "clear": true}]}`
	dir := t.TempDir()
	js, md := dir+"/results.json", dir+"/RESULTS.md"
	os.WriteFile(js, []byte(old), 0o644)
	os.WriteFile(md, []byte("# R\n"), 0o644)
	saved, savedNotes := *resultsOut, *notesFile
	*resultsOut, *notesFile = md, ""
	defer func() { *resultsOut, *notesFile = saved, savedNotes }()
	if code := rewrite(js); code != 0 {
		t.Fatalf("rewrite: exit %d", code)
	}
	got, _ := os.ReadFile(md)
	for _, want := range []string{
		"2 round(s) of 5s per measurement after one unrecorded warm-up run of each",
		"Clients run on CPU 1, servers on CPU 0", "| UDP_RR | 0.913 (0.900–0.925) |",
		"UDP_RR (c)/(a) ≥ 0.95: 0.913 (0.900–0.925); **not met**, decided",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("section lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(string(got), "stale") || strings.Contains(string(got), "TCP_STREAM:") {
		t.Errorf("section shows stored goals or a stream pinning of its own:\n%s", got)
	}
}

func TestOwnCPUShare(t *testing.T) {
	r := &results{Version: resultsVersion, ClientCPU: 1, ServerCPU: 1, StreamClientCPU: 1, StreamServerCPU: 0}
	if !r.oneCPU("UDP_RR") || r.oneCPU("TCP_STREAM") {
		t.Errorf("oneCPU: UDP_RR %v, TCP_STREAM %v; want true, false", r.oneCPU("UDP_RR"), r.oneCPU("TCP_STREAM"))
	}
	if (&results{ClientCPU: -1, ServerCPU: -1}).oneCPU("TCP_RR") {
		t.Error("unpinned processes taken for sharing a CPU")
	}
	samples := []sample{
		{Value: 40000, Seconds: 1, ProcCPUns: 990_000_000},
		{Value: 30000, Seconds: 2, ProcCPUns: 1_400_000_000}, // something else took 30 %
		{Value: 41000, Seconds: 1, ProcCPUns: 1_000_000_000},
	}
	if s, _ := summarizeRates("UDP_RR", "c", samples, true); math.Abs(s.OwnCPU-0.99) > 1e-9 {
		t.Errorf("own CPU share %v, want 0.99", s.OwnCPU)
	}
	if s, _ := summarizeRates("UDP_RR", "c", samples, false); s.OwnCPU != 0 {
		t.Errorf("own CPU share %v on two CPUs, want none", s.OwnCPU)
	}
}

// The results file is checked before measuring, and a missing one is
// created with the section alone.
func TestResultsFile(t *testing.T) {
	dir := t.TempDir()
	if err := checkResultsFile(dir + "/none/RESULTS.md"); err == nil {
		t.Error("a results file in a missing directory passed")
	}
	bad := dir + "/bad.md"
	os.WriteFile(bad, []byte("# R\n"+beginMarker+"\nno end\n"), 0o644)
	if err := checkResultsFile(bad); err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Errorf("a file with one marker: %v", err)
	}
	fresh := dir + "/fresh.md"
	if err := checkResultsFile(fresh); err != nil {
		t.Fatal(err)
	}
	sec := beginMarker + "\nS\n" + endMarker + "\n"
	if err := replaceSection(fresh, sec); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(fresh); string(got) != sec {
		t.Errorf("new results file: %q, want the section alone", got)
	}
	if err := checkResultsFile(fresh); err != nil {
		t.Errorf("the file just written: %v", err)
	}
}
