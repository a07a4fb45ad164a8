package broker

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/queue"
	"github.com/warren-mq/warren/internal/store"
)

func (ch *channel) startPublish(m *amqp.BasicPublish) error {
	if m.Immediate {
		return connErr(codeNotImplemented, "immediate=true")
	}
	if err := ch.checkPerm(permWrite, "exchange", m.Exchange); err != nil {
		return err
	}
	ch.pub = pendingPublish{method: m}
	ch.publishing = &ch.pub
	ch.c.published = true
	return nil
}

// handleContent takes a content header or body frame.
func (ch *channel) handleContent(f amqp.Frame) error {
	if ch.closing {
		return nil
	}
	p := ch.publishing
	if p == nil {
		return connErr(codeUnexpectedFrame, "expected method frame, got non method frame instead")
	}
	if f.Type == amqp.FrameHeader {
		if p.props != nil {
			return connErr(codeUnexpectedFrame, "expected content body, got non content body frame instead")
		}
		h, _, err := amqp.ParseContentHeader(f.Payload)
		if err != nil {
			return connErr(codeSyntaxError, "%v", err)
		}
		if h.ClassID != amqp.ClassBasic {
			return connErr(codeFrameError, "content header for class %d on basic.publish", h.ClassID)
		}
		if h.BodySize > ch.c.s.cfg.MaxMessageSize {
			ch.publishing = nil
			return chanErr(codePreconditionFail, "message size %d is larger than configured max size %d", h.BodySize, ch.c.s.cfg.MaxMessageSize)
		}
		// One allocation for the properties and the body: they live and
		// die together.
		n := uint64(len(h.Properties))
		buf := make([]byte, n, n+h.BodySize)
		copy(buf, h.Properties)
		p.props = buf[:n:n]
		// Scan our copy: the summary's slices must not point into the
		// frame, whose buffer is reused.
		p.summary, _ = amqp.ScanProperties(p.props)
		p.size = h.BodySize
		p.body = buf[n:n]
		if h.BodySize == 0 {
			return ch.finishPublish()
		}
		return nil
	}
	if p.props == nil {
		return connErr(codeUnexpectedFrame, "expected content header for class 60, got non content header frame instead")
	}
	if uint64(len(p.body))+uint64(len(f.Payload)) > p.size {
		return connErr(codeFrameError, "content body exceeds the size in its header (%d octets)", p.size)
	}
	p.body = append(p.body, f.Payload...)
	if uint64(len(p.body)) == p.size {
		return ch.finishPublish()
	}
	return nil
}

func (ch *channel) finishPublish() error {
	p := ch.publishing
	ch.publishing = nil
	if ch.tx {
		if _, ok := ch.lookupExchange(p.method.Exchange); !ok {
			return notFound("exchange", ch.c.vhostName, p.method.Exchange)
		}
		// p and its method are the channel's own, reused by the next
		// publish.
		kept, m := *p, *p.method
		kept.method = &m
		ch.txPublishes = append(ch.txPublishes, &kept)
		return nil
	}
	var seq uint64
	if ch.confirm {
		ch.publishSeq++
		seq = ch.publishSeq
	}
	if err := ch.deliverPublish(p, seq); err != nil {
		return err
	}
	ch.stats.publish.Add(1)
	if ch.confirm {
		ch.cf.mu.Lock()
		ch.cf.published = seq
		ch.cf.mu.Unlock()
		if !ch.queuedForCf {
			ch.queuedForCf = true
			ch.c.pending = append(ch.c.pending, ch)
		}
	}
	return nil
}

func (ch *channel) lookupExchange(name string) (*exchange, bool) {
	v := ch.c.vh
	v.mu.RLock()
	defer v.mu.RUnlock()
	x, ok := v.exchanges[name]
	return x, ok
}

