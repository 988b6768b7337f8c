package nettool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The request/response workloads of netperf, against perf-serve: the
// datapath benchmark's load. They use blocking sockets and plain read and
// write system calls, so that between two transactions there is nothing
// but the kernel: no event loop, no buffering, no allocation. A benchmark
// that compares datapaths wants the fixed cost of the tool as small as it
// can be, since that cost dilutes every difference.

// Perf tests, named as netperf names them.
const (
	testTCPRR  = "TCP_RR"  // one connection, request and response back to back
	testTCPCRR = "TCP_CRR" // connect, one request and response, close; repeated
	testUDPRR  = "UDP_RR"  // one connected UDP socket, datagram and reply back to back
)

// Bytes of the perf protocol. A TCP request is a run of perfReqByte; a
// TCP_CRR request ends in perfCloseByte, which tells perf-serve to close the
// connection after its echo, so TIME_WAIT stays on the server and a long
// run does not use up the client's ephemeral ports.
const (
	perfReqByte   = 'r'
	perfCloseByte = 'c'
)

const (
	maxPerfCount    = 100_000_000
	maxPerfSize     = 1400 // one datagram, one segment on any MTU the lab uses
	maxPerfDuration = 10 * time.Minute
	// maxUDPLoss is the share of UDP_RR requests whose reply may be missing
	// before the run fails: a lost datagram costs a whole --timeout, so a
	// lossy run measures the timeout, not the datapath.
	maxUDPLoss = 0.01
)

// perfConfig is the perf command's flags.
type perfConfig struct {
	test     string
	addr     netip.AddrPort
	count    int
	duration time.Duration
	size     int
	timeout  time.Duration
}

// perfResult is what a perf run did.
type perfResult struct {
	ok      int // transactions completed
	lost    int // UDP_RR: requests whose reply did not come within the timeout
	elapsed time.Duration
	hist    latencyHist
	err     error // what ended the run early, nil if it ran its course
}

// rate is completed transactions per second.
func (r *perfResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// latencyHist counts latencies in fixed memory however long the run: 1 µs
// buckets below 10 ms, 1 ms buckets from there to 10 s, and the largest
// value seen beyond.
type latencyHist struct {
	fine   [10_000]uint32 // [i µs, i+1 µs)
	coarse [10_000]uint32 // [10 ms + i ms, 10 ms + (i+1) ms)
	over   uint32
	max    time.Duration
	n      int
}

func (h *latencyHist) add(d time.Duration) {
	h.n++
	h.max = max(h.max, d)
	switch us := d.Microseconds(); {
	case us < int64(len(h.fine)):
		h.fine[max(us, 0)]++
	case us < int64(len(h.fine))+1000*int64(len(h.coarse)):
		h.coarse[(us-int64(len(h.fine)))/1000]++
	default:
		h.over++
	}
}

// percentile returns the nearest-rank p-th (0..1) percentile, as the lower
// edge of its bucket (the largest value seen beyond the buckets); 0 for no
// values.
func (h *latencyHist) percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(max(math.Ceil(p*float64(h.n)), 1))
	var seen uint64
	for i, c := range h.fine {
		if seen += uint64(c); seen >= rank {
			return time.Duration(i) * time.Microsecond
		}
	}
	for i, c := range h.coarse {
		if seen += uint64(c); seen >= rank {
			return time.Duration(len(h.fine))*time.Microsecond + time.Duration(i)*time.Millisecond
		}
	}
	return h.max
}

// runPerfTest runs cfg until its count is done, its duration has passed,
// stop is set or a transaction fails.
func runPerfTest(cfg perfConfig, stop *atomic.Bool) perfResult {
	switch cfg.test {
	case testTCPRR:
		return perfTCPRR(cfg, stop)
	case testTCPCRR:
		return perfTCPCRR(cfg, stop)
	default:
		return perfUDPRR(cfg, stop)
	}
}

// perfLoop calls once back to back until the count, the duration or stop
// ends the run or once fails, and times each call.
func perfLoop(cfg perfConfig, stop *atomic.Bool, res *perfResult, once func() error) {
	start := time.Now()
	deadline := start.Add(cfg.duration)
	for res.ok+res.lost < cfg.count && !stop.Load() {
		t0 := time.Now()
		if !t0.Before(deadline) {
			break
		}
		if err := once(); err != nil {
			if errors.Is(err, errNoReply) {
				res.lost++
				continue
			}
			res.err = fmt.Errorf("transaction %d: %w", res.ok+res.lost+1, err)
			break
		}
		res.hist.add(time.Since(t0))
		res.ok++
	}
	res.elapsed = time.Since(start)
}

func perfTCPRR(cfg perfConfig, stop *atomic.Bool) perfResult {
	var res perfResult
	fd, err := dialPerf(cfg.addr, unix.SOCK_STREAM, cfg.timeout)
	if err != nil {
		res.err = err
		return res
	}
	defer unix.Close(fd)
	req := bytes.Repeat([]byte{perfReqByte}, cfg.size)
	resp := make([]byte, cfg.size)
	perfLoop(cfg, stop, &res, func() error {
		if err := writeFull(fd, req); err != nil {
			return fmt.Errorf("send to %s: %w", cfg.addr, err)
		}
		if err := readFull(fd, resp); err != nil {
			return fmt.Errorf("read reply from %s: %w", cfg.addr, err)
		}
		return nil
	})
	return res
}

