// Package queue is one queue's messages and consumers: ordered ready
// messages, delivery to consumers in turn by priority, requeue to the
// original position. It knows nothing of channels or the wire: consumers
// are a small interface that the broker implements.
//
// Locking: a Queue has one mutex. Consumer.Deliver is called with it held,
// so a consumer must never call back into a Queue from Deliver; lock order
// is Queue, then whatever the consumer locks.
package queue

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/store"
)

// Message is one published message. It is immutable once published and may
// sit in several queues at once.
type Message struct {
	// TTL is the message's own expiration property; negative means none.
	TTL        time.Duration
	Exchange   string
	RoutingKey string
	// Properties is the content header's property list in wire form.
	Properties []byte
	Body       []byte
	Persistent bool
	Priority   uint8
}

// Size is the message's size in octets as max-length-bytes counts it.
func (m *Message) Size() int { return len(m.Body) }

// Entry is a message in one queue: its position (ID, increasing in
// publish order) and whether it was delivered before.
type Entry struct {
	ID          uint64
	Msg         *Message
	Redelivered bool
	// Loc is where the store keeps this queue's copy of the message; nil
	// for a message that lives only in memory.
	Loc *store.Location
	// Expires is when the message expires in this queue (Unix
	// nanoseconds); 0 never.
	Expires int64
}

// Batch is handed from Publish and Kick through to Consumer.Deliver: the
// caller's record of what its deliveries need once its batch of work is
// done (the broker collects the sockets it wrote to and flushes each once).
// The queue only passes it on; nil means no batch.
type Batch any

// Consumer receives messages from queues.
type Consumer interface {
	// Deliver hands e to the consumer, or returns false when it cannot take
	// a message now (prefetch full, flow stopped, writer backed up); the
	// queue then tries the next consumer. Called with the queue locked.
	Deliver(q *Queue, e Entry, b Batch) bool
	// Priority is the consumer's x-priority; higher goes first.
	Priority() int
}

// Queue holds messages and consumers. It is safe for concurrent use.
type Queue struct {
	// Name and VHost are immutable.
	Name  string
	VHost string

	mu         sync.Mutex // guards everything below
	levels     []level    // ready messages by priority; one level without priorities
	readyN     int        // ready messages across levels
	readyBytes int64      // body octets of the ready messages
	limits     Limits
	onDrop     func(Entry, DropReason) // immutable
	nextID     uint64
	consumers  []Consumer // sorted by priority, highest first
	next       int        // round-robin position within consumers
	deleted    bool
	unacked    atomic.Int64
	settled    atomic.Uint64
	counts     Counts

	journal Journal // nil unless the queue is mirrored

	paging      Paging // immutable
	ramCost     int64  // what the heads and tail buffers count against paging.Memory
	pageFailing bool   // a paging error was reported and nothing has worked since
}

// level holds the ready messages of one priority: ready[head:] in ID
// order, then those in the tail, if any (see page.go).
type level struct {
	ready []Entry
	head  int
	tail  *tail
	// headCost is what the messages of ready[head:] cost in memory
	// (msgCost), which bounds the head of a queue that pages.
	headCost int64
}

// compact drops the consumed prefix once it is worth a copy.
func (l *level) compact() {
	if l.head == len(l.ready) {
		l.ready = l.ready[:0]
		l.head = 0
		if cap(l.ready) > 4096 {
			l.ready = nil
		}
		return
	}
	if l.head > 1024 && l.head*2 > len(l.ready) {
		n := copy(l.ready, l.ready[l.head:])
		clear(l.ready[n:])
		l.ready = l.ready[:n]
		l.head = 0
	}
}

// merge puts entries (in ID order) back among the level's ready
// messages, in ID order.
func (l *level) merge(es []Entry) {
	live := l.ready[l.head:]
	// Usually every requeued message is older than every ready one: they
	// go in front, into the room the consumed prefix left if it is enough.
	if len(live) == 0 || es[len(es)-1].ID < live[0].ID {
		if l.head >= len(es) {
			l.head -= len(es)
			copy(l.ready[l.head:], es)
			return
		}
		l.ready = append(slices.Clip(es), live...)
		l.head = 0
		return
	}
	out := make([]Entry, 0, len(live)+len(es))
	i, j := 0, 0
	for i < len(live) && j < len(es) {
		if es[j].ID < live[i].ID {
			out = append(out, es[j])
			j++
		} else {
			out = append(out, live[i])
			i++
		}
	}
	out = append(out, live[i:]...)
	out = append(out, es[j:]...)
	l.ready, l.head = out, 0
}

