package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestCIRank(t *testing.T) {
	// k from the binomial distribution with p = 1/2: P(X ≤ k-1) ≤ 0.025
	// < P(X ≤ k). n=6: P(X ≤ 0) = 1/64; n=30: P(X ≤ 9) = 0.021,
	// P(X ≤ 10) = 0.049; n=100: P(X ≤ 39) = 0.018, P(X ≤ 40) = 0.028.
	for _, tc := range []struct{ n, k int }{{1, 0}, {5, 0}, {6, 1}, {7, 1}, {8, 1}, {9, 2}, {30, 10}, {100, 40}, {200, 86}} {
		if got := ciRank(tc.n, 0.95); got != tc.k {
			t.Errorf("ciRank(%d) = %d, want %d", tc.n, got, tc.k)
		}
	}
}

func TestMedianCI(t *testing.T) {
	v := make([]float64, 30)
	for i := range v {
		v[i] = float64(i + 1)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(v), func(i, j int) { v[i], v[j] = v[j], v[i] })
	in := slices.Clone(v)
	lo, hi, ok := medianCI(v, 0.95)
	if !ok || lo != 10 || hi != 21 {
		t.Errorf("1..30: [%v, %v] %v, want [10, 21]", lo, hi, ok)
	}
	if !slices.Equal(v, in) {
		t.Error("medianCI sorted its input")
	}
	if _, _, ok := medianCI([]float64{1, 2, 3, 4, 5}, 0.95); ok {
		t.Error("an interval from 5 values")
	}
}

// The interval must cover the true median about as often as it claims,
// also for a skewed distribution (rates with occasional slow rounds): 30
// rounds of a log-normal ratio, 4000 times.
func TestMedianCICoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const trials, n = 4000, 30
	trueMedian := 0.9 // of 0.9·exp(N(0, 0.1))
	covered := 0
	v := make([]float64, n)
	for range trials {
		for i := range v {
			v[i] = trueMedian * math.Exp(0.1*rng.NormFloat64())
		}
		if lo, hi, _ := medianCI(v, 0.95); lo <= trueMedian && trueMedian <= hi {
			covered++
		}
	}
	// Exact coverage at n=30, k=10 is 1-2·0.0214 = 0.957.
	if got := float64(covered) / trials; got < 0.945 || got > 0.97 {
		t.Errorf("coverage %.3f, want about 0.957", got)
	}
}

func TestSplitParts(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	got := splitParts(v, 3)
	want := [][]float64{{1, 2, 3}, {4, 5, 6}, {7, 8, 9, 10}}
	if len(got) != len(want) {
		t.Fatalf("splitParts: %v", got)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("part %d: %v, want %v", i, got[i], want[i])
		}
	}
	if got := splitParts([]float64{1, 2}, 3); len(got) != 2 || got[0][0] != 1 || got[1][0] != 2 {
		t.Errorf("2 values in 3 parts: %v", got)
	}
	if got := partRanges(30, 3); got != "1–10, 11–20, 21–30" {
		t.Errorf("partRanges(30, 3) = %q", got)
	}
}

func TestEstimateDecides(t *testing.T) {
	atLeast := func(b float64) func(float64) bool { return func(v float64) bool { return v >= b } }
	// 30 rounds: ratios 0.89, 0.90 and 0.91, ten of each; the 10th and
	// 21st smallest bound the median.
	lo, mid, hi := 0.89, 0.90, 0.91
	var v []float64
	for i := range 30 {
		v = append(v, []float64{lo, mid, hi}[i%3])
	}
	e := estimateOf(v, 3)
	if !e.CI || e.N != 30 || !slices.Equal(e.Parts, []float64{mid, mid, mid}) || e.Median != mid || e.Lo != lo || e.Hi != hi {
		t.Fatalf("estimate %+v", e)
	}
	if e.side(atLeast(0.95)) != -1 || e.side(atLeast(0.85)) != 1 {
		t.Errorf("0.90 [0.89, 0.91]: sides %d and %d, want -1 and 1", e.side(atLeast(0.95)), e.side(atLeast(0.85)))
	}
	// A bound inside the interval is not decided; one at its edge is.
	if e.side(atLeast(mid)) != 0 || e.side(atLeast(lo)) != 1 {
		t.Errorf("bound inside and at the edge: %d %d, want 0 and 1", e.side(atLeast(mid)), e.side(atLeast(lo)))
	}
	wide := estimateOf([]float64{0.8, 1.0, 0.85, 0.95, 0.9, 0.92, 0.88, 0.97, 0.83, 0.91}, 1)
	if wide.side(atLeast(0.9)) != 0 {
		t.Errorf("interval [%v, %v] around 0.9 decided", wide.Lo, wide.Hi)
	}
	// Parts that disagree leave it undecided even when the interval
	// does not straddle: a drift within the run.
	drift := estimate{Median: 0.96, Lo: 0.955, Hi: 0.965, CI: true, Parts: []float64{0.97, 0.96, 0.94}}
	if drift.side(atLeast(0.95)) != 0 {
		t.Error("parts on both sides of the bound, decided")
	}
	// Too few rounds for an interval: the range stands in for it.
	few := estimateOf([]float64{0.9, 1.0}, 1)
	if few.CI || few.Lo != 0.9 || few.Hi != 1.0 {
		t.Errorf("two rounds: %+v", few)
	}
}

func TestCostSchedule(t *testing.T) {
	if got := costSchedule(30, 5); !slices.Equal(got, []int{3, 9, 15, 21, 27}) {
		t.Errorf("costSchedule(30, 5) = %v", got)
	}
	if got := costSchedule(30, 0); len(got) != 0 {
		t.Errorf("costSchedule(30, 0) = %v", got)
	}
	// More cost rounds than rate rounds: all run, none before the first
	// rate round or after the last.
	got := costSchedule(2, 5)
	if len(got) != 5 || !slices.IsSorted(got) || got[0] < 1 || got[4] > 2 {
		t.Errorf("costSchedule(2, 5) = %v", got)
	}
}

func TestFmtNum(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{{0, "0"}, {1234.4, "1234"}, {56.74, "56.7"}, {2.004, "2.00"}, {0.891, "0.89"}, {0.001234, "0.0012"}} {
		if got := fmtNum(tc.v); got != tc.want {
			t.Errorf("fmtNum(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
