package e2e

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seta-net/seta/pkg/testutils"
)

// The service load-balancing tests run every behaviour in the two ways a
// pod's connection to a service is translated:
//
//   - socket: socket LB at the node cgroup's connect/sendmsg hooks (the
//     agent's default; every lab pod process runs in its node's cgroup);
//   - tc: socket LB off, so the pod's packets reach the VIP and the tc
//     program on its veth does DNAT and reverse NAT.
//
// NodePort from outside the node is the node device's program in both.
// Each mode gets one 2-node lab shared by its subtests, which run in order
// (later ones change the backend set).
var lbModes = []struct {
	name     string
	labArgs  []string
	socketLB bool
}{
	{"socket", nil, true},
	{"tc", []string{"--agent-arg=--enable-socket-lb=false"}, false},
}

func TestPrivilegedServiceLB(t *testing.T) {
	for _, m := range lbModes {
		t.Run(m.name, func(t *testing.T) { runServiceLB(t, m.labArgs, m.socketLB) })
	}
}

// External client on the underlay: an address on the nodes' own network
// that belongs to no node (nodes are .11, .12, ...).
const (
	extClientV4 = "198.18.0.200"
	extClientV6 = "fd00:5e7a:ffff::c8"
)

func runServiceLB(t *testing.T, labArgs []string, socketLB bool) {
	upArgs := append([]string{"--nodes", "2"}, labArgs...)
	l := newLab(t, upArgs...)
	// The agents run in the mode the subtests are named after: socket LB's
	// cgroup links are pinned exactly when it is on. Without this check a
	// "tc" run whose agents ignored the flag would pass on socket LB.
	for _, n := range []string{"node1", "node2"} {
		pins, _ := os.ReadDir(filepath.Join("/sys/fs/bpf/seta-lab", l.Name, n, "sock-links"))
		if (len(pins) > 0) != socketLB {
			t.Fatalf("%s: socket LB links pinned: %d, want socket LB on = %v", n, len(pins), socketLB)
		}
	}
	// Backends answer with their name and the client address they saw.
	for _, p := range []struct{ name, node, labels string }{
		{"w1", "node1", "app=web,hair=yes"},
		{"w2", "node2", "app=web"},
		{"w3", "node1", "app=web"},
	} {
		l.must("lab", "pod", "run", p.name, "--node", p.node, "--labels", p.labels, "--", "seta-nettool", "serve-peer")
	}
	l.must("lab", "pod", "run", "client", "--node", "node1", "--", "sleep", "infinity")
	l.must("lab", "pod", "run", "client2", "--node", "node2", "--", "sleep", "infinity")
	for _, svc := range [][]string{
		{"web", "--port", "80", "--target-port", "7000", "--selector", "app=web"},
		{"sticky", "--port", "80", "--target-port", "7000", "--selector", "app=web", "--affinity", "ClientIP"},
		{"none", "--port", "80", "--target-port", "7000", "--selector", "app=nothing"},
		{"self", "--port", "80", "--target-port", "7000", "--selector", "hair=yes"},
		{"wudp", "--port", "5353", "--target-port", "7001", "--protocol", "UDP", "--selector", "app=web"},
		{"np", "--type", "NodePort", "--port", "80", "--target-port", "7000", "--selector", "app=web"},
		{"nplocal", "--type", "NodePort", "--port", "80", "--target-port", "7000", "--selector", "app=web",
			"--external-traffic-policy", "Local"},
	} {
		l.createService(svc...)
	}
	pods := l.pods()
	for _, w := range []string{"w1", "w2", "w3"} {
		l.waitServer("client", hostport(pods[w].IPv4, "7000"))
	}
	svcs := l.lbServices()

	// The subtests run in this order: the later ones add and delete
	// backends, and the last restarts node1's agent.
	t.Run("distribution", func(t *testing.T) { testDistribution(l.on(t), svcs["web"], pods) })
	t.Run("affinity", func(t *testing.T) { testAffinity(l.on(t), svcs["sticky"]) })
	t.Run("no-backends", func(t *testing.T) { testNoBackends(l.on(t), svcs["none"]) })
	t.Run("hairpin", func(t *testing.T) { testHairpin(l.on(t), svcs["self"]) })
	t.Run("backends-under-load", func(t *testing.T) { testBackendsUnderLoad(l.on(t), svcs["web"]) })
	t.Run("udp-stickiness", func(t *testing.T) { testUDPStickiness(l.on(t), svcs["wudp"]) })
	t.Run("nodeport-from-outside", func(t *testing.T) { testNodePort(l.on(t), svcs["np"], svcs["nplocal"]) })
	t.Run("agent-restart", func(t *testing.T) { testAgentRestart(l.on(t), svcs["web"], upArgs) })
}

