package broker

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/mirror"
)

// Maintenance mode, as RabbitMQ 3.8+ has it (rabbitmq-upgrade drain and
// revive): a draining node stops accepting client connections, closes
// those it has so that load balancers and clients move them elsewhere,
// and hands the leadership of its mirrored queues to in-sync mirrors on
// other nodes. It keeps serving the cluster: its mirrors, the queue
// links, Raft. Revive lets clients in again; so does a restart.

// Drain puts the node into maintenance. It returns the mirrored queues
// it still leads: those with no in-sync mirror on a running node, which
// would lose messages if moved (and those whose move did not commit).
func (s *Server) Drain(ctx context.Context) (kept []meta.Queue, err error) {
	s.mu.Lock()
	s.draining = true
	ls := s.listeners
	s.listeners = nil
	for _, l := range ls {
		s.suspended[l] = true
	}
	conns := s.connList()
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	s.log.Warn("maintenance: this node no longer serves clients; handing its mirrored queues over")
	for _, c := range conns {
		c.shutdown(connErr(codeConnectionForced, "Node was put into maintenance mode"))
	}
	if !s.metaSet.Load() {
		return nil, errStarting
	}
	return s.handOffAll(ctx, "maintenance"), nil
}

// handOffAll hands each mirrored queue this node leads to an in-sync
// mirror on a running node, and returns those it still leads. why
// prefixes what it logs.
func (s *Server) handOffAll(ctx context.Context, why string) (kept []meta.Queue) {
	down := map[string]bool{s.cfg.NodeName: true}
	for _, n := range s.Unreachable() {
		down[n] = true
	}
	var members []string
	for _, m := range s.meta.Members() {
		members = append(members, m.ID)
	}
	c := mirror.Cluster{Members: members, Running: func(n string) bool { return !down[n] }}
	for _, q := range s.localQueues("") {
		if q.repl.Load() == nil {
			continue
		}
		def, ok := s.meta.Queue(q.VHost, q.Name)
		if !ok || !s.homedHere(def) {
			continue
		}
		if err := s.handOff(ctx, def, c, why); err != nil {
			s.log.Warn(why+": a mirrored queue stays led from this node", "queue", def.Name, "vhost", def.VHost, "reason", err)
			kept = append(kept, def)
		}
	}
	return kept
}

// closeHandOffWait bounds how long a stopping node spends handing its
// mirrored queues over: a node cut off from the majority cannot, and
// stops anyway.
const closeHandOffWait = 5 * time.Second

// errNoMirrorToLead: no mirror may take a queue over.
var errNoMirrorToLead = errors.New("no in-sync mirror on a running node to take over")

// handOff commits an in-sync mirror of q as its leader, as a node that
// stops does (ha-promote-on-shutdown applies).
func (s *Server) handOff(ctx context.Context, q meta.Queue, c mirror.Cluster, why string) error {
	cur := s.placementOf(q)
	next, out := mirror.Failover(s.mirrorPolicy(q), cur, c, true)
	if out == mirror.Unavailable {
		return errNoMirrorToLead
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.setPlacement(cctx, q, cur, next); err != nil {
		return err
	}
	if out == mirror.PromotedUnsynced {
		s.log.Warn(why+": handed a mirrored queue to a mirror that was not in sync, as ha-promote-on-shutdown allows; messages it lacked are lost",
			"queue", q.Name, "vhost", q.VHost, "leader", next.Leader)
	} else {
		s.log.Info(why+": handed a mirrored queue to an in-sync mirror", "queue", q.Name, "vhost", q.VHost, "leader", next.Leader, "epoch", next.Epoch)
	}
	return nil
}

// Revive takes the node out of maintenance; the caller serves client
// listeners again.
func (s *Server) Revive() {
	s.mu.Lock()
	s.draining = false
	s.mu.Unlock()
	s.log.Info("maintenance: this node serves clients again")
}

// Draining reports whether the node is in maintenance.
func (s *Server) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// suspendedListener reports whether l was closed by Drain, and forgets
// it: its serve loop ends without an error.
func (s *Server) suspendedListener(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.suspended[l] {
		delete(s.suspended, l)
		return true
	}
	return false
}
