package nettool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server limits.
const (
	serverIdleTimeout  = 5 * time.Minute  // a TCP echo connection silent this long is closed
	serverWriteTimeout = 10 * time.Second // per echo write
	maxServerConns     = 4096             // TCP echo connections at once; more are closed
	maxDatagram        = 64 << 10
	shutdownTimeout    = 5 * time.Second // graceful HTTP shutdown
	maxAcceptBackoff   = time.Second
)

// Server is the echo server of the serve command. Each of TCP, UDP and HTTP
// may be nil to leave that protocol out; Serve takes ownership of the
// sockets and closes them when it returns.
type Server struct {
	// Name prefixes the TCP and UDP echoes and is the body of GET /.
	Name string
	// TCP is the line echo listener.
	TCP net.Listener
	// UDP is the datagram echo socket.
	UDP net.PacketConn
	// HTTP is the HTTP listener.
	HTTP net.Listener
	// ErrorLog, if set, receives the HTTP server's error log.
	ErrorLog io.Writer
}

// Listen opens the sockets of a Server named name. An empty address leaves
// that protocol out; ":port" listens on every IPv4 and IPv6 address and
// port 0 picks a free port (see Server.Addrs).
func Listen(ctx context.Context, name, tcpAddr, udpAddr, httpAddr string) (*Server, error) {
	if tcpAddr == "" && udpAddr == "" && httpAddr == "" {
		return nil, errors.New("nothing to serve: --tcp, --udp and --http are all empty")
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	s := &Server{Name: name}
	var err error
	if tcpAddr != "" {
		if s.TCP, err = lc.Listen(ctx, "tcp", tcpAddr); err != nil {
			s.Close()
			return nil, fmt.Errorf("listen tcp %s: %w", tcpAddr, cause(err))
		}
	}
	if udpAddr != "" {
		if s.UDP, err = lc.ListenPacket(ctx, "udp", udpAddr); err != nil {
			s.Close()
			return nil, fmt.Errorf("listen udp %s: %w", udpAddr, cause(err))
		}
	}
	if httpAddr != "" {
		if s.HTTP, err = lc.Listen(ctx, "tcp", httpAddr); err != nil {
			s.Close()
			return nil, fmt.Errorf("listen http %s: %w", httpAddr, cause(err))
		}
	}
	return s, nil
}

// checkName checks a server name: one non-empty line.
func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "\r\n") || len(name) > 255 {
		return fmt.Errorf("invalid server name %q: want one non-empty line of at most 255 bytes", name)
	}
	return nil
}

// Addrs describes the sockets: "tcp=[::]:7000 udp=[::]:7001 http=off".
func (s *Server) Addrs() string {
	str := func(a net.Addr) string {
		if a == nil {
			return "off"
		}
		return a.String()
	}
	var tcp, udp, web net.Addr
	if s.TCP != nil {
		tcp = s.TCP.Addr()
	}
	if s.UDP != nil {
		udp = s.UDP.LocalAddr()
	}
	if s.HTTP != nil {
		web = s.HTTP.Addr()
	}
	return fmt.Sprintf("tcp=%s udp=%s http=%s", str(tcp), str(udp), str(web))
}

// Close closes the sockets; only needed when Serve is not called.
func (s *Server) Close() {
	if s.TCP != nil {
		s.TCP.Close()
	}
	if s.UDP != nil {
		s.UDP.Close()
	}
	if s.HTTP != nil {
		s.HTTP.Close()
	}
}

// Serve runs the servers until ctx is done, then closes every socket and
// connection and returns nil. If one server fails it stops the others and
// returns the error.
func (s *Server) Serve(ctx context.Context) error {
	if s.TCP == nil && s.UDP == nil && s.HTTP == nil {
		return errors.New("nothing to serve")
	}
	if err := checkName(s.Name); err != nil {
		s.Close()
		return err
	}
	var loops []func(context.Context) error
	if s.TCP != nil {
		loops = append(loops, s.serveTCP)
	}
	if s.UDP != nil {
		loops = append(loops, s.serveUDP)
	}
	if s.HTTP != nil {
		loops = append(loops, s.serveHTTP)
	}
	return runAll(ctx, loops...)
}

