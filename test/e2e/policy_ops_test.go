package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const webOpen = cnpHeader + `metadata: {name: web-in}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
`

const webClosed = cnpHeader + `metadata: {name: web-in}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEndpoints: [{matchLabels: {app: nobody}}]}]
`

// Revoking an allow stops an established connection at its next packet,
// and the drops are counted by reason.
func TestPrivilegedPolicyRevokeAndOperations(t *testing.T) {
	l := newPolicyLab(t)
	l.apply(t, webOpen)

	var out bytes.Buffer
	stream := l.cmd("lab", "pod", "exec", "client", "--", "seta-nettool", "stream", hostport(l.pods["web"].IPv4, "7000"),
		"--duration", "8s", "--interval", "50ms", "--max-gap", "1s")
	stream.Stdout, stream.Stderr = &out, &out
	if err := stream.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	f := filepath.Join(t.TempDir(), "closed.yaml")
	os.WriteFile(f, []byte(webClosed), 0o644)
	l.must("policy", "import", f)
	if err := stream.Wait(); err == nil {
		t.Fatalf("the established connection survived the revocation:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "received=") {
		t.Errorf("stream output: %s", out.String())
	}

	// The agent explains the verdict, and counted the drops.
	tr := l.must("policy", "trace", "--src-labels", "app=client", "--dst-labels", "app=web", "--dport", "7000/TCP")
	if !strings.Contains(tr, "DROPPED") || !strings.Contains(tr, "web-in") {
		t.Errorf("trace:\n%s", tr)
	}
	if ok, o := l.check(deny("client", "web", "tcp")); ok {
		t.Errorf("still open after revocation: %s", o)
	}
	metrics := l.must("bpf", "metrics", "list")
	if !strings.Contains(metrics, "Policy denied") {
		t.Errorf("no policy drops counted:\n%s", metrics)
	}
	prom := l.must("lab", "metrics")
	for _, want := range []string{
		`seta_drop_count_total{direction="ingress",reason="Policy denied"}`,
		`seta_endpoint_state{endpoint_state="ready"} 5`,
		`seta_policy 1`,
	} {
		if !strings.Contains(prom, want) {
			t.Errorf("Prometheus metrics lack %s", want)
		}
	}

	// Per-endpoint audit mode lets the traffic through and says so.
	eps := l.must("endpoint", "list")
	var webID string
	for _, line := range strings.Split(eps, "\n") {
		if strings.Contains(line, "default/web") {
			webID = strings.Fields(line)[0]
		}
	}
	l.must("endpoint", "config", webID, "--policy-audit=true")
	if ok, o := l.check(allow("client", "web", "tcp")); !ok {
		t.Errorf("audit mode dropped: %s", o)
	}
	if got := l.must("endpoint", "get", webID); !strings.Contains(got, "audit") {
		t.Errorf("endpoint get does not show audit:\n%s", got)
	}
	l.must("endpoint", "config", webID, "--policy-audit=false")
	if ok, o := l.check(deny("client", "web", "tcp")); ok {
		t.Errorf("enforcing again, but open: %s", o)
	}

	// Policies and verdicts survive an agent restart.
	restartAgent(t, l.Lab)
	if got := l.must("policy", "get"); !strings.Contains(got, "web-in") {
		t.Errorf("policy lost across restart:\n%s", got)
	}
	if ok, o := l.check(deny("client", "web", "tcp")); ok {
		t.Errorf("open after restart: %s", o)
	}
	if ok, o := l.check(allow("web", "client", "tcp")); !ok {
		t.Errorf("web->client blocked after restart: %s", o)
	}
	// Identities: web's labels have one.
	if ids := l.must("identity", "list"); !strings.Contains(ids, "k8s:app=web") || !strings.Contains(ids, "reserved:host") {
		t.Errorf("identity list:\n%s", ids)
	}
}

// restartAgent stops node1's agent and lets `lab up` start it again.
func restartAgent(t *testing.T, l *Lab) {
	t.Helper()
	var st struct {
		Nodes []struct {
			AgentPID int `json:"agentPID"`
		} `json:"nodes"`
	}
	if err := jsonUnmarshal(l.must("lab", "status", "-o", "json"), &st); err != nil {
		t.Fatal(err)
	}
	p, err := os.FindProcess(st.Nodes[0].AgentPID)
	if err != nil {
		t.Fatal(err)
	}
	p.Signal(os.Interrupt)
	for i := 0; i < 200; i++ {
		if p.Signal(nilSignal) != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.must("lab", "up")
}

// A node configured with files alone: the agent applies a policy directory
// and follows its changes; an invalid file leaves the last good set.
func TestPrivilegedPolicyDirectory(t *testing.T) {
	dir := t.TempDir()
	l := newPolicyLab(t, "--policy-dir="+dir)
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	write("web.yaml", webClosed)
	waitFor("the directory's policy", func() bool { o, _ := l.run("policy", "get"); return strings.Contains(o, "web-in") })
	l.must("policy", "wait")
	if ok, o := l.check(deny("client", "web", "tcp")); ok {
		t.Errorf("policy from the directory not enforced: %s", o)
	}
	write("broken.yaml", cnpHeader+"metadata: {name: broken}\nspec: {endpointSelector: {}, ingres: []}\n")
	time.Sleep(3 * time.Second)
	if o, _ := l.run("policy", "get"); !strings.Contains(o, "web-in") || strings.Contains(o, "broken") {
		t.Errorf("an invalid file changed the applied set:\n%s", o)
	}
	os.Remove(filepath.Join(dir, "broken.yaml"))
	os.Remove(filepath.Join(dir, "web.yaml"))
	waitFor("the policy to leave", func() bool { o, _ := l.run("policy", "get"); return !strings.Contains(o, "web-in") })
	l.must("policy", "wait")
	if ok, o := l.check(allow("client", "web", "tcp")); !ok {
		t.Errorf("still closed after the file was removed: %s", o)
	}
}

// A policy that would overflow the policy map is refused whole, and the
// policies in force stay.
func TestPrivilegedPolicyOverflowRefused(t *testing.T) {
	l := newPolicyLab(t, "--policy-map-size=64")
	l.apply(t, webClosed)
	var b strings.Builder
	b.WriteString(cnpHeader + "metadata: {name: huge}\nspecs:\n")
	for i := 0; i < 80; i++ {
		b.WriteString("- endpointSelector: {}\n  ingress:\n  - fromEntities: [cluster]\n")
		b.WriteString("    toPorts: [{ports: [{port: \"" + itoa(10000+i) + "\", protocol: TCP}]}]\n")
	}
	f := filepath.Join(t.TempDir(), "huge.yaml")
	os.WriteFile(f, []byte(b.String()), 0o644)
	out, err := l.run("policy", "import", f)
	if err == nil || !strings.Contains(out, "does not fit") {
		t.Fatalf("an overflowing policy was not refused: %v\n%s", err, out)
	}
	if got := l.must("policy", "get"); strings.Contains(got, "huge") || !strings.Contains(got, "web-in") {
		t.Errorf("policies after the refusal:\n%s", got)
	}
	if ok, o := l.check(deny("client", "web", "tcp")); ok {
		t.Errorf("the policy in force stopped working: %s", o)
	}
	if st := l.must("status"); !strings.Contains(st, "1 refused (1 too large for the map)") {
		t.Errorf("the refusal is not counted in status:\n%s", st)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// An ICMP error about a connection the pod opened reaches it even when its
// ingress is closed: it is related to the tracked flow.
func TestPrivilegedPolicyICMPErrorsRelated(t *testing.T) {
	l := newPolicyLab(t)
	l.apply(t, cnpHeader+`metadata: {name: client-closed}
spec:
  endpointSelector: {matchLabels: {app: client}}
  ingress: [{}]
`)
	for _, ip := range []string{l.pods["web"].IPv4, l.pods["web"].IPv6} {
		// Nothing listens on UDP 9999: web's kernel answers with an ICMP
		// port unreachable, which the client sees as "connection refused".
		out, err := l.execIn("client", "seta-nettool", "udp", hostport(ip, "9999"), "--timeout", "1500ms")
		if err == nil || !strings.Contains(out, "refused") {
			t.Errorf("UDP to a closed port of %s: want the ICMP error to come back as refused, got %v\n%s", ip, err, out)
		}
	}
}
