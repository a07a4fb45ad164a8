package perf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// closeTimeout bounds how long Run waits for each connection.close-ok at
// the end of a run.
const closeTimeout = 5 * time.Second

// counters are the run's live totals, shared by workers and the reporter.
type counters struct {
	sent      atomic.Int64
	confirmed atomic.Int64
	nacked    atomic.Int64
	received  atomic.Int64
	// recoveries counts connections made again (Config.Recover).
	recoveries atomic.Int64
}

// counts is a snapshot of counters.
type counts struct{ sent, confirmed, nacked, received int64 }

func (c *counters) snapshot() counts {
	return counts{c.sent.Load(), c.confirmed.Load(), c.nacked.Load(), c.received.Load()}
}

// runner holds the state of one Run. Its fields are set before any worker
// starts and read-only afterwards, except the counters.
type runner struct {
	cfg   Config
	queue string
	size  int
	c     counters

	// expected is the number of messages the consumers wait for in count
	// mode (zero otherwise); allReceived is closed when that many arrived.
	expected    int64
	allReceived chan struct{}
}

// worker is one producer or consumer: its connection and the function its
// goroutine runs.
type worker struct {
	mu     sync.Mutex // guards conn and closed against closeAll
	conn   *amqp.Connection
	closed bool // closeAll has run: recover connects no more
	run    func(ctx context.Context) error
	hist   *Histogram // consumers only

	// connClosed and chanClosed receive the broker's reason when it
	// closes the connection or channel; only the worker's goroutine reads
	// them.
	connClosed, chanClosed <-chan *amqp.Error
	// cancelled receives the consumer tag when the broker cancels a
	// consumer (basic.cancel); nil for producers.
	cancelled <-chan string
}

// Run generates load as cfg describes and returns what it measured. It
// returns when cfg.Duration has elapsed, when cfg.MessageCount is reached,
// or when ctx is cancelled; in the last case the result covers the run so
// far and the error is nil. A connection or protocol failure during the run
// ends it with an error. Run closes every connection it opened before it
// returns.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, fmt.Errorf("perf: invalid config: %w", err)
	}
	r := &runner{cfg: cfg, size: cfg.size(), allReceived: make(chan struct{})}
	if cfg.MessageCount > 0 && cfg.Consumers > 0 {
		r.expected = int64(cfg.MessageCount) * int64(cfg.Producers)
	}
	r.queue = cfg.Queue
	if r.queue == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return Result{}, fmt.Errorf("perf: queue name: %w", err)
		}
		r.queue = "warren-perf-" + hex.EncodeToString(b[:])
	}
	if err := r.declareQueue(); err != nil {
		return Result{}, err
	}
	log := cfg.logger().With("queue", r.queue)
	log.Debug("perf queue declared", "producers", cfg.Producers, "consumers", cfg.Consumers,
		"size", r.size, "confirm_window", cfg.ConfirmWindow, "persistent", cfg.Persistent)

	var workers []*worker
	// Closes the connections opened before a setup failure; after a run
	// they are closed already and this does nothing.
	defer func() { closeAll(workers) }()
	// Consumers first, so that no message is published before someone
	// listens and latency covers only the broker's path.
	for i := range cfg.Consumers {
		w, err := r.newConsumer(i, nil)
		if err != nil {
			return Result{}, err
		}
		workers = append(workers, w)
	}
	consumers := workers
	for i := range cfg.Producers {
		w, err := r.newProducer(i)
		if err != nil {
			return Result{}, err
		}
		workers = append(workers, w)
	}
	res, err := r.measure(ctx, workers, consumers)
	if err != nil {
		log.Debug("perf run failed", "err", err)
		return Result{}, err
	}
	log.Debug("perf run done", "received", res.Received, "seconds", res.Seconds)
	return res, nil
}

