package nettool

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testName = "test-srv"

// startServer runs a Server on ephemeral ports of host (a loopback
// address) until the test ends.
func startServer(t *testing.T, host string) *Server {
	t.Helper()
	anyPort := net.JoinHostPort(host, "0")
	srv, err := Listen(context.Background(), testName, anyPort, anyPort, anyPort)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return srv
}

// startServerCancelable runs a TCP-only Server the test can stop early.
func startServerCancelable(t *testing.T) (*Server, context.CancelFunc, <-chan error) {
	t.Helper()
	srv, err := Listen(context.Background(), testName, "127.0.0.1:0", "", "")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(cancel)
	return srv, cancel, done
}

// run runs the command line and returns its exit status and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code = Run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func wantCode(t *testing.T, code, want int, stdout, stderr string) {
	t.Helper()
	if code != want {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
	}
}

func wantContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

// closedTCPPort returns a loopback address nothing listens on.
func closedTCPPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// closedUDPPort returns a loopback address no UDP socket is bound to.
func closedUDPPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// fakeServer runs a loopback TCP server whose connections are handled by
// h. It returns the address and the number of connections accepted.
func fakeServer(t *testing.T, h func(net.Conn)) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		accepts atomic.Int32
		wg      sync.WaitGroup
		mu      sync.Mutex
		conns   []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				h(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), &accepts
}

// echoN echoes n lines like the real server, then returns.
func echoN(n int) func(net.Conn) {
	return func(c net.Conn) {
		r := bufio.NewReader(c)
		for range n {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "fake: %s", line)
		}
	}
}

var streamSummary = regexp.MustCompile(`^stream: sent=(\d+) received=(\d+) errors=(\d+) max_gap=(\d+)ms\n$`)

// parseStream parses the stream summary line.
func parseStream(t *testing.T, stdout string) (sent, received, errs, gapMS int) {
	t.Helper()
	m := streamSummary.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no stream summary in stdout %q", stdout)
	}
	n := make([]int, 4)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return n[0], n[1], n[2], n[3]
}

func TestServerEchoesTCPLines(t *testing.T) {
	srv := startServer(t, "127.0.0.1")
	c, err := net.Dial("tcp", srv.TCP.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// Two lines in one write, and a last one without its newline.
	io.WriteString(c, "one\ntwo\nthree")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	want := "test-srv: one\ntest-srv: two\ntest-srv: three\n"
	if string(got) != want {
		t.Errorf("echo = %q, want %q", got, want)
	}
}

func TestServerEchoesUDPDatagrams(t *testing.T) {
	srv := startServer(t, "127.0.0.1")
	c, err := net.Dial("udp", srv.UDP.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("multi\nline"))
	buf := make([]byte, 1024)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:n]), "test-srv: multi\nline"; got != want {
		t.Errorf("echo = %q, want %q", got, want)
	}
}

func TestServeNothing(t *testing.T) {
	if err := (&Server{Name: "x"}).Serve(context.Background()); err == nil {
		t.Error("Serve without sockets succeeded")
	}
	if _, err := Listen(context.Background(), "x", "", "", ""); err == nil {
		t.Error("Listen without addresses succeeded")
	}
	if _, err := Listen(context.Background(), "bad\nname", "127.0.0.1:0", "", ""); err == nil {
		t.Error("Listen with a multi-line name succeeded")
	}
}

func TestTCP(t *testing.T) {
	addr := startServer(t, "127.0.0.1").TCP.Addr().String()
	code, out, errs := run(t, "tcp", addr, "--count", "3", "--message", "hello there")
	wantCode(t, code, 0, out, errs)
	if want := strings.Repeat("test-srv: hello there\n", 3); out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	// Flags before the address, single dash, default message and count.
	code, out, errs = run(t, "tcp", "-timeout=1s", addr)
	wantCode(t, code, 0, out, errs)
	if out != "test-srv: ping\n" {
		t.Errorf("stdout = %q", out)
	}
}

