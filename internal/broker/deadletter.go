package broker

import (
	"errors"
	"sync"
	"sync/atomic"
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
//
// A dead letter is at least once: the source queue's stored copy is
// released only when every copy the dead letter left in its target
// queues is on disk (or, where none had to be, once it is in them). A
// crash in between can leave the message in both queues, never in
// neither; a write that fails leaves the source's copy to come back at
// the next start.

// deadLetter is one message on its way to a dead-letter exchange.
type deadLetter struct {
	vhost, queue string
	// key and loc are the source queue's stored copy, released once the
	// dead letter is safe; loc is nil for a message only in memory.
	key    string
	loc    *store.Location
	args   amqp.Table // the source queue's arguments
	msg    *queue.Message
	reason string
}

// deadLetterer owns the worker goroutine's backlog and the dead letters
// whose writes are still under way.
type deadLetterer struct {
	mu      sync.Mutex // guards backlog
	backlog []deadLetter
	wake    chan struct{} // capacity 1
	// writing counts dead letters whose copies are not all on disk yet;
	// the worker waits for them before it stops, so that a graceful stop
	// releases every source it can.
	writing sync.WaitGroup
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

// take returns the backlog and empties it.
func (d *deadLetterer) take() []deadLetter {
	d.mu.Lock()
	defer d.mu.Unlock()
	work := d.backlog
	d.backlog = nil
	return work
}

// runDeadLetters republishes dead letters until stop closes; then it
// republishes what is left and waits until their writes are done. Close
// closes stop once no connection can settle anything more.
func (s *Server) runDeadLetters(stop <-chan struct{}) {
	d := s.deadLetters
	for {
		select {
		case <-d.wake:
		case <-stop:
			for _, dl := range d.take() {
				s.republishDead(dl)
			}
			d.writing.Wait()
			return
		}
		for _, dl := range d.take() {
			s.republishDead(dl)
		}
	}
}

// deadWrites counts the stored copies of one dead letter on their way to
// disk, and releases the source's copy when the last is there, unless
// one failed. It starts at one, the worker's own hold, so that the source
// cannot be released before every copy has been asked for.
type deadWrites struct {
	s       *Server
	dl      *deadLetter
	pending atomic.Int32
	failed  atomic.Bool
}

// done is the store's callback for one copy, and the worker's when it has
// asked for all of them (err nil).
func (w *deadWrites) done(err error) {
	if err != nil {
		w.failed.Store(true)
	}
	if w.pending.Add(-1) != 0 {
		return
	}
	if w.failed.Load() {
		w.s.log.Warn("dead letter not written; its source keeps the message", "queue", w.dl.queue, "vhost", w.dl.vhost)
	} else {
		w.s.releaseAt(w.dl.key, w.dl.loc)
	}
	w.s.deadLetters.writing.Done()
}

// republishDead routes one dead letter from its queue's dead-letter
// exchange and enqueues it, on disk where it is persistent and the target
// durable, then gives back the source's copy (see deadWrites).
func (s *Server) republishDead(dl deadLetter) {
	s.deadLetters.writing.Add(1)
	w := &deadWrites{s: s, dl: &dl}
	w.pending.Store(1)
	defer w.done(nil)
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
	qs, remote, ok := v.route(dlx, key, headers, nil, nil)
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
			w.pending.Add(1)
			loc = s.storeCopy(q, m, &data, w.done)
		}
		lg := q.repl.Load()
		if lg != nil {
			w.pending.Add(1)
		}
		res := q.Publish(m, loc, nil)
		if lg != nil {
			if res == queue.Queued {
				lg.await(w.done)
			} else {
				w.done(nil)
			}
		}
		if res != queue.Queued {
			s.releaseAt(q.key, loc)
		}
	}
	kept := remote[:0]
	for _, rq := range remote {
		if dl.reason != "rejected" && deadLetterCycle(props.Headers, rq.def.Name) {
			s.log.Warn("dead-letter cycle: message dropped", "queue", rq.def.Name, "from", dl.queue, "reason", dl.reason)
			continue
		}
		kept = append(kept, rq)
	}
	if len(kept) > 0 {
		// As with a full queue here, a queue of another node that refuses
		// the message drops it; one that cannot be reached leaves the
		// source's copy in place.
		w.pending.Add(int32(nodes(kept)))
		s.forward(nil, dl.vhost, kept, m, func(_ *flushSet, err error) {
			if errors.Is(err, errRejected) {
				err = nil
			}
			w.done(err)
		})
	}
}

// storeCopy writes q's copy of a persistent message, encoding it into
// *data the first time, and returns where it is, or nil if the write
// could not start; done gets the write's outcome either way.
func (s *Server) storeCopy(q *localQueue, m *queue.Message, data *[]byte, done func(error)) *store.Location {
	if *data == nil {
		*data = encodeMessage(m, time.Now().UnixNano())
	}
	at, err := s.store.Append(q.key, *data, done)
	if err != nil {
		done(err)
		return nil
	}
	return &at
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
