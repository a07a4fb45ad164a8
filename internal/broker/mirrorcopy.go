package broker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/mirror"
	"github.com/warren-mq/warren/internal/queue"
)

// mirrorCopy is this node's copy of a queue led from another node: what
// the leader's stream has told it, ready to lead from if it is promoted.
type mirrorCopy struct {
	s          *Server
	key        string
	vhost      string
	name       string
	leader     string
	session    uint64
	epoch      uint64
	link       *homeLink // the stream's link, where acknowledgements go
	mu         sync.Mutex
	live       *mirror.Copy
	refused    bool     // a copy could not be stored: refuse the stream
	applied    uint64   // the offset of the last change applied
	acked      uint64   // the last offset acknowledged
	writes     []cpWait // changes whose stored copies are on their way
	taken      bool     // promoted, or dropped: the stream is refused
	ackPending bool     // on the link's list of copies to acknowledge
}

// cpWait is a change of the stream that waits for n stored copies; until
// then acknowledgements stop at before.
type cpWait struct {
	off, before uint64
	n           int
}

// ackableLocked is the offset the copy can acknowledge now.
func (c *mirrorCopy) ackableLocked() uint64 {
	if len(c.writes) > 0 {
		return c.writes[0].before
	}
	return c.applied
}

// stored is the store's callback for a copy written for change off.
func (c *mirrorCopy) stored(off uint64, err error) {
	c.mu.Lock()
	if err != nil && !c.refused {
		c.refused = true
		c.s.log.Error("mirrored queue: cannot store a message of the leader's stream; refusing it", "queue", c.name, "vhost", c.vhost, "error", err)
	}
	for i := range c.writes {
		if c.writes[i].off == off {
			c.writes[i].n--
			break
		}
	}
	for len(c.writes) > 0 && c.writes[0].n == 0 {
		c.writes = c.writes[1:]
	}
	c.ackLocked(nil)
	c.mu.Unlock()
}

// ackLocked sends what the copy can acknowledge, if it moved.
func (c *mirrorCopy) ackLocked(fs *flushSet) {
	status := byte(replOK)
	if c.refused || c.taken {
		status = replRefused
	}
	off := c.ackableLocked()
	if status == replOK && off <= c.acked {
		return
	}
	c.acked = off
	c.link.sendBatch(fs, opReplAck, func(w *frameWriter) {
		w.str(c.vhost)
		w.str(c.name)
		w.uint(c.session)
		w.uint(off)
		w.b = append(w.b, status)
	})
}

// refuse answers a replication frame that no copy follows.
func (l *homeLink) refuse(vhost, name string, session, off uint64) {
	l.sendBatch(l.batch, opReplAck, func(w *frameWriter) {
		w.str(vhost)
		w.str(name)
		w.uint(session)
		w.uint(off)
		w.b = append(w.b, replRefused)
	})
}

