package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	setametrics "github.com/seta-net/seta/pkg/metrics"
)

// The sample dashboard and the metrics documentation live in docs/; these
// tests keep them honest: every metric a panel queries must be one the
// agent registers, so a renamed metric or a typo fails here instead of
// showing an empty panel to a user.
const (
	dashboardPath = "../../../docs/grafana/seta-dashboard.json"
	metricsDocs   = "../../../docs/metrics.md"
)

// registeredNames builds the agent's registry the way the agent does
// (pkg/metrics plus the Hubble flow metrics, every family enabled), feeds
// every source so each family has a series, and returns the names a query
// can use: histograms as _bucket, _sum and _count.
func registeredNames(t *testing.T) (queryable map[string]bool, families []string) {
	t.Helper()
	m := setametrics.New(setametrics.Source{
		EndpointsByState: func() map[string]int { return map[string]int{"ready": 1} },
		Identities:       func() map[string]int { return map[string]int{"reserved": 1} },
		Policy:           func() setametrics.PolicyCounts { return setametrics.PolicyCounts{Policies: 1} },
		Datapath: func() ([]setametrics.DatapathCounter, error) {
			return []setametrics.DatapathCounter{
				{Reason: "Forwarded", Direction: "egress", Packets: 1, Bytes: 1},
				{Reason: "Policy denied", Code: 133, Direction: "ingress", Packets: 1, Bytes: 1},
			}, nil
		},
		Maps: func() ([]setametrics.MapUsage, error) {
			return []setametrics.MapUsage{{Name: "m", Entries: 1, Max: 2}}, nil
		},
		EventsLost: func() (uint64, error) { return 0, nil },
	})
	m.ObserveRegeneration(time.Millisecond, nil)
	m.ObserveAPI("GET /v1/status", "GET", 200, time.Millisecond)

	p, err := New(m.Registry, Options{Metrics: Names()})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range benchFlows() {
		p.ProcessFlow(f)
	}
	p.SetLostEvents(LostSourceHubbleRing, 0)

	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	queryable = map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		families = append(families, n)
		// By the type's name: this package need not depend on
		// client_model directly.
		switch mf.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			queryable[n+"_bucket"], queryable[n+"_sum"], queryable[n+"_count"] = true, true, true
		case "SUMMARY":
			queryable[n], queryable[n+"_sum"], queryable[n+"_count"] = true, true, true
		default:
			queryable[n] = true
		}
	}
	// Every family must have shown up, or the check below would be
	// checking against less than the agent exports.
	for _, want := range []string{"hubble_flows_processed_total", "hubble_drop_total", "hubble_tcp_flags_total",
		"hubble_port_distribution_total", "hubble_icmp_total", "hubble_policy_verdicts_total",
		"hubble_flows_to_world_total", "hubble_lost_events_total", "seta_endpoint_regeneration_time_seconds"} {
		if !slices.Contains(families, want) {
			t.Fatalf("the fake sources did not produce %s; gathered %v", want, families)
		}
	}
	return queryable, families
}

