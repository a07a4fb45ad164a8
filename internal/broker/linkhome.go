package broker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/queue"
	"github.com/warren-mq/warren/internal/store"
)

// homeLink is the home end of a queue link: another node's clients using
// this node's queues. Its reader applies their publishes, consumes, gets
// and settlements in the order they were made; its consumers deliver into
// the link under the credit the other end grants.
type homeLink struct {
	*linkConn
	s     *Server
	peer  string
	batch *flushSet // the reader's: local consumers' sockets to flush
	// peerApplied is how far the other node had applied the definitions
	// when it sent the frames now being read (reader only).
	peerApplied uint64

	// acks are the mirror copies changed in this batch (reader only).
	acks []*mirrorCopy

	mu        sync.Mutex // guards below; taken with a queue locked
	consumers map[uint64]*linkConsumer
	unacked   map[uint64]linkDelivery
	nextID    uint64
	closed    bool
}

// linkDelivery is a message handed to the link and not yet settled.
type linkDelivery struct {
	q *localQueue
	e queue.Entry
	k *linkConsumer // nil for basic.get
}

// linkConsumer is a consumer on another node, standing in its place on
// this node's queue.
type linkConsumer struct {
	l         *homeLink
	id        uint64
	q         *localQueue
	tag       string
	noAck     bool
	exclusive bool
	priority  int
	prefetch  int
	args      amqp.Table
	client    linkClient
	// Guarded by l.mu.
	inflight  int // unsettled deliveries, against prefetch
	credit    int // deliveries the other end can still take
	cancelled bool
}

// linkClient names, for operators, the channel on the other node that a
// linkConsumer stands for.
type linkClient struct {
	connID, connName string
	channel          uint16
	user, peer       string
}

// Priority implements queue.Consumer.
func (k *linkConsumer) Priority() int { return k.priority }

func (k *linkConsumer) isExclusive() bool { return k.exclusive }

// Deliver implements queue.Consumer; called with the queue locked.
func (k *linkConsumer) Deliver(q *queue.Queue, e queue.Entry, b queue.Batch) bool {
	l := k.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || k.cancelled || k.credit <= 0 {
		return false
	}
	if !k.noAck && k.prefetch > 0 && k.inflight >= k.prefetch {
		return false
	}
	k.credit--
	if !k.noAck {
		k.inflight++
	}
	l.nextID++
	id := l.nextID
	l.unacked[id] = linkDelivery{q: k.q, e: e, k: k}
	if !e.Redelivered {
		l.s.markDelivered(k.q.key, e.Loc)
	}
	m := e.Msg
	fs, _ := b.(*flushSet)
	l.sendBatch(fs, opDeliver, func(w *frameWriter) {
		w.uint(k.id)
		w.uint(id)
		w.bool(e.Redelivered)
		w.message(m)
	})
	return true
}

// ServeLink serves the home end of a queue link from node peer until it
// ends or the server closes.
func (s *Server) ServeLink(nc net.Conn, peer string) {
	l := &homeLink{linkConn: newLinkConn(nc), s: s, peer: peer, batch: &flushSet{},
		consumers: map[uint64]*linkConsumer{}, unacked: map[uint64]linkDelivery{}}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.homeLinks[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.homeLinks, l)
		s.mu.Unlock()
		s.wg.Done()
	}()
	go l.runWriter()
	err := l.serve()
	l.end()
	<-l.exited
	l.release()
	if err != nil && !isCommonNetError(err) && !errors.Is(err, net.ErrClosed) {
		s.log.Warn("queue link from another node ended", "node", peer, "error", err)
	}
}

func (l *homeLink) serve() error {
	br := l.reader()
	var buf []byte
	for {
		op, r, err := readFrame(br, &buf)
		if err != nil {
			return err
		}
		if err := l.handle(op, &r); err != nil {
			return err
		}
		if br.Buffered() == 0 {
			l.sendAcks()
			l.batch.flush()
		}
	}
}