func TestTCPRefused(t *testing.T) {
	addr := closedTCPPort(t)
	code, out, errs := run(t, "tcp", addr)
	wantCode(t, code, 1, out, errs)
	if want := "tcp: dial " + addr + ": connection refused\n"; errs != want {
		t.Errorf("stderr = %q, want %q", errs, want)
	}
}

func TestTCPNoEcho(t *testing.T) {
	addr, _ := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	start := time.Now()
	code, out, errs := run(t, "tcp", addr, "--timeout", "200ms")
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stderr", errs, "tcp: read echo from "+addr+": no reply within 200ms")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestTCPServerCloses(t *testing.T) {
	addr, _ := fakeServer(t, echoN(1))
	code, out, errs := run(t, "tcp", addr, "--count", "3")
	wantCode(t, code, 1, out, errs)
	if out != "fake: ping\n" {
		t.Errorf("stdout = %q", out)
	}
	wantContains(t, "stderr", errs, "tcp: ", addr, "(line 2 of 3)")
}

func TestTCPUnexpectedEcho(t *testing.T) {
	addr, _ := fakeServer(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "something else\n")
		io.Copy(io.Discard, c)
	})
	code, out, errs := run(t, "tcp", addr)
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stderr", errs, "unexpected echo from "+addr, `"something else"`)
}

func TestTCPBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"tcp"},
		{"tcp", "127.0.0.1"},
		{"tcp", "127.0.0.1:1", "extra"},
		{"tcp", "127.0.0.1:1", "--count", "0"},
		{"tcp", "127.0.0.1:1", "--count", "100001"},
		{"tcp", "127.0.0.1:1", "--timeout", "2h"},
		{"tcp", "127.0.0.1:1", "--message", ""},
		{"tcp", "127.0.0.1:1", "--message", "two\nlines"},
		{"tcp", "127.0.0.1:1", "--bogus"},
	} {
		code, out, errs := run(t, args...)
		if code != 2 {
			t.Errorf("%q: exit status %d, want 2\nstdout: %s\nstderr: %s", args, code, out, errs)
		}
	}
}

func TestUDP(t *testing.T) {
	addr := startServer(t, "127.0.0.1").UDP.LocalAddr().String()
	code, out, errs := run(t, "udp", addr, "--count", "3", "--message", "dgram")
	wantCode(t, code, 0, out, errs)
	if want := strings.Repeat("test-srv: dgram\n", 3); out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

func TestUDPRefused(t *testing.T) {
	addr := closedUDPPort(t)
	code, out, errs := run(t, "udp", addr, "--count", "2", "--timeout", "300ms")
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stderr", errs, "udp: 2 of 2 replies missing from "+addr)
}

func TestUDPNoReply(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr := pc.LocalAddr().String()
	code, out, errs := run(t, "udp", addr, "--count", "2", "--timeout", "100ms")
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stderr", errs,
		"udp: no reply from "+addr+" to datagram 1 of 2 within 100ms",
		"udp: no reply from "+addr+" to datagram 2 of 2 within 100ms",
		"udp: 2 of 2 replies missing from "+addr)
}

func TestUDPSomeRepliesMissing(t *testing.T) {
	// Answers only the first datagram.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1024)
		n, peer, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(append([]byte("fake: "), buf[:n]...), peer)
	}()
	addr := pc.LocalAddr().String()
	code, out, errs := run(t, "udp", addr, "--count", "3", "--timeout", "100ms")
	wantCode(t, code, 1, out, errs)
	if out != "fake: ping\n" {
		t.Errorf("stdout = %q", out)
	}
	wantContains(t, "stderr", errs, "udp: 2 of 3 replies missing from "+addr)
}

