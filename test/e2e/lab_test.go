// Package e2e drives the built binaries through `seta lab` the way a user
// would, and checks real traffic between lab pods. The tests are privileged
// (SETA_PRIVILEGED_TESTS=1, root) and remove their lab on exit, pass or fail.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/testutils"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// bins builds seta, seta-agent, seta-cni and seta-nettool once.
func bins(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "seta-e2e-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/seta", "./cmd/seta-agent", "./cmd/seta-cni", "./cmd/seta-nettool")
		cmd.Dir = testutils.ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Lab is a lab owned by one test.
type Lab struct {
	t    *testing.T
	Name string
	bin  string
	env  []string
}

func newLab(t *testing.T, extra ...string) *Lab {
	testutils.Privileged(t)
	bin := bins(t)
	l := &Lab{t: t, Name: testutils.RandName("e2e")[:9], bin: bin}
	l.env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "SETA_LAB="+l.Name,
		"SETA_SOCKET=/run/seta/lab/"+l.Name+"/nodes/node1/agent.sock",
		"HUBBLE_SERVER=unix:///run/seta/lab/"+l.Name+"/nodes/node1/hubble.sock")
	t.Cleanup(func() {
		out, err := l.run("lab", "down")
		if err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
		if t.Failed() {
			if b, err := os.ReadFile("/run/seta/lab/" + l.Name + "/nodes/node1/agent.log"); err == nil {
				t.Logf("agent log:\n%s", b)
			}
		}
	})
	args := append([]string{"lab", "up"}, extra...)
	l.must(args...)
	return l
}

func (l *Lab) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(l.bin, "seta"), args...)
	cmd.Env = l.env
	return cmd
}

