package nettool

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

const maxRRCount = 10_000_000

// runRR measures request/response on one TCP connection: the TCP_RR
// workload of netperf, against the line echo server.
func runRR(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("rr", "rr ADDR [--count N] [--duration D] [--timeout D]",
		`On one TCP connection to the line-echo server at ADDR, send a short line
and wait for its echo, back to back, until --count round trips are done or
--duration has passed, whichever is first. Prints
  rr: ok=N rate=R/s p50=Nus p99=Nus
Fails if any round trip fails. Gives up after `+overallLimit.String()+` overall.`,
		stdout, stderr)
	count := c.fs.Int("count", 10000, fmt.Sprintf("round trips at most (1..%d)", maxRRCount))
	duration := c.fs.Duration("duration", 10*time.Second, "time limit for the run (at most 10m)")
	timeout := c.fs.Duration("timeout", 2*time.Second, "limit for the connect and each round trip")
	pos, code, done := c.parse(args, 1, "ADDR")
	if done {
		return code
	}
	addr := pos[0]
	if err := firstError(
		checkAddr(addr),
		checkInt("count", *count, 1, maxRRCount),
		checkDuration("duration", *duration, time.Millisecond, 10*time.Minute),
		checkDuration("timeout", *timeout, time.Millisecond, maxTimeout),
	); err != nil {
		return c.usageError("%v", err)
	}
	ctx, cancel := withOverallLimit(ctx, overallLimit)
	defer cancel()
	lc, err := dialLine(ctx, addr, *timeout)
	if err != nil {
		return c.fail("%v", err)
	}
	defer lc.close()
	lat := make([]time.Duration, 0, min(*count, 1<<20))
	start := time.Now()
	deadline := start.Add(*duration)
	for i := 0; i < *count && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		t0 := time.Now()
		if _, err := lc.echo("rr "+strconv.Itoa(i), *timeout); err != nil {
			return c.fail("round trip %d with %s: %v", i+1, addr, err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	res := crrResult{ok: len(lat), latencies: lat}
	fmt.Fprintf(stdout, "rr: ok=%d rate=%.0f/s p50=%dus p99=%dus\n", len(lat), float64(len(lat))/elapsed.Seconds(),
		res.percentile(0.50).Microseconds(), res.percentile(0.99).Microseconds())
	if len(lat) == 0 {
		return c.fail("no round trip completed with %s", addr)
	}
	return exitOK
}
