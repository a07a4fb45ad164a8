package broker

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/queue"
)

// outboxHighWater is how many octets may wait for the socket before
// deliveries to the connection pause; they resume when the writer has
// written them.
const outboxHighWater = 1 << 20

// inlineWriteMax is the most a flush set writes from the reader's
// goroutine; more is left to the writer goroutine.
const inlineWriteMax = 8 << 10

// A write that makes no progress for writeTimeout fails the connection;
// once the connection is closing, closingWriteTimeout is all it gets.
const (
	writeTimeout        = 30 * time.Second
	closingWriteTimeout = time.Second
)

// kicker is what waits for an outbox's backlog to drain: a queue, or a
// consumer of another node's queue, that has more to deliver.
type kicker interface{ Kick(queue.Batch) }

// outbox is a connection's outgoing byte queue and its writer goroutine.
// Anyone may append; one writer drains with one write call per batch.
type outbox struct {
	nc net.Conn

	mu      sync.Mutex // guards buf, waiters, stopped, running
	buf     []byte
	waiters []kicker // queues and remote consumers to kick once the backlog drains
	stopped bool
	running bool

	signal chan struct{} // capacity 1: something to write
	done   chan struct{} // closed to stop the writer
	exited chan struct{} // closed when the writer has returned

	// wmu serializes writes to the socket: the writer goroutine's, and
	// direct ones before it starts or while the connection closes.
	wmu    sync.Mutex
	spare  []byte    // guarded by wmu
	lastTx time.Time // guarded by wmu

	tw *tryWriter // flushInline's write; guarded by wmu
	w  io.Writer  // the writer's: nc, or its socket (socketOutput); guarded by wmu

	// Octets and write calls to the socket, for statistics.
	sendOct, sendCnt atomic.Uint64
}

