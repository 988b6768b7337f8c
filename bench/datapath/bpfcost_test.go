package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/seta-net/seta/pkg/datapath/progstats"
)

func TestGroupSince(t *testing.T) {
	before := progstats.Snapshot{
		1: {Name: "cil_from_container", Total: progstats.Runs{Runs: 100, RunNs: 50_000}},
		2: {Name: "cil_from_host", Total: progstats.Runs{Runs: 7, RunNs: 700}},
	}
	now := progstats.Snapshot{
		1: {Name: "cil_from_container", Total: progstats.Runs{Runs: 2100, RunNs: 1_050_000}},
		2: {Name: "cil_from_host", Total: progstats.Runs{Runs: 7, RunNs: 700}},
	}
	g, err := groupSince(now, before)
	if err != nil {
		t.Fatal(err)
	}
	if g.Runs != 2000 || g.RunNs != 1_000_000 {
		t.Errorf("group %+v, want 2000 runs, 1000000 ns", g)
	}
	// A program that did not run is left out of the breakdown.
	if len(g.Programs) != 1 || g.Programs["cil_from_container"] != (progRuns{2000, 1_000_000}) {
		t.Errorf("programs %+v", g.Programs)
	}
	delete(now, 2)
	if _, err := groupSince(now, before); err == nil {
		t.Error("a program replaced during the measurement went unnoticed")
	}
	if err := checkStatsOn(bpfSample{}); err == nil {
		t.Error("a cost sample without tc runs passed")
	}
	if err := checkStatsOn(bpfSample{TC: g}); err != nil {
		t.Error(err)
	}
}

// costSample is a cost round's sample: n transactions (or MB of
// TCP_STREAM), tc and socket programs as given, busy jiffies.
func costSample(w string, round int, n float64, busy uint64, tc, sock map[string]progRuns) sample {
	s := sample{Kind: kindCost, Round: round, Workload: w, Topology: "c", BusyJiffies: busy, BPF: &bpfSample{}}
	if w == "TCP_STREAM" {
		s.Bytes = int64(n * 1e6)
	} else {
		s.Transactions = int64(n)
	}
	for _, in := range []struct {
		progs map[string]progRuns
		g     *progGroup
	}{{tc, &s.BPF.TC}, {sock, &s.BPF.Sock}} {
		in.g.Programs = in.progs
		for _, r := range in.progs {
			in.g.Runs += r.Runs
			in.g.RunNs += r.RunNs
		}
	}
	return s
}

