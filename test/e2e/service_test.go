package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// labState is the part of a lab's state file the service tests read.
type labState struct {
	Cgroup string `json:"cgroup"`
	Nodes  []struct {
		Name   string `json:"name"`
		NetNS  string `json:"netns"`
		Cgroup string `json:"cgroup"`
		DNS    struct {
			PID int `json:"pid"`
		} `json:"dns"`
	} `json:"nodes"`
	Pods []struct {
		Name  string `json:"name"`
		Node  string `json:"node"`
		NetNS string `json:"netns"`
		Proc  struct {
			PID int `json:"pid"`
		} `json:"proc"`
	} `json:"pods"`
}

func readLabState(t *testing.T, name string) labState {
	t.Helper()
	b, err := os.ReadFile("/run/seta/lab/" + name + "/lab.json")
	if err != nil {
		t.Fatal(err)
	}
	var st labState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

type labService struct {
	Name       string   `json:"name"`
	Namespace  string   `json:"namespace"`
	Type       string   `json:"type"`
	ClusterIPs []string `json:"clusterIPs"`
	Backends   []string `json:"backends"`
}

func (l *Lab) services() map[string]labService {
	l.t.Helper()
	var ss []labService
	if err := json.Unmarshal([]byte(l.must("lab", "service", "list", "-o", "json")), &ss); err != nil {
		l.t.Fatal(err)
	}
	out := map[string]labService{}
	for _, s := range ss {
		out[s.Namespace+"/"+s.Name] = s
	}
	return out
}

// createService runs `seta lab service create`, which also pushes the
// service to every node's agent.
func (l *Lab) createService(args ...string) {
	l.t.Helper()
	l.must(append([]string{"lab", "service", "create"}, args...)...)
}

// agentServices is `seta service list` on a node: frontend → number of
// backends.
func (l *Lab) agentServices(node string) map[string]int {
	l.t.Helper()
	sock := "/run/seta/lab/" + l.Name + "/nodes/" + node + "/agent.sock"
	var ds []struct {
		Service struct {
			Frontend string            `json:"frontend"`
			Backends []json.RawMessage `json:"backends"`
		} `json:"service"`
	}
	if err := json.Unmarshal([]byte(l.must("--socket", sock, "service", "list", "-o", "json")), &ds); err != nil {
		l.t.Fatalf("%s: service list: %v", node, err)
	}
	got := map[string]int{}
	for _, d := range ds {
		got[d.Service.Frontend] = len(d.Service.Backends)
	}
	return got
}

func TestPrivilegedLabServiceDNS(t *testing.T) {
	l := newLab(t, "--nodes", "2")
	l.must("lab", "pod", "run", "web1", "--node", "node1", "--labels", "app=web", "--", "seta-nettool", "serve")
	l.must("lab", "pod", "run", "web2", "--node", "node2", "--labels", "app=web", "--", "seta-nettool", "serve")
	l.must("lab", "pod", "run", "client", "--node", "node1", "--", "sleep", "infinity")
	l.createService("web", "--port", "80", "--target-port", "8080", "--selector", "app=web")

	// Bookkeeping: the addresses and the backends that follow the pods.
	svcs := l.services()
	web, dns := svcs["default/web"], svcs["kube-system/kube-dns"]
	if strings.Join(web.ClusterIPs, ",") != "10.96.0.100,fd00:5e7a:96::64" {
		t.Errorf("web ClusterIPs: %v", web.ClusterIPs)
	}
	if strings.Join(dns.ClusterIPs, ",") != "10.96.0.10,fd00:5e7a:96::a" {
		t.Errorf("kube-dns ClusterIPs: %v", dns.ClusterIPs)
	}
	pods := l.pods()
	wantBackends := []string{pods["web1"].IPv4 + ":8080/TCP@node1", pods["web2"].IPv4 + ":8080/TCP@node2",
		"[" + pods["web1"].IPv6 + "]:8080/TCP@node1", "[" + pods["web2"].IPv6 + "]:8080/TCP@node2"}
	for _, b := range wantBackends {
		if !strings.Contains(strings.Join(web.Backends, " "), b) {
			t.Errorf("web backends %v lack %s", web.Backends, b)
		}
	}
	if len(web.Backends) != 4 {
		t.Errorf("web backends: %v", web.Backends)
	}
	if len(dns.Backends) != 8 { // 2 nodes × 2 families × UDP and TCP
		t.Errorf("kube-dns backends: %v", dns.Backends)
	}

	// Every pod has its own resolv.conf, and its processes run in its
	// node's cgroup.
	if out, err := l.exec("client", "cat", "/etc/resolv.conf"); err != nil ||
		out != "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n" {
		t.Errorf("pod resolv.conf: %v\n%s", err, out)
	}
	st := readLabState(t, l.Name)
	for _, p := range st.Pods {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.Proc.PID) + "/cgroup")
		if p.Name == "client" {
			continue // sleep: checked through exec below
		}
		if err != nil || !strings.Contains(string(b), "0::/seta-lab-"+l.Name+"/"+p.Node+"\n") {
			t.Errorf("pod %s (pid %d) is not in its node's cgroup: %v\n%s", p.Name, p.Proc.PID, err, b)
		}
	}
	if out, err := l.exec("client", "cat", "/proc/self/cgroup"); err != nil || !strings.Contains(out, "0::/seta-lab-"+l.Name+"/node1\n") {
		t.Errorf("pod exec is not in node1's cgroup: %v\n%s", err, out)
	}

	// The cluster DNS of each node, asked directly at its gateway address
	// from a pod of node1 (node2's over the underlay).
	for _, server := range []string{"10.244.1.1", "10.244.2.1", "[fd00:5e7a:0:1::1]"} {
		for _, c := range []struct{ name, typ, want string }{
			{"web.default.svc.cluster.local", "A", "10.96.0.100"},
			{"web.default.svc.cluster.local", "AAAA", "fd00:5e7a:96::64"},
			{"kube-dns.kube-system.svc.cluster.local", "A", "10.96.0.10"},
		} {
			out, err := l.exec("client", "seta-nettool", "dns", c.name, "--type", c.typ, "--server", server)
			if err != nil || !strings.Contains(out, c.want) {
				t.Errorf("%s %s from %s: %v\n%s", c.name, c.typ, server, err, out)
			}
		}
		out, err := l.exec("client", "seta-nettool", "dns", "nope.default.svc.cluster.local", "--server", server)
		if err == nil || !strings.Contains(out, "NXDOMAIN") {
			t.Errorf("unknown service from %s: want NXDOMAIN, got %v\n%s", server, err, out)
		}
		// Outside cluster.local: refused, never forwarded.
		out, err = l.exec("client", "seta-nettool", "dns", "example.com", "--server", server, "--tcp")
		if err == nil || !strings.Contains(out, "REFUSED") {
			t.Errorf("example.com from %s: want REFUSED, got %v\n%s", server, err, out)
		}
	}
	// Nothing in the lab can reach beyond it: the nodes have no default
	// route, so neither the DNS servers nor anything else could forward.
	for _, n := range st.Nodes {
		for _, fam := range []string{"-4", "-6"} {
			out, err := exec.Command("ip", fam, "-n", n.NetNS, "route", "show", "default").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "" {
				t.Errorf("%s has a default route (%s): %v\n%s", n.Name, fam, err, out)
			}
		}
	}

	// A new service is in DNS at once (the servers follow the state file).
	l.createService("other", "-n", "prod", "--port", "7000", "--selector", "app=web")
	if out, err := l.exec("client", "seta-nettool", "dns", "other.prod.svc.cluster.local", "--server", "10.244.2.1"); err != nil || !strings.Contains(out, "10.96.0.101") {
		t.Errorf("new service not in DNS: %v\n%s", err, out)
	}
	if b := l.services()["prod/other"].Backends; len(b) != 0 {
		t.Errorf("prod/other selects pods of another namespace: %v", b)
	}

	t.Run("through-the-service", func(t *testing.T) {
		// Every node's agent holds every service, with every backend.
		for _, n := range st.Nodes {
			got := l.agentServices(n.Name)
			for fe, nb := range map[string]int{"10.96.0.100:80/TCP": 2, "[fd00:5e7a:96::64]:80/TCP": 2,
				"10.96.0.10:53/UDP": 2, "10.96.0.10:53/TCP": 2, "10.96.0.101:7000/TCP": 0} {
				if have, ok := got[fe]; !ok || have != nb {
					t.Errorf("%s: service %s: present %v with %d backends, want %d (all: %v)", n.Name, fe, ok, have, nb, got)
				}
			}
		}
		// The pinned maps hold the frontend with its two backend slots.
		bpfOut := l.must("bpf", "lb", "list", "--bpf-root", "/sys/fs/bpf/seta-lab/"+l.Name+"/node1")
		for _, want := range []string{"10.96.0.100:80/TCP", pods["web1"].IPv4 + ":8080/TCP", pods["web2"].IPv4 + ":8080/TCP"} {
			if !strings.Contains(bpfOut, want) {
				t.Errorf("seta bpf lb list lacks %s:\n%s", want, bpfOut)
			}
		}
		l.waitServer("client", hostport(pods["web2"].IPv4, "7000"))
		// Name resolution through kube-dns (10.96.0.10, load-balanced to
		// the client's own node's DNS), with the search list and ndots.
		out, err := l.exec("client", "getent", "ahostsv4", "web.default.svc.cluster.local")
		if err != nil || !strings.Contains(out, "10.96.0.100") {
			t.Fatalf("getent through kube-dns: %v\n%s", err, out)
		}
		if out, err := l.exec("client", "getent", "ahostsv4", "web"); err != nil || !strings.Contains(out, "10.96.0.100") {
			t.Errorf("short name through the search list: %v\n%s", err, out)
		}
		out, err = l.exec("client", "seta-nettool", "dns", "nope.default.svc.cluster.local")
		if err == nil || !strings.Contains(out, "NXDOMAIN") {
			t.Errorf("unknown name through kube-dns: want NXDOMAIN, got %v\n%s", err, out)
		}
		out, err = l.exec("client", "seta-nettool", "dns", "example.com")
		if err == nil || !strings.Contains(out, "REFUSED") {
			t.Errorf("example.com through kube-dns: want REFUSED, got %v\n%s", err, out)
		}
		// HTTP by name reaches both pods (each answers with its name).
		seen := map[string]int{}
		for i := 0; i < 40 && len(seen) < 2; i++ {
			out, err := l.exec("client", "seta-nettool", "http", "http://web.default.svc.cluster.local/")
			if err != nil {
				t.Fatalf("HTTP to the service: %v\n%s", err, out)
			}
			seen[strings.TrimSpace(out)]++
		}
		if seen["web1"] == 0 || seen["web2"] == 0 {
			t.Errorf("requests did not reach both pods: %v", seen)
		}
		if out, err := l.exec("client", "seta-nettool", "http", "http://[fd00:5e7a:96::64]/"); err != nil {
			t.Errorf("HTTP to the IPv6 ClusterIP: %v\n%s", err, out)
		}
	})

	// Deleting a pod takes its backends out of the service, in the lab and
	// on every agent; deleting a service takes it off every agent.
	l.must("lab", "pod", "delete", "web2")
	if b := l.services()["default/web"].Backends; len(b) != 2 || strings.Contains(strings.Join(b, " "), "node2") {
		t.Errorf("after deleting web2: %v", b)
	}
	l.must("lab", "service", "delete", "other", "-n", "prod")
	for _, n := range st.Nodes {
		got := l.agentServices(n.Name)
		if got["10.96.0.100:80/TCP"] != 1 || got["[fd00:5e7a:96::64]:80/TCP"] != 1 {
			t.Errorf("%s after deleting web2: %v", n.Name, got)
		}
		if _, ok := got["10.96.0.101:7000/TCP"]; ok {
			t.Errorf("%s still has the deleted service: %v", n.Name, got)
		}
	}
	if out, err := l.exec("client", "seta-nettool", "dns", "other.prod.svc.cluster.local", "--server", "10.244.1.1"); err == nil || !strings.Contains(out, "NXDOMAIN") {
		t.Errorf("deleted service still in DNS: %v\n%s", err, out)
	}
	if out, err := l.run("lab", "service", "delete", "kube-dns", "-n", "kube-system"); err == nil {
		t.Errorf("deleting the cluster DNS service should be refused:\n%s", out)
	}
}

// alive reports whether pid runs a lab command line containing want.
func alive(pid int, want string) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), want)
}

// waitGone waits a little for a process to be reaped.
func waitGone(pid int, want string) bool {
	for i := 0; i < 50; i++ {
		if !alive(pid, want) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