// dashboardQueries returns every PromQL query in the dashboard: panel
// targets (rows nest panels) and template variable queries.
func dashboardQueries(raw []byte) (map[string][]string, error) {
	var d struct {
		SchemaVersion int                     `json:"schemaVersion"`
		Inputs        []struct{ Name string } `json:"__inputs"`
		Panels        []json.RawMessage       `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	if d.SchemaVersion < 36 {
		return nil, fmt.Errorf("schemaVersion %d: too old for the datasource object form", d.SchemaVersion)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" {
		return nil, fmt.Errorf("__inputs %v: want exactly DS_PROMETHEUS", d.Inputs)
	}
	out := map[string][]string{} // where → queries
	ids := map[int]bool{}
	var walk func([]json.RawMessage) error
	walk = func(ps []json.RawMessage) error {
		for _, raw := range ps {
			var p struct {
				ID         int                  `json:"id"`
				Type       string               `json:"type"`
				Title      string               `json:"title"`
				Panels     []json.RawMessage    `json:"panels"`
				Datasource struct{ UID string } `json:"datasource"`
				Targets    []struct {
					Expr       string               `json:"expr"`
					Datasource struct{ UID string } `json:"datasource"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				return err
			}
			if ids[p.ID] {
				return fmt.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				if err := walk(p.Panels); err != nil {
					return err
				}
				continue
			}
			if len(p.Targets) == 0 {
				return fmt.Errorf("panel %q has no targets", p.Title)
			}
			if p.Datasource.UID != "${DS_PROMETHEUS}" {
				return fmt.Errorf("panel %q: datasource %q, want ${DS_PROMETHEUS}", p.Title, p.Datasource.UID)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					return fmt.Errorf("panel %q has a target without expr", p.Title)
				}
				if tg.Datasource.UID != "${DS_PROMETHEUS}" {
					return fmt.Errorf("panel %q: target datasource %q, want ${DS_PROMETHEUS}", p.Title, tg.Datasource.UID)
				}
				out["panel "+p.Title] = append(out["panel "+p.Title], tg.Expr)
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	for _, v := range d.Templating.List {
		// Grafana stores a variable's query as a string or an object.
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var o struct{ Query string }
			if err := json.Unmarshal(v.Query, &o); err != nil {
				return nil, fmt.Errorf("variable %s: %w", v.Name, err)
			}
			q = o.Query
		}
		// label_values(metric, label): the metric is the first argument.
		if rest, ok := strings.CutPrefix(q, "label_values("); ok {
			metric, _, _ := strings.Cut(rest, ",")
			q = strings.TrimSpace(metric)
		}
		out["variable "+v.Name] = append(out["variable "+v.Name], q)
	}
	return out, nil
}

// promqlKeywords are words that are not metric names where they stand
// without parentheses: aggregation operators (which may be followed by
// by/without before their parentheses), modifiers, set operators, literals.
var promqlKeywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "offset": true, "and": true, "or": true, "unless": true, "atan2": true,
	"inf": true, "nan": true,
}

// metricNames extracts the metric names a PromQL expression selects. It
// is a small lexer, not a parser: it skips string literals, label matchers
// ({...}), ranges ([...]), Grafana variables ($x, ${x}), numbers and
// durations, the label lists of by/without/on/ignoring/group_*, and
// function names (an identifier followed by "(").
func metricNames(expr string) ([]string, error) {
	var out []string
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipString := func(i int) (int, error) {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			if expr[j] == '\\' && q != '`' {
				j++
				continue
			}
			if expr[j] == q {
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string in %q", expr)
	}
	skipTo := func(i int, open, close byte) (int, error) {
		depth := 0
		for j := i; j < len(expr); {
			switch c := expr[j]; {
			case c == '"' || c == '\'' || c == '`':
				k, err := skipString(j)
				if err != nil {
					return 0, err
				}
				j = k
				continue
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
			j++
		}
		return 0, fmt.Errorf("unbalanced %c%c in %q", open, close, expr)
	}
	nextNonSpace := func(i int) int {
		for i < len(expr) && strings.IndexByte(" \t\n\r", expr[i]) >= 0 {
			i++
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			j, err := skipTo(i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				j, err := skipTo(i, '{', '}')
				if err != nil {
					return nil, err
				}
				i = j
				continue
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			// Numbers, durations (5m), hex and exponents.
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := nextNonSpace(j)
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" ||
				word == "group_left" || word == "group_right":
				// Their parentheses hold label names.
				if k < len(expr) && expr[k] == '(' {
					l, err := skipTo(k, '(', ')')
					if err != nil {
						return nil, err
					}
					j = l
				}
			case promqlKeywords[word]:
			case k < len(expr) && expr[k] == '(':
				// A function call.
			default:
				out = append(out, word)
			}
			i = j
		default:
			i++
		}
	}
	return out, nil
}

// checkDashboard returns one problem per query that selects a metric not
// in known, and the metrics used.
func checkDashboard(raw []byte, known map[string]bool) (problems []string, used map[string]bool, err error) {
	qs, err := dashboardQueries(raw)
	if err != nil {
		return nil, nil, err
	}
	used = map[string]bool{}
	var where []string
	for w := range qs {
		where = append(where, w)
	}
	sort.Strings(where)
	for _, w := range where {
		for _, q := range qs[w] {
			names, err := metricNames(q)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", w, err)
			}
			if len(names) == 0 {
				problems = append(problems, fmt.Sprintf("%s: no metric in %q", w, q))
			}
			for _, n := range names {
				used[n] = true
				if !known[n] {
					problems = append(problems, fmt.Sprintf("%s: %s is not a registered metric (in %q)", w, n, q))
				}
			}
		}
	}
	return problems, used, nil
}

func TestDashboardUsesRegisteredMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	known, _ := registeredNames(t)
	problems, used, err := checkDashboard(raw, known)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	// The panels the dashboard promises.
	for _, want := range []string{
		"seta_endpoint_state", "seta_identity", "seta_policy_change_total",
		"seta_endpoint_regeneration_time_seconds_bucket", "seta_forward_count_total", "seta_drop_count_total",
		"seta_forward_bytes_total", "seta_drop_bytes_total", "seta_bpf_map_pressure",
		"seta_api_request_duration_seconds_bucket", "seta_datapath_events_lost_total",
		"hubble_flows_processed_total", "hubble_drop_total", "hubble_tcp_flags_total",
		"hubble_policy_verdicts_total", "hubble_port_distribution_total", "hubble_lost_events_total",
	} {
		if !used[want] {
			t.Errorf("no panel queries %s", want)
		}
	}
}

