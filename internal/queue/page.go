package queue

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/store"
)

// Paging. A queue longer than memory keeps only its head in RAM, as
// RabbitMQ's lazy and v2 classic queues do. Each priority level has its
// ready messages in ID order in two parts: the head, in memory with
// bodies, and behind it the tail, which is a FIFO of small fixed-size
// index entries in a file of the queue's own; the bodies of the tail live
// in the message store. New messages go to the tail while it is not
// empty, so order holds; the head is refilled from the tail in batches as
// it drains. Requeued messages were delivered from the head, so they are
// older than everything in the tail and go back into the head.

// Pager keeps the bodies of messages that leave memory. The broker
// implements it over the message store.
type Pager interface {
	// Stash writes m so that it can be read back, and returns where. It
	// is for messages not kept in the store already.
	Stash(m *Message) (store.Location, error)
	// Stored reports whether a message kept at loc can be read back:
	// false when its write failed, so that it is stashed again before
	// it leaves memory.
	Stored(loc store.Location) bool
	// Load reads back a message kept at loc.
	Load(loc store.Location) (*Message, error)
	// Release gives back a kept message that leaves the queue from its
	// tail unread (purge, delete), or that could not be read back.
	Release(loc store.Location)
	// Error is told when paging fails: the queue keeps its messages in
	// memory meanwhile, or, for one that cannot be read back, drops it.
	Error(err error)
}

// Memory is a node's budget for message bodies held by queues' heads.
// While the bodies held exceed the limit, queues hold only a short head
// and send the rest to their tails. It is shared by every queue of a node.
type Memory struct {
	used  atomic.Int64
	limit atomic.Int64
}

// SetLimit sets the budget in octets; 0 or less means no limit.
func (m *Memory) SetLimit(n int64) { m.limit.Store(n) }

// Used returns the octets held now.
func (m *Memory) Used() int64 { return m.used.Load() }

func (m *Memory) over() bool {
	l := m.limit.Load()
	return l > 0 && m.used.Load() > l
}

// Paging configures a queue's tail.
type Paging struct {
	// Pager keeps the bodies; nil means the queue never pages.
	Pager Pager
	// Dir holds the queue's tail index files.
	Dir string
	// Memory is the node's budget; nil means no node-wide budget.
	Memory *Memory
}

// Sizes of the head and the tail's batches. Each is bounded in messages
// and in the memory they take (msgCost; for messages read back, their
// bodies, which the index records, as an estimate), so that large
// messages do not fill memory in a queue that pages.
const (
	// minHead is the number of messages a head keeps before any go to
	// the tail: what one refill brings back.
	minHead = 512
	// headBytes bounds the memory of a head that pages, and of one
	// refill; a head always takes at least one message.
	headBytes = 4 << 20
	// tailBatch is the number of index entries written to the tail file
	// at once.
	tailBatch = 1024
	// tailBatchBytes writes the tail's buffer out sooner when its
	// messages take that much memory.
	tailBatchBytes = 4 << 20
	// entrySize is an index entry's size in the tail file: ID, segment,
	// offset, expiry (8 octets each), body size and flags (4 each).
	entrySize = 40
)

// msgCost is what a message in the head counts against the budget: its
// body and properties and an estimate of the rest.
func msgCost(m *Message) int64 { return int64(len(m.Body)+len(m.Properties)) + 160 }

// tail is the part of a level's ready messages that is not in memory:
// index entries in a file (read from rOff, written up to wOff), then the
// newest entries, still in memory in buf until a batch is written.
type tail struct {
	f          *os.File
	rOff, wOff int64
	buf        []Entry
	n          int   // entries in the file and buf
	bufCost    int64 // memory held by buf's messages
	fileBytes  int64 // body octets of the messages indexed in the file
}

// pagingOn reports whether the queue can page.
func (q *Queue) pagingOn() bool { return q.paging.Pager != nil }

// toTailLocked reports whether a new message for level l goes to its tail.
func (q *Queue) toTailLocked(l *level) bool {
	if !q.pagingOn() {
		return false
	}
	if l.tail != nil && l.tail.n > 0 {
		return true
	}
	if len(l.ready)-l.head < minHead && l.headCost < headBytes {
		return false
	}
	return q.limits.Lazy || q.paging.Memory != nil && q.paging.Memory.over()
}

