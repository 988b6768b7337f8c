package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seta-net/seta/pkg/lab"
	"github.com/seta-net/seta/pkg/nsutil"
)

// crrTimeout bounds each connect, send and receive of the CRR client.
const crrTimeout = time.Second

// crrResult is what one CRR measurement saw. Latencies are in
// microseconds, over the successful connections.
type crrResult struct {
	OK, Failed int
	FirstError string `json:",omitempty"`
	Seconds    float64
	Rate       float64 // successful connections per second
	// Connect: how long the blocking connect() took (SYN sent to SYN-ACK
	// received, plus the socket LB's or netfilter's work on the way).
	ConnectP50, ConnectP90, ConnectP99, ConnectMean float64
	// Exchange: connect, one request line and its echo.
	ExchangeP50, ExchangeP99 float64
	// AgentCPU: the Seta agent's CPU time during the measurement, per
	// second of it (1 = one core): the socket LB needs none of it.
	AgentCPU float64 `json:",omitempty"`
	// BPF: what the lab node's programs ran over the measurement, by
	// program name (from the kernel's BPF run statistics; --bpf-stats).
	BPF map[string]progRuns `json:",omitempty"`
}

// runCRRChild is the client, run by the parent inside the client's
// namespace (and, for Seta, the node's cgroup): --crr-count connections
// one after the other, or fewer if --crr-duration passes first. Each one:
// socket, connect (timed), send a line, read its echo, half-close, read
// the server's close, close. It uses raw blocking syscalls on one locked
// thread so the timing holds nothing but the kernel's work.
func runCRRChild(addr string) int {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		fmt.Fprintf(os.Stderr, "crr child: %q is not an IPv4 ADDR:PORT\n", addr)
		return 2
	}
	runtime.LockOSThread()
	res := doCRR(ap, *crrCount, *crrTime)
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	if res.OK == 0 {
		return 1
	}
	return 0
}

func doCRR(ap netip.AddrPort, count int, limit time.Duration) crrResult {
	var res crrResult
	conn := make([]time.Duration, 0, count)
	exch := make([]time.Duration, 0, count)
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	start := time.Now()
	deadline := start.Add(limit)
	for i := 0; i < count && time.Now().Before(deadline); i++ {
		c, e, err := crrOnce(sa, i)
		if err != nil {
			res.Failed++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
			continue
		}
		conn, exch = append(conn, c), append(exch, e)
	}
	res.Seconds = time.Since(start).Seconds()
	res.OK = len(conn)
	res.Rate = float64(res.OK) / res.Seconds
	slices.Sort(conn)
	slices.Sort(exch)
	res.ConnectP50, res.ConnectP90, res.ConnectP99 = pctUS(conn, 0.5), pctUS(conn, 0.9), pctUS(conn, 0.99)
	res.ConnectMean = meanUS(conn)
	res.ExchangeP50, res.ExchangeP99 = pctUS(exch, 0.5), pctUS(exch, 0.99)
	return res
}

// crrOnce makes one connection and returns how long connect() took and
// how long until the echo arrived.
func crrOnce(sa *unix.SockaddrInet4, i int) (connect, exchange time.Duration, err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(crrTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return 0, 0, err
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := unix.Connect(fd, sa); err != nil {
		if errors.Is(err, unix.EINPROGRESS) {
			err = fmt.Errorf("no answer within %v", crrTimeout)
		}
		return 0, 0, fmt.Errorf("connect: %w", err)
	}
	connect = time.Since(t0)
	msg := []byte("crr " + strconv.Itoa(i) + "\n")
	if _, err := unix.Write(fd, msg); err != nil {
		return 0, 0, fmt.Errorf("send: %w", err)
	}
	if err := readLine(fd); err != nil {
		return 0, 0, fmt.Errorf("echo: %w", err)
	}
	exchange = time.Since(t0)
	// Close as nettool's crr does: half-close, then wait for the server's
	// close, so each connection is over before the next starts.
	if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
		return 0, 0, fmt.Errorf("shutdown: %w", err)
	}
	var buf [256]byte
	for {
		n, err := unix.Read(fd, buf[:])
		if err != nil {
			return 0, 0, fmt.Errorf("wait for close: %w", err)
		}
		if n == 0 {
			return connect, exchange, nil
		}
	}
}

// readLine reads until a newline (the echo server answers one line).
func readLine(fd int) error {
	var buf [256]byte
	for {
		n, err := unix.Read(fd, buf[:])
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("connection closed before the echo")
		}
		if bytes.IndexByte(buf[:n], '\n') >= 0 {
			return nil
		}
	}
}

func pctUS(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(p*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i].Nanoseconds()) / 1e3
}

func meanUS(v []time.Duration) float64 {
	if len(v) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range v {
		sum += d
	}
	return float64(sum.Nanoseconds()) / 1e3 / float64(len(v))
}

// childArgs is the CRR child's command line, pinned to the client CPU.
func childArgs(addr string, count int) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return []string{"taskset", "-c", strconv.Itoa(*clientCPU), self, "--crr-child", addr,
		"--crr-count", strconv.Itoa(count), "--crr-duration", crrTime.String()}, nil
}

func parseCRR(out []byte, err error) (crrResult, error) {
	var res crrResult
	if jerr := json.Unmarshal(bytes.TrimSpace(out), &res); jerr != nil {
		return res, fmt.Errorf("crr child: %v; output %q", errors.Join(err, jerr), out)
	}
	if res.OK == 0 {
		return res, fmt.Errorf("crr child: no connection succeeded; first error: %s", res.FirstError)
	}
	return res, nil
}

// crrInPod runs the CRR client as a process of the lab pod (its netns and
// its node's cgroup, so socket LB applies).
func crrInPod(pod, addr string, count int) (crrResult, error) {
	argv, err := childArgs(addr, count)
	if err != nil {
		return crrResult{}, err
	}
	var out, errb bytes.Buffer
	code, err := lab.ExecPod(labName, "default", pod, argv, nil, &out, &errb)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit code %d: %s", code, errb.String())
	}
	return parseCRR(out.Bytes(), err)
}

// crrInNS runs the CRR client in one of our namespaces (in this process's
// cgroup, which no socket LB is attached to).
func crrInNS(ns, addr string, count int) (crrResult, error) {
	argv, err := childArgs(addr, count)
	if err != nil {
		return crrResult{}, err
	}
	var out []byte
	err = nsutil.Do(nsutil.Path(ns), func() error {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stderr = os.Stderr
		var err error
		out, err = cmd.Output()
		return err
	})
	return parseCRR(out, err)
}