// replicate applies one frame of a leader's stream.
func (l *homeLink) replicate(r *frameReader) {
	vh, name := r.str(), r.str()
	session, epoch, off := r.uint(), r.uint(), r.uint()
	kind := r.byte()
	if r.err != nil {
		return
	}
	s := l.s
	key := queueKey(vh, name)
	if kind == replReset {
		if !l.mayFollow(vh, name, epoch) {
			l.refuse(vh, name, session, off)
			return
		}
		c := &mirrorCopy{s: s, key: key, vhost: vh, name: name, leader: l.peer, session: session, epoch: epoch,
			link: l, live: mirror.NewCopy(), applied: off}
		if old := s.swapCopy(key, c); old != nil {
			old.drop()
		}
		c.mu.Lock()
		c.ackLocked(l.batch)
		c.mu.Unlock()
		return
	}
	c := s.copyOf(key)
	if c == nil || c.session != session || c.link != l {
		l.refuse(vh, name, session, off)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken || c.refused {
		c.ackLocked(l.batch)
		return
	}
	before := c.applied
	c.applied = off
	switch kind {
	case replAdd:
		id, enqueued, flags := r.uint(), int64(r.uint()), r.byte()
		m := r.message()
		if r.err != nil {
			return
		}
		it := mirror.Item{Msg: m, Enqueued: enqueued, Delivered: flags&addDelivered != 0, Unacked: flags&addUnacked != 0}
		if flags&addDurable != 0 && m.Persistent && s.store != nil {
			c.writes = append(c.writes, cpWait{off: off, before: before, n: 1})
			loc, err := s.store.Append(key, encodeMessage(m, enqueued), func(err error) { c.stored(off, err) })
			if err != nil {
				c.writes = c.writes[:len(c.writes)-1]
				c.refused = true
				s.log.Error("mirrored queue: cannot store a message of the leader's stream; refusing it", "queue", name, "vhost", vh, "error", err)
			} else {
				it.Loc = &loc
			}
		}
		if old := c.live.Add(id, it); old != nil {
			s.releaseAt(key, old.Loc)
		}
	case replDeliver, replRequeue, replRemove:
		n := r.uint()
		if n > uint64(len(r.b)) {
			r.fail()
			return
		}
		for range n {
			id := r.uint()
			switch kind {
			case replDeliver:
				c.live.Deliver(id)
			case replRequeue:
				c.live.Requeue(id)
			default:
				if it := c.live.Remove(id); it != nil {
					s.releaseAt(key, it.Loc)
				}
			}
		}
	case replPurge:
		for _, it := range c.live.Purge() {
			s.releaseAt(key, it.Loc)
		}
	default:
		r.fail()
		return
	}
	if !c.ackPending {
		c.ackPending = true
		l.acks = append(l.acks, c)
	}
}

// sendAcks acknowledges what the copies changed in this batch hold;
// the link's reader calls it at the end of each batch.
func (l *homeLink) sendAcks() {
	for _, c := range l.acks {
		c.mu.Lock()
		c.ackPending = false
		c.ackLocked(l.batch)
		c.mu.Unlock()
	}
	clear(l.acks)
	l.acks = l.acks[:0]
}

// mayFollow reports whether this node's definitions, once they have
// caught up with the leader's, name the link's other end as the queue's
// leader in epoch, and this node among its mirrors: the fence against a
// leader that was replaced.
func (l *homeLink) mayFollow(vhost, name string, epoch uint64) bool {
	s := l.s
	if !s.metaSet.Load() {
		return false
	}
	if l.peerApplied > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.meta.WaitApplied(ctx, l.peerApplied)
		cancel()
		if err != nil {
			return false
		}
	}
	def, ok := s.meta.Queue(vhost, name)
	if !ok || s.nodeOf(def) != l.peer || def.Mirroring == nil {
		return false
	}
	return def.Mirroring.Epoch == epoch && slices.Contains(def.Mirroring.Mirrors, s.cfg.NodeName)
}

// copyOf returns this node's copy of the queue with key, or nil.
func (s *Server) copyOf(key string) *mirrorCopy {
	s.copiesMu.Lock()
	defer s.copiesMu.Unlock()
	return s.copies[key]
}

// swapCopy makes c the queue's copy (nil: none) and returns the one it
// replaces.
func (s *Server) swapCopy(key string, c *mirrorCopy) *mirrorCopy {
	s.copiesMu.Lock()
	defer s.copiesMu.Unlock()
	old := s.copies[key]
	if c == nil {
		delete(s.copies, key)
	} else {
		s.copies[key] = c
	}
	return old
}

// drop ends a copy that is no longer wanted, giving back what it stored.
func (c *mirrorCopy) drop() {
	c.mu.Lock()
	c.taken = true
	items := c.live.Clear()
	c.mu.Unlock()
	for _, it := range items {
		c.s.releaseAt(c.key, it.Loc)
	}
}

// take ends the stream into c and returns what it holds, in the queue's
// order, for this node to lead from.
func (c *mirrorCopy) take() []*mirror.Item {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.taken = true
	ids := c.live.IDs()
	out := make([]*mirror.Item, 0, len(ids))
	for _, id := range ids {
		out = append(out, c.live.Get(id))
	}
	c.live = mirror.NewCopy()
	return out
}

// promote fills q, a queue this node has just become the leader of,
// from this node's copy of it, if it has one: messages delivered before
// come back flagged as redelivered.
func (s *Server) promote(q *localQueue) int {
	c := s.swapCopy(q.key, nil)
	if c == nil {
		return 0
	}
	items := c.take()
	for _, it := range items {
		if q.Restore(it.Msg, it.Loc, it.Enqueued, it.Delivered) != queue.Queued {
			s.releaseAt(q.key, it.Loc)
		}
	}
	return len(items)
}

// copyPlaced follows a placement of a queue this node does not lead:
// a copy that is no longer a mirror's is dropped, and one whose leader
// changed stops taking the old leader's stream.
func (s *Server) copyPlaced(q meta.Queue) {
	key := queueKey(q.VHost, q.Name)
	c := s.copyOf(key)
	if c == nil {
		return
	}
	if pl := s.placementOf(q); slices.Contains(pl.Mirrors, s.cfg.NodeName) && c.leader == pl.Leader && c.epoch == pl.Epoch {
		return
	}
	if s.swapCopy(key, nil) == c {
		c.drop()
	} else if o := s.copyOf(key); o != nil {
		s.swapCopy(key, o)
	}
}

// dropCopyAt drops the copy at key, if any: its queue is gone.
func (s *Server) dropCopyAt(key string) {
	if c := s.swapCopy(key, nil); c != nil {
		c.drop()
	}
}
