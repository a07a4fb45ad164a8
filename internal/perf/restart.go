package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Defaults of ProbeConfig.
const (
	// DefaultProbeInterval is the pause between two connection attempts.
	DefaultProbeInterval = 5 * time.Millisecond
	// DefaultProbeTimeout bounds a whole probe.
	DefaultProbeTimeout = 10 * time.Minute
	// probeAttemptTimeout bounds one connection attempt, TCP connect and
	// AMQP handshake together. A broker that accepts TCP connections but
	// answers the handshake only once it has recovered is still measured
	// exactly, as long as it answers within this time.
	probeAttemptTimeout = 30 * time.Second
)

// ProbeConfig describes a restart probe: a client that waits for a broker
// that was just started over its old data, and measures how long after
// Start it completes an AMQP handshake and how long until it delivers the
// first message of Queue.
type ProbeConfig struct {
	// URI is the AMQP URI of the broker.
	URI string
	// Queue is the durable queue whose messages survived the restart.
	Queue string
	// Start is when the broker process was started; every time in the
	// result counts from it.
	Start time.Time
	// Interval is the pause between connection attempts; zero means
	// DefaultProbeInterval. It bounds the resolution of the connect time.
	Interval time.Duration
	// Timeout ends the probe with an error when the broker has not
	// delivered a message this long after the probe began; zero means
	// DefaultProbeTimeout.
	Timeout time.Duration
	// BrokerPID, when positive, is the broker's process: the probe gives up
	// as soon as it has exited, and reads the CPU time and resident memory
	// of its process tree when the first message arrives.
	BrokerPID int
	// Expected is the number of messages the queue should hold, recorded
	// in the result; zero means unknown.
	Expected int64

	// Broker names the broker in the result ("rabbitmq", "warren").
	Broker string
	// Stop names how the broker was stopped before the restart
	// ("graceful", "kill").
	Stop string
	// StopSeconds and PublishRate are measured by the caller (how long the
	// stop took, and the rate at which the queue was filled) and copied
	// into the result so that one line holds the whole cycle. Optional.
	StopSeconds float64
	PublishRate float64

	// Progress receives a line when the connection succeeds and when the
	// first message arrives; nil means none.
	Progress io.Writer
}

// ProbeResult is what a restart probe measured. Its JSON form is one line
// of `warren-perf restart-probe --json`, which `warren-perf restart-report`
// reads back. Times are seconds since ProbeConfig.Start.
type ProbeResult struct {
	Broker   string `json:"broker,omitempty"`
	Stop     string `json:"stop,omitempty"`
	Queue    string `json:"queue"`
	Expected int64  `json:"expected"`

	StopSeconds float64 `json:"stop_seconds,omitempty"`
	PublishRate float64 `json:"publish_rate,omitempty"`

	// ConnectSeconds is when an AMQP handshake (through connection.open-ok)
	// first succeeded, after ConnectAttempts attempts.
	ConnectSeconds  float64 `json:"connect_seconds"`
	ConnectAttempts int     `json:"connect_attempts"`
	// DeclareSeconds is when a passive queue.declare of the queue first
	// succeeded; Depth is the message count it returned.
	DeclareSeconds float64 `json:"declare_seconds"`
	Depth          int64   `json:"depth"`
	// FirstDeliverySeconds is when the first message arrived at a consumer
	// on that connection; FirstSize is its body size.
	FirstDeliverySeconds float64 `json:"first_delivery_seconds"`
	FirstSize            int     `json:"first_size"`
	// DepthAfter is the queue's message count once the first message was
	// returned to it (basic.nack with requeue): it should equal Depth.
	// Less means the broker lost it, or took over five seconds to count it
	// again.
	DepthAfter int64 `json:"depth_after"`

	// BrokerCPUSeconds and BrokerRSS are the CPU time and resident memory
	// of the broker's process tree when the first message arrived; zero
	// when no broker pid was given.
	BrokerCPUSeconds float64 `json:"broker_cpu_seconds,omitempty"`
	BrokerRSS        uint64  `json:"broker_rss_bytes,omitempty"`
}

