package perf

import (
	"context"
	"time"
)

// maxLimiterDebt bounds how far a limiter lets a caller catch up after
// falling behind schedule (a slow broker, a descheduled goroutine): at most
// this much time's worth of messages goes out back to back.
const maxLimiterDebt = 50 * time.Millisecond

// limiter paces one producer to a fixed rate. It keeps an absolute schedule
// (slot n is due at start + n/rate) rather than sleeping a fixed interval
// after each send, so timer overshoot does not lower the achieved rate. It
// is not safe for concurrent use; each producer owns one.
type limiter struct {
	interval time.Duration
	next     time.Time
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error
}

// newLimiter returns a limiter for rate operations per second, or nil when
// rate is zero (no limit). A nil *limiter's Wait returns at once.
func newLimiter(rate float64) *limiter {
	if rate <= 0 {
		return nil
	}
	interval := time.Duration(float64(time.Second) / rate)
	if interval <= 0 {
		interval = 1
	}
	return &limiter{interval: interval, now: time.Now, sleep: sleepCtx}
}

// Wait blocks until the caller may perform its next operation, or until ctx
// is done, in which case it returns ctx's error.
func (l *limiter) Wait(ctx context.Context) error {
	if l == nil {
		return ctx.Err()
	}
	now := l.now()
	if l.next.IsZero() || now.Sub(l.next) > maxLimiterDebt {
		// First call, or so far behind that catching up would be a burst.
		l.next = now
	}
	due := l.next
	l.next = l.next.Add(l.interval)
	if wait := due.Sub(now); wait > 0 {
		return l.sleep(ctx, wait)
	}
	return ctx.Err()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
