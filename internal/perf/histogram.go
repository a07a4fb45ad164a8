package perf

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear: values below 2^histSubBits are counted
// exactly, and every larger power-of-two range [2^k, 2^(k+1)) is split into
// 2^(histSubBits-1) equal buckets, so a bucket is never wider than 1/64 of
// its lower bound (under 1.6 % relative error).
const (
	histSubBits  = 7
	histSubCount = 1 << histSubBits // 128
	histHalf     = histSubCount / 2 // 64
	// MaxInt64 is 63 bits long, so its shift is 63-histSubBits and its
	// index (63-histSubBits)*histHalf + histSubCount-1 is the last one.
	histBuckets = (63-histSubBits)*histHalf + histSubCount
)

// Histogram records non-negative durations with bounded relative error, in
// fixed memory. The zero value is empty and ready to use. A Histogram is not
// safe for concurrent use: give each goroutine its own and Merge them.
type Histogram struct {
	counts [histBuckets]uint64
	count  uint64
	sum    float64 // nanoseconds; float so that it cannot overflow
	min    int64
	max    int64
}

func histIndex(v int64) int {
	if v < histSubCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits
	return shift*histHalf + int(v>>shift)
}

// histUpper returns the largest value that lands in bucket i.
func histUpper(i int) int64 {
	if i < histSubCount {
		return int64(i)
	}
	shift := i/histHalf - 1
	mant := int64(i - shift*histHalf)
	upper := uint64(mant+1)<<shift - 1
	if upper > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(upper)
}

// Record adds one duration. Negative durations (a clock step) count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)]++
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.count++
	h.sum += float64(v)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.count == 0 {
		return
	}
	for i, n := range o.counts {
		h.counts[i] += n
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.count += o.count
	h.sum += o.sum
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.count }

// Min returns the smallest recorded value, or 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max returns the largest recorded value, or 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the arithmetic mean, or 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.count))
}

// Percentile returns the smallest recorded value v such that at least p
// percent of the values are <= v, to the histogram's precision (the upper
// bound of v's bucket, never more than Max). p is clamped to [0, 100];
// Percentile(0) is Min and an empty histogram returns 0.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if p <= 0 || math.IsNaN(p) {
		return time.Duration(h.min)
	}
	if p >= 100 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.count)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			v := histUpper(i)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
