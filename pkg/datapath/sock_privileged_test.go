package datapath_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/seta-net/seta/pkg/datapath"
	"github.com/seta-net/seta/pkg/datapath/lb"
	"github.com/seta-net/seta/pkg/identity"
	"github.com/seta-net/seta/pkg/loadbalancer"
	"github.com/seta-net/seta/pkg/testutils"
)

// The socket LB tests run their clients as children of the test binary
// (re-executed with sockClientEnv set) placed in a cgroup of their own, so
// the programs under test see only the tests' sockets.
const sockClientEnv = "SETA_SOCKLB_TEST_CLIENT"

func TestMain(m *testing.M) {
	if os.Getenv(sockClientEnv) != "" {
		os.Exit(sockClient(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// clientResult is one line of a client's output.
type clientResult struct {
	Backend string `json:"backend,omitempty"` // what the server answered: its name
	Peer    string `json:"peer,omitempty"`    // getpeername (connected sockets)
	From    string `json:"from,omitempty"`    // recvfrom's source (unconnected UDP)
	Err     string `json:"err,omitempty"`     // errno name of the failed call
}

// sockClient is the client process:
//
//	tcp ADDR N          N connections, one line each
//	udp ADDR N          one unconnected UDP socket, N sendto/recvfrom
//	udp-connected ADDR  connect, send, recv, getpeername
//	udp-each ADDR N     N unconnected UDP sockets, one sendto/recvfrom each
//	udp-session ADDR    one unconnected UDP socket; a sendto/recvfrom per
//	                    line on stdin, until EOF
//	udp-connected-session ADDR  one connected UDP socket; getpeername,
//	                    send, recv per line on stdin, until EOF
//
// ADDR is ip:port; an IPv4-mapped IPv6 address uses an IPv6 socket.
func sockClient(args []string) int {
	out := json.NewEncoder(os.Stdout)
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tcp|udp|udp-connected|udp-each|udp-session ADDR [N]")
		return 2
	}
	ap, err := netip.ParseAddrPort(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	n := 1
	if len(args) > 2 {
		n, _ = strconv.Atoi(args[2])
	}
	switch args[0] {
	case "tcp":
		for range n {
			out.Encode(tcpOnce(ap))
		}
	case "udp", "udp-session":
		fd, err := udpSocket(ap)
		if err != nil {
			out.Encode(clientResult{Err: errnoName(err)})
			return 0
		}
		defer unix.Close(fd)
		if args[0] == "udp" {
			for range n {
				out.Encode(udpExchange(fd, ap))
			}
			return 0
		}
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			out.Encode(udpExchange(fd, ap))
		}
	case "udp-connected":
		out.Encode(udpConnected(ap))
	case "udp-connected-session":
		fd, err := udpConnect(ap)
		if err != nil {
			out.Encode(clientResult{Err: errnoName(err)})
			return 0
		}
		defer unix.Close(fd)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			out.Encode(connectedExchange(fd))
		}
	case "udp-each":
		for range n {
			fd, err := udpSocket(ap)
			if err != nil {
				out.Encode(clientResult{Err: errnoName(err)})
				continue
			}
			out.Encode(udpExchange(fd, ap))
			unix.Close(fd)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", args[0])
		return 2
	}
	return 0
}

func errnoName(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		return unix.ErrnoName(en)
	}
	return err.Error()
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

func addrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return fmt.Sprint(sa)
}

func socket(ap netip.AddrPort, typ int) (int, unix.Sockaddr, error) {
	fam, sa := sockaddr(ap)
	fd, err := unix.Socket(fam, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, err
	}
	tv := unix.Timeval{Sec: 3}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	return fd, sa, nil
}

func tcpOnce(ap netip.AddrPort) clientResult {
	fd, sa, err := socket(ap, unix.SOCK_STREAM)
	if err != nil {
		return clientResult{Err: errnoName(err)}
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return clientResult{Err: errnoName(err)}
	}
	var r clientResult
	if peer, err := unix.Getpeername(fd); err == nil {
		r.Peer = addrString(peer)
	}
	buf := make([]byte, 64)
	n, err := retryEINTR(func() (int, error) { return unix.Read(fd, buf) })
	if err != nil {
		r.Err = errnoName(err)
		return r
	}
	r.Backend = strings.TrimSpace(string(buf[:n]))
	return r
}

// retryEINTR repeats a read that a signal interrupted.
func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

func udpSocket(ap netip.AddrPort) (int, error) {
	fd, _, err := socket(ap, unix.SOCK_DGRAM)
	return fd, err
}

func udpExchange(fd int, ap netip.AddrPort) clientResult {
	_, sa := sockaddr(ap)
	if err := unix.Sendto(fd, []byte("who"), 0, sa); err != nil {
		return clientResult{Err: errnoName(err)}
	}
	buf := make([]byte, 64)
	var from unix.Sockaddr
	n, err := retryEINTR(func() (int, error) {
		var n int
		var err error
		n, from, err = unix.Recvfrom(fd, buf, 0)
		return n, err
	})
	if err != nil {
		return clientResult{Err: errnoName(err)}
	}
	return clientResult{Backend: string(buf[:n]), From: addrString(from)}
}

// udpConnect returns a UDP socket connected to ap.
func udpConnect(ap netip.AddrPort) (int, error) {
	fd, sa, err := socket(ap, unix.SOCK_DGRAM)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func udpConnected(ap netip.AddrPort) clientResult {
	fd, err := udpConnect(ap)
	if err != nil {
		return clientResult{Err: errnoName(err)}
	}
	defer unix.Close(fd)
	return connectedExchange(fd)
}

// connectedExchange reads the peer of a connected UDP socket and makes one
// round trip on it.
func connectedExchange(fd int) clientResult {
	var r clientResult
	if peer, err := unix.Getpeername(fd); err == nil {
		r.Peer = addrString(peer)
	}
	if _, err := unix.Write(fd, []byte("who")); err != nil {
		r.Err = errnoName(err)
		return r
	}
	buf := make([]byte, 64)
	n, err := retryEINTR(func() (int, error) { return unix.Read(fd, buf) })
	if err != nil {
		r.Err = errnoName(err)
		return r
	}
	r.Backend = string(buf[:n])
	return r
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted.
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		// ID parent maj:min root mountpoint opts ... - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 && f[3] == "/" {
			return f[4]
		}
	}
	t.Skip("no cgroup v2 mount")
	return ""
}

// testCgroup is a cgroup the test creates for its clients; it is removed
// at cleanup (its processes have exited by then: every client is waited
// for).
type testCgroup struct {
	path string
	fd   *os.File
}

func newTestCgroup(t *testing.T) *testCgroup {
	t.Helper()
	path := filepath.Join(cgroup2Mount(t), testutils.RandName("seta-socklb-test-"))
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatalf("create test cgroup: %v", err)
	}
	fd, err := os.Open(path)
	if err != nil {
		os.Remove(path)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fd.Close()
		// The kernel refuses while the last client is still being
		// reaped; give it a moment.
		for i := 0; ; i++ {
			err := os.Remove(path)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if i == 50 {
				t.Errorf("remove test cgroup %s: %v", path, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return &testCgroup{path: path, fd: fd}
}

// command builds a client process that starts inside the cgroup.
func (c *testCgroup) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	// Blocking calls on sockets with a timeout are not restarted after a
	// signal: keep the runtime's preemption signals away from the client.
	cmd.Env = append(os.Environ(), sockClientEnv+"=1", "GODEBUG=asyncpreemptoff=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(c.fd.Fd())}
	return cmd
}

// sockEnv is a node namespace with a datapath whose socket programs are on
// a test cgroup, backend servers and a few services.
type sockEnv struct {
	f   *fixture
	dp  *datapath.Datapath
	cg  *testCgroup
	lbm *lb.Map
}

// Addresses of the test node (on its loopback device): its own address
// (NodePort), and two backend addresses, each with a TCP server on 8080 and a UDP server on 5353 that
// answer with their name (b1, b2).
var (
	nodeAddr4 = netip.MustParseAddr("10.99.0.1")
	be4       = []netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.3")}
	be6       = []netip.Addr{netip.MustParseAddr("fd00:99::2"), netip.MustParseAddr("fd00:99::3")}
	vip4      = netip.MustParseAddr("10.96.0.10")
	vip6      = netip.MustParseAddr("fd00:96::10")
)

const (
	tcpPort = 8080
	udpPort = 5353
)

func newSockEnv(t *testing.T) *sockEnv {
	t.Helper()
	f := newFixture(t, "auto")
	cg := newTestCgroup(t)
	e := &sockEnv{f: f, cg: cg}
	e.dp = e.load(t, true)
	e.lbm = e.dp.LBMap()
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", nodeAddr4.String() + "/32", "dev", "lo"},
		{"addr", "add", be4[0].String() + "/32", "dev", "lo"},
		{"addr", "add", be4[1].String() + "/32", "dev", "lo"},
		{"addr", "add", be6[0].String() + "/128", "dev", "lo", "nodad"},
		{"addr", "add", be6[1].String() + "/128", "dev", "lo", "nodad"},
	} {
		if out, err := f.node.Run(t, "ip", args...); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	for i, a := range append(append([]netip.Addr{}, be4...), be6...) {
		e.serve(t, a, fmt.Sprintf("b%d", i%2+1))
	}
	// The node's address has the host identity in the ipcache, as the
	// enforcer writes it: that makes it a NodePort destination.
	if err := e.dp.SyncIPCache(map[netip.Prefix]uint32{netip.PrefixFrom(nodeAddr4, 32): uint32(identity.Host)}); err != nil {
		t.Fatal(err)
	}
	return e
}

// load starts a datapath (again) on the fixture's bpf root and the test
// cgroup.
func (e *sockEnv) load(t *testing.T, socketLB bool) *datapath.Datapath {
	t.Helper()
	return e.f.loadWith(t, func(c *datapath.Config) {
		c.EnableSocketLB, c.CgroupRoot = socketLB, e.cg.path
		c.LBMapSize, c.LBAffinityMapSize, c.LBSockRevNatMapSize = 1024, 256, 1024
	})
}

// serve runs a TCP and a UDP server on addr inside the node namespace,
// answering with name (serveNamed).
func (e *sockEnv) serve(t *testing.T, addr netip.Addr, name string) {
	t.Helper()
	serveNamed(t, e.f.node, addr, name, false)
}

// run runs a client to completion in the node namespace and the cgroup.
func (e *sockEnv) run(t *testing.T, args ...string) []clientResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := e.cg.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := e.f.node.Do(t, cmd.Run); err != nil {
		t.Fatalf("client %v: %v\n%s", args, err, stderr.String())
	}
	return decodeResults(t, stdout.Bytes())
}

func decodeResults(t *testing.T, b []byte) []clientResult {
	t.Helper()
	var out []clientResult
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var r clientResult
		if err := dec.Decode(&r); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("client output %q: %v", b, err)
		}
		out = append(out, r)
	}
}

// udpSession is a running udp-session client.
type udpSession struct {
	in  io.WriteCloser
	out *json.Decoder
	cmd *exec.Cmd
}

func (e *sockEnv) startUDPSession(t *testing.T, addr netip.AddrPort) *udpSession {
	t.Helper()
	return e.startSession(t, "udp-session", addr)
}

// startSession starts a client in a session mode (udp-session,
// udp-connected-session).
func (e *sockEnv) startSession(t *testing.T, mode string, addr netip.AddrPort) *udpSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := e.cg.command(ctx, mode, addr.String())
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := e.f.node.Do(t, cmd.Start); err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &udpSession{in: in, out: json.NewDecoder(outp), cmd: cmd}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
		cancel()
	})
	return s
}