func TestHTTP(t *testing.T) {
	base := "http://" + startServer(t, "127.0.0.1").HTTP.Addr().String()
	code, out, errs := run(t, "http", base+"/")
	wantCode(t, code, 0, out, errs)
	if out != testName+"\n" {
		t.Errorf("GET / body = %q", out)
	}
	code, out, errs = run(t, "http", base+"/healthz", "--timeout", "2s")
	wantCode(t, code, 0, out, errs)
	if out != "ok" {
		t.Errorf("GET /healthz body = %q", out)
	}
	code, out, errs = run(t, "http", base+"/nope")
	wantCode(t, code, 1, out, errs)
	if want := "http: GET " + base + "/nope: status 404 Not Found\n"; errs != want {
		t.Errorf("stderr = %q, want %q", errs, want)
	}
}

func TestHTTPRefused(t *testing.T) {
	url := "http://" + closedTCPPort(t) + "/"
	code, out, errs := run(t, "http", url)
	wantCode(t, code, 1, out, errs)
	if want := "http: GET " + url + ": connection refused\n"; errs != want {
		t.Errorf("stderr = %q, want %q", errs, want)
	}
}

func TestHTTPTimeout(t *testing.T) {
	addr, _ := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	url := "http://" + addr + "/"
	code, out, errs := run(t, "http", url, "--timeout", "200ms")
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stderr", errs, "http: GET "+url+": no response within 200ms")
}

func TestHTTPBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"http"},
		{"http", "127.0.0.1:8080"},
		{"http", "ftp://127.0.0.1/"},
		{"http", "http:///path"},
		{"http", "http://127.0.0.1/", "--timeout", "0s"},
	} {
		code, out, errs := run(t, args...)
		if code != 2 {
			t.Errorf("%q: exit status %d, want 2\nstdout: %s\nstderr: %s", args, code, out, errs)
		}
	}
}

func TestStream(t *testing.T) {
	addr := startServer(t, "127.0.0.1").TCP.Addr().String()
	code, out, errs := run(t, "stream", addr, "--interval", "20ms", "--duration", "500ms", "--max-gap", "2s")
	wantCode(t, code, 0, out, errs)
	sent, received, nerr, gap := parseStream(t, out)
	if sent < 5 || sent > 26 || received != sent || nerr != 0 || gap > 2000 {
		t.Errorf("summary %q: want 5..26 sent, all received, no errors, gap <= 2000ms", out)
	}
	if errs != "" {
		t.Errorf("stderr = %q", errs)
	}
}

func TestStreamServerClosesConnection(t *testing.T) {
	addr, accepts := fakeServer(t, echoN(3))
	code, out, errs := run(t, "stream", addr, "--interval", "10ms", "--duration", "2s")
	wantCode(t, code, 1, out, errs)
	sent, received, nerr, _ := parseStream(t, out)
	if sent != 4 || received != 3 || nerr != 1 {
		t.Errorf("summary %q: want sent=4 received=3 errors=1", out)
	}
	wantContains(t, "stderr", errs, "stream: probe 4: ", addr, "after 3 echoes on one connection, no reconnect attempted")
	if n := accepts.Load(); n != 1 {
		t.Errorf("stream made %d connections, want 1", n)
	}
}

func TestStreamServerShutsDown(t *testing.T) {
	srv, cancel, done := startServerCancelable(t)
	addr := srv.TCP.Addr().String()
	type result struct {
		code        int
		out, stderr string
	}
	res := make(chan result, 1)
	start := time.Now()
	go func() {
		var out, errb bytes.Buffer
		code := Run(context.Background(), []string{"stream", addr, "--interval", "10ms", "--duration", "20s"}, &out, &errb)
		res <- result{code, out.String(), errb.String()}
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	r := <-res
	wantCode(t, r.code, 1, r.out, r.stderr)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stream took %v to notice the server went away", d)
	}
	_, received, nerr, _ := parseStream(t, r.out)
	if received < 1 || nerr != 1 {
		t.Errorf("summary %q: want some received and errors=1", r.out)
	}
	wantContains(t, "stderr", r.stderr, "stream: probe ", addr, "no reconnect attempted")
}

