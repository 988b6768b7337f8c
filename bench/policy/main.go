// Command policy measures Seta's policy datapath and control plane:
//
//  1. Per-packet cost as the rule count grows: TCP_RR (seta-nettool rr)
//     from a client pod to a server pod whose ingress policy has N rules,
//     for N = 10, 100, 1,000, 10,000, each as a ratio to N = 10; in the same
//     run, the same rules as iptables rules (the allow last, as the worst
//     case of a linear chain) between two namespaces joined by a veth.
//
//  2. Policy import to enforced, and revoke to dropped, for 100 endpoints:
//     a probe in a client pod connects every millisecond; the latency is
//     from the start of the API call to the first probe that sees the new
//     verdict.
//
//     go build -o bin/ ./cmd/... ./bench/policy && sudo bin/policy --bin bin
//
// It builds its own lab ("benchpol") and namespaces, refuses to run over
// leftovers, and removes everything at the end, also when interrupted.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/seta-net/seta/pkg/api/v1"
	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/lab"
	"github.com/seta-net/seta/pkg/nsutil"
)

const labName = "benchpol"

var (
	binDir   = flag.String("bin", "bin", "directory holding the seta binaries")
	rrTime   = flag.Duration("rr-duration", 3*time.Second, "length of each TCP_RR measurement")
	repeats  = flag.Int("repeats", 3, "measurements per configuration (the median is reported)")
	ruleSets = flag.String("rules", "10,100,1000,10000", "rule counts to measure")
	pods     = flag.Int("endpoints", 100, "endpoints for the import/revoke latency measurement")
)

func main() { os.Exit(run()) }

func run() int {
	flag.Parse()
	if _, err := os.Stat(lab.Dir(labName)); err == nil {
		fmt.Fprintf(os.Stderr, "policy bench: lab %q is left over; remove it with: seta lab down --name %s\n", labName, labName)
		return 1
	}
	for _, n := range []string{iptA, iptB} {
		if _, err := os.Stat(nsutil.Path(n)); err == nil {
			fmt.Fprintf(os.Stderr, "policy bench: namespace %s is left over; remove it with: ip netns del %s\n", n, n)
			return 1
		}
	}
	// SIGPIPE too: a closed stdout (| head) must not skip the cleanup.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer stop()
	defer cleanup()
	if err := bench(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "policy bench:", err)
		return 1
	}
	return 0
}

func cleanup() {
	lab.Down(context.Background(), lab.DownOptions{Name: labName, Out: io.Discard})
	for _, p := range started {
		p.Process.Kill()
		p.Wait()
	}
	nsutil.Delete(iptA)
	nsutil.Delete(iptB)
}

var started []*exec.Cmd

func abs(name string) string { p, _ := filepath.Abs(filepath.Join(*binDir, name)); return p }