// Validate reports every problem with c, joined into one error.
func (c *ProbeConfig) Validate() error {
	var errs []error
	if c.URI == "" {
		errs = append(errs, errors.New("uri is empty"))
	} else if _, err := amqp.ParseURI(c.URI); err != nil {
		errs = append(errs, fmt.Errorf("uri %q: %w", c.URI, err))
	}
	if c.Queue == "" {
		errs = append(errs, errors.New("queue is empty"))
	}
	if c.Start.IsZero() {
		errs = append(errs, errors.New("start time is not set"))
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval must be >= 0, got %s", c.Interval))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout must be >= 0, got %s", c.Timeout))
	}
	if c.Expected < 0 {
		errs = append(errs, fmt.Errorf("expected message count must be >= 0, got %d", c.Expected))
	}
	return errors.Join(errs...)
}

// Probe measures a broker's restart as cfg describes. It connects every
// cfg.Interval until a handshake succeeds, declares the queue passively
// (again and again while the broker answers 404 NOT_FOUND) to read its
// depth, consumes with prefetch 1 until the first message arrives, then
// cancels the consumer, returns the message to the queue and reads the
// depth again until the message is counted (for a few seconds at most). The
// queue is left as it was found, but for that message's redelivered flag.
func Probe(ctx context.Context, cfg ProbeConfig) (ProbeResult, error) {
	if err := cfg.Validate(); err != nil {
		return ProbeResult{}, fmt.Errorf("perf: invalid probe config: %w", err)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultProbeInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	since := func(t time.Time) float64 { return t.Sub(cfg.Start).Seconds() }
	res := ProbeResult{
		Broker: cfg.Broker, Stop: cfg.Stop, Queue: cfg.Queue, Expected: cfg.Expected,
		StopSeconds: cfg.StopSeconds, PublishRate: cfg.PublishRate,
	}

	conn, attempts, err := probeConnect(ctx, cfg)
	res.ConnectAttempts = attempts
	if err != nil {
		return res, err
	}
	res.ConnectSeconds = since(time.Now())
	defer func() { _ = conn.CloseDeadline(time.Now().Add(closeTimeout)) }()
	fmt.Fprintf(progress, "connected after %.3f s (%d attempts)\n", res.ConnectSeconds, attempts)

	ch, q, err := probeDeclare(ctx, cfg, conn)
	if err != nil {
		return res, err
	}
	res.DeclareSeconds = since(time.Now())
	res.Depth = int64(q.Messages)

	if err := ch.Qos(1, 0, false); err != nil {
		return res, fmt.Errorf("perf: probe: basic.qos: %w", err)
	}
	const tag = "warren-perf-restart-probe"
	deliveries, err := ch.Consume(cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return res, fmt.Errorf("perf: probe: consume from %q: %w", cfg.Queue, err)
	}
	var first amqp.Delivery
	select {
	case d, ok := <-deliveries:
		if !ok {
			return res, fmt.Errorf("perf: probe: consumer on %q ended before a message arrived: %w", cfg.Queue, errClosed)
		}
		first = d
	case <-ctx.Done():
		return res, fmt.Errorf("perf: probe: no message from %q (depth %d at declare): %w", cfg.Queue, res.Depth, ctx.Err())
	}
	res.FirstDeliverySeconds = since(time.Now())
	res.FirstSize = len(first.Body)
	if cfg.BrokerPID > 0 {
		// The broker process started at cfg.Start, so all its CPU time
		// was spent since then.
		cpu, err := treeCPU("/proc", cfg.BrokerPID)
		if err != nil {
			return res, fmt.Errorf("perf: probe: %w", err)
		}
		res.BrokerCPUSeconds = cpu.Seconds()
		if res.BrokerRSS, err = treeRSS("/proc", cfg.BrokerPID); err != nil {
			return res, fmt.Errorf("perf: probe: %w", err)
		}
	}
	fmt.Fprintf(progress, "first message after %.3f s (depth %d)\n", res.FirstDeliverySeconds, res.Depth)

	// Cancel before returning the message: with the consumer still there,
	// the broker could deliver it again at once, and an unacknowledged
	// message is not counted in the depth.
	if err := ch.Cancel(tag, false); err != nil {
		return res, fmt.Errorf("perf: probe: basic.cancel: %w", err)
	}
	if err := first.Nack(false, true); err != nil {
		return res, fmt.Errorf("perf: probe: requeue the first message: %w", err)
	}
	if res.DepthAfter, err = probeRequeued(ctx, cfg, ch, res.Depth); err != nil {
		return res, err
	}
	return res, nil
}

// requeueWait bounds how long the probe waits for the queue to count the
// message it returned.
const requeueWait = 5 * time.Second

// probeRequeued reads the queue's depth until it is back to want, for at
// most requeueWait, and returns the last depth read. A broker may put the
// returned message back after it answers a declare sent later on the same
// channel: RabbitMQ passes it through other processes.
func probeRequeued(ctx context.Context, cfg ProbeConfig, ch *amqp.Channel, want int64) (int64, error) {
	deadline := time.Now().Add(requeueWait)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		q, err := ch.QueueDeclarePassive(cfg.Queue, true, false, false, false, nil)
		if err != nil {
			return 0, fmt.Errorf("perf: probe: declare %q again: %w", cfg.Queue, err)
		}
		if n := int64(q.Messages); n >= want || time.Now().After(deadline) {
			return n, nil
		}
		t.Reset(cfg.Interval)
		select {
		case <-ctx.Done():
			return int64(q.Messages), nil
		case <-t.C:
		}
	}
}

