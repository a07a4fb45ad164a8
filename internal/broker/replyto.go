package broker

import (
	"strings"

	"github.com/warren-mq/warren/internal/amqp"
)

// Direct reply-to, as RabbitMQ has it: a client consumes from the pseudo
// queue amq.rabbitmq.reply-to without acks, publishes requests whose
// reply_to says amq.rabbitmq.reply-to, and the server rewrites that to a
// key naming the requesting channel. A reply published to the default
// exchange with that key goes straight to the channel, through no queue.
const (
	replyQueue  = "amq.rabbitmq.reply-to"
	replyPrefix = replyQueue + "."
)

// replyConsumer is a channel's direct reply-to consumer.
type replyConsumer struct {
	ch  *channel
	tag string
	key string
}

func (ch *channel) consumeReplies(m *amqp.BasicConsume) error {
	if !m.NoAck {
		return chanErr(codePreconditionFail, "reply consumer cannot acknowledge")
	}
	if ch.reply != nil {
		return chanErr(codePreconditionFail, "reply consumer already set")
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = randomName("amq.ctag-")
	}
	if ch.consumers[tag] != nil {
		return connErr(codeNotAllowed, "attempt to reuse consumer tag '%s'", tag)
	}
	rc := &replyConsumer{ch: ch, tag: tag, key: randomName("")}
	s := ch.c.s
	s.mu.Lock()
	s.replies[rc.key] = rc
	s.mu.Unlock()
	ch.reply = rc
	if !m.NoWait {
		ch.c.sendMethod(ch.id, &amqp.BasicConsumeOk{ConsumerTag: tag})
	}
	return nil
}

// stopReplies removes the channel's reply consumer, if any.
func (ch *channel) stopReplies() {
	if ch.reply == nil {
		return
	}
	s := ch.c.s
	s.mu.Lock()
	delete(s.replies, ch.reply.key)
	s.mu.Unlock()
	ch.reply = nil
}

// rewriteReplyTo points a request's reply_to at this channel. ok is false
// when the channel has no reply consumer.
func (ch *channel) rewriteReplyTo(p *pendingPublish) error {
	if ch.reply == nil {
		return chanErr(codePreconditionFail, "fast reply consumer does not exist")
	}
	props, err := amqp.DecodeProperties(p.props)
	if err != nil {
		return connErr(codeSyntaxError, "%v", err)
	}
	props.ReplyTo = replyPrefix + ch.reply.key
	p.props = amqp.AppendProperties(nil, &props)
	p.summary, _ = amqp.ScanProperties(p.props)
	return nil
}

// deliverReply sends a reply straight to the channel whose key it names;
// it reports false when no such channel is consuming replies.
func (s *Server) deliverReply(fs *flushSet, key string, exchange, routingKey string, props, body []byte) bool {
	s.mu.Lock()
	rc := s.replies[strings.TrimPrefix(key, replyPrefix)]
	s.mu.Unlock()
	if rc == nil {
		return false
	}
	ch := rc.ch
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return false
	}
	ch.nextTag++
	tag := ch.nextTag
	ch.c.out.appendBatch(fs, func(b []byte) []byte {
		b = amqp.AppendMethodFrame(b, ch.id, &amqp.BasicDeliver{ConsumerTag: rc.tag, DeliveryTag: tag, Exchange: exchange, RoutingKey: routingKey})
		b = amqp.AppendHeaderFrame(b, ch.id, amqp.ClassBasic, uint64(len(body)), props)
		return amqp.AppendBodyFrames(b, ch.id, body, ch.c.frameMax)
	})
	return true
}
