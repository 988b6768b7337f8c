package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The host firewall: nodeSelector rules of a clusterwide policy govern
// traffic to and from the node itself, from its pods and over its devices.
func TestPrivilegedHostFirewall(t *testing.T) {
	l := &policyLab{Lab: newLab(t, "--nodes", "2", "--agent-arg=--enable-host-firewall", "--agent-arg=--node-labels=role=worker"),
		ns: map[string]string{}, pods: map[string]podInfo{}}
	for _, p := range []struct{ name, labels string }{{"web", "app=web"}, {"client", "app=client"}, {"other", "app=other"}} {
		l.must("lab", "pod", "run", p.name, "--labels", p.labels, "--", "seta-nettool", "serve")
		l.ns[p.name] = "default"
	}
	for _, p := range l.pods2() {
		l.pods[p.Name] = p
	}
	l.waitServer2("client", "web")

	// A server on node1 itself, and a way to run probes from the nodes.
	node := func(n string) string { return "/run/netns/seta-" + l.Name + "-" + n }
	srv := exec.Command("nsenter", "--net="+node("node1"), filepath.Join(l.bin, "seta-nettool"), "serve", "--tcp", ":9000", "--udp", "", "--http", "")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	fromNode := func(n string, argv ...string) (string, error) {
		cmd := exec.Command("nsenter", append([]string{"--net=" + node(n), filepath.Join(l.bin, "seta-nettool")}, argv...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	toHost := func(pod string) (bool, string) {
		out, err := l.execIn(pod, "seta-nettool", "tcp", "10.244.1.1:9000", "--timeout", "700ms")
		return err == nil, out
	}
	deadline := time.Now().Add(5 * time.Second)
	for ok, _ := toHost("client"); !ok && time.Now().Before(deadline); ok, _ = toHost("client") {
	}

	// No host policy: the node is open.
	if ok, out := toHost("other"); !ok {
		t.Fatalf("no host policy, but the node is closed: %s", out)
	}
	if out, err := fromNode("node2", "tcp", "198.18.0.11:9000", "--timeout", "700ms"); err != nil {
		t.Fatalf("node2 -> node1 without host policy: %v %s", err, out)
	}

	l.apply(t, `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: host-in}
spec:
  nodeSelector: {matchLabels: {role: worker}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "9000", protocol: TCP}]}]
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
`)
	if ok, out := toHost("client"); !ok {
		t.Errorf("client -> node:9000 must be allowed: %s", out)
	}
	if ok, out := toHost("other"); ok || !blockedByNetwork(out) {
		t.Errorf("other -> node:9000 must be dropped: %s", out)
	}
	if out, err := fromNode("node2", "tcp", "198.18.0.11:9000", "--timeout", "700ms"); err == nil || !blockedByNetwork(out) {
		t.Errorf("node2 -> node1:9000 over the underlay must be dropped: %v %s", err, out)
	}
	if out, err := fromNode("node1", "tcp", hostport(l.pods["web"].IPv4, "7000"), "--timeout", "700ms"); err != nil {
		t.Errorf("node1 -> web must be allowed by the host's egress: %v %s", err, out)
	}
	if out, err := fromNode("node1", "tcp", hostport(l.pods["client"].IPv4, "7000"), "--timeout", "700ms"); err == nil || !blockedByNetwork(out) {
		t.Errorf("node1 -> client must be dropped by the host's egress: %v %s", err, out)
	}
	if out, err := fromNode("node1", "tcp", "198.18.0.12:7000", "--timeout", "700ms"); err == nil || !strings.Contains(out, "timeout") {
		t.Errorf("node1 -> node2 must be dropped by the host's egress: %v %s", err, out)
	}

	// A nodeSelector that matches no node's labels changes nothing.
	l.apply(t, `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: db-nodes}
spec:
  nodeSelector: {matchLabels: {role: db}}
  ingress: [{}]
`)
	if ok, out := toHost("other"); !ok {
		t.Errorf("a policy for other nodes closed this one: %s", out)
	}
}

func (l *policyLab) pods2() []podInfo {
	var ps []podInfo
	if err := jsonUnmarshal(l.must("lab", "pod", "list", "-o", "json"), &ps); err != nil {
		l.t.Fatal(err)
	}
	return ps
}
