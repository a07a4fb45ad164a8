package main

import (
	"context"
	"time"

	"github.com/warren-mq/warren/internal/cluster"
)

// pauseAfter is how long a node must have been cut off from the majority
// before pause_minority pauses it: longer than an election, so that a
// change of leader does not pause anyone.
const pauseAfter = 3 * time.Second

// pausedNode remembers, while pause_minority has paused this node, the
// disc nodes to count when deciding to resume.
type pausedNode struct {
	voters    []cluster.Peer // every disc node but this one
	selfVoter bool
}

// watchPartitions applies cluster_partition_handling = pause_minority
// until ctx ends: a node that cannot see a majority of the disc nodes
// stops its app, closing AMQP and HTTP so that load balancers' health
// checks take it out and clients reconnect elsewhere, and starts it again
// once a majority answers on the cluster port. An operator's stop_app or
// start_app meanwhile takes precedence.
func (a *app) watchPartitions(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var cutSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if p := a.paused.Load(); p != nil {
			if a.majorityAnswers(ctx, p) {
				a.resume(ctx, p)
			}
			continue
		}
		m := a.meta.Load()
		if a.running.Load() == nil || m == nil || len(m.Members()) < 2 || m.InMajority() {
			cutSince = time.Time{}
			continue
		}
		if cutSince.IsZero() {
			cutSince = time.Now()
			continue
		}
		if time.Since(cutSince) < pauseAfter {
			continue
		}
		cutSince = time.Time{}
		p := &pausedNode{}
		for _, mem := range m.Members() {
			switch {
			case mem.ID == a.cfg.NodeName:
				p.selfVoter = mem.Voter
			case mem.Voter:
				p.voters = append(p.voters, cluster.Peer{Name: mem.ID, Addr: mem.Addr})
			}
		}
		a.pause(ctx, p)
	}
}

func (a *app) pause(ctx context.Context, p *pausedNode) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running.Load() == nil {
		return
	}
	a.log.Warn("pause_minority: this node cannot reach a majority of the cluster's disc nodes; pausing (AMQP and HTTP closed) until it can")
	if err := a.stopLocked(ctx); err != nil {
		a.log.Error("pause_minority: stop app", "error", err)
	}
	a.paused.Store(p)
}

func (a *app) resume(ctx context.Context, p *pausedNode) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paused.Load() != p {
		return
	}
	a.log.Info("pause_minority: a majority of the disc nodes answers again; resuming")
	if err := a.startLocked(ctx); err != nil {
		a.log.Error("pause_minority: start app", "error", err)
		return
	}
	a.paused.Store(nil)
}

// majorityAnswers reports whether more than half of the disc nodes
// (counting this one if it is one) complete the cluster handshake.
func (a *app) majorityAnswers(ctx context.Context, p *pausedNode) bool {
	up, all := 0, len(p.voters)
	if p.selfVoter {
		up, all = 1, all+1
	}
	for _, v := range p.voters {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		nc, err := a.id.Dial(cctx, v.Addr, cluster.ServiceCtl)
		cancel()
		if err == nil {
			nc.Close()
			up++
		}
	}
	return 2*up > all
}
