package broker

import (
	"errors"
	"fmt"
	"strings"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/meta"
)

var exchangeTypes = map[string]bool{"direct": true, "fanout": true, "topic": true, "headers": true}

func (ch *channel) exchangeDeclare(m *amqp.ExchangeDeclare) error {
	vh := ch.c.vhostName
	if m.Exchange == "" {
		if m.Passive {
			return ch.replyUnlessNoWait(m.NoWait, &amqp.ExchangeDeclareOk{})
		}
		return chanErr(codeAccessRefused, "operation not permitted on the default exchange")
	}
	if m.Passive {
		if _, ok := ch.lookupExchange(m.Exchange); !ok {
			return notFound("exchange", vh, m.Exchange)
		}
		return ch.replyUnlessNoWait(m.NoWait, &amqp.ExchangeDeclareOk{})
	}
	if !exchangeTypes[m.Type] {
		return connErr(codeCommandInvalid, "unknown exchange type '%s'", m.Type)
	}
	if err := ch.checkPerm(permConfigure, "exchange", m.Exchange); err != nil {
		return err
	}
	want := meta.Exchange{VHost: vh, Name: m.Exchange, Type: m.Type, Durable: m.Durable, AutoDelete: m.AutoDelete, Internal: m.Internal, Arguments: meta.Args{Table: m.Arguments}}
	if cur, ok := ch.c.s.meta.Exchange(vh, m.Exchange); ok {
		if err := exchangeEquivalent(cur, want); err != nil {
			return err
		}
		return ch.replyUnlessNoWait(m.NoWait, &amqp.ExchangeDeclareOk{})
	}
	if strings.HasPrefix(m.Exchange, "amq.") {
		return chanErr(codeAccessRefused, "exchange name '%s' contains reserved prefix 'amq.*'", m.Exchange)
	}
	cur, err := ch.c.s.meta.DeclareExchange(ch.ctx(), want)
	if errors.Is(err, meta.ErrExists) {
		err = exchangeEquivalent(cur, want)
	}
	if err != nil {
		return asAMQP(err)
	}
	return ch.replyUnlessNoWait(m.NoWait, &amqp.ExchangeDeclareOk{})
}

// inequivalent is the 406 RabbitMQ gives when a redeclare differs in a
// property.
func inequivalent(kind, name, vhost, arg string, got, has any) error {
	return chanErr(codePreconditionFail, "inequivalent arg '%s' for %s '%s' in vhost '%s': received '%v' but current is '%v'", arg, kind, name, vhost, got, has)
}

func exchangeEquivalent(cur, want meta.Exchange) error {
	ineq := func(arg string, got, has any) error {
		return inequivalent("exchange", cur.Name, cur.VHost, arg, got, has)
	}
	switch {
	case cur.Type != want.Type:
		return ineq("type", want.Type, cur.Type)
	case cur.Durable != want.Durable:
		return ineq("durable", want.Durable, cur.Durable)
	case cur.AutoDelete != want.AutoDelete:
		return ineq("auto_delete", want.AutoDelete, cur.AutoDelete)
	case cur.Internal != want.Internal:
		return ineq("internal", want.Internal, cur.Internal)
	}
	return argsEquivalent("exchange", cur.Name, cur.VHost, cur.Arguments.Table, want.Arguments.Table, []string{"alternate-exchange"})
}

// argsEquivalent compares the arguments RabbitMQ compares on redeclare.
func argsEquivalent(kind, name, vhost string, cur, want amqp.Table, keys []string) error {
	for _, k := range keys {
		c, cok := cur[k]
		w, wok := want[k]
		if !cok && !wok {
			continue
		}
		if cok && wok && equalValues(c, w) {
			continue
		}
		has := "none"
		if cok {
			has = fmt.Sprintf("the value '%v' of type '%s'", c, fieldTypeName(c))
		}
		got := "none"
		if wok {
			got = fmt.Sprintf("the value '%v' of type '%s'", w, fieldTypeName(w))
		}
		return chanErr(codePreconditionFail, "inequivalent arg '%s' for %s '%s' in vhost '%s': received %s but current is %s", k, kind, name, vhost, got, has)
	}
	return nil
}