func (s *udpSession) exchange(t *testing.T) clientResult {
	t.Helper()
	if _, err := io.WriteString(s.in, "send\n"); err != nil {
		t.Fatal(err)
	}
	var r clientResult
	if err := s.out.Decode(&r); err != nil {
		t.Fatalf("udp session: %v", err)
	}
	return r
}

func (e *sockEnv) backend(t *testing.T, b loadbalancer.Backend) {
	t.Helper()
	if err := e.lbm.UpsertBackend(b); err != nil {
		t.Fatal(err)
	}
}

// service writes a frontend with its backends and its rev-NAT entry.
func (e *sockEnv) service(t *testing.T, s loadbalancer.LBService) {
	t.Helper()
	if err := e.lbm.UpsertService(s); err != nil {
		t.Fatal(err)
	}
	if err := e.lbm.UpsertRevNat(loadbalancer.RevNat{ID: s.ID, Addr: netip.AddrPortFrom(s.Frontend.Addr, s.Frontend.Port)}); err != nil {
		t.Fatal(err)
	}
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

func fe(a netip.Addr, port uint16, p loadbalancer.Proto) loadbalancer.Frontend {
	return loadbalancer.Frontend{Addr: a, Port: port, Proto: p}
}

// Backend IDs of the standard services.
const (
	beTCP4a, beTCP4b = 1, 2
	beUDP4a, beUDP4b = 3, 4
	beTCP6a, beTCP6b = 5, 6
	beUDP6a, beUDP6b = 7, 8
)

func (e *sockEnv) standardServices(t *testing.T) {
	t.Helper()
	for _, b := range []loadbalancer.Backend{
		{ID: beTCP4a, Addr: ap(be4[0], tcpPort), Proto: loadbalancer.TCP},
		{ID: beTCP4b, Addr: ap(be4[1], tcpPort), Proto: loadbalancer.TCP},
		{ID: beUDP4a, Addr: ap(be4[0], udpPort), Proto: loadbalancer.UDP},
		{ID: beUDP4b, Addr: ap(be4[1], udpPort), Proto: loadbalancer.UDP},
		{ID: beTCP6a, Addr: ap(be6[0], tcpPort), Proto: loadbalancer.TCP},
		{ID: beTCP6b, Addr: ap(be6[1], tcpPort), Proto: loadbalancer.TCP},
		{ID: beUDP6a, Addr: ap(be6[0], udpPort), Proto: loadbalancer.UDP},
		{ID: beUDP6b, Addr: ap(be6[1], udpPort), Proto: loadbalancer.UDP},
	} {
		e.backend(t, b)
	}
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 80, loadbalancer.TCP), ID: 1, Backends: []loadbalancer.BackendID{beTCP4a, beTCP4b}})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 53, loadbalancer.UDP), ID: 2, Backends: []loadbalancer.BackendID{beUDP4a, beUDP4b}})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip6, 80, loadbalancer.TCP), ID: 3, Backends: []loadbalancer.BackendID{beTCP6a, beTCP6b}})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip6, 53, loadbalancer.UDP), ID: 4, Backends: []loadbalancer.BackendID{beUDP6a, beUDP6b}})
}