// on returns the lab bound to a subtest, so that its failures (Fatal
// included) are the subtest's.
func (l *Lab) on(t *testing.T) *Lab {
	c := *l
	c.t = t
	return &c
}

// lbService is a lab service as `seta lab service list -o json` shows it.
type lbService struct {
	Name       string   `json:"name"`
	ClusterIPs []string `json:"clusterIPs"`
	Ports      []struct {
		Port     int `json:"port"`
		NodePort int `json:"nodePort"`
	} `json:"ports"`
	Backends []string `json:"backends"`
}

func (l *Lab) lbServices() map[string]lbService {
	l.t.Helper()
	var ss []lbService
	if err := jsonUnmarshal(l.must("lab", "service", "list", "-o", "json"), &ss); err != nil {
		l.t.Fatal(err)
	}
	out := map[string]lbService{}
	for _, s := range ss {
		out[s.Name] = s
	}
	return out
}

// vips are the service's ClusterIP:port frontends, IPv4 then IPv6.
func (s lbService) vips() []string {
	var out []string
	for _, ip := range s.ClusterIPs {
		out = append(out, hostport(ip, strconv.Itoa(s.Ports[0].Port)))
	}
	return out
}

// connRec is one line of `seta-nettool conns`.
type connRec struct {
	seq          int
	at           time.Time
	took         time.Duration
	server, peer string // set on success
	err          string // set on failure
}

var connRE = regexp.MustCompile(`(?m)^conn seq=(\d+) at=(\d+) took=(\d+)us (?:server=(\S+) peer=(\S+)|error=(.+))$`)

func parseConns(out string) []connRec {
	var recs []connRec
	for _, m := range connRE.FindAllStringSubmatch(out, -1) {
		seq, _ := strconv.Atoi(m[1])
		ms, _ := strconv.ParseInt(m[2], 10, 64)
		us, _ := strconv.ParseInt(m[3], 10, 64)
		recs = append(recs, connRec{seq: seq, at: time.UnixMilli(ms), took: time.Duration(us) * time.Microsecond,
			server: m[4], peer: m[5], err: m[6]})
	}
	return recs
}

// conns runs `seta-nettool conns ADDR ARGS...` in a pod and parses its
// per-connection lines; the error is the tool's exit status.
func (l *Lab) conns(pod, addr string, args ...string) ([]connRec, string, error) {
	l.t.Helper()
	out, err := l.exec(pod, append([]string{"seta-nettool", "conns", addr}, args...)...)
	return checkedConns(l.t, out), out, err
}

// checkedConns parses conns output, failing the test if the tool did not
// get as far as connecting (a usage error, a missing binary).
func checkedConns(t *testing.T, out string) []connRec {
	t.Helper()
	recs := parseConns(out)
	if len(recs) == 0 || !strings.Contains(out, "\nconns: ok=") {
		t.Fatalf("conns printed no result:\n%s", brief(out))
	}
	return recs
}

// servers counts successful connections per server.
func servers(recs []connRec) map[string]int {
	out := map[string]int{}
	for _, r := range recs {
		if r.err == "" {
			out[r.server]++
		}
	}
	return out
}

// peerHost is the address part of a peer "host:port" / "[v6]:port".
func peerHost(peer string) string {
	ap, err := netip.ParseAddrPort(peer)
	if err != nil {
		return peer
	}
	return ap.Addr().String()
}