// fieldTypeName names a field value's type as RabbitMQ's messages do.
func fieldTypeName(v any) string {
	switch v.(type) {
	case bool:
		return "bool"
	case int8:
		return "byte"
	case uint8:
		return "unsignedbyte"
	case int16:
		return "short"
	case uint16:
		return "unsignedshort"
	case int32:
		return "signedint"
	case uint32:
		return "unsignedint"
	case int64, int:
		return "long"
	case float32:
		return "float"
	case float64:
		return "double"
	case string, []byte:
		return "longstr"
	case amqp.Table:
		return "table"
	case []any:
		return "array"
	}
	return "void"
}

func (ch *channel) replyUnlessNoWait(noWait bool, m amqp.Method) error {
	if !noWait {
		ch.c.sendMethod(ch.id, m)
	}
	return nil
}

// asAMQP turns a meta error into the channel error RabbitMQ gives.
func asAMQP(err error) error {
	switch {
	case errors.Is(err, meta.ErrNotFound):
		return chanErr(codeNotFound, "%s", strings.TrimPrefix(err.Error(), "meta: not found: "))
	}
	return err
}

func (ch *channel) exchangeDelete(m *amqp.ExchangeDelete) error {
	vh := ch.c.vhostName
	if m.Exchange == "" || strings.HasPrefix(m.Exchange, "amq.") {
		return chanErr(codeAccessRefused, "operation not permitted on the default exchange")
	}
	if err := ch.checkPerm(permConfigure, "exchange", m.Exchange); err != nil {
		return err
	}
	if m.IfUnused {
		for _, b := range ch.c.s.meta.Snapshot().Bindings {
			if b.VHost == vh && b.Source == m.Exchange {
				return chanErr(codePreconditionFail, "exchange '%s' in vhost '%s' in use", m.Exchange, vh)
			}
		}
	}
	if _, err := ch.c.s.meta.DeleteExchange(ch.ctx(), vh, m.Exchange); err != nil {
		return asAMQP(err)
	}
	return ch.replyUnlessNoWait(m.NoWait, &amqp.ExchangeDeleteOk{})
}

// queueArgKeys are the arguments compared when a queue is redeclared.
var queueArgKeys = []string{
	"x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
	"x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
	"x-queue-type", "x-single-active-consumer",
}