// spread counts the backends of successful results; any failure or wrong
// peer fails the test.
func spread(t *testing.T, name string, rs []clientResult, wantPeer string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i, r := range rs {
		if r.Err != "" || r.Backend == "" {
			t.Fatalf("%s: attempt %d failed: %+v", name, i, r)
		}
		if wantPeer != "" && r.Peer != wantPeer && r.From != wantPeer {
			t.Fatalf("%s: attempt %d: peer %q / from %q, want %s", name, i, r.Peer, r.From, wantPeer)
		}
		got[r.Backend]++
	}
	t.Logf("%s: %d answers by backend: %v", name, len(rs), got)
	return got
}

func TestPrivilegedSocketLB(t *testing.T) {
	e := newSockEnv(t)
	e.standardServices(t)

	t.Run("tcp v4 reaches both backends, getpeername shows the VIP", func(t *testing.T) {
		rs := e.run(t, "tcp", ap(vip4, 80).String(), "200")
		got := spread(t, "tcp v4", rs, ap(vip4, 80).String())
		if len(rs) != 200 || got["b1"] < 40 || got["b2"] < 40 {
			t.Errorf("200 connects: %v, want each backend at least 20%%", got)
		}
	})
	t.Run("tcp v6", func(t *testing.T) {
		rs := e.run(t, "tcp", ap(vip6, 80).String(), "200")
		got := spread(t, "tcp v6", rs, ap(vip6, 80).String())
		if got["b1"] < 40 || got["b2"] < 40 {
			t.Errorf("200 connects: %v, want each backend at least 20%%", got)
		}
	})
	t.Run("tcp v4-mapped from an IPv6 socket", func(t *testing.T) {
		mapped := ap(netip.AddrFrom16(vip4.As16()), 80)
		rs := e.run(t, "tcp", mapped.String(), "20")
		spread(t, "tcp mapped", rs, mapped.String())
	})
	t.Run("udp v4 unconnected: replies come from the VIP", func(t *testing.T) {
		rs := e.run(t, "udp", ap(vip4, 53).String(), "10")
		got := spread(t, "udp v4", rs, ap(vip4, 53).String())
		if len(got) != 1 {
			t.Errorf("one socket's datagrams went to %v, want one backend", got)
		}
	})
	t.Run("udp v6 unconnected", func(t *testing.T) {
		rs := e.run(t, "udp", ap(vip6, 53).String(), "10")
		if got := spread(t, "udp v6", rs, ap(vip6, 53).String()); len(got) != 1 {
			t.Errorf("one socket's datagrams went to %v, want one backend", got)
		}
	})
	t.Run("udp connected: getpeername shows the VIP", func(t *testing.T) {
		for _, a := range []netip.AddrPort{ap(vip4, 53), ap(vip6, 53)} {
			spread(t, "udp connected", e.run(t, "udp-connected", a.String()), a.String())
		}
	})
	t.Run("not a service: untouched", func(t *testing.T) {
		rs := e.run(t, "tcp", ap(be4[1], tcpPort).String(), "5")
		if got := spread(t, "direct tcp", rs, ap(be4[1], tcpPort).String()); got["b2"] != 5 {
			t.Errorf("direct connects: %v", got)
		}
		rs = e.run(t, "udp", ap(be6[0], udpPort).String(), "3")
		if got := spread(t, "direct udp", rs, ap(be6[0], udpPort).String()); got["b1"] != 3 {
			t.Errorf("direct datagrams: %v", got)
		}
		// The VIP's address on another port is no service either: no
		// route, and the program does not pretend otherwise.
		rs = e.run(t, "tcp", ap(vip4, 81).String(), "1")
		if rs[0].Err != "ENETUNREACH" {
			t.Errorf("VIP on a port without a service: %+v, want ENETUNREACH", rs[0])
		}
	})
	t.Run("a process outside the cgroup is not translated", func(t *testing.T) {
		err := e.f.node.Do(t, func() error {
			c, err := net.DialTimeout("tcp", ap(vip4, 80).String(), 2*time.Second)
			if err == nil {
				c.Close()
				return errors.New("connected")
			}
			return nil
		})
		if err != nil {
			t.Errorf("connect to the VIP from outside the cgroup: %v", err)
		}
	})
}