func (l *homeLink) handle(op linkOp, r *frameReader) error {
	switch op {
	case opPing:
	case opSync:
		l.peerApplied = max(l.peerApplied, r.uint())
	case opPublish:
		l.publish(r)
	case opReplicate:
		l.replicate(r)
	case opConsume:
		l.consume(r)
	case opCancel:
		l.cancel(r.uint())
	case opCredit:
		id, n := r.uint(), r.uint()
		l.mu.Lock()
		k := l.consumers[id]
		if k != nil {
			k.credit += int(n)
		}
		l.mu.Unlock()
		if k != nil {
			k.q.Kick(l.batch)
		}
	case opSettle:
		kind := r.byte()
		n := r.uint()
		if n > uint64(len(r.b)) {
			return errLinkFrame
		}
		ids := make([]uint64, 0, n)
		for range n {
			ids = append(ids, r.uint())
		}
		if r.err != nil {
			return r.err
		}
		l.settle(kind, ids)
	case opGet:
		l.get(r)
	case opPurge, opInfo, opDelete:
		l.request(op, r)
	case opNode:
		req := r.uint()
		if r.err != nil {
			return r.err
		}
		// A report may wait up to probeWait for unreachable members.
		l.answerLater(req, func() (any, error) { return l.s.Report(), nil })
	case opAwait:
		req, index := r.uint(), r.uint()
		if r.err != nil {
			return r.err
		}
		l.answerLater(req, func() (any, error) { return nil, l.s.answerAwait(index) })
	case opAdmin:
		req, kind, n := r.uint(), r.byte(), r.uint()
		if n > uint64(len(r.b)) {
			return errLinkFrame
		}
		args := make([]string, 0, n)
		for range n {
			args = append(args, r.str())
		}
		if r.err != nil {
			return r.err
		}
		// Listing every connection and channel takes locks that client
		// traffic takes.
		l.answerLater(req, func() (any, error) { return l.s.answerAdmin(kind, args) })
	case opList:
		req := r.uint()
		vh, name := r.str(), r.str()
		if r.err != nil {
			return r.err
		}
		infos := l.s.Queues(vh)
		if name != "" {
			infos = slices.DeleteFunc(infos, func(qi QueueInfo) bool { return qi.Def.Name != name })
		}
		js, err := json.Marshal(infos)
		if err != nil {
			l.reply(req, chanErr(codeInternalError, "%v", err), nil)
			return nil
		}
		l.reply(req, nil, func(w *frameWriter) { w.bytes(js) })
	default:
		return errLinkFrame
	}
	return r.err
}

// answerLater answers request req with what fn returns, as JSON (nil:
// nothing), made on a goroutine of its own: fn may wait, and made on the
// reader it would hold up the link's queue traffic.
func (l *homeLink) answerLater(req uint64, fn func() (any, error)) {
	started := l.s.goLink(func() {
		v, err := fn()
		var js []byte
		if err == nil && v != nil {
			js, err = json.Marshal(v)
		}
		if err != nil {
			l.reply(req, chanErr(codeInternalError, "%v", err), nil)
			return
		}
		if js == nil {
			l.reply(req, nil, nil)
			return
		}
		l.reply(req, nil, func(w *frameWriter) { w.bytes(js) })
	})
	if !started {
		l.reply(req, chanErr(codeInternalError, "node %s is stopping", l.s.cfg.NodeName), nil)
	}
}

// queue finds a queue of this node. One the other node knows of may have
// been declared so recently that this node has yet to apply it: then it
// waits (a little) until it has applied as far as the other node had.
func (l *homeLink) queue(vhost, name string) *localQueue {
	if q := l.s.findQueue(vhost, name); q != nil {
		return q
	}
	if l.peerApplied == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.s.meta.WaitApplied(ctx, l.peerApplied); err != nil {
		l.s.log.Warn("definitions behind another node's", "node", l.peer, "error", err)
	}
	return l.s.findQueue(vhost, name)
}

// target finds the queue request req names, or answers that it does not
// exist.
func (l *homeLink) target(req uint64, vhost, name string) *localQueue {
	q := l.queue(vhost, name)
	if q == nil {
		l.reply(req, notFound("queue", vhost, name), nil)
	}
	return q
}

