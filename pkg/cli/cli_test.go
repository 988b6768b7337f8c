package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/config"
	"github.com/seta-net/seta/pkg/datapath/probe"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/ipam"
	"github.com/seta-net/seta/pkg/policy/api"
	"github.com/seta-net/seta/pkg/service"
)

// fakeAgent serves canned API answers on a unix socket and records the
// paths it was asked for, and each request in full.
type fakeAgent struct {
	socket string
	status v1.Status
	config v1.Config

	mu    sync.Mutex
	paths []string
	calls []fakeRequest

	// Policy state: imports parse with the real parser (api.Parse), so
	// errors are the agent's own; revision counts changes.
	policies []v1.PolicyDetail
	revision uint64
	// trace is the answer of GET /v1/policy/trace.
	trace v1.Trace
	// identities is the answer of GET /v1/identities.
	identities []v1.IdentityInfo
	// endpoints, if set, answers the n-th GET /v1/endpoints (from 1);
	// fixtureEndpoints otherwise.
	endpoints func(n int) []endpoint.Endpoint
	epCalls   int
	// services backs the service routes (service_test.go).
	services *service.Table
}

// fakeRequest is one request the fake agent got.
type fakeRequest struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
}

func (a *fakeAgent) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...)
}

// requestsTo returns the requests with the given method and path.
func (a *fakeAgent) requestsTo(method, path string) []fakeRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []fakeRequest
	for _, r := range a.calls {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func fixtureStatus() v1.Status {
	var feats []v1.Feature
	for i, n := range []string{probe.FeatSchedCLS, probe.FeatHashMap, probe.FeatPerCPUHash, probe.FeatLPMTrie,
		probe.FeatRingBuf, probe.FeatRedirectPeer, probe.FeatKernelBTF, probe.FeatTCX} {
		feats = append(feats, v1.Feature{Name: n, Status: v1.FeatureSupported, Required: i < 3, MinKernel: "5." + string(rune('0'+i))})
	}
	return v1.Status{
		Version:   "v0.1.0-test",
		NodeName:  "node1",
		StartedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Uptime:    "1h2m3s",
		Endpoints: 2,
		IPAM: []ipam.PoolStatus{
			{CIDR: "10.244.1.0/24", Gateway: "10.244.1.1", Used: 3, Capacity: 253},
			{CIDR: "fd00:5e7a:0:1::/64", Gateway: "fd00:5e7a:0:1::1", Used: 3, Capacity: 1 << 20},
		},
		Datapath: v1.DatapathStatus{Mode: "tcx", Kernel: "6.8.0-test", Features: feats, BPFRoot: "/sys/fs/bpf/seta"},
	}
}

var created = time.Date(2025, 1, 2, 3, 5, 0, 0, time.UTC)

var fixtureEndpoints = []endpoint.Endpoint{
	{
		ID: 7, ContainerID: "0123456789abcdef0123456789abcdef", IfName: "eth0", NetNS: "/var/run/netns/web",
		Network: "seta", PodName: "web", Namespace: "default", Labels: []string{"app=web", "tier=frontend"},
		IPv4: netip.MustParseAddr("10.244.1.2"), IPv6: netip.MustParseAddr("fd00:5e7a:0:1::2"),
		GatewayV4: netip.MustParseAddr("10.244.1.1"), GatewayV6: netip.MustParseAddr("fd00:5e7a:0:1::1"),
		HostIfName: "lxc0123456789a", HostIfIndex: 12, HostMAC: "02:00:00:00:00:01", PodMAC: "02:00:00:00:00:02",
		MTU: 1500, State: endpoint.StateReady, CreatedAt: created,
		Identity: 256, SecurityLabels: []string{"k8s:app=web", "k8s:io.kubernetes.pod.namespace=default", "k8s:tier=frontend"},
		Policy: &endpoint.PolicyStatus{Ingress: "enabled", Egress: "disabled", Revision: 5,
			Policies: []string{"CiliumNetworkPolicy/default/web"}},
	},
	{
		ID: 3, ContainerID: "short", IfName: "eth0", NetNS: "/var/run/netns/bare",
		IPv4:       netip.MustParseAddr("10.244.1.3"),
		HostIfName: "lxcshort", HostIfIndex: 13, State: endpoint.StateCreating, CreatedAt: created,
	},
}

// policyRoutes serves the policy and identity routes from the agent's
// state, like the real agent (pkg/api/server/policy.go) does.
func (a *fakeAgent) policyRoutes(mux *http.ServeMux, writeJSON func(http.ResponseWriter, int, any)) {
	writeErr := func(w http.ResponseWriter, status int, code, msg string) {
		writeJSON(w, status, v1.Error{Code: code, Message: msg})
	}
	parse := func(w http.ResponseWriter, r *http.Request) ([]*api.Policy, bool) {
		var req v1.PolicyImport
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeErr(w, 400, v1.CodeInvalid, "malformed request body: "+err.Error())
			return nil, false
		}
		var all []*api.Policy
		var errs []error
		for _, f := range req.Files {
			ps, err := api.Parse([]byte(f.Content), f.Name)
			if err != nil {
				errs = append(errs, err)
			}
			all = append(all, ps...)
		}
		if err := errors.Join(errs...); err != nil {
			writeErr(w, 400, v1.CodeInvalid, err.Error())
			return nil, false
		}
		return all, true
	}
	summary := func(p *api.Policy) v1.PolicySummary {
		return v1.PolicySummary{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name, Source: p.Source, Rules: len(p.Rules)}
	}
	mux.HandleFunc("POST /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		ps, ok := parse(w, r)
		if !ok {
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.revision++
		res := v1.PolicyImportResult{Revision: a.revision}
		for _, p := range ps {
			a.policies = slices.DeleteFunc(a.policies, func(d v1.PolicyDetail) bool {
				return d.Kind == p.Kind && d.Namespace == p.Namespace && d.Name == p.Name
			})
			a.policies = append(a.policies, v1.PolicyDetail{PolicySummary: summary(p), Spec: p.Rules})
			res.Policies = append(res.Policies, summary(p))
		}
		writeJSON(w, 200, res)
	})
	mux.HandleFunc("POST /v1/policy/validate", func(w http.ResponseWriter, r *http.Request) {
		ps, ok := parse(w, r)
		if !ok {
			return
		}
		var res v1.PolicyImportResult
		for _, p := range ps {
			res.Policies = append(res.Policies, summary(p))
		}
		writeJSON(w, 200, res)
	})
	mux.HandleFunc("GET /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		name, ns := r.URL.Query().Get("name"), r.URL.Query().Get("namespace")
		a.mu.Lock()
		defer a.mu.Unlock()
		out := v1.PolicyList{Revision: a.revision, Policies: []v1.PolicyDetail{}}
		for _, p := range a.policies {
			if name != "" && p.Name != name || ns != "" && p.Namespace != ns {
				continue
			}
			out.Policies = append(out.Policies, p)
		}
		if name != "" && len(out.Policies) == 0 {
			writeErr(w, 404, v1.CodeNotFound, fmt.Sprintf("no policy named %q", name))
			return
		}
		writeJSON(w, 200, out)
	})
	mux.HandleFunc("DELETE /v1/policy", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		a.mu.Lock()
		defer a.mu.Unlock()
		key := func(p v1.PolicyDetail) string { return p.Kind + "/" + p.Namespace + "/" + p.Name }
		res := v1.PolicyDeleteResult{Deleted: []string{}}
		if q.Get("all") == "true" {
			for _, p := range a.policies {
				res.Deleted = append(res.Deleted, key(p))
			}
			a.policies = nil
		} else {
			name, ns, kind := q.Get("name"), q.Get("namespace"), q.Get("kind")
			if name == "" {
				writeErr(w, 400, v1.CodeInvalid, "DELETE /v1/policy needs ?name= or ?all=true")
				return
			}
			var keep []v1.PolicyDetail
			for _, p := range a.policies {
				if p.Name == name && (ns == "" || p.Namespace == ns) && (kind == "" || strings.EqualFold(p.Kind, kind)) {
					res.Deleted = append(res.Deleted, key(p))
				} else {
					keep = append(keep, p)
				}
			}
			switch {
			case len(res.Deleted) == 0:
				writeErr(w, 404, v1.CodeNotFound, fmt.Sprintf("no policy named %q", name))
				return
			case len(res.Deleted) > 1:
				writeErr(w, 409, v1.CodeInvalid, fmt.Sprintf("%q names %d policies (%s); give --namespace or --kind",
					name, len(res.Deleted), strings.Join(res.Deleted, ", ")))
				return
			}
			a.policies = keep
		}
		a.revision++
		res.Revision = a.revision
		writeJSON(w, 200, res)
	})
	mux.HandleFunc("GET /v1/policy/trace", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		writeJSON(w, 200, a.trace)
	})
	mux.HandleFunc("GET /v1/identities", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		writeJSON(w, 200, a.identities)
	})
	mux.HandleFunc("GET /v1/identities/{id}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, id := range a.identities {
			if fmt.Sprint(id.ID) == r.PathValue("id") {
				writeJSON(w, 200, id)
				return
			}
		}
		writeErr(w, 404, v1.CodeNotFound, "no identity "+r.PathValue("id"))
	})
}

