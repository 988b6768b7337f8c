package nettool

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"
)

// streamResult is what a stream run saw.
type streamResult struct {
	sent, received, errors int
	maxGap                 time.Duration
	failure                string // why the run failed; "" on success
}

// streamConfig is the stream command's flags.
type streamConfig struct {
	addr     string
	interval time.Duration
	duration time.Duration
	maxGap   time.Duration
}

// runStreamProbe keeps one TCP connection to the line echo server and,
// every interval for duration, sends a numbered line and waits for its
// echo. It never reconnects: a broken connection ends the run. An echo that
// does not arrive within maxGap of the previous one (or of the connect)
// ends it too, since the gap bound is then already exceeded.
func runStreamProbe(ctx context.Context, cfg streamConfig) streamResult {
	var res streamResult
	lc, err := dialLine(ctx, cfg.addr, min(cfg.maxGap, maxTimeout))
	if err != nil {
		res.errors++
		if ctx.Err() != nil {
			res.failure = fmt.Sprintf("dial %s: %s", cfg.addr, interrupted(ctx))
		} else {
			res.failure = err.Error()
		}
		return res
	}
	defer lc.close()

	start := time.Now()
	end := start.Add(cfg.duration)
	lastOK := start
	next := start
	for seq := 1; ; seq++ {
		// Next probe one interval after the previous one was due, or right
		// away if the previous one took longer than that.
		next = next.Add(cfg.interval)
		if next.After(end) {
			break
		}
		if wait := time.Until(next); wait > 0 {
			if !sleepCtx(ctx, wait) {
				res.errors++
				res.failure = fmt.Sprintf("%s after %d echoes on one connection to %s", interrupted(ctx), res.received, cfg.addr)
				break
			}
		} else {
			next = time.Now()
		}

		budget := time.Until(lastOK.Add(cfg.maxGap))
		if budget <= 0 {
			res.errors++
			res.maxGap = max(res.maxGap, time.Since(lastOK))
			res.failure = fmt.Sprintf("no echo from %s for %v, more than --max-gap %v", cfg.addr, time.Since(lastOK).Round(time.Millisecond), cfg.maxGap)
			break
		}
		res.sent++
		_, err := lc.echo("stream "+strconv.Itoa(seq), budget)
		now := time.Now()
		gap := now.Sub(lastOK)
		res.maxGap = max(res.maxGap, gap)
		if err != nil {
			res.errors++
			switch {
			case ctx.Err() != nil:
				res.failure = fmt.Sprintf("%s after %d echoes on one connection to %s", interrupted(ctx), res.received, cfg.addr)
			case isTimeout(err):
				res.failure = fmt.Sprintf("no echo from %s for %v (probe %d), more than --max-gap %v; connection not reused",
					cfg.addr, gap.Round(time.Millisecond), seq, cfg.maxGap)
			default:
				res.failure = fmt.Sprintf("probe %d: %v; stopped after %d echoes on one connection, no reconnect attempted",
					seq, err, res.received)
			}
			break
		}
		res.received++
		lastOK = now
	}
	if res.failure == "" && res.maxGap > cfg.maxGap {
		res.failure = fmt.Sprintf("longest gap between echoes from %s was %v, more than --max-gap %v",
			cfg.addr, res.maxGap.Round(time.Millisecond), cfg.maxGap)
	}
	if res.failure == "" && res.received != res.sent {
		res.failure = fmt.Sprintf("%d of %d probes to %s not echoed", res.sent-res.received, res.sent, cfg.addr)
	}
	return res
}

func runStream(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("stream", "stream ADDR [--interval D] [--duration D] [--max-gap D]",
		`Hold one TCP connection to the line-echo server at ADDR for --duration and,
every --interval, send a numbered line and wait for its echo. Never
reconnects. Prints one summary line:
  stream: sent=N received=N errors=N max_gap=Dms
and succeeds only if every probe was echoed on that one connection and no
two echoes (or the connect and the first echo) were more than --max-gap apart.`,
		stdout, stderr)
	interval := c.fs.Duration("interval", 100*time.Millisecond, "time between probes")
	duration := c.fs.Duration("duration", 10*time.Second, fmt.Sprintf("how long to probe (at most %v)", maxStreamDuration))
	maxGap := c.fs.Duration("max-gap", 5*time.Second, "longest acceptable time between two echoes")
	pos, code, done := c.parse(args, 1, "ADDR")
	if done {
		return code
	}
	cfg := streamConfig{addr: pos[0], interval: *interval, duration: *duration, maxGap: *maxGap}
	if err := firstError(
		checkAddr(cfg.addr),
		checkDuration("duration", cfg.duration, minStreamInterval, maxStreamDuration),
		checkDuration("interval", cfg.interval, minStreamInterval, cfg.duration),
		checkDuration("max-gap", cfg.maxGap, minStreamInterval, maxStreamDuration),
	); err != nil {
		return c.usageError("%v", err)
	}
	if cfg.interval >= cfg.maxGap {
		return c.usageError("--interval %v must be shorter than --max-gap %v", cfg.interval, cfg.maxGap)
	}

	res := runStreamProbe(ctx, cfg)
	fmt.Fprintf(stdout, "stream: sent=%d received=%d errors=%d max_gap=%dms\n",
		res.sent, res.received, res.errors, res.maxGap.Milliseconds())
	if res.failure != "" {
		return c.fail("%s", res.failure)
	}
	return exitOK
}
