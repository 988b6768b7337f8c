package nettool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// perfPoll is how often perf-serve's blocked calls wake up to see whether
// it should stop: the receive timeout of its listener, UDP socket and
// connections. It costs nothing while traffic flows.
const perfPoll = 200 * time.Millisecond

// maxPerfLifetime bounds perf-serve's --lifetime.
const maxPerfLifetime = 24 * time.Hour

// PerfServer is the server of the perf command. On TCP it writes back every
// byte it reads, and closes the connection after echoing a read that ends
// in 'c' (the end of a TCP_CRR request); on UDP it sends every datagram
// back unchanged. It uses blocking sockets with a thread per connection, so
// that a request is answered without an event loop in between.
type PerfServer struct {
	tcp, udp int // socket descriptors, -1 when that protocol is off
}

// ListenPerf opens a PerfServer's sockets. An empty address leaves that
// protocol out; ":port" listens on every IPv4 and IPv6 address (IPv4 only
// where IPv6 is off), port 0 picks a free port (see TCPAddr, UDPAddr).
func ListenPerf(tcpAddr, udpAddr string) (*PerfServer, error) {
	if tcpAddr == "" && udpAddr == "" {
		return nil, errors.New("nothing to serve: --tcp and --udp are both empty")
	}
	s := &PerfServer{tcp: -1, udp: -1}
	var err error
	if tcpAddr != "" {
		if s.tcp, err = bindPerf(tcpAddr, unix.SOCK_STREAM); err != nil {
			return nil, fmt.Errorf("listen tcp %s: %w", tcpAddr, err)
		}
		if err := unix.Listen(s.tcp, 1024); err != nil {
			s.Close()
			return nil, fmt.Errorf("listen tcp %s: %w", tcpAddr, err)
		}
	}
	if udpAddr != "" {
		if s.udp, err = bindPerf(udpAddr, unix.SOCK_DGRAM); err != nil {
			s.Close()
			return nil, fmt.Errorf("listen udp %s: %w", udpAddr, err)
		}
	}
	return s, nil
}

