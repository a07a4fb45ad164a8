package broker

import (
	"context"
	"time"
)

// The confirm lease. A mirrored queue's leader confirms only while this
// node holds a lease: it has lately caught up with everything the meta
// majority had committed (meta.Node.Confirm). A leader that was frozen or
// cut off, and replaced meanwhile, may not have heard of its
// replacement; if its in-sync set was empty it would otherwise confirm
// alone, and lose those messages when it learns. Its lease runs out
// first: the meta leader replaces a node only after NodeDownAfter without
// heartbeats (5 s), and a lease lasts leaseFor from when the node asked,
// which was before its last heartbeat. A meta leader that was deposed is
// replaced leaseFor + 1 s after the election instead: it renewed its
// lease only while a majority answered it in its term, which ended
// before the election did. A node whose process died is replaced at
// once, but it confirms nothing any more.

// Lease timing: how long a lease lasts from the moment it was asked for,
// and how often it is renewed.
const (
	leaseFor   = 2 * time.Second
	leaseEvery = 250 * time.Millisecond
)

// leaseValid reports whether this node may confirm for mirrored queues
// now. A node without a cluster always may.
func (s *Server) leaseValid() bool {
	if s.cfg.Network == nil {
		return true
	}
	return time.Since(s.clock0) < time.Duration(s.leaseUntil.Load())
}

// runLease renews the lease until stop closes, and tells the mirrored
// queues when it was out and is back, so that what waited is confirmed.
func (s *Server) runLease(stop <-chan struct{}) {
	t := time.NewTicker(leaseEvery)
	defer t.Stop()
	for {
		asked := time.Since(s.clock0)
		ctx, cancel := context.WithTimeout(context.Background(), leaseFor)
		err := s.meta.Confirm(ctx)
		cancel()
		if err == nil {
			was := s.leaseValid()
			s.leaseUntil.Store(int64(asked + leaseFor))
			if !was {
				for _, q := range s.localQueues("") {
					if lg := q.repl.Load(); lg != nil {
						lg.recheck()
					}
				}
			}
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
