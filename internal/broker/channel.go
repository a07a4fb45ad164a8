package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"sync/atomic"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/queue"
)

// delivery is a message handed to this channel and not yet settled.
type delivery struct {
	tag   uint64
	q     *localQueue // nil when the queue lives on another node
	entry queue.Entry
	cons  *consumer // nil for basic.get
	done  bool
	// link and rid name a delivery from a queue of another node: the link
	// to that node and the delivery's id there.
	link *peerLink
	rid  uint64
}

// consumer is one basic.consume. Its fields are immutable but for
// inflight, which the channel's mu guards.
type consumer struct {
	ch        *channel
	tag       string
	queue     string // the queue's name, in the channel's vhost
	q         *localQueue
	noAck     bool
	exclusive bool
	priority  int
	prefetch  int
	inflight  int
	args      amqp.Table // as given in basic.consume; immutable
	// remote is set, and q nil, when the queue lives on another node.
	remote *remoteConsumer
}

// Priority implements queue.Consumer.
func (k *consumer) Priority() int { return k.priority }

func (k *consumer) isExclusive() bool { return k.exclusive }

// Deliver implements queue.Consumer; called with the queue locked.
func (k *consumer) Deliver(q *queue.Queue, e queue.Entry, b queue.Batch) bool {
	ch := k.ch
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return false
	}
	if !k.noAck {
		if k.prefetch > 0 && k.inflight >= k.prefetch {
			return false
		}
		if ch.prefetchGlobal > 0 && ch.inflight >= ch.prefetchGlobal {
			return false
		}
	}
	tag := ch.nextTag + 1
	m := e.Msg
	fs, _ := b.(*flushSet)
	ok := ch.c.out.tryAppend(q, fs, func(b []byte) []byte {
		b = amqp.AppendDeliverFrame(b, ch.id, &amqp.BasicDeliver{ConsumerTag: k.tag, DeliveryTag: tag, Redelivered: e.Redelivered, Exchange: m.Exchange, RoutingKey: m.RoutingKey})
		b = amqp.AppendHeaderFrame(b, ch.id, amqp.ClassBasic, uint64(len(m.Body)), m.Properties)
		return amqp.AppendBodyFrames(b, ch.id, m.Body, ch.c.frameMax)
	})
	if !ok {
		return false
	}
	ch.nextTag = tag
	ch.stats.count(&ch.stats.deliver, k.noAck, e.Redelivered)
	if k.noAck {
		q.Settle(1)
		k.q.left(&e)
		ch.c.s.releaseAt(k.q.key, e.Loc)
		return true
	}
	if !e.Redelivered {
		ch.c.s.markDelivered(k.q.key, e.Loc)
	}
	k.inflight++
	ch.inflight++
	ch.unacked = append(ch.unacked, delivery{tag: tag, q: k.q, entry: e, cons: k})
	return true
}

// channel is one AMQP channel. Methods run on the connection's reader;
// deliveries arrive from queues on any goroutine, under mu.
type channel struct {
	c  *conn
	id uint16

	// Reader goroutine only.
	closing     bool
	confirm     bool
	publishSeq  uint64
	queuedForCf bool
	cf          confirms
	tx          bool
	txPublishes []*pendingPublish
	txAcks      []txAck
	txDisk      *txSync // while tx.commit publishes: the writes to wait for
	publishing  *pendingPublish
	// pub is the storage publishing points to: one publish at a time is
	// assembled on a channel, so it need not be allocated for each.
	// pubMethod and ackMethod are what basic.publish and basic.ack, the
	// methods a busy channel receives most, decode into (decodeReused).
	pub        pendingPublish
	pubMethod  amqp.BasicPublish
	ackMethod  amqp.BasicAck
	consumers  map[string]*consumer
	prefetch   int // for consumers created from now on
	permCache  map[permKey]bool
	topicCache map[topicKey]bool
	topicGen   uint64
	permGen    uint64
	routeBuf   []*localQueue
	replBuf    []*leaderLog // the journals of routeBuf's mirrored queues
	remoteBuf  []*remoteQueue
	settled    []delivery     // settle's list of what it settles, kept for reuse
	reply      *replyConsumer // direct reply-to consumer, if any
	// lastQueue is the queue last declared on the channel, which an empty
	// queue name means in later methods (AMQP 0-9-1, as RabbitMQ does).
	lastQueue string
	// stats mirror reader-only state and count messages, for operators
	// reading from other goroutines.
	stats chanStats

	mu             sync.Mutex // guards below
	closed         bool
	nextTag        uint64
	unacked        []delivery // in tag order; settled ones marked done
	inflight       int        // unsettled deliveries to acking consumers
	prefetchGlobal int
	// moving holds the consumers following their mirrored queue to a new
	// leader (failover.go): nil while on the way, then the successor for
	// the reader to take. hasMoving says whether it holds any.
	moving    map[string]*consumer
	hasMoving atomic.Bool
}

