package lb

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warren-mq/warren/internal/lb/balance"
)

// Connections that find no free server slot wait in a queue, as in
// HAProxy: in the queue of the server the balancer chose when that server
// is full (balance source hashes to a server whatever its load; leastconn
// may queue on a server up to its maxqueue), or in the backend's queue
// when every usable server is full. A server whose slot frees hands it to
// the oldest connection waiting in its own queue or in the backend's.

// errNoServer means no server could take the connection.
var errNoServer = errors.New("lb: no server available")

// errQueueTimeout means the connection waited in a queue for longer than
// "timeout queue" (else "timeout connect").
var errQueueTimeout = errors.New("lb: queue timeout")

// errQueueFull means the chosen server's queue is at its maxqueue.
var errQueueFull = errors.New("lb: server queue full")

// errClientAbort means the client left while its connection was queued.
var errClientAbort = errors.New("lb: client aborted while queued")

// pendconn is a connection waiting for a server slot (HAProxy's
// pendconn). Its fields are guarded by the mutex of the backend whose
// queue holds it, until it is sent its outcome.
type pendconn struct {
	// seq orders pending connections by age across a backend's queue and
	// its servers' queues.
	seq uint64
	// key is the source address hash, to go through the balancer again.
	key uint32
	// srv is the server whose queue holds the connection, nil for the
	// backend's queue.
	srv *Server
	// prev is the server whose queue sent the connection back to the
	// balancer, until it is placed again.
	prev *Server
	// idx is the queue's dispatch count when the connection was queued;
	// srvPos and bePos add up, for each time it left a server's or the
	// backend's queue, how many connections left that queue with a slot
	// meanwhile, itself included: HAProxy's %sq and %bq.
	idx, srvPos, bePos int64
	// redispatched is set when it was placed on another server than the
	// one whose queue sent it back.
	redispatched bool
	// ready receives the outcome, once, when the connection leaves the
	// queues other than by its own doing.
	ready chan queueOutcome
}

// queueOutcome ends a wait in a queue: a server slot, or an error (with
// the server chosen, if any).
type queueOutcome struct {
	srv *Server
	err error
}

// pendQueue is a queue of pending connections, oldest first. The
// backend's mutex guards it.
type pendQueue struct {
	items []*pendconn
	// dispatched counts the connections that left the queue with a slot.
	dispatched int64
}

func (q *pendQueue) len() int { return len(q.items) }

// push queues p behind every older connection and returns the queue
// length. Connections moved by a reload or a redistribution keep their
// age.
func (q *pendQueue) push(p *pendconn) int {
	p.idx = q.dispatched
	i := len(q.items)
	for i > 0 && q.items[i-1].seq > p.seq {
		i--
	}
	q.items = slices.Insert(q.items, i, p)
	return len(q.items)
}

func (q *pendQueue) head() *pendconn {
	if len(q.items) == 0 {
		return nil
	}
	return q.items[0]
}

// left records the queue position of p, which just left the queue.
func (q *pendQueue) left(p *pendconn) {
	if p.srv != nil {
		p.srvPos += q.dispatched - p.idx + 1
	} else {
		p.bePos += q.dispatched - p.idx + 1
	}
}

// give hands the oldest connection a slot on s.
func (q *pendQueue) give(s *Server) {
	p := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	q.left(p)
	q.dispatched++
	s.stats.enter()
	p.ready <- queueOutcome{srv: s}
}

// remove takes p out of the queue; false means it had already left.
func (q *pendQueue) remove(p *pendconn) bool {
	i := slices.Index(q.items, p)
	if i < 0 {
		return false
	}
	q.items = slices.Delete(q.items, i, i+1)
	q.left(p)
	return true
}

// takeAll empties the queue and returns what it held, oldest first.
func (q *pendQueue) takeAll() []*pendconn {
	items := q.items
	for _, p := range items {
		q.left(p)
	}
	q.items = nil
	return items
}

// storeMax raises m to n.
func storeMax(m *atomic.Int64, n int64) {
	for {
		cur := m.Load()
		if n <= cur || m.CompareAndSwap(cur, n) {
			return
		}
	}
}

// lockCurrent locks the backend that now stands for b: b itself, or the
// backend of the same name that replaced it at a reload. It returns nil,
// with nothing locked, when a reload removed the backend.
func (b *Backend) lockCurrent() *Backend {
	b.mu.Lock()
	for b.retired {
		next := b.next
		b.mu.Unlock()
		if next == nil {
			return nil
		}
		b = next
		b.mu.Lock()
	}
	return b
}

