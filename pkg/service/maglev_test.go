package service

import (
	"fmt"
	"slices"
	"testing"

	lb "github.com/seta-net/seta/pkg/loadbalancer"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.%d:8080", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	return out
}

// Every backend gets M/N slots, rounded either way: the backends take
// turns, one slot each, until the table is full.
func TestMaglevEvenShares(t *testing.T) {
	const m = lb.MaglevTableSize
	for _, n := range []int{1, 2, 3, 7, 10, 100, 1000} {
		table := MaglevTable(names(n), m)
		if len(table) != m {
			t.Fatalf("N=%d: %d slots", n, len(table))
		}
		counts := make([]int, n)
		for _, b := range table {
			counts[b]++
		}
		lo, hi := slices.Min(counts), slices.Max(counts)
		if lo < m/n || hi > (m+n-1)/n {
			t.Errorf("N=%d: shares from %d to %d, want %d..%d", n, lo, hi, m/n, (m+n-1)/n)
		}
	}
}

// Removing one backend of N moves the slots it had, and only a small part
// of the others' (the paper's "minimal disruption"): measured, then held
// to less than 2/N of the survivors' slots. Disruption grows with N/M; the
// bound holds where the paper sizes tables, M around 100*N or more (with
// M = 16381, N up to ~160).
func TestMaglevMinimalDisruption(t *testing.T) {
	const m = lb.MaglevTableSize
	for _, n := range []int{5, 10, 50, 100} {
		all := names(n)
		before := MaglevTable(all, m)
		for _, gone := range []int{0, n / 2, n - 1} {
			rest := slices.Delete(slices.Clone(all), gone, gone+1)
			after := MaglevTable(rest, m)
			survivors, moved := 0, 0
			for slot, b := range before {
				if b == gone {
					continue
				}
				survivors++
				if rest[after[slot]] != all[b] {
					moved++
				}
			}
			frac := float64(moved) / float64(survivors)
			t.Logf("N=%d, removing backend %d: %.4f of the survivors' slots moved (1/N = %.4f)", n, gone, frac, 1/float64(n))
			if frac >= 2/float64(n) {
				t.Errorf("N=%d, removing backend %d: %.4f of the survivors' slots moved, want < 2/N = %.4f", n, gone, frac, 2/float64(n))
			}
		}
	}
}

func TestMaglevDeterministic(t *testing.T) {
	ns := names(20)
	a := MaglevTable(ns, lb.MaglevTableSize)
	rev := slices.Clone(ns)
	slices.Reverse(rev)
	b := MaglevTable(rev, lb.MaglevTableSize)
	for i := range a {
		if ns[a[i]] != rev[b[i]] {
			t.Fatalf("slot %d: %s vs %s", i, ns[a[i]], rev[b[i]])
		}
	}
	if MaglevTable(nil, lb.MaglevTableSize) != nil {
		t.Error("a table without backends")
	}
	// A fixed hash: the same table on every node and in every version.
	if h := maglevHash(maglevSeedOffset, "10.0.0.1:80"); h != maglevHash(maglevSeedOffset, "10.0.0.1:80") || h == maglevHash(maglevSeedSkip, "10.0.0.1:80") {
		t.Error("hashes are not fixed and independent")
	}
}

func BenchmarkMaglevTable(b *testing.B) {
	ns := names(100)
	for b.Loop() {
		MaglevTable(ns, lb.MaglevTableSize)
	}
}
