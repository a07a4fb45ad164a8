package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/queue"
)

// remoteQueue is a queue whose messages live on another node, its home.
type remoteQueue struct {
	def meta.Queue
}

// peerLink is this node's end of the queue link to another node: the
// publishes, consumers and requests of this node's clients on that
// node's queues.
type peerLink struct {
	*linkConn
	s     *Server
	node  string
	batch *flushSet // the reader's: client sockets to flush

	mu        sync.Mutex // guards below
	room      *sync.Cond // signalled as forwarded publishes are answered
	nextID    uint64
	pubs      map[uint64]forwarded
	pubBytes  int64 // octets of forwarded publishes not yet answered
	reqs      map[uint64]chan linkReply
	consumers map[uint64]*consumer
	failed    bool
	// broken is failed, for readers that take no lock.
	broken atomic.Bool
}

// forwarded is a publish sent to the home node and not yet answered.
type forwarded struct {
	done func(fs *flushSet, err error) // nil when nobody waits for the answer
	size int64
}

// linkReply is the home node's answer to a request: an AMQP error code
// and text (code 0: success) and the request's results.
type linkReply struct {
	code uint16
	text string
	r    frameReader
}

// err returns the reply's error as the channel error to close with.
func (r *linkReply) error() error {
	if r.code == 0 {
		return nil
	}
	return chanErr(r.code, "%s", r.text)
}

// Flow control on a link: a channel forwarding publishes waits while
// this many octets are unanswered, so a slow node slows its publishers
// rather than this node's memory growing; a consumer on another node is
// sent at most linkCredit deliveries ahead of its client.
const (
	linkWindow = 16 << 20
	linkCredit = 256
)

// linkDialTimeout bounds reaching another node; a node that could not be
// reached is not tried again for linkRetry, so that publishes routed to
// its queues are refused at once rather than each waiting.
const (
	linkDialTimeout = 3 * time.Second
	linkRetry       = time.Second
)

// errNoCluster refuses queue traffic to another node on a node that has
// no cluster port.
var errNoCluster = errors.New("broker: no cluster link to other nodes")

// peerSlot holds the link to one node, dialled when first needed.
type peerSlot struct {
	// live is the link while it works: every forwarded publish reads it,
	// so it takes no lock.
	live atomic.Pointer[peerLink]

	mu       sync.Mutex // serialises dialling; guards below
	failedAt time.Time
	err      error
}

// peerLink returns the link to node, dialling it if there is none.
func (s *Server) peerLink(node string) (*peerLink, error) {
	if s.cfg.DialPeer == nil {
		return nil, errNoCluster
	}
	v, ok := s.peers.Load(node)
	if !ok {
		v, _ = s.peers.LoadOrStore(node, &peerSlot{})
	}
	slot := v.(*peerSlot)
	if l := slot.live.Load(); l != nil && !l.broken.Load() {
		return l, nil
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil, net.ErrClosed
	}
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if l := slot.live.Load(); l != nil && !l.broken.Load() {
		return l, nil // dialled by another caller meanwhile
	}
	if time.Since(slot.failedAt) < linkRetry {
		return nil, slot.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), linkDialTimeout)
	nc, err := s.cfg.DialPeer(ctx, node)
	cancel()
	if err != nil {
		slot.failedAt, slot.err = time.Now(), fmt.Errorf("reach node %s: %w", node, err)
		s.log.Warn("cannot reach node for queue traffic", "node", node, "error", err)
		return nil, slot.err
	}
	l := &peerLink{linkConn: newLinkConn(nc), s: s, node: node, batch: &flushSet{},
		pubs: map[uint64]forwarded{}, reqs: map[uint64]chan linkReply{}, consumers: map[uint64]*consumer{}}
	l.room = sync.NewCond(&l.mu)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return nil, net.ErrClosed
	}
	s.linkWG.Add(2)
	s.mu.Unlock()
	go func() {
		defer s.linkWG.Done()
		l.runWriter()
	}()
	go func() {
		defer s.linkWG.Done()
		err := l.serve()
		l.end()
		l.fail()
		if err != nil && !isCommonNetError(err) && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("queue link to another node ended", "node", node, "error", err)
		}
	}()
	slot.live.Store(l)
	return l, nil
}