func TestPrivilegedSocketLBNoBackends(t *testing.T) {
	e := newSockEnv(t)
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 80, loadbalancer.TCP), ID: 1})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 53, loadbalancer.UDP), ID: 2})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip6, 80, loadbalancer.TCP), ID: 3})
	for _, c := range []struct{ mode, addr string }{
		{"tcp", ap(vip4, 80).String()}, {"udp", ap(vip4, 53).String()}, {"tcp", ap(vip6, 80).String()},
		{"udp-connected", ap(vip4, 53).String()},
	} {
		rs := e.run(t, c.mode, c.addr)
		if len(rs) != 1 || rs[0].Err != "EPERM" {
			t.Errorf("%s %s to a service without backends: %+v, want EPERM", c.mode, c.addr, rs)
		}
	}
}

func TestPrivilegedSocketLBAffinity(t *testing.T) {
	e := newSockEnv(t)
	e.standardServices(t)
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 8080, loadbalancer.TCP), ID: 10,
		Flags: loadbalancer.FlagAffinity, AffinityTimeout: 300, Backends: []loadbalancer.BackendID{beTCP4a, beTCP4b}})
	rs := e.run(t, "tcp", ap(vip4, 8080).String(), "50")
	got := spread(t, "affinity", rs, ap(vip4, 8080).String())
	if len(got) != 1 {
		t.Fatalf("50 connects from one netns went to %v, want one backend", got)
	}
	aff, err := e.lbm.Affinities()
	if err != nil {
		t.Fatal(err)
	}
	if len(aff) != 1 || !aff[0].Client.NetNS || aff[0].Service != 10 {
		t.Errorf("affinity entries %+v, want one for the netns", aff)
	}
	// The bound backend terminates: new connections go to the other one,
	// and stay there.
	var bound, other loadbalancer.BackendID = beTCP4a, beTCP4b
	if got["b2"] > 0 {
		bound, other = other, bound
	}
	e.backend(t, loadbalancer.Backend{ID: bound, Addr: ap(be4[int(bound)-1], tcpPort), Proto: loadbalancer.TCP, State: loadbalancer.Terminating})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 8080, loadbalancer.TCP), ID: 10,
		Flags: loadbalancer.FlagAffinity, AffinityTimeout: 300, Backends: []loadbalancer.BackendID{other}})
	rs = e.run(t, "tcp", ap(vip4, 8080).String(), "10")
	got2 := spread(t, "affinity after terminating", rs, ap(vip4, 8080).String())
	if want := fmt.Sprintf("b%d", other); got2[want] != 10 {
		t.Errorf("after the bound backend terminated: %v, want all %s", got2, want)
	}
	// Without affinity the same netns spreads again (the plain service).
	if got := spread(t, "plain", e.run(t, "tcp", ap(vip4, 80).String(), "50"), ""); len(got) != 2 {
		t.Errorf("a service without affinity: %v", got)
	}
}

