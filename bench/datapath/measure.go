package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seta-net/seta/pkg/datapath/progstats"
)

// userHZ is the unit of /proc/stat (USER_HZ, 100 on every Linux
// architecture the project runs on).
const userHZ = 100

// workload is one of the benchmark's workloads.
type workload struct {
	Unit     string // of a sample's value
	CPUUnit  string // of a sample's CPU cost
	CostUnit string // of the program cost: what sample.units counts
	run      func(ctx context.Context, t *topology, d time.Duration) (sample, error)
}

var workloads = map[string]workload{
	"TCP_RR":     {"transactions/s", "µs CPU per transaction", "transaction", perfRun("TCP_RR", perfTCPPort, time.Second)},
	"TCP_CRR":    {"transactions/s", "µs CPU per transaction", "transaction", perfRun("TCP_CRR", perfTCPPort, time.Second)},
	"UDP_RR":     {"transactions/s", "µs CPU per transaction", "transaction", perfRun("UDP_RR", perfUDPPort, 200*time.Millisecond)},
	"TCP_STREAM": {"Gbit/s", "CPU ms per GB", "MB", streamRun},
}

// sample is one measurement: one workload on one topology in one round.
type sample struct {
	Kind     string `json:"kind,omitempty"` // kindRate (empty), kindWarmup or kindCost
	Round    int    `json:"round"`          // within its kind, from 1
	Position int    `json:"position"`       // the topology's place in the round's order, from 1
	Workload string `json:"workload"`
	Topology string `json:"topology"`
	// Value is transactions per second, or Gbit/s received for TCP_STREAM.
	Value        float64 `json:"value"`
	Seconds      float64 `json:"seconds"`
	Transactions int64   `json:"transactions,omitempty"`
	Lost         int     `json:"lost,omitempty"`
	P50us        int     `json:"p50us,omitempty"`
	P99us        int     `json:"p99us,omitempty"`
	Bytes        int64   `json:"bytes,omitempty"`
	Retransmits  int     `json:"retransmits,omitempty"`
	// Busy and total jiffies of the whole machine (all CPUs, /proc/stat)
	// from just before the client started to just after it ended.
	BusyJiffies  uint64 `json:"busyJiffies"`
	TotalJiffies uint64 `json:"totalJiffies"`
	// CPUCost is busy CPU per transaction in µs, or per GB in ms.
	CPUCost float64 `json:"cpuCost"`
	// ProcCPUns is the run time of the client and the server in ns (see
	// measuredClient), ProcCost the same per transaction in µs, or per GB
	// in ms.
	ProcCPUns int64   `json:"procCPUns,omitempty"`
	ProcCost  float64 `json:"procCost,omitempty"`
	// Flows is what Hubble decoded during the measurement (visibility on).
	Flows *uint64 `json:"flows,omitempty"`
	// BPF is what the topology's programs did (cost rounds only).
	BPF *bpfSample `json:"bpf,omitempty"`
	// ForeignStatsRuns are program runs counted outside the cost rounds:
	// another process had the statistics on, and this rate carries their
	// overhead.
	ForeignStatsRuns uint64 `json:"foreignStatsRuns,omitempty"`
}

func (p plan) has(w string) bool { return slices.Contains(p.workloads, w) }

// perSample is the time a measurement takes besides its duration: the
// client's start and exit, the counters read around it (20 to 50 ms on
// the 2-core VM).
const perSample = 50 * time.Millisecond

// length is how long the measurements take, roughly (not the setup).
func (p plan) length() time.Duration {
	per := p.duration + perSample
	n := time.Duration(len(p.workloads))
	all := time.Duration(p.rounds+p.warmup) * n * time.Duration(len(p.topologies)) * per
	return all + time.Duration(p.costRounds)*n*time.Duration(len(p.setaTopologies()))*per
}

// setaTopologies are the Seta topologies of the plan, in its order: the
// ones with programs to count.
func (p plan) setaTopologies() []string {
	var ids []string
	for _, id := range p.topologies {
		if topologyKinds[id].seta {
			ids = append(ids, id)
		}
	}
	return ids
}

// Kinds of round (sample.Kind).
const (
	kindRate   = ""       // the rounds the rates and ratios come from
	kindWarmup = "warmup" // before them; recorded, not used
	kindCost   = "cost"   // BPF run statistics on, Seta topologies only
)