// goLink runs fn on a goroutine of the server's link work, which Close
// waits for; it reports false, running nothing, once the server is
// closing.
func (s *Server) goLink(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.linkWG.Add(1)
	go func() {
		defer s.linkWG.Done()
		fn()
	}()
	return true
}

// closePeerLinks ends every link this node dialled and waits for them.
func (s *Server) closePeerLinks() {
	s.peers.Range(func(_, v any) bool {
		if l := v.(*peerSlot).live.Load(); l != nil {
			l.end()
		}
		return true
	})
	s.linkWG.Wait()
}

func (l *peerLink) serve() error {
	br := l.reader()
	var buf []byte
	for {
		op, r, err := readFrame(br, &buf)
		if err != nil {
			return err
		}
		switch op {
		case opPing:
		case opConfirm:
			id, st := r.uint(), r.byte()
			if r.err != nil {
				return r.err
			}
			l.mu.Lock()
			f, ok := l.pubs[id]
			delete(l.pubs, id)
			l.pubBytes -= f.size
			l.mu.Unlock()
			l.room.Broadcast()
			if ok && f.done != nil {
				f.done(l.batch, confirmErr(st))
			}
		case opReply:
			id, code, text := r.uint(), r.uint(), r.str()
			if r.err != nil {
				return r.err
			}
			l.mu.Lock()
			c := l.reqs[id]
			delete(l.reqs, id)
			l.mu.Unlock()
			if c != nil {
				// The frame's memory is reused by the next read.
				c <- linkReply{code: uint16(code), text: text, r: frameReader{b: append([]byte(nil), r.b...)}}
			}
		case opDeliver:
			id, did, redelivered := r.uint(), r.uint(), r.bool()
			m := r.message()
			if r.err != nil {
				return r.err
			}
			l.mu.Lock()
			k := l.consumers[id]
			l.mu.Unlock()
			if k == nil || !k.ch.remoteArrived(k, remoteDelivery{id: did, redelivered: redelivered, msg: m}, l.batch) {
				l.settle(l.batch, settleRequeue, []uint64{did})
			}
		case opReplAck:
			vh, name := r.str(), r.str()
			session, off, status := r.uint(), r.uint(), r.byte()
			if r.err != nil {
				return r.err
			}
			if q := l.s.findQueue(vh, name); q != nil {
				if lg := q.repl.Load(); lg != nil {
					lg.acked(l.node, session, off, status)
				}
			}
		case opCancelled:
			id := r.uint()
			if r.err != nil {
				return r.err
			}
			l.mu.Lock()
			k := l.consumers[id]
			delete(l.consumers, id)
			l.mu.Unlock()
			if k != nil {
				k.remote.gone.Store(true)
				if !l.s.followFailover(k) {
					k.ch.queueDeleted(k)
				}
			}
		default:
			return errLinkFrame
		}
		if br.Buffered() == 0 {
			l.batch.flush()
		}
	}
}

// fail ends what waits on the link once it has broken: forwarded
// publishes are refused, requests fail, and consumers are cancelled as if
// their queue were gone, as RabbitMQ cancels the consumers of a queue
// whose node goes down.
func (l *peerLink) fail() {
	l.mu.Lock()
	l.failed = true
	l.broken.Store(true)
	pubs, reqs, consumers := l.pubs, l.reqs, l.consumers
	l.pubs, l.reqs, l.consumers = map[uint64]forwarded{}, map[uint64]chan linkReply{}, map[uint64]*consumer{}
	l.pubBytes = 0
	l.mu.Unlock()
	l.room.Broadcast()
	for _, f := range pubs {
		if f.done != nil {
			f.done(nil, errNotHere)
		}
	}
	for _, c := range reqs {
		close(c)
	}
	for _, k := range consumers {
		k.remote.gone.Store(true)
		if !l.s.followFailover(k) {
			k.ch.queueDeleted(k)
		}
	}
	for _, q := range l.s.localQueues("") {
		if lg := q.repl.Load(); lg != nil {
			lg.linkFailed(l)
		}
	}
}