func startAgent(t *testing.T) *fakeAgent {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 90 { // unix socket paths are limited to 108 bytes
		var err error
		if dir, err = os.MkdirTemp("", "seta-cli"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	a := &fakeAgent{socket: filepath.Join(dir, "agent.sock"), status: fixtureStatus(), config: config.Defaults(),
		identities: []v1.IdentityInfo{
			{ID: 256, Labels: []string{"k8s:app=web", "k8s:io.kubernetes.pod.namespace=default"}, RefCount: 2},
			{ID: 1, Labels: []string{"reserved:host"}, RefCount: 1, Reserved: true},
			{ID: 257, Labels: []string{"k8s:app=db", "k8s:io.kubernetes.pod.namespace=default"}, UnusedSince: "2025-01-02T03:04:05Z"},
		}}
	a.config.BPFRoot = filepath.Join(dir, "bpf")

	writeJSON := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, v1.Health{Status: "ok"})
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, a.status) })
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, a.config) })
	mux.HandleFunc("GET /v1/endpoints", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		a.epCalls++
		eps := fixtureEndpoints
		if a.endpoints != nil {
			eps = a.endpoints(a.epCalls)
		}
		a.mu.Unlock()
		writeJSON(w, 200, eps)
	})
	mux.HandleFunc("GET /v1/endpoints/7", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, v1.EndpointDetail{Endpoint: fixtureEndpoints[0],
			Stats: &endpoint.Stats{RxPackets: 10, RxBytes: 1000, TxPackets: 20, TxBytes: 2000}})
	})
	mux.HandleFunc("GET /v1/endpoints/9", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"code":"not-found","message":"endpoint not found: 9"}`))
	})
	a.policyRoutes(mux, writeJSON)
	a.serviceRoutes(t, mux, writeJSON)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, v1.Error{Code: v1.CodeNotFound, Message: "no such API route: " + r.URL.Path})
	})

	ln, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		a.mu.Lock()
		a.paths = append(a.paths, r.URL.Path)
		a.calls = append(a.calls, fakeRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body})
		a.mu.Unlock()
		mux.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

// run executes seta with args and returns what it wrote.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.Execute()
	return out.String(), errb.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := run(t, args...)
	if err != nil {
		t.Fatalf("seta %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestStatusTable(t *testing.T) {
	a := startAgent(t)
	out := mustRun(t, "status", "--socket", a.socket)
	wantContains(t, "status", out, "ok (socket "+a.socket+")", "node1", "v0.1.0-test", "1h2m3s",
		"tcx", "6.8.0-test", "8 supported, 0 missing", "Endpoints:", "10.244.1.0/24", "3/253 used",
		"fd00:5e7a:0:1::/64", "IPv4 pool:", "IPv6 pool:")
	if strings.Contains(out, "MIN KERNEL") {
		t.Errorf("status without --verbose lists features:\n%s", out)
	}
	if got := a.requests(); len(got) != 2 || got[0] != "/v1/healthz" || got[1] != "/v1/status" {
		t.Errorf("requests = %v, want healthz then status", got)
	}

	out = mustRun(t, "--socket", a.socket, "status", "--verbose")
	wantContains(t, "status --verbose", out, "FEATURE", "MIN KERNEL", probe.FeatTCX, probe.FeatRedirectPeer, "supported", "5.7")
}

func TestStatusMissingFeature(t *testing.T) {
	a := startAgent(t)
	a.status.Datapath.Mode = "clsact"
	a.status.Datapath.Features[7].Status = v1.FeatureMissing
	out := mustRun(t, "status", "--socket", a.socket)
	wantContains(t, "status", out, "clsact", "7 supported, 1 missing", "optional missing: "+probe.FeatTCX)
}

func TestStatusJSON(t *testing.T) {
	a := startAgent(t)
	out := mustRun(t, "status", "-o", "json", "--socket", a.socket)
	var got struct {
		Socket   string `json:"socket"`
		Health   string `json:"health"`
		NodeName string `json:"nodeName"`
		Datapath struct {
			Mode     string       `json:"mode"`
			Features []v1.Feature `json:"features"`
		} `json:"datapath"`
		IPAM []ipam.PoolStatus `json:"ipam"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	if got.Health != "ok" || got.Socket != a.socket || got.NodeName != "node1" || got.Datapath.Mode != "tcx" ||
		len(got.Datapath.Features) != 8 || len(got.IPAM) != 2 || got.IPAM[0].Used != 3 {
		t.Errorf("status -o json = %+v", got)
	}

	out = mustRun(t, "status", "-o", "yaml", "--socket", a.socket)
	wantContains(t, "status -o yaml", out, "health: ok", "nodeName: node1", "mode: tcx")
}