// mustReachService checks that one connection through addr works, so a
// subtest fails at once, and says why, when the service is not translated
// at all, rather than after a long run of failures.
func (l *Lab) mustReachService(pod, addr string) {
	l.t.Helper()
	if recs, out, err := l.conns(pod, addr, "--count", "1", "--timeout", "1s"); err != nil || recs[0].err != "" {
		l.t.Fatalf("%s cannot reach service %s at all: %v\n%s", pod, addr, err, brief(out))
	}
}

// Random selection reaches every backend, and the backend sees the
// client pod's own address (pod to ClusterIP is never SNATed).
func testDistribution(l *Lab, web lbService, pods map[string]podInfo) {
	t := l.t
	client := pods["client"]
	for _, vip := range web.vips() {
		l.mustReachService("client", vip)
		recs, out, err := l.conns("client", vip, "--count", "60")
		if err != nil {
			t.Errorf("60 connections to %s: %v\n%s", vip, err, brief(out))
			continue
		}
		got := servers(recs)
		// Each of 3 backends gets 20 on average; fewer than 5 of 60 happens
		// by chance with probability ~1e-5.
		for _, w := range []string{"w1", "w2", "w3"} {
			if got[w] < 5 {
				t.Errorf("%s: backend %s got %d of 60 connections (all: %v)", vip, w, got[w], got)
			}
		}
		if len(got) != 3 {
			t.Errorf("%s: connections reached %v, want exactly w1, w2, w3", vip, got)
		}
		want := client.IPv4
		if strings.HasPrefix(vip, "[") {
			want = client.IPv6
		}
		for _, r := range recs {
			if peerHost(r.peer) != want {
				t.Errorf("%s: backend %s saw the client as %s, want %s (no SNAT for pod to ClusterIP)", vip, r.server, r.peer, want)
				break
			}
		}
	}
	// By name, through the cluster DNS (itself a UDP ClusterIP service).
	if recs, out, err := l.conns("client", "web.default.svc.cluster.local:80", "--count", "6"); err != nil || len(servers(recs)) == 0 {
		t.Errorf("connections by DNS name: %v\n%s", err, brief(out))
	}
}

// ClientIP affinity: every connection of one pod reaches one backend.
func testAffinity(l *Lab, sticky lbService) {
	t := l.t
	if len(sticky.Backends) != 6 { // 3 pods × 2 families
		t.Fatalf("sticky has backends %v, want 3 per family", sticky.Backends)
	}
	seen := map[string]string{}
	for _, c := range []struct{ pod, vip string }{
		{"client", sticky.vips()[0]}, {"client", sticky.vips()[1]}, {"client2", sticky.vips()[0]},
	} {
		l.mustReachService(c.pod, c.vip)
		recs, out, err := l.conns(c.pod, c.vip, "--count", "30")
		got := servers(recs)
		if err != nil || len(got) != 1 || len(recs) != 30 {
			t.Errorf("%s -> %s: 30 connections should all reach one backend, got %v (%v)\n%s", c.pod, c.vip, got, err, brief(out))
		}
		for s := range got {
			seen[c.pod+" "+c.vip] = s
		}
	}
	t.Logf("affinity picks: %v", seen)
}

// No backends: the connection is refused at once, not left to time out.
func testNoBackends(l *Lab, none lbService) {
	t := l.t
	if len(none.Backends) != 0 {
		t.Fatalf("service none has backends %v", none.Backends)
	}
	for _, vip := range none.vips() {
		recs, out, err := l.conns("client", vip, "--count", "3", "--timeout", "2s")
		if err == nil {
			t.Errorf("%s: connections to a service without backends succeeded:\n%s", vip, brief(out))
			continue
		}
		for _, r := range recs {
			// EPERM from the socket hook, ECONNREFUSED from an ICMP
			// unreachable (tc path) or a RST.
			fast := r.took < 500*time.Millisecond
			refused := strings.HasSuffix(r.err, "operation not permitted") || strings.HasSuffix(r.err, "connection refused")
			if r.err == "" || !fast || !refused {
				t.Errorf("%s: connection %d: want refused within 500ms, got %q after %v", vip, r.seq, cmp.Or(r.err, "success"), r.took)
			}
		}
	}
}