func perfTCPCRR(cfg perfConfig, stop *atomic.Bool) perfResult {
	var res perfResult
	req := bytes.Repeat([]byte{perfReqByte}, cfg.size)
	req[len(req)-1] = perfCloseByte
	resp := make([]byte, cfg.size)
	perfLoop(cfg, stop, &res, func() error { return crrExchange(cfg, req, resp) })
	return res
}

// crrExchange connects, sends req, reads its echo and waits for the
// server to close first; then it closes too.
func crrExchange(cfg perfConfig, req, resp []byte) error {
	fd, err := dialPerf(cfg.addr, unix.SOCK_STREAM, cfg.timeout)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := writeFull(fd, req); err != nil {
		return fmt.Errorf("send to %s: %w", cfg.addr, err)
	}
	if err := readFull(fd, resp); err != nil {
		return fmt.Errorf("read reply from %s: %w", cfg.addr, err)
	}
	var b [1]byte
	n, err := readFD(fd, b[:])
	switch {
	case err != nil:
		return fmt.Errorf("wait for %s to close: %w", cfg.addr, err)
	case n != 0:
		return fmt.Errorf("wait for %s to close: got more data (is it perf-serve?)", cfg.addr)
	}
	return nil
}

// errNoReply is a UDP request whose reply did not come in time.
var errNoReply = errors.New("no reply")

func perfUDPRR(cfg perfConfig, stop *atomic.Bool) perfResult {
	var res perfResult
	fd, err := dialPerf(cfg.addr, unix.SOCK_DGRAM, cfg.timeout)
	if err != nil {
		res.err = err
		return res
	}
	defer unix.Close(fd)
	req := make([]byte, cfg.size)
	// A reply may be one byte larger than asked for, which tells a
	// truncated datagram from a complete one.
	resp := make([]byte, cfg.size+1)
	var seq byte
	perfLoop(cfg, stop, &res, func() error {
		// Every byte of a request carries its sequence number (mod 256), so
		// a late reply to an earlier request is not taken for this one.
		seq++
		for i := range req {
			req[i] = seq
		}
		if err := writeFull(fd, req); err != nil {
			return fmt.Errorf("send to %s: %w", cfg.addr, err)
		}
		for {
			n, err := readFD(fd, resp)
			switch {
			case errors.Is(err, errTimeout):
				return errNoReply
			case errors.Is(err, unix.ECONNREFUSED):
				return fmt.Errorf("%s: connection refused (nothing listens there)", cfg.addr)
			case err != nil:
				return fmt.Errorf("read reply from %s: %w", cfg.addr, err)
			case n == len(req) && resp[0] == seq:
				return nil
			case n != len(req):
				return fmt.Errorf("reply from %s has %d bytes, want %d (is it perf-serve?)", cfg.addr, n, len(req))
			}
			// A late reply to an earlier request: keep waiting for this one.
		}
	})
	return res
}

// ---- blocking sockets ----

// errTimeout is a socket timeout (SO_RCVTIMEO, SO_SNDTIMEO) expiring.
var errTimeout = errors.New("timed out")

// sockaddrOf converts ap for the socket calls.
func sockaddrOf(ap netip.AddrPort) (unix.Sockaddr, int) {
	a := ap.Addr().Unmap()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, unix.AF_INET
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}, unix.AF_INET6
}

// blockingSocket opens a blocking socket whose reads and writes give up
// after timeout; TCP sockets send at once (TCP_NODELAY), as netperf's do.
func blockingSocket(family, typ int, timeout time.Duration) (int, error) {
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := setTimeouts(fd, timeout, timeout); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("set TCP_NODELAY: %w", err)
		}
	}
	return fd, nil
}

func setTimeouts(fd int, recv, send time.Duration) error {
	rtv, stv := unix.NsecToTimeval(recv.Nanoseconds()), unix.NsecToTimeval(send.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &rtv); err != nil {
		return fmt.Errorf("set SO_RCVTIMEO: %w", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &stv); err != nil {
		return fmt.Errorf("set SO_SNDTIMEO: %w", err)
	}
	return nil
}

// dialPerf opens a blocking socket of type typ connected to addr.
func dialPerf(addr netip.AddrPort, typ int, timeout time.Duration) (int, error) {
	sa, family := sockaddrOf(addr)
	fd, err := blockingSocket(family, typ, timeout)
	if err != nil {
		return -1, err
	}
	if err := connectFD(fd, sa, timeout); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", addr, err)
	}
	return fd, nil
}

// connectFD connects a blocking socket within timeout. A connect
// interrupted by a signal goes on in the background; then it waits for the
// socket to become writable and takes the outcome from SO_ERROR.
func connectFD(fd int, sa unix.Sockaddr, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	err := unix.Connect(fd, sa)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINPROGRESS):
		// A blocking connect that reached SO_SNDTIMEO.
		return errTimeout
	case !errors.Is(err, unix.EINTR):
		return err
	}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errTimeout
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(max(left.Milliseconds(), 1)))
		if errors.Is(err, unix.EINTR) || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return err
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soErr != 0 {
			return unix.Errno(soErr)
		}
		return nil
	}
}

