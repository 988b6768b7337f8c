package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The kernel's run statistics of BPF programs (run count and run time per
// program) give Seta's datapath cost per connection without the noise of
// the connection rate: they count only the time spent inside the
// programs. They cost two clock reads per program run (tens of ns) for
// every program on the machine, so the bench keeps them on only for its
// run: through BPF_ENABLE_STATS, whose file descriptor keeps them on while
// it is open, so even a bench that is killed leaves kernel.bpf_stats_enabled
// as it was.

// The programs the connection-rate table reports: the socket LB's
// connect() hook, and the tc program on every pod's host-side veth
// (every packet a pod sends).
const (
	progConnect4      = "cil_sock4_connect"
	progFromContainer = "cil_from_container"
)

// enableBPFStats turns the run statistics on until the returned closer is
// closed (or the process ends).
func enableBPFStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enable BPF run statistics: %w", err)
	}
	return c, nil
}

// progRuns is how often programs of one name ran, and for how long in all.
type progRuns struct {
	Runs  uint64
	RunNs uint64
}

// NsPerRun is the mean time of one run; 0 without runs.
func (p progRuns) NsPerRun() float64 {
	if p.Runs == 0 {
		return 0
	}
	return float64(p.RunNs) / float64(p.Runs)
}

// progSnapshot is the run statistics of a lab node's programs by program
// ID: an agent restart replaces programs, so a measurement compares the
// same program before and after.
type progSnapshot map[ebpf.ProgramID]progStat

type progStat struct {
	Name string
	progRuns
}

// readProgStats reads the statistics of the programs behind the links the
// node's agent pinned under its bpffs root: the socket programs' cgroup
// links (sock-links) and the tc links of the pods' veths (links). One
// program attached at many veths is counted once.
func readProgStats(bpfRoot string) (progSnapshot, error) {
	snap := progSnapshot{}
	for _, dir := range []string{"sock-links", "links"} {
		ents, err := os.ReadDir(filepath.Join(bpfRoot, dir))
		if err != nil {
			return nil, fmt.Errorf("bpf stats: %w", err)
		}
		for _, e := range ents {
			id, err := pinnedLinkProgram(filepath.Join(bpfRoot, dir, e.Name()))
			if err != nil {
				return nil, err
			}
			if _, ok := snap[id]; ok {
				continue
			}
			if snap[id], err = programRuns(id); err != nil {
				return nil, err
			}
		}
	}
	return snap, nil
}

func pinnedLinkProgram(pin string) (ebpf.ProgramID, error) {
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		return 0, fmt.Errorf("bpf stats: open link %s: %w", pin, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return 0, fmt.Errorf("bpf stats: link %s: %w", pin, err)
	}
	return info.Program, nil
}

func programRuns(id ebpf.ProgramID) (progStat, error) {
	var out progStat
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return out, fmt.Errorf("bpf stats: program %d: %w", id, err)
	}
	defer p.Close()
	// Info recovers the full name from BTF where the kernel's is cut to
	// 15 characters.
	info, err := p.Info()
	if err != nil {
		return out, fmt.Errorf("bpf stats: program %d: %w", id, err)
	}
	st, err := p.Stats()
	if err != nil {
		return out, fmt.Errorf("bpf stats: program %d: %w", id, err)
	}
	out.Name = info.Name
	out.Runs, out.RunNs = st.RunCount, uint64(st.Runtime.Nanoseconds())
	return out, nil
}

// since is what the programs did from before to now, by program name.
func (now progSnapshot) since(before progSnapshot) (map[string]progRuns, error) {
	out := map[string]progRuns{}
	for id, b := range before {
		a, ok := now[id]
		if !ok {
			return nil, fmt.Errorf("bpf stats: program %s (ID %d) was replaced during the measurement", b.Name, id)
		}
		r := out[a.Name]
		r.Runs += a.Runs - b.Runs
		r.RunNs += a.RunNs - b.RunNs
		out[a.Name] = r
	}
	return out, nil
}

// checkRuns catches statistics that stopped counting (the sysctl turned
// off by someone else): every connection runs the connect hook.
func checkRuns(runs map[string]progRuns, conns int) error {
	if got := runs[progConnect4].Runs; got < uint64(conns) {
		return fmt.Errorf("bpf stats: %s ran %d times for %d connections; were the statistics turned off?", progConnect4, got, conns)
	}
	return nil
}