// Counts are a queue's message counters since it was created, for
// statistics.
type Counts struct {
	Published   uint64 // messages accepted into the queue
	Delivered   uint64 // handed to consumers, redeliveries included
	Redelivered uint64 // handed to consumers or got again after a requeue
	Got         uint64 // taken with basic.get
	Settled     uint64 // acked, or rejected without requeue
}

// Stats is a queue's state at one moment.
type Stats struct {
	Ready      int   // messages waiting for a consumer
	ReadyBytes int64 // body octets of the ready messages
	Unacked    int   // delivered, not yet settled
	Consumers  int
	// PagedOut and PagedOutBytes count the ready messages (and their
	// body octets) that are on disk only.
	PagedOut      int
	PagedOutBytes int64
	Counts
}

// Limits bound a queue's ready messages (unacked ones do not count), as
// RabbitMQ's x-max-length, x-max-length-bytes and x-overflow do.
type Limits struct {
	MaxLen   int64 // messages; negative means no limit
	MaxBytes int64 // body octets; negative means no limit
	// RejectPublish refuses new messages at the limit (reject-publish);
	// otherwise the oldest are dropped to make room (drop-head).
	RejectPublish bool
	// MessageTTL expires messages that wait longer (x-message-ttl);
	// negative means never. Expired messages leave from the head, as in
	// RabbitMQ: when they reach it, or when the queue is looked at.
	MessageTTL time.Duration
	// SingleActive delivers to one consumer at a time, the earliest
	// registered; the next takes over when it leaves
	// (x-single-active-consumer).
	SingleActive bool
	// Lazy sends messages out of memory as soon as the head holds a
	// batch, whatever the node's memory budget (x-queue-mode lazy). It
	// matters only to a queue that pages.
	Lazy bool
	// MaxPriority makes a priority queue (x-max-priority): messages with a
	// higher priority property, up to this, are delivered first. 0 means
	// none. It is fixed when the queue is made.
	MaxPriority uint8
}

// NoLimits returns the limits of a queue without length limits.
func NoLimits() Limits { return Limits{MaxLen: -1, MaxBytes: -1, MessageTTL: -1} }

// DropReason says why a message left a queue undelivered, in the words of
// RabbitMQ's x-death header.
type DropReason string

// Drop reasons.
const (
	DropMaxLen  DropReason = "maxlen"
	DropExpired DropReason = "expired"
)

// New returns an empty queue with the given limits. onDrop, if not nil, is
// called (with the queue locked, so it must not call back into a queue)
// for each message that leaves without being delivered: dropped at the
// length limit or expired. paging says whether and how the queue keeps
// messages out of memory.
func New(vhost, name string, limits Limits, paging Paging, onDrop func(Entry, DropReason)) *Queue {
	return &Queue{Name: name, VHost: vhost, limits: limits, paging: paging, onDrop: onDrop, levels: make([]level, int(limits.MaxPriority)+1)}
}

// levelOf returns the level a message goes to: its priority, capped at the
// queue's maximum.
func (q *Queue) levelOf(m *Message) *level {
	p := int(m.Priority)
	if p >= len(q.levels) {
		p = len(q.levels) - 1
	}
	return &q.levels[p]
}

// topLocked returns the highest-priority level with ready messages, or
// nil. The level's head has its first message in memory.
func (q *Queue) topLocked() *level {
	for i := len(q.levels) - 1; i >= 0; i-- {
		if l := &q.levels[i]; q.headLocked(l) {
			return l
		}
	}
	return nil
}

// headLocked reports whether l has a ready message, bringing the oldest
// of its tail into memory if its head is empty.
func (q *Queue) headLocked(l *level) bool {
	if l.head < len(l.ready) {
		return true
	}
	return l.tail != nil && l.tail.n > 0 && q.refillLocked(l)
}

// PublishResult says what Publish did with a message.
type PublishResult uint8

