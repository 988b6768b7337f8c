package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"

	"github.com/seta-net/seta/pkg/datapath/progstats"
	"github.com/seta-net/seta/pkg/lab"
)

// results is everything a run measured (the raw JSON).
type results struct {
	Machine machine
	Flags   map[string]string
	// SetaMaxServices is how many measured services the agent can hold
	// (its 16-bit ID space, less the lab's own services).
	SetaMaxServices int
	Steps           []step
	RR              []rrStep
	InProc          []inprocResult
}

// step is one N.
type step struct {
	N    int
	Seta *loadResult `json:",omitempty"` // nil: more services than Seta can hold
	// IptablesLoadSeconds: iptables-restore of the whole nat table with N
	// services.
	IptablesLoadSeconds float64 `json:",omitempty"`
	IptablesRules       int     `json:",omitempty"`
	// CRR measurements per setup ("seta", "iptables"), in round order.
	CRR     map[string][]crrResult
	Orders  [][]string
	Program []programResult
}

type rrStep struct {
	N     int
	Setup string
	// Rates per round, requests per second.
	ClusterIP, Direct []float64
	Ratios            []float64
}

// side is one of the compared setups.
type side interface {
	name() string
	// holds says whether the setup can hold n services.
	holds(n int) bool
	// load makes it hold the first n services and records what that
	// took in st.
	load(ctx context.Context, n int, st *step) error
	// program times adding one more service, in each way it has.
	program(ctx context.Context, n int) ([]programResult, error)
	// crr runs a CRR measurement of count connections against addr from
	// the setup's client.
	crr(addr string, count int) (crrResult, error)
	// rr runs one TCP_RR measurement against addr; direct is a backend.
	rr(addr string) (float64, error)
	direct() string
}