// addCost counts n octets more (or less) of messages in memory, for a
// queue that pages.
func (q *Queue) addCost(n int64) {
	if q.paging.Memory != nil {
		q.ramCost += n
		q.paging.Memory.used.Add(n)
	}
}

// pushTailLocked appends e, whose message is in memory, to l's tail,
// writing a batch out when one is full.
func (q *Queue) pushTailLocked(l *level, e Entry) {
	t := l.tail
	if t == nil {
		t = &tail{}
		l.tail = t
	}
	t.buf = append(t.buf, e)
	t.n++
	c := msgCost(e.Msg)
	t.bufCost += c
	q.addCost(c)
	if len(t.buf) >= tailBatch || t.bufCost >= tailBatchBytes {
		q.writeTailLocked(t)
	}
}

// writeTailLocked writes the tail's buffered entries to its file, stashing
// the bodies that are not in the store yet. Entries that cannot be stashed
// keep the batch in memory; writing is tried again with the next batch.
func (q *Queue) writeTailLocked(t *tail) {
	for i := range t.buf {
		e := &t.buf[i]
		if e.Loc != nil && q.paging.Pager.Stored(*e.Loc) {
			continue
		}
		loc, err := q.paging.Pager.Stash(e.Msg)
		if err != nil {
			q.pageErr(fmt.Errorf("stash message: %w", err))
			return
		}
		if e.Loc != nil {
			// Its first write failed: that record is given back, once.
			q.paging.Pager.Release(*e.Loc)
		}
		e.Loc = &loc
	}
	if t.f == nil {
		f, err := os.CreateTemp(q.paging.Dir, "tail-*.idx")
		if err != nil {
			q.pageErr(fmt.Errorf("create tail file: %w", err))
			return
		}
		// The file is scratch: nothing reads it after a restart, when the
		// store is the truth. Unlinked now, it goes when it is closed.
		os.Remove(f.Name())
		t.f = f
	}
	b := make([]byte, 0, len(t.buf)*entrySize)
	for i := range t.buf {
		b = appendIndexEntry(b, &t.buf[i])
	}
	if _, err := t.f.WriteAt(b, t.wOff); err != nil {
		q.pageErr(fmt.Errorf("write tail file: %w", err))
		return
	}
	t.wOff += int64(len(b))
	q.pageFailing = false
	for i := range t.buf {
		t.fileBytes += int64(len(t.buf[i].Msg.Body))
	}
	q.addCost(-t.bufCost)
	clear(t.buf)
	t.buf = t.buf[:0]
	t.bufCost = 0
}

// pageErr reports a paging failure, once until paging works again.
func (q *Queue) pageErr(err error) {
	if !q.pageFailing {
		q.pageFailing = true
		q.paging.Pager.Error(err)
	}
}

const flagRedelivered = 1

func appendIndexEntry(b []byte, e *Entry) []byte {
	b = binary.BigEndian.AppendUint64(b, e.ID)
	b = binary.BigEndian.AppendUint64(b, e.Loc.Segment)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Loc.Offset))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Expires))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Msg.Body)))
	var flags uint32
	if e.Redelivered {
		flags |= flagRedelivered
	}
	return binary.BigEndian.AppendUint32(b, flags)
}

// readIndexEntry decodes an index entry, returning it (without its
// message) and the message's body size.
func readIndexEntry(b []byte) (Entry, int64) {
	loc := &store.Location{Segment: binary.BigEndian.Uint64(b[8:]), Offset: int64(binary.BigEndian.Uint64(b[16:]))}
	return Entry{
		ID:          binary.BigEndian.Uint64(b),
		Loc:         loc,
		Expires:     int64(binary.BigEndian.Uint64(b[24:])),
		Redelivered: binary.BigEndian.Uint32(b[36:])&flagRedelivered != 0,
	}, int64(binary.BigEndian.Uint32(b[32:]))
}

