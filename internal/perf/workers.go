package perf

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// newConsumer connects consumer i and starts consuming; the returned
// worker's run delivers until its context is done.
func (r *runner) newConsumer(i int, hist *Histogram) (*worker, error) {
	conn, err := r.dial("consumer", i)
	if err != nil {
		return nil, err
	}
	if hist == nil {
		hist = new(Histogram)
	}
	w := &worker{conn: conn, hist: hist}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("perf: consumer %d: open channel: %w", i, err)
	}
	w.watch(ch)
	if r.cfg.Prefetch > 0 {
		if err := ch.Qos(r.cfg.Prefetch, 0, false); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("perf: consumer %d: basic.qos: %w", i, err)
		}
	}
	// One consumer per channel: the library sends at most one tag here.
	w.cancelled = ch.NotifyCancel(make(chan string, 1))
	deliveries, err := ch.Consume(r.queue, fmt.Sprintf("warren-perf-%d", i), r.cfg.AutoAck, false, false, false, nil)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("perf: consumer %d: consume from %q: %w", i, r.queue, err)
	}
	w.run = func(ctx context.Context) error {
		err := r.consume(ctx, i, deliveries, w.hist)
		return w.explain(err)
	}
	return w, nil
}

// consume records the latency of every delivery and acks it unless
// autoack is on. hist belongs to this goroutine until it returns.
func (r *runner) consume(ctx context.Context, i int, deliveries <-chan amqp.Delivery, hist *Histogram) error {
	unacked := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("perf: consumer %d: deliveries stopped: %w", i, errClosed)
			}
			if len(d.Body) >= TimestampSize {
				sentAt := int64(binary.BigEndian.Uint64(d.Body))
				hist.Record(time.Duration(time.Now().UnixNano() - sentAt))
			}
			if !r.cfg.AutoAck {
				unacked++
				// Messages still unacked when the run ends are requeued
				// by the broker when the connection closes.
				if r.cfg.MultiAckEvery <= 1 || unacked >= r.cfg.MultiAckEvery {
					if err := d.Ack(r.cfg.MultiAckEvery > 1); err != nil {
						return fmt.Errorf("perf: consumer %d: ack: %w", i, err)
					}
					unacked = 0
				}
			}
			if n := r.c.received.Add(1); n == r.expected {
				close(r.allReceived)
			}
		}
	}
}

// newProducer connects producer i, with confirms enabled when a window is
// configured.
func (r *runner) newProducer(i int) (*worker, error) {
	conn, err := r.dial("producer", i)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("perf: producer %d: open channel: %w", i, err)
	}
	var confirms chan amqp.Confirmation
	if r.cfg.ConfirmWindow > 0 {
		if err := ch.Confirm(false); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("perf: producer %d: confirm.select: %w", i, err)
		}
		// At most ConfirmWindow confirmations are ever pending, so the
		// client library never blocks its reader on this channel, even
		// after the producer stops reading it.
		confirms = ch.NotifyPublish(make(chan amqp.Confirmation, r.cfg.ConfirmWindow))
	}
	w := &worker{conn: conn}
	w.watch(ch)
	w.run = func(ctx context.Context) error {
		err := r.produce(ctx, i, ch, confirms)
		return w.explain(err)
	}
	return w, nil
}

// produce publishes until ctx is done or, in count mode, MessageCount
// messages have been sent and confirmed.
func (r *runner) produce(ctx context.Context, i int, ch *amqp.Channel, confirms <-chan amqp.Confirmation) error {
	body := make([]byte, r.size)
	msg := amqp.Publishing{Body: body}
	if r.cfg.Persistent {
		msg.DeliveryMode = amqp.Persistent
	}
	window := r.cfg.ConfirmWindow
	lim := newLimiter(r.cfg.Rate)
	outstanding := 0
	settle := func(c amqp.Confirmation, ok bool) error {
		if !ok {
			return fmt.Errorf("perf: producer %d: confirms stopped: %w", i, errClosed)
		}
		outstanding--
		if c.Ack {
			r.c.confirmed.Add(1)
		} else {
			r.c.nacked.Add(1)
		}
		return nil
	}
	for n := 0; r.cfg.MessageCount == 0 || n < r.cfg.MessageCount; n++ {
		if err := lim.Wait(ctx); err != nil {
			return nil
		}
		for window > 0 && outstanding >= window {
			select {
			case <-ctx.Done():
				return nil
			case c, ok := <-confirms:
				if err := settle(c, ok); err != nil {
					return err
				}
			}
		}
		binary.BigEndian.PutUint64(body, uint64(time.Now().UnixNano()))
		// Publish has written the frames when it returns, so body can be
		// reused for the next message.
		if err := ch.PublishWithContext(ctx, "", r.queue, false, false, msg); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("perf: producer %d: publish: %w", i, err)
		}
		r.c.sent.Add(1)
		if window > 0 {
			outstanding++
		}
	}
	// Count mode: the producer is done when everything it sent is settled.
	for outstanding > 0 {
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-confirms:
			if err := settle(c, ok); err != nil {
				return err
			}
		}
	}
	return nil
}

// watch subscribes to the close notifications of the worker's connection
// and channel, so that a failure can be explained by the broker's reason.
// The channels are buffered: the client library sends at most one error to
// each and never blocks on them.
func (w *worker) watch(ch *amqp.Channel) {
	w.connClosed = w.conn.NotifyClose(make(chan *amqp.Error, 1))
	w.chanClosed = ch.NotifyClose(make(chan *amqp.Error, 1))
}

// explainWait bounds how long explain waits for the broker's close reason,
// which the client library may report just after the failure itself.
const explainWait = 200 * time.Millisecond

// explain adds the broker's reason for closing the channel or connection to
// err, when there is one. A nil err stays nil.
func (w *worker) explain(err error) error {
	if err == nil {
		return nil
	}
	t := time.NewTimer(explainWait)
	defer t.Stop()
	for w.connClosed != nil || w.chanClosed != nil || w.cancelled != nil {
		select {
		case tag, ok := <-w.cancelled:
			if ok {
				return fmt.Errorf("%w (the broker cancelled consumer %q, e.g. because its queue was deleted)", err, tag)
			}
			w.cancelled = nil
		case reason, ok := <-w.chanClosed:
			if ok && reason != nil {
				return fmt.Errorf("%w (channel closed: %v)", err, reason)
			}
			w.chanClosed = nil
		case reason, ok := <-w.connClosed:
			if ok && reason != nil {
				return fmt.Errorf("%w (connection closed: %v)", err, reason)
			}
			w.connClosed = nil
		case <-t.C:
			return err
		}
	}
	return err
}
