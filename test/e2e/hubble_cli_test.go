package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/testutils"
)

// hubbleCLIPath builds (or finds in its cache) the stock Hubble CLI with
// hack/hubble-cli.sh. A failed build fails the test: CI can reach the Go
// module proxy, and an interop test that skips proves nothing.
func hubbleCLIPath(t *testing.T) string {
	t.Helper()
	root := testutils.ModuleRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "hubble-cli.sh"))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("hack/hubble-cli.sh: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	path := strings.TrimSpace(lines[len(lines)-1])
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		t.Fatalf("hack/hubble-cli.sh printed %q, not a binary: %v\n%s", path, err, stderr.String())
	}
	t.Logf("hubble CLI: %s (%s)\n%s", path, time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr.String()))
	return path
}

// hubbleCLI runs the stock CLI against one node, with nothing but
// HUBBLE_SERVER (as `seta lab env` prints it) telling it where to go.
type hubbleCLI struct {
	t   *testing.T
	bin string
	env []string
}

func newHubbleCLI(t *testing.T, bin, server string) *hubbleCLI {
	// No HUBBLE_* from the caller's environment and no config file of the
	// caller's: the CLI sees only what the test gives it.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HUBBLE_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	home := t.TempDir()
	env = append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "HUBBLE_SERVER="+server)
	return &hubbleCLI{t: t, bin: bin, env: env}
}

func (h *hubbleCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = h.env
	return cmd
}

// run runs one hubble command to completion.
func (h *hubbleCLI) run(args ...string) (stdout, stderr string, err error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	cmd := h.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// hubbleFlow is the part of a `hubble observe -o json` line the test reads
// (GetFlowsResponse in proto3's JSON mapping, as the CLI prints it).
type hubbleFlow struct {
	Flow *struct {
		Time           time.Time `json:"time"`
		Verdict        string    `json:"verdict"`
		DropReasonDesc string    `json:"drop_reason_desc"`
		Source         struct {
			Namespace string `json:"namespace"`
			PodName   string `json:"pod_name"`
		} `json:"source"`
		Destination struct {
			Namespace string `json:"namespace"`
			PodName   string `json:"pod_name"`
		} `json:"destination"`
		L4 struct {
			TCP *struct {
				DestinationPort uint32 `json:"destination_port"`
			} `json:"TCP"`
		} `json:"l4"`
		TrafficDirection string `json:"traffic_direction"`
	} `json:"flow"`
	NodeName string `json:"node_name"`
}

func (f hubbleFlow) String() string {
	if f.Flow == nil {
		return "(no flow)"
	}
	port := uint32(0)
	if f.Flow.L4.TCP != nil {
		port = f.Flow.L4.TCP.DestinationPort
	}
	return f.Flow.Source.Namespace + "/" + f.Flow.Source.PodName + " -> " + f.Flow.Destination.Namespace + "/" +
		f.Flow.Destination.PodName + ":" + strconv.Itoa(int(port)) + " " + f.Flow.Verdict + " " + f.Flow.DropReasonDesc
}

// parseFlows parses `-o json` output, one GetFlowsResponse a line; lines
// that carry no flow (lost-event notices) are skipped.
func parseFlows(t *testing.T, out string) []hubbleFlow {
	t.Helper()
	var flows []hubbleFlow
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var f hubbleFlow
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("hubble printed a line that is not JSON: %v\n%s", err, line)
		}
		if f.Flow != nil {
			flows = append(flows, f)
		}
	}
	return flows
}

// isPolicyDrop reports whether f is the drop of other -> web:7000/TCP.
func isPolicyDrop(f hubbleFlow, from string) bool {
	return f.Flow != nil && f.Flow.Verdict == "DROPPED" && f.Flow.DropReasonDesc == "POLICY_DENIED" &&
		f.Flow.Source.Namespace == "default" && f.Flow.Source.PodName == from &&
		f.Flow.Destination.Namespace == "default" && f.Flow.Destination.PodName == "web" &&
		f.Flow.L4.TCP != nil && f.Flow.L4.TCP.DestinationPort == 7000
}

// hubbleServerFromEnv takes HUBBLE_SERVER from `seta lab env` output.
func hubbleServerFromEnv(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export HUBBLE_SERVER="); ok {
			return strings.Trim(v, `'"`)
		}
	}
	t.Fatalf("seta lab env prints no HUBBLE_SERVER:\n%s", out)
	return ""
}