type pendingPublish struct {
	method  *amqp.BasicPublish
	props   []byte
	summary amqp.PropertySummary
	body    []byte
	size    uint64
}

type txAck struct {
	tag      uint64
	multiple bool
	nack     bool
	requeue  bool
}

func newChannel(c *conn, id uint16) *channel {
	return &channel{c: c, id: id, consumers: map[string]*consumer{}}
}

func (ch *channel) ctx() context.Context { return ch.c.s.ctx() }

// fail closes the channel with a channel error.
func (ch *channel) fail(e *amqpError) {
	var class, method uint16
	if e.method != nil {
		class, method = e.method.ID()
	}
	ch.c.log.Debug("channel error", "channel", ch.id, "code", e.code, "text", e.text)
	ch.closing = true
	ch.release()
	ch.c.sendMethod(ch.id, &amqp.ChannelClose{ReplyCode: e.code, ReplyText: e.text, ClassID: class, MethodID: method})
}

// release stops deliveries and requeues everything unacked.
func (ch *channel) release() {
	ch.cf.mu.Lock()
	ch.cf.closed = true
	ch.cf.mu.Unlock()
	ch.stopReplies()
	ch.takeMoved()
	for _, k := range ch.consumers {
		ch.removeConsumer(k)
	}
	ch.consumers = map[string]*consumer{}
	ch.stats.consumers.Store(0)
	ch.mu.Lock()
	ch.closed = true
	pending := ch.unacked
	ch.unacked = nil
	ch.inflight = 0
	// No consumer follows a failover into a closed channel; one that
	// arrived since the loop above leaves here.
	var late []*consumer
	for _, k := range ch.moving {
		if k != nil {
			late = append(late, k)
		}
	}
	ch.moving = nil
	ch.hasMoving.Store(false)
	ch.mu.Unlock()
	for _, k := range late {
		ch.removeConsumer(k)
	}
	requeueAll(pending)
}

func requeueAll(ds []delivery) {
	byQueue := map[*localQueue][]queue.Entry{}
	var order []*localQueue
	settleRemote(nil, ds, settleRequeue)
	for _, d := range ds {
		if d.done || d.link != nil {
			continue
		}
		if _, ok := byQueue[d.q]; !ok {
			order = append(order, d.q)
		}
		byQueue[d.q] = append(byQueue[d.q], d.entry)
	}
	for _, q := range order {
		q.srv.releaseAll(q.key, q.Requeue(byQueue[q]))
	}
}

// close releases the channel when it or its connection closes.
func (ch *channel) close() {
	ch.release()
}

func (ch *channel) removeConsumer(k *consumer) {
	if next := ch.stopMoving(k.tag); next != nil && next != k {
		ch.removeConsumer(next)
	}
	if k.remote != nil {
		ch.cancelRemote(k)
		return
	}
	ch.c.s.consumerGone(k.q, k)
}