// publish forwards msg for the queues of rqs on rqs[0]'s node, waiting
// first while the link's window is full. done, if not nil, gets the
// answer.
func (l *peerLink) publish(fs *flushSet, vhost string, rqs []*remoteQueue, msg *queue.Message, done func(*flushSet, error)) {
	size := int64(len(msg.Body) + len(msg.Properties) + 64)
	l.mu.Lock()
	for l.pubBytes > linkWindow && !l.failed {
		l.room.Wait()
	}
	if l.failed {
		l.mu.Unlock()
		if done != nil {
			done(nil, errNotHere)
		}
		return
	}
	l.nextID++
	id := l.nextID
	l.pubs[id] = forwarded{done: done, size: size}
	l.pubBytes += size
	l.mu.Unlock()
	l.sendSynced(fs, l.s.meta.Applied(), opPublish, func(w *frameWriter) {
		w.uint(id)
		w.str(vhost)
		node, n := rqs[0].def.Node, 0
		for _, rq := range rqs {
			if rq.def.Node == node {
				n++
			}
		}
		w.uint(uint64(n))
		for _, rq := range rqs {
			if rq.def.Node == node {
				w.str(rq.def.Name)
			}
		}
		w.message(msg)
	})
}

// call sends a request and waits for its answer; fn writes the fields
// that follow the request id.
func (l *peerLink) call(op linkOp, fn func(w *frameWriter)) (linkReply, error) {
	c := make(chan linkReply, 1)
	l.mu.Lock()
	if l.failed {
		l.mu.Unlock()
		return linkReply{}, net.ErrClosed
	}
	l.nextID++
	id := l.nextID
	l.reqs[id] = c
	l.mu.Unlock()
	l.sendSynced(nil, l.s.meta.Applied(), op, func(w *frameWriter) {
		w.uint(id)
		fn(w)
	})
	select {
	case r, ok := <-c:
		if !ok {
			return linkReply{}, net.ErrClosed
		}
		return r, nil
	case <-l.s.stop:
		// The node is closing; the link ends after its background work.
		return linkReply{}, net.ErrClosed
	}
}

// settle sends acks, rejects or requeues of deliveries made over the
// link; on a broken link there is nothing left to settle.
func (l *peerLink) settle(fs *flushSet, kind byte, ids []uint64) {
	if len(ids) == 0 {
		return
	}
	l.sendBatch(fs, opSettle, func(w *frameWriter) {
		w.b = append(w.b, kind)
		w.uint(uint64(len(ids)))
		for _, id := range ids {
			w.uint(id)
		}
	})
}

// remoteConsumer is the part of a consumer whose queue lives on another
// node: its id on the link, and the deliveries that have arrived and
// wait for room on the channel.
type remoteConsumer struct {
	k    *consumer
	link *peerLink
	id   uint64
	gone atomic.Bool // cancelled by the queue's node, or the link broke
	// Guarded by the channel's mu.
	ready   bool // basic.consume-ok has gone to the client
	pending []remoteDelivery
}

// remoteDelivery is a message the queue's node has sent to a consumer here.
type remoteDelivery struct {
	id          uint64
	redelivered bool
	msg         *queue.Message
}

// Kick delivers what waits, once the channel has room again.
func (rc *remoteConsumer) Kick(b queue.Batch) {
	ch := rc.k.ch
	fs, _ := b.(*flushSet)
	ch.mu.Lock()
	ch.drainRemoteLocked(rc.k, fs)
	ch.mu.Unlock()
}

// remoteArrived takes a delivery from the queue's node; false means the
// channel has closed and the message goes back.
func (ch *channel) remoteArrived(k *consumer, d remoteDelivery, fs *flushSet) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed || k.remote.gone.Load() {
		return false
	}
	k.remote.pending = append(k.remote.pending, d)
	ch.drainRemoteLocked(k, fs)
	return true
}