func TestEndpointListTable(t *testing.T) {
	a := startAgent(t)
	out := mustRun(t, "endpoint", "list", "--socket", a.socket)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want header and 2 rows:\n%s", out)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") !=
		"ID POD CONTAINER IPV4 IPV6 INTERFACE STATE IDENTITY INGRESS EGRESS POLICY REV LABELS" {
		t.Errorf("header = %q", lines[0])
	}
	// Sorted by ID: 3 first, with "-" for what it lacks (also identity and policy).
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "3 - short 10.244.1.3 - lxcshort creating - - - - -" {
		t.Errorf("row 1 = %q", lines[1])
	}
	if f := strings.Fields(lines[2]); strings.Join(f, " ") !=
		"7 default/web 0123456789ab 10.244.1.2 fd00:5e7a:0:1::2 lxc0123456789a ready 256 enabled disabled 5 app=web,tier=frontend" {
		t.Errorf("row 2 = %q", lines[2])
	}

	// The aliases print the same.
	for _, args := range [][]string{{"endpoint", "ls"}, {"endpoints"}, {"endpoints", "list"}, {"ep", "ls"}} {
		if got := mustRun(t, append(args, "--socket", a.socket)...); got != out {
			t.Errorf("seta %s prints\n%s\nwant\n%s", strings.Join(args, " "), got, out)
		}
	}
}

