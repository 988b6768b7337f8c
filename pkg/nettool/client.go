package nettool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	maxHTTPBody = 1 << 20
	// maxReply is the longest echo a client reads: a --message, the
	// server name and the separators fit.
	maxReply = 8 << 10
)

// lineConn is a client connection to the TCP line echo server.
type lineConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	stop func() bool
}

// dialLine connects to the line echo server at addr. The connection is
// closed as soon as ctx is done, which fails any exchange in progress.
func dialLine(ctx context.Context, addr string, timeout time.Duration) (*lineConn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, cause(err))
	}
	return &lineConn{
		addr: addr,
		c:    c,
		r:    bufio.NewReaderSize(c, maxReply),
		stop: context.AfterFunc(ctx, func() { c.Close() }),
	}, nil
}

func (l *lineConn) close() {
	l.stop()
	l.c.Close()
}

// echo sends msg as one line and waits up to timeout for its echo,
// "NAME: msg", which it returns without the newline.
func (l *lineConn) echo(msg string, timeout time.Duration) (string, error) {
	if err := l.c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", fmt.Errorf("send to %s: %w", l.addr, cause(err))
	}
	if _, err := io.WriteString(l.c, msg+"\n"); err != nil {
		return "", fmt.Errorf("send to %s: %w", l.addr, cause(err))
	}
	line, err := l.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("read echo from %s: reply longer than %d bytes", l.addr, maxReply)
	case isTimeout(err):
		return "", fmt.Errorf("read echo from %s: %w", l.addr, &timeoutError{timeout})
	case err != nil:
		return "", fmt.Errorf("read echo from %s: %w", l.addr, cause(err))
	}
	reply := strings.TrimSuffix(string(line), "\n")
	if !strings.HasSuffix(reply, ": "+msg) {
		return "", fmt.Errorf("unexpected echo from %s: got %q, want \"NAME: %s\"", l.addr, reply, msg)
	}
	return reply, nil
}

// timeoutError is a deadline that expired, with how long it was.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("no reply within %v", e.d) }
func (e *timeoutError) Timeout() bool { return true }

func runTCP(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("tcp", "tcp ADDR [--count N] [--timeout D] [--message S]",
		`Connect to the TCP line-echo server at ADDR, send --count lines one at a
time on that connection and print each echo ("NAME: S"). Stops and fails
on the first error.`, stdout, stderr)
	count := c.fs.Int("count", 1, fmt.Sprintf("number of lines to send (1..%d)", maxEchoCount))
	timeout := c.fs.Duration("timeout", 2*time.Second, "limit for the dial and for each echo")
	message := c.fs.String("message", "ping", "line to send")
	pos, code, done := c.parse(args, 1, "ADDR")
	if done {
		return code
	}
	addr := pos[0]
	if err := firstError(
		checkAddr(addr),
		checkInt("count", *count, 1, maxEchoCount),
		checkDuration("timeout", *timeout, time.Millisecond, maxTimeout),
		checkMessage(*message),
	); err != nil {
		return c.usageError("%v", err)
	}
	ctx, cancel := withOverallLimit(ctx, overallLimit)
	defer cancel()

	lc, err := dialLine(ctx, addr, *timeout)
	if err != nil {
		if ctx.Err() != nil {
			return c.fail("dial %s: %s", addr, interrupted(ctx))
		}
		return c.fail("%v", err)
	}
	defer lc.close()
	for i := 1; i <= *count; i++ {
		reply, err := lc.echo(*message, *timeout)
		if err != nil {
			if ctx.Err() != nil {
				return c.fail("%s after %d of %d echoes from %s", interrupted(ctx), i-1, *count, addr)
			}
			if *count > 1 {
				return c.fail("%v (line %d of %d)", err, i, *count)
			}
			return c.fail("%v", err)
		}
		fmt.Fprintln(stdout, reply)
	}
	return exitOK
}

