package main

import (
	"math"
	"slices"
)

// The statistics of a run. On the shared 2-core VM a rate moves by tens of
// percent over minutes (host load, steal, the idle state of the other
// vCPU), far more than the few percent the goals are about. So the harness
// runs many short rounds, each with every topology back to back, and takes
// every ratio within a round: drifts slower than a round cancel. What is
// left is round-to-round noise, and that is what the interval below
// measures: the goals are judged on the median of the per-round ratios, and
// a goal is decided only when the median's confidence interval, and the
// medians of consecutive parts of the run, all lie on one side of its
// bound.

// ciLevel is the confidence of the interval of a median.
const ciLevel = 0.95

// estimate is a quantity measured once per round, over the rounds.
type estimate struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// Lo and Hi bound the median with confidence ciLevel when CI is true;
	// with too few rounds for that (fewer than 6) they are Min and Max.
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
	CI bool    `json:"ci"`
	// Parts are the medians of consecutive parts of the rounds, in order:
	// repeats of the measurement within the run.
	Parts []float64 `json:"parts,omitempty"`
}

// estimateOf summarizes per-round values v, in round order, split into
// parts consecutive parts. v must not be empty.
func estimateOf(v []float64, parts int) estimate {
	e := estimate{N: len(v)}
	e.Median, e.Min, e.Max = medianMinMax(v)
	e.Lo, e.Hi, e.CI = medianCI(v, ciLevel)
	if !e.CI {
		e.Lo, e.Hi = e.Min, e.Max
	}
	if parts > 1 {
		for _, p := range splitParts(v, parts) {
			m, _, _ := medianMinMax(p)
			e.Parts = append(e.Parts, m)
		}
	}
	return e
}

// medianMinMax of v (not empty); the median of an even count is the mean
// of the middle two.
func medianMinMax(v []float64) (med, lo, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

// medianCI is the distribution-free confidence interval of the median of
// the population v is drawn from: the k-th smallest and the k-th largest
// of v, k the largest rank for which the median falls below the k-th
// smallest value with probability at most (1-level)/2. That probability is
// P(X < k) for X ~ Binomial(n, 1/2) (X counts the values below the
// median), and it needs no assumption about the values' distribution, only
// that the rounds are independent. ok is false when n is too small for any
// k (n < 6 at 95 %).
func medianCI(v []float64, level float64) (lo, hi float64, ok bool) {
	n := len(v)
	k := ciRank(n, level)
	if k == 0 {
		return 0, 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[k-1], s[n-k], true
}

// ciRank is k of medianCI for n values: the largest k with
// P(Binomial(n, 1/2) ≤ k-1) ≤ (1-level)/2, 0 if there is none.
func ciRank(n int, level float64) int {
	alpha := (1 - level) / 2
	pmf := math.Pow(0.5, float64(n)) // P(X = 0)
	cdf := 0.0
	k := 0
	for i := 0; i < n/2; i++ {
		cdf += pmf // P(X ≤ i)
		if cdf > alpha {
			break
		}
		k = i + 1
		pmf *= float64(n-i) / float64(i+1)
	}
	return k
}

// splitParts cuts v into parts consecutive slices of sizes that differ by
// at most one (fewer when v is shorter than parts).
func splitParts(v []float64, parts int) [][]float64 {
	parts = min(parts, len(v))
	var out [][]float64
	for p := 0; p < parts; p++ {
		out = append(out, v[p*len(v)/parts:(p+1)*len(v)/parts])
	}
	return out
}

// side tells on which side of a bound the estimate lies: +1 when the whole
// interval and every part meet the bound, -1 when none of them does, 0 when
// they disagree (not decided).
func (e estimate) side(ok func(float64) bool) int {
	vals := append([]float64{e.Lo, e.Hi, e.Median}, e.Parts...)
	met := 0
	for _, v := range vals {
		if ok(v) {
			met++
		}
	}
	switch met {
	case len(vals):
		return 1
	case 0:
		return -1
	}
	return 0
}