func TestStreamGapTooLong(t *testing.T) {
	// Echoes two probes, then keeps the connection open but stops answering.
	addr, accepts := fakeServer(t, func(c net.Conn) {
		echoN(2)(c)
		io.Copy(io.Discard, c)
	})
	start := time.Now()
	code, out, errs := run(t, "stream", addr, "--interval", "20ms", "--duration", "5s", "--max-gap", "300ms")
	wantCode(t, code, 1, out, errs)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stream took %v to notice the gap", d)
	}
	sent, received, nerr, gap := parseStream(t, out)
	if sent != 3 || received != 2 || nerr != 1 || gap < 300 {
		t.Errorf("summary %q: want sent=3 received=2 errors=1 max_gap>=300ms", out)
	}
	wantContains(t, "stderr", errs, "stream: no echo from "+addr, "more than --max-gap 300ms")
	if n := accepts.Load(); n != 1 {
		t.Errorf("stream made %d connections, want 1", n)
	}
}

func TestStreamRefused(t *testing.T) {
	addr := closedTCPPort(t)
	code, out, errs := run(t, "stream", addr, "--duration", "1s")
	wantCode(t, code, 1, out, errs)
	if out != "stream: sent=0 received=0 errors=1 max_gap=0ms\n" {
		t.Errorf("stdout = %q", out)
	}
	if want := "stream: dial " + addr + ": connection refused\n"; errs != want {
		t.Errorf("stderr = %q, want %q", errs, want)
	}
}

func TestStreamBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"stream"},
		{"stream", "127.0.0.1:1", "--duration", "11m"},
		{"stream", "127.0.0.1:1", "--duration", "0s"},
		{"stream", "127.0.0.1:1", "--interval", "0s"},
		{"stream", "127.0.0.1:1", "--interval", "2s", "--duration", "1s"},
		{"stream", "127.0.0.1:1", "--interval", "1s", "--max-gap", "1s"},
		{"stream", "127.0.0.1:1", "--max-gap", "11m"},
	} {
		code, out, errs := run(t, args...)
		if code != 2 {
			t.Errorf("%q: exit status %d, want 2\nstdout: %s\nstderr: %s", args, code, out, errs)
		}
	}
}

var crrSummary = regexp.MustCompile(`^crr: ok=(\d+) failed=(\d+) p50=(\d+)us p99=(\d+)us\n$`)

func TestCRR(t *testing.T) {
	addr := startServer(t, "127.0.0.1").TCP.Addr().String()
	code, out, errs := run(t, "crr", addr, "--count", "300", "--concurrency", "8")
	wantCode(t, code, 0, out, errs)
	m := crrSummary.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no crr summary in %q", out)
	}
	p50, _ := strconv.Atoi(m[3])
	p99, _ := strconv.Atoi(m[4])
	if m[1] != "300" || m[2] != "0" || p50 > p99 {
		t.Errorf("summary %q: want ok=300 failed=0 p50<=p99", out)
	}
}

func TestCRRRefused(t *testing.T) {
	addr := closedTCPPort(t)
	code, out, errs := run(t, "crr", addr, "--count", "5", "--concurrency", "2")
	wantCode(t, code, 1, out, errs)
	if out != "crr: ok=0 failed=5 p50=0us p99=0us\n" {
		t.Errorf("stdout = %q", out)
	}
	if want := "crr: 5 of 5 exchanges with " + addr + " failed; first error: dial " + addr + ": connection refused\n"; errs != want {
		t.Errorf("stderr = %q, want %q", errs, want)
	}
}

func TestCRRServerDoesNotEcho(t *testing.T) {
	addr, _ := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	code, out, errs := run(t, "crr", addr, "--count", "3", "--concurrency", "3", "--timeout", "200ms")
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stdout", out, "crr: ok=0 failed=3 ")
	wantContains(t, "stderr", errs, "first error: read echo from "+addr+": no reply within")
}