func TestEndpointListJSONAndYAML(t *testing.T) {
	a := startAgent(t)
	for _, format := range []string{"json", "yaml"} {
		out := mustRun(t, "endpoint", "list", "-o", format, "--socket", a.socket)
		var eps []endpoint.Endpoint
		var err error
		if format == "json" {
			err = json.Unmarshal([]byte(out), &eps)
		} else {
			err = yaml.UnmarshalStrict([]byte(out), &eps)
		}
		if err != nil {
			t.Fatalf("-o %s: %v\n%s", format, err, out)
		}
		if len(eps) != 2 || eps[0].ID != 3 || eps[1].ID != 7 || eps[1].PodName != "web" ||
			eps[1].IPv6 != fixtureEndpoints[0].IPv6 || strings.Join(eps[1].Labels, ",") != "app=web,tier=frontend" {
			t.Errorf("-o %s: %+v", format, eps)
		}
	}
}

func TestEndpointGet(t *testing.T) {
	a := startAgent(t)
	out := mustRun(t, "endpoint", "get", "7", "--socket", a.socket)
	wantContains(t, "endpoint get 7", out, "default/web", "0123456789abcdef0123456789abcdef",
		"10.244.1.2 (gateway 10.244.1.1)", "lxc0123456789a (ifindex 12)", "app=web,tier=frontend",
		"RX (to pod):", "10 packets, 1000 bytes", "TX (from pod):", "20 packets, 2000 bytes",
		"Identity:", "256", "k8s:app=web,k8s:io.kubernetes.pod.namespace=default,k8s:tier=frontend",
		"Ingress policy:", "enabled", "Egress policy:", "disabled", "Policy revision:", "5",
		"Selected by:", "CiliumNetworkPolicy/default/web")
	if strings.Contains(out, "Policy audit:") {
		t.Errorf("endpoint get shows audit for an endpoint without it:\n%s", out)
	}

	out = mustRun(t, "endpoint", "get", "7", "-o", "json", "--socket", a.socket)
	var d v1.EndpointDetail
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if d.ID != 7 || d.Stats == nil || d.Stats.TxBytes != 2000 {
		t.Errorf("endpoint get 7 -o json = %+v", d)
	}
}

