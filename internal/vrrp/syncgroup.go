package vrrp

import (
	"sync"
)

// syncGroup ties the instances of a vrrp_sync_group together, as keepalived
// does, so that for example an internal and an external address always sit
// on the same machine:
//
//   - a fault in one member puts them all in FAULT;
//   - a member leaving MASTER for BACKUP (it heard a better master) takes
//     the others to BACKUP with it, handing over with priority 0;
//   - a member whose master down timer runs out does not take over alone:
//     the group goes MASTER when every member is ready (keepalived prefers
//     a group in BACKUP to a split one), and a member entering MASTER takes
//     the others' backups with it;
//   - the group's notify scripts run when the state of the group as a whole
//     changes (all MASTER, any FAULT, any BACKUP, all STOP).
//
// The decisions are the members' Machines'; the group only carries the
// EventSyncMaster and EventSyncBackup events between them. Its methods are
// called from the member instances' goroutines and never block on them: an
// event waits in pending and the member is woken through its syncCh.
type syncGroup struct {
	cfg    *SyncGroupConfig
	notify *notifier

	mu       sync.Mutex
	members  []*instance         // set before the instances start
	ownFault map[*instance]bool  // guarded by mu
	states   map[*instance]State // guarded by mu
	ready    map[*instance]bool  // guarded by mu; MASTER or wanting it
	pending  map[*instance]Event // guarded by mu; the next sync event of each member
	state    State               // guarded by mu; the group's state
}

func newSyncGroup(cfg *SyncGroupConfig, n *notifier) *syncGroup {
	return &syncGroup{cfg: cfg, notify: n, ownFault: map[*instance]bool{}, states: map[*instance]State{},
		ready: map[*instance]bool{}, pending: map[*instance]Event{}}
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

// setReady records whether a member is MASTER or wants to be. When every
// member is, the members not yet MASTER are told to go.
func (g *syncGroup) setReady(in *instance, ready bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ready[in] == ready {
		return
	}
	g.ready[in] = ready
	if !ready {
		return
	}
	for _, m := range g.members {
		if !g.ready[m] {
			return
		}
	}
	in.log.Info("sync group ready: all members go MASTER", "group", g.cfg.Name)
	for _, m := range g.members {
		if g.states[m] != StateMaster {
			g.post(m, EventSyncMaster)
		}
	}
}

// post queues ev for member m and wakes it; a later event replaces an
// earlier one not yet taken. g.mu must be held.
func (g *syncGroup) post(m *instance, kind EventKind) {
	g.pending[m] = Event{Kind: kind}
	select {
	case m.syncCh <- struct{}{}:
	default:
	}
}

// take returns the sync event waiting for member in, if any.
func (g *syncGroup) take(in *instance) (Event, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ev, ok := g.pending[in]
	delete(g.pending, in)
	return ev, ok
}

// memberState records a member's transition, takes the other members along
// when it entered MASTER or left it for BACKUP, and runs the group's notify
// scripts when the group's state changes.
func (g *syncGroup) memberState(in *instance, from, to State) {
	g.mu.Lock()
	g.states[in] = to
	if to != StateMaster {
		g.ready[in] = false
	}
	var follow EventKind = -1
	switch {
	case to == StateMaster:
		follow = EventSyncMaster
	case from == StateMaster && to == StateBackup:
		follow = EventSyncBackup
	}
	for _, m := range g.members {
		if m == in {
			continue
		}
		switch {
		case follow == EventSyncMaster && g.states[m] == StateBackup:
			g.post(m, EventSyncMaster)
		case follow == EventSyncBackup && g.states[m] == StateMaster:
			g.post(m, EventSyncBackup)
		}
	}
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
	// keepalived passes priority 0 to a group's generic notify script: a
	// group has no priority of its own.
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
