package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// probe is one row of the truth table: traffic from a pod to a pod, and
// whether policy must let it through.
type probe struct {
	from, to string
	kind     string // tcp, udp, http, icmp
	v6       bool
	allow    bool
}

func (p probe) String() string {
	fam := "v4"
	if p.v6 {
		fam = "v6"
	}
	verdict := "deny"
	if p.allow {
		verdict = "allow"
	}
	return fmt.Sprintf("%s->%s %s/%s %s", p.from, p.to, p.kind, fam, verdict)
}

// scenario is a set of policies and the probes that check them.
type scenario struct {
	name   string
	policy string // YAML documents; empty: no policy
	probes []probe
}

func allow(from, to, kind string) probe { return probe{from: from, to: to, kind: kind, allow: true} }
func deny(from, to, kind string) probe  { return probe{from: from, to: to, kind: kind} }
func v6(p probe) probe                  { p.v6 = true; return p }

// policyLab has pods in two namespaces:
//
//	default: web (app=web, serves), client (app=client), other (app=other)
//	prod:    db (app=db, serves), api (app=api)
type policyLab struct {
	*Lab
	ns   map[string]string // pod -> namespace
	pods map[string]podInfo
}

func newPolicyLab(t *testing.T, agentArgs ...string) *policyLab {
	var extra []string
	for _, a := range agentArgs {
		extra = append(extra, "--agent-arg="+a)
	}
	l := &policyLab{Lab: newLab(t, extra...), ns: map[string]string{}, pods: map[string]podInfo{}}
	for _, p := range []struct{ name, ns, labels string }{
		{"web", "default", "app=web,tier=frontend"},
		{"client", "default", "app=client"},
		{"other", "default", "app=other"},
		{"db", "prod", "app=db"},
		{"api", "prod", "app=api"},
	} {
		// Every pod serves, so any pod can be a destination.
		l.must("lab", "pod", "run", p.name, "-n", p.ns, "--labels", p.labels, "--", "seta-nettool", "serve")
		l.ns[p.name] = p.ns
	}
	for _, ns := range []string{"default", "prod"} {
		var ps []podInfo
		if err := jsonUnmarshal(l.must("lab", "pod", "list", "-n", ns, "-o", "json"), &ps); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			l.pods[p.Name] = p
		}
	}
	// Under "always" nothing flows until a policy allows it.
	if !slices.Contains(agentArgs, "--policy-enforcement=always") {
		l.waitServer2("client", "web")
		l.waitServer2("api", "db")
	}
	return l
}

func (l *policyLab) waitServer2(from, to string) {
	l.t.Helper()
	out, err := l.execIn(from, "sh", "-c", fmt.Sprintf(
		"for i in $(seq 100); do seta-nettool tcp %s --timeout 200ms >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1",
		hostport(l.pods[to].IPv4, "7000")))
	if err != nil {
		l.t.Fatalf("%s never reached %s: %v\n%s", from, to, err, out)
	}
}

// execIn runs a command in a pod of any namespace.
func (l *policyLab) execIn(pod string, argv ...string) (string, error) {
	return l.run(append([]string{"lab", "pod", "exec", pod, "-n", l.ns[pod], "--"}, argv...)...)
}

// check runs one probe and reports whether the traffic got through.
func (l *policyLab) check(p probe) (bool, string) {
	dst := l.pods[p.to].IPv4
	if p.v6 {
		dst = l.pods[p.to].IPv6
	}
	var argv []string
	switch p.kind {
	case "tcp":
		argv = []string{"seta-nettool", "tcp", hostport(dst, "7000"), "--timeout", "700ms"}
	case "udp":
		argv = []string{"seta-nettool", "udp", hostport(dst, "7001"), "--timeout", "700ms"}
	case "http":
		argv = []string{"seta-nettool", "http", "http://" + hostport(dst, "8080") + "/", "--timeout", "700ms"}
	case "icmp":
		argv = []string{"ping", "-c", "1", "-W", "1", dst}
	}
	out, err := l.execIn(p.from, argv...)
	return err == nil, out
}

func (l *policyLab) apply(t *testing.T, yaml string) {
	t.Helper()
	l.must("policy", "delete", "--all")
	if yaml != "" {
		f := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		l.must("policy", "import", f)
	}
	l.must("policy", "wait", "--timeout", "10s")
}