// drainRemoteLocked passes a remote consumer's waiting deliveries to the
// client while the channel has room, and grants the queue's node as much
// credit as it passed on. ch.mu held.
func (ch *channel) drainRemoteLocked(k *consumer, fs *flushSet) {
	rc := k.remote
	if !rc.ready || ch.closed {
		return
	}
	n := 0
	var acked []uint64
	for n < len(rc.pending) {
		if !k.noAck {
			if k.prefetch > 0 && k.inflight >= k.prefetch {
				break
			}
			if ch.prefetchGlobal > 0 && ch.inflight >= ch.prefetchGlobal {
				break
			}
		}
		d := rc.pending[n]
		tag := ch.nextTag + 1
		m := d.msg
		if !ch.c.out.tryAppend(rc, fs, func(b []byte) []byte {
			b = amqp.AppendDeliverFrame(b, ch.id, &amqp.BasicDeliver{ConsumerTag: k.tag, DeliveryTag: tag, Redelivered: d.redelivered, Exchange: m.Exchange, RoutingKey: m.RoutingKey})
			b = amqp.AppendHeaderFrame(b, ch.id, amqp.ClassBasic, uint64(len(m.Body)), m.Properties)
			return amqp.AppendBodyFrames(b, ch.id, m.Body, ch.c.frameMax)
		}) {
			break
		}
		ch.nextTag = tag
		ch.stats.count(&ch.stats.deliver, k.noAck, d.redelivered)
		if k.noAck {
			acked = append(acked, d.id)
		} else {
			k.inflight++
			ch.inflight++
			ch.unacked = append(ch.unacked, delivery{tag: tag, link: rc.link, rid: d.id, entry: queue.Entry{Redelivered: d.redelivered}, cons: k})
		}
		n++
	}
	if n == 0 {
		return
	}
	clear(rc.pending[:n])
	rc.pending = rc.pending[n:]
	rc.link.settle(fs, settleAck, acked)
	rc.link.sendBatch(fs, opCredit, func(w *frameWriter) {
		w.uint(rc.id)
		w.uint(uint64(n))
	})
}

// consumeRemote starts consumer k on a queue of another node.
func (ch *channel) consumeRemote(k *consumer, rq *remoteQueue, link *peerLink, noWait bool) error {
	if err := ch.attachRemote(k, rq, link); err != nil {
		return err
	}
	ch.consumers[k.tag] = k
	ch.stats.consumers.Store(int32(len(ch.consumers)))
	if !noWait {
		ch.c.sendMethod(ch.id, &amqp.BasicConsumeOk{ConsumerTag: k.tag})
	}
	ch.mu.Lock()
	k.remote.ready = true
	ch.drainRemoteLocked(k, ch.c.batch)
	ch.mu.Unlock()
	return nil
}

// attachRemote registers consumer k with the node of its queue; its
// deliveries wait until it is ready.
func (ch *channel) attachRemote(k *consumer, rq *remoteQueue, link *peerLink) error {
	rc := &remoteConsumer{k: k, link: link}
	k.remote = rc
	link.mu.Lock()
	link.nextID++
	rc.id = link.nextID
	link.consumers[rc.id] = k
	link.mu.Unlock()
	args := amqp.EncodeTable(k.args)
	r, err := link.call(opConsume, func(w *frameWriter) {
		w.uint(rc.id)
		w.str(rq.def.VHost)
		w.str(rq.def.Name)
		w.str(k.tag)
		w.bool(k.noAck)
		w.bool(k.exclusive)
		w.int(int64(k.priority))
		w.uint(uint64(max(k.prefetch, 0)))
		w.uint(linkCredit)
		w.bytes(args)
		c := ch.c
		w.str(c.id)
		w.str(c.connName)
		w.uint(uint64(ch.id))
		w.str(c.user)
		w.str(addrText(c.nc.RemoteAddr()))
	})
	if err == nil {
		err = r.error()
	} else {
		err = homeDown(rq.def)
	}
	if err != nil {
		link.mu.Lock()
		delete(link.consumers, rc.id)
		link.mu.Unlock()
		return err
	}
	return nil
}

// cancelRemote stops a consumer of another node's queue; what it had
// received and not passed on goes back.
func (ch *channel) cancelRemote(k *consumer) {
	rc := k.remote
	link := rc.link
	link.mu.Lock()
	delete(link.consumers, rc.id)
	link.mu.Unlock()
	rc.gone.Store(true)
	link.send(opCancel, func(w *frameWriter) { w.uint(rc.id) })
	ch.mu.Lock()
	ids := make([]uint64, 0, len(rc.pending))
	for _, d := range rc.pending {
		ids = append(ids, d.id)
	}
	rc.pending = nil
	ch.mu.Unlock()
	link.settle(nil, settleRequeue, ids)
}

