package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/meta"
)

// exists reports whether a queue is there, on a fresh channel (a missing
// queue closes the channel).
func exists(t *testing.T, c *amqp091.Connection, q string) bool {
	t.Helper()
	ch := openChannel(t, c)
	defer ch.Close()
	_, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	return err == nil
}

func TestQueueExpires(t *testing.T) {
	s, url := startNode(t, broker.Config{})
	c := dial(t, url)
	ch := openChannel(t, c)
	args := amqp091.Table{"x-expires": int32(300)}

	// Unused: gone after its time.
	if _, err := ch.QueueDeclare("idle", false, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	// Consumed: kept while the consumer stays, then gone after it leaves.
	if _, err := ch.QueueDeclare("watched", false, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume("watched", "w", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for exists(t, c, "idle") {
		if time.Now().After(deadline) {
			t.Fatal("idle queue still exists after x-expires")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond)
	if !exists(t, c, "watched") {
		t.Fatal("queue with a consumer expired")
	}
	if err := ch.Cancel("w", false); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for exists(t, c, "watched") {
		if time.Now().After(deadline) {
			t.Fatal("queue did not expire after its consumer left")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Redeclaring and basic.get count as use.
	if _, err := ch.QueueDeclare("used", false, false, false, false, amqp091.Table{"x-expires": int32(1500)}); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		time.Sleep(300 * time.Millisecond)
		if _, _, err := ch.Get("used", true); err != nil {
			t.Fatal(err)
		}
	}
	if !exists(t, c, "used") {
		t.Error("queue kept in use by basic.get expired")
	}

	// From a policy.
	if _, err := ch.QueueDeclare("tmp.a", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Meta().SetPolicy(context.Background(), meta.Policy{VHost: "/", Name: "tmp", Pattern: "^tmp\\.", ApplyTo: "queues",
		Definition: map[string]any{"expires": 200.0}}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for exists(t, c, "tmp.a") {
		if time.Now().After(deadline) {
			t.Fatal("queue did not expire under an expires policy")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSingleActiveConsumer(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	c := dial(t, url)
	ch := openChannel(t, c)
	if _, err := ch.QueueDeclare("sac", false, false, false, false, amqp091.Table{"x-single-active-consumer": true}); err != nil {
		t.Fatal(err)
	}
	first, err := ch.Consume("sac", "first", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch2 := openChannel(t, c)
	// A higher priority does not jump the queue of single active consumers.
	second, err := ch2.Consume("sac", "second", false, false, false, false, amqp091.Table{"x-priority": int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		publish(t, ch, "", "sac", amqp091.Publishing{Body: []byte{byte('0' + i)}})
	}
	for i := range 4 {
		d := recv(t, first)
		if d.Body[0] != byte('0'+i) {
			t.Fatalf("first got %q", d.Body)
		}
		if i < 2 {
			d.Ack(false)
		}
	}
	select {
	case d := <-second:
		t.Fatalf("waiting consumer got %q", d.Body)
	case <-time.After(200 * time.Millisecond):
	}
	// The active consumer leaves: its unacked messages and the rest go to
	// the next one, in order.
	if err := ch.Cancel("first", false); err != nil {
		t.Fatal(err)
	}
	ch.Close()
	for i := 2; i < 4; i++ {
		if d := recv(t, second); d.Body[0] != byte('0'+i) {
			t.Fatalf("second got %q, want %c", d.Body, '0'+i)
		}
	}
}

func TestPriorityQueueDeliversHighestFirst(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	if _, err := ch.QueueDeclare("prio", false, false, false, false, amqp091.Table{"x-max-priority": int32(10)}); err != nil {
		t.Fatal(err)
	}
	for i, p := range []uint8{1, 9, 0, 5, 9, 200} {
		publish(t, ch, "", "prio", amqp091.Publishing{Priority: p, Body: []byte{byte('a' + i)}})
	}
	ds, err := ch.Consume("prio", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for range 6 {
		got += string(recv(t, ds).Body)
	}
	// 200 counts as the maximum, 10; then 9 and 9 in publish order; 5, 1, 0.
	if got != "fbedac" {
		t.Errorf("delivery order %q, want %q", got, "fbedac")
	}
}

// TestEmptyQueueNameMeansLastDeclared: an empty queue name stands for the
// queue last declared on the channel, as AMQP 0-9-1 and RabbitMQ have it.
func TestEmptyQueueNameMeansLastDeclared(t *testing.T) {
	c := dial(t, "amqp://guest:guest@"+rawTarget(t)+"/")
	ch := openChannel(t, c)
	e := closedWith(t, ch, func() { ch.Consume("", "", true, false, false, false, nil) })
	if e.Code != 404 || e.Reason != "NOT_FOUND - no previously declared queue" {
		t.Errorf("consume before any declare: %d %q", e.Code, e.Reason)
	}
	ch = openChannel(t, c)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Bind with neither queue nor key: the queue, under its own name.
	if err := ch.QueueBind("", "", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "amq.direct", q.Name, amqp091.Publishing{Body: []byte("one")})
	publish(t, ch, "", q.Name, amqp091.Publishing{Body: []byte("two")})
	d, ok, err := ch.Get("", true)
	if err != nil || !ok || string(d.Body) != "one" {
		t.Fatalf("get from the last declared queue: %q %v %v", d.Body, ok, err)
	}
	ds, err := ch.Consume("", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := recv(t, ds); string(d.Body) != "two" {
		t.Errorf("consumed %q", d.Body)
	}
	e = closedWith(t, ch, func() { ch.QueueDeclarePassive("", false, true, true, false, nil) })
	if e.Code != 404 || e.Reason != "NOT_FOUND - no queue '' in vhost '/'" {
		t.Errorf("passive declare of '': %d %q", e.Code, e.Reason)
	}
}

func TestRejectPublishDLXAndCycles(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	ch := openChannel(t, dial(t, url))
	if _, err := ch.QueueDeclare("dead", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("full", false, false, false, false, amqp091.Table{"x-max-length": int32(1), "x-overflow": "reject-publish-dlx",
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 2))
	publish(t, ch, "", "full", amqp091.Publishing{Body: []byte("kept")})
	publish(t, ch, "", "full", amqp091.Publishing{Body: []byte("refused")})
	if c := <-confirms; !c.Ack {
		t.Fatal("first publish nacked")
	}
	if c := <-confirms; c.Ack {
		t.Fatal("publish over the limit acked")
	}
	deadline := time.Now().Add(5 * time.Second)
	for messagesIn(t, ch, "dead") != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	d, ok, err := ch.Get("dead", true)
	if err != nil || !ok || string(d.Body) != "refused" {
		t.Fatalf("dead-lettered refused publish: %q %v %v", d.Body, ok, err)
	}
	// A queue that dead-letters expired messages back into itself drops
	// them instead of cycling.
	if _, err := ch.QueueDeclare("loop", false, false, false, false, amqp091.Table{"x-message-ttl": int32(10), "x-dead-letter-exchange": ""}); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", "loop", amqp091.Publishing{Body: []byte("round")})
	<-confirms
	time.Sleep(300 * time.Millisecond)
	if n := messagesIn(t, ch, "loop"); n != 0 {
		t.Errorf("loop holds %d messages, want 0 (cycle dropped)", n)
	}
}

// warnings is a slog handler that keeps the messages of warnings and
// errors, for tests that check a node says nothing is wrong.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	w.msgs = append(w.msgs, r.Message)
	w.mu.Unlock()
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

// TestCloseWaitsForQueueExpiry stops nodes just as their queues expire:
// Close must wait for an expiry that has begun, so that it never deletes
// a queue through definitions that are shutting down.
func TestCloseWaitsForQueueExpiry(t *testing.T) {
	w := &warnings{}
	for round := range 20 {
		s, url := startNode(t, broker.Config{Logger: slog.New(w)})
		c := dial(t, url)
		ch := openChannel(t, c)
		for i := range 50 {
			if _, err := ch.QueueDeclare(fmt.Sprintf("q%d", i), false, false, false, false, amqp091.Table{"x-expires": int32(60)}); err != nil {
				t.Fatal(err)
			}
		}
		// Long enough for a loaded machine to declare them all, and the
		// stop lands anywhere from well before to just after expiry.
		time.Sleep(time.Duration(round%7) * 10 * time.Millisecond)
		s.Close()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if strings.Contains(m, "expired") {
			t.Fatalf("while stopping: %s", m)
		}
	}
}
