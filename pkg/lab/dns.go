package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/seta-net/seta/pkg/lab/clusterdns"
	"github.com/seta-net/seta/pkg/nsutil"
)

// Every node runs a cluster DNS server in its namespace, on port 53 of all
// its addresses; pods reach it through the kube-dns service, whose backends
// are the nodes' pod gateway addresses. It answers from the lab's state
// file and has no upstream: nothing a pod asks ever leaves the lab.

// resolvConf is a pod's /etc/resolv.conf, as the kubelet writes it for
// dnsPolicy ClusterFirst.
func resolvConf(namespace string) string {
	return fmt.Sprintf("nameserver %s\nsearch %s.svc.%s svc.%s %s\noptions ndots:5\n",
		DNSClusterIPv4, namespace, ClusterDomain, ClusterDomain, ClusterDomain)
}

// writePodEtc gives a pod its own resolv.conf, in iproute2's
// /etc/netns/NAME; nsutil.StartNamed binds it over /etc/resolv.conf for
// every process started in the pod. So does a copy of the machine's
// nsswitch.conf whose hosts line is "files dns": a pod's lookups then go to
// the cluster DNS only, never to a resolver of the machine's reached some
// other way (nss-resolve talks to systemd-resolved over a unix socket,
// which a network namespace does not cut off).
func writePodEtc(p *Pod) error {
	dir := nsutil.EtcDir(p.NetNS)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pod /etc: %w", err)
	}
	files := map[string]string{"resolv.conf": resolvConf(p.Namespace)}
	if b, err := os.ReadFile("/etc/nsswitch.conf"); err == nil {
		files["nsswitch.conf"] = podNsswitch(string(b))
	}
	for name, content := range files {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			return fmt.Errorf("pod %s: %w", name, err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pod %s: %w", name, err)
		}
	}
	return nil
}

// podNsswitch is the machine's nsswitch.conf with hosts resolved from
// /etc/hosts and DNS only.
func podNsswitch(host string) string {
	var out []string
	found := false
	for _, l := range strings.Split(strings.TrimRight(host, "\n"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "hosts:" {
			l, found = "hosts:          files dns", true
		}
		out = append(out, l)
	}
	if !found {
		out = append(out, "hosts:          files dns")
	}
	return strings.Join(out, "\n") + "\n"
}

// removePodEtc removes the pod's /etc/netns directory; a missing one is fine.
func removePodEtc(netnsName string) error {
	if err := os.RemoveAll(nsutil.EtcDir(netnsName)); err != nil {
		return fmt.Errorf("remove %s: %w", nsutil.EtcDir(netnsName), err)
	}
	return nil
}

// ensureDNS starts the node's DNS server unless it already runs and answers.
func ensureDNS(ctx context.Context, st *State, n *Node, out io.Writer) error {
	if n.DNS.Alive() && dnsAnswers(n) == nil {
		step(out, "%s: cluster DNS running (pid %d)", n.Name, n.DNS.PID)
		return nil
	}
	n.DNS.Stop(2 * time.Second) // a hung one
	if st.SetaBin == "" {
		return fmt.Errorf("cannot start the cluster DNS of %s: the seta binary is unknown", n.Name)
	}
	n.DNSLog = filepath.Join(filepath.Dir(n.Log), "dns.log")
	logf, err := os.OpenFile(n.DNSLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open DNS log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(st.SetaBin, "lab", "dns-server", "--name", st.Name, "--node", n.Name)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := nsutil.Start(nsutil.Path(n.NetNS), cmd); err != nil {
		return fmt.Errorf("start the cluster DNS of %s: %w", n.Name, err)
	}
	n.DNS = procOf(cmd.Process.Pid)
	go cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := dnsAnswers(n)
		if err == nil {
			break
		}
		if !n.DNS.Alive() || time.Now().After(deadline) {
			return fmt.Errorf("the cluster DNS of %s does not answer (%v); its log %s ends with:\n%s", n.Name, err, n.DNSLog, tail(n.DNSLog, 15))
		}
		time.Sleep(50 * time.Millisecond)
	}
	step(out, "%s: cluster DNS started (pid %d, port %d of every node address)", n.Name, n.DNS.PID, DNSPort)
	return nil
}

// dnsAnswers asks the node's DNS server for the zone's SOA, from inside the
// node's namespace.
func dnsAnswers(n *Node) error {
	var conn net.Conn
	err := nsutil.Do(nsutil.Path(n.NetNS), func() error {
		var err error
		conn, err = net.DialTimeout("udp", net.JoinHostPort("127.0.0.1", fmt.Sprint(DNSPort)), time.Second)
		return err
	})
	if err != nil {
		return err
	}
	c := &dns.Conn{Conn: conn}
	defer c.Close()
	q := new(dns.Msg).SetQuestion(dns.Fqdn(ClusterDomain), dns.TypeSOA)
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if err := c.WriteMsg(q); err != nil {
		return err
	}
	r, err := c.ReadMsg()
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		return fmt.Errorf("SOA query answered %s", dns.RcodeToString[r.Rcode])
	}
	return nil
}

// dnsServices reads the services of a lab state file for the DNS server.
func dnsServices(b []byte) ([]clusterdns.Service, error) {
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	var out []clusterdns.Service
	for _, s := range st.Services {
		d := clusterdns.Service{Name: s.Name, Namespace: s.Namespace}
		for _, c := range s.ClusterIPs {
			if a, err := netip.ParseAddr(c); err == nil {
				d.IPs = append(d.IPs, a)
			}
		}
		for _, p := range s.Ports {
			d.Ports = append(d.Ports, clusterdns.Port{Name: p.Name, Protocol: p.Protocol, Port: p.Port})
		}
		out = append(out, d)
	}
	return out, nil
}

// dnsServerCmd is the hidden `seta lab dns-server`, which `lab up` starts in
// each node's namespace.
func dnsServerCmd(name *string) *cobra.Command {
	var node string
	var debug bool
	cmd := &cobra.Command{
		Use:    "dns-server --node NODE",
		Short:  "Run a lab node's cluster DNS server (started by lab up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})).
				With("subsys", "lab-dns", "lab", *name, "node", node)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			h := &clusterdns.Handler{Source: clusterdns.FileSource(ClusterDomain, statePath(*name), dnsServices, log), Log: log}
			err := clusterdns.Serve(ctx, DNSPort, h, func() { log.Info("serving", "zone", ClusterDomain, "port", DNSPort) })
			if err != nil {
				return err
			}
			log.Info("stopped")
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node this server runs on (for its log)")
	cmd.Flags().BoolVar(&debug, "debug", false, "log every query")
	return cmd
}