// linkPublish counts the copies of one forwarded publish still to be
// made safe, and answers once the last one is.
type linkPublish struct {
	l       *homeLink
	id      uint64
	pending atomic.Int32
	status  atomic.Uint32
}

// done is called by the store once a copy is on disk, or failed to get
// there.
func (p *linkPublish) done(err error) { p.settle(nil, err) }

// settle counts one copy as safe (or failed), and answers after the
// last; fs is the flush set of the goroutine calling, if it has one.
func (p *linkPublish) settle(fs *flushSet, err error) {
	if err != nil {
		p.status.CompareAndSwap(confirmOK, confirmFailed)
	}
	if p.pending.Add(-1) != 0 {
		return
	}
	st := byte(p.status.Load())
	p.l.sendBatch(fs, opConfirm, func(w *frameWriter) {
		w.uint(p.id)
		w.b = append(w.b, st)
	})
}

func (l *homeLink) publish(r *frameReader) {
	id := r.uint()
	vh := r.str()
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.fail()
		return
	}
	names := make([]string, 0, n)
	for range n {
		names = append(names, r.str())
	}
	m := r.message()
	if r.err != nil {
		return
	}
	s := l.s
	p := &linkPublish{l: l, id: id}
	p.pending.Store(1)
	defer p.settle(l.batch, nil)
	var data []byte
	for _, name := range names {
		q := l.queue(vh, name)
		if q == nil {
			// Deleted since the other node routed to it, or led from
			// another node now: then the message is not there, and the
			// publisher must hear so.
			if s.movedAway(vh, name) {
				p.status.Store(confirmFailed)
			}
			continue
		}
		var loc *store.Location
		if s.store != nil && m.Persistent && q.def.Durable {
			p.pending.Add(1)
			loc = s.storeCopy(q, m, &data, p.done)
		}
		lg := q.repl.Load()
		if lg != nil {
			p.pending.Add(1)
		}
		res := q.Publish(m, loc, l.batch)
		if res == queue.Gone && s.movedAway(vh, name) {
			p.status.Store(confirmFailed)
		}
		if lg != nil {
			if res == queue.Queued {
				lg.await(p.done)
			} else {
				p.done(nil)
			}
		}
		if res == queue.Rejected {
			p.status.CompareAndSwap(confirmOK, confirmRejected)
			if args := q.args(); args["x-overflow"] == "reject-publish-dlx" && wantsDeadLetter(args) {
				s.deadLetters.add(deadLetter{vhost: q.VHost, queue: q.Name, args: args, msg: m, reason: string(queue.DropMaxLen)})
			}
		}
		if res != queue.Queued {
			s.releaseAt(q.key, loc)
		}
	}
}

// reply answers request id with an AMQP error (code 0: none) and then
// the fields fn writes.
func (l *homeLink) reply(id uint64, e *amqpError, fn func(w *frameWriter)) {
	l.send(opReply, func(w *frameWriter) {
		w.uint(id)
		if e != nil {
			w.uint(uint64(e.code))
			w.str(e.text)
			return
		}
		w.uint(0)
		w.str("")
		if fn != nil {
			fn(w)
		}
	})
}

func (l *homeLink) consume(r *frameReader) {
	req, id := r.uint(), r.uint()
	vh, name, tag := r.str(), r.str(), r.str()
	noAck, exclusive := r.bool(), r.bool()
	priority, prefetch, credit := r.int(), r.uint(), r.uint()
	rawArgs := r.bytes()
	var cl linkClient
	cl.connID, cl.connName = r.str(), r.str()
	cl.channel = uint16(r.uint())
	cl.user, cl.peer = r.str(), r.str()
	if r.err != nil {
		return
	}
	args, err := amqp.DecodeTable(rawArgs)
	if err != nil {
		r.fail()
		return
	}
	q := l.target(req, vh, name)
	if q == nil {
		return
	}
	for _, o := range q.Consumers() {
		if x, ok := o.(interface{ isExclusive() bool }); ok && (x.isExclusive() || exclusive) {
			l.reply(req, chanErr(codeAccessRefused, "queue '%s' in vhost '%s' in exclusive use", q.Name, q.VHost), nil)
			return
		}
	}
	k := &linkConsumer{l: l, id: id, q: q, tag: tag, noAck: noAck, exclusive: exclusive,
		priority: int(priority), prefetch: int(prefetch), credit: int(credit), args: args, client: cl}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.consumers[id] = k
	l.mu.Unlock()
	// The answer goes before any delivery; the other end holds back
	// deliveries until its client has basic.consume-ok anyway.
	l.reply(req, nil, nil)
	if !q.AddConsumer(k) {
		l.mu.Lock()
		delete(l.consumers, id)
		l.mu.Unlock()
		l.send(opCancelled, func(w *frameWriter) { w.uint(id) })
		return
	}
	q.consumed()
}

