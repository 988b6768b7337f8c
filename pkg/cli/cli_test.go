package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
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
)

// fakeAgent serves canned API answers on a unix socket and records the
// paths it was asked for.
type fakeAgent struct {
	socket string
	status v1.Status
	config v1.Config

	mu    sync.Mutex
	paths []string
}

func (a *fakeAgent) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...)
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
	},
	{
		ID: 3, ContainerID: "short", IfName: "eth0", NetNS: "/var/run/netns/bare",
		IPv4:       netip.MustParseAddr("10.244.1.3"),
		HostIfName: "lxcshort", HostIfIndex: 13, State: endpoint.StateCreating, CreatedAt: created,
	},
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
	a := &fakeAgent{socket: filepath.Join(dir, "agent.sock"), status: fixtureStatus(), config: config.Defaults()}
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
	mux.HandleFunc("GET /v1/endpoints", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, fixtureEndpoints) })
	mux.HandleFunc("GET /v1/endpoints/7", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, v1.EndpointDetail{Endpoint: fixtureEndpoints[0],
			Stats: &endpoint.Stats{RxPackets: 10, RxBytes: 1000, TxPackets: 20, TxBytes: 2000}})
	})
	mux.HandleFunc("GET /v1/endpoints/9", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"code":"not-found","message":"endpoint not found: 9"}`))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, v1.Error{Code: v1.CodeNotFound, Message: "no such API route: " + r.URL.Path})
	})

	ln, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.paths = append(a.paths, r.URL.Path)
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
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "ID POD CONTAINER IPV4 IPV6 INTERFACE STATE LABELS" {
		t.Errorf("header = %q", lines[0])
	}
	// Sorted by ID: 3 first, with "-" for what it lacks.
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "3 - short 10.244.1.3 - lxcshort creating -" {
		t.Errorf("row 1 = %q", lines[1])
	}
	if f := strings.Fields(lines[2]); strings.Join(f, " ") !=
		"7 default/web 0123456789ab 10.244.1.2 fd00:5e7a:0:1::2 lxc0123456789a ready app=web,tier=frontend" {
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
		"RX (to pod):", "10 packets, 1000 bytes", "TX (from pod):", "20 packets, 2000 bytes")

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
	for _, args := range [][]string{{"status"}, {"endpoint", "list"}, {"endpoint", "get", "1"}} {
		_, _, err := run(t, append(args, "--socket", sock)...)
		if err == nil || !strings.Contains(err.Error(), sock) {
			t.Errorf("%v: err = %v, want one naming %s", args, err, sock)
		}
	}
}

func TestInvalidOutputFormat(t *testing.T) {
	a := startAgent(t)
	for _, args := range [][]string{{"status"}, {"endpoint", "list"}, {"endpoint", "get", "7"}, {"version"},
		{"bpf", "endpoint", "list"}, {"bpf", "metrics", "list"}} {
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