func TestCRRBadArgs(t *testing.T) {
	for _, args := range [][]string{
		{"crr"},
		{"crr", "127.0.0.1:1", "--count", "0"},
		{"crr", "127.0.0.1:1", "--count", "1000001"},
		{"crr", "127.0.0.1:1", "--concurrency", "0"},
		{"crr", "127.0.0.1:1", "--concurrency", "65"},
		{"crr", "127.0.0.1:1", "--timeout", "-1s"},
	} {
		code, out, errs := run(t, args...)
		if code != 2 {
			t.Errorf("%q: exit status %d, want 2\nstdout: %s\nstderr: %s", args, code, out, errs)
		}
	}
}

func TestPercentile(t *testing.T) {
	r := crrResult{}
	if r.percentile(0.5) != 0 {
		t.Error("percentile of nothing is not 0")
	}
	for i := 1; i <= 100; i++ {
		r.latencies = append(r.latencies, time.Duration(i))
	}
	if p := r.percentile(0.50); p != 50 {
		t.Errorf("p50 = %d, want 50", p)
	}
	if p := r.percentile(0.99); p != 99 {
		t.Errorf("p99 = %d, want 99", p)
	}
	r.latencies = r.latencies[:1]
	if p := r.percentile(0.99); p != 1 {
		t.Errorf("p99 of one = %d, want 1", p)
	}
}

func TestIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	srv := startServer(t, "::1")
	tcpAddr := srv.TCP.Addr().String()
	if !strings.HasPrefix(tcpAddr, "[::1]:") {
		t.Fatalf("TCP address %q", tcpAddr)
	}
	for _, args := range [][]string{
		{"tcp", tcpAddr},
		{"udp", srv.UDP.LocalAddr().String()},
		{"http", "http://" + srv.HTTP.Addr().String() + "/healthz"},
		{"stream", tcpAddr, "--interval", "10ms", "--duration", "100ms"},
		{"crr", tcpAddr, "--count", "10"},
	} {
		code, out, errs := run(t, args...)
		if code != 0 {
			t.Errorf("%q: exit status %d\nstdout: %s\nstderr: %s", args, code, out, errs)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to read while another goroutine writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveCommand runs "serve args..." until the test cancels it and returns
// its "serving" line.
func serveCommand(t *testing.T, args ...string) (line string, cancel context.CancelFunc, code <-chan int, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var out syncBuffer
	stderr = new(syncBuffer)
	done := make(chan int, 1)
	go func() { done <- Run(ctx, append([]string{"serve"}, args...), &out, stderr) }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s := out.String(); strings.HasSuffix(s, "\n") {
			return s, cancel, done, stderr
		}
		select {
		case c := <-done:
			t.Fatalf("serve exited with status %d\nstderr:\n%s", c, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("serve printed nothing within 5s\nstderr:\n%s", stderr.String())
	return "", nil, nil, nil
}

func TestServeCommand(t *testing.T) {
	line, cancel, done, stderr := serveCommand(t,
		"--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--name", "pod-a")
	m := regexp.MustCompile(`^serving tcp=(\S+) udp=(\S+) http=(\S+) name=pod-a\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("serving line = %q", line)
	}
	for _, tc := range []struct {
		args []string
		out  string
	}{
		{[]string{"tcp", m[1]}, "pod-a: ping\n"},
		{[]string{"udp", m[2]}, "pod-a: ping\n"},
		{[]string{"http", "http://" + m[3] + "/"}, "pod-a\n"},
	} {
		code, out, errs := run(t, tc.args...)
		wantCode(t, code, 0, out, errs)
		if out != tc.out {
			t.Errorf("%q: stdout = %q, want %q", tc.args, out, tc.out)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exit status %d after cancel, want 0\nstderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

func TestServeCommandDisabled(t *testing.T) {
	line, cancel, done, _ := serveCommand(t, "--tcp", "127.0.0.1:0", "--udp", "", "--http=")
	if !regexp.MustCompile(`^serving tcp=127\.0\.0\.1:\d+ udp=off http=off name=\S+\n$`).MatchString(line) {
		t.Errorf("serving line = %q", line)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exit status %d", code)
	}
}

func TestServeCommandErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	code, out, errs := run(t, "serve", "--tcp", busy, "--udp", "", "--http", "")
	wantCode(t, code, 1, out, errs)
	if want := "serve: listen tcp " + busy + ": address already in use\n"; errs != want {
		t.Errorf("stderr = %q, want %q", errs, want)
	}
	code, out, errs = run(t, "serve", "--tcp", "", "--udp", "", "--http", "")
	wantCode(t, code, 2, out, errs)
	code, out, errs = run(t, "serve", "extra")
	wantCode(t, code, 2, out, errs)
}

func TestUsage(t *testing.T) {
	commands := []string{"serve", "tcp", "udp", "http", "stream", "crr"}

	code, out, errs := run(t)
	wantCode(t, code, 2, out, errs)
	wantContains(t, "stderr", errs, commands...)

	for _, help := range []string{"--help", "-h", "help"} {
		code, out, errs = run(t, help)
		wantCode(t, code, 0, out, errs)
		wantContains(t, "stdout", out, commands...)
	}

	code, out, errs = run(t, "frobnicate")
	wantCode(t, code, 2, out, errs)
	wantContains(t, "stderr", errs, `unknown command "frobnicate"`)

	for _, c := range commands {
		code, out, errs = run(t, c, "--help")
		wantCode(t, code, 0, out, errs)
		wantContains(t, c+" --help", out, "Usage: seta-nettool "+c)
	}
	_, out, _ = run(t, "stream", "--help")
	wantContains(t, "stream --help", out, "-interval", "-duration", "-max-gap")
	_, out, _ = run(t, "crr", "--help")
	wantContains(t, "crr --help", out, "-count", "-concurrency", "-timeout")
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		pos   []string
		count int
	}{
		{[]string{"a", "--count", "3"}, []string{"a"}, 3},
		{[]string{"--count=3", "a", "b"}, []string{"a", "b"}, 3},
		{[]string{"a", "-count", "2", "b"}, []string{"a", "b"}, 2},
		{[]string{"a", "--", "--count", "4"}, []string{"a", "--count", "4"}, 1},
		{nil, nil, 1},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		count := fs.Int("count", 1, "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *count != tc.count {
			t.Errorf("%q: pos %q count %d err %v, want %q %d", tc.args, pos, *count, err, tc.pos, tc.count)
		}
	}
}

func TestRR(t *testing.T) {
	ctx := context.Background()
	addr := startServer(t, "127.0.0.1").TCP.Addr().String()
	var out, errb strings.Builder
	code := Run(ctx, []string{"rr", addr, "--count", "200"}, &out, &errb)
	if code != 0 || !strings.HasPrefix(out.String(), "rr: ok=200 rate=") {
		t.Fatalf("rr: code %d out %q err %q", code, out.String(), errb.String())
	}
	code = Run(ctx, []string{"rr", "127.0.0.1:1", "--count", "1", "--timeout", "200ms"}, &out, &errb)
	if code != 1 {
		t.Errorf("rr to a closed port: code %d", code)
	}
}

func TestBlastSendsAtRate(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan int)
	go func() {
		n := 0
		buf := make([]byte, 2048)
		for {
			pc.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := pc.ReadFrom(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	code, out, errOut := run(t, "blast", pc.LocalAddr().String(), "--rate", "2000", "--duration", "500ms")
	if code != 0 || !strings.Contains(out, "blast: sent=") {
		t.Fatalf("blast: code %d\n%s%s", code, out, errOut)
	}
	// 2000/s for 0.5 s is 1000 datagrams; the schedule catches up on timer
	// jitter, so anything far off is a pacing bug.
	if n := <-got; n < 900 || n > 1001 {
		t.Errorf("received %d datagrams, want about 1000\n%s", n, out)
	}
	if code, _, _ := run(t, "blast", "127.0.0.1:9", "--rate", "2000000"); code != 2 {
		t.Errorf("a rate above the bound was accepted (code %d)", code)
	}
}