func (l *homeLink) cancel(id uint64) {
	l.mu.Lock()
	k := l.consumers[id]
	delete(l.consumers, id)
	if k != nil {
		k.cancelled = true
	}
	l.mu.Unlock()
	if k != nil {
		l.s.consumerGone(k.q, k)
	}
}

// consumerGone takes consumer k off q, and deletes q when it was the last
// consumer of an auto-delete queue.
func (s *Server) consumerGone(q *localQueue, k queue.Consumer) {
	// A deleted queue answers -1, so a queue declared since under the same
	// name is never taken for this one.
	left := q.RemoveConsumer(k)
	if left == 0 {
		q.used()
	}
	if left == 0 && q.def.AutoDelete {
		if _, err := s.meta.DeleteQueue(s.ctx(), q.VHost, q.Name); err != nil && !errors.Is(err, meta.ErrNotFound) {
			s.log.Warn("delete auto-delete queue", "queue", q.Name, "error", err)
		}
	}
}

// settle applies the other end's acks, rejects and requeues.
func (l *homeLink) settle(kind byte, ids []uint64) {
	l.mu.Lock()
	picked := make([]linkDelivery, 0, len(ids))
	var kicks []*localQueue
	for _, id := range ids {
		d, ok := l.unacked[id]
		if !ok {
			continue
		}
		delete(l.unacked, id)
		if d.k != nil && !d.k.noAck {
			d.k.inflight--
			if d.k.prefetch > 0 && !containsQueue(kicks, d.q) {
				kicks = append(kicks, d.q)
			}
		}
		picked = append(picked, d)
	}
	l.mu.Unlock()
	l.s.finishLink(picked, kind)
	for _, q := range kicks {
		q.Kick(l.batch)
	}
}

func containsQueue(qs []*localQueue, q *localQueue) bool {
	for _, o := range qs {
		if o == q {
			return true
		}
	}
	return false
}

// finishLink settles deliveries made over a link: requeued, or acked or
// rejected as a channel settles its own.
func (s *Server) finishLink(ds []linkDelivery, kind byte) {
	if kind == settleRequeue {
		byQueue := map[*localQueue][]queue.Entry{}
		var order []*localQueue
		for _, d := range ds {
			if _, ok := byQueue[d.q]; !ok {
				order = append(order, d.q)
			}
			byQueue[d.q] = append(byQueue[d.q], d.e)
		}
		for _, q := range order {
			s.releaseAll(q.key, q.Requeue(byQueue[q]))
		}
		return
	}
	for _, d := range ds {
		d.q.Settle(1)
		var args amqp.Table
		if kind == settleReject {
			args = d.q.args()
		}
		s.finishEntry(d.q, &d.e, args)
	}
}

// finishEntry ends a delivered message that is not requeued: a rejected
// one (args, the queue's arguments, non-nil) is dead-lettered where the
// queue says so, and the stored copy of any other is released.
func (s *Server) finishEntry(q *localQueue, e *queue.Entry, args amqp.Table) {
	q.left(e)
	if wantsDeadLetter(args) {
		// The stored copy stays until the dead letter's own copies are on
		// disk.
		s.deadLetters.add(deadLetter{vhost: q.VHost, queue: q.Name, key: q.key, loc: e.Loc, args: args, msg: e.Msg, reason: "rejected"})
		return
	}
	s.releaseAt(q.key, e.Loc)
}