// popTailLocked takes up to max of the oldest entries of t, and no more
// than maxBytes of memory (at least one entry): from the file first, then
// from buf. Entries from the file have no message yet; sizes has their
// body sizes (nil for entries from buf).
func (q *Queue) popTailLocked(t *tail, max int, maxBytes int64) (out []Entry, sizes []int64) {
	if t.rOff < t.wOff {
		n := min(int((t.wOff-t.rOff)/entrySize), max)
		b := make([]byte, n*entrySize)
		err := os.ErrClosed // after CloseFiles
		if t.f != nil {
			_, err = t.f.ReadAt(b, t.rOff)
		}
		if err != nil {
			// The scratch file cannot be read: what it indexes is lost
			// to this queue until the next restart finds it in the store.
			q.paging.Pager.Error(fmt.Errorf("read tail file: %w", err))
			lost := int((t.wOff - t.rOff) / entrySize)
			t.n -= lost
			t.rOff = t.wOff
			q.readyN -= lost
			q.readyBytes -= t.fileBytes
			t.fileBytes = 0
			q.resetTailLocked(t)
			return nil, nil
		}
		out = make([]Entry, 0, n)
		sizes = make([]int64, 0, n)
		var taken int64
		for i := 0; i < n && (i == 0 || taken < maxBytes); i++ {
			e, size := readIndexEntry(b[i*entrySize:])
			out, sizes = append(out, e), append(sizes, size)
			taken += size
			t.fileBytes -= size
		}
		n = len(out)
		t.rOff += int64(n * entrySize)
		t.n -= n
		q.resetTailLocked(t)
		return out, sizes
	}
	n := min(len(t.buf), max)
	var taken int64
	for i := 0; i < n; i++ {
		if i > 0 && taken >= maxBytes {
			n = i
			break
		}
		taken += msgCost(t.buf[i].Msg)
	}
	out = make([]Entry, n)
	copy(out, t.buf)
	rest := copy(t.buf, t.buf[n:])
	clear(t.buf[rest:])
	t.buf = t.buf[:rest]
	for i := range out {
		t.bufCost -= msgCost(out[i].Msg)
	}
	t.n -= n
	q.resetTailLocked(t)
	return out, nil
}

// resetTailLocked closes the file once everything in it has been read: a
// node with many queues does not keep a file open for each that paged
// once.
func (q *Queue) resetTailLocked(t *tail) {
	if t.rOff == t.wOff && t.f != nil {
		t.f.Close()
		t.f = nil
		t.rOff, t.wOff = 0, 0
	}
}

// CloseFiles closes the queue's tail files, for a node that stops: what
// they index stays in the store, where the next start finds it.
func (q *Queue) CloseFiles() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.levels {
		if t := q.levels[i].tail; t != nil && t.f != nil {
			t.f.Close()
			t.f = nil
		}
	}
}

// refillLocked moves a batch from l's tail to its head, reading the
// messages back. It reports whether the head has messages now.
func (q *Queue) refillLocked(l *level) bool {
	for l.head == len(l.ready) && l.tail != nil && l.tail.n > 0 {
		batch, sizes := q.popTailLocked(l.tail, minHead, headBytes)
		l.compact()
		for i, e := range batch {
			if e.Msg == nil {
				m, err := q.paging.Pager.Load(*e.Loc)
				if err != nil {
					q.paging.Pager.Error(fmt.Errorf("message %d of queue '%s' in vhost '%s' cannot be read back; dropped: %w", e.ID, q.Name, q.VHost, err))
					q.paging.Pager.Release(*e.Loc)
					q.readyN--
					q.readyBytes -= sizes[i]
					continue
				}
				e.Msg = m
				q.addCost(msgCost(m))
			}
			l.ready = append(l.ready, e)
			l.headCost += msgCost(e.Msg)
		}
	}
	return l.head < len(l.ready)
}

// clearTailLocked empties l's tail, giving back what it kept, and returns
// the entries that were still in memory.
func (q *Queue) clearTailLocked(l *level) []Entry {
	t := l.tail
	if t == nil {
		return nil
	}
	for t.rOff < t.wOff {
		batch, _ := q.popTailLocked(t, tailBatch, math.MaxInt64)
		if batch == nil {
			break
		}
		for _, e := range batch {
			q.paging.Pager.Release(*e.Loc)
		}
	}
	out, _ := q.popTailLocked(t, len(t.buf), math.MaxInt64)
	q.addCost(-q.ramCostOf(out))
	if t.f != nil {
		t.f.Close()
	}
	l.tail = nil
	return out
}

func (q *Queue) ramCostOf(es []Entry) int64 {
	var n int64
	for i := range es {
		n += msgCost(es[i].Msg)
	}
	return n
}
