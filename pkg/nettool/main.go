package nettool

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Bounds on what the commands accept, so every loop ends.
const (
	maxEchoCount      = 100_000          // tcp and udp --count
	maxCRRCount       = 1_000_000        // crr --count
	maxCRRConcurrency = 64               // crr --concurrency
	maxTimeout        = time.Minute      // every --timeout
	maxStreamDuration = 10 * time.Minute // stream --duration and --max-gap
	minStreamInterval = time.Millisecond // stream --interval
	maxMessage        = 4096             // --message length, bytes
	maxLine           = 64 << 10         // longest line either side reads
	overallLimit      = 10 * time.Minute // tcp, udp, http and crr give up after this
	maxErrorLines     = 10               // per-message errors printed by udp
)

const usageText = `seta-nettool: traffic tool for seta lab pods

Usage:
  seta-nettool <command> [arguments] [flags]

Commands:
  serve          run the TCP line-echo, UDP echo and HTTP servers until SIGTERM/SIGINT
  tcp ADDR       send lines to a TCP echo server and print the echoes
  udp ADDR       send datagrams to a UDP echo server and print the echoes
  http URL       GET a URL and print the body
  stream ADDR    probe one long-lived TCP connection and report the longest echo gap
  crr ADDR       connect, send one line, read the echo, close; N times; report latency
  rr ADDR        request/response round trips on one connection; report rate and latency
  blast ADDR     send UDP datagrams at a fixed rate for a while, not waiting for replies
  dns NAME       send one DNS query and print the answer records (or the error code)
  perf-serve     byte echo servers for perf (TCP and UDP), on blocking sockets
  perf ADDR      netperf's TCP_RR, TCP_CRR or UDP_RR against perf-serve; report rate and latency
  serve-peer     TCP and UDP echo servers whose replies name the client address they saw
  conns ADDR     short TCP connections one after another; report which server answered each
  udpflow ADDR   datagrams from one unconnected UDP socket; report which server answered each

ADDR is host:port, e.g. 10.0.0.5:7000 or [fd00::5]:7000.
Flags may come before or after the arguments, as -flag or --flag.
Run 'seta-nettool <command> --help' for the flags of a command.
Exit status: 0 success, 1 failure (reason on stderr), 2 usage error.
`

// Main runs seta-nettool with args (the command line without the program
// name) and returns the exit status. SIGINT and SIGTERM cancel the command:
// serve then exits 0, the clients stop and report failure.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, stdout, stderr)
}

// Run is Main with the caller's context in place of the signal handling.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	rest := args[1:]
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "tcp":
		return runTCP(ctx, rest, stdout, stderr)
	case "udp":
		return runUDP(ctx, rest, stdout, stderr)
	case "http":
		return runHTTP(ctx, rest, stdout, stderr)
	case "stream":
		return runStream(ctx, rest, stdout, stderr)
	case "crr":
		return runCRR(ctx, rest, stdout, stderr)
	case "rr":
		return runRR(ctx, rest, stdout, stderr)
	case "blast":
		return runBlast(ctx, rest, stdout, stderr)
	case "dns":
		return runDNS(ctx, rest, stdout, stderr)
	case "perf-serve":
		return runPerfServe(ctx, rest, stdout, stderr)
	case "perf":
		return runPerf(ctx, rest, stdout, stderr)
	case "serve-peer":
		return runServePeer(ctx, rest, stdout, stderr)
	case "conns":
		return runConns(ctx, rest, stdout, stderr)
	case "udpflow":
		return runUDPFlow(ctx, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "seta-nettool: unknown command %q\n\n%s", args[0], usageText)
		return exitUsage
	}
}

// command is the flag handling shared by the subcommands.
type command struct {
	name     string // "tcp"
	synopsis string // "tcp ADDR [flags]"
	summary  string
	fs       *flag.FlagSet
	stdout   io.Writer
	stderr   io.Writer
}

