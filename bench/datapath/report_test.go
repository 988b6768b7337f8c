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
	if !ok || !slices.Equal(q.PerRound, []float64{0.96, 0.96}) || q.Median != 0.96 {
		t.Fatalf("(c)/(a): %+v", q)
	}
	s, _ := r.summaryOf("TCP_RR", "a")
	if s.Median != 150 || s.Min != 100 || s.Max != 200 || math.Abs(s.Spread-100.0/150) > 1e-9 {
		t.Errorf("summary of (a): %+v", s)
	}
	verdicts := map[string]bool{}
	for _, g := range r.Goals {
		verdicts[g.Text] = g.Met
		if !g.Clear {
			t.Errorf("%s: not clear, but both rounds agree", g.Text)
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
		if g.Text == "TCP_RR (c)/(a) ≥ 0.95" && (!g.Met || g.Clear) {
			t.Errorf("median 0.955 with rounds 0.99 and 0.92: met=%v clear=%v, want met and not clear", g.Met, g.Clear)
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
		"| TCP_RR | 0.800 (0.800–0.800) | 0.960 (0.960–0.960) |", "TCP_RR (e)/(c) ≥ 0.97 (within 3% of (c)): 0.938 (0.938–0.938), **not met**, clear",
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
	} {
		restore := set(tc.rounds, tc.d, tc.topos, tc.loads, tc.rules, tc.cpu)
		_, err := parsePlan()
		restore()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc, err, tc.want)
		}
	}
	restore := set(2, 3*time.Second, "c, a", "tcp_rr,UDP_RR", 100, -1)
	p, err := parsePlan()
	restore()
	if err != nil || !slices.Equal(p.topologies, []string{"c", "a"}) || !slices.Equal(p.workloads, []string{"TCP_RR", "UDP_RR"}) {
		t.Errorf("good flags: %+v, %v", p, err)
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