func (ch *channel) queueDeclare(m *amqp.QueueDeclare) error {
	vh := ch.c.vhostName
	name := m.Queue
	if m.Passive {
		// Unlike the other methods, a passive declare does not take an
		// empty name for the last declared queue (nor does RabbitMQ).
		if name == "" {
			return notFound("queue", vh, name)
		}
		if name == replyQueue {
			return ch.replyUnlessNoWait(m.NoWait, &amqp.QueueDeclareOk{Queue: name})
		}
		// A passive declare only looks: it does not renew x-expires.
		n, consumers, err := ch.queueCounts(name, false)
		if err != nil {
			return err
		}
		ch.lastQueue = name
		return ch.replyUnlessNoWait(m.NoWait, &amqp.QueueDeclareOk{Queue: name, MessageCount: n, ConsumerCount: consumers})
	}
	if name == "" {
		name = randomName("amq.gen-")
	} else if strings.HasPrefix(name, "amq.") {
		return chanErr(codeAccessRefused, "queue name '%s' contains reserved prefix 'amq.*'", name)
	}
	if err := ch.checkPerm(permConfigure, "queue", name); err != nil {
		return err
	}
	if p := queueArgProblem(name, vh, m.Arguments); p != "" {
		return chanErr(codePreconditionFail, "%s", p)
	}
	if _, exists := ch.c.s.meta.Queue(vh, name); !exists {
		if def, ok := ch.c.s.meta.VHost(vh); ok {
			if max, ok := meta.Limit(def.Limits, "max-queues"); ok {
				ch.c.vh.mu.RLock()
				n := len(ch.c.vh.queues)
				ch.c.vh.mu.RUnlock()
				if int64(n) >= max {
					return chanErr(codePreconditionFail, "cannot declare queue '%s': queue limit in vhost '%s' (%d) is reached", name, vh, max)
				}
			}
		}
	}
	want := meta.Queue{VHost: vh, Name: name, Durable: m.Durable, Exclusive: m.Exclusive, AutoDelete: m.AutoDelete, Arguments: meta.Args{Table: m.Arguments}, Node: ch.c.s.cfg.NodeName}
	if _, exists := ch.c.s.meta.Queue(vh, name); !exists {
		want.Node = ch.c.s.homeFor(vh, name, m.Exclusive, m.Arguments)
	}
	if m.Exclusive {
		want.Owner = ch.c.id
	}
	cur, err := ch.c.s.meta.DeclareQueue(ch.ctx(), want)
	if err == nil && m.Exclusive {
		ch.c.exclusive = append(ch.c.exclusive, name)
	}
	if errors.Is(err, meta.ErrExists) {
		if _, _, _, err := ch.findQueue(name); err != nil {
			return err
		}
		if err := queueEquivalent(cur, want); err != nil {
			return err
		}
	} else if err != nil {
		return asAMQP(err)
	}
	n, consumers, err := ch.queueCounts(name, true) // redeclaring renews x-expires
	if err != nil {
		return err
	}
	ch.lastQueue = name
	return ch.replyUnlessNoWait(m.NoWait, &amqp.QueueDeclareOk{Queue: name, MessageCount: n, ConsumerCount: consumers})
}

// queueCounts returns a queue's ready messages and consumers, from its
// node; renew renews its x-expires.
func (ch *channel) queueCounts(name string, renew bool) (ready, consumers uint32, err error) {
	q, rq, link, err := ch.findQueue(name)
	if err != nil {
		return 0, 0, err
	}
	if rq != nil {
		return remoteCounts(rq, link, renew)
	}
	if renew {
		q.used()
	}
	return uint32(q.Len()), uint32(q.ConsumerCount()), nil
}

func queueEquivalent(cur, want meta.Queue) error {
	ineq := func(arg string, got, has bool) error {
		return inequivalent("queue", cur.Name, cur.VHost, arg, got, has)
	}
	switch {
	case cur.Durable != want.Durable:
		return ineq("durable", want.Durable, cur.Durable)
	case cur.AutoDelete != want.AutoDelete:
		return ineq("auto_delete", want.AutoDelete, cur.AutoDelete)
	case cur.Exclusive != want.Exclusive:
		return ineq("exclusive", want.Exclusive, cur.Exclusive)
	}
	return argsEquivalent("queue", cur.Name, cur.VHost, cur.Arguments.Table, want.Arguments.Table, queueArgKeys)
}

