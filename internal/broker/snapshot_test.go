package broker_test

import (
	"testing"

	"github.com/warren-mq/warren/internal/broker"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// TestRestartFromDefinitionsSnapshot: a node whose definitions log was
// compacted into a snapshot starts again from it, with its queues and
// their persistent messages.
func TestRestartFromDefinitionsSnapshot(t *testing.T) {
	dir := t.TempDir()
	s, url := startNode(t, broker.Config{DataDir: dir})
	c := dial(t, url)
	ch := openChannel(t, c)
	if _, err := ch.QueueDeclare("kept", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1))
	if err := ch.Publish("", "kept", false, false, amqp091.Publishing{DeliveryMode: 2, Body: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	if ok := <-confirms; !ok.Ack {
		t.Fatal("publish nacked")
	}
	c.Close()
	if err := s.Meta().Compact(); err != nil {
		t.Fatal(err)
	}
	s.Close() // idempotent: startNode's cleanup closes it again

	s2, url := startNode(t, broker.Config{DataDir: dir})
	if _, ok := s2.Meta().Queue("/", "kept"); !ok {
		t.Fatal("queue lost")
	}
	ch2 := openChannel(t, dial(t, url))
	m, ok, err := ch2.Get("kept", true)
	if err != nil || !ok || string(m.Body) != "m" {
		t.Fatalf("get after restart: %q %v %v", m.Body, ok, err)
	}
}