func TestPrivilegedSocketLBUDPSticky(t *testing.T) {
	e := newSockEnv(t)
	e.standardServices(t)
	vip := ap(vip4, 53)
	s := e.startUDPSession(t, vip)
	first := s.exchange(t)
	if first.Err != "" || first.From != vip.String() {
		t.Fatalf("first datagram: %+v", first)
	}
	bound, other := loadbalancer.BackendID(beUDP4a), loadbalancer.BackendID(beUDP4b)
	if first.Backend == "b2" {
		bound, other = other, bound
	}
	boundAddr := ap(be4[int(bound-beUDP4a)], udpPort)
	// The flow's backend terminates and leaves the slots; its entry stays.
	e.backend(t, loadbalancer.Backend{ID: bound, Addr: boundAddr, Proto: loadbalancer.UDP, State: loadbalancer.Terminating})
	e.service(t, loadbalancer.LBService{Frontend: fe(vip4, 53, loadbalancer.UDP), ID: 2, Backends: []loadbalancer.BackendID{other}})
	for i := range 5 {
		if r := s.exchange(t); r.Backend != first.Backend || r.From != vip.String() {
			t.Fatalf("datagram %d after the backend set changed: %+v, want %s from %s", i, r, first.Backend, vip)
		}
	}
	// New sockets only get the remaining backend.
	wantOther := fmt.Sprintf("b%d", other-beUDP4a+1)
	for range 5 {
		rs := e.run(t, "udp", vip.String(), "1")
		if got := spread(t, "new socket", rs, vip.String()); got[wantOther] != 1 {
			t.Fatalf("a new socket got %v, want %s", got, wantOther)
		}
	}
	// Once the backend's entry is gone the flow moves on.
	if err := e.lbm.DeleteBackend(bound); err != nil {
		t.Fatal(err)
	}
	if r := s.exchange(t); r.Backend != wantOther || r.From != vip.String() {
		t.Errorf("after the backend was deleted: %+v, want %s from %s", r, wantOther, vip)
	}
}

