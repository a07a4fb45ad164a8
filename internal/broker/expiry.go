package broker

import (
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
)

// queueExpiry deletes a queue that has gone unused for its x-expires
// time, as RabbitMQ does: unused means no consumers, no basic.get and no
// redeclaration. The timer runs only while the queue has no consumers.
type queueExpiry struct {
	mu    sync.Mutex
	ttl   time.Duration // 0: the queue does not expire
	timer *time.Timer
	gen   uint64 // bumped on every (re)arm, so a stale firing does nothing
	off   bool   // the queue is gone or the node is stopping
}

// setExpires sets the queue's expiry after a declaration or a policy
// change and restarts the clock.
func (q *localQueue) setExpires(ttl time.Duration) {
	q.expiry.mu.Lock()
	q.expiry.ttl = ttl
	q.expiry.mu.Unlock()
	q.used()
}

// used restarts the queue's expiry clock, unless consumers keep it alive.
func (q *localQueue) used() {
	e := &q.expiry
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if e.off || e.ttl <= 0 || q.ConsumerCount() > 0 {
		return
	}
	e.gen++
	gen := e.gen
	e.timer = time.AfterFunc(e.ttl, func() { q.expire(gen) })
}

// consumed stops the clock while a consumer is attached.
func (q *localQueue) consumed() {
	e := &q.expiry
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.gen++
}

// stopExpiry stops the clock for good: the queue is deleted or the node
// stops.
func (q *localQueue) stopExpiry() {
	e := &q.expiry
	e.mu.Lock()
	defer e.mu.Unlock()
	e.off = true
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.gen++
}

func (q *localQueue) expire(gen uint64) {
	e := &q.expiry
	e.mu.Lock()
	stale := e.off || gen != e.gen || q.ConsumerCount() > 0
	e.timer = nil
	e.mu.Unlock()
	if stale {
		return
	}
	// Counted among the server's background work, so that Close waits
	// for the deletion before it stops the definitions.
	s := q.srv
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.bg.Add(1)
	s.mu.Unlock()
	defer s.bg.Done()
	s.log.Info("queue expired", "vhost", q.VHost, "queue", q.Name, "after", e.ttl)
	if _, err := s.meta.DeleteQueue(s.ctx(), q.VHost, q.Name); err != nil {
		s.log.Warn("delete expired queue", "queue", q.Name, "error", err)
	}
}

// expiresOf reads x-expires from effective arguments; 0 means none.
func expiresOf(args map[string]any) time.Duration {
	n, ok := amqp.Int(args["x-expires"])
	if !ok || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Millisecond
}
