package nettool

// Probes for load-balanced services: a server that says who it saw
// (serve-peer), a client that opens many short connections and reports
// which server answered each (conns), and a UDP client that keeps one
// unconnected socket and reports which server answered each datagram and
// from which address the reply came (udpflow). The end-to-end tests read
// their per-connection lines to check distribution, affinity, stickiness and
// the absence of failures while backends change.

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounds of the probe commands.
const (
	maxConnsCount   = 1_000_000        // conns --count
	maxUDPFlowCount = 100_000          // udpflow --count
	maxProbeRun     = 10 * time.Minute // conns --duration
)

// peerSep separates the server's name from the peer address in a
// serve-peer reply prefix: "web1@10.244.1.7:41234".
const peerSep = "@"

// peerServer echoes like Server, but each reply's prefix also names the
// address the server saw the client at, so a test can tell whether a
// connection arrived with the client's own source address or a translated
// one.
type peerServer struct {
	name string
	tcp  net.Listener
	udp  net.PacketConn
}

// prefix is what precedes ": " in a reply to peer.
func (s *peerServer) prefix(peer net.Addr) string {
	return s.name + peerSep + peer.String()
}

// serve runs the TCP and UDP loops until ctx is done or one fails.
func (s *peerServer) serve(ctx context.Context) error {
	return runAll(ctx, s.serveTCP, s.serveUDP)
}

// peerDrain is how long established connections may still finish the
// exchange in flight once serve-peer is told to stop. A backend being
// deleted is first taken out of its services and only then stopped; a
// connection the load balancer sent it just before that completes instead of
// being cut, as a well-behaved server drains on SIGTERM.
const peerDrain = 500 * time.Millisecond

// serveTCP accepts line echo connections until ctx is done, then stops
// accepting and closes the established connections peerDrain later.
func (s *peerServer) serveTCP(ctx context.Context) error {
	if s.tcp == nil {
		return nil
	}
	return acceptConns(ctx, s.tcp, peerDrain, s.echoLines)
}

// echoLines answers every line with "NAME@PEER: <line>" until the peer
// closes or the server closes the connection (at the end of peerDrain on
// shutdown). It does not stop on shutdown by itself: a line the client sent
// just before, perhaps before this goroutine even started, is still
// answered.
func (s *peerServer) echoLines(c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), maxLine)
	prefix := s.prefix(c.RemoteAddr()) + ": "
	for {
		c.SetReadDeadline(time.Now().Add(serverIdleTimeout))
		if !sc.Scan() {
			return
		}
		c.SetWriteDeadline(time.Now().Add(serverWriteTimeout))
		if _, err := io.WriteString(c, prefix+sc.Text()+"\n"); err != nil {
			return
		}
	}
}

// serveUDP answers every datagram with "NAME@PEER: <datagram>".
func (s *peerServer) serveUDP(ctx context.Context) error {
	if s.udp == nil {
		return nil
	}
	return serveDatagrams(ctx, s.udp, func(peer net.Addr, msg []byte) []byte {
		return append([]byte(s.prefix(peer)+": "), msg...)
	})
}