func TestPrivilegedSocketLBScopesAndNodePort(t *testing.T) {
	e := newSockEnv(t)
	e.standardServices(t)
	// Two scopes: sockets are node-internal traffic and get the internal
	// backends.
	f := fe(netip.MustParseAddr("10.96.0.13"), 80, loadbalancer.TCP)
	e.service(t, loadbalancer.LBService{Frontend: loadbalancer.Frontend{Addr: f.Addr, Port: f.Port, Proto: f.Proto, Scope: loadbalancer.ScopeInternal},
		ID: 21, Backends: []loadbalancer.BackendID{beTCP4b}})
	e.service(t, loadbalancer.LBService{Frontend: f, ID: 20, Flags: loadbalancer.FlagTwoScopes, Backends: []loadbalancer.BackendID{beTCP4a}})
	if got := spread(t, "two scopes", e.run(t, "tcp", ap(f.Addr, 80).String(), "20"), ap(f.Addr, 80).String()); got["b2"] != 20 {
		t.Errorf("two scopes: %v, want every connection on the internal backend b2", got)
	}

	// A NodePort on every node address.
	e.service(t, loadbalancer.LBService{Frontend: fe(netip.IPv4Unspecified(), 30080, loadbalancer.TCP), ID: 30,
		Flags: loadbalancer.FlagNodePort, Backends: []loadbalancer.BackendID{beTCP4a, beTCP4b}})
	np := ap(nodeAddr4, 30080)
	if got := spread(t, "nodeport", e.run(t, "tcp", np.String(), "40"), np.String()); len(got) != 2 {
		t.Errorf("nodeport: %v, want both backends", got)
	}
	// The same port on an address that is not the node's: no NodePort.
	if rs := e.run(t, "tcp", ap(vip4, 30080).String(), "1"); rs[0].Err != "ENETUNREACH" {
		t.Errorf("NodePort port on a foreign address: %+v, want ENETUNREACH", rs[0])
	}
	// Another port of the node's range without a service: untouched
	// (nothing listens).
	if rs := e.run(t, "tcp", ap(nodeAddr4, 30081).String(), "1"); rs[0].Err != "ECONNREFUSED" {
		t.Errorf("node address, NodePort range, no service: %+v, want ECONNREFUSED", rs[0])
	}
}

