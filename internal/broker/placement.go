package broker

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/mirror"
	"github.com/warren-mq/warren/internal/policy"
)

// placeEvery is how often the placer looks at every queue, while some
// policy mirrors queues, even when nothing told it to: members come and
// go without a definitions change.
const placeEvery = 2 * time.Second

// mirrorPolicy is what a queue's effective policy says about mirroring.
// Exclusive queues are never mirrored, as in RabbitMQ.
func (s *Server) mirrorPolicy(q meta.Queue) mirror.Policy {
	if q.Exclusive {
		return mirror.Policy{}
	}
	pol, op := policy.Match(s.policies(q.VHost), policy.Queues, q.Name)
	return mirror.FromDefinition(policy.Definition(pol, op))
}

// placementOf is a queue's committed placement.
func (s *Server) placementOf(q meta.Queue) mirror.Placement {
	pl := mirror.Placement{Leader: s.nodeOf(q)}
	if m := q.Mirroring; m != nil {
		pl.Mirrors, pl.InSync, pl.Epoch, pl.Version = m.Mirrors, m.InSync, m.Epoch, m.Version
	}
	return pl
}

// setPlacement commits next as the placement that replaces cur.
func (s *Server) setPlacement(ctx context.Context, q meta.Queue, cur, next mirror.Placement) error {
	_, err := s.meta.SetPlacement(ctx, meta.Placement{
		VHost: q.VHost, Name: q.Name, Expect: cur.Version, Leader: next.Leader,
		Mirroring: meta.Mirroring{Mirrors: next.Mirrors, InSync: next.InSync, Epoch: next.Epoch, Version: next.Version},
	})
	return err
}

// placeSoon asks the placer to look at every queue now: a policy,
// a queue or the members changed.
func (s *Server) placeSoon() {
	select {
	case s.placeNow <- struct{}{}:
	default:
	}
}

// runPlacer keeps the placements of mirrored queues in line with their
// policies and the cluster's members, while this node leads the meta
// group: the leader alone decides, so that two nodes never race to place
// the same queue (and if they did, the version check refuses one).
func (s *Server) runPlacer(stop <-chan struct{}) {
	t := time.NewTicker(placeEvery)
	defer t.Stop()
	var wasDown map[string]bool
	for {
		select {
		case <-stop:
			return
		case <-s.placeNow:
		case <-t.C:
			if !s.mirroring() {
				continue
			}
		}
		if s.meta.Leader() != s.cfg.NodeName {
			wasDown = nil
			continue
		}
		wasDown = s.placeAll(stop, wasDown)
	}
}

// mirroring reports whether any policy sets ha-mode: without one, only
// a change (which pokes placeNow) can need a placement.
func (s *Server) mirroring() bool {
	for _, p := range s.meta.Policies("") {
		if _, ok := p.Definition["ha-mode"]; ok {
			return true
		}
	}
	return false
}