// measure runs the workers and the reporter, waits for the end of the run
// and collects the result.
func (r *runner) measure(ctx context.Context, workers, consumers []*worker) (Result, error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.cfg.Duration > 0 {
		var cancelTimeout context.CancelFunc
		runCtx, cancelTimeout = context.WithTimeout(runCtx, r.cfg.Duration)
		defer cancelTimeout()
	}

	cpu0, err := r.brokerCPU()
	if err != nil {
		return Result{}, err
	}
	client0 := selfCPU()
	steal0, _, stealErr := machineSteal("/proc")
	start := time.Now()

	var (
		wg             sync.WaitGroup
		producersWG    sync.WaitGroup
		errOnce        sync.Once
		firstErr       error
		failed         = make(chan struct{})
		reporterDone   = make(chan struct{})
		producersCount = len(workers) - len(consumers)
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; close(failed) })
	}
	producersWG.Add(producersCount)
	for i, w := range workers {
		wg.Add(1)
		isProducer := i >= len(consumers)
		idx := i // the producer's or consumer's number
		if isProducer {
			idx -= len(consumers)
		}
		go func() {
			defer wg.Done()
			if isProducer {
				defer producersWG.Done()
			}
			err := w.run(runCtx)
			for err != nil && runCtx.Err() == nil && r.cfg.Recover {
				err = r.recover(runCtx, w, isProducer, idx, err)
			}
			if err != nil && runCtx.Err() == nil {
				fail(err)
			}
		}()
	}
	go func() {
		defer close(reporterDone)
		r.report(runCtx, start)
	}()

	// In count mode the run is over when every producer is done and, with
	// consumers, every message has arrived.
	countDone := make(chan struct{})
	if r.cfg.MessageCount > 0 {
		go func() {
			defer close(countDone)
			producersWG.Wait()
			if r.expected > 0 {
				select {
				case <-r.allReceived:
				case <-runCtx.Done():
				}
			}
		}()
	}
	select {
	case <-runCtx.Done():
	case <-countDone:
	case <-failed:
	}
	end := time.Now()
	cpu1, cpuErr := r.brokerCPU()
	client1 := selfCPU()
	steal1, cpus, stealErr1 := machineSteal("/proc")
	// Counts at the end of the window: deliveries that arrive while the
	// connections close are not part of it.
	final := r.c.snapshot()
	cancel()
	// Close the connections before waiting: a producer can be stuck in a
	// socket write while the broker applies flow control, and only closing
	// its connection (with a deadline) gets it out.
	closeAll(workers)
	wg.Wait()
	<-reporterDone
	if r.cfg.MessageCount > 0 {
		<-countDone
	}
	if firstErr != nil {
		return Result{}, firstErr
	}
	if cpuErr != nil {
		return Result{}, cpuErr
	}

	var hist Histogram
	for _, w := range consumers {
		hist.Merge(w.hist)
	}
	res := r.result(end.Sub(start), final, &hist, cpu1-cpu0, client1-client0)
	if stealErr == nil && stealErr1 == nil && res.Seconds > 0 {
		// Not having the figure (no /proc/stat) must not fail a run.
		res.StealPercent = 100 * (steal1 - steal0).Seconds() / (res.Seconds * float64(cpus))
	}
	return res, nil
}

func (r *runner) result(elapsed time.Duration, n counts, hist *Histogram, brokerCPU, clientCPU time.Duration) Result {
	cfg := &r.cfg
	secs := elapsed.Seconds()
	res := Result{
		Label: cfg.Label, Broker: cfg.Broker,
		Producers: cfg.Producers, Consumers: cfg.Consumers, Size: r.size,
		ConfirmWindow: cfg.ConfirmWindow, Persistent: cfg.Persistent,
		Prefetch: cfg.Prefetch, AutoAck: cfg.AutoAck, MultiAckEvery: cfg.MultiAckEvery, Rate: cfg.Rate, Queue: r.queue,
		Seconds:   secs,
		Sent:      n.sent,
		Confirmed: n.confirmed,
		Nacked:    n.nacked,
		Received:  n.received,
		Recovered: r.c.recoveries.Load(),
		Latency:   summarize(hist),
	}
	if secs > 0 {
		res.SendRate = float64(res.Sent) / secs
		res.ConfirmRate = float64(res.Confirmed) / secs
		res.ReceiveRate = float64(res.Received) / secs
	}
	res.ClientCPUSeconds = clientCPU.Seconds()
	if cfg.BrokerPID > 0 {
		res.BrokerCPUSeconds = brokerCPU.Seconds()
		if res.Received > 0 {
			res.BrokerCPUPerMessage = micros(brokerCPU) / float64(res.Received)
		}
	}
	return res
}

