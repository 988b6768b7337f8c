// Package progstats reads the kernel's run statistics of BPF programs (how
// often each ran and for how long in all), for benchmarks that want the
// datapath's own cost without the noise of a rate: the time spent inside
// the programs only.
//
// The kernel keeps these statistics only while they are enabled, at the
// price of two clock reads per program run for every program on the
// machine, so Enable keeps them on through BPF_ENABLE_STATS: on while its
// file descriptor is open, off again however the process ends, without
// touching kernel.bpf_stats_enabled.
package progstats

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Enable turns the run statistics on until the returned closer is closed
// (or the process ends).
func Enable() (io.Closer, error) {
	c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enable BPF run statistics: %w", err)
	}
	return c, nil
}

// Runs is how often programs ran, and for how long in all.
type Runs struct {
	Runs  uint64
	RunNs uint64
}

// NsPerRun is the mean time of one run; 0 without runs.
func (r Runs) NsPerRun() float64 {
	if r.Runs == 0 {
		return 0
	}
	return float64(r.RunNs) / float64(r.Runs)
}

// Stat is one program's statistics.
type Stat struct {
	Name  string
	Total Runs
}

// Snapshot is the statistics of programs by program ID: a restarted agent
// replaces its programs, so a measurement compares the same program before
// and after.
type Snapshot map[uint32]Stat

// Read reads the statistics of the programs behind the links pinned in the
// directories dirs below bpfRoot (e.g. "sock-links" and "links" of an
// agent's bpffs root). One program attached through many links is counted
// once.
func Read(bpfRoot string, dirs ...string) (Snapshot, error) {
	snap := Snapshot{}
	for _, dir := range dirs {
		ents, err := os.ReadDir(filepath.Join(bpfRoot, dir))
		if err != nil {
			return nil, fmt.Errorf("bpf stats: %w", err)
		}
		for _, e := range ents {
			id, err := pinnedLinkProgram(filepath.Join(bpfRoot, dir, e.Name()))
			if err != nil {
				return nil, err
			}
			if _, ok := snap[uint32(id)]; ok {
				continue
			}
			if snap[uint32(id)], err = programStat(id); err != nil {
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

func programStat(id ebpf.ProgramID) (Stat, error) {
	var out Stat
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
	out.Total = Runs{Runs: st.RunCount, RunNs: uint64(st.Runtime.Nanoseconds())}
	return out, nil
}

// Since is what the programs did from before to now, by program name
// (programs of one name are added up). A program of before that is gone
// now is an error: it was replaced during the measurement.
func (now Snapshot) Since(before Snapshot) (map[string]Runs, error) {
	out := map[string]Runs{}
	for id, b := range before {
		a, ok := now[id]
		if !ok {
			return nil, fmt.Errorf("bpf stats: program %s (ID %d) was replaced during the measurement", b.Name, id)
		}
		r := out[a.Name]
		r.Runs += a.Total.Runs - b.Total.Runs
		r.RunNs += a.Total.RunNs - b.Total.RunNs
		out[a.Name] = r
	}
	return out, nil
}