func runUDP(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("udp", "udp ADDR [--count N] [--timeout D] [--message S]",
		`Send --count datagrams to the UDP echo server at ADDR, one at a time, and
print each reply ("NAME: S"). Waits up to --timeout for each reply; a
missing reply does not stop the run but makes it fail.`, stdout, stderr)
	count := c.fs.Int("count", 1, fmt.Sprintf("number of datagrams to send (1..%d)", maxEchoCount))
	timeout := c.fs.Duration("timeout", 2*time.Second, "how long to wait for each reply")
	message := c.fs.String("message", "ping", "datagram payload")
	pos, code, done := c.parse(args, 1, "ADDR")
	if done {
		return code
	}
	addr := pos[0]
	if err := firstError(
		checkAddr(addr),
		checkInt("count", *count, 1, maxEchoCount),
		checkDuration("timeout", *timeout, time.Millisecond, maxTimeout),
		checkMessage(*message),
	); err != nil {
		return c.usageError("%v", err)
	}
	ctx, cancel := withOverallLimit(ctx, overallLimit)
	defer cancel()

	d := net.Dialer{Timeout: *timeout}
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return c.fail("dial %s: %s", addr, interrupted(ctx))
		}
		return c.fail("dial %s: %v", addr, cause(err))
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()

	payload := []byte(*message)
	want := ": " + *message
	buf := make([]byte, maxDatagram)
	missing, reported := 0, 0
	report := func(format string, a ...any) {
		missing++
		if reported < maxErrorLines {
			c.fail(format, a...)
		} else if reported == maxErrorLines {
			c.fail("further errors not shown")
		}
		reported++
	}
	for i := 1; i <= *count; i++ {
		if ctx.Err() != nil {
			return c.fail("%s after %d of %d datagrams to %s; %d replies missing", interrupted(ctx), i-1, *count, addr, missing)
		}
		conn.SetDeadline(time.Now().Add(*timeout))
		if _, err := conn.Write(payload); err != nil {
			report("send datagram %d of %d to %s: %v", i, *count, addr, cause(err))
			continue
		}
		n, err := conn.Read(buf)
		switch {
		case ctx.Err() != nil:
			return c.fail("%s after %d of %d datagrams to %s; %d replies missing", interrupted(ctx), i-1, *count, addr, missing)
		case isTimeout(err):
			report("no reply from %s to datagram %d of %d within %v", addr, i, *count, *timeout)
		case err != nil:
			report("read reply %d of %d from %s: %v", i, *count, addr, cause(err))
		case !strings.HasSuffix(string(buf[:n]), want):
			report("unexpected reply %d of %d from %s: got %q, want \"NAME: %s\"", i, *count, addr, buf[:n], *message)
		default:
			fmt.Fprintln(stdout, string(buf[:n]))
		}
	}
	if missing > 0 {
		return c.fail("%d of %d replies missing from %s", missing, *count, addr)
	}
	return exitOK
}

func runHTTP(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("http", "http URL [--timeout D]",
		`GET URL (http or https, no proxy) and print the response body. Succeeds on
a 2xx status, fails on anything else.`, stdout, stderr)
	timeout := c.fs.Duration("timeout", 5*time.Second, "limit for the whole request")
	pos, code, done := c.parse(args, 1, "URL")
	if done {
		return code
	}
	raw := pos[0]
	u, err := url.Parse(raw)
	if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		err = errors.New("want http://HOST[:PORT]/PATH or https://...")
	}
	if err != nil {
		return c.usageError("invalid URL %q: %v", raw, err)
	}
	if err := checkDuration("timeout", *timeout, time.Millisecond, maxTimeout); err != nil {
		return c.usageError("%v", err)
	}

	tr := &http.Transport{
		Proxy:                 nil, // lab pods talk to each other directly
		DialContext:           (&net.Dialer{Timeout: *timeout}).DialContext,
		TLSHandshakeTimeout:   *timeout,
		ResponseHeaderTimeout: *timeout,
		DisableKeepAlives:     true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: *timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return c.usageError("invalid URL %q: %v", raw, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return c.fail("GET %s: %s", raw, interrupted(ctx))
		case isTimeout(err):
			return c.fail("GET %s: no response within %v", raw, *timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return c.fail("GET %s: %v", raw, cause(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody+1))
	if len(body) > maxHTTPBody {
		stdout.Write(body[:maxHTTPBody])
		return c.fail("GET %s: body larger than %d bytes, truncated", raw, maxHTTPBody)
	}
	stdout.Write(body)
	if err != nil {
		if isTimeout(err) {
			return c.fail("GET %s: read body: not complete within %v", raw, *timeout)
		}
		return c.fail("GET %s: read body: %v", raw, cause(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.fail("GET %s: status %s", raw, resp.Status)
	}
	return exitOK
}
