package meta

import (
	"time"

	"github.com/hashicorp/raft"
)

// watchPeers runs while the node is open. Whenever this node leads, a
// member whose heartbeats have failed for cfg.PeerDownAfter is reported
// once through cfg.PeerDown, so that the leader alone commits the
// consequences; a member that answers again may be reported again later.
func (n *Node) watchPeers(obs <-chan raft.Observation, stop <-chan struct{}) {
	after := n.cfg.PeerDownAfter
	failing := map[raft.ServerID]time.Time{} // since when heartbeats fail
	reported := map[raft.ServerID]bool{}
	tick := time.NewTicker(after / 4)
	defer tick.Stop()
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
					failing[d.PeerID] = since
				}
			case raft.ResumedHeartbeatObservation:
				delete(failing, d.PeerID)
				delete(reported, d.PeerID)
			case raft.LeaderObservation:
				clear(failing)
				clear(reported)
			}
		case now := <-tick.C:
			if n.raft.State() != raft.Leader {
				continue
			}
			for id, since := range failing {
				if reported[id] || now.Sub(since) < after {
					continue
				}
				reported[id] = true
				n.cfg.PeerDown(n, string(id))
			}
		}
	}
}