func newOutbox(nc net.Conn) *outbox {
	o := &outbox{nc: nc, signal: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	o.tw = newTryWriter(nc)
	o.w = socketOutput(nc)
	return o
}

// flushSet is one goroutine's list of the outboxes it appended to during a
// batch of work (one read's worth of frames): instead of waking each
// writer per frame, it writes each outbox once when the batch is done.
// It belongs to one goroutine.
type flushSet struct {
	boxes []*outbox
	links []*linkConn // queue links to write once the batch is done
	// confirms are channels whose publisher confirms became due during
	// the batch: answered at flush, one basic.ack for many.
	confirms []*channel
}

// addLink records a queue link to write at flush.
func (f *flushSet) addLink(l *linkConn) {
	for _, x := range f.links {
		if x == l {
			return
		}
	}
	f.links = append(f.links, l)
}

func (f *flushSet) add(o *outbox) {
	for _, x := range f.boxes {
		if x == o {
			return
		}
	}
	f.boxes = append(f.boxes, o)
}

// flush writes every outbox in the set; writing one may add others (a
// queue kicked after its consumer's backlog drained), which are written
// too.
func (f *flushSet) flush() {
	for i, ch := range f.confirms {
		ch.cf.mu.Lock()
		ch.sendConfirmsLocked(f)
		ch.cf.mu.Unlock()
		f.confirms[i] = nil
	}
	f.confirms = f.confirms[:0]
	for i := 0; i < len(f.boxes); i++ {
		f.boxes[i].flushInline(f)
		f.boxes[i] = nil
	}
	f.boxes = f.boxes[:0]
	for i, l := range f.links {
		l.flushInline()
		f.links[i] = nil
	}
	f.links = f.links[:0]
}

func (o *outbox) wake() {
	select {
	case o.signal <- struct{}{}:
	default:
	}
}

// append adds frames produced by fn and wakes the writer.
func (o *outbox) append(fn func([]byte) []byte) {
	o.mu.Lock()
	o.buf = fn(o.buf)
	o.mu.Unlock()
	o.wake()
}

// appendBatch adds frames produced by fn to be written when fs is flushed;
// with a nil fs it is append.
func (o *outbox) appendBatch(fs *flushSet, fn func([]byte) []byte) {
	if fs == nil {
		o.append(fn)
		return
	}
	o.mu.Lock()
	o.buf = fn(o.buf)
	o.mu.Unlock()
	fs.add(o)
}

// full reports whether the backlog is above the high water mark; o.mu held.
func (o *outbox) full() bool { return len(o.buf) >= outboxHighWater }

// tryAppend appends unless the backlog is above the high water mark, in
// which case it registers q to be kicked later and returns false. With a
// flush set the write waits for the set's flush; without, the writer wakes.
func (o *outbox) tryAppend(q kicker, fs *flushSet, fn func([]byte) []byte) bool {
	o.mu.Lock()
	if o.full() {
		found := false
		for _, w := range o.waiters {
			if w == q {
				found = true
				break
			}
		}
		if !found {
			o.waiters = append(o.waiters, q)
		}
		o.mu.Unlock()
		return false
	}
	o.buf = fn(o.buf)
	o.mu.Unlock()
	if fs != nil {
		fs.add(o)
	} else {
		o.wake()
	}
	return true
}

// flushInline writes what is buffered from the calling goroutine with one
// non-blocking write, saving the writer goroutine a wake-up. Whatever the
// socket does not take at once, or anything while the writer is busy, is
// left to the writer.
func (o *outbox) flushInline(fs *flushSet) {
	if !o.tw.ok() || !o.wmu.TryLock() {
		o.wake()
		return
	}
	o.mu.Lock()
	// Large backlogs go to the writer, which gathers more into each write
	// while the client reads: inline writes pay off for the small batches
	// of light traffic, where a wake-up costs more than the write.
	if !o.running || o.stopped || len(o.buf) == 0 || len(o.buf) > inlineWriteMax {
		o.mu.Unlock()
		o.wmu.Unlock()
		o.wake()
		return
	}
	b := o.buf
	o.buf = o.spare[:0]
	waiters := o.waiters
	o.waiters = nil
	o.mu.Unlock()

	n := o.tw.try(b)
	if n > 0 {
		o.lastTx = time.Now()
		o.sendOct.Add(uint64(n))
		o.sendCnt.Add(1)
	}
	rest := len(b) - n
	o.mu.Lock()
	if rest == 0 {
		o.spare = b[:0]
	} else {
		o.buf, o.spare = putBack(b, n, o.buf)
		o.waiters = append(o.waiters, waiters...)
		waiters = nil
	}
	o.mu.Unlock()
	o.wmu.Unlock()
	if rest > 0 {
		o.wake()
	}
	for _, q := range waiters {
		q.Kick(fs)
	}
}

// startWriter starts the writer goroutine; heartbeat > 0 makes it send a
// heartbeat frame after heartbeat/2 of silence.
func (o *outbox) startWriter(heartbeat time.Duration) {
	o.mu.Lock()
	o.running = true
	o.mu.Unlock()
	go o.run(heartbeat)
}

func (o *outbox) run(heartbeat time.Duration) {
	defer close(o.exited)
	var tick <-chan time.Time
	if heartbeat > 0 {
		t := time.NewTicker(heartbeat / 2)
		defer t.Stop()
		tick = t.C
	}
	o.wmu.Lock()
	o.lastTx = time.Now()
	o.wmu.Unlock()
	for {
		select {
		case <-o.signal:
		case <-tick:
			o.wmu.Lock()
			idle := time.Since(o.lastTx) >= heartbeat/2
			o.wmu.Unlock()
			if idle {
				o.mu.Lock()
				o.buf = amqp.AppendHeartbeat(o.buf)
				o.mu.Unlock()
			}
		case <-o.done:
			o.write()
			return
		}
		if !o.write() {
			// The socket failed: the reader will notice too. Keep draining
			// the signal so appenders never block, until stopped.
			<-o.done
			return
		}
	}
}

// write sends everything buffered with one call and kicks waiting queues.
func (o *outbox) write() bool {
	o.wmu.Lock()
	ok, waiters := o.writeLocked()
	o.wmu.Unlock()
	for _, q := range waiters {
		q.Kick(nil)
	}
	return ok
}

// writeLocked is write's part under wmu; it returns the queues to kick.
func (o *outbox) writeLocked() (bool, []kicker) {
	o.mu.Lock()
	b := o.buf
	o.buf = o.spare[:0]
	var waiters []kicker
	if len(o.waiters) > 0 {
		waiters = o.waiters
		o.waiters = nil
	}
	timeout := writeTimeout
	if o.stopped {
		timeout = closingWriteTimeout
	}
	o.mu.Unlock()
	ok := true
	if len(b) > 0 {
		o.nc.SetWriteDeadline(time.Now().Add(timeout))
		n, err := o.w.Write(b)
		if err != nil {
			ok = false
		}
		o.sendOct.Add(uint64(n))
		o.sendCnt.Add(1)
		o.lastTx = time.Now()
	}
	if cap(b) > 4<<20 {
		b = nil
	}
	o.spare = b
	return ok, waiters
}

// flushNow asks the writer to write at once (for connection.close), or
// writes on the caller's goroutine while there is no writer yet (during the
// handshake).
func (o *outbox) flushNow() {
	o.mu.Lock()
	running := o.running || o.stopped
	o.mu.Unlock()
	if !running {
		o.write()
		return
	}
	o.wake()
}

// stop flushes what is buffered and waits for the writer. If the writer
// was never started, the buffer is written directly.
func (o *outbox) stop() {
	o.mu.Lock()
	if o.stopped {
		o.mu.Unlock()
		return
	}
	o.stopped = true
	running := o.running
	o.mu.Unlock()
	if !running {
		o.write()
		return
	}
	// Cut short a write blocked on a peer that stopped reading.
	o.nc.SetWriteDeadline(time.Now().Add(closingWriteTimeout))
	close(o.done)
	<-o.exited
}