func runServePeer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("serve-peer", "serve-peer [--tcp ADDR] [--udp ADDR] [--name NAME]",
		`Run a TCP line echo and a UDP echo server until SIGTERM or SIGINT, then exit
0. Like serve, but every reply names the client address the server saw:
  TCP:  every line read is written back as "NAME@PEER: <line>".
  UDP:  every datagram is sent back prefixed "NAME@PEER: ".
PEER is host:port ([v6]:port for IPv6). The clients of serve (tcp, udp,
stream, crr) work against it unchanged. An address of "" disables that
server. One line "serving tcp=... udp=... name=NAME" is printed once listening.`,
		stdout, stderr)
	tcpAddr := c.fs.String("tcp", ":7000", "TCP line-echo listen `address` (\"\" disables)")
	udpAddr := c.fs.String("udp", ":7001", "UDP echo listen `address` (\"\" disables)")
	name := c.fs.String("name", defaultName(), "`name` to answer with (default: $POD_NAME, else the host name)")
	if _, code, done := c.parse(args, 0, ""); done {
		return code
	}
	if *tcpAddr == "" && *udpAddr == "" {
		return c.usageError("nothing to serve: --tcp and --udp are both empty")
	}
	if err := checkName(*name); err != nil {
		return c.usageError("%v", err)
	}
	if strings.Contains(*name, peerSep) || strings.Contains(*name, ": ") {
		return c.usageError("--name %q must not contain %q or \": \" (they delimit the reply)", *name, peerSep)
	}
	srv, err := Listen(ctx, *name, *tcpAddr, *udpAddr, "")
	if err != nil {
		return c.fail("%v", err)
	}
	ps := &peerServer{name: *name, tcp: srv.TCP, udp: srv.UDP}
	fmt.Fprintf(stdout, "serving %s name=%s\n", srv.Addrs(), *name)
	if err := ps.serve(ctx); err != nil {
		return c.fail("%v", err)
	}
	return exitOK
}

// splitPrefix splits a reply prefix into the server's name and, for a
// serve-peer reply, the peer address it saw ("" for serve's replies).
func splitPrefix(prefix string) (name, peer string) {
	i := strings.LastIndex(prefix, peerSep)
	if i < 0 {
		return prefix, ""
	}
	return prefix[:i], prefix[i+len(peerSep):]
}

// serverCounts tallies replies per server name, printed sorted as
// "a:3,b:5" ("-" for none).
type serverCounts map[string]int

func (sc serverCounts) String() string {
	if len(sc) == 0 {
		return "-"
	}
	names := make([]string, 0, len(sc))
	for n := range sc {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		names[i] = n + ":" + strconv.Itoa(sc[n])
	}
	return strings.Join(names, ",")
}

// probeLine is the common head of a per-probe line: the sequence number
// and the start time in Unix milliseconds, so a test can line the probes
// up with what it changed meanwhile.
func probeLine(kind string, seq int, at time.Time) string {
	return fmt.Sprintf("%s seq=%d at=%d", kind, seq, at.UnixMilli())
}

// connsConfig is the conns command's flags.
type connsConfig struct {
	addr     string
	count    int
	duration time.Duration // 0: no time limit
	interval time.Duration
	timeout  time.Duration
}

// connOnce does one connect/echo/close exchange and returns the reply's
// prefix (the server's name, for serve-peer with the peer it saw).
func connOnce(ctx context.Context, addr, msg string, timeout time.Duration) (string, error) {
	start := time.Now()
	lc, err := dialLine(ctx, addr, timeout)
	if err != nil {
		return "", err
	}
	defer lc.close()
	reply, err := lc.echo(msg, max(timeout-time.Since(start), time.Millisecond))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(reply, ": "+msg), nil
}

// runConnsProbe runs the exchanges one after another, printing one line
// each, and returns the counts per server and the number of failures.
func runConnsProbe(ctx context.Context, cfg connsConfig, stdout io.Writer) (serverCounts, int) {
	counts := serverCounts{}
	failed := 0
	start := time.Now()
	for seq := 1; seq <= cfg.count; seq++ {
		if cfg.duration > 0 && time.Since(start) >= cfg.duration || ctx.Err() != nil {
			break
		}
		at := time.Now()
		prefix, err := connOnce(ctx, cfg.addr, "conns "+strconv.Itoa(seq), cfg.timeout)
		took := time.Since(at)
		head := probeLine("conn", seq, at) + " took=" + strconv.FormatInt(took.Microseconds(), 10) + "us"
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%s error=%v\n", head, err)
		} else {
			name, peer := splitPrefix(prefix)
			counts[name]++
			fmt.Fprintf(stdout, "%s server=%s peer=%s\n", head, name, cmp.Or(peer, "-"))
		}
		if cfg.interval > 0 && !sleepCtx(ctx, cfg.interval) {
			break
		}
	}
	return counts, failed
}