// Publish results.
const (
	// Queued: the message is in the queue (or already with a consumer).
	Queued PublishResult = iota
	// Rejected: the queue is full and refuses new messages.
	Rejected
	// Gone: the queue has been deleted.
	Gone
)

// Publish appends a message, kept in the store at loc (nil if it is not),
// and delivers what it can, passing b to the consumers. Messages dropped
// from the head to respect the limits go to onDrop.
func (q *Queue) Publish(m *Message, loc *store.Location, b Batch) PublishResult {
	return q.add(m, loc, b, 0, false, false)
}

// Recover appends a message found in the store at a restart: enqueued is
// when it first entered the queue (Unix nanoseconds), which its TTL counts
// from, and redelivered whether it had been delivered before. The length
// limits do not apply: a queue may hold more than its limit at a restart
// (messages requeued past it, or a policy that lowered it), and, as in
// RabbitMQ, it gets every message back; the limits act on the publishes
// that follow. A message whose TTL has run out still expires.
func (q *Queue) Recover(m *Message, loc store.Location, enqueued int64, redelivered bool) PublishResult {
	return q.add(m, &loc, nil, enqueued, redelivered, true)
}

func (q *Queue) add(m *Message, loc *store.Location, b Batch, enqueued int64, redelivered, recovered bool) PublishResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return Gone
	}
	now := time.Now().UnixNano()
	q.expireLocked(now)
	size := int64(len(m.Body))
	if q.limits.RejectPublish && !recovered && q.fullLocked(1, size) {
		return Rejected
	}
	e := Entry{Msg: m, Loc: loc, Redelivered: redelivered}
	ttl := q.limits.MessageTTL
	if m.TTL >= 0 && (ttl < 0 || m.TTL < ttl) {
		ttl = m.TTL
	}
	if ttl >= 0 {
		if enqueued == 0 {
			enqueued = now
		}
		e.Expires = enqueued + int64(ttl)
		if e.Expires == 0 {
			e.Expires = 1 // 0 means never
		}
	}
	q.nextID++
	e.ID = q.nextID
	q.counts.Published++
	if q.journal != nil {
		if enqueued == 0 {
			enqueued = now
		}
		q.journal.Added(&e, enqueued)
	}
	l := q.levelOf(m)
	if q.toTailLocked(l) {
		q.pushTailLocked(l, e)
	} else {
		l.ready = append(l.ready, e)
		l.headCost += msgCost(m)
		q.addCost(msgCost(m))
	}
	q.readyN++
	q.readyBytes += size
	q.dispatchLocked(b, now)
	for !recovered && q.readyN > 0 && q.fullLocked(0, 0) {
		q.dropHeadLocked(DropMaxLen)
	}
	// A message that expires at once and found no consumer goes now.
	q.expireLocked(now)
	q.compactLocked()
	return Queued
}

// dropHeadLocked drops the message that would be delivered next.
func (q *Queue) dropHeadLocked(why DropReason) {
	q.dropLocked(q.topLocked(), why)
}

func (q *Queue) dropLocked(l *level, why DropReason) {
	e := q.takeLocked(l)
	if q.journal != nil {
		q.journal.Removed(&e)
	}
	if q.onDrop != nil {
		q.onDrop(e, why)
	}
}

// takeLocked removes the head of level l.
func (q *Queue) takeLocked(l *level) Entry {
	e := l.ready[l.head]
	l.ready[l.head] = Entry{}
	l.head++
	q.readyN--
	q.readyBytes -= int64(len(e.Msg.Body))
	c := msgCost(e.Msg)
	l.headCost -= c
	q.addCost(-c)
	return e
}

// expireLocked drops expired messages from the head of each level.
func (q *Queue) expireLocked(now int64) {
	for i := range q.levels {
		l := &q.levels[i]
		for q.headLocked(l) {
			if exp := l.ready[l.head].Expires; exp == 0 || exp > now {
				break
			}
			q.dropLocked(l, DropExpired)
		}
	}
}

// fullLocked reports whether adding n messages of size octets would put
// the queue over a limit (n = 0: whether it is over one now).
func (q *Queue) fullLocked(n int, size int64) bool {
	l := int64(q.readyN)
	if q.limits.MaxLen >= 0 && l+int64(n) > q.limits.MaxLen {
		return true
	}
	return q.limits.MaxBytes >= 0 && q.readyBytes+size > q.limits.MaxBytes
}