// deliverPublish routes one message and enqueues it. seq is its publish
// sequence number in confirm mode, 0 otherwise.
func (ch *channel) deliverPublish(p *pendingPublish, seq uint64) error {
	m := p.method
	x, ok := ch.lookupExchange(m.Exchange)
	if !ok {
		return notFound("exchange", ch.c.vhostName, m.Exchange)
	}
	if x.def.Internal {
		return chanErr(codeAccessRefused, "cannot publish to internal exchange '%s' in vhost '%s'", m.Exchange, ch.c.vhostName)
	}
	if err := ch.checkTopic(permWrite, x, m.RoutingKey); err != nil {
		return err
	}
	if uid := p.summary.UserID; uid != nil && string(uid) != ch.c.user {
		return chanErr(codePreconditionFail, "user_id property set to '%s' but authenticated user was '%s'", uid, ch.c.user)
	}
	if string(p.summary.ReplyTo) == replyQueue {
		if err := ch.rewriteReplyTo(p); err != nil {
			return err
		}
	}
	if m.Exchange == "" && strings.HasPrefix(m.RoutingKey, replyPrefix) {
		if !ch.c.s.deliverReply(ch.c.batch, m.RoutingKey, m.Exchange, m.RoutingKey, p.props, p.body) && m.Mandatory {
			ch.sendReturn(m, p.props, p.body)
		}
		return nil
	}
	headers := func() amqp.Table {
		if p.summary.Headers == nil {
			return amqp.Table{}
		}
		t, err := amqp.DecodeTable(p.summary.Headers)
		if err != nil {
			return amqp.Table{}
		}
		return t
	}
	qs, remote, _ := ch.c.vh.route(m.Exchange, m.RoutingKey, headers, ch.routeBuf[:0], ch.remoteBuf[:0])
	ch.routeBuf, ch.remoteBuf = qs, remote
	ttl, ok := messageTTL(p.summary.Expiration)
	if !ok {
		return chanErr(codePreconditionFail, "invalid expiration '%s'", p.summary.Expiration)
	}
	msg := &queue.Message{
		TTL:        ttl,
		Exchange:   m.Exchange,
		RoutingKey: m.RoutingKey,
		Properties: p.props,
		Body:       p.body,
		Persistent: p.summary.DeliveryMode == 2,
		Priority:   p.summary.Priority,
	}
	// A persistent message goes to the store once for each durable queue,
	// and to each other node holding queues it reaches; its confirm waits
	// for every copy, and every node's answer.
	st := ch.c.s.store
	var data []byte
	copies := 0
	if st != nil && msg.Persistent {
		for _, q := range qs {
			if q.def.Durable {
				copies++
			}
		}
		if copies > 0 {
			data = encodeMessage(msg, time.Now().UnixNano())
		}
	}
	if len(remote) > 0 {
		copies += nodes(remote)
	}
	// A mirrored queue's copy counts once its in-sync mirrors hold it.
	lgs := ch.replBuf[:0]
	for _, q := range qs {
		var lg *leaderLog
		if seq != 0 || ch.txDisk != nil {
			lg = q.repl.Load()
		}
		if lg != nil {
			copies++
		}
		lgs = append(lgs, lg)
	}
	ch.replBuf = lgs
	if seq != 0 && copies > 0 {
		ch.cf.waitDisk(seq, copies)
	}
	routed, rejected := false, false
	for i, q := range qs {
		var loc *store.Location
		if data != nil && q.def.Durable {
			var done func(error)
			if seq != 0 {
				done = func(err error) { ch.diskDone(seq, err) }
			} else if w := ch.txDisk; w != nil {
				w.add()
				done = w.done
			}
			l, err := st.Append(q.key, data, done)
			if err != nil {
				if done != nil {
					done(err)
				}
			} else {
				loc = &l
			}
		}
		res := q.Publish(msg, loc, ch.c.batch)
		if lg := lgs[i]; lg != nil {
			done := func(err error) { ch.diskDone(seq, err) }
			if seq == 0 {
				w := ch.txDisk
				w.add()
				done = w.done
			}
			if res == queue.Queued {
				lg.await(done)
			} else {
				done(nil)
			}
			lgs[i] = nil
		}
		switch res {
		case queue.Queued:
			routed = true
		case queue.Gone:
			// A queue that moved to another node since it was routed to
			// (its leader changed) does not have the message: nack it.
			if seq != 0 && ch.c.s.movedAway(q.VHost, q.Name) {
				routed = true
				ch.diskDone(seq, errNotHere)
			}
		case queue.Rejected:
			routed, rejected = true, true
			// reject-publish-dlx: the refused message is dead-lettered as
			// well as nacked.
			if args := q.args(); args["x-overflow"] == "reject-publish-dlx" && wantsDeadLetter(args) {
				ch.c.s.deadLetters.add(deadLetter{vhost: q.VHost, queue: q.Name, args: args, msg: msg, reason: string(queue.DropMaxLen)})
			}
		}
		if res != queue.Queued {
			ch.c.s.releaseAt(q.key, loc)
		}
		qs[i] = nil
	}
	if rejected && seq != 0 {
		// A full queue with x-overflow reject-publish refuses the message:
		// the publisher gets basic.nack, as from RabbitMQ.
		ch.diskDone(seq, errRejected)
	}
	if len(remote) > 0 {
		// Queues of other nodes get the message over the link to each; a
		// node that cannot be reached answers with a nack, as RabbitMQ
		// nacks a message routed to a queue whose node is down.
		routed = true
		var done func(*flushSet, error)
		if seq != 0 {
			done = func(fs *flushSet, err error) { ch.confirmDone(fs, seq, err) }
		} else if w := ch.txDisk; w != nil {
			for range nodes(remote) {
				w.add()
			}
			done = func(_ *flushSet, err error) { w.done(err) }
		}
		ch.c.s.forward(ch.c.batch, ch.c.vhostName, remote, msg, done)
		clear(remote)
	}
	if !routed {
		if m.Mandatory {
			ch.sendReturn(m, msg.Properties, msg.Body)
		} else {
			ch.stats.dropped.Add(1)
		}
	}
	return nil
}

// errRejected marks a publish refused by a full queue.
var errRejected = errors.New("broker: queue full")

