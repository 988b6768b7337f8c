package nettool

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

const maxBlastRate = 1_000_000 // packets per second

// runBlast sends UDP datagrams at a fixed rate without waiting for
// answers: a steady event source for the observability benchmarks (each
// packet a datapath event when policy drops it or aggregation is off).
func runBlast(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("blast", "blast ADDR [--rate PPS] [--duration D] [--size N]",
		`Send UDP datagrams to ADDR at --rate per second for --duration, paced in
1 ms batches, without reading replies. Prints
  blast: sent=N errors=E elapsed=D rate=R/s
Bounded: at most `+fmt.Sprint(maxBlastRate)+` per second and 10 minutes.`,
		stdout, stderr)
	rate := c.fs.Int("rate", 1000, fmt.Sprintf("datagrams per second (1..%d)", maxBlastRate))
	duration := c.fs.Duration("duration", 10*time.Second, "how long to send (at most 10m)")
	size := c.fs.Int("size", 32, "payload bytes (1..1400)")
	pos, code, done := c.parse(args, 1, "ADDR")
	if done {
		return code
	}
	addr := pos[0]
	if err := firstError(
		checkAddr(addr),
		checkInt("rate", *rate, 1, maxBlastRate),
		checkDuration("duration", *duration, time.Millisecond, 10*time.Minute),
		checkInt("size", *size, 1, 1400),
	); err != nil {
		return c.usageError("%v", err)
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return c.fail("%v", err)
	}
	defer conn.Close()
	payload := make([]byte, *size)
	start := time.Now()
	end := start.Add(*duration)
	var sent, errs int
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for now := start; now.Before(end) && ctx.Err() == nil; {
		// Catch up to where the schedule says we should be, so timer
		// jitter does not lower the rate.
		due := int(float64(*rate) * now.Sub(start).Seconds())
		for ; sent+errs < due; sent++ {
			if _, err := conn.Write(payload); err != nil {
				errs++ // e.g. ECONNREFUSED from an earlier ICMP error
				sent--
			}
		}
		select {
		case <-ctx.Done():
		case now = <-tick.C:
		}
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "blast: sent=%d errors=%d elapsed=%s rate=%.0f/s\n", sent, errs, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds())
	if ctx.Err() != nil {
		return c.fail("%s after %d datagrams", interrupted(ctx), sent)
	}
	return exitOK
}