func (l *policyLab) runScenarios(t *testing.T, scenarios []scenario) int {
	n := 0
	for _, sc := range scenarios {
		l.apply(t, sc.policy)
		for _, p := range sc.probes {
			n++
			got, out := l.check(p)
			if got != p.allow {
				t.Errorf("%s: %s: traffic %s\n%s", sc.name, p, map[bool]string{true: "got through", false: "was blocked"}[got], out)
			} else if !got && !blockedByNetwork(out) {
				// A probe that failed for another reason (a typo in the
				// command, a dead server) must not count as a drop.
				t.Errorf("%s: %s: failed, but not by a silent drop:\n%s", sc.name, p, out)
			}
		}
	}
	return n
}

// blockedByNetwork reports whether a probe's output shows packets that went
// unanswered, as a policy drop leaves them.
func blockedByNetwork(out string) bool {
	for _, s := range []string{"i/o timeout", "no reply", "100% packet loss", "Client.Timeout", "deadline exceeded", "no response within"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

const cnpHeader = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
const knpHeader = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"

var truthTable = []scenario{
	{"no policy: everything flows", "", []probe{
		allow("client", "web", "tcp"), allow("client", "web", "udp"), allow("client", "web", "icmp"),
		v6(allow("other", "web", "tcp")), allow("api", "web", "http"),
	}},
	{"CNP L3: web admits app=client", cnpHeader + `metadata: {name: web-l3}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
`, []probe{
		allow("client", "web", "tcp"), allow("client", "web", "udp"), allow("client", "web", "icmp"), v6(allow("client", "web", "icmp")),
		deny("other", "web", "tcp"), v6(deny("other", "web", "udp")), deny("api", "web", "tcp"),
		allow("web", "client", "tcp"),
	}},
	{"CNP L4: web admits app=client on 7000/TCP only", cnpHeader + `metadata: {name: web-l4}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "7000", protocol: TCP}]}]
`, []probe{
		allow("client", "web", "tcp"), v6(allow("client", "web", "tcp")), deny("client", "web", "udp"),
		deny("client", "web", "http"), deny("client", "web", "icmp"), deny("other", "web", "tcp"),
	}},
	{"CNP port range 7000-8080/TCP from anyone", cnpHeader + `metadata: {name: web-range}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - toPorts: [{ports: [{port: "7000", endPort: 8080, protocol: TCP}]}]
`, []probe{
		allow("client", "web", "tcp"), allow("client", "web", "http"), deny("client", "web", "udp"),
		v6(allow("api", "web", "http")), deny("other", "web", "icmp"),
	}},
	{"CNP deny wins over allow-all", cnpHeader + `metadata: {name: web-deny-other}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEntities: [all]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: other}}]
`, []probe{
		allow("client", "web", "tcp"), allow("client", "web", "udp"), deny("other", "web", "tcp"),
		deny("other", "web", "udp"), deny("other", "web", "icmp"), v6(deny("other", "web", "tcp")), allow("api", "web", "tcp"),
	}},
	{"CCNP: cluster may talk, but never to 8080/TCP", `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: no-8080}
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [cluster]
  ingressDeny:
  - toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`, []probe{
		deny("client", "web", "http"), allow("client", "web", "tcp"), allow("api", "db", "tcp"),
		deny("api", "db", "http"), v6(deny("db", "client", "http")), allow("db", "client", "udp"),
	}},
	{"CNP egress: client may reach web on 7000/TCP only", cnpHeader + `metadata: {name: client-out}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "7000", protocol: TCP}]}]
`, []probe{
		allow("client", "web", "tcp"), deny("client", "web", "udp"), deny("client", "db", "tcp"),
		deny("client", "other", "icmp"), allow("other", "web", "udp"), allow("web", "client", "tcp"),
	}},
	{"CNP egress: empty rule is default deny, replies still pass", cnpHeader + `metadata: {name: client-lockdown}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress: [{}]
`, []probe{
		deny("client", "web", "tcp"), deny("client", "web", "icmp"), v6(deny("client", "web", "udp")),
		allow("web", "client", "tcp"), allow("web", "client", "udp"), allow("web", "client", "icmp"),
	}},
	{"CNP ICMP: echo requests only", cnpHeader + `metadata: {name: web-icmp}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - icmps: [{fields: [{type: 8, family: IPv4}, {type: 128, family: IPv6}]}]
`, []probe{
		allow("client", "web", "icmp"), v6(allow("client", "web", "icmp")), deny("client", "web", "tcp"), deny("client", "web", "udp"),
	}},
	{"CNP namespaces: peers are scoped to the policy's namespace", cnpHeader + `metadata: {name: db-in, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: api}}]
  - fromEndpoints: [{matchLabels: {app: client, k8s:io.kubernetes.pod.namespace: default}}]
    toPorts: [{ports: [{port: "7001", protocol: UDP}]}]
`, []probe{
		allow("api", "db", "tcp"), allow("client", "db", "udp"), deny("client", "db", "tcp"),
		deny("web", "db", "udp"), allow("client", "web", "tcp"),
	}},
	{"CNP matchExpressions In / NotIn / Exists", cnpHeader + `metadata: {name: web-expr}
spec:
  endpointSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
  ingress:
  - fromEndpoints:
    - matchExpressions:
      - {key: app, operator: NotIn, values: [other]}
      - {key: app, operator: Exists}
`, []probe{
		allow("client", "web", "tcp"), deny("other", "web", "tcp"), deny("api", "web", "tcp"), v6(allow("client", "web", "udp")),
	}},
	{"NetworkPolicy: default deny ingress in default", knpHeader + `metadata: {name: default-deny}
spec:
  podSelector: {}
  policyTypes: [Ingress]
`, []probe{
		deny("client", "web", "tcp"), deny("web", "client", "udp"), deny("api", "web", "icmp"),
		allow("client", "db", "tcp"), allow("web", "api", "http"),
	}},
	{"NetworkPolicy: web admits app=client on 7000/TCP", knpHeader + `metadata: {name: web-allow}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 7000}]
`, []probe{
		allow("client", "web", "tcp"), v6(allow("client", "web", "tcp")), deny("client", "web", "udp"),
		deny("other", "web", "tcp"), deny("api", "web", "tcp"), allow("web", "client", "tcp"),
	}},
	{"NetworkPolicy: namespaceSelector and podSelector together, port range", knpHeader + `metadata: {name: db-from-default, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: default}}
      podSelector: {matchLabels: {app: client}}
    ports: [{protocol: TCP, port: 7000, endPort: 7001}, {protocol: UDP, port: 7001}]
`, []probe{
		allow("client", "db", "tcp"), allow("client", "db", "udp"), deny("other", "db", "tcp"),
		deny("api", "db", "tcp"), deny("client", "db", "http"),
	}},
	{"NetworkPolicy: egress only to prod", knpHeader + `metadata: {name: client-egress}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: prod}}}]
`, []probe{
		allow("client", "db", "tcp"), v6(allow("client", "api", "udp")), deny("client", "web", "tcp"),
		allow("web", "client", "tcp"),
	}},
}

// TestPrivilegedPolicyTruthTable checks every scenario with real TCP, UDP,
// HTTP and ICMP traffic between lab pods.
func TestPrivilegedPolicyTruthTable(t *testing.T) {
	l := newPolicyLab(t)
	n := l.runScenarios(t, truthTable)
	t.Logf("%d probes over %d scenarios", n, len(truthTable))
	if n < 60 {
		t.Errorf("truth table has %d probes, want at least 60", n)
	}
}

// TestPrivilegedPolicyModes runs agents in the other enforcement modes.
func TestPrivilegedPolicyModes(t *testing.T) {
	lockdown := cnpHeader + `metadata: {name: lockdown}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{}]
`
	t.Run("always", func(t *testing.T) {
		l := newPolicyLab(t, "--policy-enforcement=always")
		l.runScenarios(t, []scenario{
			{"always, no policy: nothing flows", "", []probe{deny("client", "web", "tcp"), deny("api", "db", "udp")}},
			{"always, with an allow", cnpHeader + `metadata: {name: web-open}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEntities: [all]}]
  egress: [{toEntities: [all]}]
---
` + cnpHeader + `metadata: {name: client-open}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress: [{toEntities: [all]}]
`, []probe{allow("client", "web", "tcp"), deny("other", "web", "tcp")}},
		})
	})
	t.Run("never", func(t *testing.T) {
		l := newPolicyLab(t, "--policy-enforcement=never")
		l.runScenarios(t, []scenario{{"never: policy ignored", lockdown, []probe{allow("client", "web", "tcp"), allow("other", "web", "icmp")}}})
	})
	t.Run("audit", func(t *testing.T) {
		l := newPolicyLab(t, "--policy-audit-mode")
		l.runScenarios(t, []scenario{{"audit: reported, not dropped", lockdown, []probe{allow("client", "web", "tcp"), allow("other", "web", "udp")}}})
		out := l.must("endpoint", "list")
		if !strings.Contains(out, "audit") {
			t.Errorf("endpoint list does not show audit enforcement:\n%s", out)
		}
	})
}
