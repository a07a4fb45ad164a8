package vrrp

import (
	"context"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// scriptTracker runs one vrrp_script on its interval and reports when its
// result changes after fall failures or rise successes in a row. The daemon
// starts it with start and ends it with stop; a reload keeps a tracker whose
// script did not change, so its result carries over.
type scriptTracker struct {
	cfg    *ScriptConfig
	argv   []string
	cred   *syscall.Credential
	runner *scriptRunner
	log    *slog.Logger

	cancel context.CancelFunc // set by start
	done   chan struct{}      // closed when run returns

	mu        sync.Mutex
	ok        bool                     // guarded by mu
	listeners map[*instance]func(bool) // guarded by mu
}

func newScriptTracker(cfg *ScriptConfig, runner *scriptRunner, log *slog.Logger) (*scriptTracker, error) {
	var cred *syscall.Credential
	if cfg.User != "" && cfg.User != "root" {
		c, err := lookupCredential(cfg.User)
		if err != nil {
			return nil, err
		}
		cred = c
	}
	argv, err := runner.prepare(cfg.Command, cred)
	if err != nil {
		return nil, err
	}
	return &scriptTracker{cfg: cfg, argv: argv, cred: cred, runner: runner, ok: !cfg.InitFail,
		log: log.With("script", cfg.Name), listeners: map[*instance]func(bool){}}, nil
}

// subscribe registers f, under key, to be called from the tracker's
// goroutine on every change. It may be called while the tracker runs.
func (t *scriptTracker) subscribe(key *instance, f func(ok bool)) {
	t.mu.Lock()
	t.listeners[key] = f
	t.mu.Unlock()
}

// unsubscribe removes key's listener. The tracker calls its listeners
// without holding mu, from a copy taken when it saw a change, so a call may
// still be running, or may yet start, after unsubscribe returns: a listener
// must be harmless then (instances only signal a channel of capacity 1).
func (t *scriptTracker) unsubscribe(key *instance) {
	t.mu.Lock()
	delete(t.listeners, key)
	t.mu.Unlock()
}

// start runs the tracker on a goroutine counted by wg until stop, or until
// parent is done.
func (t *scriptTracker) start(parent context.Context, wg *sync.WaitGroup) {
	ctx, cancel := context.WithCancel(parent)
	t.cancel, t.done = cancel, make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(t.done)
		t.run(ctx)
	}()
}

// stop ends a started tracker and waits for its goroutine, killing a
// script still running.
func (t *scriptTracker) stop() {
	if t.cancel == nil {
		return
	}
	t.cancel()
	<-t.done
}

// result returns the current state.
func (t *scriptTracker) result() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ok
}

// run checks until ctx is done.
func (t *scriptTracker) run(ctx context.Context) {
	ticker := time.NewTicker(t.cfg.Interval)
	defer ticker.Stop()
	fails, passes := 0, 0
	for {
		err := t.runner.run(ctx, t.argv, t.cred, t.cfg.Timeout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			passes, fails = passes+1, 0
		} else {
			fails, passes = fails+1, 0
			t.log.Debug("track script failed", "err", err)
		}
		t.mu.Lock()
		changed := false
		if t.ok && fails >= t.cfg.Fall {
			t.ok, changed = false, true
		} else if !t.ok && passes >= t.cfg.Rise {
			t.ok, changed = true, true
		}
		ok := t.ok
		var notify []func(bool)
		if changed {
			for _, f := range t.listeners {
				notify = append(notify, f)
			}
		}
		t.mu.Unlock()
		if changed {
			if ok {
				t.log.Info("track script succeeded", "rise", t.cfg.Rise)
			} else {
				t.log.Warn("track script failed", "fall", t.cfg.Fall, "err", err)
			}
			for _, f := range notify {
				f(ok)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