// Hairpin: the only backend of a service calls that service.
func testHairpin(l *Lab, self lbService) {
	t := l.t
	if len(self.Backends) != 2 {
		t.Fatalf("self has backends %v, want w1 only", self.Backends)
	}
	for _, vip := range self.vips() {
		recs, out, err := l.conns("w1", vip, "--count", "5", "--timeout", "1s")
		if got := servers(recs); err != nil || got["w1"] != 5 {
			t.Errorf("w1 -> its own service %s: %v %v\n%s", vip, got, err, brief(out))
		}
	}
}

// Under a steady stream of short connections, a backend is added and
// another deleted: no connection fails, the new backend gets connections
// once added, the deleted one none once deleted, and the others keep
// theirs.
func testBackendsUnderLoad(l *Lab, web lbService) {
	t := l.t
	vip := web.vips()[0]
	l.mustReachService("client", vip)
	const run = 9 * time.Second
	bg := l.startExec("client", "seta-nettool", "conns", vip, "--count", "100000",
		"--duration", run.String(), "--interval", "10ms", "--timeout", "2s")
	time.Sleep(time.Second)
	l.must("lab", "pod", "run", "w4", "--node", "node2", "--labels", "app=web", "--", "seta-nettool", "serve-peer")
	added := time.Now()
	time.Sleep(1500 * time.Millisecond)
	deleting := time.Now()
	l.must("lab", "pod", "delete", "w3")
	deleted := time.Now()
	t.Logf("w4 added %v after the start; w3 deleted in %v", added.Sub(bg.started).Round(time.Millisecond), deleted.Sub(deleting).Round(time.Millisecond))

	out, err := bg.wait(run + 20*time.Second)
	recs := checkedConns(t, out)
	var failed []connRec
	afterAdd, afterDelete := map[string]int{}, map[string]int{}
	for _, r := range recs {
		switch {
		case r.err != "":
			failed = append(failed, r)
		case r.at.After(deleted):
			afterDelete[r.server]++
		case r.at.After(added):
			afterAdd[r.server]++
		}
	}
	for i, r := range failed {
		if i < 5 {
			t.Errorf("connection %d at %s failed: %s", r.seq, r.at.Format("15:04:05.000"), r.err)
		}
	}
	if len(failed) > 0 || err != nil {
		t.Errorf("%d of %d connections failed while backends changed (%v)", len(failed), len(recs), err)
	}
	if last := recs[len(recs)-1].at; last.Sub(deleted) < time.Second {
		t.Fatalf("the load ran only %v past the deletion: the machine is too slow for this test's timing", last.Sub(deleted))
	}
	if afterAdd["w4"] == 0 && afterDelete["w4"] == 0 {
		t.Errorf("the added backend w4 got no connection (after adding: %v, after deleting w3: %v)", afterAdd, afterDelete)
	}
	if afterDelete["w3"] != 0 {
		t.Errorf("the deleted backend w3 got %d connections after its deletion", afterDelete["w3"])
	}
	for _, w := range []string{"w1", "w2", "w4"} {
		if afterDelete[w] == 0 {
			t.Errorf("backend %s got no connection after w3's deletion: %v", w, afterDelete)
		}
	}
	t.Logf("%d connections; after adding w4: %v; after deleting w3: %v", len(recs), afterAdd, afterDelete)
}

// dgramRec is one line of `seta-nettool udpflow`.
type dgramRec struct {
	seq                int
	from, server, peer string
	err                string
}

var dgramRE = regexp.MustCompile(`(?m)^dgram seq=(\d+) at=\d+ (?:from=(\S+) server=(\S+) peer=(\S+)|error=(.+))$`)

