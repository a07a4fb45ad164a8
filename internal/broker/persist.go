package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/queue"
	"github.com/warren-mq/warren/internal/store"
)

// Persistent messages (delivery mode 2) routed to durable queues are kept
// in the store, one record per queue, under the queue's key. A publisher
// confirm for such a message waits until every copy is on disk.

func queueKey(vhost, name string) string { return vhost + "\x00" + name }

// encodeMessage is a message's form in the store: exchange and routing key
// as short strings, the property list with a 4-octet length, then the body.
func encodeMessage(m *queue.Message) []byte {
	b := make([]byte, 0, 2+len(m.Exchange)+len(m.RoutingKey)+4+len(m.Properties)+len(m.Body))
	b = append(b, byte(len(m.Exchange)))
	b = append(b, m.Exchange...)
	b = append(b, byte(len(m.RoutingKey)))
	b = append(b, m.RoutingKey...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Properties)))
	b = append(b, m.Properties...)
	return append(b, m.Body...)
}

var errBadStoredMessage = errors.New("broker: stored message does not decode")

func decodeMessage(b []byte) (*queue.Message, error) {
	take := func(n int) ([]byte, bool) {
		if n > len(b) {
			return nil, false
		}
		v := b[:n]
		b = b[n:]
		return v, true
	}
	var m queue.Message
	for _, dst := range []*string{&m.Exchange, &m.RoutingKey} {
		l, ok := take(1)
		if !ok {
			return nil, errBadStoredMessage
		}
		v, ok := take(int(l[0]))
		if !ok {
			return nil, errBadStoredMessage
		}
		*dst = string(v)
	}
	l, ok := take(4)
	if !ok {
		return nil, errBadStoredMessage
	}
	props, ok := take(int(binary.BigEndian.Uint32(l)))
	if !ok {
		return nil, errBadStoredMessage
	}
	m.Properties = append([]byte(nil), props...)
	m.Body = append([]byte(nil), b...)
	sum, err := amqp.ScanProperties(m.Properties)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadStoredMessage, err)
	}
	m.Persistent = sum.DeliveryMode == 2
	m.Priority = sum.Priority
	m.TTL, _ = messageTTL(sum.Expiration)
	return &m, nil
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

// releaseAll is releaseAt for every entry.
func (s *Server) releaseAll(key string, entries []queue.Entry) {
	for i := range entries {
		s.releaseAt(key, entries[i].Loc)
	}
}

// recoverMessages puts the stored messages back in their queues after a
// restart. Messages of queues that no longer exist are released.
func (s *Server) recoverMessages(ctx context.Context) error {
	count, dropped := 0, 0
	err := s.store.Recover(func(key string, loc store.Location, data []byte) error {
		vhostName, name, _ := strings.Cut(key, "\x00")
		var q *localQueue
		if v := s.vhost(vhostName); v != nil {
			v.mu.RLock()
			q = v.queues[name]
			v.mu.RUnlock()
		}
		if q == nil || !q.def.Durable {
			dropped++
			return s.store.Release(key, loc)
		}
		m, err := decodeMessage(data)
		if err != nil {
			s.log.Error("dropping a stored message that does not decode", "queue", name, "vhost", vhostName, "error", err)
			dropped++
			return s.store.Release(key, loc)
		}
		l := loc
		if q.Publish(m, &l, nil) != queue.Queued {
			s.releaseAt(q.key, &l)
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
