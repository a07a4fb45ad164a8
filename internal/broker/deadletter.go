package broker

import (
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/queue"
	"github.com/warren-mq/warren/internal/store"
)

// Dead-lettering, as RabbitMQ does it: a message rejected without requeue,
// expired, or dropped at a queue's length limit is republished to the
// queue's x-dead-letter-exchange (with x-dead-letter-routing-key, or its
// own routing key), carrying an x-death header that says where and why.
// Queues hand such messages to a worker goroutine, because they drop them
// with their own lock held and the republish takes other queues' locks.

// deadLetter is one message on its way to a dead-letter exchange.
type deadLetter struct {
	vhost, queue string
	args         amqp.Table // the source queue's arguments
	msg          *queue.Message
	reason       string
}

// deadLetterer owns the worker goroutine and its backlog.
type deadLetterer struct {
	mu      sync.Mutex // guards backlog
	backlog []deadLetter
	wake    chan struct{} // capacity 1
}

func newDeadLetterer() *deadLetterer {
	return &deadLetterer{wake: make(chan struct{}, 1)}
}

// wants reports whether a queue with these arguments dead-letters.
func wantsDeadLetter(args amqp.Table) bool {
	_, ok := args["x-dead-letter-exchange"].(string)
	return ok
}

// add queues a message for its dead-letter exchange; safe under any lock.
func (d *deadLetterer) add(dl deadLetter) {
	d.mu.Lock()
	d.backlog = append(d.backlog, dl)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// runDeadLetters republishes dead letters until stop closes.
func (s *Server) runDeadLetters(stop <-chan struct{}) {
	d := s.deadLetters
	for {
		select {
		case <-d.wake:
		case <-stop:
			return
		}
		d.mu.Lock()
		work := d.backlog
		d.backlog = nil
		d.mu.Unlock()
		for _, dl := range work {
			s.republishDead(dl)
		}
	}
}

// republishDead routes one dead letter from its queue's dead-letter
// exchange and enqueues it, on disk where it is persistent and the target
// durable.
func (s *Server) republishDead(dl deadLetter) {
	v := s.vhost(dl.vhost)
	if v == nil {
		return
	}
	dlx, _ := dl.args["x-dead-letter-exchange"].(string)
	key := dl.msg.RoutingKey
	if k, ok := dl.args["x-dead-letter-routing-key"].(string); ok {
		key = k
	}
	props, err := amqp.DecodeProperties(dl.msg.Properties)
	if err != nil {
		s.log.Warn("dead letter with undecodable properties dropped", "queue", dl.queue, "error", err)
		return
	}
	addDeath(&props, dl)
	m := &queue.Message{
		TTL:        -1,
		Exchange:   dlx,
		RoutingKey: key,
		Properties: amqp.AppendProperties(nil, &props),
		Body:       dl.msg.Body,
		Persistent: dl.msg.Persistent,
		Priority:   dl.msg.Priority,
	}
	headers := func() amqp.Table { return props.Headers }
	qs, ok := v.route(dlx, key, headers, nil)
	if !ok {
		s.log.Debug("dead-letter exchange does not exist; message dropped", "exchange", dlx, "queue", dl.queue)
		return
	}
	var data []byte
	for _, q := range qs {
		if dl.reason != "rejected" && deadLetterCycle(props.Headers, q.Name) {
			// Round and round with no client ever rejecting it: RabbitMQ
			// drops such a message rather than loop forever.
			s.log.Warn("dead-letter cycle: message dropped", "queue", q.Name, "from", dl.queue, "reason", dl.reason)
			continue
		}
		var loc *store.Location
		if s.store != nil && m.Persistent && q.def.Durable {
			if data == nil {
				data = encodeMessage(m, time.Now().UnixNano())
			}
			if l, err := s.store.Append(q.key, data, nil); err == nil {
				loc = &l
			}
		}
		if q.Publish(m, loc, nil) != queue.Queued {
			s.releaseAt(q.key, loc)
		}
	}
}

// addDeath records the death in the x-death header: one entry per queue
// and reason, newest first, with a count, as RabbitMQ writes it; and the
// x-first-death-* headers the first time.
func addDeath(p *amqp.Properties, dl deadLetter) {
	if p.Headers == nil {
		p.Headers = amqp.Table{}
	}
	deaths, _ := p.Headers["x-death"].([]any)
	count := int64(1)
	rest := make([]any, 0, len(deaths)+1)
	for _, d := range deaths {
		t, ok := d.(amqp.Table)
		if ok && t["queue"] == dl.queue && t["reason"] == dl.reason {
			if n, ok := t["count"].(int64); ok {
				count = n + 1
			}
			continue
		}
		rest = append(rest, d)
	}
	entry := amqp.Table{
		"count":        count,
		"reason":       dl.reason,
		"queue":        dl.queue,
		"time":         time.Now().Truncate(time.Second),
		"exchange":     dl.msg.Exchange,
		"routing-keys": []any{dl.msg.RoutingKey},
	}
	if p.Expiration != "" {
		// The expiration goes with the death, so the message does not
		// expire again in the dead-letter queue.
		entry["original-expiration"] = p.Expiration
		p.Expiration = ""
		p.Flags &^= amqp.FlagExpiration
	}
	p.Headers["x-death"] = append([]any{entry}, rest...)
	if _, ok := p.Headers["x-first-death-reason"]; !ok {
		p.Headers["x-first-death-reason"] = dl.reason
		p.Headers["x-first-death-queue"] = dl.queue
		p.Headers["x-first-death-exchange"] = dl.msg.Exchange
	}
	p.Flags |= amqp.FlagHeaders
}

// deadLetterCycle reports whether dead-lettering into queue would close a
// loop that no client broke: the queue is already in the message's x-death
// and none of its deaths was a rejection.
func deadLetterCycle(headers amqp.Table, queue string) bool {
	// The message would reach queue a second time: it has died there
	// before, the death just recorded included.
	deaths, _ := headers["x-death"].([]any)
	seen := false
	for _, d := range deaths {
		t, ok := d.(amqp.Table)
		if !ok {
			continue
		}
		if t["reason"] == "rejected" {
			return false
		}
		if t["queue"] == queue {
			seen = true
		}
	}
	return seen
}