// probeConnect connects until a handshake succeeds, ctx ends or the broker
// process exits. It returns the connection and the number of attempts.
func probeConnect(ctx context.Context, cfg ProbeConfig) (*amqp.Connection, int, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("warren-perf restart-probe")
	dial := func(network, addr string) (net.Conn, error) {
		attemptCtx, cancel := context.WithTimeout(ctx, probeAttemptTimeout)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(attemptCtx, network, addr)
		if err != nil {
			return nil, err
		}
		// The library clears the deadline once the handshake is done.
		deadline, _ := attemptCtx.Deadline()
		if err := c.SetDeadline(deadline); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	amqpCfg := amqp.Config{Properties: props, Heartbeat: 10 * time.Second, Dial: dial}
	t := time.NewTimer(0)
	defer t.Stop()
	var lastErr error
	for attempts := 1; ; attempts++ {
		conn, err := amqp.DialConfig(cfg.URI, amqpCfg)
		if err == nil {
			return conn, attempts, nil
		}
		lastErr = err
		if cfg.BrokerPID > 0 && !processRunning("/proc", cfg.BrokerPID) {
			return nil, attempts, fmt.Errorf("perf: probe: broker process %d exited before accepting a connection (last attempt: %w)", cfg.BrokerPID, lastErr)
		}
		t.Reset(cfg.Interval)
		select {
		case <-ctx.Done():
			return nil, attempts, fmt.Errorf("perf: probe: no AMQP connection after %d attempts: %w (last attempt: %w)", attempts, ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

// probeDeclare declares cfg.Queue passively on a new channel of conn until
// the broker knows it, and returns that channel and the declare-ok.
func probeDeclare(ctx context.Context, cfg ProbeConfig, conn *amqp.Connection) (*amqp.Channel, amqp.Queue, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		ch, err := conn.Channel()
		if err != nil {
			return nil, amqp.Queue{}, fmt.Errorf("perf: probe: open channel: %w", err)
		}
		q, err := ch.QueueDeclarePassive(cfg.Queue, true, false, false, false, nil)
		if err == nil {
			return ch, q, nil
		}
		// A 404 closes the channel: the queue may not be recovered yet.
		var amqpErr *amqp.Error
		if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.NotFound {
			return nil, amqp.Queue{}, fmt.Errorf("perf: probe: declare %q: %w", cfg.Queue, err)
		}
		t.Reset(cfg.Interval)
		select {
		case <-ctx.Done():
			return nil, amqp.Queue{}, fmt.Errorf("perf: probe: queue %q never appeared: %w (last answer: %w)", cfg.Queue, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// processRunning reports whether process pid exists and has not exited: a
// child its parent has not waited for yet is a zombie, which counts as
// exited.
func processRunning(procRoot string, pid int) bool {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	st, err := parseProcStat(data)
	if err != nil {
		return false
	}
	return st.state != 'Z' && st.state != 'X'
}

// ParseUnixTime parses a Unix time in seconds with an optional fraction of
// up to nine digits, as bash's $EPOCHREALTIME or `date +%s.%N` print it,
// e.g. "1712345678.123456". A comma is accepted for the decimal point, which
// $EPOCHREALTIME uses in some locales.
func ParseUnixTime(s string) (time.Time, error) {
	secs, frac, _ := strings.Cut(strings.Replace(strings.TrimSpace(s), ",", ".", 1), ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("unix time %q: want seconds[.fraction]", s)
	}
	var nsec int64
	if frac != "" {
		if len(frac) > 9 || strings.Trim(frac, "0123456789") != "" {
			return time.Time{}, fmt.Errorf("unix time %q: want at most 9 digits of fraction", s)
		}
		n, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("unix time %q: %w", s, err)
		}
		nsec = n
	}
	return time.Unix(sec, nsec), nil
}