// Len returns the number of ready messages.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireLocked(time.Now().UnixNano())
	return q.readyN
}

// Unacked returns the number of delivered messages not yet settled.
func (q *Queue) Unacked() int { return int(q.unacked.Load()) }

// ConsumerCount returns the number of consumers.
func (q *Queue) ConsumerCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.consumers)
}

// Consumers returns a copy of the consumer list.
func (q *Queue) Consumers() []Consumer {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.consumers)
}

// AddConsumer registers c and delivers what it can. It reports false if the
// queue has been deleted.
func (q *Queue) AddConsumer(c Consumer) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return false
	}
	i := len(q.consumers)
	if !q.limits.SingleActive {
		for j, o := range q.consumers {
			if c.Priority() > o.Priority() {
				i = j
				break
			}
		}
	}
	q.consumers = slices.Insert(q.consumers, i, c)
	q.dispatchLocked(nil, 0)
	return true
}

// RemoveConsumer unregisters c and returns how many consumers remain; -1
// if the queue has been deleted.
func (q *Queue) RemoveConsumer(c Consumer) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return -1
	}
	if i := slices.Index(q.consumers, c); i >= 0 {
		q.consumers = slices.Delete(q.consumers, i, i+1)
		if q.next > i {
			q.next--
		}
		if i == 0 && q.limits.SingleActive {
			// The next consumer takes over what is waiting.
			q.dispatchLocked(nil, 0)
		}
	}
	return len(q.consumers)
}

// Deleted reports whether the queue has been deleted.
func (q *Queue) Deleted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deleted
}

// Kick retries delivery, after a consumer's capacity grew.
func (q *Queue) Kick(b Batch) {
	q.mu.Lock()
	q.dispatchLocked(b, 0)
	q.mu.Unlock()
}

// dispatchLocked delivers ready messages to consumers with room. now is
// the time to expire by (0: read the clock if needed); a message expiring
// exactly at now is still delivered, so that a publish with TTL 0 reaches
// a consumer that is ready for it, as in RabbitMQ.
func (q *Queue) dispatchLocked(b Batch, now int64) {
	for len(q.consumers) > 0 {
		l := q.topLocked()
		if l == nil {
			break
		}
		if exp := l.ready[l.head].Expires; exp != 0 {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			if exp < now {
				q.dropLocked(l, DropExpired)
				continue
			}
		}
		if !q.deliverOneLocked(l, b) {
			break
		}
	}
	q.compactLocked()
}

// deliverOneLocked offers the head message to consumers of the highest
// priority that has room, round robin within that priority.
func (q *Queue) deliverOneLocked(l *level, b Batch) bool {
	e := l.ready[l.head]
	n := len(q.consumers)
	if q.limits.SingleActive {
		n = 1
	}
	for start := 0; start < n; {
		prio := q.consumers[start].Priority()
		end := start
		for end < n && q.consumers[end].Priority() == prio {
			end++
		}
		width := end - start
		pos := q.next
		if pos < start || pos >= end {
			pos = start
		}
		for i := 0; i < width; i++ {
			k := start + (pos-start+i)%width
			c := q.consumers[k]
			q.unacked.Add(1)
			if c.Deliver(q, e, b) {
				if q.journal != nil {
					q.journal.Delivered(&e)
				}
				q.counts.Delivered++
				if e.Redelivered {
					q.counts.Redelivered++
				}
				q.takeLocked(l)
				q.next = start + (k-start+1)%width
				return true
			}
			q.unacked.Add(-1)
		}
		start = end
	}
	return false
}

func (q *Queue) compactLocked() {
	for i := range q.levels {
		q.levels[i].compact()
	}
}

// Get takes the head message, for basic.get. When ack is true the message
// counts as unacked until Settle. ok is false if the queue is empty.
func (q *Queue) Get(ack bool) (e Entry, remaining int, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireLocked(time.Now().UnixNano())
	l := q.topLocked()
	if l == nil {
		return Entry{}, 0, false
	}
	e = q.takeLocked(l)
	if q.journal != nil {
		q.journal.Delivered(&e)
	}
	q.counts.Got++
	if e.Redelivered {
		q.counts.Redelivered++
	}
	if ack {
		q.unacked.Add(1)
	}
	remaining = q.readyN
	q.compactLocked()
	return e, remaining, true
}