func bench(ctx context.Context) error {
	counts, err := parseCounts(*ruleSets)
	if err != nil {
		return err
	}
	st, err := lab.Up(ctx, lab.UpOptions{Name: labName, Nodes: 1, AgentBin: abs("seta-agent"), CNIBinDir: abs(""),
		AgentArgs: []string{"--policy-map-size=1000000"}, Out: io.Discard})
	if err != nil {
		return err
	}
	os.Setenv("PATH", abs("")+":"+os.Getenv("PATH"))
	web, err := lab.RunPod(ctx, lab.RunOptions{Lab: labName, Name: "web", Namespace: "default", Labels: []string{"app=web"}, Command: []string{abs("seta-nettool"), "serve"}})
	if err != nil {
		return err
	}
	cli, err := lab.RunPod(ctx, lab.RunOptions{Lab: labName, Name: "client", Namespace: "default", Labels: []string{"app=client"}})
	if err != nil {
		return err
	}
	c := client.New(st.Nodes[0].Socket, time.Minute)
	if err := setupIptables(ctx); err != nil {
		return err
	}
	webAddr := net.JoinHostPort(web.IPv4, "7000")
	if err := waitTCP(cli.NetNS, webAddr); err != nil {
		return err
	}
	if err := waitTCP(iptA, "198.19.0.2:7000"); err != nil {
		return err
	}

	fmt.Printf("## Per-packet cost of policy rules: TCP_RR, %v per run, median of %d\n\n", *rrTime, *repeats)
	fmt.Println("| rules | Seta RR/s | Seta ratio to 10 | Seta import | iptables RR/s | iptables ratio to 10 |")
	fmt.Println("|---|---|---|---|---|---|")
	var seta0, ipt0 float64
	for _, n := range counts {
		t0 := time.Now()
		if _, err := c.ImportPolicy(ctx, v1.PolicyImport{Files: []v1.PolicyFile{{Name: "rules.yaml", Content: ruleYAML(n)}}}); err != nil {
			return fmt.Errorf("import %d rules: %w", n, err)
		}
		imp := time.Since(t0)
		if err := iptRules(n); err != nil {
			return err
		}
		// Let the agent finish what the import started (GC of a large
		// parse) so it does not compete with the measurement.
		time.Sleep(2 * time.Second)
		s, err := medianRR(cli.NetNS, webAddr)
		if err != nil {
			return fmt.Errorf("seta rr with %d rules: %w", n, err)
		}
		ipt, err := medianRR(iptA, "198.19.0.2:7000")
		if err != nil {
			return fmt.Errorf("iptables rr with %d rules: %w", n, err)
		}
		if seta0 == 0 {
			seta0, ipt0 = s, ipt
		}
		fmt.Printf("| %d | %.0f | %.3f | %v | %.0f | %.3f |\n", n, s, s/seta0, imp.Round(time.Millisecond), ipt, ipt/ipt0)
	}
	if _, err := c.DeletePolicy(ctx, "", "", "", true); err != nil {
		return err
	}
	return latency(ctx, c, web, cli)
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 50000 {
			return nil, fmt.Errorf("--rules: %q is not a count from 1 to 50000", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ruleYAML is a policy for web with n rules: n-1 that admit the client on
// ports nobody uses (so they do produce map entries) and the one that
// admits it on 7000.
func ruleYAML(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: many-rules}\nspecs:\n")
	for i := 0; i < n; i++ {
		port := 7000
		if i < n-1 {
			port = 10000 + i
		}
		fmt.Fprintf(&b, "- endpointSelector: {matchLabels: {app: web}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: \"%d\", protocol: TCP}]}]\n", port)
	}
	return b.String()
}

// The iptables peer: two namespaces joined by a veth, the rules on the
// server side's INPUT chain.
const (
	iptA = "seta-benchpol-ipt-a"
	iptB = "seta-benchpol-ipt-b"
)

func setupIptables(ctx context.Context) error {
	for _, n := range []string{iptA, iptB} {
		if err := nsutil.Create(n); err != nil {
			return err
		}
	}
	cmds := [][]string{
		{iptA, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", nsutil.Path(iptB)},
		{iptA, "ip", "addr", "add", "198.19.0.1/24", "dev", "eth0"},
		{iptA, "ip", "link", "set", "eth0", "up"},
		{iptA, "ip", "link", "set", "lo", "up"},
		{iptB, "ip", "addr", "add", "198.19.0.2/24", "dev", "eth0"},
		{iptB, "ip", "link", "set", "eth0", "up"},
		{iptB, "ip", "link", "set", "lo", "up"},
	}
	for _, c := range cmds {
		if out, err := inNS(c[0], nil, c[1], c[2:]...); err != nil {
			return fmt.Errorf("%v: %v %s", c, err, out)
		}
	}
	srv := exec.Command(abs("seta-nettool"), "serve", "--udp", "", "--http", "")
	if err := nsutil.Start(nsutil.Path(iptB), srv); err != nil {
		return err
	}
	started = append(started, srv)
	return nil
}

// iptRules loads n rules, the matching one last, with iptables-restore.
// There is no "ESTABLISHED -j ACCEPT" shortcut in front: like Seta's
// datapath, which checks policy on every packet that is not a reply, every
// request packet walks the chain.
func iptRules(n int) error {
	var b bytes.Buffer
	b.WriteString("*filter\n:INPUT DROP [0:0]\n")
	for i := 0; i < n-1; i++ {
		fmt.Fprintf(&b, "-A INPUT -s 198.19.0.1/32 -p tcp -m tcp --dport %d -j ACCEPT\n", 10000+i)
	}
	b.WriteString("-A INPUT -s 198.19.0.1/32 -p tcp -m tcp --dport 7000 -j ACCEPT\nCOMMIT\n")
	if out, err := inNS(iptB, &b, "iptables-restore"); err != nil {
		return fmt.Errorf("iptables-restore: %v %s", err, out)
	}
	return nil
}

func inNS(ns string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	return nsutil.Output(nsutil.Path(ns), cmd)
}

func waitTCP(ns, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := inNS(ns, nil, abs("seta-nettool"), "tcp", addr, "--timeout", "200ms")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s unreachable from %s: %w", addr, ns, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var rateRE = regexp.MustCompile(`rate=([0-9.]+)/s`)

func medianRR(ns, addr string) (float64, error) {
	var rates []float64
	for i := 0; i < *repeats; i++ {
		out, err := inNS(ns, nil, "taskset", "-c", "1", abs("seta-nettool"), "rr", addr, "--count", "10000000", "--duration", rrTime.String())
		if err != nil {
			return 0, fmt.Errorf("%v: %s", err, out)
		}
		m := rateRE.FindStringSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("unexpected rr output %q", out)
		}
		r, _ := strconv.ParseFloat(m[1], 64)
		rates = append(rates, r)
	}
	slices.Sort(rates)
	return rates[len(rates)/2], nil
}

// latency measures import -> enforced and revoke -> dropped with n
// endpoints present.
func latency(ctx context.Context, c *client.Client, web, cli *lab.Pod) error {
	for i := 2; i < *pods; i++ {
		if _, err := lab.RunPod(ctx, lab.RunOptions{Lab: labName, Name: fmt.Sprintf("filler-%d", i), Namespace: "default", Labels: []string{fmt.Sprintf("app=filler-%d", i%10)}}); err != nil {
			return err
		}
	}
	eps, err := c.ListEndpoints(ctx)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(web.IPv4, "7000")
	deny := "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web-lockdown}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: other}}]}]\n"
	allow := "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web-lockdown}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n"
	fmt.Printf("\n## Policy import to enforced, %d endpoints (median of %d)\n\n", len(eps), *repeats)
	fmt.Println("| change | first probe with the new verdict after |")
	fmt.Println("|---|---|")
	type step struct {
		name    string
		content string
		open    bool // the verdict to wait for
	}
	steps := []step{
		{"import a policy that drops the client", deny, false},
		{"import an allow for the client", allow, true},
		{"revoke the allow (replace with the drop)", deny, false},
	}
	res := map[string][]time.Duration{}
	for r := 0; r < *repeats; r++ {
		if _, err := c.DeletePolicy(ctx, "", "", "", true); err != nil {
			return err
		}
		for _, s := range steps {
			d, err := measureChange(ctx, cli.NetNS, addr, s.open, func() error {
				_, err := c.ImportPolicy(ctx, v1.PolicyImport{Files: []v1.PolicyFile{{Name: "p.yaml", Content: s.content}}})
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			res[s.name] = append(res[s.name], d)
		}
	}
	for _, s := range steps {
		ds := res[s.name]
		slices.Sort(ds)
		fmt.Printf("| %s | %v |\n", s.name, ds[len(ds)/2].Round(10*time.Microsecond))
	}
	return nil
}

// measureChange starts a prober in the pod's netns, applies the change, and
// returns how long after the change started the first probe saw the
// wanted verdict (open: a connection succeeds; closed: it times out).
func measureChange(ctx context.Context, netns, addr string, open bool, change func() error) (time.Duration, error) {
	type result struct {
		at  time.Time
		err error
	}
	started := make(chan time.Time, 1)
	done := make(chan result, 1)
	go func() {
		err := nsutil.Do(nsutil.Path(netns), func() error {
			t0 := <-started
			deadline := t0.Add(5 * time.Second)
			for time.Now().Before(deadline) {
				at := time.Now()
				conn, err := net.DialTimeout("tcp", addr, 3*time.Millisecond)
				if err == nil {
					conn.Close()
				}
				if (err == nil) == open {
					done <- result{at: at}
					return nil
				}
				if err == nil {
					time.Sleep(time.Millisecond)
				}
			}
			return errors.New("the new verdict was not seen within 5s")
		})
		if err != nil {
			done <- result{err: err}
		}
	}()
	t0 := time.Now()
	started <- t0
	if err := change(); err != nil {
		return 0, err
	}
	r := <-done
	if r.err != nil {
		return 0, r.err
	}
	return max(r.at.Sub(t0), 0), nil
}
