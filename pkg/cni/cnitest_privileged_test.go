package cni_test

// Helpers for the privileged CNI tests: building the binaries once, running
// a seta-agent inside its own network namespace, driving the plugin through
// libcni, and looking at devices inside namespaces.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/seta-net/seta/pkg/client"
	"github.com/seta-net/seta/pkg/endpoint"
	"github.com/seta-net/seta/pkg/testutils"
)

// TestMain removes the binaries built for the privileged tests, which
// outlive any single test.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

var built struct {
	once sync.Once
	dir  string
	err  error
}

// binDir builds seta-agent, seta-cni and the stock cnitool once per test
// binary and returns the directory holding them.
func binDir(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		// Stays set should anything below end the test early.
		built.err = errors.New("building the test binaries did not complete")
		root := testutils.ModuleRoot(t)
		dir, err := os.MkdirTemp("", "seta-cnitest-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		for _, args := range [][]string{
			{"build", "-o", dir + "/", "./cmd/seta-agent", "./cmd/seta-cni"},
			{"build", "-o", filepath.Join(dir, "cnitool"), "github.com/containernetworking/cni/cnitool"},
		} {
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				built.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
		built.err = nil
	})
	if built.err != nil {
		t.Fatalf("build binaries: %v", built.err)
	}
	return built.dir
}

// shortTempDir returns a directory under /tmp, short enough for unix
// socket paths, removed on cleanup.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "seta-cni-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

const (
	defaultV4CIDR = "10.99.0.0/24"
	defaultV6CIDR = "fd00:99::/64"
)

// agent is a seta-agent process running in its own network namespace.
type agent struct {
	t       *testing.T
	ns      *testutils.NetNS
	bin     string
	args    []string
	sock    string
	bpfRoot string
	logPath string
	client  *client.Client

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been reaped
}

// startAgent starts an agent with the given pod CIDRs ("" leaves a family
// out) and extra flags in a new namespace. Cleanup stops it, removes its bpf-root and, if
// the test failed, prints its log.
func startAgent(t *testing.T, v4CIDR, v6CIDR string, extra ...string) *agent {
	t.Helper()
	bin := filepath.Join(binDir(t), "seta-agent")
	tmp := t.TempDir()
	a := &agent{
		t:       t,
		ns:      testutils.NewNetNS(t, "seta-cnit-a-"),
		bin:     bin,
		sock:    filepath.Join(shortTempDir(t), "agent.sock"),
		bpfRoot: filepath.Join("/sys/fs/bpf", testutils.RandName("seta-cnitest-")),
		logPath: filepath.Join(tmp, "agent.log"),
	}
	a.args = []string{"--node-name", "n1"}
	if v4CIDR != "" {
		a.args = append(a.args, "--ipv4-pod-cidr", v4CIDR)
	}
	if v6CIDR != "" {
		a.args = append(a.args, "--ipv6-pod-cidr", v6CIDR)
	}
	a.args = append(a.args, "--state-dir", filepath.Join(tmp, "state"), "--api-socket", a.sock, "--bpf-root", a.bpfRoot,
		// No socket LB: the default cgroup root is the whole machine.
		"--enable-socket-lb=false", "--enable-hubble=false")
	a.args = append(a.args, extra...)
	a.client = client.New(a.sock, time.Second)
	// Registered after the namespace's own cleanup, so it runs before it.
	t.Cleanup(func() {
		a.stop()
		if err := os.RemoveAll(a.bpfRoot); err != nil {
			t.Errorf("remove %s: %v", a.bpfRoot, err)
		}
		if t.Failed() {
			a.printLog()
		}
	})
	a.start()
	return a
}

func (a *agent) printLog() {
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		a.t.Logf("agent log %s: %v", a.logPath, err)
		return
	}
	a.t.Logf("agent log (%s):\n%s", a.logPath, b)
}

