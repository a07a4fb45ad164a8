package chaos

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// History is what the clients saw: every message published (each body
// unique), how its publish was answered, and every delivery.
type History struct {
	mu        sync.Mutex
	sent      map[string]bool
	acked     map[string]bool
	nacked    map[string]bool
	delivered map[string]int
	// start is when the history began; ackedAt is when each acked
	// message was acked, since start, for the report of lost ones.
	start   time.Time
	ackedAt map[string]time.Duration
	// againAt is when each delivery of a message delivered before
	// came, since start.
	againAt []time.Duration
	// lastDelivery is when a consumer last got a message (Unix
	// nanoseconds), to tell when a drain is over.
	lastDelivery atomic.Int64
}

// NewHistory returns an empty history.
func NewHistory() *History {
	return &History{sent: map[string]bool{}, acked: map[string]bool{}, nacked: map[string]bool{}, delivered: map[string]int{},
		start: time.Now(), ackedAt: map[string]time.Duration{}}
}

// Began is when the history began: the times it reports count from it.
func (h *History) Began() time.Time { return h.start }

// Confirms are the times, since Began, at which publishes were
// confirmed, in order.
func (h *History) Confirms() []time.Duration {
	h.mu.Lock()
	out := make([]time.Duration, 0, len(h.ackedAt))
	for _, at := range h.ackedAt {
		out = append(out, at)
	}
	h.mu.Unlock()
	slices.Sort(out)
	return out
}

// Duplicates are the times, since Began, of the deliveries of messages
// delivered before, in order.
func (h *History) Duplicates() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.againAt)
}

// LastDelivery is when a consumer last got a message; zero before any.
func (h *History) LastDelivery() time.Time {
	if n := h.lastDelivery.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (h *History) send(body string) {
	h.mu.Lock()
	h.sent[body] = true
	h.mu.Unlock()
}

func (h *History) answer(body string, ack bool) {
	h.mu.Lock()
	if ack {
		h.acked[body] = true
		h.ackedAt[body] = time.Since(h.start)
	} else {
		h.nacked[body] = true
	}
	h.mu.Unlock()
}

func (h *History) deliver(body string) {
	h.mu.Lock()
	h.delivered[body]++
	if h.delivered[body] > 1 {
		h.againAt = append(h.againAt, time.Since(h.start))
	}
	h.mu.Unlock()
	h.lastDelivery.Store(time.Now().UnixNano())
}

// Client is where a workload's clients connect: a host's dialer and the
// broker's address as seen from it.
type Client struct {
	Name string
	Dial func(network, addr string) (net.Conn, error)
	URL  string
	// Pad, if not zero, makes each body that many octets longer: a '|'
	// and filler after the unique part, which Consume checks and cuts
	// off again.
	Pad int
}

// padding is what Pad adds to each body.
func (c Client) padding() string {
	if c.Pad <= 0 {
		return ""
	}
	return "|" + strings.Repeat("w", c.Pad-1)
}

// unpad is body without c's padding; a body whose padding is not what
// was sent comes back whole, and so counts as never published.
func (c Client) unpad(body []byte) string {
	b := string(body)
	i := strings.IndexByte(b, '|')
	if i < 0 || b[i:] != c.padding() {
		return b
	}
	return b[:i]
}

// connect opens an AMQP connection, or returns nil once ctx ends.
func (c Client) connect(ctx context.Context) *amqp091.Connection {
	for ctx.Err() == nil {
		conn, err := amqp091.DialConfig(c.URL, amqp091.Config{Dial: c.Dial, Heartbeat: 2 * time.Second})
		if err == nil {
			return conn
		}
		sleep(ctx, 250*time.Millisecond)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Publish publishes persistent messages with unique bodies to queue at
// about rate a second, with confirms and at most window unanswered,
// reconnecting whenever its connection or channel ends, until ctx ends.
// A publish whose answer never came stays only sent.
func Publish(ctx context.Context, c Client, queue string, rate, window int, h *History) {
	seq := 0
	pad := c.padding()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for ctx.Err() == nil {
		conn := c.connect(ctx)
		if conn == nil {
			return
		}
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		if err != nil {
			conn.Close()
			sleep(ctx, 250*time.Millisecond)
			continue
		}
		// The client hands confirms over in publishing order: each
		// answers the oldest publish still unanswered.
		confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, window))
		closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
		var outstanding []string
		answer := func(cf amqp091.Confirmation) {
			if len(outstanding) > 0 {
				h.answer(outstanding[0], cf.Ack)
				outstanding = outstanding[1:]
			}
		}
	publishing:
		for {
			select {
			case <-ctx.Done():
				break publishing
			case <-closed:
				break publishing
			case cf, ok := <-confirms:
				if !ok {
					break publishing
				}
				answer(cf)
			case <-tick.C:
				if len(outstanding) >= window {
					continue
				}
				seq++
				body := fmt.Sprintf("%s-%s-%d", c.Name, queue, seq)
				h.send(body)
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := ch.PublishWithContext(pctx, "", queue, false, false, amqp091.Publishing{DeliveryMode: 2, Body: []byte(body + pad)})
				cancel()
				if err != nil {
					break publishing
				}
				outstanding = append(outstanding, body)
			}
		}
		// Take the answers still on their way, then give up on the rest.
		deadline := time.After(2 * time.Second)
	answers:
		for len(outstanding) > 0 {
			select {
			case cf, ok := <-confirms:
				if !ok {
					break answers
				}
				answer(cf)
			case <-deadline:
				break answers
			}
		}
		conn.Close()
	}
}

// Consume consumes queue with manual acks, prefetch 50, recording every
// delivery and acking it, reconnecting and consuming again whenever its
// connection, channel or consumer ends, until ctx ends. While hold
// reports true it does not consume.
func Consume(ctx context.Context, c Client, queue string, hold func() bool, h *History) {
	for ctx.Err() == nil {
		for hold != nil && hold() && ctx.Err() == nil {
			sleep(ctx, 100*time.Millisecond)
		}
		conn := c.connect(ctx)
		if conn == nil {
			return
		}
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Qos(50, 0, false)
		}
		var deliveries <-chan amqp091.Delivery
		if err == nil {
			deliveries, err = ch.Consume(queue, "", false, false, false, false, nil)
		}
		if err != nil {
			conn.Close()
			sleep(ctx, 250*time.Millisecond)
			continue
		}
	consuming:
		for {
			select {
			case <-ctx.Done():
				break consuming
			case d, ok := <-deliveries:
				if !ok {
					break consuming
				}
				h.deliver(c.unpad(d.Body))
				if d.Ack(false) != nil {
					break consuming
				}
				if hold != nil && hold() {
					break consuming
				}
			}
		}
		conn.Close()
	}
}
