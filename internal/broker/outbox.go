package broker

import (
	"net"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/queue"
)

// outboxHighWater is how many octets may wait for the socket before
// deliveries to the connection pause; they resume when the writer has
// written them.
const outboxHighWater = 1 << 20

// A write that makes no progress for writeTimeout fails the connection;
// once the connection is closing, closingWriteTimeout is all it gets.
const (
	writeTimeout        = 30 * time.Second
	closingWriteTimeout = time.Second
)

// outbox is a connection's outgoing byte queue and its writer goroutine.
// Anyone may append; one writer drains with one write call per batch.
type outbox struct {
	nc net.Conn

	mu      sync.Mutex // guards buf, waiters, stopped, running
	buf     []byte
	waiters []*queue.Queue // queues to kick once the backlog drains
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
}

func newOutbox(nc net.Conn) *outbox {
	return &outbox{nc: nc, signal: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
}

// append adds frames produced by fn and wakes the writer.
func (o *outbox) append(fn func([]byte) []byte) {
	o.mu.Lock()
	o.buf = fn(o.buf)
	o.mu.Unlock()
	select {
	case o.signal <- struct{}{}:
	default:
	}
}

// full reports whether the backlog is above the high water mark; o.mu held.
func (o *outbox) full() bool { return len(o.buf) >= outboxHighWater }

// tryAppend appends unless the backlog is above the high water mark, in
// which case it registers q to be kicked later and returns false.
func (o *outbox) tryAppend(q *queue.Queue, fn func([]byte) []byte) bool {
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
	select {
	case o.signal <- struct{}{}:
	default:
	}
	return true
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
		q.Kick()
	}
	return ok
}

// writeLocked is write's part under wmu; it returns the queues to kick.
func (o *outbox) writeLocked() (bool, []*queue.Queue) {
	o.mu.Lock()
	b := o.buf
	o.buf = o.spare[:0]
	var waiters []*queue.Queue
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
		if _, err := o.nc.Write(b); err != nil {
			ok = false
		}
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
	select {
	case o.signal <- struct{}{}:
	default:
	}
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
