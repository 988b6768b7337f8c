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
)

// userHZ is the unit of /proc/stat (USER_HZ, 100 on every Linux
// architecture the project runs on).
const userHZ = 100

// workload is one of the benchmark's workloads.
type workload struct {
	Unit    string // of a sample's value
	CPUUnit string // of a sample's CPU cost
	run     func(ctx context.Context, t *topology, d time.Duration) (sample, error)
}

var workloads = map[string]workload{
	"TCP_RR":     {"transactions/s", "µs CPU per transaction", perfRun("TCP_RR", perfTCPPort, time.Second)},
	"TCP_CRR":    {"transactions/s", "µs CPU per transaction", perfRun("TCP_CRR", perfTCPPort, time.Second)},
	"UDP_RR":     {"transactions/s", "µs CPU per transaction", perfRun("UDP_RR", perfUDPPort, 200*time.Millisecond)},
	"TCP_STREAM": {"Gbit/s", "CPU ms per GB", streamRun},
}

// sample is one measurement: one workload on one topology in one round.
type sample struct {
	Round    int    `json:"round"`
	Position int    `json:"position"` // the topology's place in the round's order, from 1
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
	// Flows is what Hubble decoded during the measurement (visibility on).
	Flows *uint64 `json:"flows,omitempty"`
}

func (p plan) has(w string) bool { return slices.Contains(p.workloads, w) }

// estimate is how long the measurements take, roughly.
func (p plan) estimate() time.Duration {
	per := p.duration + time.Second
	n := time.Duration(len(p.workloads) * len(p.topologies))
	return time.Duration(p.rounds)*n*per + n*2*time.Second + time.Minute
}

// roundOrder is the topology order of round r (from 0): as given in even
// rounds, reversed in odd ones, so that no topology always runs first or
// right after the same one.
func roundOrder(ids []string, r int) []string {
	o := slices.Clone(ids)
	if r%2 == 1 {
		slices.Reverse(o)
	}
	return o
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
	// One short unrecorded run of everything: caches, neighbours,
	// conntrack and the servers' threads are warm before the first
	// recorded sample.
	logf("warm-up")
	for _, w := range p.workloads {
		for _, id := range p.topologies {
			if _, err := runSample(ctx, topos[id], w, time.Second); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	for r := 0; r < p.rounds; r++ {
		order := roundOrder(p.topologies, r)
		for _, w := range p.workloads {
			for i, id := range order {
				s, err := runSample(ctx, topos[id], w, p.duration)
				if err != nil {
					return nil, err
				}
				s.Round, s.Position = r+1, i+1
				res.Samples = append(res.Samples, s)
				logf("round %d/%d %-10s %-26s %12.1f %s, %.1f %s", r+1, p.rounds, w, topos[id].label(), s.Value, workloads[w].Unit, s.CPUCost, workloads[w].CPUUnit)
			}
		}
	}
	res.summarize(p)
	return res, nil
}

// runSample runs workload w on t for d; a failed measurement is tried once
// more (a shared machine can stall a UDP reply past its timeout), then it
// fails the run.
func runSample(ctx context.Context, t *topology, w string, d time.Duration) (sample, error) {
	s, err := workloads[w].run(ctx, t, d)
	if err != nil && ctx.Err() == nil {
		logf("%s on %s failed, trying once more: %v", w, t.label(), err)
		s, err = workloads[w].run(ctx, t, d)
	}
	if err != nil {
		return s, fmt.Errorf("%s on %s: %w", w, t.label(), err)
	}
	s.Workload, s.Topology = w, t.ID
	return s, nil
}

var perfRE = regexp.MustCompile(`perf: test=\w+ ok=(\d+) lost=(\d+) seconds=([0-9.]+) rate=[0-9.]+/s p50=(\d+)us p99=(\d+)us`)

// perfRun measures a request/response workload with seta-nettool perf.
func perfRun(test string, port int, timeout time.Duration) func(context.Context, *topology, time.Duration) (sample, error) {
	return func(ctx context.Context, t *topology, d time.Duration) (sample, error) {
		var s sample
		addr := net.JoinHostPort(t.ServerIP, strconv.Itoa(port))
		f0, hub := hubbleFlows(ctx, t)
		c0, err := readCPU()
		if err != nil {
			return s, err
		}
		out, errs, err := runClient(ctx, t, d+30*time.Second, abs("seta-nettool"), "perf", addr, "--test", test,
			"--duration", d.String(), "--timeout", timeout.String())
		c1, cerr := readCPU()
		if err != nil || cerr != nil {
			return s, fmt.Errorf("%v: %s%s", errors.Join(err, cerr), out, errs)
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
		s.BusyJiffies, s.TotalJiffies = c1.busy-c0.busy, c1.total-c0.total
		s.CPUCost = float64(s.BusyJiffies) / userHZ * 1e6 / float64(s.Transactions)
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
		c0, err := readCPU()
		if err != nil {
			return s, err
		}
		out, errs, err := runClient(ctx, t, d+30*time.Second, "iperf3", "-c", t.ServerIP, "-p", strconv.Itoa(iperfPort), "-t", secs, "-J")
		c1, cerr := readCPU()
		if cerr != nil {
			return s, cerr
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
		s.BusyJiffies, s.TotalJiffies = c1.busy-c0.busy, c1.total-c0.total
		s.CPUCost = float64(s.BusyJiffies) / userHZ * 1e3 / (float64(s.Bytes) / 1e9)
		if hub {
			if f1, ok := hubbleFlows(ctx, t); ok {
				n := f1 - f0
				s.Flows = &n
			}
		}
		return s, nil
	}
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
