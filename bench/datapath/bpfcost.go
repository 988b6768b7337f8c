package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/seta-net/seta/pkg/datapath/progstats"
)

// The datapath's own cost comes from the kernel's run statistics of the
// lab node's programs (pkg/datapath/progstats): the time spent inside the
// tc programs (the pods' host-side veths, the node's devices) and inside
// the socket hooks, per transaction. Unlike a rate it does not include the
// wakeups, so it is steady from round to round.
//
// The statistics cost two clock reads per program run on the whole
// machine, so they are on only in the cost rounds, which run the Seta
// topologies alone and give no rate ratios; the rate rounds run with them
// off, as the datapath runs in production. The harness still reads the
// counters around every Seta measurement: a counter that moves in a rate
// round means another process turned the statistics on, which the report
// says.

// Directories of a lab node's bpffs root that hold the links of its tc
// programs and of its socket hooks (see pkg/datapath).
var (
	tcLinkDirs   = []string{"links", "node-links"}
	sockLinkDirs = []string{"sock-links"}
)

// progGroup is what one group of programs (the tc programs, the socket
// hooks) did during a measurement.
type progGroup struct {
	Runs  uint64 `json:"runs"`
	RunNs uint64 `json:"runNs"`
	// Programs is the same by program name.
	Programs map[string]progRuns `json:"programs,omitempty"`
}

type progRuns struct {
	Runs  uint64 `json:"runs"`
	RunNs uint64 `json:"runNs"`
}

// bpfSample is what a Seta topology's programs did during one
// measurement.
type bpfSample struct {
	TC   progGroup `json:"tc"`
	Sock progGroup `json:"sock"`
}

func (b bpfSample) runs() uint64 { return b.TC.Runs + b.Sock.Runs }

// bpfSnapshot is the counters of a topology's programs at one moment.
type bpfSnapshot struct{ tc, sock progstats.Snapshot }

// progDirs are the link directories of a lab node that exist: without
// socket LB there are no socket hooks.
func progDirs(bpfRoot string, dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		st, err := os.Stat(filepath.Join(bpfRoot, d))
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return nil, err
		case !st.IsDir():
			return nil, fmt.Errorf("%s is not a directory", filepath.Join(bpfRoot, d))
		}
		out = append(out, d)
	}
	return out, nil
}

// readBPF reads the counters of t's programs; zero for a topology without
// programs.
func readBPF(t *topology) (bpfSnapshot, error) {
	var s bpfSnapshot
	if t.bpfRoot == "" {
		return s, nil
	}
	var err error
	if len(t.tcDirs) > 0 {
		if s.tc, err = progstats.Read(t.bpfRoot, t.tcDirs...); err != nil {
			return s, err
		}
	}
	if len(t.sockDirs) > 0 {
		if s.sock, err = progstats.Read(t.bpfRoot, t.sockDirs...); err != nil {
			return s, err
		}
	}
	return s, nil
}

// since is what t's programs did from before to now.
func (now bpfSnapshot) since(before bpfSnapshot) (bpfSample, error) {
	tc, err := groupSince(now.tc, before.tc)
	if err != nil {
		return bpfSample{}, err
	}
	sock, err := groupSince(now.sock, before.sock)
	return bpfSample{TC: tc, Sock: sock}, err
}

func groupSince(now, before progstats.Snapshot) (progGroup, error) {
	var g progGroup
	d, err := now.Since(before)
	if err != nil {
		return g, err
	}
	for name, r := range d {
		if r.Runs == 0 {
			continue
		}
		if g.Programs == nil {
			g.Programs = map[string]progRuns{}
		}
		g.Programs[name] = progRuns{Runs: r.Runs, RunNs: r.RunNs}
		g.Runs += r.Runs
		g.RunNs += r.RunNs
	}
	return g, nil
}

// checkStatsOn catches cost measurements whose statistics did not count:
// every packet a pod sends runs a tc program.
func checkStatsOn(b bpfSample) error {
	if b.TC.Runs == 0 {
		return errors.New("bpf stats: the tc programs ran 0 times; were the statistics turned off?")
	}
	return nil
}

// perUnit is the cost of one group of programs per unit of a workload's
// work (a transaction, or a MB for TCP_STREAM): ns per unit, runs per unit,
// ns per run.
type perUnit struct {
	NsPerUnit   float64 `json:"nsPerUnit"`
	RunsPerUnit float64 `json:"runsPerUnit"`
	NsPerRun    float64 `json:"nsPerRun"`
}