func (ch *channel) bind(source, destination, destType, key string, args amqp.Table, add, noWait bool) error {
	vh := ch.c.vhostName
	if source == "" {
		return chanErr(codeAccessRefused, "operation not permitted on the default exchange")
	}
	if destType == meta.DestQueue {
		if _, err := ch.lookupQueue(destination); err != nil {
			return err
		}
	} else if _, ok := ch.lookupExchange(destination); !ok {
		return notFound("exchange", vh, destination)
	}
	srcX, ok := ch.lookupExchange(source)
	if !ok {
		return notFound("exchange", vh, source)
	}
	if err := ch.checkPerm(permWrite, destType, destination); err != nil {
		return err
	}
	if err := ch.checkPerm(permRead, "exchange", source); err != nil {
		return err
	}
	if err := ch.checkTopic(permRead, srcX, key); err != nil {
		return err
	}
	b := meta.Binding{VHost: vh, Source: source, Destination: destination, DestinationType: destType, RoutingKey: key, Arguments: meta.Args{Table: args}}
	var err error
	if add {
		err = ch.c.s.meta.Bind(ch.ctx(), b)
	} else {
		_, err = ch.c.s.meta.Unbind(ch.ctx(), b)
	}
	if err != nil {
		return asAMQP(err)
	}
	switch {
	case add && destType == meta.DestQueue:
		return ch.replyUnlessNoWait(noWait, &amqp.QueueBindOk{})
	case add:
		return ch.replyUnlessNoWait(noWait, &amqp.ExchangeBindOk{})
	case destType == meta.DestQueue:
		return ch.replyUnlessNoWait(noWait, &amqp.QueueUnbindOk{})
	}
	return ch.replyUnlessNoWait(noWait, &amqp.ExchangeUnbindOk{})
}

func (ch *channel) queuePurge(m *amqp.QueuePurge) error {
	q, rq, link, err := ch.findQueue(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.checkPerm(permRead, "queue", m.Queue); err != nil {
		return err
	}
	if rq != nil {
		n, err := remoteRequest(rq, link, opPurge)
		if err != nil {
			return err
		}
		return ch.replyUnlessNoWait(m.NoWait, &amqp.QueuePurgeOk{MessageCount: n})
	}
	dropped, n := q.Purge()
	ch.c.s.releaseAll(q.key, dropped)
	return ch.replyUnlessNoWait(m.NoWait, &amqp.QueuePurgeOk{MessageCount: uint32(n)})
}

func (ch *channel) queueDelete(m *amqp.QueueDelete) error {
	v := ch.c.vh
	v.mu.RLock()
	q := v.queues[m.Queue]
	rq := v.remote[m.Queue]
	v.mu.RUnlock()
	if q == nil && rq != nil {
		if err := ch.checkPerm(permConfigure, "queue", rq.def.Name); err != nil {
			return err
		}
		_, _, link, err := ch.findQueue(m.Queue)
		if err == nil {
			n, err := remoteRequest(rq, link, opDelete, m.IfUnused, m.IfEmpty)
			if err != nil {
				return err
			}
			return ch.replyUnlessNoWait(m.NoWait, &amqp.QueueDeleteOk{MessageCount: n})
		}
		if e, ok := err.(*amqpError); m.IfUnused || m.IfEmpty || (ok && e.code == codeResourceLocked) {
			return err
		}
		// Its node is down: the queue goes from the definitions, and its
		// messages with it when the node returns.
		if _, err := ch.c.s.meta.DeleteQueue(ch.ctx(), rq.def.VHost, rq.def.Name); err != nil {
			return asAMQP(err)
		}
		return ch.replyUnlessNoWait(m.NoWait, &amqp.QueueDeleteOk{})
	}
	if q == nil {
		// Deleting a queue that does not exist succeeds, as in RabbitMQ.
		return ch.replyUnlessNoWait(m.NoWait, &amqp.QueueDeleteOk{})
	}
	if _, err := ch.lookupQueue(m.Queue); err != nil {
		return err
	}
	if err := ch.checkPerm(permConfigure, "queue", q.Name); err != nil {
		return err
	}
	if m.IfUnused && q.ConsumerCount() > 0 {
		return chanErr(codePreconditionFail, "queue '%s' in vhost '%s' in use", q.Name, q.VHost)
	}
	n := q.Len()
	if m.IfEmpty && n > 0 {
		return chanErr(codePreconditionFail, "queue '%s' in vhost '%s' not empty", q.Name, q.VHost)
	}
	if _, err := ch.c.s.meta.DeleteQueue(ch.ctx(), q.VHost, q.Name); err != nil {
		return asAMQP(err)
	}
	return ch.replyUnlessNoWait(m.NoWait, &amqp.QueueDeleteOk{MessageCount: uint32(n)})
}
