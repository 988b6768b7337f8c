package nettool

import (
	"context"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startPerfServer runs a PerfServer on ephemeral ports of host until the
// test ends; it returns the TCP and UDP addresses.
func startPerfServer(t *testing.T, host string) (tcp, udp string) {
	t.Helper()
	anyPort := net.JoinHostPort(host, "0")
	srv, err := ListenPerf(anyPort, anyPort)
	if err != nil {
		t.Fatalf("ListenPerf: %v", err)
	}
	tcp = net.JoinHostPort(host, strconv.Itoa(int(srv.TCPAddr().Port())))
	udp = net.JoinHostPort(host, strconv.Itoa(int(srv.UDPAddr().Port())))
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
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return tcp, udp
}

var perfSummary = regexp.MustCompile(`^perf: test=(\w+) ok=(\d+) lost=(\d+) seconds=([0-9.]+) rate=(\d+)/s p50=(\d+)us p99=(\d+)us\n$`)

// parsePerf parses the perf summary line into its numbers.
func parsePerf(t *testing.T, stdout string) (test string, ok, lost int, seconds float64, rate int) {
	t.Helper()
	m := perfSummary.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no perf summary in stdout %q", stdout)
	}
	ok, _ = strconv.Atoi(m[2])
	lost, _ = strconv.Atoi(m[3])
	seconds, _ = strconv.ParseFloat(m[4], 64)
	rate, _ = strconv.Atoi(m[5])
	return m[1], ok, lost, seconds, rate
}

func TestPerfWorkloads(t *testing.T) {
	tcp, udp := startPerfServer(t, "127.0.0.1")
	for _, tc := range []struct {
		test, addr, size string
	}{
		{"TCP_RR", tcp, "1"},
		{"tcp_crr", tcp, "1"},
		{"UDP_RR", udp, "1"},
		{"TCP_RR", tcp, "1400"},
		{"TCP_CRR", tcp, "700"},
		{"UDP_RR", udp, "1400"},
	} {
		t.Run(tc.test+"/"+tc.size, func(t *testing.T) {
			code, out, errs := run(t, "perf", tc.addr, "--test", tc.test, "--duration", "300ms", "--size", tc.size)
			wantCode(t, code, 0, out, errs)
			test, ok, lost, seconds, rate := parsePerf(t, out)
			if test != strings.ToUpper(tc.test) || ok < 10 || lost != 0 || rate < 1 {
				t.Errorf("got test=%s ok=%d lost=%d rate=%d, want %s, at least 10 transactions, none lost", test, ok, lost, rate, strings.ToUpper(tc.test))
			}
			if seconds < 0.29 || seconds > 2 {
				t.Errorf("ran %.3f s, want about the 0.3 s of --duration", seconds)
			}
		})
	}
}

func TestPerfCountBoundsTheRun(t *testing.T) {
	tcp, udp := startPerfServer(t, "127.0.0.1")
	for _, tc := range []struct{ test, addr string }{{"TCP_RR", tcp}, {"TCP_CRR", tcp}, {"UDP_RR", udp}} {
		code, out, errs := run(t, "perf", tc.addr, "--test", tc.test, "--count", "37", "--duration", "1m")
		wantCode(t, code, 0, out, errs)
		if _, ok, _, _, _ := parsePerf(t, out); ok != 37 {
			t.Errorf("%s: %d transactions, want the 37 of --count", tc.test, ok)
		}
	}
}

func TestPerfServerProtocol(t *testing.T) {
	tcp, udp := startPerfServer(t, "127.0.0.1")

	// A run of 'r' is echoed and the connection stays open.
	c, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 3)
	for range 2 {
		io.WriteString(c, "rrr")
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "rrr" {
			t.Fatalf("echo of rrr: %q, %v", buf, err)
		}
	}
	// A request ending in 'c' is echoed, then the server closes.
	io.WriteString(c, "rrc")
	rest, err := io.ReadAll(c)
	if err != nil || string(rest) != "rrc" {
		t.Fatalf("after a request ending in c: read %q, %v; want the echo, then EOF", rest, err)
	}

	// A datagram comes back unchanged.
	u, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(5 * time.Second))
	u.Write([]byte("x\x00y"))
	n, err := u.Read(buf)
	if err != nil || string(buf[:n]) != "x\x00y" {
		t.Fatalf("udp echo: %q, %v", buf[:n], err)
	}
}

func TestPerfRefused(t *testing.T) {
	for _, tc := range []struct{ test, addr string }{
		{"TCP_RR", closedTCPPort(t)}, {"TCP_CRR", closedTCPPort(t)}, {"UDP_RR", closedUDPPort(t)},
	} {
		code, out, errs := run(t, "perf", tc.addr, "--test", tc.test, "--duration", "2s", "--timeout", "500ms")
		wantCode(t, code, 1, out, errs)
		wantContains(t, tc.test+" stderr", errs, "connection refused")
	}
}

// A UDP peer that never answers: every request is lost, and the run fails
// saying so, within its duration.
func TestPerfUDPNoReply(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	t0 := time.Now()
	code, out, errs := run(t, "perf", pc.LocalAddr().String(), "--test", "UDP_RR", "--duration", "300ms", "--timeout", "50ms")
	wantCode(t, code, 1, out, errs)
	if _, ok, lost, _, _ := parsePerf(t, out); ok != 0 || lost < 3 {
		t.Errorf("ok=%d lost=%d, want 0 completed and several lost", ok, lost)
	}
	wantContains(t, "stderr", errs, "no transaction completed")
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("took %v, want about the 300ms of --duration", d)
	}
}

