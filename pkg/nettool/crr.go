package nettool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// crrResult is what a crr run saw.
type crrResult struct {
	ok, failed int
	latencies  []time.Duration // of the successful exchanges, sorted
	firstErr   error
}

// percentile returns the p-th (0..1) nearest-rank percentile of the sorted
// latencies, 0 without any.
func (r *crrResult) percentile(p float64) time.Duration {
	n := len(r.latencies)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(n))) - 1
	return r.latencies[min(max(i, 0), n-1)]
}

// doCRR does count connect/request/response/close exchanges with the line
// echo server at addr, concurrency of them at a time. Each one gets
// timeout for the whole exchange. The latency runs from the dial to the
// echo. The client half-closes and waits for the server to close first, so
// the TIME_WAIT state stays on the server and a long run does not exhaust
// the client's ephemeral ports.
func doCRR(ctx context.Context, addr string, count, concurrency int, timeout time.Duration) crrResult {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		res      crrResult
		wg       sync.WaitGroup
		errOnce  sync.Once
		setFirst = func(err error) { errOnce.Do(func() { res.firstErr = err }) }
	)
	for range concurrency {
		wg.Go(func() {
			var lat []time.Duration
			for {
				i := next.Add(1)
				if i > int64(count) || ctx.Err() != nil {
					break
				}
				d, err := crrOnce(ctx, addr, "crr "+strconv.FormatInt(i, 10), timeout)
				if err != nil {
					if ctx.Err() == nil {
						setFirst(err)
					}
					continue
				}
				lat = append(lat, d)
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.ok = len(res.latencies)
	// Failed exchanges, and those never started because ctx ended.
	res.failed = count - res.ok
	slices.Sort(res.latencies)
	return res
}

// crrOnce does one connect/request/response/close exchange.
func crrOnce(ctx context.Context, addr, msg string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	lc, err := dialLine(ctx, addr, timeout)
	if err != nil {
		return 0, err
	}
	defer lc.close()
	if _, err := lc.echo(msg, timeout-time.Since(start)); err != nil {
		return 0, err
	}
	lat := time.Since(start)
	// Half-close and wait for the server's close (bounded by the deadline
	// echo set) so the server, not us, holds TIME_WAIT.
	if tc, ok := lc.c.(*net.TCPConn); ok {
		if err := tc.CloseWrite(); err != nil {
			return 0, fmt.Errorf("close %s: %w", addr, cause(err))
		}
		var buf [64]byte
		for {
			_, err := lc.r.Read(buf[:])
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if isTimeout(err) {
					return 0, fmt.Errorf("close %s: server did not close within %v", addr, timeout)
				}
				return 0, fmt.Errorf("close %s: %w", addr, cause(err))
			}
		}
	}
	return lat, nil
}

func runCRR(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("crr", "crr ADDR --count N [--concurrency C] [--timeout D]",
		`--count times: connect to the TCP line-echo server at ADDR, send one line,
read the echo, close. --concurrency exchanges run at a time. Prints
  crr: ok=N failed=N p50=Nus p99=Nus
(latency from connect to echo, over the successful exchanges) and fails if
any exchange failed. Gives up after `+overallLimit.String()+` overall.`,
		stdout, stderr)
	count := c.fs.Int("count", 100, fmt.Sprintf("number of exchanges (1..%d)", maxCRRCount))
	concurrency := c.fs.Int("concurrency", 1, fmt.Sprintf("exchanges at a time (1..%d)", maxCRRConcurrency))
	timeout := c.fs.Duration("timeout", 2*time.Second, "limit for each whole exchange")
	pos, code, done := c.parse(args, 1, "ADDR")
	if done {
		return code
	}
	addr := pos[0]
	if err := firstError(
		checkAddr(addr),
		checkInt("count", *count, 1, maxCRRCount),
		checkInt("concurrency", *concurrency, 1, maxCRRConcurrency),
		checkDuration("timeout", *timeout, time.Millisecond, maxTimeout),
	); err != nil {
		return c.usageError("%v", err)
	}
	ctx, cancel := withOverallLimit(ctx, overallLimit)
	defer cancel()

	res := doCRR(ctx, addr, *count, min(*concurrency, *count), *timeout)
	fmt.Fprintf(stdout, "crr: ok=%d failed=%d p50=%dus p99=%dus\n",
		res.ok, res.failed, res.percentile(0.50).Microseconds(), res.percentile(0.99).Microseconds())
	switch {
	case res.failed == 0:
		return exitOK
	case ctx.Err() != nil && res.firstErr == nil:
		return c.fail("%d of %d exchanges with %s failed or not attempted: %s", res.failed, *count, addr, interrupted(ctx))
	case ctx.Err() != nil:
		return c.fail("%d of %d exchanges with %s failed or not attempted: %s; first error: %v", res.failed, *count, addr, interrupted(ctx), res.firstErr)
	default:
		return c.fail("%d of %d exchanges with %s failed; first error: %v", res.failed, *count, addr, res.firstErr)
	}
}
