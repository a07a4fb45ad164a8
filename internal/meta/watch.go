package meta

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// probeTimeout bounds the check that a member whose heartbeats fail
// still has a process behind its cluster port.
const probeTimeout = 500 * time.Millisecond

// watchPeers runs while the node is open. Whenever this node leads, a
// member whose heartbeats have failed for cfg.PeerDownAfter is reported
// once through cfg.PeerDown, so that the leader alone commits the
// consequences; a member that answers again may be reported again later.
//
// A member whose cluster port refuses connections has no process behind
// it (it crashed, or is stopping): it is reported as soon as its first
// heartbeat fails, as RabbitMQ learns of a dead node at once from its
// closed connections. A member that is frozen or cut off still waits out
// PeerDownAfter.
func (n *Node) watchPeers(obs <-chan raft.Observation, stop <-chan struct{}) {
	after := n.cfg.PeerDownAfter
	failing := map[raft.ServerID]time.Time{} // since when heartbeats fail
	reported := map[raft.ServerID]bool{}
	// A node elected in place of a leader that went silent counts that
	// member's failing heartbeats as if they had begun DeposedDownAfter
	// before PeerDownAfter ends from the election (see Config).
	var prevLeader raft.ServerID
	silentSince := map[raft.ServerID]time.Time{}
	head := after - n.cfg.DeposedDownAfter
	if n.cfg.DeposedDownAfter <= 0 || head <= 0 {
		head = 0
	}
	probing := map[raft.ServerID]bool{}
	refused := make(chan raft.ServerID)
	probed := make(chan raft.ServerID)
	var probes sync.WaitGroup
	defer probes.Wait()
	tick := time.NewTicker(after / 4)
	defer tick.Stop()
	report := func(id raft.ServerID) {
		if n.raft.State() != raft.Leader || reported[id] {
			return
		}
		reported[id] = true
		n.cfg.PeerDown(n, string(id))
	}
	for {
		select {
		case <-stop:
			return
		case o := <-obs:
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				if _, ok := failing[d.PeerID]; !ok {
					since := d.LastContact
					if since.IsZero() {
						since = time.Now()
					}
					if s, ok := silentSince[d.PeerID]; ok && s.Before(since) {
						since = s
					}
					failing[d.PeerID] = since
				}
				if !probing[d.PeerID] && !reported[d.PeerID] {
					if addr := n.addressOf(d.PeerID); addr != "" {
						probing[d.PeerID] = true
						probes.Add(1)
						go func(id raft.ServerID) {
							defer probes.Done()
							out := probed
							if portRefuses(addr) {
								out = refused
							}
							select {
							case out <- id:
							case <-stop:
							}
						}(d.PeerID)
					}
				}
			case raft.ResumedHeartbeatObservation:
				delete(failing, d.PeerID)
				delete(reported, d.PeerID)
			case raft.LeaderObservation:
				clear(failing)
				clear(reported)
				clear(silentSince)
				if d.LeaderID == "" {
					break
				}
				if d.LeaderID == raft.ServerID(n.cfg.NodeID) && prevLeader != "" && prevLeader != d.LeaderID && head > 0 {
					silentSince[prevLeader] = time.Now().Add(-head)
				}
				prevLeader = d.LeaderID
			}
		case id := <-refused:
			delete(probing, id)
			if _, ok := failing[id]; ok {
				report(id)
			}
		case id := <-probed:
			delete(probing, id)
		case now := <-tick.C:
			for id, since := range failing {
				if now.Sub(since) >= after {
					report(id)
				}
			}
		}
	}
}

// addressOf is a member's cluster address, or "" if it is not one.
func (n *Node) addressOf(id raft.ServerID) string {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return ""
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == id {
			return string(s.Address)
		}
	}
	return ""
}

// portRefuses reports whether addr's host answers that nothing listens
// on its port.
func portRefuses(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
