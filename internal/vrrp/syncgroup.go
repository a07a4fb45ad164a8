package vrrp

import (
	"sync"
)

// syncGroup ties the instances of a vrrp_sync_group: a fault in one puts
// them all in FAULT, and the group's notify scripts run when the state of
// the group as a whole changes (all MASTER, any FAULT, any BACKUP, all STOP).
// Its methods are called from the member instances' goroutines.
type syncGroup struct {
	cfg    *SyncGroupConfig
	notify *notifier

	mu       sync.Mutex
	members  []*instance         // set before the instances start
	ownFault map[*instance]bool  // guarded by mu
	states   map[*instance]State // guarded by mu
	state    State               // guarded by mu; the group's state
}

func newSyncGroup(cfg *SyncGroupConfig, n *notifier) *syncGroup {
	return &syncGroup{cfg: cfg, notify: n, ownFault: map[*instance]bool{}, states: map[*instance]State{}}
}

// setFault records a member's own fault and returns whether another member
// is faulty. A change wakes the other members so they re-read.
func (g *syncGroup) setFault(in *instance, fault bool) (othersFaulty bool) {
	g.mu.Lock()
	changed := g.ownFault[in] != fault
	g.ownFault[in] = fault
	for m, f := range g.ownFault {
		if m != in && f {
			othersFaulty = true
		}
	}
	g.mu.Unlock()
	if changed {
		for _, m := range g.members {
			if m != in {
				m.trackChanged()
			}
		}
	}
	return othersFaulty
}

// memberState records a member's new state and runs the group's notify
// scripts when the group's state changes.
func (g *syncGroup) memberState(in *instance, s State, prio uint8) {
	g.mu.Lock()
	g.states[in] = s
	all := func(want State) bool {
		for _, m := range g.members {
			if g.states[m] != want {
				return false
			}
		}
		return true
	}
	any := func(want State) bool {
		for _, m := range g.members {
			if g.states[m] == want {
				return true
			}
		}
		return false
	}
	next := g.state
	switch {
	case any(StateFault):
		next = StateFault
	case all(StateMaster):
		next = StateMaster
	case all(StateStop):
		next = StateStop
	case any(StateBackup):
		next = StateBackup
	}
	changed := next != g.state
	g.state = next
	g.mu.Unlock()
	if !changed {
		return
	}
	in.log.Info("sync group entering "+next.String()+" state", "group", g.cfg.Name)
	g.notify.run("group "+g.cfg.Name, []string{notifyFor(g.cfg.Notify, next), g.cfg.Notify.Any},
		[][]string{nil, {"GROUP", g.cfg.Name, next.String(), "0"}})
}

// notifyFor returns the state-specific notify script.
func notifyFor(n Notify, s State) string {
	switch s {
	case StateMaster:
		return n.Master
	case StateBackup:
		return n.Backup
	case StateFault:
		return n.Fault
	case StateStop:
		return n.Stop
	}
	return ""
}
