package broker

import (
	"errors"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
)

// Consumers of a mirrored queue follow its leader. When the queue's node
// dies, its link breaks, or its leadership moves to another node, each
// consumer of it, on whatever node its client is connected to, is
// attached again to the queue's new leader under the same tag, as
// RabbitMQ's consumers of a mirrored queue carry on after a failover.
// What the old leader had delivered and not seen settled comes again
// from the new one, flagged redelivered. A consumer that asked for
// x-cancel-on-ha-failover gets basic.cancel instead, and consumers of a
// queue that is not mirrored are cancelled as before.
//
// The channel's reader owns its consumers map, so the consumer that
// follows is a new one: the follower attaches it to the queue and leaves
// it in the channel's moving map (under ch.mu), and the reader takes it
// into its map the next time it looks there (takeMoved).

// Pauses between attempts to reach a queue's new leader: the first comes
// before the placement has usually changed, later ones wait longer.
const (
	followFirst = 50 * time.Millisecond
	followMax   = time.Second
)

// followFailover starts moving k, a consumer whose queue has left its
// node, to the queue's new leader. It reports false when k should be
// cancelled instead: the queue is not mirrored, or the consumer asked to
// be told of failovers.
func (s *Server) followFailover(k *consumer) bool {
	if cancelOnFailover(k.args) {
		return false
	}
	ch := k.ch
	def, ok := s.meta.Queue(ch.c.vh.name, k.queue)
	if !ok || def.Mirroring == nil {
		return false
	}
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return true
	}
	if cur, ok := ch.moving[k.tag]; ok && cur != k {
		// Already on its way, or a newer consumer took its place.
		ch.mu.Unlock()
		return true
	}
	if ch.moving == nil {
		ch.moving = map[string]*consumer{}
	}
	ch.moving[k.tag] = nil
	ch.hasMoving.Store(true)
	ch.mu.Unlock()
	if !s.goLink(func() { s.follow(k) }) {
		ch.mu.Lock()
		delete(ch.moving, k.tag)
		ch.mu.Unlock()
	}
	return true
}

// follow attaches a successor of k to its queue's leader, wherever that
// is now, retrying until it succeeds, the queue is deleted, the consumer
// is cancelled or its channel closes.
func (s *Server) follow(k *consumer) {
	ch := k.ch
	wait := followFirst
	for {
		select {
		case <-s.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, followMax)
		ch.mu.Lock()
		cur, waiting := ch.moving[k.tag]
		closed := ch.closed
		ch.mu.Unlock()
		if closed || !waiting || cur != nil {
			return
		}
		done, err := s.attachAgain(k)
		if done {
			return
		}
		if err != nil {
			s.log.Info("consumer of a mirrored queue cancelled after failover", "queue", k.queue, "vhost", ch.c.vh.name, "consumer", k.tag, "error", err)
			ch.mu.Lock()
			if cur, ok := ch.moving[k.tag]; ok && cur == nil {
				delete(ch.moving, k.tag)
			}
			ch.mu.Unlock()
			ch.queueDeleted(k)
			return
		}
	}
}

// attachAgain makes one attempt to attach a successor of k to its
// queue's current leader. done reports success, or that there is nothing
// left to do; err, that the consumer is to be cancelled.
func (s *Server) attachAgain(k *consumer) (done bool, err error) {
	ch := k.ch
	vh := ch.c.vh
	vh.mu.RLock()
	q, rq := vh.queues[k.queue], vh.remote[k.queue]
	vh.mu.RUnlock()
	if q == nil && rq == nil {
		return false, errors.New("queue deleted")
	}
	next := &consumer{ch: ch, tag: k.tag, queue: k.queue, noAck: k.noAck, exclusive: k.exclusive,
		priority: k.priority, prefetch: k.prefetch, args: k.args}
	// Until adopt counts them exactly, what k holds unsettled counts
	// against next's prefetch.
	ch.mu.Lock()
	next.inflight = k.inflight
	ch.mu.Unlock()
	if q != nil {
		if q.Deleted() {
			return false, nil // a stale view: look again
		}
		next.q = q
		for _, o := range q.Consumers() {
			if x, ok := o.(interface{ isExclusive() bool }); ok && (x.isExclusive() || k.exclusive) {
				return false, errors.New("queue in exclusive use")
			}
		}
		if !q.AddConsumer(next) {
			return false, nil
		}
		if !ch.adopt(k, next) {
			s.consumerGone(q, next)
			return !next.gone(), nil
		}
		q.consumed()
		return true, nil
	}
	link, lerr := s.peerLink(rq.def.Node)
	if lerr != nil {
		return false, nil
	}
	if err := ch.attachRemote(next, rq, link); err != nil {
		var ae *amqpError
		if errors.As(err, &ae) && ae.code != codeNotFound {
			return false, err
		}
		return false, nil
	}
	if !ch.adopt(k, next) {
		ch.cancelRemote(next)
		return !next.gone(), nil
	}
	return true, nil
}

// adopt leaves next, attached to its queue, for the reader to take in
// place of k, the consumer it follows; false if that consumer is no
// longer wanted, or next lost its queue already (that loss, seen under
// ch.mu either before or after this, is never missed: see
// followFailover). What k delivered and the client has not settled
// counts against next's prefetch from now on, as RabbitMQ's channel
// still counts it after a failover. A remote consumer starts passing
// deliveries on from here.
func (ch *channel) adopt(k, next *consumer) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	cur, waiting := ch.moving[next.tag]
	if ch.closed || !waiting || cur != nil || next.gone() {
		return false
	}
	next.inflight = 0
	for i := range ch.unacked {
		d := &ch.unacked[i]
		if d.done || (d.cons != k && d.cons != next) {
			continue
		}
		d.cons = next
		next.inflight++
	}
	k.inflight = 0
	ch.moving[next.tag] = next
	if rc := next.remote; rc != nil {
		rc.ready = true
		ch.drainRemoteLocked(next, nil)
	}
	return true
}

// takeMoved puts the consumers that followed a failover into the
// reader's map. Reader goroutine only.
func (ch *channel) takeMoved() {
	if !ch.hasMoving.Load() {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for tag, k := range ch.moving {
		if k != nil {
			ch.consumers[tag] = k
			delete(ch.moving, tag)
		}
	}
	ch.hasMoving.Store(len(ch.moving) > 0)
}

// movingLocked reports whether the consumer tag is on its way to a new
// leader. ch.mu held.
func (ch *channel) movingLocked(tag string) bool {
	_, ok := ch.moving[tag]
	return ok
}

// stopMoving ends the move of the consumer tag, if one is under way, and
// returns the successor already attached, if any, for the caller to
// remove.
func (ch *channel) stopMoving(tag string) *consumer {
	if !ch.hasMoving.Load() {
		return nil
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	next := ch.moving[tag]
	delete(ch.moving, tag)
	ch.hasMoving.Store(len(ch.moving) > 0)
	return next
}

// cancelOnFailover reports whether a consumer's arguments ask for
// basic.cancel when its mirrored queue fails over.
func cancelOnFailover(args amqp.Table) bool {
	b, _ := args["x-cancel-on-ha-failover"].(bool)
	return b
}
