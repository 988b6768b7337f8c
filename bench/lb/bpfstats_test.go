package main

import (
	"strings"
	"testing"
)

func TestCheckRuns(t *testing.T) {
	d := map[string]progRuns{progConnect4: {Runs: 500, RunNs: 1_000_000}}
	if err := checkRuns(d, 500); err != nil {
		t.Errorf("checkRuns: %v", err)
	}
	if err := checkRuns(d, 501); err == nil || !strings.Contains(err.Error(), "statistics turned off") {
		t.Errorf("checkRuns with fewer runs than connections: %v, want an error", err)
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