func parseDgrams(out string) []dgramRec {
	var recs []dgramRec
	for _, m := range dgramRE.FindAllStringSubmatch(out, -1) {
		seq, _ := strconv.Atoi(m[1])
		recs = append(recs, dgramRec{seq: seq, from: m[2], server: m[3], peer: m[4], err: m[5]})
	}
	return recs
}

// UDP stickiness: one unconnected socket keeps its backend while other
// backends are added and removed, and every reply comes from the VIP.
func testUDPStickiness(l *Lab, wudp lbService) {
	t := l.t
	const count = 40 // at 100 ms: 4 s
	flows := map[string]*bgExec{}
	for _, vip := range wudp.vips() {
		if out, err := l.exec("client", "seta-nettool", "udpflow", vip, "--count", "1", "--timeout", "1s"); err != nil {
			t.Fatalf("client cannot reach UDP service %s at all: %v\n%s", vip, err, brief(out))
		}
		flows[vip] = l.startExec("client", "seta-nettool", "udpflow", vip, "--count", strconv.Itoa(count),
			"--interval", "100ms", "--timeout", "500ms")
	}
	// The backends in use, from the first replies.
	inUse := map[string]bool{}
	for vip, f := range flows {
		s := f.firstMatch(dgramRE, 3*time.Second)
		if s == nil || s[3] == "" {
			t.Fatalf("no first reply on the flow to %s:\n%s", vip, brief(f.out.String()))
		}
		inUse[s[3]] = true
	}
	// Change the backend set under the flows: one more, and one fewer
	// that neither flow uses.
	l.must("lab", "pod", "run", "w5", "--node", "node1", "--labels", "app=web", "--", "seta-nettool", "serve-peer")
	victim := ""
	for _, w := range []string{"w1", "w2", "w4"} {
		if !inUse[w] && l.pods()[w].Node != "" {
			victim = w
			break
		}
	}
	if victim == "" {
		t.Fatalf("no backend free to delete: in use %v", inUse)
	}
	l.must("lab", "pod", "delete", victim)
	t.Logf("flows on %v; added w5, deleted %s", inUse, victim)

	for vip, f := range flows {
		out, err := f.wait(count*time.Second + 10*time.Second)
		recs := parseDgrams(out)
		got := map[string]int{}
		lost, foreign := 0, map[string]int{}
		for _, r := range recs {
			switch {
			case r.err != "":
				lost++
			case r.from != vip:
				foreign[r.from]++
			default:
				got[r.server]++
			}
		}
		if lost > 0 || len(foreign) > 0 {
			t.Errorf("%s: %d of %d datagrams unanswered; replies from other addresses than the VIP: %v", vip, lost, len(recs), foreign)
		}
		if err != nil || len(recs) != count || len(got) != 1 {
			t.Errorf("%s: %d datagrams from one socket should all be answered by one backend, got %v (%v)\n%s", vip, count, got, err, brief(out))
		}
	}
}