func (l *Lab) run(args ...string) (string, error) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := l.cmd(args...)
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Env = l.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (l *Lab) must(args ...string) string {
	l.t.Helper()
	out, err := l.run(args...)
	if err != nil {
		l.t.Fatalf("seta %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// exec runs a command in a pod and returns its output and error.
func (l *Lab) exec(pod string, argv ...string) (string, error) {
	l.t.Helper()
	return l.run(append([]string{"lab", "pod", "exec", pod, "--"}, argv...)...)
}

type podInfo struct {
	Name string `json:"name"`
	Node string `json:"node"`
	IPv4 string `json:"ipv4"`
	IPv6 string `json:"ipv6"`
}

func (l *Lab) pods() map[string]podInfo {
	l.t.Helper()
	var ps []podInfo
	if err := json.Unmarshal([]byte(l.must("lab", "pod", "list", "-o", "json")), &ps); err != nil {
		l.t.Fatal(err)
	}
	out := map[string]podInfo{}
	for _, p := range ps {
		out[p.Name] = p
	}
	return out
}

// waitServer waits until the nettool server in a pod answers over TCP.
func (l *Lab) waitServer(from, addr string) {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := l.exec(from, "seta-nettool", "tcp", addr, "--timeout", "500ms")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("server %s never answered: %v\n%s", addr, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *Lab) nodeNetNS() string { return "/run/netns/seta-" + l.Name + "-node1" }

func hostport(ip, port string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + port
	}
	return ip + ":" + port
}

func TestPrivilegedLabTraffic(t *testing.T) {
	l := newLab(t)
	l.must("lab", "pod", "run", "server", "--labels", "app=web", "--", "seta-nettool", "serve")
	l.must("lab", "pod", "run", "client", "--", "sleep", "infinity")
	pods := l.pods()
	srv, cli := pods["server"], pods["client"]
	if srv.IPv4 == "" || srv.IPv6 == "" || cli.IPv4 == "" {
		t.Fatalf("pods lack addresses: %+v", pods)
	}
	l.waitServer("client", hostport(srv.IPv4, "7000"))

	for _, ip := range []string{srv.IPv4, srv.IPv6} {
		out, err := l.exec("client", "seta-nettool", "tcp", hostport(ip, "7000"), "--count", "3")
		if err != nil || strings.Count(out, "server: ping") != 3 {
			t.Errorf("TCP to %s: %v\n%s", ip, err, out)
		}
		out, err = l.exec("client", "seta-nettool", "udp", hostport(ip, "7001"), "--count", "3")
		if err != nil || strings.Count(out, "server: ping") != 3 {
			t.Errorf("UDP to %s: %v\n%s", ip, err, out)
		}
		out, err = l.exec("client", "ping", "-c", "2", "-W", "2", ip)
		if err != nil {
			t.Errorf("ICMP to %s: %v\n%s", ip, err, out)
		}
		out, err = l.exec("client", "seta-nettool", "http", "http://"+hostport(ip, "8080")+"/")
		if err != nil || strings.TrimSpace(out) != "server" {
			t.Errorf("HTTP to %s: %v\n%s", ip, err, out)
		}
	}

	// Pod to node: the gateway and the node's underlay address.
	for _, dst := range []string{"10.244.1.1", "fd00:5e7a:0:1::1", "198.18.0.11"} {
		if out, err := l.exec("client", "ping", "-c", "1", "-W", "2", dst); err != nil {
			t.Errorf("pod -> node %s: %v\n%s", dst, err, out)
		}
	}
	// Node to pod, from the node's namespace.
	for _, dst := range []string{srv.IPv4, srv.IPv6} {
		out, err := exec.Command("nsenter", "--net="+l.nodeNetNS(), filepath.Join(l.bin, "seta-nettool"), "tcp", hostport(dst, "7000")).CombinedOutput()
		if err != nil {
			t.Errorf("node -> pod %s: %v\n%s", dst, err, out)
		}
	}
	// A destination that no endpoint holds goes to the node's stack, which
	// answers that it has no route: not a silent blackhole.
	out, err := l.exec("client", "ping", "-c", "1", "-W", "2", "10.244.1.200")
	if err == nil || !strings.Contains(out, "Unreachable") {
		t.Errorf("ping to an unknown address: want ICMP unreachable, got err=%v\n%s", err, out)
	}

	// The CLI sees the endpoints through the agent and through the maps.
	sock := "/run/seta/lab/" + l.Name + "/nodes/node1/agent.sock"
	var eps []struct {
		PodName string `json:"podName"`
		IPv4    string `json:"ipv4"`
		Labels  []string
	}
	if err := json.Unmarshal([]byte(l.must("--socket", sock, "endpoint", "list", "-o", "json")), &eps); err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 {
		t.Fatalf("endpoint list: want 2, got %+v", eps)
	}
	bpfOut := l.must("--socket", sock, "bpf", "endpoint", "list")
	for _, ip := range []string{srv.IPv4, srv.IPv6, cli.IPv4} {
		if !strings.Contains(bpfOut, ip) {
			t.Errorf("bpf endpoint list lacks %s:\n%s", ip, bpfOut)
		}
	}
	status := l.must("--socket", sock, "status")
	if !strings.Contains(status, "tcx") {
		t.Errorf("status does not name the datapath mode:\n%s", status)
	}

	// Deleting a pod removes its endpoint.
	l.must("lab", "pod", "delete", "client")
	if err := json.Unmarshal([]byte(l.must("--socket", sock, "endpoint", "list", "-o", "json")), &eps); err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 {
		t.Errorf("after pod delete: want 1 endpoint, got %d", len(eps))
	}
}

func TestPrivilegedLabAgentRestartKeepsConnection(t *testing.T) {
	l := newLab(t)
	l.must("lab", "pod", "run", "server", "--", "seta-nettool", "serve")
	l.must("lab", "pod", "run", "client", "--", "sleep", "infinity")
	srv := l.pods()["server"]
	l.waitServer("client", hostport(srv.IPv4, "7000"))

	// A long-lived connection runs across an agent restart.
	var out bytes.Buffer
	stream := l.cmd("lab", "pod", "exec", "client", "--", "seta-nettool", "stream", hostport(srv.IPv4, "7000"),
		"--duration", "6s", "--interval", "50ms", "--max-gap", "1s")
	stream.Stdout, stream.Stderr = &out, &out
	if err := stream.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)

	var st struct {
		Nodes []struct {
			AgentPID int `json:"agentPID"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(l.must("lab", "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	pid := st.Nodes[0].AgentPID
	proc, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	proc.Signal(os.Interrupt)
	for i := 0; i < 100; i++ {
		if err := proc.Signal(syscall.Signal(0)); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// With no agent at all, traffic still flows.
	if o, err := l.exec("client", "seta-nettool", "tcp", hostport(srv.IPv6, "7000")); err != nil {
		t.Errorf("no traffic while the agent is down: %v\n%s", err, o)
	}
	l.must("lab", "up") // restarts the agent, which restores its endpoints
	if err := stream.Wait(); err != nil {
		t.Fatalf("long-lived connection broke across the agent restart: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "errors=0") {
		t.Errorf("stream summary: %s", out.String())
	}
	var eps []json.RawMessage
	sock := "/run/seta/lab/" + l.Name + "/nodes/node1/agent.sock"
	json.Unmarshal([]byte(l.must("--socket", sock, "endpoint", "list", "-o", "json")), &eps)
	if len(eps) != 2 {
		t.Errorf("after restart: want 2 endpoints restored, got %d", len(eps))
	}
}

func TestPrivilegedLabDownRemovesEverything(t *testing.T) {
	testutils.Privileged(t)
	bin := bins(t)
	name := testutils.RandName("e2e")[:9]
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	run := func(args ...string) string {
		// --name goes right after "lab", before any "--" of a pod command.
		cmd := exec.Command(filepath.Join(bin, "seta"), append([]string{args[0], "--name", name}, args[1:]...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("seta %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { exec.Command(filepath.Join(bin, "seta"), "lab", "down", "--name", name).Run() })
	run("lab", "up")
	again := run("lab", "up")
	if !strings.Contains(again, "running") {
		t.Errorf("second lab up should find the agent running:\n%s", again)
	}
	run("lab", "pod", "run", "p1", "--", "sleep", "infinity")
	st := readLabState(t, name)
	if st.Cgroup == "" || len(st.Pods) != 1 {
		t.Fatalf("lab state lacks the cgroup or the pod: %+v", st)
	}
	podEtc := "/etc/netns/" + st.Pods[0].NetNS
	for _, p := range []string{st.Cgroup, st.Nodes[0].Cgroup, podEtc} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("before down: %v", err)
		}
	}
	dnsPID := st.Nodes[0].DNS.PID
	if !alive(dnsPID, "dns-server --name "+name) {
		t.Errorf("cluster DNS (pid %d) not running before down", dnsPID)
	}
	run("lab", "down")
	for _, p := range []string{st.Cgroup, podEtc} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
	if !waitGone(dnsPID, "dns-server --name "+name) {
		t.Errorf("cluster DNS (pid %d) still running", dnsPID)
	}

	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "seta-"+name+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	for _, p := range []string{"/run/seta/lab/" + name, "/sys/fs/bpf/seta-lab/" + name} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
	if out := run("lab", "down"); !strings.Contains(out, "nothing to do") {
		t.Errorf("second down: %s", out)
	}
}

func TestPrivilegedLabTwoNodes(t *testing.T) {
	l := newLab(t, "--nodes", "2")
	l.must("lab", "pod", "run", "a", "--node", "node1", "--", "seta-nettool", "serve")
	l.must("lab", "pod", "run", "b", "--node", "node2", "--", "seta-nettool", "serve")
	pods := l.pods()
	a, b := pods["a"], pods["b"]
	if a.Node != "node1" || b.Node != "node2" {
		t.Fatalf("pods on the wrong nodes: %+v", pods)
	}
	l.waitServer("a", hostport(b.IPv4, "7000"))
	for _, c := range []struct{ from, to string }{{"a", b.IPv4}, {"a", b.IPv6}, {"b", a.IPv4}, {"b", a.IPv6}} {
		// The very first packet must get through at once: -W 1, no retries.
		if out, err := l.exec(c.from, "ping", "-c", "1", "-W", "1", c.to); err != nil {
			t.Errorf("ICMP %s -> %s: %v\n%s", c.from, c.to, err, out)
		}
		if out, err := l.exec(c.from, "seta-nettool", "tcp", hostport(c.to, "7000")); err != nil {
			t.Errorf("TCP %s -> %s: %v\n%s", c.from, c.to, err, out)
		}
		if out, err := l.exec(c.from, "seta-nettool", "udp", hostport(c.to, "7001")); err != nil {
			t.Errorf("UDP %s -> %s: %v\n%s", c.from, c.to, err, out)
		}
	}
	// Each node's agent only knows its own pod.
	for _, n := range []string{"node1", "node2"} {
		sock := "/run/seta/lab/" + l.Name + "/nodes/" + n + "/agent.sock"
		var eps []json.RawMessage
		json.Unmarshal([]byte(l.must("--socket", sock, "endpoint", "list", "-o", "json")), &eps)
		if len(eps) != 1 {
			t.Errorf("%s has %d endpoints, want 1", n, len(eps))
		}
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

var nilSignal = syscall.Signal(0)