// settleRemote sends, with fs's flush, the settlement of the deliveries in ds that came
// from queues of other nodes, one frame per link; those already settled
// (done) are left out.
func settleRemote(fs *flushSet, ds []delivery, kind byte) {
	var ids []uint64
	for i, d := range ds {
		if d.link == nil || d.done {
			continue
		}
		seen := false
		for _, o := range ds[:i] {
			if o.link == d.link && !o.done {
				seen = true
				break
			}
		}
		if seen {
			continue
		}
		ids = ids[:0]
		for _, o := range ds[i:] {
			if o.link == d.link && !o.done {
				ids = append(ids, o.rid)
			}
		}
		d.link.settle(fs, kind, ids)
	}
}

// queueDeleted tells a consumer's client that its queue is gone, with
// basic.cancel when the client understands it.
func (ch *channel) queueDeleted(k *consumer) {
	// Called on the meta goroutine: the writer sends it.
	if b, _ := ch.c.clientCaps["consumer_cancel_notify"].(bool); b {
		ch.c.out.append(func(b []byte) []byte {
			return amqp.AppendMethodFrame(b, ch.id, &amqp.BasicCancel{ConsumerTag: k.tag, NoWait: true})
		})
	}
	// The consumers map belongs to the reader goroutine, which drops the
	// entry when it next looks at the tag (see liveConsumer); a deleted
	// queue delivers nothing meanwhile.
}

// liveConsumer returns the consumer with tag, dropping one whose queue has
// been deleted since. A consumer following its queue to a new leader is
// live.
func (ch *channel) liveConsumer(tag string) *consumer {
	ch.takeMoved()
	k := ch.consumers[tag]
	if k != nil && k.gone() {
		ch.mu.Lock()
		moving := ch.movingLocked(tag)
		ch.mu.Unlock()
		if moving {
			return k
		}
		delete(ch.consumers, tag)
		ch.stats.consumers.Store(int32(len(ch.consumers)))
		return nil
	}
	return k
}