// Settle records that n delivered messages were acked, or rejected without
// requeue: they leave the queue for good.
func (q *Queue) Settle(n int) {
	q.unacked.Add(int64(-n))
	q.settled.Add(uint64(n))
}

// Stats returns the queue's current state and counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expireLocked(time.Now().UnixNano())
	st := Stats{Ready: q.readyN, ReadyBytes: q.readyBytes, Unacked: int(q.unacked.Load()), Consumers: len(q.consumers), Counts: q.counts}
	st.Settled = q.settled.Load()
	for i := range q.levels {
		if t := q.levels[i].tail; t != nil {
			st.PagedOut += int((t.wOff - t.rOff) / entrySize)
			st.PagedOutBytes += t.fileBytes
		}
	}
	return st
}

// Requeue puts delivered messages back at their original positions, marked
// redelivered, and delivers what it can. If the queue has been deleted
// meanwhile, the entries are returned: they are dropped.
func (q *Queue) Requeue(entries []Entry) (dropped []Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.unacked.Add(int64(-len(entries)))
	if q.deleted {
		return entries
	}
	if len(entries) == 0 {
		return nil
	}
	if q.journal != nil {
		q.journal.Requeued(entries)
	}
	// Group by level, each in ID order, and merge each group into its
	// level in one pass: a consumer that leaves with many unacked messages
	// costs time in proportion to the queue, not to the queue times the
	// messages.
	byLevel := map[*level][]Entry{}
	for _, e := range entries {
		e.Redelivered = true
		q.readyBytes += int64(len(e.Msg.Body))
		c := msgCost(e.Msg)
		q.addCost(c)
		q.readyN++
		l := q.levelOf(e.Msg)
		l.headCost += c
		byLevel[l] = append(byLevel[l], e)
	}
	for l, es := range byLevel {
		slices.SortFunc(es, func(a, b Entry) int { return cmp.Compare(a.ID, b.ID) })
		l.merge(es)
	}
	q.dispatchLocked(nil, 0)
	return nil
}

// Purge drops every ready message and returns how many. Those in memory
// are returned for the caller to give back; those in the tail are given
// back to the pager here.
func (q *Queue) Purge() (inMemory []Entry, n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = q.readyN
	if q.journal != nil {
		q.journal.Purged()
	}
	return q.clearLocked(), n
}

// clearLocked empties every level and returns what they held in memory;
// the pager gets back what their tails kept.
func (q *Queue) clearLocked() []Entry {
	var dropped []Entry
	for i := range q.levels {
		l := &q.levels[i]
		if dropped == nil {
			dropped = l.ready[l.head:]
		} else {
			dropped = append(dropped, l.ready[l.head:]...)
		}
		l.ready, l.head, l.headCost = nil, 0, 0
		dropped = append(dropped, q.clearTailLocked(l)...)
	}
	q.addCost(-q.ramCost)
	q.readyN, q.readyBytes = 0, 0
	return dropped
}

// Delete marks the queue deleted, drops its ready messages and returns
// those in memory (as Purge) and the consumers it had, so the broker can
// tell them (basic.cancel).
func (q *Queue) Delete() (dropped []Entry, consumers []Consumer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	dropped = q.clearLocked()
	consumers = q.consumers
	q.consumers = nil
	q.deleted = true
	return dropped, consumers
}

// SetLimits changes the queue's limits, as a policy change does. A lower
// length limit with drop-head drops the oldest messages at once.
func (q *Queue) SetLimits(l Limits) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.limits = l
	if l.RejectPublish {
		return
	}
	for q.readyN > 0 && q.fullLocked(0, 0) {
		q.dropHeadLocked(DropMaxLen)
	}
	q.compactLocked()
}

// Active reports whether c receives messages now: always, unless the
// queue has a single active consumer and c is waiting its turn.
func (q *Queue) Active(c Consumer) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.limits.SingleActive || len(q.consumers) > 0 && q.consumers[0] == c
}

// Summary returns the ready and unacked message counts and the number of
// consumers, more cheaply than Stats.
func (q *Queue) Summary() (ready, unacked, consumers int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.readyN, int(q.unacked.Load()), len(q.consumers)
}
