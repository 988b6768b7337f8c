package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/endpoint"
)

const webCNP = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: web
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: client
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
`

// twoDocs holds a CNP with two rules (specs) and a cluster-wide policy.
const twoDocs = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: db
  namespace: prod
specs:
- endpointSelector:
    matchLabels:
      app: db
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: web
- endpointSelector:
    matchLabels:
      app: db
  egress:
  - toEntities:
    - world
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: deny-world
spec:
  endpointSelector: {}
  ingressDeny:
  - fromEntities:
    - world
`

// badCNP has an unknown field on line 10.
const badCNP = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: db
spec:
  endpointSelector:
    matchLabels:
      app: db
  ingress:
  - fromEndpoint:
    - matchLabels:
        app: web
`

// writeFiles writes name/content pairs into a new directory and returns
// their paths.
func writeFiles(t *testing.T, nameContent ...string) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i := 0; i+1 < len(nameContent); i += 2 {
		p := filepath.Join(dir, nameContent[i])
		if err := os.WriteFile(p, []byte(nameContent[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// runIn is run with standard input.
func runIn(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRoot()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.Execute()
	return out.String(), errb.String(), err
}

// rows returns the lines of out with their fields joined by single spaces.
func rows(out string) []string {
	var rs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rs = append(rs, strings.Join(strings.Fields(l), " "))
	}
	return rs
}

func TestPolicyImportSendsAllFilesInOneRequest(t *testing.T) {
	a := startAgent(t)
	files := writeFiles(t, "web.yaml", webCNP, "db.yaml", twoDocs)
	out := mustRun(t, "policy", "import", files[0], files[1], "--socket", a.socket)

	reqs := a.requestsTo("POST", "/v1/policy")
	if len(reqs) != 1 || len(a.requests()) != 1 {
		t.Fatalf("want exactly one request, POST /v1/policy; got %v", a.requests())
	}
	var sent v1.PolicyImport
	if err := json.Unmarshal(reqs[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	if len(sent.Files) != 2 || sent.Files[0].Name != files[0] || sent.Files[0].Content != webCNP ||
		sent.Files[1].Name != files[1] || sent.Files[1].Content != twoDocs {
		t.Errorf("request = %+v", sent)
	}

	got := rows(out)
	want := []string{
		"Revision: 1",
		"KIND NAMESPACE NAME RULES SOURCE",
		"CiliumNetworkPolicy default web 1 " + files[0] + "#1",
		"CiliumNetworkPolicy prod db 2 " + files[1] + "#1",
		"CiliumClusterwideNetworkPolicy - deny-world 1 " + files[1] + "#2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("import prints\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	out = mustRun(t, "policy", "import", files[0], "-o", "json", "--socket", a.socket)
	var res v1.PolicyImportResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if res.Revision != 2 || len(res.Policies) != 1 || res.Policies[0].Name != "web" {
		t.Errorf("-o json = %+v", res)
	}
}

func TestPolicyImportStdin(t *testing.T) {
	a := startAgent(t)
	out, _, err := runIn(t, webCNP, "policy", "import", "-", "--socket", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, "import -", out, "Revision: 1", "web", stdinName+"#1")
	var sent v1.PolicyImport
	json.Unmarshal(a.requestsTo("POST", "/v1/policy")[0].Body, &sent)
	if len(sent.Files) != 1 || sent.Files[0].Name != stdinName || sent.Files[0].Content != webCNP {
		t.Errorf("request = %+v", sent)
	}
}

func TestPolicyImportUnreadableFileFailsFirst(t *testing.T) {
	a := startAgent(t)
	files := writeFiles(t, "web.yaml", webCNP)
	missing := filepath.Join(filepath.Dir(files[0]), "missing.yaml")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{files[0], missing}, missing},
		{[]string{filepath.Dir(files[0])}, "is a directory"},
		{[]string{files[0], files[0]}, "given more than once"},
		{[]string{"-", "-"}, "more than once"},
	}
	for _, c := range cases {
		_, _, err := run(t, append(append([]string{"policy", "import"}, c.args...), "--socket", a.socket)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("import %v: err = %v, want %q", c.args, err, c.want)
		}
	}
	if _, _, err := run(t, "policy", "import", "--socket", a.socket); err == nil {
		t.Error("import without files succeeded")
	}
	if got := a.requests(); len(got) != 0 {
		t.Errorf("unreadable files reached the agent: %v", got)
	}
}

func TestPolicyImportRejected(t *testing.T) {
	a := startAgent(t)
	files := writeFiles(t, "web.yaml", webCNP, "bad.yaml", badCNP)
	out, _, err := run(t, "policy", "import", files[0], files[1], "--socket", a.socket)
	if err == nil {
		t.Fatalf("import of an invalid file succeeded:\n%s", out)
	}
	// The agent's parse error, as it is: file, document, line, field.
	wantContains(t, "import error", err.Error(), "no policy was changed",
		files[1]+": document 1 (CiliumNetworkPolicy default/db): line 10: spec.ingress[0].fromEndpoint: unknown field \"fromEndpoint\"")
	if out != "" {
		t.Errorf("failed import printed:\n%s", out)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.revision != 0 || len(a.policies) != 0 {
		t.Errorf("agent state changed: revision %d, %d policies", a.revision, len(a.policies))
	}
}

func TestPolicyValidate(t *testing.T) {
	// No agent: validate must not need one.
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	files := writeFiles(t, "web.yaml", webCNP, "db.yaml", twoDocs)
	out, stderr, err := run(t, "policy", "validate", files[0], files[1], "--socket", sock)
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, stderr)
	}
	if got, want := rows(out), []string{files[0] + ": 1 policy OK", files[1] + ": 2 policies OK"}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("validate prints\n%s\nwant\n%s", out, strings.Join(want, "\n"))
	}

	out = mustRun(t, "policy", "validate", files[1], "-o", "json", "--socket", sock)
	var res []validatedFile
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if len(res) != 1 || !res[0].OK || len(res[0].Policies) != 2 || res[0].Policies[0].Kind != "CiliumNetworkPolicy" ||
		res[0].Policies[0].Namespace != "prod" || res[0].Policies[0].Name != "db" || res[0].Policies[1].Name != "deny-world" {
		t.Errorf("-o json = %+v", res)
	}

	out, _, err = runIn(t, webCNP, "policy", "validate", "-", "--socket", sock)
	if err != nil || strings.TrimSpace(out) != stdinName+": 1 policy OK" {
		t.Errorf("validate -: %v\n%s", err, out)
	}
}

func TestPolicyValidateErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	files := writeFiles(t, "web.yaml", webCNP, "bad.yaml", badCNP)
	out, _, err := run(t, "policy", "validate", files[0], files[1], "--socket", sock)
	if err == nil {
		t.Fatalf("validate of an invalid file succeeded:\n%s", out)
	}
	wantContains(t, "validate error", err.Error(), "1 of 2 policy files are invalid",
		files[1]+": document 1 (CiliumNetworkPolicy default/db): line 10: spec.ingress[0].fromEndpoint: unknown field \"fromEndpoint\"")
	// The valid file is still reported.
	if strings.TrimSpace(out) != files[0]+": 1 policy OK" {
		t.Errorf("stdout:\n%s", out)
	}

	// The same policy in two files.
	dup := writeFiles(t, "a.yaml", webCNP, "b.yaml", webCNP)
	_, _, err = run(t, "policy", "validate", dup[0], dup[1], "--socket", sock)
	if err == nil || !strings.Contains(err.Error(), dup[1]+"#1: CiliumNetworkPolicy default/web is also defined in "+dup[0]+"#1") {
		t.Errorf("duplicate policy: err = %v", err)
	}

	// -o json lists the errors too, and still fails.
	out, _, err = run(t, "policy", "validate", files[1], "-o", "json", "--socket", sock)
	var res []validatedFile
	if err == nil || json.Unmarshal([]byte(out), &res) != nil || len(res) != 1 || res[0].OK || len(res[0].Errors) != 1 ||
		!strings.Contains(res[0].Errors[0], "line 10") {
		t.Errorf("validate -o json of a bad file: err = %v\n%s", err, out)
	}

	_, _, err = run(t, "policy", "validate", filepath.Join(filepath.Dir(files[0]), "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestPolicyGet(t *testing.T) {
	a := startAgent(t)
	files := writeFiles(t, "web.yaml", webCNP, "db.yaml", twoDocs)
	mustRun(t, "policy", "import", files[0], files[1], "--socket", a.socket)

	out := mustRun(t, "policy", "get", "--socket", a.socket)
	got := rows(out)
	want := []string{
		"Revision: 1",
		"KIND NAMESPACE NAME RULES SOURCE",
		"CiliumClusterwideNetworkPolicy - deny-world 1 " + files[1] + "#2",
		"CiliumNetworkPolicy default web 1 " + files[0] + "#1",
		"CiliumNetworkPolicy prod db 2 " + files[1] + "#1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("policy get prints\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	out = mustRun(t, "policy", "get", "db", "-n", "prod", "--socket", a.socket)
	if got := rows(out); len(got) != 3 || !strings.HasPrefix(got[2], "CiliumNetworkPolicy prod db 2") {
		t.Errorf("policy get db -n prod:\n%s", out)
	}
	q := a.requestsTo("GET", "/v1/policy")
	if last := q[len(q)-1].Query; last.Get("name") != "db" || last.Get("namespace") != "prod" {
		t.Errorf("query = %v", last)
	}

	out = mustRun(t, "policy", "get", "-n", "nowhere", "--socket", a.socket)
	wantContains(t, "policy get -n nowhere", out, "Revision: 1", "No policies in namespace nowhere.")

	for _, format := range []string{"json", "yaml"} {
		out = mustRun(t, "policy", "get", "web", "-o", format, "--socket", a.socket)
		var l v1.PolicyList
		var err error
		if format == "json" {
			err = json.Unmarshal([]byte(out), &l)
		} else {
			err = yaml.Unmarshal([]byte(out), &l)
		}
		if err != nil {
			t.Fatalf("-o %s: %v\n%s", format, err, out)
		}
		if l.Revision != 1 || len(l.Policies) != 1 || l.Policies[0].Name != "web" || l.Policies[0].Spec == nil {
			t.Errorf("-o %s = %+v", format, l)
		}
		wantContains(t, "-o "+format, out, "endpointSelector", "fromEndpoints")
	}

	_, _, err := run(t, "policy", "get", "nope", "--socket", a.socket)
	if err == nil || !strings.Contains(err.Error(), `no policy named "nope"`) {
		t.Errorf("get nope: err = %v", err)
	}
	if _, _, err := run(t, "policy", "get", "a", "b", "--socket", a.socket); err == nil {
		t.Error("get with two names succeeded")
	}
}

func TestPolicyDelete(t *testing.T) {
	a := startAgent(t)
	files := writeFiles(t, "web.yaml", webCNP, "db.yaml", twoDocs)
	mustRun(t, "policy", "import", files[0], files[1], "--socket", a.socket)

	out := mustRun(t, "policy", "delete", "web", "-n", "default", "--kind", "cnp", "--socket", a.socket)
	if got := rows(out); strings.Join(got, "\n") != "Deleted CiliumNetworkPolicy/default/web\nRevision: 2" {
		t.Errorf("delete web prints\n%s", out)
	}
	reqs := a.requestsTo("DELETE", "/v1/policy")
	if q := reqs[0].Query; len(reqs) != 1 || q.Get("name") != "web" || q.Get("namespace") != "default" ||
		q.Get("kind") != "CiliumNetworkPolicy" || q.Has("all") {
		t.Errorf("delete query = %v", q)
	}

	_, _, err := run(t, "policy", "delete", "web", "--socket", a.socket)
	if err == nil || !strings.Contains(err.Error(), `no policy named "web"`) {
		t.Errorf("deleting it again: err = %v", err)
	}

	out = mustRun(t, "policy", "delete", "--all", "--socket", a.socket)
	if got := rows(out); strings.Join(got, "\n") !=
		"Deleted CiliumNetworkPolicy/prod/db\nDeleted CiliumClusterwideNetworkPolicy//deny-world\nRevision: 3" {
		t.Errorf("delete --all prints\n%s", out)
	}
	reqs = a.requestsTo("DELETE", "/v1/policy")
	if q := reqs[len(reqs)-1].Query; q.Get("all") != "true" || q.Has("name") {
		t.Errorf("delete --all query = %v", q)
	}

	out = mustRun(t, "policy", "delete", "--all", "-o", "json", "--socket", a.socket)
	var res v1.PolicyDeleteResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Revision != 4 || len(res.Deleted) != 0 {
		t.Errorf("delete --all -o json: %v\n%s", err, out)
	}

	before := len(a.requests())
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "give the NAME of the policy to delete, or --all"},
		{[]string{"web", "--all"}, "not both"},
		{[]string{"web", "db"}, "accepts one policy NAME"},
		{[]string{"--all", "-n", "default"}, "takes no --namespace or --kind"},
		{[]string{"web", "--kind", "pod"}, `unknown policy kind "pod"`},
	} {
		_, _, err := run(t, append(append([]string{"policy", "delete"}, c.args...), "--socket", a.socket)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("delete %v: err = %v, want %q", c.args, err, c.want)
		}
	}
	if got := a.requests(); len(got) != before {
		t.Errorf("invalid deletes reached the agent: %v", got[before:])
	}
}

func TestPolicyTrace(t *testing.T) {
	a := startAgent(t)
	a.trace = v1.Trace{
		SrcIdentity: 300, DstIdentity: 256, Verdict: "dropped",
		Steps: []v1.TraceStep{
			{Direction: "egress", Enforced: true, Verdict: "allowed", Entry: "egress identity=256 80/TCP",
				Rules: []string{"CiliumNetworkPolicy/prod/client-out"}, Selecting: []string{"CiliumNetworkPolicy/prod/client-out"}},
			{Direction: "ingress", Enforced: true, Verdict: "dropped",
				Selecting: []string{"CiliumNetworkPolicy/prod/web", "NetworkPolicy/prod/lockdown"}},
		},
	}
	out := mustRun(t, "policy", "trace", "--src-labels", "app=client,io.kubernetes.pod.namespace=prod",
		"--dst-labels", "app=web", "--dst-labels", "k8s:io.kubernetes.pod.namespace=prod", "--dport", "80/tcp", "--socket", a.socket)
	wantContains(t, "trace", out,
		"Source:       app=client,io.kubernetes.pod.namespace=prod (namespace prod), identity 300",
		"Destination:  app=web,k8s:io.kubernetes.pod.namespace=prod (namespace prod), identity 256",
		"Port:         80/TCP",
		"Egress of the source:", "Ingress of the destination:",
		"enforced:     yes", "verdict:      allowed", "entry:        egress identity=256 80/TCP",
		"rules:        CiliumNetworkPolicy/prod/client-out",
		"selected by:  CiliumNetworkPolicy/prod/web, NetworkPolicy/prod/lockdown",
		"verdict:      dropped", "entry:        - (no entry matches)",
		"Final verdict: DROPPED (no rule allowed it; default deny by CiliumNetworkPolicy/prod/web, NetworkPolicy/prod/lockdown, ingress of the destination)")
	reqs := a.requestsTo("GET", "/v1/policy/trace")
	if q := reqs[0].Query; len(reqs) != 1 || q.Get("src") != "app=client,io.kubernetes.pod.namespace=prod" ||
		q.Get("dst") != "app=web,k8s:io.kubernetes.pod.namespace=prod" || q.Get("dport") != "80/TCP" {
		t.Errorf("trace query = %v", q)
	}

	// A deny rule, and no --dport: the namespace is "default", the port any.
	a.trace.Verdict = "denied"
	a.trace.Steps[1] = v1.TraceStep{Direction: "ingress", Enforced: true, Verdict: "denied",
		Entry: "ingress identity=300 any/any", Rules: []string{"CiliumClusterwideNetworkPolicy//deny-client"}}
	out = mustRun(t, "policy", "trace", "--src-labels", "app=client", "--dst-labels", "app=web", "--socket", a.socket)
	wantContains(t, "trace (deny)", out, "(namespace default)", "Port:         any",
		"Final verdict: DENIED (deny rule in CiliumClusterwideNetworkPolicy//deny-client, ingress of the destination)")
	if q := a.requestsTo("GET", "/v1/policy/trace")[1].Query; q.Has("dport") {
		t.Errorf("trace without --dport sent dport: %v", q)
	}

	a.trace.Verdict = "allowed"
	a.trace.Steps[1] = v1.TraceStep{Direction: "ingress", Verdict: "allowed", Entry: "ingress identity=any any/any",
		Rules: []string{"enforcement disabled"}}
	out = mustRun(t, "policy", "trace", "--src-labels", "app=client", "--dst-labels", "app=web", "--socket", a.socket)
	wantContains(t, "trace (allowed)", out, "enforced:     no", "selected by:  -", "rules:        enforcement disabled",
		"Final verdict: ALLOWED")

	out = mustRun(t, "policy", "trace", "--src-labels", "app=client", "--dst-labels", "app=web", "-o", "json", "--socket", a.socket)
	var tr v1.Trace
	if err := json.Unmarshal([]byte(out), &tr); err != nil || tr.Verdict != "allowed" || len(tr.Steps) != 2 || tr.SrcIdentity != 300 {
		t.Errorf("trace -o json: %v\n%s", err, out)
	}

	before := len(a.requests())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--src-labels", "app=client"}, `required flag(s) "dst-labels" not set`},
		{[]string{"--src-labels", "app=client", "--dst-labels", "bad label"}, "--dst-labels: invalid label"},
		{[]string{"--src-labels", "=x", "--dst-labels", "app=web"}, "--src-labels: invalid label"},
		{[]string{"--src-labels", "a=b", "--dst-labels", "c=d", "--dport", "http"}, `invalid --dport "http"`},
		{[]string{"--src-labels", "a=b", "--dst-labels", "c=d", "--dport", "80/QUIC"}, `unknown protocol "QUIC"`},
		{[]string{"--src-labels", "a=b", "--dst-labels", "c=d", "--dport", "70000/TCP"}, `invalid --dport`},
	} {
		_, _, err := run(t, append(append([]string{"policy", "trace"}, c.args...), "--socket", a.socket)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("trace %v: err = %v, want %q", c.args, err, c.want)
		}
	}
	if got := a.requests(); len(got) != before {
		t.Errorf("invalid traces reached the agent: %v", got[before:])
	}
}

// withRevisions returns the fixture endpoints with endpoint 3 ready and the
// given policy revisions.
func withRevisions(rev3, rev7 uint64) []endpoint.Endpoint {
	eps := []endpoint.Endpoint{fixtureEndpoints[0], fixtureEndpoints[1]}
	p7 := *eps[0].Policy
	p7.Revision = rev7
	eps[0].Policy = &p7
	eps[1].State = endpoint.StateReady
	eps[1].Policy = &endpoint.PolicyStatus{Ingress: "disabled", Egress: "disabled", Revision: rev3}
	return eps
}

func TestPolicyWait(t *testing.T) {
	a := startAgent(t)
	a.revision = 5
	// Endpoint 7 catches up on the third poll.
	a.endpoints = func(n int) []endpoint.Endpoint {
		if n < 3 {
			return withRevisions(5, 4)
		}
		return withRevisions(5, 6)
	}
	out := mustRun(t, "policy", "wait", "--timeout", "5s", "--socket", a.socket)
	if strings.TrimSpace(out) != "all 2 endpoints run policy revision 5" {
		t.Errorf("wait prints %q", out)
	}
	if n := len(a.requestsTo("GET", "/v1/endpoints")); n != 3 {
		t.Errorf("wait polled %d times, want 3", n)
	}
	if n := len(a.requestsTo("GET", "/v1/policy")); n != 1 {
		t.Errorf("wait asked for the revision %d times, want 1", n)
	}
}

func TestPolicyWaitTimeout(t *testing.T) {
	a := startAgent(t)
	a.revision = 5
	a.endpoints = func(int) []endpoint.Endpoint {
		eps := withRevisions(5, 4)
		// Endpoints being created without a policy, or being deleted, do not count.
		eps = append(eps, endpoint.Endpoint{ID: 20, State: endpoint.StateCreating},
			endpoint.Endpoint{ID: 21, State: endpoint.StateDeleting, Policy: &endpoint.PolicyStatus{Revision: 1}},
			endpoint.Endpoint{ID: 22, State: endpoint.StateReady})
		return eps
	}
	_, _, err := run(t, "policy", "wait", "--timeout", "300ms", "--socket", a.socket)
	if err == nil {
		t.Fatal("wait succeeded with a lagging endpoint")
	}
	want := "timed out after 300ms: 2 of 3 endpoints do not run policy revision 5 yet: endpoint 7 (revision 4), endpoint 22 (no policy status)"
	if err.Error() != want {
		t.Errorf("err = %v\nwant  %s", err, want)
	}
	if n := len(a.requestsTo("GET", "/v1/endpoints")); n < 2 || n > 5 {
		t.Errorf("wait polled %d times in 300ms at 100ms intervals", n)
	}

	// An explicit revision: 4 is reached, 6 is not (yet imported).
	a.endpoints = func(int) []endpoint.Endpoint { return withRevisions(5, 4) }
	out := mustRun(t, "policy", "wait", "--revision", "4", "--socket", a.socket)
	if strings.TrimSpace(out) != "all 2 endpoints run policy revision 4" {
		t.Errorf("wait --revision 4 prints %q", out)
	}
	_, stderr, err := run(t, "policy", "wait", "--revision", "6", "--timeout", "150ms", "--socket", a.socket)
	if err == nil || !strings.Contains(err.Error(), "endpoint 3 (revision 5), endpoint 7 (revision 4)") {
		t.Errorf("wait --revision 6: err = %v", err)
	}
	wantContains(t, "wait --revision 6 stderr", stderr, "agent is at policy revision 5")

	for _, d := range []string{"0s", "-1s", "11m"} {
		_, _, err := run(t, "policy", "wait", "--timeout", d, "--socket", a.socket)
		if err == nil || !strings.Contains(err.Error(), "--timeout must be") {
			t.Errorf("--timeout %s: err = %v", d, err)
		}
	}
}

func TestIdentityList(t *testing.T) {
	a := startAgent(t)
	out := mustRun(t, "identity", "list", "--socket", a.socket)
	want := []string{
		"ID LABELS REFS",
		"1 reserved:host 1",
		"256 k8s:app=web,k8s:io.kubernetes.pod.namespace=default 2",
		"257 k8s:app=db,k8s:io.kubernetes.pod.namespace=default 0",
	}
	if got := rows(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("identity list prints\n%s\nwant\n%s", out, strings.Join(want, "\n"))
	}
	if got := mustRun(t, "identity", "ls", "--socket", a.socket); got != out {
		t.Errorf("identity ls differs:\n%s", got)
	}

	out = mustRun(t, "identity", "list", "-o", "json", "--socket", a.socket)
	var ids []v1.IdentityInfo
	if err := json.Unmarshal([]byte(out), &ids); err != nil || len(ids) != 3 || ids[0].ID != 1 || !ids[0].Reserved {
		t.Errorf("identity list -o json: %v\n%s", err, out)
	}
}

func TestIdentityGet(t *testing.T) {
	a := startAgent(t)
	out := mustRun(t, "identity", "get", "257", "--socket", a.socket)
	wantContains(t, "identity get 257", out, "ID:", "257", "k8s:app=db,k8s:io.kubernetes.pod.namespace=default",
		"References:", "Reserved:", "no", "Unused since:", "2025-01-02T03:04:05Z")

	out = mustRun(t, "identity", "get", "1", "-o", "yaml", "--socket", a.socket)
	wantContains(t, "identity get 1 -o yaml", out, "id: 1", "reserved: true", "- reserved:host")

	_, _, err := run(t, "identity", "get", "999", "--socket", a.socket)
	if err == nil || !strings.Contains(err.Error(), "no identity 999") || !strings.Contains(err.Error(), "seta identity list") {
		t.Errorf("get 999: err = %v", err)
	}
	before := len(a.requests())
	for _, id := range []string{"abc", "0", "1.5", "4294967296"} {
		if _, _, err := run(t, "identity", "get", id, "--socket", a.socket); err == nil || !strings.Contains(err.Error(), "invalid identity") {
			t.Errorf("get %s: err = %v", id, err)
		}
	}
	if got := a.requests(); len(got) != before {
		t.Errorf("bad identities reached the agent: %v", got[before:])
	}
}