func (ch *channel) handleMethod(m amqp.Method) error {
	if ch.publishing != nil {
		return connErr(codeUnexpectedFrame, "expected content header for class 60, got non content header frame instead")
	}
	switch m := m.(type) {
	case *amqp.BasicPublish:
		return ch.startPublish(m)
	case *amqp.BasicAck:
		return ch.ack(txAck{tag: m.DeliveryTag, multiple: m.Multiple}, m)
	case *amqp.BasicNack:
		return ch.ack(txAck{tag: m.DeliveryTag, multiple: m.Multiple, nack: true, requeue: m.Requeue}, m)
	case *amqp.BasicReject:
		return ch.ack(txAck{tag: m.DeliveryTag, nack: true, requeue: m.Requeue}, m)
	case *amqp.ChannelClose:
		ch.release()
		ch.c.sendMethod(ch.id, &amqp.ChannelCloseOk{})
		ch.c.removeChannel(ch)
		return nil
	case *amqp.ChannelCloseOk:
		return nil
	case *amqp.ChannelFlow:
		// As RabbitMQ: clients may not stop the server's deliveries this
		// way (prefetch is the tool for that).
		if !m.Active {
			return chanErr(codeNotImplemented, "active=false")
		}
		ch.c.sendMethod(ch.id, &amqp.ChannelFlowOk{Active: true})
		return nil
	case *amqp.AccessRequest:
		ch.c.sendMethod(ch.id, &amqp.AccessRequestOk{Ticket: 1})
		return nil
	case *amqp.ExchangeDeclare:
		return ch.exchangeDeclare(m)
	case *amqp.ExchangeDelete:
		return ch.exchangeDelete(m)
	case *amqp.ExchangeBind:
		return ch.bind(m.Source, m.Destination, meta.DestExchange, m.RoutingKey, m.Arguments, true, m.NoWait)
	case *amqp.ExchangeUnbind:
		return ch.bind(m.Source, m.Destination, meta.DestExchange, m.RoutingKey, m.Arguments, false, m.NoWait)
	case *amqp.QueueDeclare:
		return ch.queueDeclare(m)
	case *amqp.QueueBind:
		if m.Queue == "" && m.RoutingKey == "" {
			// Both left out: the last declared queue, by its own name.
			if err := ch.lastDeclared(&m.Queue); err != nil {
				return err
			}
			m.RoutingKey = m.Queue
		}
		if err := ch.lastDeclared(&m.Queue); err != nil {
			return err
		}
		return ch.bind(m.Exchange, m.Queue, meta.DestQueue, m.RoutingKey, m.Arguments, true, m.NoWait)
	case *amqp.QueueUnbind:
		if err := ch.lastDeclared(&m.Queue); err != nil {
			return err
		}
		return ch.bind(m.Exchange, m.Queue, meta.DestQueue, m.RoutingKey, m.Arguments, false, false)
	case *amqp.QueuePurge:
		if err := ch.lastDeclared(&m.Queue); err != nil {
			return err
		}
		return ch.queuePurge(m)
	case *amqp.QueueDelete:
		if err := ch.lastDeclared(&m.Queue); err != nil {
			return err
		}
		return ch.queueDelete(m)
	case *amqp.BasicQos:
		return ch.qos(m)
	case *amqp.BasicConsume:
		if err := ch.lastDeclared(&m.Queue); err != nil {
			return err
		}
		return ch.consume(m)
	case *amqp.BasicCancel:
		if ch.reply != nil && ch.reply.tag == m.ConsumerTag {
			ch.stopReplies()
		} else if k := ch.liveConsumer(m.ConsumerTag); k != nil {
			delete(ch.consumers, m.ConsumerTag)
			ch.stats.consumers.Store(int32(len(ch.consumers)))
			ch.removeConsumer(k)
		}
		if !m.NoWait {
			ch.c.sendMethod(ch.id, &amqp.BasicCancelOk{ConsumerTag: m.ConsumerTag})
		}
		return nil
	case *amqp.BasicGet:
		if err := ch.lastDeclared(&m.Queue); err != nil {
			return err
		}
		return ch.get(m)
	case *amqp.BasicRecover:
		if !m.Requeue {
			return chanErr(codeNotImplemented, "requeue=false")
		}
		ch.recover()
		ch.c.sendMethod(ch.id, &amqp.BasicRecoverOk{})
		return nil
	case *amqp.BasicRecoverAsync:
		if !m.Requeue {
			return chanErr(codeNotImplemented, "requeue=false")
		}
		ch.recover()
		return nil
	case *amqp.ConfirmSelect:
		if ch.tx {
			return chanErr(codePreconditionFail, "cannot switch from tx to confirm mode")
		}
		ch.confirm = true
		ch.stats.confirm.Store(true)
		if !m.NoWait {
			ch.c.sendMethod(ch.id, &amqp.ConfirmSelectOk{})
		}
		return nil
	case *amqp.TxSelect:
		if ch.confirm {
			return chanErr(codePreconditionFail, "cannot switch from confirm to tx mode")
		}
		ch.tx = true
		ch.stats.tx.Store(true)
		ch.c.sendMethod(ch.id, &amqp.TxSelectOk{})
		return nil
	case *amqp.TxCommit:
		return ch.txCommit()
	case *amqp.TxRollback:
		if !ch.tx {
			return chanErr(codePreconditionFail, "channel is not transactional")
		}
		ch.txPublishes, ch.txAcks = nil, nil
		ch.c.sendMethod(ch.id, &amqp.TxRollbackOk{})
		return nil
	case *amqp.ChannelOpen:
		return connErr(codeChannelError, "second 'channel.open' seen")
	}
	return connErr(codeCommandInvalid, "unimplemented method %s on a channel", m.Name())
}

func (ch *channel) kickConsumers() {
	ch.takeMoved()
	for _, k := range ch.consumers {
		if k.remote != nil {
			k.remote.Kick(ch.c.batch)
		} else {
			k.q.Kick(ch.c.batch)
		}
	}
}