// units is how much work of its workload a sample did: transactions, or
// MB received for TCP_STREAM.
func (s sample) units() float64 {
	if s.Workload == "TCP_STREAM" {
		return float64(s.Bytes) / 1e6
	}
	return float64(s.Transactions)
}

func (g progGroup) per(units float64) perUnit {
	var p perUnit
	if units > 0 {
		p.NsPerUnit, p.RunsPerUnit = float64(g.RunNs)/units, float64(g.Runs)/units
	}
	if g.Runs > 0 {
		p.NsPerRun = float64(g.RunNs) / float64(g.Runs)
	}
	return p
}

// bpfSummary is the program cost of one workload on one Seta topology over
// the cost rounds: the median of each quantity.
type bpfSummary struct {
	Workload string     `json:"workload"`
	Topology string     `json:"topology"`
	Rounds   int        `json:"rounds"`
	TC       perUnit    `json:"tc"`
	Sock     perUnit    `json:"sock"`
	TCRange  [2]float64 `json:"tcNsPerUnitRange"` // min and max of TC.NsPerUnit
	// TCShare is the tc programs' time as a share of the CPU time per
	// unit (sample.cpuNsPerUnit; median of the rounds).
	TCShare float64 `json:"tcShareOfCPU"`
	// Programs are the programs that ran, by name, ns per unit (median).
	Programs map[string]float64 `json:"programsNsPerUnit"`
}

// minProgramNs is the least time per unit of work a program must take to
// be listed by name.
const minProgramNs = 0.5

// summarizeBPF takes the median of each per-unit quantity over the
// samples of one workload and topology that carry program counters.
func summarizeBPF(w, id string, samples []sample) (bpfSummary, bool) {
	b := bpfSummary{Workload: w, Topology: id, Programs: map[string]float64{}}
	var tcNs, tcRuns, tcPer, sockNs, sockRuns, sockPer, share []float64
	progs := map[string][]float64{}
	for _, s := range samples {
		if s.BPF == nil || s.units() <= 0 {
			continue
		}
		u := s.units()
		tc, sock := s.BPF.TC.per(u), s.BPF.Sock.per(u)
		tcNs, tcRuns, tcPer = append(tcNs, tc.NsPerUnit), append(tcRuns, tc.RunsPerUnit), append(tcPer, tc.NsPerRun)
		sockNs, sockRuns, sockPer = append(sockNs, sock.NsPerUnit), append(sockRuns, sock.RunsPerUnit), append(sockPer, sock.NsPerRun)
		if cpuNs := s.cpuNsPerUnit(); cpuNs > 0 {
			share = append(share, tc.NsPerUnit/cpuNs)
		}
		for _, g := range []progGroup{s.BPF.TC, s.BPF.Sock} {
			for name, r := range g.Programs {
				progs[name] = append(progs[name], float64(r.RunNs)/u)
			}
		}
	}
	if len(tcNs) == 0 {
		return b, false
	}
	b.Rounds = len(tcNs)
	med := func(v []float64) float64 { m, _, _ := medianMinMax(v); return m }
	b.TC = perUnit{med(tcNs), med(tcRuns), med(tcPer)}
	b.Sock = perUnit{med(sockNs), med(sockRuns), med(sockPer)}
	_, b.TCRange[0], b.TCRange[1] = medianMinMax(tcNs)
	if len(share) > 0 {
		b.TCShare = med(share)
	}
	for name, v := range progs {
		// A program that did not run in some rounds counts 0 there.
		for len(v) < b.Rounds {
			v = append(v, 0)
		}
		// Left out: programs that run once per measurement (the connect
		// of TCP_RR's one connection), not per transaction.
		if m := med(v); m >= minProgramNs {
			b.Programs[name] = m
		}
	}
	return b, true
}

// cpuNsPerUnit is the CPU time per unit of work in ns: the client's and
// the server's (measuredClient), or the machine's busy time in samples
// without theirs.
func (s sample) cpuNsPerUnit() float64 {
	u := s.units()
	switch {
	case u <= 0:
		return 0
	case s.ProcCPUns > 0:
		return float64(s.ProcCPUns) / u
	}
	return float64(s.BusyJiffies) / userHZ * 1e9 / u
}