// runAll runs the server loops side by side until every one has returned:
// when ctx is done, or when one fails, which cancels the context the
// others run under. It returns the loops' errors joined.
func runAll(ctx context.Context, loops ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, loop := range loops {
		wg.Go(func() {
			if err := loop(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// serveTCP accepts line echo connections until ctx is done.
func (s *Server) serveTCP(ctx context.Context) error {
	return acceptConns(ctx, s.TCP, 0, s.echoLines)
}

// acceptConns accepts connections on ln until ctx is done, each handled by
// handle on its own goroutine (at most maxServerConns at a time; transient
// accept errors back off). When ctx is done it stops accepting and closes
// the established connections drain later (at once for 0), so a server can
// let the answers in flight finish, as a well-behaved one does on SIGTERM.
// It returns once every handler has returned.
func acceptConns(ctx context.Context, ln net.Listener, drain time.Duration, handle func(net.Conn)) error {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = make(map[net.Conn]struct{})
		closed bool
	)
	closeAll := func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		closed = true
		for c := range conns {
			c.Close()
		}
	}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		time.AfterFunc(drain, closeAll)
	})
	defer func() {
		if stop() {
			// Failing rather than shutting down: nothing to drain for.
			closeAll()
		}
		wg.Wait()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !isTransient(err) {
				return fmt.Errorf("tcp accept on %s: %w", ln.Addr(), cause(err))
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		mu.Lock()
		if closed || len(conns) >= maxServerConns {
			mu.Unlock()
			c.Close()
			continue
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			handle(c)
		})
	}
}

// echoLines writes every line read from c back as "NAME: <line>\n" until
// the peer closes, the connection idles out or a line is too long.
func (s *Server) echoLines(c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), maxLine)
	prefix := s.Name + ": "
	out := make([]byte, 0, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(serverIdleTimeout))
		if !sc.Scan() {
			return
		}
		out = append(append(append(out[:0], prefix...), sc.Bytes()...), '\n')
		c.SetWriteDeadline(time.Now().Add(serverWriteTimeout))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// serveUDP echoes datagrams until ctx is done.
func (s *Server) serveUDP(ctx context.Context) error {
	prefix := s.Name + ": "
	out := make([]byte, 0, maxDatagram+len(prefix))
	return serveDatagrams(ctx, s.UDP, func(peer net.Addr, msg []byte) []byte {
		return append(append(out[:0], prefix...), msg...)
	})
}

// serveDatagrams answers every datagram read from pc with what reply
// makes of it, until ctx is done; transient read errors back off. A failed
// reply (peer gone, reply too large) only concerns that peer.
func serveDatagrams(ctx context.Context, pc net.PacketConn, reply func(peer net.Addr, msg []byte) []byte) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer func() {
		stop()
		pc.Close()
	}()
	buf := make([]byte, maxDatagram)
	var backoff time.Duration
	for {
		n, peer, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !isTransient(err) {
				return fmt.Errorf("udp read on %s: %w", pc.LocalAddr(), cause(err))
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		pc.WriteTo(reply(peer, buf[:n]), peer)
	}
}

// serveHTTP answers GET / and GET /healthz until ctx is done.
func (s *Server) serveHTTP(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, s.Name+"\n")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	errLog := s.ErrorLog
	if errLog == nil {
		errLog = io.Discard
	}
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(errLog, "serve: http: ", 0),
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(s.HTTP) }()
	select {
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http serve on %s: %w", s.HTTP.Addr(), cause(err))
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
		<-done
		return nil
	}
}

// isTransient tells whether a socket error is worth retrying after a pause
// (out of descriptors or buffers, an aborted or refused peer) rather than a
// broken socket.
func isTransient(err error) bool {
	for _, e := range []error{
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.ECONNREFUSED,
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.EAGAIN, syscall.EINTR,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// sleepCtx sleeps for d; it returns false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// defaultName is $POD_NAME (set by `seta lab pod run`), else the host
// name, else "seta-nettool".
func defaultName() string {
	if p := os.Getenv("POD_NAME"); p != "" && checkName(p) == nil {
		return p
	}
	if h, err := os.Hostname(); err == nil && checkName(h) == nil {
		return h
	}
	return "seta-nettool"
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("serve", "serve [--tcp ADDR] [--udp ADDR] [--http ADDR] [--name NAME]",
		`Run the echo servers until SIGTERM or SIGINT, then exit 0.
  TCP:  every line read is written back as "NAME: <line>".
  UDP:  every datagram is sent back prefixed "NAME: ".
  HTTP: GET / answers "NAME\n", GET /healthz answers "ok".
An address of "" disables that server; ":port" listens on all IPv4 and IPv6
addresses. One line "serving tcp=... udp=... http=..." is printed once listening.`,
		stdout, stderr)
	tcpAddr := c.fs.String("tcp", ":7000", "TCP line-echo listen `address` (\"\" disables)")
	udpAddr := c.fs.String("udp", ":7001", "UDP echo listen `address` (\"\" disables)")
	httpAddr := c.fs.String("http", ":8080", "HTTP listen `address` (\"\" disables)")
	name := c.fs.String("name", defaultName(), "`name` to answer with (default: $POD_NAME, else the host name)")
	if _, code, done := c.parse(args, 0, ""); done {
		return code
	}
	if *tcpAddr == "" && *udpAddr == "" && *httpAddr == "" {
		return c.usageError("nothing to serve: --tcp, --udp and --http are all empty")
	}
	if err := checkName(*name); err != nil {
		return c.usageError("%v", err)
	}
	srv, err := Listen(ctx, *name, *tcpAddr, *udpAddr, *httpAddr)
	if err != nil {
		return c.fail("%v", err)
	}
	srv.ErrorLog = stderr
	fmt.Fprintf(stdout, "serving %s name=%s\n", srv.Addrs(), srv.Name)
	if err := srv.Serve(ctx); err != nil {
		return c.fail("%v", err)
	}
	return exitOK
}
