package perf

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactPercentile is the reference: the smallest value with at least p
// percent of the values at or below it.
func exactPercentile(sorted []int64, p float64) int64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestHistogramSmallValuesAreExact(t *testing.T) {
	var h Histogram
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {1, 1}, {50, 50}, {95, 95}, {99, 99}, {99.5, 100}, {100, 100}} {
		if got := h.Percentile(tc.p); got != tc.want {
			t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if h.Count() != 100 || h.Min() != 1 || h.Max() != 100 {
		t.Errorf("count/min/max = %d/%v/%v, want 100/1ns/100ns", h.Count(), h.Min(), h.Max())
	}
	if h.Mean() != 50 { // 50.5 truncated
		t.Errorf("Mean = %v, want 50ns", h.Mean())
	}
}

func TestHistogramRelativeErrorAgainstSortedReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 0, 50000)
	for range 50000 {
		// Log-uniform over 1 µs .. 10 s, like real latencies.
		v := int64(math.Exp(rng.Float64()*math.Log(1e10/1e3)) * 1e3)
		vals = append(vals, v)
		h.Record(time.Duration(v))
	}
	slices.Sort(vals)
	for _, p := range []float64{0.1, 1, 10, 50, 75, 90, 95, 99, 99.9, 99.99} {
		want := exactPercentile(vals, p)
		got := int64(h.Percentile(p))
		if got < want {
			t.Errorf("p%v = %d, below the exact %d", p, got, want)
		}
		if rel := float64(got-want) / float64(want); rel > 1.0/64 {
			t.Errorf("p%v = %d, exact %d: relative error %.4f > 1/64", p, got, want, rel)
		}
	}
	if h.Min() != time.Duration(vals[0]) || h.Max() != time.Duration(vals[len(vals)-1]) {
		t.Errorf("min/max = %v/%v, want %v/%v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
}

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	// Bucket bounds are contiguous and monotonic up to MaxInt64.
	prevUpper := int64(-1)
	for i := range histBuckets {
		u := histUpper(i)
		if u <= prevUpper {
			t.Fatalf("bucket %d upper %d not above bucket %d's %d", i, u, i-1, prevUpper)
		}
		if got := histIndex(prevUpper + 1); got != i {
			t.Fatalf("value %d lands in bucket %d, want %d", prevUpper+1, got, i)
		}
		if got := histIndex(u); got != i {
			t.Fatalf("value %d (upper of %d) lands in bucket %d", u, i, got)
		}
		prevUpper = u
	}
	if prevUpper != math.MaxInt64 {
		t.Fatalf("last bucket ends at %d, want MaxInt64", prevUpper)
	}
	var h Histogram
	h.Record(time.Duration(math.MaxInt64))
	if h.Percentile(50) != time.Duration(math.MaxInt64) {
		t.Fatalf("MaxInt64 recorded, p50 = %v", h.Percentile(50))
	}
}

func TestHistogramMergeEmptyAndNegative(t *testing.T) {
	var empty Histogram
	if empty.Percentile(99) != 0 || empty.Mean() != 0 || empty.Min() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	var a, b Histogram
	a.Record(-5 * time.Millisecond) // clock step: counts as zero
	for i := range 99 {
		b.Record(time.Duration(i+1) * time.Millisecond)
	}
	a.Merge(&b)
	a.Merge(&empty)
	if a.Count() != 100 {
		t.Fatalf("count after merge = %d, want 100", a.Count())
	}
	if a.Min() != 0 {
		t.Errorf("min = %v, want 0 (negative clamped)", a.Min())
	}
	if a.Max() != 99*time.Millisecond {
		t.Errorf("max = %v, want 99ms", a.Max())
	}
	p50 := a.Percentile(50)
	if p50 < 49*time.Millisecond || p50 > 49*time.Millisecond*65/64 {
		t.Errorf("p50 = %v, want 49ms within 1/64", p50)
	}
	// Merging into an empty histogram takes the other's minimum.
	var c Histogram
	c.Merge(&b)
	if c.Min() != time.Millisecond {
		t.Errorf("min after merge into empty = %v, want 1ms", c.Min())
	}
}