// placeAll reconciles every queue's placement once. A member counts as
// stopped only when this node has failed to reach it on two passes in a
// row, so that a blip does not move mirrors; it returns the members it
// could not reach this time.
func (s *Server) placeAll(stop <-chan struct{}, wasDown map[string]bool) map[string]bool {
	down := map[string]bool{}
	for _, n := range s.Unreachable() {
		down[n] = true
	}
	var members []string
	for _, m := range s.meta.Members() {
		members = append(members, m.ID)
	}
	queues := s.meta.Snapshot().Queues
	load := map[string]int{}
	for _, q := range queues {
		pl := s.placementOf(q)
		load[pl.Leader]++
		for _, n := range pl.Mirrors {
			load[n]++
		}
	}
	c := mirror.Cluster{
		Members: members,
		Running: func(n string) bool { return !down[n] || !wasDown[n] },
		Load:    load,
	}
	for _, q := range queues {
		select {
		case <-stop:
			return down
		default:
		}
		p := s.mirrorPolicy(q)
		if !p.Mirrored() && q.Mirroring == nil {
			continue
		}
		cur := s.placementOf(q)
		next, changed := mirror.Reconcile(p, cur, c)
		if !changed {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.setPlacement(ctx, q, cur, next)
		cancel()
		if err != nil {
			if !errors.Is(err, meta.ErrStale) && !errors.Is(err, meta.ErrNotFound) {
				s.log.Warn("cannot place a mirrored queue", "queue", q.Name, "vhost", q.VHost, "error", err)
			}
			continue
		}
		for _, n := range next.Mirrors {
			if !slices.Contains(cur.Mirrors, n) {
				load[n]++
				s.log.Info("mirrored queue: adding a mirror", "queue", q.Name, "vhost", q.VHost, "node", n)
			}
		}
		for _, n := range cur.Mirrors {
			if !slices.Contains(next.Mirrors, n) {
				load[n]--
				s.log.Info("mirrored queue: removing a mirror", "queue", q.Name, "vhost", q.VHost, "node", n)
			}
		}
		if next.Leader != cur.Leader {
			s.log.Info("mirrored queue: leader moved", "queue", q.Name, "vhost", q.VHost, "from", cur.Leader, "to", next.Leader, "epoch", next.Epoch)
		}
	}
	return down
}

// failOver gives the mirrored queues led from a node that is down a new
// leader, on the meta leader: the oldest running in-sync mirror, or a
// mirror out of sync where the policy consents (logged with what it
// loses). A queue with neither stays where it is, unavailable, and the
// log says so.
func (s *Server) failOver(m *meta.Node, node string) {
	var members []string
	for _, mb := range m.Members() {
		members = append(members, mb.ID)
	}
	c := mirror.Cluster{Members: members, Running: func(n string) bool { return n != node }}
	for _, q := range m.Snapshot().Queues {
		if s.nodeOf(q) != node || q.Mirroring == nil || len(q.Mirroring.Mirrors) == 0 {
			continue
		}
		p := s.mirrorPolicy(q)
		cur := s.placementOf(q)
		next, out := mirror.Failover(p, cur, c, false)
		if out == mirror.Unavailable {
			s.log.Warn("mirrored queue: its leader's node is down and no mirror in sync can take over; the queue waits for one to return",
				"queue", q.Name, "vhost", q.VHost, "node", node, "mirrors", cur.Mirrors, "in_sync", cur.InSync)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.setPlacement(ctx, q, cur, next)
		cancel()
		if err != nil {
			s.log.Warn("mirrored queue: cannot commit a new leader", "queue", q.Name, "vhost", q.VHost, "error", err)
			continue
		}
		if out == mirror.PromotedUnsynced {
			s.log.Warn("mirrored queue: promoted a mirror that was not in sync, as ha-promote-on-failure allows; messages it lacked are lost",
				"queue", q.Name, "vhost", q.VHost, "leader", next.Leader, "epoch", next.Epoch)
		} else {
			s.log.Info("mirrored queue: promoted an in-sync mirror", "queue", q.Name, "vhost", q.VHost, "leader", next.Leader, "epoch", next.Epoch)
		}
	}
}

// MirrorSyncCritical lists the mirrored queues led from this node that
// have no in-sync mirror on a running node: stopping this node would take
// away their only up-to-date copy. Exclusive queues, never mirrored, are
// left out, as in RabbitMQ's check.
func (s *Server) MirrorSyncCritical() []meta.Queue {
	down := map[string]bool{}
	for _, n := range s.Unreachable() {
		down[n] = true
	}
	c := mirror.Cluster{Running: func(n string) bool { return !down[n] }}
	var out []meta.Queue
	for _, q := range s.meta.Snapshot().Queues {
		if !s.homedHere(q) || q.Exclusive || !s.mirrorPolicy(q).Mirrored() {
			continue
		}
		if mirror.Critical(s.placementOf(q), s.cfg.NodeName, c) {
			out = append(out, q)
		}
	}
	return out
}
