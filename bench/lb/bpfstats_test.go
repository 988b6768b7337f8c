package main

import (
	"strings"
	"testing"
)

func TestProgSnapshotSince(t *testing.T) {
	before := progSnapshot{
		7: {Name: progConnect4, progRuns: progRuns{Runs: 10, RunNs: 1000}},
		8: {Name: progFromContainer, progRuns: progRuns{Runs: 100, RunNs: 50_000}},
	}
	now := progSnapshot{
		7: {Name: progConnect4, progRuns: progRuns{Runs: 510, RunNs: 1_001_000}},
		8: {Name: progFromContainer, progRuns: progRuns{Runs: 5100, RunNs: 4_550_000}},
		9: {Name: "cil_new_since", progRuns: progRuns{Runs: 3, RunNs: 3}},
	}
	d, err := now.since(before)
	if err != nil {
		t.Fatal(err)
	}
	if got := d[progConnect4]; got.Runs != 500 || got.NsPerRun() != 2000 {
		t.Errorf("connect4: %+v, %v ns/run; want 500 runs, 2000 ns/run", got, got.NsPerRun())
	}
	if got := d[progFromContainer]; got.Runs != 5000 || got.NsPerRun() != 900 {
		t.Errorf("from_container: %+v, %v ns/run; want 5000 runs, 900 ns/run", got, got.NsPerRun())
	}
	if err := checkRuns(d, 500); err != nil {
		t.Errorf("checkRuns: %v", err)
	}
	if err := checkRuns(d, 501); err == nil || !strings.Contains(err.Error(), "statistics turned off") {
		t.Errorf("checkRuns with fewer runs than connections: %v, want an error", err)
	}
	delete(now, 7)
	if _, err := now.since(before); err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("since with a replaced program: %v, want an error", err)
	}
}

func TestBPFNsPerRun(t *testing.T) {
	cs := []crrResult{
		{BPF: map[string]progRuns{progConnect4: {Runs: 100, RunNs: 100_000}}},
		{BPF: map[string]progRuns{progConnect4: {Runs: 300, RunNs: 500_000}}},
	}
	if got := bpfNsPerRun(cs, progConnect4); got != "1500" {
		t.Errorf("pooled ns/run = %s, want 1500", got)
	}
	if got := bpfNsPerRun(cs, progFromContainer); got != "—" {
		t.Errorf("ns/run without runs = %s, want —", got)
	}
}