// readFD reads once, retrying a read a signal interrupted; a timeout is
// errTimeout.
func readFD(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, errTimeout
		case err != nil:
			return 0, err
		}
		return n, nil
	}
}

// readFull reads exactly len(b) bytes from a stream.
func readFull(fd int, b []byte) error {
	for got := 0; got < len(b); {
		n, err := readFD(fd, b[got:])
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		got += n
	}
	return nil
}

// writeFull writes all of b, retrying writes a signal interrupted.
func writeFull(fd int, b []byte) error {
	for sent := 0; sent < len(b); {
		n, err := unix.Write(fd, b[sent:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return errTimeout
		case err != nil:
			return err
		}
		sent += n
	}
	return nil
}

// ---- the command ----

// parsePerfTest accepts a test name in any case.
func parsePerfTest(s string) (string, error) {
	switch t := strings.ToUpper(s); t {
	case testTCPRR, testTCPCRR, testUDPRR:
		return t, nil
	}
	return "", fmt.Errorf("unknown --test %q: want %s, %s or %s", s, testTCPRR, testTCPCRR, testUDPRR)
}

// parsePerfAddr parses ADDR: an IP address (no zone) and a port.
func parsePerfAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	switch {
	case err != nil:
		return netip.AddrPort{}, fmt.Errorf("invalid address %q: want IP:port, e.g. 10.0.0.5:7100 or [fd00::5]:7100", s)
	case ap.Addr().Zone() != "":
		return netip.AddrPort{}, fmt.Errorf("invalid address %q: zones are not supported", s)
	case ap.Port() == 0:
		return netip.AddrPort{}, fmt.Errorf("invalid address %q: port 0", s)
	}
	return ap, nil
}

func runPerf(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("perf", "perf ADDR --test TCP_RR|TCP_CRR|UDP_RR [--duration D] [--count N] [--size B] [--timeout D]",
		`Run one of netperf's request/response workloads against perf-serve at ADDR
(IP:port) until --count transactions are done or --duration has passed:
  TCP_RR   one connection; send --size bytes, read the echo; back to back
  TCP_CRR  connect, send --size bytes, read the echo, the server closes,
           close; back to back
  UDP_RR   one connected UDP socket; send a datagram of --size bytes, read
           the echo; back to back (a reply not back within --timeout is lost)
Prints
  perf: test=T ok=N lost=N seconds=S rate=R/s p50=Nus p99=Nus
Fails if a TCP transaction fails, or more than 1% of UDP replies are lost.`,
		stdout, stderr)
	test := c.fs.String("test", "", "workload: TCP_RR, TCP_CRR or UDP_RR")
	duration := c.fs.Duration("duration", 10*time.Second, fmt.Sprintf("time limit for the run (at most %v)", maxPerfDuration))
	count := c.fs.Int("count", 10_000_000, fmt.Sprintf("transactions at most (1..%d)", maxPerfCount))
	size := c.fs.Int("size", 1, fmt.Sprintf("request and response bytes (1..%d)", maxPerfSize))
	timeout := c.fs.Duration("timeout", time.Second, "limit for each connect, send and reply")
	pos, code, done := c.parse(args, 1, "ADDR")
	if done {
		return code
	}
	cfg := perfConfig{count: *count, duration: *duration, size: *size, timeout: *timeout}
	var errT, errA error
	cfg.test, errT = parsePerfTest(*test)
	cfg.addr, errA = parsePerfAddr(pos[0])
	if err := firstError(errA, errT,
		checkInt("count", cfg.count, 1, maxPerfCount),
		checkInt("size", cfg.size, 1, maxPerfSize),
		checkDuration("duration", cfg.duration, time.Millisecond, maxPerfDuration),
		checkDuration("timeout", cfg.timeout, time.Millisecond, maxTimeout),
	); err != nil {
		return c.usageError("%v", err)
	}
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	res := runPerfTest(cfg, &stop)
	fmt.Fprintf(stdout, "perf: test=%s ok=%d lost=%d seconds=%.3f rate=%.0f/s p50=%dus p99=%dus\n", cfg.test, res.ok, res.lost,
		res.elapsed.Seconds(), res.rate(), res.hist.percentile(0.50).Microseconds(), res.hist.percentile(0.99).Microseconds())
	switch {
	case res.err != nil:
		return c.fail("%v", res.err)
	case ctx.Err() != nil:
		return c.fail("%s after %d transactions", interrupted(ctx), res.ok)
	case res.ok == 0:
		return c.fail("no transaction completed with %s", cfg.addr)
	case float64(res.lost) > maxUDPLoss*float64(res.ok+res.lost):
		return c.fail("%d of %d replies from %s lost (more than %.0f%%)", res.lost, res.ok+res.lost, cfg.addr, 100*maxUDPLoss)
	}
	return exitOK
}
