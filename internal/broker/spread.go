package broker

import (
	"context"
	"time"

	"github.com/warren-mq/warren/internal/meta"
)

// spreadWait bounds how long a definition change waits for another member
// to apply it, and how long that member waits to have applied it.
const spreadWait = time.Second

// spreadRetry is how often a member that did not answer in time is asked
// again, in the background, before changes wait for it again.
const spreadRetry = time.Second

// spread waits until every other running member has applied this node's
// definitions so far, so that a client may use a queue, exchange or
// binding through any node as soon as its declare is answered: RabbitMQ
// answers a declare once every running node has the change. Without it a
// follower learns of a change only after writing the next log entry to
// its disk, and a publish made through it at once finds no queue.
//
// A member that does not answer within spreadWait is taken for
// unreachable: later changes do not wait for it until it answers again.
func (s *Server) spread(defs *meta.Node) {
	// Changes made while the node opens (a lost node's queues removed)
	// have nobody waiting for them.
	if s.cfg.DialPeer == nil || !s.metaSet.Load() {
		return
	}
	index := defs.Applied()
	var others []string
	for _, node := range s.otherMembers(defs) {
		if _, lagging := s.lagging.Load(node); !lagging {
			others = append(others, node)
		}
	}
	if len(others) == 0 {
		return
	}
	applied, ok := s.fanOut(others, spreadWait, func(node string) bool {
		return s.awaitApplied(node, index) == nil
	})
	if !ok {
		return
	}
	for _, node := range others {
		if !applied[node] {
			s.lagBehind(node)
		}
	}
}

// awaitApplied asks node to answer once it has applied index.
func (s *Server) awaitApplied(node string, index uint64) error {
	link, err := s.peerLink(node)
	if err != nil {
		return err
	}
	r, err := link.call(opAwait, func(w *frameWriter) { w.uint(index) })
	if err != nil {
		return err
	}
	return r.error()
}

// lagBehind takes node out of spread's waits, and asks it in the
// background, every spreadRetry, until it answers in time again.
func (s *Server) lagBehind(node string) {
	if _, already := s.lagging.LoadOrStore(node, struct{}{}); already {
		return
	}
	s.log.Info("definition changes no longer wait for a node that did not answer", "node", node)
	started := s.goLink(func() {
		defer s.lagging.Delete(node)
		t := time.NewTicker(spreadRetry)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			if !s.isMember(node) {
				return
			}
			// One that answers has applied within spreadWait, as spread
			// needs.
			if s.awaitApplied(node, s.meta.Applied()) == nil {
				s.log.Info("definition changes wait for a node again", "node", node)
				return
			}
		}
	})
	if !started {
		s.lagging.Delete(node)
	}
}

// isMember reports whether node is a member of the cluster.
func (s *Server) isMember(node string) bool {
	for _, m := range s.meta.Members() {
		if m.ID == node {
			return true
		}
	}
	return false
}

// answerAwait answers an opAwait request once this node has applied
// index, or with an error after spreadWait.
func (s *Server) answerAwait(index uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), spreadWait)
	defer cancel()
	return s.meta.WaitApplied(ctx, index)
}