func TestSummarizeBPF(t *testing.T) {
	samples := []sample{
		// 1000 transactions: 2 tc runs of 500 ns each, 2 socket runs of
		// 150 ns; 2 jiffies (20 ms) busy, 20 µs per transaction.
		costSample("UDP_RR", 1, 1000, 2, map[string]progRuns{"cil_from_container": {2000, 1_000_000}},
			map[string]progRuns{"cil_sock4_sendmsg": {1000, 150_000}, "cil_sock6_recvmsg": {1000, 150_000}, "cil_sock4_connect": {1, 2000}}),
		costSample("UDP_RR", 2, 1000, 2, map[string]progRuns{"cil_from_container": {2000, 1_200_000}},
			map[string]progRuns{"cil_sock4_sendmsg": {1000, 150_000}, "cil_sock6_recvmsg": {1000, 150_000}}),
		costSample("UDP_RR", 3, 1000, 2, map[string]progRuns{"cil_from_container": {2000, 900_000}},
			map[string]progRuns{"cil_sock4_sendmsg": {1000, 150_000}, "cil_sock6_recvmsg": {1000, 150_000}, "cil_sock4_connect": {1, 2000}}),
		// A rate sample is not a cost sample.
		{Kind: kindRate, Workload: "UDP_RR", Topology: "c", Transactions: 1000},
	}
	var cost []sample
	for _, s := range samples {
		if s.Kind == kindCost {
			cost = append(cost, s)
		}
	}
	b, ok := summarizeBPF("UDP_RR", "c", cost)
	if !ok || b.Rounds != 3 {
		t.Fatalf("summary %+v, %v", b, ok)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	if !near(b.TC.NsPerUnit, 1000) || !near(b.TC.RunsPerUnit, 2) || !near(b.TC.NsPerRun, 500) {
		t.Errorf("tc %+v, want 1000 ns = 2 × 500 ns per transaction", b.TC)
	}
	if b.TCRange != [2]float64{900, 1200} {
		t.Errorf("tc range %v, want 900–1200", b.TCRange)
	}
	// The connect of the one connection: 2 ns per transaction in two
	// rounds, 0 in the third; median 2, listed (above 0.5 ns).
	if !near(b.Sock.NsPerUnit, 302) || !near(b.Sock.RunsPerUnit, 2.001) {
		t.Errorf("socket hooks %+v, want 302 ns, 2.001 runs per transaction", b.Sock)
	}
	if !near(b.TCShare, 0.05) {
		t.Errorf("tc share %v, want 0.05 (1 µs of 20 µs)", b.TCShare)
	}
	names := make([]string, 0, len(b.Programs))
	for n := range b.Programs {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"cil_from_container", "cil_sock4_connect", "cil_sock4_sendmsg", "cil_sock6_recvmsg"}) || b.Programs["cil_sock4_connect"] != 2 {
		t.Errorf("programs %v", b.Programs)
	}
	if got := programList(b.Programs); !strings.HasPrefix(got, "`cil_from_container` 1000, `cil_sock4_sendmsg` 150, `cil_sock6_recvmsg` 150, `cil_sock4_connect` 2.00") {
		t.Errorf("programList: %s", got)
	}

	// TCP_STREAM counts per MB; a program below 0.5 ns per MB is left
	// out of the breakdown.
	st, ok := summarizeBPF("TCP_STREAM", "c", []sample{costSample("TCP_STREAM", 1, 2000, 100,
		map[string]progRuns{"cil_from_container": {70_000, 28_000_000}}, map[string]progRuns{"cil_sock4_connect": {1, 400}})})
	if !ok || !near(st.TC.NsPerUnit, 14_000) || !near(st.TC.RunsPerUnit, 35) || len(st.Programs) != 1 {
		t.Errorf("stream %+v", st)
	}
	if _, ok := summarizeBPF("TCP_RR", "c", nil); ok {
		t.Error("a summary without cost samples")
	}
}

func TestProgDirs(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"links", "sock-links"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := progDirs(root, []string{"links", "node-links", "sock-links"})
	if err != nil || !slices.Equal(got, []string{"links", "sock-links"}) {
		t.Errorf("progDirs: %v, %v; want links and sock-links (node-links is missing)", got, err)
	}
	os.WriteFile(filepath.Join(root, "node-links"), nil, 0o644)
	if _, err := progDirs(root, []string{"node-links"}); err == nil {
		t.Error("a file taken for a link directory")
	}
	// A topology without programs reads nothing.
	if s, err := readBPF(&topology{}); err != nil || s.tc != nil || s.sock != nil {
		t.Errorf("readBPF without programs: %+v, %v", s, err)
	}
}

// procCPU reads a process's CPU clock, all threads, in ns.
func TestProcCPU(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i % 7
	}
	after, err := procCPU(os.Getpid())
	if err != nil || after <= before || x == 0 {
		t.Errorf("CPU time %v, then %v (%v) after a busy loop", before, after, err)
	}
	if _, err := procCPU(0); err == nil {
		t.Error("procCPU(0) succeeded")
	}
	// PIDs are below 2^22 on Linux.
	if _, err := procCPU(1 << 23); err == nil {
		t.Error("procCPU of a process that does not exist succeeded")
	}
}

// The share of the tc programs is against the client's and server's CPU
// time when the sample has it.
func TestTCShareOfProcessCPU(t *testing.T) {
	s := costSample("TCP_RR", 1, 1000, 90, map[string]progRuns{"cil_from_container": {2000, 1_000_000}}, nil)
	s.ProcCPUns = 25_000_000 // 25 µs per transaction
	b, ok := summarizeBPF("TCP_RR", "c", []sample{s})
	if !ok || math.Abs(b.TCShare-0.04) > 1e-9 {
		t.Errorf("share %v, want 0.04 (1 µs of 25 µs)", b.TCShare)
	}
}
