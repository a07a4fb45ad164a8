package vrrp

import (
	"context"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// scriptTracker runs one vrrp_script on its interval and reports when its
// result changes after fall failures or rise successes in a row.
type scriptTracker struct {
	cfg    *ScriptConfig
	argv   []string
	cred   *syscall.Credential
	runner *scriptRunner
	log    *slog.Logger

	mu        sync.Mutex
	ok        bool // guarded by mu
	listeners []func(ok bool)
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
		log: log.With("script", cfg.Name)}, nil
}

// subscribe registers f to be called (from the tracker's goroutine) on
// every change. Call before run starts.
func (t *scriptTracker) subscribe(f func(ok bool)) { t.listeners = append(t.listeners, f) }

// result returns the current state.
func (t *scriptTracker) result() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ok
}

// run checks until ctx is done. It is started and waited for by the daemon.
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
		t.mu.Unlock()
		if changed {
			if ok {
				t.log.Info("track script succeeded", "rise", t.cfg.Rise)
			} else {
				t.log.Warn("track script failed", "fall", t.cfg.Fall, "err", err)
			}
			for _, f := range t.listeners {
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
