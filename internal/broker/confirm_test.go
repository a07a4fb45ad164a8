package broker_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/broker"
)

// confirmLedger reads publisher confirms the way a client library does
// (amqp091-go's resequencing): answers for tags above the next expected
// one wait in a buffer, and a multiple ack settles every tag from the
// next expected one up to its own. It records each tag's final answer and
// every way in which a tag was answered other than exactly once.
type confirmLedger struct {
	expecting uint64
	buffered  map[uint64]bool // tag -> ack, held until the tags below are settled
	settled   map[uint64]bool // tag -> ack
	problems  []string
}

func newConfirmLedger() *confirmLedger {
	return &confirmLedger{expecting: 1, buffered: map[uint64]bool{}, settled: map[uint64]bool{}}
}

func (l *confirmLedger) settle(tag uint64, ack bool) {
	if b, ok := l.buffered[tag]; ok {
		if b != ack {
			l.problems = append(l.problems, fmt.Sprintf("tag %d: %s, then settled as %s by a later multiple ack", tag, word(b), word(ack)))
		}
		delete(l.buffered, tag)
	}
	l.settled[tag] = ack
}

func (l *confirmLedger) take(m amqp.Method) {
	var tag uint64
	var multiple, ack bool
	switch m := m.(type) {
	case *amqp.BasicAck:
		tag, multiple, ack = m.DeliveryTag, m.Multiple, true
	case *amqp.BasicNack:
		tag, multiple = m.DeliveryTag, m.Multiple
	default:
		return
	}
	switch {
	case tag < l.expecting && !multiple:
		l.problems = append(l.problems, fmt.Sprintf("tag %d answered again with %s", tag, word(ack)))
	case multiple:
		if tag < l.expecting {
			l.problems = append(l.problems, fmt.Sprintf("multiple %s %d covers nothing new", word(ack), tag))
		}
		for ; l.expecting <= tag; l.expecting++ {
			l.settle(l.expecting, ack)
		}
	default:
		if _, ok := l.buffered[tag]; ok {
			l.problems = append(l.problems, fmt.Sprintf("tag %d answered twice", tag))
		}
		l.buffered[tag] = ack
	}
	for {
		b, ok := l.buffered[l.expecting]
		if !ok {
			break
		}
		l.settle(l.expecting, b)
		l.expecting++
	}
}

func word(ack bool) string {
	if ack {
		return "ack"
	}
	return "nack"
}

// TestEveryPublishAnsweredOnce publishes persistent messages with
// confirms, pipelined, to a durable queue that refuses all but its first
// (x-max-length 1, reject-publish) and to an ordinary durable queue, so
// that nacks go out while earlier publishes still wait for their fsync.
// Every tag must be answered exactly once, and a nacked tag never acked
// by a later multiple ack, which a client would take as covering it.
func TestEveryPublishAnsweredOnce(t *testing.T) {
	_, url := startNode(t, broker.Config{DataDir: t.TempDir()})
	r := rawDial(t, addrOf(url))
	r.open("guest", "guest")
	r.method(1, &amqp.ConfirmSelect{})
	r.expect(&amqp.ConfirmSelectOk{})
	r.method(1, &amqp.QueueDeclare{Queue: "full", Durable: true, Arguments: amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}})
	r.expect(&amqp.QueueDeclareOk{})
	r.method(1, &amqp.QueueDeclare{Queue: "open", Durable: true})
	r.expect(&amqp.QueueDeclareOk{})

	persistent := amqp.AppendProperties(nil, &amqp.Properties{DeliveryMode: 2})
	transient := amqp.AppendProperties(nil, &amqp.Properties{DeliveryMode: 1})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 19))
	const n = 400
	want := map[uint64]bool{}
	fullTaken := false
	var out []byte
	for tag := uint64(1); tag <= n; tag++ {
		queue, props := "open", persistent
		switch rng.IntN(4) {
		case 0, 1:
			queue = "full"
		case 2:
			props = transient
		}
		if tag == 1 {
			queue, props = "open", persistent // an fsync to wait for first
		}
		want[tag] = queue == "open" || !fullTaken
		if queue == "full" {
			fullTaken = true
		}
		body := []byte(fmt.Sprint(tag))
		out = amqp.AppendMethodFrame(out, 1, &amqp.BasicPublish{RoutingKey: queue})
		out = amqp.AppendHeaderFrame(out, 1, amqp.ClassBasic, uint64(len(body)), props)
		out = amqp.AppendBodyFrames(out, 1, body, 131072)
	}
	r.send(out)

	l := newConfirmLedger()
	r.nc.SetDeadline(time.Now().Add(20 * time.Second))
	for l.expecting <= n || len(l.buffered) > 0 {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d tags settled: %v", l.expecting-1, err)
		}
		if f.Type != amqp.FrameMethod {
			continue
		}
		m, err := amqp.DecodeMethod(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		l.take(m)
	}
	for _, p := range l.problems {
		t.Error(p)
	}
	for tag := uint64(1); tag <= n; tag++ {
		if got := l.settled[tag]; got != want[tag] {
			t.Errorf("tag %d settled as %s, want %s", tag, word(got), word(want[tag]))
		}
	}
	// Nothing more: a late answer would be an answer given twice.
	r.nc.SetDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			break
		}
		if f.Type == amqp.FrameMethod {
			m, _ := amqp.DecodeMethod(f.Payload)
			t.Errorf("after every tag was settled: %s %+v", m.Name(), m)
		}
	}
}