// The check must be able to fail: a misspelt metric, one that is not
// queryable (a histogram's bare name) and one nobody registers are each
// reported.
func TestDashboardCheckCatchesTypos(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	known, _ := registeredNames(t)
	for _, bad := range []struct{ from, to string }{
		{"seta_endpoint_state{", "seta_endpoint_stat{"},
		{"hubble_drop_total", "hubble_drops_total"},
		{"seta_endpoint_regeneration_time_seconds_bucket", "seta_endpoint_regeneration_time_seconds"},
		{"label_values(seta_endpoint_state,", "label_values(seta_endpoints,"},
	} {
		mutated := strings.ReplaceAll(string(raw), bad.from, bad.to)
		if mutated == string(raw) {
			t.Fatalf("the dashboard has no %q to misspell", bad.from)
		}
		problems, _, err := checkDashboard([]byte(mutated), known)
		if err != nil {
			t.Fatal(err)
		}
		name, _, _ := strings.Cut(bad.to, "{")
		name = strings.TrimSuffix(strings.TrimPrefix(name, "label_values("), ",")
		found := false
		for _, p := range problems {
			found = found || strings.Contains(p, name+" is not a registered metric")
		}
		if !found {
			t.Errorf("%s → %s: not reported (problems: %v)", bad.from, bad.to, problems)
		}
	}
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`histogram_quantile(0.99, sum by (le, route) (rate(seta_api_request_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`: "seta_api_request_duration_seconds_bucket",
		`sum(rate(a_total{x="b{c}"}[5m])) by (job) / on(instance) group_left(node) b_info offset 1h`:                                             "a_total,b_info",
		`topk(10, sum without (port) (increase(hubble_port_distribution_total[$__range]))) > bool 1e3`:                                           "hubble_port_distribution_total",
		`seta_policy + ${x} - count(up) * 2.5 and inf`:                                                                                           "seta_policy,up",
		`max_over_time(metric:recorded[1h:5m])`:                                                                                                  "metric:recorded",
	} {
		got, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s: got %v, want %s", expr, got, want)
		}
	}
	if _, err := metricNames(`rate(x{a="b}[5m])`); err == nil {
		t.Error("an unterminated string was accepted")
	}
}

// docs/metrics.md lists every metric the agent registers (Go runtime and
// process metrics aside).
func TestDocsListEveryMetric(t *testing.T) {
	raw, err := os.ReadFile(metricsDocs)
	if err != nil {
		t.Fatal(err)
	}
	_, families := registeredNames(t)
	for _, f := range families {
		if !strings.HasPrefix(f, "seta_") && !strings.HasPrefix(f, "hubble_") {
			continue
		}
		if !strings.Contains(string(raw), "`"+f+"`") {
			t.Errorf("%s is registered but not listed in docs/metrics.md", f)
		}
	}
}