// start starts the agent process and waits until it answers /v1/healthz.
func (a *agent) start() {
	t := a.t
	t.Helper()
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s %s\n", a.bin, strings.Join(a.args, " "))
	cmd := exec.Command(a.bin, a.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should the test binary die without running cleanups, take the agent
	// with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// A child forked from a thread inherits the thread's netns.
	if err := a.ns.Do(t, cmd.Start); err != nil {
		t.Fatalf("start seta-agent in %s: %v", a.ns.Name, err)
	}
	a.cmd = cmd
	a.done = make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(a.done)

	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := a.client.Health(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-a.done:
			t.Fatalf("seta-agent exited before becoming ready (%v); see its log", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("seta-agent not ready after 20s: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process; it kills it if it lingers.
func (a *agent) stop() {
	if a.cmd == nil {
		return
	}
	select {
	case <-a.done:
	default:
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			a.t.Errorf("seta-agent (pid %d) did not exit 15s after SIGTERM; killing it", a.cmd.Process.Pid)
			a.cmd.Process.Kill()
			<-a.done
		}
	}
	a.cmd = nil
}

func (a *agent) endpoints(t *testing.T) []endpoint.Endpoint {
	t.Helper()
	eps, err := a.client.ListEndpoints(context.Background())
	if err != nil {
		t.Fatalf("list endpoints: %v", err)
	}
	return eps
}

func (a *agent) wantEndpoints(t *testing.T, n int) []endpoint.Endpoint {
	t.Helper()
	eps := a.endpoints(t)
	if len(eps) != n {
		t.Fatalf("agent has %d endpoints, want %d: %+v", len(eps), n, eps)
	}
	return eps
}

// lxcLinks lists the host-side endpoint devices in the agent's namespace.
func (a *agent) lxcLinks(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, l := range linksIn(t, a.ns.Path) {
		if strings.HasPrefix(l.Attrs().Name, "lxc") {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

// conflist returns a network configuration list of one seta-cni plugin.
func conflist(t *testing.T, name, cniVersion, sock string) *libcni.NetworkConfigList {
	t.Helper()
	list, err := libcni.ConfListFromBytes(conflistBytes(name, cniVersion, sock))
	if err != nil {
		t.Fatalf("parse conflist: %v", err)
	}
	return list
}

func conflistBytes(name, cniVersion, sock string) []byte {
	return fmt.Appendf(nil, `{"cniVersion": %q, "name": %q, "plugins": [{"type": "seta-cni", "socket": %q}]}`,
		cniVersion, name, sock)
}

// newCNI returns a libcni runner with the built plugins and a private cache.
func newCNI(t *testing.T) *libcni.CNIConfig {
	t.Helper()
	return libcni.NewCNIConfigWithCacheDir([]string{binDir(t)}, t.TempDir(), nil)
}

func rtConf(containerID string, pod *testutils.NetNS) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: containerID, NetNS: pod.Path, IfName: "eth0"}
}

// cniCode returns the CNI error code in err, failing the test if err is
// not a CNI error.
func cniCode(t *testing.T, err error) uint {
	t.Helper()
	if err == nil {
		t.Fatal("expected a CNI error, got success")
	}
	var ce *types.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error is not a CNI *types.Error: %T %v", err, err)
	}
	return ce.Code
}

func wantCode(t *testing.T, err error, code uint) *types.Error {
	t.Helper()
	if got := cniCode(t, err); got != code {
		t.Fatalf("CNI error code %d, want %d: %v", got, code, err)
	}
	var ce *types.Error
	errors.As(err, &ce)
	return ce
}

// handleAt opens a netlink handle in the namespace at path.
func handleAt(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	nsh, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open netns %s: %v", path, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", path, err)
	}
	return h
}

func linksIn(t *testing.T, path string) []netlink.Link {
	t.Helper()
	h := handleAt(t, path)
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatalf("list links in %s: %v", path, err)
	}
	return links
}

// podIface describes an interface inside a namespace; ok is false when it
// does not exist.
type podIface struct {
	ok     bool
	up     bool
	mac    string
	addrs  []netip.Prefix // global addresses
	routes []netlink.Route
}

func ifaceIn(t *testing.T, path, name string) podIface {
	t.Helper()
	h := handleAt(t, path)
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return podIface{}
		}
		t.Fatalf("look up %s in %s: %v", name, path, err)
	}
	pi := podIface{ok: true, up: l.Attrs().Flags&net.FlagUp != 0, mac: l.Attrs().HardwareAddr.String()}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("addresses of %s in %s: %v", name, path, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		pi.addrs = append(pi.addrs, netip.PrefixFrom(ip.Unmap(), ones))
	}
	pi.routes, err = h.RouteList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("routes of %s in %s: %v", name, path, err)
	}
	return pi
}

func (p podIface) hasAddr(pfx netip.Prefix) bool {
	for _, a := range p.addrs {
		if a == pfx {
			return true
		}
	}
	return false
}

// defaultRouteVia reports whether the interface has a default route via gw.
func (p podIface) defaultRouteVia(gw netip.Addr) bool {
	for _, r := range p.routes {
		if r.Gw == nil {
			continue
		}
		rgw, _ := netip.AddrFromSlice(r.Gw)
		if rgw.Unmap() != gw {
			continue
		}
		if r.Dst == nil {
			return true
		}
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			return true
		}
	}
	return false
}
