package queue

import (
	"github.com/warren-mq/warren/internal/store"
)

// Journal hears of every change to a queue's contents, in the order the
// queue makes them, so that copies elsewhere (a mirrored queue's
// mirrors) can follow. Its methods are called with the queue locked:
// they must not call back into the queue.
//
// The queue reports what it does itself; its owner reports what happens
// to delivered messages outside it (acks, rejects, messages taken
// without ack) with Removed.
type Journal interface {
	// Added: e entered the queue at enqueued (Unix nanoseconds).
	Added(e *Entry, enqueued int64)
	// Delivered: e went to a consumer or to basic.get.
	Delivered(e *Entry)
	// Requeued: delivered messages are back, ready.
	Requeued(es []Entry)
	// Removed: e left the queue (dropped at the length limit, expired,
	// or settled).
	Removed(e *Entry)
	// Purged: every ready message left the queue.
	Purged()
}

// SetJournal makes j hear of every change from now on (nil stops it),
// and returns the ready messages the queue holds now, in no particular
// order, for j to start from. Messages waiting in a tail file come
// without their message; their Loc says where the pager keeps it.
func (q *Queue) SetJournal(j Journal) []Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.journal = j
	if j == nil {
		return nil
	}
	out := make([]Entry, 0, q.readyN)
	for i := range q.levels {
		l := &q.levels[i]
		out = append(out, l.ready[l.head:]...)
		t := l.tail
		if t == nil {
			continue
		}
		if t.f != nil && t.rOff < t.wOff {
			b := make([]byte, t.wOff-t.rOff)
			if _, err := t.f.ReadAt(b, t.rOff); err == nil {
				for off := 0; off+entrySize <= len(b); off += entrySize {
					e, _ := readIndexEntry(b[off:])
					out = append(out, e)
				}
			} else {
				q.paging.Pager.Error(err)
			}
		}
		out = append(out, t.buf...)
	}
	return out
}

// Restore appends a message taken over from a mirror's copy, when this
// node becomes the queue's leader: enqueued is when it first entered the
// queue, and loc where this node's store keeps it (nil if it does not).
// As with Recover, the length limits do not apply.
func (q *Queue) Restore(m *Message, loc *store.Location, enqueued int64, redelivered bool) PublishResult {
	return q.add(m, loc, nil, enqueued, redelivered, true)
}
