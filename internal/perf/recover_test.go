package perf

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuilder is a strings.Builder that several goroutines write to.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunRecoverCarriesOn restarts the broker under a run with Recover:
// the producer and the consumer connect again once it is back, and the
// run ends at its time without an error, counting the reconnections and
// still receiving after them.
func TestRunRecoverCarriesOn(t *testing.T) {
	dir := t.TempDir()
	n, addr := startNode(t, dir, "127.0.0.1:0")
	progress := &syncBuilder{}
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Run(context.Background(), Config{
			URI: uriOf(addr), Producers: 1, Consumers: 1, Size: 64, Queue: "recover", Durable: true, KeepQueue: true,
			Persistent: true, Rate: 200, ConfirmWindow: 10, Prefetch: 10, Duration: 6 * time.Second, Recover: true, Progress: progress,
		})
		done <- outcome{res, err}
	}()
	time.Sleep(1500 * time.Millisecond)
	n.stop()
	time.Sleep(700 * time.Millisecond)
	n, _ = startNode(t, dir, addr)
	defer n.stop()
	o := <-done
	if o.err != nil {
		t.Fatalf("a run with Recover ended with %v\n%s", o.err, progress)
	}
	if o.res.Recovered < 2 {
		t.Fatalf("recovered %d times, want the producer and the consumer\n%s", o.res.Recovered, progress)
	}
	out := progress.String()
	if strings.Count(out, "connected again after") < 2 {
		t.Fatalf("progress does not report both reconnections:\n%s", out)
	}
	// Messages flowed after the restart: the last second's line shows
	// deliveries.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; strings.Contains(last, "received 0 msg/s") {
		t.Fatalf("nothing received after the reconnection:\n%s", out)
	}
}
