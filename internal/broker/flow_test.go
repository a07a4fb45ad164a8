package broker_test

import (
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/broker"
)

func TestMemoryAlarmBlocksPublishersNotConsumers(t *testing.T) {
	s, url := startNode(t, broker.Config{MemoryHighWatermarkAbsolute: 1 << 40, MemoryCheckInterval: 20 * time.Millisecond})
	cons := openChannel(t, dial(t, url))
	q, _ := cons.QueueDeclare("flow", false, true, false, false, nil)
	ds, _ := cons.Consume(q.Name, "", true, false, false, false, nil)

	pubConn := dial(t, url)
	blocked := pubConn.NotifyBlocked(make(chan amqp091.Blocking, 4))
	pub := openChannel(t, pubConn)

	if err := s.SetMemoryHighWatermark(0, 1); err != nil {
		t.Fatal(err)
	}
	for !s.MemoryAlarm() {
		time.Sleep(10 * time.Millisecond)
	}
	publish(t, pub, "", q.Name, amqp091.Publishing{Body: []byte("1")})
	if d := recv(t, ds); string(d.Body) != "1" {
		t.Fatalf("got %q", d.Body)
	}
	select {
	case b := <-blocked:
		if !b.Active || b.Reason != "low on memory" {
			t.Fatalf("blocking: %+v", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection.blocked")
	}
	publish(t, pub, "", q.Name, amqp091.Publishing{Body: []byte("2")})
	select {
	case d := <-ds:
		t.Fatalf("message %q routed while its publisher was blocked", d.Body)
	case <-time.After(300 * time.Millisecond):
	}
	// Another connection that only consumes is never blocked.
	other := openChannel(t, dial(t, url))
	if _, err := other.QueueDeclare("", false, true, true, false, nil); err != nil {
		t.Fatalf("consumer-side connection blocked: %v", err)
	}

	s.SetMemoryHighWatermark(0, 1<<40)
	select {
	case b := <-blocked:
		if b.Active {
			t.Fatalf("blocking: %+v", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection.unblocked")
	}
	if d := recv(t, ds); string(d.Body) != "2" {
		t.Fatalf("got %q", d.Body)
	}
}

// TestStalledConsumerDoesNotStallOthers fills the socket of a consumer that
// never reads and checks that other connections carry on.
func TestStalledConsumerDoesNotStallOthers(t *testing.T) {
	_, url := startNode(t, broker.Config{})
	r := rawDial(t, addrOf(url))
	r.open("guest", "guest")
	ch := openChannel(t, dial(t, url))
	ch.QueueDeclare("stall", false, true, false, false, nil)
	ch.QueueDeclare("live", false, true, false, false, nil)
	// The raw client consumes without acks and then never reads again.
	r.method(1, &amqp.BasicConsume{Queue: "stall", NoAck: true})
	body := make([]byte, 64<<10)
	for range 200 { // 12.5 MiB: far beyond socket buffers and the outbox
		publish(t, ch, "", "stall", amqp091.Publishing{Body: body})
	}
	ds, _ := openChannel(t, dial(t, url)).Consume("live", "", true, false, false, false, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			ch.PublishWithContext(t.Context(), "", "live", false, false, amqp091.Publishing{Body: []byte("x")})
		}
	}()
	for i := range 1000 {
		select {
		case <-ds:
		case <-time.After(5 * time.Second):
			t.Fatalf("live consumer stalled after %d messages", i)
		}
	}
	<-done
	n, err := ch.QueueDeclarePassive("stall", false, true, false, false, nil)
	if err != nil || n.Messages == 0 {
		t.Fatalf("stalled queue: %+v %v (expected messages left waiting)", n, err)
	}
}
