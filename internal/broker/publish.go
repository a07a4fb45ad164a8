package broker

import (
	"strings"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/queue"
)

func (ch *channel) startPublish(m *amqp.BasicPublish) error {
	if m.Immediate {
		return connErr(codeNotImplemented, "immediate=true")
	}
	if err := ch.checkPerm(permWrite, "exchange", m.Exchange); err != nil {
		return err
	}
	ch.publishing = &pendingPublish{method: m}
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
		p.props = append([]byte(nil), h.Properties...)
		// Scan our copy: the summary's slices must not point into the
		// frame, whose buffer is reused.
		p.summary, _ = amqp.ScanProperties(p.props)
		p.size = h.BodySize
		p.body = make([]byte, 0, h.BodySize)
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
		ch.txPublishes = append(ch.txPublishes, p)
		return nil
	}
	if ch.confirm {
		ch.publishSeq++
	}
	if err := ch.deliverPublish(p); err != nil {
		return err
	}
	if ch.confirm {
		ch.toConfirm = ch.publishSeq
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

// deliverPublish routes one message and enqueues it.
func (ch *channel) deliverPublish(p *pendingPublish) error {
	m := p.method
	x, ok := ch.lookupExchange(m.Exchange)
	if !ok {
		return notFound("exchange", ch.c.vhostName, m.Exchange)
	}
	if x.def.Internal {
		return chanErr(codeAccessRefused, "cannot publish to internal exchange '%s' in vhost '%s'", m.Exchange, ch.c.vhostName)
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
	qs, _ := ch.c.vh.route(m.Exchange, m.RoutingKey, headers, ch.routeBuf[:0])
	ch.routeBuf = qs
	msg := &queue.Message{
		Exchange:   m.Exchange,
		RoutingKey: m.RoutingKey,
		Properties: p.props,
		Body:       p.body,
		Persistent: p.summary.DeliveryMode == 2,
		Priority:   p.summary.Priority,
	}
	routed := false
	for i, q := range qs {
		if q.Publish(msg, ch.c.batch) {
			routed = true
		}
		qs[i] = nil
	}
	if !routed && m.Mandatory {
		ch.sendReturn(m, msg.Properties, msg.Body)
	}
	return nil
}

// sendReturn hands an unroutable mandatory message back with basic.return.
func (ch *channel) sendReturn(m *amqp.BasicPublish, props, body []byte) {
	ch.c.out.appendBatch(ch.c.batch, func(b []byte) []byte {
		b = amqp.AppendMethodFrame(b, ch.id, &amqp.BasicReturn{ReplyCode: codeNoRoute, ReplyText: "NO_ROUTE", Exchange: m.Exchange, RoutingKey: m.RoutingKey})
		b = amqp.AppendHeaderFrame(b, ch.id, amqp.ClassBasic, uint64(len(body)), props)
		return amqp.AppendBodyFrames(b, ch.id, body, ch.c.frameMax)
	})
}

// flushConfirms sends one basic.ack covering every publish confirmed
// since the last flush.
func (ch *channel) flushConfirms() {
	ch.queuedForCf = false
	if ch.closing || ch.toConfirm <= ch.confirmed {
		return
	}
	multiple := ch.toConfirm-ch.confirmed > 1
	ch.c.sendMethod(ch.id, &amqp.BasicAck{DeliveryTag: ch.toConfirm, Multiple: multiple})
	ch.confirmed = ch.toConfirm
}

func (ch *channel) txCommit() error {
	if !ch.tx {
		return chanErr(codePreconditionFail, "channel is not transactional")
	}
	pubs, acks := ch.txPublishes, ch.txAcks
	ch.txPublishes, ch.txAcks = nil, nil
	for _, p := range pubs {
		if err := ch.deliverPublish(p); err != nil {
			return err
		}
	}
	for _, a := range acks {
		if err := ch.settle(a); err != nil {
			return err
		}
	}
	ch.c.sendMethod(ch.id, &amqp.TxCommitOk{})
	return nil
}
