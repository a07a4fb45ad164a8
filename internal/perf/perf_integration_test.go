//go:build brokertest

package perf

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// brokerURL returns the broker these tests run against. They exist to be
// run against a live node, so a missing URL is a failure, not a skip.
func brokerURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("WARREN_PERF_TEST_URL")
	if u == "" {
		t.Fatal("WARREN_PERF_TEST_URL is not set: point it at a running broker, e.g. amqp://guest:guest@127.0.0.1:5672/")
	}
	return u
}

func TestRunCountModeConfirmsAndAcks(t *testing.T) {
	var progress strings.Builder
	res, err := Run(context.Background(), Config{
		URI: brokerURL(t), Label: "count", Producers: 2, Consumers: 2, Size: 256,
		ConfirmWindow: 50, Prefetch: 50, MessageCount: 2000, Duration: time.Minute,
		// The test does not know the broker's pid; its own process tree
		// exercises the same CPU accounting.
		Progress: &progress, BrokerPID: os.Getpid(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 4000 || res.Confirmed != 4000 || res.Nacked != 0 || res.Received != 4000 {
		t.Fatalf("sent/confirmed/nacked/received = %d/%d/%d/%d, want 4000/4000/0/4000",
			res.Sent, res.Confirmed, res.Nacked, res.Received)
	}
	if res.Seconds >= 60 {
		t.Fatalf("count mode ran into the 1 minute limit (%.1f s)", res.Seconds)
	}
	l := res.Latency
	if !(l.Min > 0 && l.Min <= l.P50 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max) {
		t.Fatalf("latency not ordered: %+v", l)
	}
	if l.Max > 60e6 {
		t.Fatalf("latency max %.0f µs exceeds the run itself", l.Max)
	}
	if res.ReceiveRate <= 0 || res.BrokerCPUSeconds <= 0 {
		t.Fatalf("receive rate %.0f, cpu %.3f s: want both positive", res.ReceiveRate, res.BrokerCPUSeconds)
	}
}

func TestRunDurationRateLimitedPersistent(t *testing.T) {
	var progress strings.Builder
	res, err := Run(context.Background(), Config{
		URI: brokerURL(t), Label: "rate", Producers: 1, Consumers: 1, Size: 1024,
		Persistent: true, Queue: "warren-perf-it-durable", Durable: true,
		ConfirmWindow: 100, Prefetch: 100, Rate: 500, Duration: 3 * time.Second,
		Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	// 500 msg/s for 3 s: about 1,500 messages, never far more.
	if res.Sent < 1000 || res.Sent > 1600 {
		t.Fatalf("sent %d at 500 msg/s for 3 s, want 1000..1600", res.Sent)
	}
	if res.Received < res.Sent-100 || res.Nacked != 0 {
		t.Fatalf("sent %d, received %d, nacked %d", res.Sent, res.Received, res.Nacked)
	}
	if lines := strings.Count(progress.String(), "received"); lines < 2 {
		t.Fatalf("want a progress line per second, got:\n%s", progress.String())
	}
}

func TestRunQueueArgumentsReachTheBroker(t *testing.T) {
	// An argument the broker must refuse proves the arguments are sent.
	_, err := Run(context.Background(), Config{
		URI: brokerURL(t), Producers: 1, Consumers: 1, Size: 16, MessageCount: 10,
		QueueArgs: map[string]any{"x-max-length": "not a number"},
	})
	if err == nil || !strings.Contains(err.Error(), "PRECONDITION_FAILED") {
		t.Fatalf("invalid x-max-length: error %v, want PRECONDITION_FAILED", err)
	}
}

func TestRunFailsWhenTheQueueIsDeleted(t *testing.T) {
	url := brokerURL(t)
	const queue = "warren-perf-it-deleted"
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Run(context.Background(), Config{
			URI: url, Producers: 1, Consumers: 1, Size: 64, Queue: queue,
			ConfirmWindow: 10, Prefetch: 10, Duration: time.Minute,
		})
		done <- outcome{res, err}
	}()

	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the run consumes from the queue, then delete it under it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(queue, true, true, false, false, nil)
		if err == nil && q.Consumers > 0 {
			break
		}
		if err != nil { // a failed passive declare closes the channel
			if ch, err = conn.Channel(); err != nil {
				t.Fatal(err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the run never started consuming")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-done:
		if o.err == nil || !strings.Contains(o.err.Error(), "cancelled consumer") {
			t.Fatalf("deleting the queue mid-run: error %v, want the consumer cancellation", o.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run went on after its queue was deleted")
	}
}

func TestRunMultiAck(t *testing.T) {
	// With prefetch 20 the broker stops delivering after 20 unacked
	// messages, so 1,000 arrive only if every 10th ack covers the others.
	res, err := Run(context.Background(), Config{
		URI: brokerURL(t), Producers: 1, Consumers: 1, Size: 32,
		Prefetch: 20, MultiAckEvery: 10, MessageCount: 1000, Duration: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != 1000 || res.Seconds >= 30 {
		t.Fatalf("received %d in %.1f s, want 1000 well within 30 s", res.Received, res.Seconds)
	}
}