// errNotHere marks a publish routed to a queue whose node cannot be
// reached, or was lost before it answered.
var errNotHere = errors.New("broker: queue's node unreachable")

// sendReturn hands an unroutable mandatory message back with basic.return.
func (ch *channel) sendReturn(m *amqp.BasicPublish, props, body []byte) {
	ch.stats.returned.Add(1)
	ch.c.out.appendBatch(ch.c.batch, func(b []byte) []byte {
		b = amqp.AppendMethodFrame(b, ch.id, &amqp.BasicReturn{ReplyCode: codeNoRoute, ReplyText: "NO_ROUTE", Exchange: m.Exchange, RoutingKey: m.RoutingKey})
		b = amqp.AppendHeaderFrame(b, ch.id, amqp.ClassBasic, uint64(len(body)), props)
		return amqp.AppendBodyFrames(b, ch.id, body, ch.c.frameMax)
	})
}

// flushConfirms sends one basic.ack covering every publish confirmed
// since the last flush. Reader goroutine, at the end of a batch.
func (ch *channel) flushConfirms() {
	ch.queuedForCf = false
	if ch.closing {
		return
	}
	ch.cf.mu.Lock()
	defer ch.cf.mu.Unlock()
	ch.sendConfirmsLocked(ch.c.batch)
}

// diskDone is called by the store when one copy of publish seq is on
// disk (err nil) or failed to get there.
func (ch *channel) diskDone(seq uint64, err error) {
	ch.confirmDone(nil, seq, err)
}

// confirmDone is diskDone for a goroutine with a batch of work: the
// answers go out when fs is flushed, together.
func (ch *channel) confirmDone(fs *flushSet, seq uint64, err error) {
	ch.cf.mu.Lock()
	defer ch.cf.mu.Unlock()
	if ch.cf.done(seq, err != nil) {
		ch.cf.nack(seq)
	}
	if fs == nil {
		ch.sendConfirmsLocked(nil)
		return
	}
	for _, o := range fs.confirms {
		if o == ch {
			return
		}
	}
	fs.confirms = append(fs.confirms, ch)
}

// sendConfirmsLocked sends every answer that is due, in order: one
// basic.ack for each run of publishes up to the first that still waits
// for the disk, and a basic.nack for each refused one. ch.cf.mu held.
func (ch *channel) sendConfirmsLocked(fs *flushSet) {
	if ch.cf.closed {
		return
	}
	for {
		upTo, ack, ok := ch.cf.next()
		if !ok {
			return
		}
		multiple := upTo-ch.cf.answered > 1
		if ack {
			ch.stats.confirmed.Add(upTo - ch.cf.answered)
		}
		ch.cf.answer(upTo, ack)
		ch.c.out.appendBatch(fs, func(b []byte) []byte {
			if ack {
				return amqp.AppendMethodFrame(b, ch.id, &amqp.BasicAck{DeliveryTag: upTo, Multiple: multiple})
			}
			return amqp.AppendMethodFrame(b, ch.id, &amqp.BasicNack{DeliveryTag: upTo})
		})
	}
}

func (ch *channel) txCommit() error {
	if !ch.tx {
		return chanErr(codePreconditionFail, "channel is not transactional")
	}
	pubs, acks := ch.txPublishes, ch.txAcks
	ch.txPublishes, ch.txAcks = nil, nil
	// commit-ok means the persistent messages are on disk, as in
	// RabbitMQ: wait for their fsync.
	ch.txDisk = newTxSync()
	for _, p := range pubs {
		if err := ch.deliverPublish(p, 0); err != nil {
			ch.txDisk = nil
			return err
		}
		ch.stats.publish.Add(1)
	}
	w := ch.txDisk
	ch.txDisk = nil
	if err := w.wait(); err != nil {
		return connErr(codeInternalError, "tx.commit: could not write to disk: %v", err)
	}
	for _, a := range acks {
		if err := ch.settle(a); err != nil {
			return err
		}
	}
	ch.c.sendMethod(ch.id, &amqp.TxCommitOk{})
	return nil
}

// txSync counts writes to the store and waits until all are on disk.
type txSync struct {
	mu      sync.Mutex // guards n, err, waiting
	n       int
	err     error
	waiting bool          // wait has begun: zero closes when n reaches 0
	zero    chan struct{} // closed once n is 0 with wait begun
}

func newTxSync() *txSync { return &txSync{zero: make(chan struct{})} }

func (w *txSync) add() {
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
}

// done is the store's callback for one write.
func (w *txSync) done(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil && w.err == nil {
		w.err = err
	}
	w.n--
	// Before wait begins, n may touch zero between two writes: only the
	// last write after that counts.
	if w.n == 0 && w.waiting {
		close(w.zero)
	}
}

// wait returns once every write counted is on disk, with the first
// error. No write may be added once it is called.
func (w *txSync) wait() error {
	w.mu.Lock()
	if w.n == 0 {
		defer w.mu.Unlock()
		return w.err
	}
	w.waiting = true
	w.mu.Unlock()
	<-w.zero
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