// NodePort from a machine on the nodes' network: with policy Cluster
// each node forwards to backends on both nodes; with Local only to its
// own, and the backend sees the client's real address.
func testNodePort(l *Lab, np, nplocal lbService) {
	t := l.t
	ext := underlayClient(t, l)
	nodes := l.nodeAddrs()
	pods := l.pods()
	onNode := map[string]string{} // backend pod → node
	for name, p := range pods {
		if strings.HasPrefix(name, "w") {
			onNode[name] = p.Node
		}
	}
	if nodesUsed := slices.Collect(maps.Values(onNode)); !slices.Contains(nodesUsed, "node1") || !slices.Contains(nodesUsed, "node2") {
		t.Fatalf("want backends on both nodes, have %v", onNode)
	}
	// One connection first, so that a node not translating NodePorts at
	// all fails once, with one message.
	first := hostport(nodes["node1"][4], strconv.Itoa(np.Ports[0].NodePort))
	if recs, out, err := ext.conns(t, first, "--count", "1", "--timeout", "1s"); err != nil || recs[0].err != "" {
		t.Fatalf("NodePort %s is not reachable from outside the node: %v\n%s", first, err, brief(out))
	}
	for _, fam := range []int{4, 6} {
		client := extClientV4
		if fam == 6 {
			client = extClientV6
		}
		for _, n := range []string{"node1", "node2"} {
			addr := hostport(nodes[n][fam], strconv.Itoa(np.Ports[0].NodePort))
			recs, out, err := ext.conns(t, addr, "--count", "30", "--timeout", "1s")
			got := servers(recs)
			nodesHit := map[string]bool{}
			for s := range got {
				nodesHit[onNode[s]] = true
			}
			// 30 random picks over backends on two nodes all landing on one
			// node: probability ~1e-9.
			if err != nil || !nodesHit["node1"] || !nodesHit["node2"] {
				t.Errorf("Cluster NodePort %s (%s): want all 30 connections to succeed and reach backends on both nodes, got %v (%v)\n%s", addr, n, got, err, brief(out))
			}

			addr = hostport(nodes[n][fam], strconv.Itoa(nplocal.Ports[0].NodePort))
			recs, out, err = ext.conns(t, addr, "--count", "10", "--timeout", "1s")
			got = servers(recs)
			if err != nil || len(got) == 0 {
				t.Errorf("Local NodePort %s (%s): %v %v\n%s", addr, n, got, err, brief(out))
			}
			for _, r := range recs {
				if r.err != "" {
					continue
				}
				if onNode[r.server] != n {
					t.Errorf("Local NodePort %s: reached %s on %s, want a backend of %s", addr, r.server, onNode[r.server], n)
					break
				}
				if peerHost(r.peer) != client {
					t.Errorf("Local NodePort %s: backend %s saw the client as %s, want its real address %s", addr, r.server, r.peer, client)
					break
				}
			}
		}
	}
}

// A long-lived connection through a ClusterIP survives a restart of
// the client node's agent, and the service works after it.
func testAgentRestart(l *Lab, web lbService, upArgs []string) {
	t := l.t
	vip := web.vips()[0]
	l.mustReachService("client", vip)
	bg := l.startExec("client", "seta-nettool", "stream", vip, "--duration", "6s", "--interval", "50ms", "--max-gap", "1s")
	time.Sleep(1500 * time.Millisecond)
	restartNodeAgent(l, "node1", upArgs)
	out, err := bg.wait(30 * time.Second)
	if err != nil || !strings.Contains(out, "errors=0") {
		t.Errorf("connection through %s across the agent restart: %v\n%s", vip, err, brief(out))
	}
	if recs, out, err := l.conns("client", vip, "--count", "10"); err != nil || len(servers(recs)) == 0 {
		t.Errorf("new connections through %s after the restart: %v\n%s", vip, err, brief(out))
	}
}

// restartNodeAgent stops a node's agent with SIGTERM, waits for it to
// exit, and starts it again with `seta lab up` and the lab's own arguments
// (the lab does not keep them, and an agent restarted without them would
// run in another mode).
func restartNodeAgent(l *Lab, node string, upArgs []string) {
	l.t.Helper()
	var st struct {
		Nodes []struct {
			Name     string `json:"name"`
			AgentPID int    `json:"agentPID"`
		} `json:"nodes"`
	}
	if err := jsonUnmarshal(l.must("lab", "status", "-o", "json"), &st); err != nil {
		l.t.Fatal(err)
	}
	pid := 0
	for _, n := range st.Nodes {
		if n.Name == node {
			pid = n.AgentPID
		}
	}
	if !alive(pid, "seta-agent") {
		l.t.Fatalf("%s's agent (pid %d) is not running", node, pid)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		l.t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); alive(pid, "seta-agent"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s's agent (pid %d) still runs 5s after SIGTERM", node, pid)
		}
	}
	l.must(append([]string{"lab", "up"}, upArgs...)...)
}

