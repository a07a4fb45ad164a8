package perf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TimestampSize is the number of body bytes that carry the send time; it is
// the smallest message size Run accepts.
const TimestampSize = 8

// Config describes one load-generation run. The zero value of every field
// except URI means its documented default.
type Config struct {
	// URI is the AMQP URI of the broker, e.g. amqp://guest:guest@127.0.0.1:5672/.
	URI string
	// TLS is the client's TLS settings for an amqps:// URI; nil trusts any
	// certificate, as PerfTest does for amqps.
	TLS *tls.Config
	// Label names the run in the result (PerfTest's --id). Optional.
	Label string
	// Broker names the broker under test in the result ("rabbitmq", "warren").
	// Optional.
	Broker string

	// Producers is the number of publishing connections, each with one
	// channel. Zero means none (consume only); negative values are invalid.
	Producers int
	// Consumers is the number of consuming connections, each with one
	// channel. Zero means none (publish only).
	Consumers int
	// Size is the message body size in bytes, at least TimestampSize.
	// Zero means 12, PerfTest's default.
	Size int

	// ConfirmWindow enables publisher confirms when positive: each producer
	// keeps at most this many unconfirmed messages in flight.
	ConfirmWindow int
	// Persistent publishes with delivery mode 2.
	Persistent bool
	// Prefetch is the basic.qos prefetch count of each consumer; zero sends
	// no basic.qos (unlimited).
	Prefetch int
	// AutoAck consumes with no-ack; otherwise each message is acked on
	// arrival.
	AutoAck bool
	// MultiAckEvery, when above 1, acks with multiple=true once every this
	// many deliveries instead of acking each one (PerfTest's
	// --multi-ack-every). It must not exceed a non-zero Prefetch, or the
	// consumer would stall waiting for deliveries the broker holds back.
	MultiAckEvery int

	// Rate limits each producer to this many messages per second; zero means
	// as fast as possible.
	Rate float64
	// Duration ends the run after this long; zero means no time limit.
	Duration time.Duration
	// MessageCount makes each producer stop after this many messages and the
	// run end when all of them have been received (or, with no consumers,
	// sent and confirmed). Zero means no count limit.
	MessageCount int

	// Queue is the queue to publish to (through the default exchange) and
	// consume from. Empty means a fresh transient queue named
	// "warren-perf-<random>".
	Queue string
	// QueueArgs are the arguments of the queue.declare, e.g. x-queue-type.
	QueueArgs amqp.Table
	// Durable declares a named queue durable. Ignored for the generated
	// queue, which is always transient.
	Durable bool
	// KeepQueue declares the queue without auto-delete, so it outlives the
	// run. By default the queue is auto-delete, as PerfTest's is.
	KeepQueue bool
	// Recover connects a producer or consumer again when its connection
	// fails, declaring the queue again first, as PerfTest does with the
	// Java client's automatic recovery; without it a failure ends the run.
	Recover bool

	// BrokerPID, when positive, is the broker's process id; Run then
	// measures the CPU time of that process tree over the run.
	BrokerPID int

	// Progress receives one line of rates per second while the run lasts.
	// Nil means no progress output.
	Progress io.Writer
	// Logger receives diagnostics. Nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports every problem with c, joined into one error.
func (c *Config) Validate() error {
	var errs []error
	if c.URI == "" {
		errs = append(errs, errors.New("uri is empty"))
	} else if _, err := amqp.ParseURI(c.URI); err != nil {
		errs = append(errs, fmt.Errorf("uri %q: %w", c.URI, err))
	}
	if c.Producers < 0 {
		errs = append(errs, fmt.Errorf("producers must be >= 0, got %d", c.Producers))
	}
	if c.Consumers < 0 {
		errs = append(errs, fmt.Errorf("consumers must be >= 0, got %d", c.Consumers))
	}
	if c.Producers == 0 && c.Consumers == 0 {
		errs = append(errs, errors.New("need at least one producer or consumer"))
	}
	if c.Size != 0 && c.Size < TimestampSize {
		errs = append(errs, fmt.Errorf("message size must be at least %d bytes (the send timestamp), got %d", TimestampSize, c.Size))
	}
	if c.ConfirmWindow < 0 {
		errs = append(errs, fmt.Errorf("confirm window must be >= 0, got %d", c.ConfirmWindow))
	}
	if c.Prefetch < 0 || c.Prefetch > 65535 {
		errs = append(errs, fmt.Errorf("prefetch must be in 0..65535, got %d", c.Prefetch))
	}
	if c.MultiAckEvery < 0 {
		errs = append(errs, fmt.Errorf("multi-ack-every must be >= 0, got %d", c.MultiAckEvery))
	}
	if c.MultiAckEvery > 1 && c.Prefetch > 0 && c.MultiAckEvery > c.Prefetch {
		errs = append(errs, fmt.Errorf("multi-ack-every %d exceeds prefetch %d: the consumer would stall", c.MultiAckEvery, c.Prefetch))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate must be >= 0, got %g", c.Rate))
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration must be >= 0, got %s", c.Duration))
	}
	if c.MessageCount < 0 {
		errs = append(errs, fmt.Errorf("message count must be >= 0, got %d", c.MessageCount))
	}
	if c.MessageCount > 0 && c.Producers == 0 {
		errs = append(errs, errors.New("message count needs at least one producer"))
	}
	return errors.Join(errs...)
}

func (c *Config) size() int {
	if c.Size == 0 {
		return 12
	}
	return c.Size
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}