func (b *bench) run(ctx context.Context) (*results, error) {
	res := &results{Machine: describeMachine(), Flags: map[string]string{}}
	for _, f := range []string{"services", "setups", "rounds", "crr-count", "crr-duration", "rr-duration", "rr-rounds", "program-repeats",
		"program-time", "iptables-restore", "agent-args", "client-cpu", "server-cpu", "bpf-stats"} {
		res.Flags[f] = flag.Lookup(f).Value.String()
	}
	if b.setups["seta"] && *bpfStats {
		stats, err := progstats.Enable()
		if err != nil {
			return nil, err
		}
		b.bpfStats = stats
	}
	var sides []side
	progress("starting lab %s", labName)
	s, err := setupSeta(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	res.SetaMaxServices = s.maxN()
	if b.setups["seta"] {
		sides = append(sides, s)
	}
	if b.setups["iptables"] {
		progress("building the iptables node")
		if err := setupIptablesNode(b); err != nil {
			return nil, fmt.Errorf("iptables node: %w", err)
		}
		sides = append(sides, &iptSide{b: b})
	}
	lastSeta := 0
	for _, n := range b.counts {
		if n <= s.maxN() {
			lastSeta = n
		}
	}
	for i, n := range b.counts {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var here []side
		for _, sd := range sides {
			if sd.holds(n) {
				here = append(here, sd)
			} else {
				progress("N=%d: %s holds at most %d services (16-bit service IDs); left out", n, sd.name(), s.maxN())
			}
		}
		st, err := b.step(ctx, here, n)
		if err != nil {
			return nil, fmt.Errorf("N=%d: %w", n, err)
		}
		res.Steps = append(res.Steps, st)
		if wantRR(i, n, len(b.counts), lastSeta) {
			rr, err := b.rr(ctx, here, n)
			if err != nil {
				return nil, fmt.Errorf("N=%d: rr: %w", n, err)
			}
			res.RR = append(res.RR, rr...)
		}
	}
	ats, _ := parseCounts("--inproc-at", *inprocAt, 0)
	for i, n := range ats {
		progress("service table in-process with %d services", n)
		profile := ""
		if i == len(ats)-1 {
			profile = *inprocProfile
		}
		r, err := inprocBreakdown(n, s.backends, profile)
		if err != nil {
			return nil, fmt.Errorf("in-process table at %d: %w", n, err)
		}
		res.InProc = append(res.InProc, r)
	}
	return res, nil
}

func wantRR(i, n, steps, lastSeta int) bool {
	switch *rrAt {
	case "all":
		return true
	case "none":
		return false
	}
	first := i == 0
	last := n == lastSeta || (lastSeta == 0 && i == steps-1)
	return (first && (*rrAt == "first" || *rrAt == "first,last")) || (last && (*rrAt == "last" || *rrAt == "first,last"))
}

// step loads N services into each setup, checks the last one carries
// traffic, times programming one more, and measures CRR in rounds whose
// order rotates.
func (b *bench) step(ctx context.Context, sides []side, n int) (step, error) {
	st := step{N: n, CRR: map[string][]crrResult{}}
	addr := netip.AddrPortFrom(vip(n-1), vipPort).String()
	for _, sd := range sides {
		progress("N=%d: %s: loading %d services", n, sd.name(), n)
		if err := sd.load(ctx, n, &st); err != nil {
			return st, fmt.Errorf("%s: %w", sd.name(), err)
		}
		if c, err := sd.crr(addr, 10); err != nil || c.Failed > 0 {
			return st, fmt.Errorf("%s: service %s: %v %s", sd.name(), addr, err, c.FirstError)
		}
	}
	for _, sd := range sides {
		progress("N=%d: %s: programming one more service", n, sd.name())
		p, err := sd.program(ctx, n)
		if err != nil {
			return st, fmt.Errorf("%s: %w", sd.name(), err)
		}
		st.Program = append(st.Program, p...)
	}
	// One unrecorded warm-up each, then the rounds.
	for _, sd := range sides {
		if _, err := sd.crr(addr, max(*crrCount/10, 10)); err != nil {
			return st, fmt.Errorf("%s: %w", sd.name(), err)
		}
	}
	for r := 0; r < *rounds; r++ {
		order := rotate(sides, r)
		var names []string
		for _, sd := range order {
			names = append(names, sd.name())
		}
		st.Orders = append(st.Orders, names)
		for _, sd := range order {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			progress("N=%d: CRR round %d/%d: %s", n, r+1, *rounds, sd.name())
			c, err := sd.crr(addr, *crrCount)
			if err != nil {
				return st, fmt.Errorf("%s crr: %w", sd.name(), err)
			}
			st.CRR[sd.name()] = append(st.CRR[sd.name()], c)
		}
	}
	return st, nil
}

// rotate returns the setups rotated by r, so each takes each place in a
// round equally often.
func rotate(sides []side, r int) []side {
	k := r % len(sides)
	return append(slices.Clone(sides[k:]), sides[:k]...)
}

var rrRateRE = regexp.MustCompile(`rate=([0-9.]+)/s`)

// rr measures TCP_RR through the TCP_RR service's ClusterIP and straight
// to its backend, for each setup, alternating which path goes first. Once
// connected, neither setup looks at the service tables again (socket LB
// connected the socket to the backend; conntrack holds iptables' DNAT), so
// N should not matter; it is measured at more than one N to show that.
func (b *bench) rr(ctx context.Context, sides []side, n int) ([]rrStep, error) {
	vipAddr := netip.AddrPortFrom(rrVIP, vipPort).String()
	var out []rrStep
	for _, sd := range sides {
		r := rrStep{N: n, Setup: sd.name()}
		for round := 0; round < *rrRounds; round++ {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			progress("N=%d: TCP_RR %s round %d/%d", n, sd.name(), round+1, *rrRounds)
			paths := []string{vipAddr, sd.direct()}
			if round%2 == 1 {
				paths[0], paths[1] = paths[1], paths[0]
			}
			rates := map[string]float64{}
			for _, a := range paths {
				v, err := sd.rr(a)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", sd.name(), err)
				}
				rates[a] = v
			}
			c, d := rates[vipAddr], rates[sd.direct()]
			r.ClusterIP, r.Direct, r.Ratios = append(r.ClusterIP, c), append(r.Direct, d), append(r.Ratios, c/d)
		}
		out = append(out, r)
	}
	return out, nil
}

func rrArgs(b *bench, addr string) []string {
	return []string{"-c", strconv.Itoa(*clientCPU), b.bin("seta-nettool"), "rr", addr, "--count", "10000000", "--duration", rrTime.String()}
}

func rrInPod(b *bench, addr string) (float64, error) {
	var out bytes.Buffer
	code, err := lab.ExecPod(labName, "default", "client", append([]string{"taskset"}, rrArgs(b, addr)...), nil, &out, &out)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit code %d", code)
	}
	return parseRR(out.String(), err)
}

func parseRR(out string, err error) (float64, error) {
	if err != nil {
		return 0, fmt.Errorf("rr: %v: %s", err, out)
	}
	m := rrRateRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unexpected rr output %q", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

// medianSpread returns the median, minimum and maximum.
func medianSpread(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}
