package nettool

import (
	"bufio"
	"context"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// servePeer runs "serve-peer" on loopback ephemeral ports until the test
// ends and returns its TCP and UDP addresses.
func servePeer(t *testing.T, name string) (tcpAddr, udpAddr string) {
	t.Helper()
	tcpAddr, udpAddr, _ = servePeerCancelable(t, name)
	return tcpAddr, udpAddr
}

// servePeerCancelable is servePeer with a function that stops the server
// and waits until Run has returned 0.
func servePeerCancelable(t *testing.T, name string) (tcpAddr, udpAddr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve-peer", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--name", name}, &out, &errb)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("serve-peer exit status %d after cancel\nstderr:\n%s", code, errb.String())
				}
			case <-time.After(10 * time.Second):
				t.Error("serve-peer did not stop after cancel")
			}
		})
	}
	t.Cleanup(stop)
	re := regexp.MustCompile(`^serving tcp=(\S+) udp=(\S+) http=off name=` + regexp.QuoteMeta(name) + `\n$`)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1], m[2], stop
		}
	}
	t.Fatalf("serve-peer printed %q\nstderr:\n%s", out.String(), errb.String())
	return "", "", nil
}

// Stopping serve-peer refuses new connections at once but lets established
// ones finish their exchanges for peerDrain, then closes them.
func TestServePeerDrainsOnStop(t *testing.T) {
	tcpAddr, _, stop := servePeerCancelable(t, "pod-d")
	c, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The server has accepted c once an echo came back on it.
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "one\n")
	if l, err := r.ReadString('\n'); err != nil || !strings.HasSuffix(l, ": one\n") {
		t.Fatalf("first echo: %q, %v", l, err)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	time.Sleep(100 * time.Millisecond) // well inside peerDrain
	if nc, err := net.Dial("tcp", tcpAddr); err == nil {
		nc.Close()
		t.Error("a new connection was accepted after stop")
	}
	io.WriteString(c, "two\n")
	if l, err := r.ReadString('\n'); err != nil || !strings.HasSuffix(l, ": two\n") {
		t.Errorf("the line in flight at stop was not answered: %q, %v", l, err)
	}
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Errorf("after the drain: want EOF, got %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("serve-peer did not return after draining")
	}
}

func TestServePeerNamesThePeer(t *testing.T) {
	tcpAddr, udpAddr := servePeer(t, "pod-a")
	// serve's clients work unchanged; the prefix carries the peer.
	code, out, errs := run(t, "tcp", tcpAddr)
	wantCode(t, code, 0, out, errs)
	if !regexp.MustCompile(`^pod-a@127\.0\.0\.1:\d+: ping\n$`).MatchString(out) {
		t.Errorf("tcp echo = %q", out)
	}
	code, out, errs = run(t, "udp", udpAddr)
	wantCode(t, code, 0, out, errs)
	if !regexp.MustCompile(`^pod-a@127\.0\.0\.1:\d+: ping\n$`).MatchString(out) {
		t.Errorf("udp echo = %q", out)
	}
	code, out, errs = run(t, "stream", tcpAddr, "--interval", "10ms", "--duration", "100ms")
	wantCode(t, code, 0, out, errs)
}

func TestServePeerBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"serve-peer", "--name", "a@b"},
		{"serve-peer", "--name", "a: b"},
		{"serve-peer", "--tcp", "", "--udp", ""},
		{"serve-peer", "extra"},
	} {
		code, out, errs := run(t, args...)
		wantCode(t, code, 2, out, errs)
	}
}

var connLine = regexp.MustCompile(`^conn seq=(\d+) at=(\d+) took=(\d+)us (server=(\S+) peer=(\S+)|error=(.+))$`)

func TestConns(t *testing.T) {
	tcpAddr, _ := servePeer(t, "pod-a")
	code, out, errs := run(t, "conns", tcpAddr, "--count", "5")
	wantCode(t, code, 0, out, errs)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 6 || lines[5] != "conns: ok=5 failed=0 servers=pod-a:5" {
		t.Fatalf("output:\n%s", out)
	}
	ports := map[string]bool{}
	for i, l := range lines[:5] {
		m := connLine.FindStringSubmatch(l)
		if m == nil || m[1] != strconv.Itoa(i+1) || m[5] != "pod-a" || !strings.HasPrefix(m[6], "127.0.0.1:") {
			t.Fatalf("line %d = %q", i, l)
		}
		ports[m[6]] = true
	}
	if len(ports) != 5 {
		t.Errorf("want 5 connections from 5 source ports, got %v", ports)
	}
	// Against serve, whose replies name no peer.
	srv := startServer(t, "127.0.0.1")
	code, out, errs = run(t, "conns", srv.TCP.Addr().String(), "--count", "2")
	wantCode(t, code, 0, out, errs)
	wantContains(t, "stdout", out, "server="+testName+" peer=-\n", "servers="+testName+":2\n")
}

func TestConnsDurationAndInterval(t *testing.T) {
	tcpAddr, _ := servePeer(t, "pod-a")
	start := time.Now()
	code, out, errs := run(t, "conns", tcpAddr, "--count", "1000000", "--duration", "300ms", "--interval", "20ms")
	wantCode(t, code, 0, out, errs)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("--duration 300ms ran %v", d)
	}
	n := strings.Count(out, "\nconn ") + 1
	if n < 3 || n > 16 { // about 300ms / 20ms
		t.Errorf("%d connections in 300ms at 20ms intervals:\n%s", n, out)
	}
}