func (l *homeLink) get(r *frameReader) {
	req := r.uint()
	vh, name := r.str(), r.str()
	ack := r.bool()
	if r.err != nil {
		return
	}
	q := l.target(req, vh, name)
	if q == nil {
		return
	}
	q.used()
	e, remaining, ok := q.Get(ack)
	if !ok {
		l.reply(req, nil, func(w *frameWriter) { w.bool(false) })
		return
	}
	var id uint64
	if ack {
		l.mu.Lock()
		if l.closed {
			// Never with l.mu held: a queue's lock comes first.
			l.mu.Unlock()
			l.s.releaseAll(q.key, q.Requeue([]queue.Entry{e}))
			return
		}
		l.nextID++
		id = l.nextID
		l.unacked[id] = linkDelivery{q: q, e: e}
		l.mu.Unlock()
		if !e.Redelivered {
			l.s.markDelivered(q.key, e.Loc)
		}
	} else {
		q.left(&e)
		l.s.releaseAt(q.key, e.Loc)
	}
	l.reply(req, nil, func(w *frameWriter) {
		w.bool(true)
		w.uint(id)
		w.bool(e.Redelivered)
		w.uint(uint64(remaining))
		w.message(e.Msg)
	})
}

// request answers purge, info and delete.
func (l *homeLink) request(op linkOp, r *frameReader) {
	req := r.uint()
	vh, name := r.str(), r.str()
	var flag1, flag2 bool
	switch op {
	case opInfo:
		flag1 = r.bool()
	case opDelete:
		flag1, flag2 = r.bool(), r.bool()
	}
	if r.err != nil {
		return
	}
	q := l.target(req, vh, name)
	if q == nil {
		return
	}
	var n, consumers int
	switch op {
	case opPurge:
		var dropped []queue.Entry
		dropped, n = q.Purge()
		l.s.releaseAll(q.key, dropped)
	case opInfo:
		if flag1 {
			q.used()
		}
		n, consumers = q.Len(), q.ConsumerCount()
	case opDelete:
		if flag1 && q.ConsumerCount() > 0 {
			l.reply(req, chanErr(codePreconditionFail, "queue '%s' in vhost '%s' in use", q.Name, q.VHost), nil)
			return
		}
		n = q.Len()
		if flag2 && n > 0 {
			l.reply(req, chanErr(codePreconditionFail, "queue '%s' in vhost '%s' not empty", q.Name, q.VHost), nil)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := l.s.meta.DeleteQueue(ctx, q.VHost, q.Name)
		cancel()
		if err != nil {
			e, ok := asAMQP(err).(*amqpError)
			if !ok {
				e = chanErr(codeInternalError, "%v", err)
			}
			l.reply(req, e, nil)
			return
		}
	}
	l.reply(req, nil, func(w *frameWriter) {
		w.uint(uint64(n))
		w.uint(uint64(consumers))
	})
}

// queueCancelled tells the other end that its consumer's queue is gone.
func (k *linkConsumer) queueCancelled() {
	l := k.l
	l.mu.Lock()
	_, live := l.consumers[k.id]
	delete(l.consumers, k.id)
	k.cancelled = true
	l.mu.Unlock()
	if live {
		l.send(opCancelled, func(w *frameWriter) { w.uint(k.id) })
	}
}

// release ends everything the link held: its consumers leave their
// queues and what it had not settled is requeued, as when a channel
// closes.
func (l *homeLink) release() {
	l.mu.Lock()
	l.closed = true
	consumers := l.consumers
	l.consumers = map[uint64]*linkConsumer{}
	ds := make([]linkDelivery, 0, len(l.unacked))
	for _, d := range l.unacked {
		ds = append(ds, d)
	}
	l.unacked = map[uint64]linkDelivery{}
	for _, k := range consumers {
		k.cancelled = true
	}
	l.mu.Unlock()
	for _, k := range consumers {
		l.s.consumerGone(k.q, k)
	}
	l.s.finishLink(ds, settleRequeue)
	l.batch.flush()
}