// report prints one line of rates per second until ctx is done.
func (r *runner) report(ctx context.Context, start time.Time) {
	if r.cfg.Progress == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSent, lastConfirmed, lastReceived int64
	last := start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			sent, confirmed, received := r.c.sent.Load(), r.c.confirmed.Load(), r.c.received.Load()
			dt := now.Sub(last).Seconds()
			line := fmt.Sprintf("time %.1f s, sent %.0f msg/s", now.Sub(start).Seconds(), float64(sent-lastSent)/dt)
			if r.cfg.ConfirmWindow > 0 {
				line += fmt.Sprintf(", confirmed %.0f msg/s", float64(confirmed-lastConfirmed)/dt)
			}
			line += fmt.Sprintf(", received %.0f msg/s\n", float64(received-lastReceived)/dt)
			// A failed progress write must not end the run.
			_, _ = r.cfg.Progress.Write([]byte(line))
			lastSent, lastConfirmed, lastReceived, last = sent, confirmed, received, now
		}
	}
}

func (r *runner) brokerCPU() (time.Duration, error) {
	if r.cfg.BrokerPID <= 0 {
		return 0, nil
	}
	d, err := treeCPU("/proc", r.cfg.BrokerPID)
	if err != nil {
		return 0, fmt.Errorf("perf: broker cpu: %w", err)
	}
	return d, nil
}

// selfCPU returns the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r *runner) dial(role string, i int) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(fmt.Sprintf("warren-perf %s %d", role, i))
	conn, err := amqp.DialConfig(r.cfg.URI, amqp.Config{Properties: props, Heartbeat: 10 * time.Second, TLSClientConfig: TLSFor(r.cfg.TLS)})
	if err != nil {
		return nil, fmt.Errorf("perf: %s %d: connect: %w", role, i, err)
	}
	return conn, nil
}

// declareQueue declares the run's queue on a short-lived connection.
func (r *runner) declareQueue() error {
	conn, err := r.dial("setup", 0)
	if err != nil {
		return err
	}
	defer func() { _ = conn.CloseDeadline(time.Now().Add(closeTimeout)) }()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("perf: setup channel: %w", err)
	}
	durable := r.cfg.Durable && r.cfg.Queue != ""
	autoDelete := !r.cfg.KeepQueue || r.cfg.Queue == ""
	if _, err := ch.QueueDeclare(r.queue, durable, autoDelete, false, false, r.cfg.QueueArgs); err != nil {
		return fmt.Errorf("perf: declare queue %q: %w", r.queue, err)
	}
	return nil
}

func closeAll(workers []*worker) {
	deadline := time.Now().Add(closeTimeout)
	for _, w := range workers {
		w.mu.Lock()
		w.closed = true
		conn := w.conn
		w.mu.Unlock()
		// The connection may already be closed by the broker; that error
		// was reported by the worker.
		_ = conn.CloseDeadline(deadline)
	}
}

// recover replaces w's failed connection, after cause ended its run, by
// a new one, trying every half second until it connects or ctx is done,
// and runs w again. What the old connection left unconfirmed is not
// counted: the broker nacks or confirms nothing more on it.
func (r *runner) recover(ctx context.Context, w *worker, producer bool, i int, cause error) error {
	role := "consumer"
	if producer {
		role = "producer"
	}
	lost := time.Now()
	r.c.recoveries.Add(1)
	r.progress(fmt.Sprintf("%s %d: connection lost: %v; connecting again\n", role, i, cause))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
		var nw *worker
		err := r.declareQueue()
		if err == nil {
			if producer {
				nw, err = r.newProducer(i)
			} else {
				nw, err = r.newConsumer(i, w.hist)
			}
		}
		if err != nil {
			continue
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			_ = nw.conn.Close()
			return nil
		}
		old := w.conn
		w.conn, w.run, w.connClosed, w.chanClosed, w.cancelled = nw.conn, nw.run, nw.connClosed, nw.chanClosed, nw.cancelled
		w.mu.Unlock()
		_ = old.CloseDeadline(time.Now().Add(closeTimeout))
		r.progress(fmt.Sprintf("%s %d: connected again after %.1f s\n", role, i, time.Since(lost).Seconds()))
		return w.run(ctx)
	}
}

// progress writes a line to the progress output, if there is one.
func (r *runner) progress(line string) {
	if r.cfg.Progress != nil {
		// A failed progress write must not end the run.
		_, _ = r.cfg.Progress.Write([]byte(line))
	}
}

// errClosed reports that the broker (or the network) ended a channel,
// connection or consumer under a worker.
var errClosed = errors.New("closed by the broker")