// TestPrivilegedHubbleCLI proves that an unmodified Hubble CLI, built from
// upstream at the version Seta's API comes from, works against a Seta node:
// status, observe (history, filters, output formats, follow), list nodes
// and namespaces, and a filter the server rejects.
func TestPrivilegedHubbleCLI(t *testing.T) {
	testutils.Privileged(t)
	bin := hubbleCLIPath(t)
	l := newPolicyLab(t)

	env := l.must("lab", "env")
	server := hubbleServerFromEnv(t, env)
	if want := "unix:///run/seta/lab/" + l.Name + "/nodes/node1/hubble.sock"; server != want {
		t.Errorf("seta lab env: HUBBLE_SERVER=%s, want %s", server, want)
	}
	h := newHubbleCLI(t, bin, server)

	if out, _, err := h.run("version"); err != nil || !strings.Contains(out, "v1.20.2") {
		t.Fatalf("hubble version: %v\n%s", err, out)
	}

	l.apply(t, cnpHeader+`metadata: {name: web-from-client}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "7000", protocol: TCP}]}]
`)
	if ok, out := l.check(allow("client", "web", "tcp")); !ok {
		t.Fatalf("client -> web 7000/TCP must be allowed:\n%s", out)
	}
	if ok, out := l.check(deny("other", "web", "tcp")); ok || !blockedByNetwork(out) {
		t.Fatalf("other -> web 7000/TCP must be dropped silently, got ok=%v:\n%s", ok, out)
	}

	// hubble observe --last 100 -o json: the drop is in the history, with
	// its reason, both pods and the port. Flows reach the ring a moment
	// after the packet, so poll briefly.
	var flows []hubbleFlow
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, stderr, err := h.run("observe", "--last", "100", "-o", "json")
		if err != nil {
			t.Fatalf("hubble observe --last 100 -o json: %v\n%s%s", err, out, stderr)
		}
		flows = parseFlows(t, out)
		if containsFlow(flows, func(f hubbleFlow) bool { return isPolicyDrop(f, "other") }) {
			t.Logf("hubble observe --last 100 -o json: %d flows, the policy drop among them", len(flows))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hubble observe --last 100 -o json: no DROPPED POLICY_DENIED flow default/other -> default/web:7000/TCP in %d flows:\n%s",
				len(flows), out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, f := range flows {
		if f.NodeName != "node1" {
			t.Errorf("flow %s: node_name %q, want node1", f, f.NodeName)
		}
	}

	// hubble status: health check, then ServerStatus.
	if out, stderr, err := h.run("status"); err != nil {
		t.Errorf("hubble status: %v\n%s%s", err, out, stderr)
	} else {
		for _, want := range []string{"Healthcheck (via " + server + "): Ok", "Current/Max Flows: ", "/4,095 (", "Flows/s: "} {
			if !strings.Contains(out, want) {
				t.Errorf("hubble status lacks %q:\n%s", want, out)
			}
		}
		t.Logf("hubble status:\n%s", out)
	}

	// Server-side filters: only drops from default/other, and at least one.
	out, stderr, err := h.run("observe", "--verdict", "DROPPED", "--from-pod", "default/other", "-o", "json")
	if err != nil {
		t.Fatalf("hubble observe --verdict DROPPED --from-pod default/other: %v\n%s%s", err, out, stderr)
	}
	flows = parseFlows(t, out)
	if len(flows) == 0 {
		t.Errorf("hubble observe --verdict DROPPED --from-pod default/other: no flows")
	}
	for _, f := range flows {
		if f.Flow.Verdict != "DROPPED" || f.Flow.Source.Namespace != "default" || f.Flow.Source.PodName != "other" {
			t.Errorf("hubble observe --verdict DROPPED --from-pod default/other returned %s", f)
		}
	}
	// The reverse filter matches none of them.
	out, stderr, err = h.run("observe", "--verdict", "DROPPED", "--from-pod", "default/client", "-o", "json")
	if err != nil {
		t.Errorf("hubble observe --verdict DROPPED --from-pod default/client: %v\n%s", err, stderr)
	} else if fl := parseFlows(t, out); len(fl) != 0 {
		t.Errorf("hubble observe --verdict DROPPED --from-pod default/client: client was never dropped, got %v", fl)
	}

	// Human-readable output, the way people use it.
	out, stderr, err = h.run("observe", "--pod", "default/client", "-o", "compact")
	if err != nil || !strings.Contains(out, "default/client") {
		t.Errorf("hubble observe --pod default/client -o compact: %v\n%s%s", err, out, stderr)
	}
	out, stderr, err = h.run("observe", "--from-pod", "default/other", "--print-node-name")
	if err != nil || !strings.Contains(out, "default/other") || !strings.Contains(out, "default/web:7000") ||
		!strings.Contains(out, "DROPPED") || !strings.Contains(out, "Policy denied") || !strings.Contains(out, "node1") {
		t.Errorf("hubble observe --from-pod default/other --print-node-name: %v\n%s%s", err, out, stderr)
	} else {
		t.Logf("hubble observe --from-pod default/other --print-node-name:\n%s", out)
	}

	// hubble list nodes (GetNodes) and list namespaces (GetNamespaces).
	out, stderr, err = h.run("list", "nodes")
	if err != nil || !strings.Contains(out, "node1") || !strings.Contains(out, "Connected") {
		t.Errorf("hubble list nodes: %v\n%s%s", err, out, stderr)
	} else {
		t.Logf("hubble list nodes:\n%s", out)
	}
	out, stderr, err = h.run("list", "namespaces")
	if err != nil || !strings.Contains(out, "default") {
		t.Errorf("hubble list namespaces: %v\n%s%s", err, out, stderr)
	}

	// hubble observe --follow: a drop that happens after the stream opened
	// arrives on it within seconds. --last 1 first replays the drop from
	// before, which shows the stream is open; the new drop comes after it.
	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := h.command(ctx, "observe", "--follow", "--last", "1", "--from-pod", "default/other", "-o", "json")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 64)
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			defer close(lines)
			sc := bufio.NewScanner(pipe)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		defer func() {
			// Stop the CLI this test started (by its PID), then reap it.
			cmd.Process.Kill()
			<-readerDone
			cmd.Wait()
		}()
		var seen []string
		// next waits for the next flow line on the stream.
		next := func(what string, within time.Duration) hubbleFlow {
			t.Helper()
			timeout := time.After(within)
			for {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatalf("hubble observe --follow ended while waiting for %s:\n%s\nstderr: %s", what, strings.Join(seen, "\n"), stderr.String())
					}
					seen = append(seen, line)
					if fl := parseFlows(t, line); len(fl) == 1 {
						return fl[0]
					}
				case <-timeout:
					t.Fatalf("hubble observe --follow: no %s within %s; got %d lines:\n%s\nstderr: %s",
						what, within, len(seen), strings.Join(seen, "\n"), stderr.String())
				}
			}
		}
		old := next("replay of the earlier drop", 5*time.Second)
		if !isPolicyDrop(old, "other") {
			t.Fatalf("hubble observe --follow --last 1 --from-pod default/other: replayed %s, want the earlier drop", old)
		}
		sent := time.Now()
		probe := make(chan string, 1)
		go func() {
			ok, out := l.check(deny("other", "web", "tcp"))
			if ok {
				out = "GOT THROUGH: " + out
			}
			probe <- out
		}()
		for {
			f := next("new drop", 5*time.Second)
			if f.Flow.Source.Namespace != "default" || f.Flow.Source.PodName != "other" {
				t.Errorf("hubble observe --follow --from-pod default/other returned %s", f)
			}
			if isPolicyDrop(f, "other") && f.Flow.Time.After(old.Flow.Time) {
				t.Logf("hubble observe --follow: the new drop arrived %s after the probe started", time.Since(sent).Round(time.Millisecond))
				break
			}
		}
		if out := <-probe; strings.HasPrefix(out, "GOT THROUGH") {
			t.Errorf("other -> web: %s", out)
		}
	})

	// A filter the server must reject (the CLI passes the IP through as
	// typed): non-zero exit, and the server's reason in the message.
	out, stderr, err = h.run("observe", "--from-ip", "10.0.0.300", "--last", "1")
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Errorf("hubble observe --from-ip 10.0.0.300: want a non-zero exit, got err=%v\n%s%s", err, out, stderr)
	} else if !strings.Contains(stderr, "InvalidArgument") || !strings.Contains(stderr, "10.0.0.300") {
		t.Errorf("hubble observe --from-ip 10.0.0.300: exit %d, but the message does not say why:\n%s%s", ee.ExitCode(), out, stderr)
	} else {
		t.Logf("hubble observe --from-ip 10.0.0.300: exit %d: %s", ee.ExitCode(), strings.TrimSpace(stderr))
	}
}

func containsFlow(flows []hubbleFlow, pred func(hubbleFlow) bool) bool {
	for _, f := range flows {
		if pred(f) {
			return true
		}
	}
	return false
}
