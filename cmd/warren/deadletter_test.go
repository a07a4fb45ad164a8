package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// publishConfirmed publishes n persistent messages named prefix-i to the
// default exchange with routing key queue, with confirms, and fails unless
// every one is acked.
func publishConfirmed(t *testing.T, c *amqp091.Connection, queue, prefix string, n int) {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, n))
	for i := range n {
		if err := ch.PublishWithContext(context.Background(), "", queue, false, false,
			amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: fmt.Appendf(nil, "%s-%d", prefix, i)}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case cf := <-confirms:
			if !cf.Ack {
				t.Fatalf("publish %d nacked", cf.DeliveryTag)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("confirms stopped coming")
		}
	}
}

// drainQueue takes every message from queue with basic.get and counts
// each body.
func drainQueue(t *testing.T, c *amqp091.Connection, queue string, into map[string]int) int {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	n := 0
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return n
		}
		into[string(d.Body)]++
		n++
	}
}

// declareDeadLettering makes a durable queue "src" whose dead letters go,
// through the fanout exchange "dlx", to the durable queue "dlq".
func declareDeadLettering(t *testing.T, c *amqp091.Connection) {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ch.ExchangeDeclare("dlx", "fanout", true, false, false, false, nil))
	_, err = ch.QueueDeclare("dlq", true, false, false, false, nil)
	must(err)
	must(ch.QueueBind("dlq", "", "dlx", false, nil))
	_, err = ch.QueueDeclare("src", true, false, false, false, amqp091.Table{"x-dead-letter-exchange": "dlx"})
	must(err)
}

// rejectAll consumes n messages from queue and rejects them all, without
// requeue, with one basic.nack multiple=true.
func rejectAll(t *testing.T, c *amqp091.Connection, queue string, n int) {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range n {
		select {
		case d := <-ds:
			last = d.DeliveryTag
		case <-time.After(30 * time.Second):
			t.Fatal("deliveries stopped coming")
		}
	}
	if err := ch.Nack(last, true, false); err != nil {
		t.Fatal(err)
	}
	// A channel's frames are handled in order: once this answers, the
	// node has taken the nack, and a stop cannot requeue the messages.
	if _, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
}

// startRejecting starts a node with the queues of declareDeadLettering,
// publishes n confirmed persistent messages to "src" and rejects them all.
func startRejecting(t *testing.T, bin, dir string, n int) (*node, *amqp091.Connection) {
	t.Helper()
	nd, c := startNode(t, bin, dir)
	declareDeadLettering(t, c)
	publishConfirmed(t, c, "src", "m", n)
	rejectAll(t, c, "src", n)
	return nd, c
}

// TestDeadLettersSurviveSIGKILL rejects many confirmed persistent
// messages into a dead-letter queue and kills the node while they move:
// after a restart each is in the source queue or the dead-letter queue
// (or both: dead-lettering is at least once), never in neither.
func TestDeadLettersSurviveSIGKILL(t *testing.T) {
	bin, dir := buildWarren(t), t.TempDir()
	const n = 20000
	n1, c := startRejecting(t, bin, dir, n)
	// Killed as soon as dead letters start to arrive, while most are on
	// their way.
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		q, err := ch.QueueDeclarePassive("dlq", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages > 0 {
			t.Logf("killed with %d messages in dlq", q.Messages)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no dead letter arrived")
		}
	}
	n1.cmd.Process.Signal(syscall.SIGKILL)
	n1.cmd.Wait()

	_, c = startNode(t, bin, dir)
	got := map[string]int{}
	inSrc := drainQueue(t, c, "src", got)
	inDLQ := drainQueue(t, c, "dlq", got)
	t.Logf("after the restart: %d in src, %d in dlq", inSrc, inDLQ)
	lost := 0
	for i := range n {
		if got[fmt.Sprintf("m-%d", i)] == 0 {
			lost++
		}
	}
	if len(got) > n {
		t.Errorf("%d distinct messages came back, %d were published", len(got), n)
	}
	if lost > 0 {
		t.Fatalf("%d of %d confirmed messages are in neither queue", lost, n)
	}
}

// TestDeadLettersSurviveGracefulStop is the same with SIGTERM: a node that
// stops on request finishes its dead-lettering first, so every message is
// in the dead-letter queue exactly once and none is left in the source.
func TestDeadLettersSurviveGracefulStop(t *testing.T) {
	bin, dir := buildWarren(t), t.TempDir()
	const n = 20000
	n1, _ := startRejecting(t, bin, dir, n)
	n1.cmd.Process.Signal(syscall.SIGTERM)
	if err := n1.cmd.Wait(); err != nil {
		t.Fatalf("stop: %v\n%s", err, n1.stderr)
	}

	_, c := startNode(t, bin, dir)
	got := map[string]int{}
	inSrc := drainQueue(t, c, "src", got)
	inDLQ := drainQueue(t, c, "dlq", got)
	if inSrc != 0 || inDLQ != n {
		t.Errorf("after a graceful stop: %d in src and %d in dlq, want 0 and %d", inSrc, inDLQ, n)
	}
	for i := range n {
		if k := got[fmt.Sprintf("m-%d", i)]; k != 1 {
			t.Fatalf("m-%d came back %d times", i, k)
		}
	}
}

// TestRestartKeepsQueuesPastTheirLimit: requeued messages can put a queue
// past its x-max-length; a restart brings every one of them back, as
// RabbitMQ does, with reject-publish and with drop-head (which would
// otherwise dead-letter the excess), and the limit applies to what comes
// next.
func TestRestartKeepsQueuesPastTheirLimit(t *testing.T) {
	bin := buildWarren(t)
	dir := t.TempDir()
	n1, c := startNode(t, bin, dir)
	declareDeadLettering(t, c)
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	limited := map[string]amqp091.Table{
		"refusing": {"x-max-length": int32(2), "x-overflow": "reject-publish"},
		"dropping": {"x-max-length": int32(2), "x-dead-letter-exchange": "dlx"},
	}
	for name, args := range limited {
		if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
			t.Fatal(err)
		}
		publishConfirmed(t, c, name, name+"-a", 2)
		// Two taken and held, two more published, the two held requeued:
		// four ready, two over the limit.
		held, err := c.Channel()
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, ok, err := held.Get(name, false); err != nil || !ok {
				t.Fatalf("get from %s: %v %v", name, ok, err)
			}
		}
		publishConfirmed(t, c, name, name+"-b", 2)
		held.Close()
		if q, err := ch.QueueDeclarePassive(name, true, false, false, false, args); err != nil || q.Messages != 4 {
			t.Fatalf("%s before the restart: %+v %v", name, q, err)
		}
	}
	n1.cmd.Process.Signal(syscall.SIGKILL)
	n1.cmd.Wait()

	_, c = startNode(t, bin, dir)
	for name := range limited {
		got := map[string]int{}
		if k := drainQueue(t, c, name, got); k != 4 {
			t.Errorf("%s after the restart: %d messages (%v), want all 4", name, k, got)
		}
	}
	if k := drainQueue(t, c, "dlq", map[string]int{}); k != 0 {
		t.Errorf("%d messages dead-lettered at the restart", k)
	}
}