func runConns(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("conns", "conns ADDR [--count N] [--duration D] [--interval D] [--timeout D]",
		`Open short TCP connections to the line-echo server at ADDR one after
another: connect, send one line, read the echo, close. Stops after --count
connections or when --duration has passed, whichever is first, waiting
--interval between two. One line per connection:
  conn seq=N at=UNIXMS took=Nus server=NAME peer=PEER
  conn seq=N at=UNIXMS took=Nus error=REASON
(PEER is the address a serve-peer server saw, "-" for serve), then
  conns: ok=N failed=N servers=NAME:N,...
Fails if any connection failed. ADDR may be a name; it is resolved for each
connection.`,
		stdout, stderr)
	count := c.fs.Int("count", 100, fmt.Sprintf("connections at most (1..%d)", maxConnsCount))
	duration := c.fs.Duration("duration", 0, fmt.Sprintf("stop starting connections after this long (0: no limit; at most %v)", maxProbeRun))
	interval := c.fs.Duration("interval", 0, "pause between two connections")
	timeout := c.fs.Duration("timeout", 2*time.Second, "limit for each whole exchange")
	pos, code, done := c.parse(args, 1, "ADDR")
	if done {
		return code
	}
	cfg := connsConfig{addr: pos[0], count: *count, duration: *duration, interval: *interval, timeout: *timeout}
	if err := firstError(
		checkAddr(cfg.addr),
		checkInt("count", cfg.count, 1, maxConnsCount),
		checkDuration("duration", cfg.duration, 0, maxProbeRun),
		checkDuration("interval", cfg.interval, 0, time.Minute),
		checkDuration("timeout", cfg.timeout, time.Millisecond, maxTimeout),
	); err != nil {
		return c.usageError("%v", err)
	}
	ctx, cancel := withOverallLimit(ctx, overallLimit)
	defer cancel()

	counts, failed := runConnsProbe(ctx, cfg, stdout)
	ok := 0
	for _, n := range counts {
		ok += n
	}
	fmt.Fprintf(stdout, "conns: ok=%d failed=%d servers=%s\n", ok, failed, counts)
	switch {
	case failed > 0:
		return c.fail("%d of %d connections to %s failed", failed, ok+failed, cfg.addr)
	case ok == 0:
		return c.fail("no connection to %s attempted: %s", cfg.addr, interrupted(ctx))
	}
	return exitOK
}

// udpFlowConfig is the udpflow command's flags.
type udpFlowConfig struct {
	addr     string
	count    int
	interval time.Duration
	timeout  time.Duration
}

// udpFlowResult is what a udpflow run saw.
type udpFlowResult struct {
	sent, received int
	servers        serverCounts
	sources        serverCounts // reply source address → replies
	fatal          error        // the socket could not be opened or used
}

// udpFlow sends cfg.count numbered datagrams to dst from one unconnected
// socket, every cfg.interval, and waits up to cfg.timeout for each reply.
// A reply to an earlier datagram that arrives late is skipped, not counted.
func udpFlow(ctx context.Context, cfg udpFlowConfig, dst netip.AddrPort, stdout io.Writer) udpFlowResult {
	res := udpFlowResult{servers: serverCounts{}, sources: serverCounts{}}
	network := "udp4"
	if dst.Addr().Is6() {
		network = "udp6"
	}
	// ListenUDP with no address gives an unconnected socket: every
	// datagram is a sendto and every reply a recvfrom, which is what a
	// DNS client or a game server does, and what per-socket stickiness is
	// about.
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		res.fatal = fmt.Errorf("open %s socket: %w", network, cause(err))
		return res
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()

	buf := make([]byte, maxDatagram)
	next := time.Now()
	for seq := 1; seq <= cfg.count && ctx.Err() == nil; seq++ {
		if wait := time.Until(next); wait > 0 && !sleepCtx(ctx, wait) {
			break
		}
		next = next.Add(cfg.interval)
		at := time.Now()
		head := probeLine("dgram", seq, at)
		msg := "udpflow " + strconv.Itoa(seq)
		if _, err := conn.WriteToUDPAddrPort([]byte(msg), dst); err != nil {
			if ctx.Err() != nil {
				break
			}
			res.sent++
			fmt.Fprintf(stdout, "%s error=send: %v\n", head, cause(err))
			continue
		}
		res.sent++
		from, reply, err := readReply(conn, buf, msg, at.Add(cfg.timeout))
		switch {
		case ctx.Err() != nil:
			fmt.Fprintf(stdout, "%s error=%s\n", head, interrupted(ctx))
		case err != nil:
			fmt.Fprintf(stdout, "%s error=%v\n", head, err)
		default:
			res.received++
			name, peer := splitPrefix(strings.TrimSuffix(reply, ": "+msg))
			res.servers[name]++
			res.sources[from.String()]++
			fmt.Fprintf(stdout, "%s from=%s server=%s peer=%s\n", head, from, name, cmp.Or(peer, "-"))
		}
	}
	return res
}