// A peer that is not perf-serve (the line echo servers, which wait for a
// newline and prefix their name) is caught rather than measured.
func TestPerfWrongServer(t *testing.T) {
	srv := startServer(t, "127.0.0.1")
	code, out, errs := run(t, "perf", srv.TCP.Addr().String(), "--test", "TCP_CRR", "--duration", "1s", "--timeout", "200ms")
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stderr", errs, "read reply from", "timed out")
	code, out, errs = run(t, "perf", srv.UDP.LocalAddr().String(), "--test", "UDP_RR", "--duration", "1s")
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stderr", errs, "is it perf-serve?")
}

func TestPerfBadArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"perf", "127.0.0.1:7100"}, `unknown --test ""`},
		{[]string{"perf", "127.0.0.1:7100", "--test", "TCP_STREAM"}, `unknown --test "TCP_STREAM"`},
		{[]string{"perf", "localhost:7100", "--test", "TCP_RR"}, "want IP:port"},
		{[]string{"perf", "127.0.0.1:0", "--test", "TCP_RR"}, "port 0"},
		{[]string{"perf", "[fe80::1%lo]:7100", "--test", "TCP_RR"}, "zones are not supported"},
		{[]string{"perf", "127.0.0.1:7100", "--test", "TCP_RR", "--size", "0"}, "--size 0 out of range"},
		{[]string{"perf", "127.0.0.1:7100", "--test", "TCP_RR", "--count", "0"}, "--count 0 out of range"},
		{[]string{"perf", "127.0.0.1:7100", "--test", "TCP_RR", "--duration", "11m"}, "--duration 11m0s out of range"},
		{[]string{"perf", "--test", "TCP_RR"}, "missing ADDR"},
		{[]string{"perf-serve", "--tcp", "", "--udp", ""}, "nothing to serve"},
		{[]string{"perf-serve", "--lifetime", "25h"}, "--lifetime 25h0m0s out of range"},
		{[]string{"perf-serve", "extra"}, `unexpected argument "extra"`},
	} {
		code, out, errs := run(t, tc.args...)
		wantCode(t, code, 2, out, errs)
		wantContains(t, strings.Join(tc.args, " "), errs, tc.want)
	}
	code, out, errs := run(t, "perf-serve", "--tcp", "127.0.0.1:notaport", "--udp", "")
	wantCode(t, code, 1, out, errs)
	wantContains(t, "stderr", errs, "invalid port")
}

// The server stops when its context ends, also with a client connected
// and idle (its blocked read wakes up within perfPoll).
func TestPerfServerStops(t *testing.T) {
	srv, err := ListenPerf("127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.TCPAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "r")
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if d := time.Since(t0); d > 5*perfPoll {
		t.Errorf("Serve took %v to stop, want within about %v", d, perfPoll)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the idle connection is still open after Serve returned")
	}
	if c2, err := net.Dial("tcp", addr); err == nil {
		c2.Close()
		t.Error("the listener still accepts after Serve returned")
	}
}

func TestPerfServeLifetime(t *testing.T) {
	t0 := time.Now()
	code, out, errs := run(t, "perf-serve", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--lifetime", "1s")
	wantCode(t, code, 0, out, errs)
	if !regexp.MustCompile(`^perf-serve: tcp=127\.0\.0\.1:\d+ udp=127\.0\.0\.1:\d+\n$`).MatchString(out) {
		t.Errorf("stdout %q, want the perf-serve line with both addresses", out)
	}
	if d := time.Since(t0); d < time.Second || d > 3*time.Second {
		t.Errorf("perf-serve --lifetime 1s ran %v", d)
	}
}

// ":port" serves IPv4 and IPv6 on one socket.
func TestPerfServerDualStack(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	srv, err := ListenPerf(":0", ":0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	port := strconv.Itoa(int(srv.TCPAddr().Port()))
	uport := strconv.Itoa(int(srv.UDPAddr().Port()))
	for _, host := range []string{"127.0.0.1", "::1"} {
		for _, tc := range []struct{ test, port string }{{"TCP_RR", port}, {"UDP_RR", uport}} {
			code, out, errs := run(t, "perf", net.JoinHostPort(host, tc.port), "--test", tc.test, "--count", "5")
			wantCode(t, code, 0, out, errs)
		}
	}
}

func TestLatencyHist(t *testing.T) {
	var h latencyHist
	if got := h.percentile(0.5); got != 0 {
		t.Errorf("empty: p50 %v, want 0", got)
	}
	// 1..100 µs, one each: p50 is 50 µs, p99 99 µs.
	for i := 1; i <= 100; i++ {
		h.add(time.Duration(i)*time.Microsecond + 300*time.Nanosecond)
	}
	if p50, p99 := h.percentile(0.5), h.percentile(0.99); p50 != 50*time.Microsecond || p99 != 99*time.Microsecond {
		t.Errorf("p50 %v p99 %v, want 50µs 99µs", p50, p99)
	}
	// Beyond the fine buckets: 1 ms resolution, then the maximum.
	var c latencyHist
	c.add(25*time.Millisecond + 700*time.Microsecond)
	if got := c.percentile(1); got != 25*time.Millisecond {
		t.Errorf("25.7ms lands in %v, want the 25ms bucket", got)
	}
	var o latencyHist
	o.add(time.Minute)
	if got := o.percentile(0.5); got != time.Minute {
		t.Errorf("beyond the buckets: %v, want the maximum, 1m", got)
	}
}