// nodeAddrs is each node's underlay address per family (4, 6).
func (l *Lab) nodeAddrs() map[string]map[int]string {
	l.t.Helper()
	var st struct {
		Nodes []struct {
			Name        string `json:"name"`
			UnderlayIP  string `json:"underlayIP"`
			UnderlayIP6 string `json:"underlayIP6"`
		} `json:"nodes"`
	}
	b, err := os.ReadFile("/run/seta/lab/" + l.Name + "/lab.json")
	if err != nil {
		l.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		l.t.Fatal(err)
	}
	out := map[string]map[int]string{}
	for _, n := range st.Nodes {
		out[n.Name] = map[int]string{4: strings.Split(n.UnderlayIP, "/")[0], 6: strings.Split(n.UnderlayIP6, "/")[0]}
	}
	return out
}

// extClient is a network namespace on the lab's underlay bridge, outside
// every node.
type extClient struct {
	ns  *testutils.NetNS
	bin string
}

// underlayClient creates the external client: a namespace of the test's
// own with one veth into the lab's underlay bridge, holding extClientV4 and
// extClientV6 with on-link routes only (no default route: it reaches the
// nodes' network and nothing else). The namespace goes when the test ends,
// which removes the veth from the bridge too; the lab's other namespaces
// and the machine's interfaces are never touched.
func underlayClient(t *testing.T, l *Lab) *extClient {
	t.Helper()
	ns := testutils.NewNetNS(t, "e2elb-")
	underlay := "seta-" + l.Name + "-underlay"
	port := "x" + l.Name // at most 10 characters: a valid interface name
	steps := [][]string{
		{"-n", underlay, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns.Name},
		{"-n", underlay, "link", "set", port, "master", "br0", "up"},
		{"-n", ns.Name, "link", "set", "lo", "up"},
		{"-n", ns.Name, "link", "set", "eth0", "up"},
		{"-n", ns.Name, "addr", "add", extClientV4 + "/24", "dev", "eth0"},
		{"-n", ns.Name, "addr", "add", extClientV6 + "/64", "dev", "eth0", "nodad"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return &extClient{ns: ns, bin: filepath.Join(l.bin, "seta-nettool")}
}

func (e *extClient) conns(t *testing.T, addr string, args ...string) ([]connRec, string, error) {
	t.Helper()
	out, err := e.ns.Run(t, e.bin, append([]string{"conns", addr}, args...)...)
	return checkedConns(t, out), out, err
}

// bgExec is a command running in a pod in the background.
type bgExec struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *lockedBuffer
	done    chan error
	started time.Time
}

// startExec starts `seta lab pod exec POD -- ARGV...` in the background.
// The command must bound its own run time; should the test end first, the
// exec is killed.
func (l *Lab) startExec(pod string, argv ...string) *bgExec {
	l.t.Helper()
	b := &bgExec{t: l.t, out: &lockedBuffer{}, done: make(chan error, 1)}
	b.cmd = l.cmd(append([]string{"lab", "pod", "exec", pod, "--"}, argv...)...)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	b.started = time.Now()
	go func() { b.done <- b.cmd.Wait() }()
	l.t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// wait waits up to limit for the command and returns its output.
func (b *bgExec) wait(limit time.Duration) (string, error) {
	b.t.Helper()
	select {
	case err := <-b.done:
		b.done <- err // for the cleanup
		return b.out.String(), err
	case <-time.After(limit):
		b.t.Fatalf("%v still running after %v:\n%s", b.cmd.Args, limit, b.out.String())
		return "", nil
	}
}

// firstMatch waits up to limit for a line matching re in the output.
func (b *bgExec) firstMatch(re *regexp.Regexp, limit time.Duration) []string {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(b.out.String()); m != nil {
			return m
		}
	}
	return nil
}

// brief shortens a tool's output for a failure message: the first lines,
// then the last ones (the summary and the reason).
func brief(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) <= 10 {
		return out
	}
	return strings.Join(lines[:5], "\n") + fmt.Sprintf("\n… %d lines …\n", len(lines)-8) + strings.Join(lines[len(lines)-3:], "\n")
}

// lockedBuffer is a bytes.Buffer a command writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