// cgroupPrograms counts the programs attached to the cgroup at a hook.
func cgroupPrograms(t *testing.T, path string, at ebpf.AttachType) int {
	t.Helper()
	res, err := link.QueryPrograms(link.QueryOptions{Target: mustOpenFD(t, path), Attach: at})
	if err != nil {
		t.Fatalf("query cgroup programs: %v", err)
	}
	return len(res.Programs)
}

func mustOpenFD(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// A restarted agent updates its pinned links in place (one program per
// hook, translation never stops); one with socket LB off detaches them.
func TestPrivilegedSocketLBRestart(t *testing.T) {
	e := newSockEnv(t)
	e.standardServices(t)
	hooks := []ebpf.AttachType{
		ebpf.AttachCGroupInet4Connect, ebpf.AttachCGroupInet6Connect, ebpf.AttachCGroupUDP4Sendmsg, ebpf.AttachCGroupUDP6Sendmsg,
		ebpf.AttachCGroupUDP4Recvmsg, ebpf.AttachCGroupUDP6Recvmsg, ebpf.AttachCgroupInet4GetPeername, ebpf.AttachCgroupInet6GetPeername,
	}
	for _, h := range hooks {
		if n := cgroupPrograms(t, e.cg.path, h); n != 1 {
			t.Errorf("%s: %d programs attached, want 1", h, n)
		}
	}
	// A UDP flow that lives across the restart.
	s := e.startUDPSession(t, ap(vip4, 53))
	first := s.exchange(t)

	dp2 := e.load(t, true)
	if probs := dp2.CheckSocketLB(); len(probs) != 0 {
		t.Errorf("after restart: %v", probs)
	}
	if dp2.SocketLBCgroup() != e.cg.path {
		t.Errorf("SocketLBCgroup = %q", dp2.SocketLBCgroup())
	}
	for _, h := range hooks {
		if n := cgroupPrograms(t, e.cg.path, h); n != 1 {
			t.Errorf("after restart, %s: %d programs attached, want 1", h, n)
		}
	}
	spread(t, "after restart", e.run(t, "tcp", ap(vip4, 80).String(), "10"), ap(vip4, 80).String())
	if r := s.exchange(t); r.Backend != first.Backend || r.From != ap(vip4, 53).String() {
		t.Errorf("UDP flow across the restart: %+v, then %+v", first, r)
	}

	e.load(t, false)
	for _, h := range hooks {
		if n := cgroupPrograms(t, e.cg.path, h); n != 0 {
			t.Errorf("socket LB off, %s: %d programs attached, want 0", h, n)
		}
	}
	if rs := e.run(t, "tcp", ap(vip4, 80).String(), "1"); rs[0].Err != "ENETUNREACH" {
		t.Errorf("socket LB off: %+v, want the VIP unreachable", rs[0])
	}
	if ents, _ := os.ReadDir(filepath.Join(e.f.bpfRoot, "sock-links")); len(ents) != 0 {
		t.Errorf("link pins left: %v", ents)
	}
}

// Socket LB marks the sockets it translates, and the reverse hooks look
// only those up: a connected UDP socket whose mark is taken away (as if an
// agent that did not mark had translated it) shows the backend it talks
// to, until seta_lb_sock_unmarked covers its cookie, which is what the
// loader records on an upgrade (TestPrivilegedLoadRecordsUnmarkedSockets).
func TestPrivilegedSocketLBMark(t *testing.T) {
	e := newSockEnv(t)
	e.standardServices(t)
	vip := ap(vip4, 53)
	s := e.startSession(t, "udp-connected-session", vip)
	if r := s.exchange(t); r.Err != "" || r.Peer != vip.String() {
		t.Fatalf("translated socket: %+v, want the VIP %s as its peer", r, vip)
	}

	fd := sessionSocket(t, s.cmd.Process.Pid)
	marks, err := ebpf.LoadPinnedMap(filepath.Join(e.f.bpfRoot, "seta_lb_sock_mark"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer marks.Close()
	if err := marks.Delete(int32(fd)); err != nil {
		t.Fatalf("delete the socket's mark: %v", err)
	}
	r := s.exchange(t)
	if r.Err != "" || r.Peer == vip.String() || !strings.HasSuffix(r.Peer, fmt.Sprintf(":%d", udpPort)) {
		t.Fatalf("unmarked socket: %+v, want its backend as its peer (the revnat lookup skipped)", r)
	}

	unmarked, err := ebpf.LoadPinnedMap(filepath.Join(e.f.bpfRoot, "seta_lb_sock_unmarked"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unmarked.Close()
	if err := unmarked.Put(uint32(0), uint64(1)<<62); err != nil {
		t.Fatal(err)
	}
	if r := s.exchange(t); r.Err != "" || r.Peer != vip.String() {
		t.Fatalf("unmarked socket under seta_lb_sock_unmarked: %+v, want the VIP %s", r, vip)
	}
}

// sessionSocket returns a descriptor of this process for the one socket
// the client process pid holds (pidfd_getfd).
func sessionSocket(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	target := -1
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			if target >= 0 {
				t.Fatalf("client %d holds more than one socket", pid)
			}
			target, _ = strconv.Atoi(e.Name())
		}
	}
	if target < 0 {
		t.Fatalf("client %d holds no socket", pid)
	}
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	fd, err := unix.PidfdGetfd(pfd, target, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}