// getRemote is basic.get on a queue of another node.
func (ch *channel) getRemote(rq *remoteQueue, link *peerLink, noAck bool) error {
	r, err := link.call(opGet, func(w *frameWriter) {
		w.str(rq.def.VHost)
		w.str(rq.def.Name)
		w.bool(!noAck)
	})
	if err != nil {
		return homeDown(rq.def)
	}
	if err := r.error(); err != nil {
		return err
	}
	if !r.r.bool() {
		ch.c.sendMethod(ch.id, &amqp.BasicGetEmpty{})
		return r.r.err
	}
	id, redelivered, remaining := r.r.uint(), r.r.bool(), r.r.uint()
	msg := r.r.message()
	if r.r.err != nil {
		return fmt.Errorf("basic.get from node %s: %w", link.node, r.r.err)
	}
	ch.stats.count(&ch.stats.get, noAck, redelivered)
	ch.mu.Lock()
	ch.nextTag++
	tag := ch.nextTag
	if !noAck {
		ch.unacked = append(ch.unacked, delivery{tag: tag, link: link, rid: id, entry: queue.Entry{Redelivered: redelivered}})
	}
	ch.mu.Unlock()
	ch.c.out.appendBatch(ch.c.batch, func(b []byte) []byte {
		b = amqp.AppendMethodFrame(b, ch.id, &amqp.BasicGetOk{DeliveryTag: tag, Redelivered: redelivered, Exchange: msg.Exchange, RoutingKey: msg.RoutingKey, MessageCount: uint32(remaining)})
		b = amqp.AppendHeaderFrame(b, ch.id, amqp.ClassBasic, uint64(len(msg.Body)), msg.Properties)
		return amqp.AppendBodyFrames(b, ch.id, msg.Body, ch.c.frameMax)
	})
	return nil
}

// remoteCounts asks a queue's node for its ready and consumer counts;
// renew renews its x-expires, as a declare does.
func remoteCounts(rq *remoteQueue, link *peerLink, renew bool) (ready, consumers uint32, err error) {
	r, err := link.call(opInfo, func(w *frameWriter) {
		w.str(rq.def.VHost)
		w.str(rq.def.Name)
		w.bool(renew)
	})
	if err != nil {
		return 0, 0, homeDown(rq.def)
	}
	if err := r.error(); err != nil {
		return 0, 0, err
	}
	n, c := r.r.uint(), r.r.uint()
	return uint32(n), uint32(c), r.r.err
}

// remoteRequest runs purge or delete on a queue's node and returns the
// message count it answers.
func remoteRequest(rq *remoteQueue, link *peerLink, op linkOp, flags ...bool) (uint32, error) {
	r, err := link.call(op, func(w *frameWriter) {
		w.str(rq.def.VHost)
		w.str(rq.def.Name)
		for _, f := range flags {
			w.bool(f)
		}
	})
	if err != nil {
		return 0, homeDown(rq.def)
	}
	if err := r.error(); err != nil {
		return 0, err
	}
	n := r.r.uint()
	return uint32(n), r.r.err
}

// forward sends a message to queues of other nodes, one publish per
// node. done, if not nil, is called once per node with nil once that
// node holds the message, errRejected if a full queue refused it, or
// errNotHere if the node cannot be reached, and with the flush set of
// the goroutine calling it, if it has one.
func (s *Server) forward(fs *flushSet, vhost string, rqs []*remoteQueue, msg *queue.Message, done func(*flushSet, error)) {
	for i, rq := range rqs {
		if !firstOfNode(rqs, i) {
			continue
		}
		link, err := s.peerLink(rq.def.Node)
		if err != nil {
			if done != nil {
				done(nil, errNotHere)
			}
			continue
		}
		link.publish(fs, vhost, rqs[i:], msg, done)
	}
}

// firstOfNode reports whether rqs[i] is the first of rqs on its node.
func firstOfNode(rqs []*remoteQueue, i int) bool {
	for _, o := range rqs[:i] {
		if o.def.Node == rqs[i].def.Node {
			return false
		}
	}
	return true
}

// nodes counts the distinct home nodes of rqs.
func nodes(rqs []*remoteQueue) int {
	n := 0
	for i := range rqs {
		if firstOfNode(rqs, i) {
			n++
		}
	}
	return n
}

// confirmErr is the publisher's answer for a forwarded publish's status.
func confirmErr(status byte) error {
	switch status {
	case confirmOK:
		return nil
	case confirmRejected:
		return errRejected
	}
	return errNotHere
}