// roundOrder is the topology order of round r (from 0): as given in even
// rounds, reversed in odd ones, so that no topology always runs first or
// right after the same one, and a drift that is linear over two rounds
// favours neither topology of a pair.
func roundOrder(ids []string, r int) []string {
	o := slices.Clone(ids)
	if r%2 == 1 {
		slices.Reverse(o)
	}
	return o
}

// costSchedule is after which rate round (from 1) each of n cost rounds
// runs: spread evenly through the run, each in the middle of its share,
// so that the program cost sees the same machine as the rates.
func costSchedule(rounds, n int) []int {
	var at []int
	for k := 0; k < n; k++ {
		at = append(at, max(1, (2*k+1)*rounds/(2*n)))
	}
	return at
}

func measure(ctx context.Context, p plan) (*results, error) {
	res := newResults(p)
	logf("machine busy before the start: %.1f%% (2 s of /proc/stat)", 100*res.Machine.BusyBefore)
	topos, err := setup(ctx, p)
	if err != nil {
		return nil, err
	}
	for _, id := range p.topologies {
		res.Topologies = append(res.Topologies, topos[id])
	}
	logf("measuring for about %v", p.length().Round(time.Minute))
	// Warm-up rounds, recorded but not used: caches, neighbours, conntrack
	// and the servers' threads are warm, and a lab's agent has settled,
	// before the first sample that counts.
	for r := 0; r < p.warmup; r++ {
		if err := runRound(ctx, p, topos, res, kindWarmup, r, p.topologies); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	cost := costSchedule(p.rounds, p.costRounds)
	if len(p.setaTopologies()) == 0 {
		cost = nil
	}
	for r, k := 0, 0; r < p.rounds; r++ {
		if err := runRound(ctx, p, topos, res, kindRate, r, p.topologies); err != nil {
			return nil, err
		}
		for ; k < len(cost) && cost[k] == r+1; k++ {
			if err := costRound(ctx, p, topos, res, k); err != nil {
				return nil, err
			}
		}
	}
	res.summarize(p)
	return res, nil
}

// costRound is round k of the cost rounds: the Seta topologies with the
// kernel's BPF run statistics on.
func costRound(ctx context.Context, p plan, topos map[string]*topology, res *results, k int) error {
	stats, err := progstats.Enable()
	if err != nil {
		return err
	}
	defer stats.Close()
	return runRound(ctx, p, topos, res, kindCost, k, p.setaTopologies())
}

// runRound runs every workload on the topologies ids (round r of its kind,
// from 0) and adds the samples to res.
func runRound(ctx context.Context, p plan, topos map[string]*topology, res *results, kind string, r int, ids []string) error {
	n := map[string]int{kindRate: p.rounds, kindWarmup: p.warmup, kindCost: p.costRounds}[kind]
	order := roundOrder(ids, r)
	for _, w := range p.workloads {
		for i, id := range order {
			s, err := runSample(ctx, topos[id], w, p.duration, kind)
			if err != nil {
				return err
			}
			s.Round, s.Position = r+1, i+1
			res.Samples = append(res.Samples, s)
			name := "round"
			if kind != kindRate {
				name = kind + " round"
			}
			msg := fmt.Sprintf("%s %d/%d %-10s %-26s %12.1f %s, %.1f %s", name, r+1, n, w, topos[id].label(), s.Value, workloads[w].Unit, s.CPUCost, workloads[w].CPUUnit)
			if s.BPF != nil {
				u := s.units()
				msg += fmt.Sprintf("; tc programs %.0f ns, socket hooks %.0f ns per %s", float64(s.BPF.TC.RunNs)/u, float64(s.BPF.Sock.RunNs)/u, workloads[w].CostUnit)
			}
			logf("%s", msg)
		}
	}
	return nil
}

// runSample runs workload w on t for d; a failed measurement is tried once
// more (a shared machine can stall a UDP reply past its timeout), then it
// fails the run.
func runSample(ctx context.Context, t *topology, w string, d time.Duration, kind string) (sample, error) {
	s, err := sampleOnce(ctx, t, w, d, kind)
	if err != nil && ctx.Err() == nil {
		logf("%s on %s failed, trying once more: %v", w, t.label(), err)
		s, err = sampleOnce(ctx, t, w, d, kind)
	}
	if err != nil {
		return s, fmt.Errorf("%s on %s: %w", w, t.label(), err)
	}
	return s, nil
}

// sampleOnce is one measurement, with the counters of the topology's
// programs read around it.
func sampleOnce(ctx context.Context, t *topology, w string, d time.Duration, kind string) (sample, error) {
	b0, err := readBPF(t)
	if err != nil {
		return sample{}, err
	}
	s, err := workloads[w].run(ctx, t, d)
	if err != nil {
		return s, err
	}
	b1, err := readBPF(t)
	if err != nil {
		return s, err
	}
	b, err := b1.since(b0)
	if err != nil {
		return s, err
	}
	s.Workload, s.Topology, s.Kind = w, t.ID, kind
	switch {
	case kind == kindCost:
		if err := checkStatsOn(b); err != nil {
			return s, err
		}
		s.BPF = &b
	case b.runs() > 0:
		// Counted with our statistics off: another process had them on.
		s.ForeignStatsRuns = b.runs()
	}
	return s, nil
}

var perfRE = regexp.MustCompile(`perf: test=\w+ ok=(\d+) lost=(\d+) seconds=([0-9.]+) rate=[0-9.]+/s p50=(\d+)us p99=(\d+)us`)

// perfRun measures a request/response workload with seta-nettool perf.
func perfRun(test string, port int, timeout time.Duration) func(context.Context, *topology, time.Duration) (sample, error) {
	return func(ctx context.Context, t *topology, d time.Duration) (sample, error) {
		var s sample
		addr := net.JoinHostPort(t.ServerIP, strconv.Itoa(port))
		f0, hub := hubbleFlows(ctx, t)
		out, errs, u, err := measuredClient(ctx, t, test, d+30*time.Second, abs("seta-nettool"), "perf", addr, "--test", test,
			"--duration", d.String(), "--timeout", timeout.String())
		if err != nil {
			return s, fmt.Errorf("%v: %s%s", err, out, errs)
		}
		m := perfRE.FindStringSubmatch(out)
		if m == nil {
			return s, fmt.Errorf("unexpected perf output %q", out)
		}
		s.Transactions, _ = strconv.ParseInt(m[1], 10, 64)
		s.Lost, _ = strconv.Atoi(m[2])
		s.Seconds, _ = strconv.ParseFloat(m[3], 64)
		s.P50us, _ = strconv.Atoi(m[4])
		s.P99us, _ = strconv.Atoi(m[5])
		if s.Seconds <= 0 || s.Transactions == 0 {
			return s, fmt.Errorf("no transactions: %q", out)
		}
		s.Value = float64(s.Transactions) / s.Seconds
		s.setUsage(u, false)
		if hub {
			if f1, ok := hubbleFlows(ctx, t); ok {
				n := f1 - f0
				s.Flows = &n
			}
		}
		return s, nil
	}
}

// iperfResult is the part of iperf3 -J's output the harness reads.
type iperfResult struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			Retransmits int `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         int64   `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// streamRun measures TCP_STREAM with iperf3 (one stream, client to
// server, bounded by -t). A server still busy with the previous test is
// retried a few times.
func streamRun(ctx context.Context, t *topology, d time.Duration) (sample, error) {
	var s sample
	secs := strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
	for attempt := 1; ; attempt++ {
		f0, hub := hubbleFlows(ctx, t)
		out, errs, u, err := measuredClient(ctx, t, "TCP_STREAM", d+30*time.Second, "iperf3", "-c", t.ServerIP, "-p", strconv.Itoa(iperfPort), "-t", secs, "-J")
		if u.failed != nil {
			return s, u.failed
		}
		var r iperfResult
		jerr := json.Unmarshal([]byte(out), &r)
		if strings.Contains(r.Error, "busy") && attempt < 5 && ctx.Err() == nil {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		switch {
		case jerr != nil:
			return s, fmt.Errorf("iperf3: %v: %s%s", errors.Join(err, jerr), out, errs)
		case r.Error != "" || err != nil:
			return s, fmt.Errorf("iperf3: %v: %s %s", err, r.Error, errs)
		case r.End.SumReceived.Bytes == 0 || r.End.SumReceived.Seconds <= 0:
			return s, fmt.Errorf("iperf3 received nothing: %s", out)
		}
		s.Bytes, s.Seconds = r.End.SumReceived.Bytes, r.End.SumReceived.Seconds
		s.Retransmits = r.End.SumSent.Retransmits
		s.Value = r.End.SumReceived.BitsPerSecond / 1e9
		s.setUsage(u, true)
		if hub {
			if f1, ok := hubbleFlows(ctx, t); ok {
				n := f1 - f0
				s.Flows = &n
			}
		}
		return s, nil
	}
}

// usage is the CPU time a measurement took.
type usage struct {
	busy, total uint64        // the machine's jiffies
	procs       time.Duration // run time of the client and the server
	// failed is an error reading the counters (as opposed to the
	// client's own failure, which its output explains).
	failed error
}

// measuredClient runs the client of workload w (runClient) and reads the
// CPU time it took: the machine's busy jiffies, and the run time of the
// client and of the server. The run time of the two is what the kernel
// charged to their threads (ns precision): their system calls and, as
// this kernel accounts interrupt time to whatever it interrupts (no
// CONFIG_IRQ_TIME_ACCOUNTING), the packet processing done in their
// context; not the agents', nor any other process's, nor time stolen by
// the hypervisor. Unlike a rate or the machine's jiffies it does not
// change when something else runs on the benchmark's CPU, which makes it
// the steady measure of the work a transaction costs.
func measuredClient(ctx context.Context, t *topology, w string, limit time.Duration, argv ...string) (stdout, stderr string, u usage, err error) {
	pid := t.serverPID(w)
	s0, serr := procCPU(pid)
	c0, cerr := readCPU()
	if u.failed = errors.Join(serr, cerr); u.failed != nil {
		return "", "", u, u.failed
	}
	stdout, stderr, client, err := runClient(ctx, t, w, limit, argv...)
	c1, cerr := readCPU()
	s1, serr := procCPU(pid)
	if u.failed = errors.Join(serr, cerr); u.failed != nil {
		return stdout, stderr, u, errors.Join(err, u.failed)
	}
	u.busy, u.total, u.procs = c1.busy-c0.busy, c1.total-c0.total, client+s1-s0
	return stdout, stderr, u, err
}

// setUsage records u and the costs per unit of work: per transaction, or
// per GB received when perGB.
func (s *sample) setUsage(u usage, perGB bool) {
	s.BusyJiffies, s.TotalJiffies, s.ProcCPUns = u.busy, u.total, u.procs.Nanoseconds()
	if perGB {
		gb := float64(s.Bytes) / 1e9
		s.CPUCost = float64(s.BusyJiffies) / userHZ * 1e3 / gb
		s.ProcCost = float64(s.ProcCPUns) / 1e6 / gb
		return
	}
	s.CPUCost = float64(s.BusyJiffies) / userHZ * 1e6 / float64(s.Transactions)
	s.ProcCost = float64(s.ProcCPUns) / 1e3 / float64(s.Transactions)
}

// procCPU is the CPU time process pid has run, all its threads, those
// that ended included: the clock_gettime of its CPU clock
// (CPUCLOCK_SCHED, as clock_getcpuclockid makes it), in ns.
func procCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no server process (pid %d)", pid)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(int32((^pid)<<3|2), &ts); err != nil {
		return 0, fmt.Errorf("CPU time of process %d: %w", pid, err)
	}
	return time.Duration(ts.Nano()), nil
}

// cpuTimes are the machine's jiffies from the first line of /proc/stat.
type cpuTimes struct{ busy, total uint64 }

func readCPU() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPU(string(b))
}

// parseCPU reads the aggregate "cpu" line: user nice system idle iowait irq
// softirq steal (guest time is already in user). Busy is everything but
// idle and iowait; softirq, where most packet processing runs, is busy.
func parseCPU(stat string) (cpuTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %q: %v", line, err)
		}
		v[i] = n
	}
	var t cpuTimes
	for i, n := range v {
		t.total += n
		if i != 3 && i != 4 {
			t.busy += n
		}
	}
	return t, nil
}

// busyFraction is the share of the machine's CPU time that is busy over d.
func busyFraction(d time.Duration) float64 {
	a, err := readCPU()
	if err != nil {
		return math.NaN()
	}
	time.Sleep(d)
	b, err := readCPU()
	if err != nil || b.total == a.total {
		return math.NaN()
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total)
}
