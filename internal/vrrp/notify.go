package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// notifier runs notify scripts without blocking the caller. Scripts of one
// instance run in order on that instance's queue; different instances do
// not wait for each other.
type notifier struct {
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	runner *scriptRunner           // guarded by mu; replaced by a reload
	queues map[string]*notifyQueue // guarded by mu
	// retired maps a key to the done channel of its last released queue
	// whose worker may still run; guarded by mu. A new queue for the key
	// waits for it, so scripts of one name still run in order.
	retired map[string]chan struct{}
	closed  bool // guarded by mu
	wg      sync.WaitGroup
}

// notifyQueue is the queue of one key and its worker.
type notifyQueue struct {
	jobs chan notifyJob
	done chan struct{} // closed when the worker returns
}

// notifyJob is one queued script run, with the runner (user, security
// checks) of the configuration that queued it.
type notifyJob struct {
	argv   []string
	runner *scriptRunner
}

func newNotifier(runner *scriptRunner, log *slog.Logger) *notifier {
	ctx, cancel := context.WithCancel(context.Background())
	return &notifier{runner: runner, log: log, ctx: ctx, cancel: cancel,
		queues: map[string]*notifyQueue{}, retired: map[string]chan struct{}{}}
}

// setRunner makes later notifications run with r (a reloaded script_user
// or enable_script_security); queued ones keep theirs.
func (n *notifier) setRunner(r *scriptRunner) {
	n.mu.Lock()
	n.runner = r
	n.mu.Unlock()
}

// notifyQueueLen bounds the notifications waiting per instance; beyond it
// new ones are dropped and logged rather than blocking the state machine.
const notifyQueueLen = 64

// run queues the command lines for key (an instance or group name), each
// followed by extra arguments.
func (n *notifier) run(key string, commands []string, extra [][]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	q, ok := n.queues[key]
	if !ok {
		q = &notifyQueue{jobs: make(chan notifyJob, notifyQueueLen), done: make(chan struct{})}
		n.queues[key] = q
		n.wg.Add(1)
		go n.worker(key, q, n.retired[key])
	}
	for i, c := range commands {
		if c == "" {
			continue
		}
		argv, err := n.runner.prepare(c, nil)
		if err != nil {
			n.log.Error("notify script refused", "name", key, "command", c, "err", err)
			continue
		}
		argv = append(argv, extra[i]...)
		select {
		case q.jobs <- notifyJob{argv: argv, runner: n.runner}:
		default:
			n.log.Error("notify queue full; notification dropped", "name", key, "command", c)
		}
	}
}

// release ends key's queue once its queued scripts have run; the daemon
// calls it when an instance stops, so a stopped instance leaves no
// goroutine behind. A later run for key starts a new queue.
func (n *notifier) release(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q, ok := n.queues[key]
	if !ok || n.closed {
		return
	}
	close(q.jobs)
	delete(n.queues, key)
	n.retired[key] = q.done
}

// worker runs q's jobs in order, after the worker of the key's previous
// queue (prev, nil if none) has returned.
func (n *notifier) worker(key string, q *notifyQueue, prev chan struct{}) {
	defer n.wg.Done()
	defer func() {
		n.mu.Lock()
		if n.retired[key] == q.done {
			delete(n.retired, key)
		}
		n.mu.Unlock()
		close(q.done)
	}()
	if prev != nil {
		<-prev
	}
	for job := range q.jobs {
		start := time.Now()
		if err := job.runner.run(n.ctx, job.argv, nil, 0); err != nil {
			n.log.Error("notify script failed", "name", key, "argv", fmt.Sprint(job.argv), "err", err)
		} else {
			n.log.Debug("notify script done", "name", key, "argv", fmt.Sprint(job.argv), "took", time.Since(start))
		}
	}
}

// close lets queued scripts finish for up to grace, then kills the rest.
func (n *notifier) close(grace time.Duration) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	for _, q := range n.queues {
		close(q.jobs)
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		n.cancel()
		<-done
	}
	n.cancel()
}