// gone reports whether the consumer's queue has been deleted, or its node
// lost.
func (k *consumer) gone() bool {
	if k.remote != nil {
		return k.remote.gone.Load()
	}
	return k.q.Deleted()
}

// recover requeues every unacked delivery on the channel.
func (ch *channel) recover() {
	ch.mu.Lock()
	pending := ch.unacked
	ch.unacked = nil
	for _, d := range pending {
		if !d.done && d.cons != nil {
			d.cons.inflight--
		}
	}
	ch.inflight = 0
	ch.mu.Unlock()
	requeueAll(pending)
}

// decodeReused decodes the method frame payload p into pubMethod or
// ackMethod when it holds basic.publish or basic.ack, returning that
// value (with an error if p is malformed), and returns nil for any other
// method. The caller must not decode a basic.publish this way while the
// previous one is still being assembled (publishing set), nor keep the
// result past handling it.
func (ch *channel) decodeReused(p []byte) (amqp.Method, error) {
	if ok, err := amqp.DecodeMethodInto(p, &ch.pubMethod); ok {
		return &ch.pubMethod, err
	}
	if ok, err := amqp.DecodeMethodInto(p, &ch.ackMethod); ok {
		return &ch.ackMethod, err
	}
	return nil, nil
}

// ack settles deliveries for basic.ack, nack and reject.
func (ch *channel) ack(a txAck, m amqp.Method) error {
	if ch.tx {
		if err := ch.checkTag(a.tag, a.multiple); err != nil {
			return err
		}
		ch.txAcks = append(ch.txAcks, a)
		return nil
	}
	return ch.settle(a)
}

func (ch *channel) checkTag(tag uint64, multiple bool) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if multiple && tag == 0 {
		return nil
	}
	if i := ch.findLocked(tag); i < 0 || ch.unacked[i].done {
		return chanErr(codePreconditionFail, "unknown delivery tag %d", tag)
	}
	return nil
}