// bindPerf opens a blocking socket of type typ bound to addr, with the
// receive timeout perfPoll.
func bindPerf(addr string, typ int) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return -1, fmt.Errorf("invalid address %q: want [IP]:port", addr)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return -1, fmt.Errorf("invalid port in %q", addr)
	}
	var sa unix.Sockaddr
	family, dual := unix.AF_INET6, false
	if host == "" {
		sa, dual = &unix.SockaddrInet6{Port: int(p)}, true
	} else {
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return -1, fmt.Errorf("invalid address %q: want [IP]:port with an IP address", addr)
		}
		sa, family = sockaddrOf(netip.AddrPortFrom(a, uint16(p)))
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if dual && errors.Is(err, unix.EAFNOSUPPORT) {
		// IPv6 is off in this namespace: every IPv4 address will do.
		sa, dual = &unix.SockaddrInet4{Port: int(p)}, false
		fd, err = unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return -1, err
	}
	err = errors.Join(
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
		setTimeouts(fd, perfPoll, serverWriteTimeout),
	)
	if dual {
		err = errors.Join(err, unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0))
	}
	if err == nil {
		err = unix.Bind(fd, sa)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// TCPAddr is the bound TCP address; invalid when TCP is off.
func (s *PerfServer) TCPAddr() netip.AddrPort { return boundAddr(s.tcp) }

// UDPAddr is the bound UDP address; invalid when UDP is off.
func (s *PerfServer) UDPAddr() netip.AddrPort { return boundAddr(s.udp) }

func boundAddr(fd int) netip.AddrPort {
	if fd < 0 {
		return netip.AddrPort{}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// Addrs describes the sockets: "tcp=[::]:7100 udp=off".
func (s *PerfServer) Addrs() string {
	str := func(fd int, a netip.AddrPort) string {
		if fd < 0 {
			return "off"
		}
		return a.String()
	}
	return fmt.Sprintf("tcp=%s udp=%s", str(s.tcp, s.TCPAddr()), str(s.udp, s.UDPAddr()))
}

// Close closes the sockets; only needed when Serve is not called.
func (s *PerfServer) Close() {
	for _, fd := range []*int{&s.tcp, &s.udp} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// Serve answers until ctx is done (within perfPoll), then closes every
// socket and returns nil; a socket that fails for good stops it with the
// error.
func (s *PerfServer) Serve(ctx context.Context) error {
	if s.tcp < 0 && s.udp < 0 {
		return errors.New("nothing to serve")
	}
	defer s.Close()
	var loops []func(context.Context) error
	if s.tcp >= 0 {
		loops = append(loops, untilDone(s.serveTCP))
	}
	if s.udp >= 0 {
		loops = append(loops, untilDone(s.serveUDP))
	}
	return runAll(ctx, loops...)
}

// untilDone adapts a loop that polls a stop flag (the perf server's
// blocking sockets wake every perfPoll to look at it) to runAll: the flag
// is set when the loop's context is done.
func untilDone(loop func(stop *atomic.Bool) error) func(context.Context) error {
	return func(ctx context.Context) error {
		var stop atomic.Bool
		defer context.AfterFunc(ctx, func() { stop.Store(true) })()
		return loop(&stop)
	}
}

// serveTCP accepts connections until stop is set, each served on its own
// goroutine (and so its own thread while it blocks).
func (s *PerfServer) serveTCP(stop *atomic.Bool) error {
	var (
		wg      sync.WaitGroup
		conns   atomic.Int32
		backoff time.Duration
	)
	defer wg.Wait()
	for !stop.Load() {
		fd, _, err := unix.Accept4(s.tcp, unix.SOCK_CLOEXEC)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			continue // a poll timeout, a signal, or a peer that gave up
		case isTransient(err):
			// Out of descriptors or memory: wait for connections to end.
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			time.Sleep(backoff)
			continue
		case err != nil:
			return fmt.Errorf("tcp accept on %s: %w", s.TCPAddr(), err)
		}
		backoff = 0
		if conns.Load() >= maxServerConns {
			unix.Close(fd)
			continue
		}
		conns.Add(1)
		wg.Go(func() {
			defer conns.Add(-1)
			defer unix.Close(fd)
			echoPerf(fd, stop)
		})
	}
	return nil
}

// echoPerf writes back what it reads from the connection fd until the
// peer closes, a read ends in the close byte, the connection idles out or
// stop is set.
func echoPerf(fd int, stop *atomic.Bool) {
	if setTimeouts(fd, perfPoll, serverWriteTimeout) != nil {
		return
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	buf := make([]byte, 64<<10)
	last := time.Now()
	for !stop.Load() {
		n, err := readFD(fd, buf)
		switch {
		case errors.Is(err, errTimeout):
			if time.Since(last) > serverIdleTimeout {
				return
			}
			continue
		case err != nil, n == 0:
			return
		}
		last = time.Now()
		if writeFull(fd, buf[:n]) != nil || buf[n-1] == perfCloseByte {
			return
		}
	}
}

// serveUDP echoes datagrams until stop is set.
func (s *PerfServer) serveUDP(stop *atomic.Bool) error {
	buf := make([]byte, maxDatagram)
	var backoff time.Duration
	for !stop.Load() {
		n, from, err := unix.Recvfrom(s.udp, buf, 0)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case isTransient(err):
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			time.Sleep(backoff)
			continue
		case err != nil:
			return fmt.Errorf("udp read on %s: %w", s.UDPAddr(), err)
		}
		backoff = 0
		// A failed reply (the peer is gone) only concerns that peer.
		unix.Sendto(s.udp, buf[:n], 0, from)
	}
	return nil
}

func runPerfServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("perf-serve", "perf-serve [--tcp ADDR] [--udp ADDR] [--lifetime D]",
		`Serve the perf command until SIGTERM or SIGINT, or --lifetime, then exit 0.
  TCP: every byte read is written back; a read that ends in 'c' (the end of
       a TCP_CRR request) is echoed and the connection closed.
  UDP: every datagram is sent back unchanged.
An address of "" disables that server; ":port" listens on all IPv4 and IPv6
addresses. One line "perf-serve: tcp=... udp=..." is printed once listening.`,
		stdout, stderr)
	tcpAddr := c.fs.String("tcp", ":7100", "TCP listen `address` (\"\" disables)")
	udpAddr := c.fs.String("udp", ":7101", "UDP listen `address` (\"\" disables)")
	lifetime := c.fs.Duration("lifetime", time.Hour, fmt.Sprintf("exit after this long (at most %v)", maxPerfLifetime))
	if _, code, done := c.parse(args, 0, ""); done {
		return code
	}
	if *tcpAddr == "" && *udpAddr == "" {
		return c.usageError("nothing to serve: --tcp and --udp are both empty")
	}
	if err := checkDuration("lifetime", *lifetime, time.Second, maxPerfLifetime); err != nil {
		return c.usageError("%v", err)
	}
	srv, err := ListenPerf(*tcpAddr, *udpAddr)
	if err != nil {
		return c.fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	fmt.Fprintf(stdout, "perf-serve: %s\n", srv.Addrs())
	if err := srv.Serve(ctx); err != nil {
		return c.fail("%v", err)
	}
	return exitOK
}