func newCommand(name, synopsis, summary string, stdout, stderr io.Writer) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed by parse
	fs.Usage = func() {}
	return &command{name: name, synopsis: synopsis, summary: summary, fs: fs, stdout: stdout, stderr: stderr}
}

func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: seta-nettool %s\n\n%s\n\nFlags:\n", c.synopsis, c.summary)
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
	c.fs.SetOutput(io.Discard)
}

// usageError reports a bad command line; it returns exitUsage.
func (c *command) usageError(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "seta-nettool %s: %s\nUsage: seta-nettool %s\nRun 'seta-nettool %s --help' for details.\n",
		c.name, fmt.Sprintf(format, a...), c.synopsis, c.name)
	return exitUsage
}

// fail reports a failed command; it returns exitFailure.
func (c *command) fail(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s\n", c.name, fmt.Sprintf(format, a...))
	return exitFailure
}

// parse parses flags and arguments in any order and checks that there are
// exactly nargs arguments. done is true when the caller must return code
// (help was asked for, or the command line is wrong).
func (c *command) parse(args []string, nargs int, argName string) (pos []string, code int, done bool) {
	pos, err := parseInterspersed(c.fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.usage(c.stdout)
		return nil, exitOK, true
	case err != nil:
		return nil, c.usageError("%v", err), true
	case len(pos) < nargs:
		return nil, c.usageError("missing %s", argName), true
	case len(pos) > nargs:
		return nil, c.usageError("unexpected argument %q", pos[nargs]), true
	}
	return pos, 0, false
}

// parseInterspersed lets flags follow positional arguments ("tcp ADDR
// --count 3"), which the flag package alone stops at. Everything after a
// "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// checkAddr checks that addr is host:port.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: %v (want host:port, e.g. 10.0.0.5:7000 or [fd00::5]:7000)", addr, cause(err))
	}
	if host == "" || port == "" {
		return fmt.Errorf("invalid address %q: want host:port, e.g. 10.0.0.5:7000 or [fd00::5]:7000", addr)
	}
	return nil
}

// checkMessage checks a --message value: one non-empty line.
func checkMessage(msg string) error {
	switch {
	case msg == "":
		return errors.New("--message must not be empty")
	case len(msg) > maxMessage:
		return fmt.Errorf("--message is %d bytes, at most %d allowed", len(msg), maxMessage)
	case strings.ContainsAny(msg, "\r\n"):
		return errors.New("--message must be a single line")
	}
	return nil
}

// checkDuration checks that d is within [lo, hi].
func checkDuration(flagName string, d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("--%s %v out of range [%v, %v]", flagName, d, lo, hi)
	}
	return nil
}

// checkInt checks that n is within [lo, hi].
func checkInt(flagName string, n, lo, hi int) error {
	if n < lo || n > hi {
		return fmt.Errorf("--%s %d out of range [%d, %d]", flagName, n, lo, hi)
	}
	return nil
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// cause strips the operation and address the net package wraps around a
// system error, which the messages of this package spell out themselves:
// "dial tcp 10.0.0.5:7000: connect: connection refused" becomes
// "connection refused".
func cause(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("connection closed by peer")
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	var sys *os.SyscallError
	if errors.As(err, &sys) && sys.Err != nil {
		err = sys.Err
	}
	var addrErr *net.AddrError
	if errors.As(err, &addrErr) {
		return errors.New(addrErr.Err)
	}
	return err
}

// isTimeout tells whether err is a deadline expiring.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// interrupted explains why ctx ended, for a client that stopped early.
func interrupted(ctx context.Context) string {
	if errors.Is(context.Cause(ctx), errOverallLimit) {
		return fmt.Sprintf("gave up after the overall limit of %v", overallLimit)
	}
	return "interrupted"
}

var errOverallLimit = errors.New("overall time limit reached")

// withOverallLimit bounds a client command's total run time.
func withOverallLimit(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, errOverallLimit)
}