func TestEndpointGetNotFound(t *testing.T) {
	a := startAgent(t)
	_, _, err := run(t, "endpoint", "get", "9", "--socket", a.socket)
	if err == nil || !strings.Contains(err.Error(), "endpoint not found: 9") {
		t.Fatalf("err = %v, want the agent's not-found message", err)
	}
}

func TestEndpointGetBadID(t *testing.T) {
	a := startAgent(t)
	for _, id := range []string{"abc", "0", "65536", "1.5", "0x10"} {
		_, _, err := run(t, "endpoint", "get", id, "--socket", a.socket)
		if err == nil || !strings.Contains(err.Error(), "invalid endpoint ID") {
			t.Errorf("get %s: err = %v", id, err)
		}
	}
	for _, args := range [][]string{{"endpoint", "get"}, {"endpoint", "get", "1", "2"}} {
		if _, _, err := run(t, append(args, "--socket", a.socket)...); err == nil || !strings.Contains(err.Error(), "accepts 1 arg") {
			t.Errorf("%v: err = %v", args, err)
		}
	}
	if got := a.requests(); len(got) != 0 {
		t.Errorf("bad IDs reached the agent: %v", got)
	}
}

func TestUnreachableAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	files := writeFiles(t, "web.yaml", webCNP)
	for _, args := range [][]string{{"status"}, {"endpoint", "list"}, {"endpoint", "get", "1"},
		{"policy", "import", files[0]}, {"policy", "get"}, {"policy", "delete", "web"}, {"policy", "delete", "--all"},
		{"policy", "trace", "--src-labels", "a=b", "--dst-labels", "c=d"}, {"policy", "wait"},
		{"identity", "list"}, {"identity", "get", "1"}} {
		_, _, err := run(t, append(args, "--socket", sock)...)
		if err == nil || !strings.Contains(err.Error(), sock) {
			t.Errorf("%v: err = %v, want one naming %s", args, err, sock)
		}
	}
}

func TestInvalidOutputFormat(t *testing.T) {
	a := startAgent(t)
	for _, args := range [][]string{{"status"}, {"endpoint", "list"}, {"endpoint", "get", "7"}, {"version"},
		{"bpf", "endpoint", "list"}, {"bpf", "metrics", "list"}, {"bpf", "ct", "list"},
		{"policy", "import", "web.yaml"}, {"policy", "validate", "web.yaml"}, {"policy", "get"},
		{"policy", "delete", "web"}, {"policy", "trace", "--src-labels", "a=b", "--dst-labels", "c=d"},
		{"identity", "list"}, {"identity", "get", "1"}} {
		_, _, err := run(t, append(args, "-o", "xml", "--socket", a.socket)...)
		if err == nil || !strings.Contains(err.Error(), `unknown output format "xml"`) {
			t.Errorf("%v -o xml: err = %v", args, err)
		}
	}
	if got := a.requests(); len(got) != 0 {
		t.Errorf("commands with a bad -o reached the agent: %v", got)
	}
}

