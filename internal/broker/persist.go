package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/queue"
	"github.com/warren-mq/warren/internal/store"
)

// Persistent messages (delivery mode 2) routed to durable queues are kept
// in the store, one record per queue, under the queue's key. A publisher
// confirm for such a message waits until every copy is on disk.

func queueKey(vhost, name string) string { return vhost + "\x00" + name }

// encodeMessage is a message's form in the store: when it entered the
// queue (Unix nanoseconds, 8 octets; its TTL counts from then, across
// restarts), exchange and routing key as short strings, the property list
// with a 4-octet length, then the body.
func encodeMessage(m *queue.Message, enqueued int64) []byte {
	b := make([]byte, 0, 8+2+len(m.Exchange)+len(m.RoutingKey)+4+len(m.Properties)+len(m.Body))
	b = binary.BigEndian.AppendUint64(b, uint64(enqueued))
	b = append(b, byte(len(m.Exchange)))
	b = append(b, m.Exchange...)
	b = append(b, byte(len(m.RoutingKey)))
	b = append(b, m.RoutingKey...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Properties)))
	b = append(b, m.Properties...)
	return append(b, m.Body...)
}

var errBadStoredMessage = errors.New("broker: stored message does not decode")

// decodeMessage reverses encodeMessage.
func decodeMessage(b []byte) (m *queue.Message, enqueued int64, err error) {
	take := func(n int) ([]byte, bool) {
		if n > len(b) {
			return nil, false
		}
		v := b[:n]
		b = b[n:]
		return v, true
	}
	t, ok := take(8)
	if !ok {
		return nil, 0, errBadStoredMessage
	}
	enqueued = int64(binary.BigEndian.Uint64(t))
	m = &queue.Message{}
	for _, dst := range []*string{&m.Exchange, &m.RoutingKey} {
		l, ok := take(1)
		if !ok {
			return nil, 0, errBadStoredMessage
		}
		v, ok := take(int(l[0]))
		if !ok {
			return nil, 0, errBadStoredMessage
		}
		*dst = string(v)
	}
	l, ok := take(4)
	if !ok {
		return nil, 0, errBadStoredMessage
	}
	props, ok := take(int(binary.BigEndian.Uint32(l)))
	if !ok {
		return nil, 0, errBadStoredMessage
	}
	// One allocation for both: they live and die together.
	buf := make([]byte, len(props)+len(b))
	m.Properties = buf[:len(props):len(props)]
	copy(m.Properties, props)
	m.Body = buf[len(props):]
	copy(m.Body, b)
	sum, err := amqp.ScanProperties(m.Properties)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", errBadStoredMessage, err)
	}
	m.Persistent = sum.DeliveryMode == 2
	m.Priority = sum.Priority
	m.TTL, _ = messageTTL(sum.Expiration)
	return m, enqueued, nil
}

// releaseAt tells the store that the copy at loc, kept under the queue
// key, is no longer needed; a nil loc (a message only in memory) is
// nothing to release.
func (s *Server) releaseAt(key string, loc *store.Location) {
	if s.store == nil || loc == nil {
		return
	}
	if err := s.store.Release(key, *loc); err != nil {
		s.log.Warn("release stored message", "queue_key", key, "error", err)
	}
}

// markDelivered records that the copy at loc went to a consumer that may
// ack it later, so that a restart before then delivers it flagged as a
// redelivery, as RabbitMQ does.
func (s *Server) markDelivered(key string, loc *store.Location) {
	if s.store == nil || loc == nil {
		return
	}
	if err := s.store.MarkDelivered(key, *loc); err != nil {
		s.log.Warn("mark stored message delivered", "queue_key", key, "error", err)
	}
}

// releaseAll is releaseAt for every entry.
func (s *Server) releaseAll(key string, entries []queue.Entry) {
	for i := range entries {
		s.releaseAt(key, entries[i].Loc)
	}
}

// recoverMessages puts the stored messages back in their queues after a
// restart. Messages of queues that no longer exist, and transient messages
// that were only paged out, are released.
func (s *Server) recoverMessages(ctx context.Context) error {
	count, dropped := 0, 0
	err := s.store.Recover(func(r store.Recovered) error {
		vhostName, name, _ := strings.Cut(r.Queue, "\x00")
		var q *localQueue
		if v := s.vhost(vhostName); v != nil {
			v.mu.RLock()
			q = v.queues[name]
			v.mu.RUnlock()
		}
		if q == nil || !q.def.Durable {
			dropped++
			return s.store.Release(r.Queue, r.Loc)
		}
		m, enqueued, err := decodeMessage(r.Data)
		if err != nil {
			s.log.Error("dropping a stored message that does not decode", "queue", name, "vhost", vhostName, "error", err)
			dropped++
			return s.store.Release(r.Queue, r.Loc)
		}
		if !m.Persistent {
			dropped++
			return s.store.Release(r.Queue, r.Loc)
		}
		if q.Recover(m, r.Loc, enqueued, r.Delivered) != queue.Queued {
			s.releaseAt(q.key, &r.Loc)
		}
		count++
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("recover messages: %w", err)
	}
	s.log.Info("messages recovered", "messages", count, "released", dropped)
	return nil
}

// paging is how a queue keeps messages out of memory: in the message
// store, when the node has a data directory.
func (s *Server) paging(def meta.Queue) queue.Paging {
	if s.tailDir == "" {
		return queue.Paging{}
	}
	return queue.Paging{Pager: &pager{s: s, key: queueKey(def.VHost, def.Name)}, Dir: s.tailDir, Memory: &s.memory}
}

// pager implements queue.Pager for one queue over the message store.
type pager struct {
	s   *Server
	key string
}

func (p *pager) Stash(m *queue.Message) (store.Location, error) {
	if p.s.store == nil {
		return store.Location{}, errors.New("no message store")
	}
	return p.s.store.Append(p.key, encodeMessage(m, 0), nil)
}

func (p *pager) Stored(loc store.Location) bool { return p.s.store.Stored(loc) }

func (p *pager) Load(loc store.Location) (*queue.Message, error) {
	data, err := p.s.store.ReadAt(loc)
	if err != nil {
		return nil, err
	}
	m, _, err := decodeMessage(data)
	return m, err
}

func (p *pager) Release(loc store.Location) { p.s.releaseAt(p.key, &loc) }

func (p *pager) Error(err error) {
	vhost, name, _ := strings.Cut(p.key, "\x00")
	p.s.log.Error("queue paging", "queue", name, "vhost", vhost, "error", err)
}
