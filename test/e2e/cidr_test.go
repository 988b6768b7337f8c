package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// CIDR rules need a peer outside the cluster: node2's own address on the
// underlay is one for the pods of node1 (no identity of the cluster maps
// it), reached over the lab's routes.
func TestPrivilegedPolicyCIDR(t *testing.T) {
	l := &policyLab{Lab: newLab(t, "--nodes", "2"), ns: map[string]string{}, pods: map[string]podInfo{}}
	for _, p := range []struct{ name, labels string }{{"web", "app=web"}, {"client", "app=client"}} {
		l.must("lab", "pod", "run", p.name, "--node", "node1", "--labels", p.labels, "--", "seta-nettool", "serve")
		l.ns[p.name] = "default"
	}
	for _, p := range l.pods2() {
		l.pods[p.Name] = p
	}
	node2 := "/run/netns/seta-" + l.Name + "-node2"
	srv := exec.Command("nsenter", "--net="+node2, filepath.Join(l.bin, "seta-nettool"), "serve", "--tcp", ":9000", "--udp", ":9001", "--http", "")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	l.waitServer2("client", "web")

	toExt := func(kind string) (bool, string) {
		argv := []string{"seta-nettool", "tcp", "198.18.0.12:9000", "--timeout", "700ms"}
		if kind == "udp" {
			argv = []string{"seta-nettool", "udp", "198.18.0.12:9001", "--timeout", "700ms"}
		}
		out, err := l.execIn("client", argv...)
		return err == nil, out
	}
	fromExt := func() (bool, string) {
		out, err := exec.Command("nsenter", "--net="+node2, filepath.Join(l.bin, "seta-nettool"), "tcp",
			hostport(l.pods["web"].IPv4, "7000"), "--timeout", "700ms").CombinedOutput()
		return err == nil, string(out)
	}
	cases := []struct {
		name      string
		policy    string
		check     func() (bool, string)
		wantAllow bool
	}{
		{"no policy", "", func() (bool, string) { return toExt("tcp") }, true},
		{"toCIDR the underlay", cnpHeader + `metadata: {name: c}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress: [{toCIDR: [198.18.0.0/24]}]
`, func() (bool, string) { return toExt("udp") }, true},
		{"toCIDRSet with the peer excepted", cnpHeader + `metadata: {name: c}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress: [{toCIDRSet: [{cidr: 198.18.0.0/24, except: [198.18.0.12/32]}]}]
`, func() (bool, string) { return toExt("tcp") }, false},
		{"toEntities world", cnpHeader + `metadata: {name: c}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress: [{toEntities: [world]}]
`, func() (bool, string) { return toExt("tcp") }, true},
		{"world allowed, the peer's /32 denied", cnpHeader + `metadata: {name: c}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress: [{toEntities: [world]}]
  egressDeny: [{toCIDR: [198.18.0.12/32]}]
`, func() (bool, string) { return toExt("tcp") }, false},
		{"toCIDR on the wrong port", cnpHeader + `metadata: {name: c}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress: [{toCIDR: [198.18.0.12/32], toPorts: [{ports: [{port: "9001", protocol: UDP}]}]}]
`, func() (bool, string) { return toExt("tcp") }, false},
		{"NetworkPolicy ipBlock", knpHeader + `metadata: {name: c}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 198.18.0.0/16}}]}]
`, func() (bool, string) { return toExt("tcp") }, true},
		{"NetworkPolicy ipBlock with except", knpHeader + `metadata: {name: c}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 198.18.0.0/16, except: [198.18.0.12/32]}}]}]
`, func() (bool, string) { return toExt("udp") }, false},
		{"fromCIDR admits the outside peer", cnpHeader + `metadata: {name: w}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromCIDR: [198.18.0.12/32]}]
`, fromExt, true},
		{"fromCIDR of another range", cnpHeader + `metadata: {name: w}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromCIDR: [198.18.1.0/24]}]
`, fromExt, false},
	}
	for _, c := range cases {
		l.apply(t, c.policy)
		got, out := c.check()
		if got != c.wantAllow {
			t.Errorf("%s: got through=%v, want %v\n%s", c.name, got, c.wantAllow, out)
		} else if !got && !blockedByNetwork(out) {
			t.Errorf("%s: failed, but not by a silent drop:\n%s", c.name, out)
		}
	}
}