func TestVersion(t *testing.T) {
	a := startAgent(t)
	out, stderr, err := run(t, "version", "--socket", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, "version", out, "seta (CLI):", "seta-agent:", "v0.1.0-test")
	if stderr != "" {
		t.Errorf("stderr: %s", stderr)
	}

	sock := filepath.Join(t.TempDir(), "nobody.sock")
	out, stderr, err = run(t, "version", "--socket", sock)
	if err != nil {
		t.Fatalf("version with no agent must succeed: %v", err)
	}
	wantContains(t, "version", out, "seta (CLI):")
	if strings.Contains(out, "seta-agent") {
		t.Errorf("version shows an agent that is not there:\n%s", out)
	}
	wantContains(t, "version stderr", stderr, "note:", sock)
}

func TestBPFRootResolution(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	for _, args := range [][]string{{"bpf", "endpoint", "list"}, {"bpf", "metrics", "list"}} {
		_, _, err := run(t, append(args, "--socket", sock)...)
		if err == nil || !strings.Contains(err.Error(), "pass --bpf-root") || !strings.Contains(err.Error(), sock) {
			t.Errorf("%v with no agent: err = %v", args, err)
		}
	}

	// Given --bpf-root, the agent is not needed; the error is about the map.
	root := t.TempDir()
	_, _, err := run(t, "bpf", "endpoint", "list", "--bpf-root", root, "--socket", sock)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "seta_endpoints")) {
		t.Errorf("--bpf-root %s: err = %v", root, err)
	}

	// Without it, the agent says where the maps are.
	a := startAgent(t)
	_, _, err = run(t, "bpf", "metrics", "list", "--socket", a.socket)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(a.config.BPFRoot, "seta_metrics")) {
		t.Errorf("bpf root from the agent: err = %v", err)
	}
	if got := a.requests(); len(got) != 1 || got[0] != "/v1/config" {
		t.Errorf("requests = %v, want /v1/config", got)
	}
}

func TestCobraErrors(t *testing.T) {
	a := startAgent(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"status", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"status", "extra"}, `unknown command "extra" for "seta status"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "seta"`},
		{[]string{"endpoint", "lst"}, `unknown command "lst" for "seta endpoint"`},
		{[]string{"bpf", "nope"}, `unknown command "nope" for "seta bpf"`},
		{[]string{"policy", "imprt"}, `unknown command "imprt" for "seta policy"`},
		{[]string{"identity", "nope"}, `unknown command "nope" for "seta identity"`},
		{[]string{"policy", "wait", "extra"}, `unknown command "extra" for "seta policy wait"`},
		{[]string{"identity", "list", "extra"}, `unknown command "extra" for "seta identity list"`},
		{[]string{"endpoints", "nope"}, `invalid argument "nope"`},
		{[]string{"status", "--timeout", "-1s"}, "--timeout must not be negative"},
	}
	for _, c := range cases {
		_, _, err := run(t, append(c.args, "--socket", a.socket)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
	// A group alone prints its help and succeeds.
	out := mustRun(t, "endpoint")
	wantContains(t, "seta endpoint", out, "Available Commands:", "list", "get")
	out = mustRun(t, "policy")
	wantContains(t, "seta policy", out, "Available Commands:", "import", "validate", "get", "delete", "trace", "wait")
}

func TestSocketDefaultFromEnv(t *testing.T) {
	a := startAgent(t)
	t.Setenv("SETA_SOCKET", a.socket)
	out := mustRun(t, "endpoints")
	wantContains(t, "endpoints", out, "default/web")
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 42 * time.Second: "42s", 12*time.Minute + 5*time.Second: "12m",
		5*time.Hour + 3*time.Minute: "5h3m", 75*time.Hour + 30*time.Minute: "3d3h",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestEveryCommandDocumented(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "lab" && c.Parent() == c.Root() {
			return // pkg/lab's own
		}
		if c.Short == "" || c.Example == "" {
			t.Errorf("%q lacks a Short or an Example", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	root := NewRoot()
	walk(root)
	if root.Commands()[0].Root().Long == "" {
		t.Error("root has no Long help")
	}
}