func (ch *channel) findLocked(tag uint64) int {
	lo, hi := 0, len(ch.unacked)
	for lo < hi {
		mid := (lo + hi) / 2
		if ch.unacked[mid].tag < tag {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(ch.unacked) && ch.unacked[lo].tag == tag {
		return lo
	}
	return -1
}

func (ch *channel) settle(a txAck) error {
	ch.mu.Lock()
	picked := ch.settled[:0]
	defer func() {
		clear(picked)
		ch.settled = picked[:0]
	}()
	take := func(d *delivery) {
		picked = append(picked, *d)
		d.done = true
		if d.cons != nil {
			d.cons.inflight--
			ch.inflight--
		}
	}
	if a.multiple {
		end := len(ch.unacked)
		if a.tag != 0 {
			i := ch.findLocked(a.tag)
			if i < 0 || ch.unacked[i].done {
				ch.mu.Unlock()
				return chanErr(codePreconditionFail, "unknown delivery tag %d", a.tag)
			}
			end = i + 1
		}
		for i := 0; i < end; i++ {
			if !ch.unacked[i].done {
				take(&ch.unacked[i])
			}
		}
	} else {
		i := ch.findLocked(a.tag)
		if i < 0 || ch.unacked[i].done {
			ch.mu.Unlock()
			return chanErr(codePreconditionFail, "unknown delivery tag %d", a.tag)
		}
		take(&ch.unacked[i])
	}
	// Drop the settled prefix once it is half the list: acks in order
	// then cost one copy each, not one of the whole window each.
	n := 0
	for n < len(ch.unacked) && ch.unacked[n].done {
		n++
	}
	if n == len(ch.unacked) {
		ch.unacked = ch.unacked[:0]
	} else if n > 0 && 2*n >= len(ch.unacked) {
		m := copy(ch.unacked, ch.unacked[n:])
		clear(ch.unacked[m:])
		ch.unacked = ch.unacked[:m]
	}
	ch.mu.Unlock()

	if !a.nack {
		ch.stats.ack.Add(uint64(len(picked)))
	}
	if a.nack && a.requeue {
		requeueAll(picked)
	} else {
		kind := byte(settleAck)
		if a.nack {
			kind = settleReject
		}
		settleRemote(ch.c.batch, picked, kind)
		// Settle runs of deliveries from the same queue together.
		for i := 0; i < len(picked); {
			j := i + 1
			for j < len(picked) && picked[j].q == picked[i].q {
				j++
			}
			q := picked[i].q
			if q == nil {
				i = j
				continue
			}
			q.Settle(j - i)
			var args amqp.Table
			if a.nack {
				args = q.args()
			}
			for k := i; k < j; k++ {
				ch.c.s.finishEntry(q, &picked[k].entry, args)
			}
			i = j
		}
	}
	ch.kickConsumers()
	return nil
}

func (ch *channel) qos(m *amqp.BasicQos) error {
	if m.PrefetchSize != 0 {
		return chanErr(codeNotImplemented, "prefetch_size!=0 (%d)", m.PrefetchSize)
	}
	if m.Global {
		ch.mu.Lock()
		ch.prefetchGlobal = int(m.PrefetchCount)
		ch.mu.Unlock()
	} else {
		ch.prefetch = int(m.PrefetchCount)
		ch.stats.prefetch.Store(int32(m.PrefetchCount))
	}
	ch.c.sendMethod(ch.id, &amqp.BasicQosOk{})
	ch.kickConsumers()
	return nil
}

func randomName(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func (ch *channel) consume(m *amqp.BasicConsume) error {
	if m.Queue == replyQueue {
		return ch.consumeReplies(m)
	}
	q, rq, link, err := ch.findQueue(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.checkPerm(permRead, "queue", m.Queue); err != nil {
		return err
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = randomName("amq.ctag-")
	}
	if ch.liveConsumer(tag) != nil || (ch.reply != nil && ch.reply.tag == tag) {
		return connErr(codeNotAllowed, "attempt to reuse consumer tag '%s'", tag)
	}
	k := &consumer{ch: ch, tag: tag, queue: m.Queue, q: q, noAck: m.NoAck, exclusive: m.Exclusive, prefetch: ch.prefetch, args: m.Arguments}
	if p, ok := m.Arguments["x-priority"]; ok {
		n, ok := number(p)
		if !ok {
			return chanErr(codePreconditionFail, "invalid arg 'x-priority' for consumer '%s'", tag)
		}
		k.priority = int(n)
	}
	if rq != nil {
		return ch.consumeRemote(k, rq, link, m.NoWait)
	}
	for _, o := range q.Consumers() {
		if x, ok := o.(interface{ isExclusive() bool }); ok && (x.isExclusive() || m.Exclusive) {
			return chanErr(codeAccessRefused, "queue '%s' in vhost '%s' in exclusive use", q.Name, q.VHost)
		}
	}
	ch.consumers[tag] = k
	ch.stats.consumers.Store(int32(len(ch.consumers)))
	if !m.NoWait {
		ch.c.sendMethod(ch.id, &amqp.BasicConsumeOk{ConsumerTag: tag})
	}
	if !q.AddConsumer(k) {
		delete(ch.consumers, tag)
		ch.stats.consumers.Store(int32(len(ch.consumers)))
		return notFound("queue", q.VHost, q.Name)
	}
	q.consumed()
	return nil
}

func (ch *channel) get(m *amqp.BasicGet) error {
	q, rq, link, err := ch.findQueue(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.checkPerm(permRead, "queue", m.Queue); err != nil {
		return err
	}
	if rq != nil {
		return ch.getRemote(rq, link, m.NoAck)
	}
	q.used()
	e, remaining, ok := q.Get(!m.NoAck)
	if !ok {
		ch.c.sendMethod(ch.id, &amqp.BasicGetEmpty{})
		return nil
	}
	ch.stats.count(&ch.stats.get, m.NoAck, e.Redelivered)
	ch.mu.Lock()
	ch.nextTag++
	tag := ch.nextTag
	if !m.NoAck {
		ch.unacked = append(ch.unacked, delivery{tag: tag, q: q, entry: e})
	}
	ch.mu.Unlock()
	if m.NoAck {
		q.left(&e)
		ch.c.s.releaseAt(q.key, e.Loc)
	} else if !e.Redelivered {
		ch.c.s.markDelivered(q.key, e.Loc)
	}
	msg := e.Msg
	ch.c.out.appendBatch(ch.c.batch, func(b []byte) []byte {
		b = amqp.AppendMethodFrame(b, ch.id, &amqp.BasicGetOk{DeliveryTag: tag, Redelivered: e.Redelivered, Exchange: msg.Exchange, RoutingKey: msg.RoutingKey, MessageCount: uint32(remaining)})
		b = amqp.AppendHeaderFrame(b, ch.id, amqp.ClassBasic, uint64(len(msg.Body)), msg.Properties)
		return amqp.AppendBodyFrames(b, ch.id, msg.Body, ch.c.frameMax)
	})
	return nil
}

// lookupQueue finds a queue of this node that this connection may use.
// A queue of another node is refused as unreachable: the methods that
// serve those use findQueue.
func (ch *channel) lookupQueue(name string) (*localQueue, error) {
	q, rq, _, err := ch.findQueue(name)
	if err != nil {
		return nil, err
	}
	if rq != nil {
		return nil, homeDown(rq.def)
	}
	return q, nil
}

// findQueue finds a queue this connection may use: on this node (q), or
// on another (rq, with the link to its node).
func (ch *channel) findQueue(name string) (q *localQueue, rq *remoteQueue, link *peerLink, err error) {
	v := ch.c.vh
	v.mu.RLock()
	q = v.queues[name]
	rq = v.remote[name]
	v.mu.RUnlock()
	if q == nil && rq == nil {
		return nil, nil, nil, notFound("queue", v.name, name)
	}
	def := rq
	if q != nil {
		def = &remoteQueue{def: q.def}
	}
	if def.def.Exclusive && (q == nil || q.def.Owner != ch.c.id) {
		return nil, nil, nil, chanErr(codeResourceLocked, "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.", name, v.name)
	}
	if q != nil {
		return q, nil, nil, nil
	}
	link, err = ch.c.s.peerLink(rq.def.Node)
	if err != nil {
		return nil, nil, nil, homeDown(rq.def)
	}
	return nil, rq, link, nil
}

// homeDown is RabbitMQ's refusal of a queue whose home node cannot serve
// it from here.
func homeDown(q meta.Queue) error {
	kind := "durable"
	if !q.Durable {
		kind = "non-durable"
	}
	if q.Mirroring != nil && len(q.Mirroring.Mirrors) > 0 {
		// A mirrored queue waits for its leader or an in-sync mirror.
		return chanErr(codeNotFound, "home node '%s' of %s queue '%s' in vhost '%s' is down or inaccessible, and no mirror in sync can take over", q.Node, kind, q.Name, q.VHost)
	}
	return chanErr(codeNotFound, "home node '%s' of %s queue '%s' in vhost '%s' is down or inaccessible", q.Node, kind, q.Name, q.VHost)
}

// ctx is the context for meta commands issued on behalf of clients; meta
// bounds each command with its own apply timeout.
func (s *Server) ctx() context.Context { return context.Background() }

// lastDeclared replaces an empty queue name with the queue last declared
// on the channel.
func (ch *channel) lastDeclared(name *string) error {
	if *name != "" {
		return nil
	}
	if ch.lastQueue == "" {
		return chanErr(codeNotFound, "no previously declared queue")
	}
	*name = ch.lastQueue
	return nil
}
