package progstats

import (
	"strings"
	"testing"
)

func TestSince(t *testing.T) {
	before := Snapshot{
		7: {Name: "a", Total: Runs{Runs: 10, RunNs: 1000}},
		8: {Name: "b", Total: Runs{Runs: 100, RunNs: 50_000}},
		9: {Name: "b", Total: Runs{Runs: 0, RunNs: 0}},
	}
	now := Snapshot{
		7:  {Name: "a", Total: Runs{Runs: 510, RunNs: 1_001_000}},
		8:  {Name: "b", Total: Runs{Runs: 5100, RunNs: 4_550_000}},
		9:  {Name: "b", Total: Runs{Runs: 100, RunNs: 100_000}},
		10: {Name: "new", Total: Runs{Runs: 3, RunNs: 3}},
	}
	d, err := now.Since(before)
	if err != nil {
		t.Fatal(err)
	}
	if got := d["a"]; got.Runs != 500 || got.NsPerRun() != 2000 {
		t.Errorf("a: %+v, %v ns/run; want 500 runs, 2000 ns/run", got, got.NsPerRun())
	}
	// Programs of one name add up.
	if got := d["b"]; got.Runs != 5100 || got.RunNs != 4_600_000 {
		t.Errorf("b: %+v; want 5100 runs, 4600000 ns", got)
	}
	if _, ok := d["new"]; ok {
		t.Errorf("a program that appeared during the measurement was counted: %+v", d)
	}
	if (Runs{}).NsPerRun() != 0 {
		t.Error("NsPerRun without runs is not 0")
	}
	delete(now, 7)
	if _, err := now.Since(before); err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("Since with a replaced program: %v, want an error", err)
	}
}