func TestConnsRefused(t *testing.T) {
	addr := closedTCPPort(t)
	code, out, errs := run(t, "conns", addr, "--count", "3")
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stdout", out, "conns: ok=0 failed=3 servers=-\n", "error=dial "+addr+": connection refused\n")
	wantContains(t, "stderr", errs, "3 of 3 connections to "+addr+" failed")
	for _, l := range strings.Split(out, "\n")[:3] {
		m := connLine.FindStringSubmatch(l)
		if m == nil || m[7] == "" {
			t.Errorf("line %q", l)
		}
	}
}

func TestConnsBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"conns"},
		{"conns", "nohost"},
		{"conns", "127.0.0.1:1", "--count", "0"},
		{"conns", "127.0.0.1:1", "--duration", "-1s"},
		{"conns", "127.0.0.1:1", "--duration", "11m"},
		{"conns", "127.0.0.1:1", "--timeout", "0s"},
	} {
		code, out, errs := run(t, args...)
		wantCode(t, code, 2, out, errs)
	}
}

var dgramLine = regexp.MustCompile(`^dgram seq=(\d+) at=(\d+) (from=(\S+) server=(\S+) peer=(\S+)|error=(.+))$`)

func TestUDPFlowOneSocket(t *testing.T) {
	_, udpAddr := servePeer(t, "pod-u")
	code, out, errs := run(t, "udpflow", udpAddr, "--count", "4", "--interval", "10ms")
	wantCode(t, code, 0, out, errs)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 || lines[4] != "udpflow: sent=4 received=4 servers=pod-u:4 sources="+udpAddr+":4" {
		t.Fatalf("output:\n%s", out)
	}
	peers := map[string]bool{}
	for _, l := range lines[:4] {
		m := dgramLine.FindStringSubmatch(l)
		if m == nil || m[4] != udpAddr || m[5] != "pod-u" {
			t.Fatalf("line %q", l)
		}
		peers[m[6]] = true
	}
	if len(peers) != 1 { // one socket: the server sees one source port
		t.Errorf("datagrams came from several sockets: %v", peers)
	}
}

// udpResponder answers each datagram on pc through reply (which may be
// another socket), after delay(i) for the i-th datagram.
func udpResponder(t *testing.T, pc, reply net.PacketConn, delay func(int) time.Duration) {
	t.Helper()
	t.Cleanup(func() { pc.Close(); reply.Close() })
	go func() {
		buf := make([]byte, 1500)
		for i := 1; ; i++ {
			n, peer, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			msg := append([]byte("fake: "), buf[:n]...)
			time.AfterFunc(delay(i), func() { reply.WriteTo(msg, peer) })
		}
	}()
}

func listenUDP(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

func TestUDPFlowReplyFromAnotherAddress(t *testing.T) {
	pc, other := listenUDP(t), listenUDP(t)
	udpResponder(t, pc, other, func(int) time.Duration { return 0 })
	code, out, errs := run(t, "udpflow", pc.LocalAddr().String(), "--count", "2", "--interval", "5ms")
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stderr", errs, "replies came from "+other.LocalAddr().String()+":2, want all from "+pc.LocalAddr().String())
}

func TestUDPFlowSkipsLateReplies(t *testing.T) {
	pc := listenUDP(t)
	// The first reply comes after its timeout, while the client waits for
	// the second: it must be skipped, not taken for the second's.
	udpResponder(t, pc, pc, func(i int) time.Duration {
		if i == 1 {
			return 150 * time.Millisecond
		}
		return 0
	})
	code, out, errs := run(t, "udpflow", pc.LocalAddr().String(), "--count", "3", "--interval", "100ms", "--timeout", "100ms")
	wantCode(t, code, 1, out, errs)
	lines := strings.Split(out, "\n")
	if m := dgramLine.FindStringSubmatch(lines[0]); m == nil || m[7] != "no reply" {
		t.Errorf("first datagram: %q", lines[0])
	}
	for _, l := range lines[1:3] {
		if m := dgramLine.FindStringSubmatch(l); m == nil || m[5] != "fake" {
			t.Errorf("later datagram: %q", l)
		}
	}
	wantContains(t, "stdout", out, "udpflow: sent=3 received=2 servers=fake:2")
	wantContains(t, "stderr", errs, "1 of 3 replies from")
}

func TestUDPFlowBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"udpflow"},
		{"udpflow", "127.0.0.1:1", "--count", "0"},
		{"udpflow", "127.0.0.1:1", "--interval", "0s"},
		{"udpflow", "127.0.0.1:1", "--timeout", "2m"},
	} {
		code, out, errs := run(t, args...)
		wantCode(t, code, 2, out, errs)
	}
}

func TestSplitPrefix(t *testing.T) {
	for _, tc := range []struct{ in, name, peer string }{
		{"web1@10.0.0.1:4000", "web1", "10.0.0.1:4000"},
		{"web1@[fd00::1]:4000", "web1", "[fd00::1]:4000"},
		{"plain", "plain", ""},
	} {
		if n, p := splitPrefix(tc.in); n != tc.name || p != tc.peer {
			t.Errorf("splitPrefix(%q) = %q, %q", tc.in, n, p)
		}
	}
}