// readReply reads datagrams until one echoes msg or the deadline passes.
func readReply(conn *net.UDPConn, buf []byte, msg string, deadline time.Time) (netip.AddrPort, string, error) {
	conn.SetReadDeadline(deadline)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if isTimeout(err) {
				return from, "", errors.New("no reply")
			}
			return from, "", fmt.Errorf("receive: %v", cause(err))
		}
		if reply := string(buf[:n]); strings.HasSuffix(reply, ": "+msg) {
			return netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), reply, nil
		}
	}
}

func runUDPFlow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("udpflow", "udpflow ADDR [--count N] [--interval D] [--timeout D]",
		`Send --count numbered datagrams to the UDP echo server at ADDR, one every
--interval, all from ONE unconnected socket (sendto/recvfrom), and wait up
to --timeout for each reply. ADDR is resolved once. One line per datagram:
  dgram seq=N at=UNIXMS from=SRC server=NAME peer=PEER
  dgram seq=N at=UNIXMS error=REASON
(SRC is the reply's source address as recvfrom reports it), then
  udpflow: sent=N received=N servers=NAME:N,... sources=SRC:N,...
Fails if a reply is missing or came from an address other than ADDR.`,
		stdout, stderr)
	count := c.fs.Int("count", 30, fmt.Sprintf("datagrams to send (1..%d)", maxUDPFlowCount))
	interval := c.fs.Duration("interval", 100*time.Millisecond, "time between two datagrams")
	timeout := c.fs.Duration("timeout", time.Second, "how long to wait for each reply")
	pos, code, done := c.parse(args, 1, "ADDR")
	if done {
		return code
	}
	cfg := udpFlowConfig{addr: pos[0], count: *count, interval: *interval, timeout: *timeout}
	if err := firstError(
		checkAddr(cfg.addr),
		checkInt("count", cfg.count, 1, maxUDPFlowCount),
		checkDuration("interval", cfg.interval, time.Millisecond, time.Minute),
		checkDuration("timeout", cfg.timeout, time.Millisecond, maxTimeout),
	); err != nil {
		return c.usageError("%v", err)
	}
	ctx, cancel := withOverallLimit(ctx, overallLimit)
	defer cancel()
	ua, err := net.ResolveUDPAddr("udp", cfg.addr)
	if err != nil {
		return c.fail("resolve %s: %v", cfg.addr, cause(err))
	}
	dst := ua.AddrPort()
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())

	res := udpFlow(ctx, cfg, dst, stdout)
	if res.fatal != nil {
		return c.fail("%v", res.fatal)
	}
	fmt.Fprintf(stdout, "udpflow: sent=%d received=%d servers=%s sources=%s\n", res.sent, res.received, res.servers, res.sources)
	if res.received < res.sent {
		return c.fail("%d of %d replies from %s missing", res.sent-res.received, res.sent, dst)
	}
	if res.sent == 0 {
		return c.fail("no datagram sent to %s: %s", dst, interrupted(ctx))
	}
	if len(res.sources) != 1 || res.sources[dst.String()] == 0 {
		return c.fail("replies came from %s, want all from %s", res.sources, dst)
	}
	return exitOK
}
