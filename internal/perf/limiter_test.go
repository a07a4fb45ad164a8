package perf

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeClock drives a limiter without real sleeping: sleep advances now.
type fakeClock struct {
	now   time.Time
	slept time.Duration
}

func (c *fakeClock) install(l *limiter) {
	l.now = func() time.Time { return c.now }
	l.sleep = func(_ context.Context, d time.Duration) error {
		c.slept += d
		c.now = c.now.Add(d)
		return nil
	}
}

func TestLimiterPacesToRate(t *testing.T) {
	l := newLimiter(1000)
	clk := &fakeClock{now: time.Unix(1000, 0)}
	clk.install(l)
	start := clk.now
	for range 1001 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The first operation is immediate; the 1001st is due one second later.
	if got := clk.now.Sub(start); got != time.Second {
		t.Fatalf("1001 operations at 1000/s took %v, want 1s", got)
	}
}

func TestLimiterAbsorbsOvershootAndBoundsCatchUp(t *testing.T) {
	l := newLimiter(1000) // 1 ms per operation
	clk := &fakeClock{now: time.Unix(1000, 0)}
	clk.install(l)
	ctx := context.Background()
	_ = l.Wait(ctx)
	// The caller overslept by 10 ms: the next ten are due already.
	clk.now = clk.now.Add(10 * time.Millisecond)
	before := clk.slept
	for range 10 {
		_ = l.Wait(ctx)
	}
	if clk.slept != before {
		t.Fatalf("catching up 10 ms behind slept %v, want no sleep", clk.slept-before)
	}
	// Far behind (a 1 s stall): no burst of 1000; the schedule restarts.
	clk.now = clk.now.Add(time.Second)
	_ = l.Wait(ctx)
	before = clk.slept
	_ = l.Wait(ctx)
	if got := clk.slept - before; got != time.Millisecond {
		t.Fatalf("after a long stall the second operation slept %v, want 1ms", got)
	}
}

func TestLimiterUnlimitedAndCancel(t *testing.T) {
	if newLimiter(0) != nil {
		t.Fatal("rate 0 must mean no limiter")
	}
	var none *limiter
	if err := none.Wait(context.Background()); err != nil {
		t.Fatalf("nil limiter: %v", err)
	}
	// Real timer: a 1 op/hour limiter blocks on its second call until
	// the context is cancelled.
	l := newLimiter(1.0 / 3600)
	ctx, cancel := context.WithCancel(context.Background())
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("first wait: %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- l.Wait(ctx) }()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled wait did not return")
	}
}