// acquire finds a server for a connection and reserves one of its slots,
// as HAProxy's assign_server_and_queue does (see placeLocked). A queued
// connection waits until a server hands it a slot, for at most "timeout
// queue" (else "timeout connect"; without either, as long as it takes),
// until the client leaves (closes or resets the connection without
// having sent anything, as HAProxy checks), or until ctx ends. prev is
// the server a failed connection attempt leaves (nil for a new
// connection): the balancer avoids it if it can, and the choice counts
// as a redispatch on prev, or as a retry when the balancer picks prev
// again. key is the source address hash. The time spent queued and the
// queue positions are added to ss for the log. With errQueueFull, and
// with errQueueTimeout from a server's queue, the chosen server is
// returned too, without a slot.
func (b *Backend) acquire(ctx context.Context, ss *session, prev *Server, key uint32) (*Server, error) {
	if b = b.lockCurrent(); b == nil {
		return nil, errNoServer
	}
	p := &pendconn{key: key, prev: prev}
	avoid := -1
	if prev != nil {
		avoid = prev.idx()
	}
	srv, err, queued := b.placeLocked(p, avoid)
	b.mu.Unlock()
	if !queued {
		return srv, err
	}
	start := time.Now()
	var expired <-chan time.Time
	if d := b.cfg.Timeouts.QueueOrConnect(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	gone, stopWatch := watchClientGone(ss.client)
	var out queueOutcome
	select {
	case out = <-p.ready:
	case <-expired:
		out = b.giveUp(p, errQueueTimeout)
	case <-gone:
		out = b.giveUp(p, errClientAbort)
	case <-ctx.Done():
		out = b.giveUp(p, ctx.Err())
	}
	stopWatch()
	ss.waitQueue += time.Since(start)
	ss.srvQueuePos += p.srvPos
	ss.beQueuePos += p.bePos
	ss.redispatched = ss.redispatched || p.redispatched
	return out.srv, out.err
}

// placeLocked is HAProxy's assign_server_and_queue for p: the balancer
// picks a server; a free one gives p a slot (srv); a full one queues p in
// its own queue, or refuses it with errQueueFull (srv is then that
// server) when the queue is at the server's maxqueue; when the balancer
// finds every usable server full, p waits in the backend's queue. queued
// reports that p waits in a queue.
func (b *Backend) placeLocked(p *pendconn, avoid int) (srv *Server, err error, queued bool) {
	usable := b.balancer.ActiveUsable()+b.balancer.BackupUsable() > 0
	var s *Server
	if usable && !b.queueAheadLocked() {
		if i := b.balancer.Pick(serverLoad(b.servers), avoid, p.key); i >= 0 {
			s = b.servers[i]
			if s != p.prev {
				// HAProxy counts a choice only when it changes the server.
				s.stats.lbTotal.Add(1)
				b.stats.lbTotal.Add(1)
			}
		}
	}
	if p.prev != nil {
		// Counted on the server left, whatever comes next, as HAProxy
		// does.
		if s != p.prev {
			p.prev.stats.redispatch.Add(1)
			b.stats.redispatch.Add(1)
			p.redispatched = true
		} else {
			p.prev.stats.retries.Add(1)
			b.stats.retries.Add(1)
		}
		p.prev = nil
	}
	if !usable {
		return nil, errNoServer, false
	}
	q, qmax := &b.queue, &b.stats.queueMax
	if s != nil {
		sc := s.config()
		if sc.MaxConn <= 0 || s.queue.len() == 0 && s.stats.cur.Load() < int64(sc.MaxConn) {
			s.stats.enter()
			return s, nil, false
		}
		if sc.MaxQueue > 0 && s.queue.len() >= sc.MaxQueue {
			return s, errQueueFull, false
		}
		q, qmax = &s.queue, &s.stats.queueMax
	}
	if p.ready == nil {
		p.seq = b.lb.pendSeq.Add(1)
		p.ready = make(chan queueOutcome, 1)
	}
	p.srv = s
	storeMax(qmax, int64(q.push(p)))
	return nil, nil, true
}

// replaceLocked places again a connection a queue sent back, in queue
// order, and tells it the outcome unless it waits again.
func (b *Backend) replaceLocked(p *pendconn) {
	if srv, err, queued := b.placeLocked(p, -1); !queued {
		p.ready <- queueOutcome{srv, err}
	}
}

// giveUp takes p out of its queue after its wait ended with err. If a
// server or a reload decided first, that outcome stands: a slot is used
// since it is there.
func (b *Backend) giveUp(p *pendconn, err error) queueOutcome {
	if srv, ok := b.unqueue(p); ok {
		return queueOutcome{srv, err}
	}
	return <-p.ready
}

// unqueue takes p out of its queue and returns the server whose queue it
// was; false means it had already left.
func (b *Backend) unqueue(p *pendconn) (*Server, bool) {
	if b = b.lockCurrent(); b == nil {
		return nil, false // the reload that removed the backend decided
	}
	defer b.mu.Unlock()
	q := &b.queue
	if p.srv != nil {
		if p.srv.backend.Load() != b {
			return nil, false // still in a retired backend: already decided
		}
		q = &p.srv.queue
	}
	if !q.remove(p) {
		return nil, false
	}
	return p.srv, true
}

// queueAheadLocked reports whether a new connection queues behind the
// backend's queue without asking the balancer: HAProxy does so with
// roundrobin, static-rr and first while some of the backend's connections
// are served and others wait.
func (b *Backend) queueAheadLocked() bool {
	n := b.queue.len()
	if n == 0 {
		return false
	}
	switch b.cfg.Balance {
	case balance.LeastConn, balance.Source:
		return false
	}
	return int64(n) != b.stats.cur.Load()
}

// lockOwner locks and returns the backend that owns s now, which a
// reload may change.
func lockOwner(s *Server) *Backend {
	for {
		b := s.backend.Load()
		b.mu.Lock()
		if s.backend.Load() == b {
			return b
		}
		b.mu.Unlock() // moved by a reload meanwhile
	}
}

// release frees a slot taken by acquire, in whichever backend owns the
// server now, and hands it to a waiting connection. It returns the
// server's connection count in between, for the log.
func (b *Backend) release(s *Server) int64 {
	b = lockOwner(s)
	s.stats.leave()
	n := s.stats.cur.Load()
	b.serveQueuesLocked(s)
	b.mu.Unlock()
	return n
}

// serveQueuesLocked gives s's free slots to the oldest connections
// waiting in its own queue or, when s may serve it, in the backend's, as
// HAProxy's process_srv_queue does, and returns how many it served.
func (b *Backend) serveQueuesLocked(s *Server) int {
	if b.retired {
		return 0
	}
	own, shared := &s.queue, &b.queue
	if !b.servesBackendQueueLocked(s) {
		shared = &pendQueue{}
	}
	maxConn := int64(s.config().MaxConn)
	n := 0
	for maxConn <= 0 || s.stats.cur.Load() < maxConn {
		sp, bp := own.head(), shared.head()
		switch {
		case sp == nil && bp == nil:
			return n
		case bp == nil || sp != nil && sp.seq < bp.seq:
			own.give(s)
		default:
			shared.give(s)
		}
		n++
	}
	return n
}

// servesBackendQueueLocked reports whether s takes connections from the
// backend's queue: it must be usable, and a backup server only while no
// active server is, and only the first one unless "option allbackups".
func (b *Backend) servesBackendQueueLocked(s *Server) bool {
	if !s.usableLocked() || s.weight == 0 {
		return false
	}
	if !s.config().Backup {
		return true
	}
	if b.balancer.ActiveUsable() > 0 {
		return false
	}
	if b.cfg.Options.AllBackups {
		return true
	}
	for _, o := range b.servers {
		if o.config().Backup && o.usableLocked() && o.weight > 0 {
			return o == s
		}
	}
	return false
}

// redistributeLocked sends the connections waiting for a server that can
// no longer take them back to the balancer, in queue order, when "option
// redispatch" allows it, as HAProxy does; it returns how many.
func (b *Backend) redistributeLocked(s *Server) int {
	if !b.cfg.Options.Redispatch {
		return 0
	}
	items := s.queue.takeAll()
	for _, p := range items {
		p.prev = s
		b.replaceLocked(p)
	}
	return len(items)
}

// queueLen returns the number of connections in the backend's queue.
func (b *Backend) queueLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queue.len()
}

// watchClientGone watches a queued client connection without reading
// from it: gone is closed when the client closed or reset the connection
// with nothing left to read. Data waiting to be read keeps the connection
// queued even if the client closed behind it, as in HAProxy (without
// "option abortonclose"). stop ends the watch and waits for it, leaving
// the connection as it was.
func watchClientGone(c *net.TCPConn) (gone <-chan struct{}, stop func()) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, func() {}
	}
	ch, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var b [1]byte
		// Read waits for the socket to be readable between calls, and
		// returns early once stop sets a past deadline.
		_ = rc.Read(func(fd uintptr) bool {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EAGAIN || err == syscall.EINTR:
				return false
			case err != nil || n == 0:
				close(ch) // reset, or end of stream with nothing before it
				return true
			}
			return false // data for the server: wait for what follows it
		})
	}()
	return ch, func() {
		_ = c.SetReadDeadline(time.Unix(1, 0))
		<-done
		_ = c.SetReadDeadline(time.Time{})
	}
}
