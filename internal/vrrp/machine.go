package vrrp

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// State is a VRRP instance state, named as keepalived names them.
type State int

// Instance states.
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
	StateStop
)

func (s State) String() string {
	switch s {
	case StateInit:
		return "INIT"
	case StateBackup:
		return "BACKUP"
	case StateMaster:
		return "MASTER"
	case StateFault:
		return "FAULT"
	case StateStop:
		return "STOP"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MachineConfig is what the state machine needs to know about an instance.
type MachineConfig struct {
	VRID     uint8
	Version  int           // 2 or 3
	Priority uint8         // base priority, 1..255 (255: address owner)
	Interval time.Duration // our advertisement interval
	// NoPreempt keeps a backup from taking over from a lower-priority master.
	NoPreempt bool
	// PreemptDelay is the time after start during which a lower-priority
	// master is followed rather than preempted.
	PreemptDelay time.Duration
	// LocalAddr is our primary address, used to break priority ties.
	LocalAddr netip.Addr
	// Sync marks a member of a vrrp_sync_group: when its master down timer
	// runs out it only asks to become master (ActWantMaster) and waits for
	// EventSyncMaster, which the group sends once every member wants
	// MASTER, so the members' addresses always sit on one machine.
	Sync bool
}

// EventKind says what happened to a Machine.
type EventKind int

// Events a Machine reacts to.
const (
	EventStart EventKind = iota
	EventTick
	EventAdvert
	EventPriority // a track script changed the effective priority
	EventFault    // the instance must leave service (tracked interface or script down)
	EventFaultClear
	EventStop
	// EventSyncMaster: the sync group goes MASTER; a backup member follows.
	EventSyncMaster
	// EventSyncBackup: another member of the sync group left MASTER for
	// BACKUP; a master member follows, handing over at once (priority 0).
	EventSyncBackup
)

// Event is one input to Machine.Step.
type Event struct {
	Kind EventKind
	// From, Priority and Interval describe a received, already validated advert.
	From     netip.Addr
	Priority uint8
	Interval time.Duration
}

// ActionKind says what the owner of a Machine must do.
type ActionKind int

// Actions a Machine asks for, in the order they must be carried out.
const (
	ActSendAdvert  ActionKind = iota // send one advert with Action.Priority
	ActAddVIPs                       // put the virtual addresses on the interface
	ActRemoveVIPs                    // take them off
	ActGARP                          // announce the addresses (gratuitous ARP / NA)
	ActTransition                    // state changed from Action.From to Action.To
	ActOtherMaster                   // another master was seen (Action.Peer)
	ActWantMaster                    // a sync group member's master down timer ran out
)

// Action is one output of Machine.Step.
type Action struct {
	Kind     ActionKind
	Priority uint8
	From, To State
	Peer     netip.Addr
	PeerPrio uint8
}

func (a Action) String() string {
	switch a.Kind {
	case ActSendAdvert:
		return fmt.Sprintf("send prio=%d", a.Priority)
	case ActAddVIPs:
		return "add-vips"
	case ActRemoveVIPs:
		return "remove-vips"
	case ActGARP:
		return "garp"
	case ActTransition:
		return fmt.Sprintf("transition %s->%s", a.From, a.To)
	case ActOtherMaster:
		return fmt.Sprintf("other-master %s prio=%d", a.Peer, a.PeerPrio)
	case ActWantMaster:
		return "want-master"
	}
	return fmt.Sprintf("ActionKind(%d)", int(a.Kind))
}

// Machine is the VRRP state machine of one instance (RFC 3768 / RFC 5798 with
// keepalived's choices). It does no I/O and reads no clock: time is the
// duration since an arbitrary origin, passed with every event. A Machine is
// not safe for concurrent use; its owner serialises calls to Step.
type Machine struct {
	cfg      MachineConfig
	state    State
	priority uint8 // effective priority
	fault    bool
	// wantMaster: a sync group member whose master down timer ran out,
	// waiting for the rest of the group.
	wantMaster bool

	masterDownAt time.Duration // backup: when the master is declared dead
	advertAt     time.Duration // master: when the next advert is due
	startedAt    time.Duration // when EventStart arrived, for preempt_delay

	masterAddr     netip.Addr
	masterPrio     uint8
	masterInterval time.Duration
}

// NewMachine returns a Machine in StateInit.
func NewMachine(cfg MachineConfig) *Machine {
	return &Machine{cfg: cfg, priority: cfg.Priority, masterInterval: cfg.Interval}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Priority returns the effective priority.
func (m *Machine) Priority() uint8 { return m.priority }

// Master returns the address and priority of the master last heard, or our
// own when we are master.
func (m *Machine) Master() (netip.Addr, uint8) {
	if m.state == StateMaster {
		return m.cfg.LocalAddr, m.priority
	}
	return m.masterAddr, m.masterPrio
}

// WantMaster reports whether a sync group member in BACKUP is ready to
// become master: its master down timer ran out and no master has been heard
// since.
func (m *Machine) WantMaster() bool { return m.wantMaster && m.state == StateBackup }

// Deadline returns when the next EventTick is due, and false when no timer runs.
func (m *Machine) Deadline() (time.Duration, bool) {
	switch m.state {
	case StateBackup:
		return m.masterDownAt, true
	case StateMaster:
		return m.advertAt, true
	}
	return 0, false
}

// skew is the skew time for priority p and the master's advert interval.
func (m *Machine) skew() time.Duration {
	if m.cfg.Version == 2 {
		return time.Duration(256-int(m.priority)) * time.Second / 256
	}
	return time.Duration(256-int(m.priority)) * m.masterInterval / 256
}

// MasterDownInterval is 3 × the master's advert interval plus the skew time.
func (m *Machine) MasterDownInterval() time.Duration {
	return 3*m.masterInterval + m.skew()
}

// Step applies ev at time now and returns the actions to carry out, in order.
func (m *Machine) Step(now time.Duration, ev Event) []Action {
	var out []Action
	switch ev.Kind {
	case EventStart:
		if m.state != StateInit {
			return nil
		}
		m.startedAt = now
		switch {
		case m.fault:
			out = m.toFault(out)
		case m.priority == PriorityOwner:
			out = m.toMaster(now, out)
		default:
			out = m.toBackup(now, m.cfg.Interval, out)
		}
	case EventTick:
		out = m.tick(now, out)
	case EventAdvert:
		out = m.advert(now, ev, out)
	case EventPriority:
		m.priority = ev.Priority
		if m.state == StateMaster {
			// Tell the group at once so a better backup can preempt.
			out = append(out, Action{Kind: ActSendAdvert, Priority: m.priority})
			m.advertAt = now + m.cfg.Interval
		}
	case EventFault:
		m.fault = true
		if m.state != StateInit && m.state != StateStop && m.state != StateFault {
			out = m.toFault(out)
		}
	case EventFaultClear:
		m.fault = false
		if m.state == StateFault {
			if m.priority == PriorityOwner {
				out = m.toMaster(now, out)
			} else {
				out = m.toBackup(now, m.cfg.Interval, out)
			}
		}
	case EventSyncMaster:
		if m.state == StateBackup {
			out = m.toMaster(now, out)
		}
	case EventSyncBackup:
		if m.state == StateMaster {
			// Hand over at once, as on a graceful stop, so the peer's
			// member joins its group-mates there.
			out = append(out, Action{Kind: ActSendAdvert, Priority: PriorityStop}, Action{Kind: ActRemoveVIPs})
			m.masterAddr, m.masterPrio = netip.Addr{}, 0 // no master heard yet
			out = m.toBackup(now, m.masterInterval, out)
		}
	case EventStop:
		if m.state == StateMaster {
			out = append(out, Action{Kind: ActSendAdvert, Priority: PriorityStop}, Action{Kind: ActRemoveVIPs})
		}
		if m.state != StateStop {
			out = m.transition(StateStop, out)
		}
	}
	return out
}

// Reconfigure applies a reloaded configuration without a new election: the
// state, the master heard and the timers stay. cfg must keep VRID,
// Version, LocalAddr and Sync (a change there makes another instance);
// Priority, Interval, NoPreempt and PreemptDelay take effect, and priority
// is the new effective priority. A master advertises at once with its new
// priority and interval, as keepalived does after a reload, so a backup
// that now outranks it preempts; a backup keeps its master down timer.
func (m *Machine) Reconfigure(now time.Duration, cfg MachineConfig, priority uint8) []Action {
	m.cfg = cfg
	m.priority = priority
	if cfg.Version == 2 {
		m.masterInterval = cfg.Interval // v2 speakers must share one interval
	}
	if m.state != StateMaster {
		return nil
	}
	m.advertAt = now + cfg.Interval
	return []Action{{Kind: ActSendAdvert, Priority: m.priority}}
}

func (m *Machine) tick(now time.Duration, out []Action) []Action {
	switch m.state {
	case StateBackup:
		if now < m.masterDownAt {
			break
		}
		if !m.cfg.Sync {
			out = m.toMaster(now, out)
			break
		}
		// A sync group member waits for the whole group (keepalived
		// prefers BACKUP to a split group): ask, and keep the timer
		// running until the group says go.
		m.wantMaster = true
		out = append(out, Action{Kind: ActWantMaster})
		m.masterDownAt = now + m.MasterDownInterval()
	case StateMaster:
		if now >= m.advertAt {
			out = append(out, Action{Kind: ActSendAdvert, Priority: m.priority})
			m.advertAt += m.cfg.Interval
			if m.advertAt <= now { // we were late: do not burst to catch up
				m.advertAt = now + m.cfg.Interval
			}
		}
	}
	return out
}

func (m *Machine) advert(now time.Duration, ev Event, out []Action) []Action {
	interval := m.cfg.Interval
	if m.cfg.Version == 3 && ev.Interval > 0 {
		interval = ev.Interval
	}
	switch m.state {
	case StateBackup:
		if ev.Priority == PriorityStop {
			// The master is leaving: take over after the skew time only.
			m.masterAddr, m.masterPrio = ev.From, ev.Priority
			m.masterDownAt = now + m.skew()
			return out
		}
		// Follow the master unless it has lower priority and we may preempt.
		// preempt_delay counts from our start, as in keepalived.
		if m.cfg.NoPreempt || ev.Priority >= m.priority || now < m.startedAt+m.cfg.PreemptDelay {
			m.wantMaster = false
			m.masterAddr, m.masterPrio = ev.From, ev.Priority
			m.masterInterval = interval
			m.masterDownAt = now + m.MasterDownInterval()
			return out
		}
		// A lower-priority master while we may preempt: discard its advert,
		// so our master down timer runs out and we take over (RFC 3768
		// 6.4.2; keepalived logs "received lower priority advert -
		// discarding").
		return out
	case StateMaster:
		if ev.Priority == PriorityStop {
			out = append(out, Action{Kind: ActSendAdvert, Priority: m.priority})
			m.advertAt = now + m.cfg.Interval
			return out
		}
		if ev.Priority > m.priority || (ev.Priority == m.priority && addrGreater(ev.From, m.cfg.LocalAddr)) {
			m.masterAddr, m.masterPrio, m.masterInterval = ev.From, ev.Priority, interval
			out = append(out, Action{Kind: ActRemoveVIPs})
			out = m.transition(StateBackup, out)
			m.masterDownAt = now + m.MasterDownInterval()
			return out
		}
		// Another master with lower priority: say so and assert ourselves.
		out = append(out, Action{Kind: ActOtherMaster, Peer: ev.From, PeerPrio: ev.Priority},
			Action{Kind: ActSendAdvert, Priority: m.priority})
		m.advertAt = now + m.cfg.Interval
	case StateFault:
		m.masterAddr, m.masterPrio = ev.From, ev.Priority
	}
	return out
}

func (m *Machine) toMaster(now time.Duration, out []Action) []Action {
	out = m.transition(StateMaster, out)
	out = append(out,
		Action{Kind: ActSendAdvert, Priority: m.priority},
		Action{Kind: ActAddVIPs},
		Action{Kind: ActGARP})
	m.advertAt = now + m.cfg.Interval
	return out
}

func (m *Machine) toBackup(now time.Duration, masterInterval time.Duration, out []Action) []Action {
	m.masterInterval = masterInterval
	out = m.transition(StateBackup, out)
	m.masterDownAt = now + m.MasterDownInterval()
	return out
}

func (m *Machine) toFault(out []Action) []Action {
	if m.state == StateMaster {
		out = append(out, Action{Kind: ActSendAdvert, Priority: PriorityStop}, Action{Kind: ActRemoveVIPs})
	}
	return m.transition(StateFault, out)
}

func (m *Machine) transition(to State, out []Action) []Action {
	from := m.state
	m.wantMaster = false
	m.state = to
	return append(out, Action{Kind: ActTransition, From: from, To: to})
}

func addrGreater(a, b netip.Addr) bool { return a.Compare(b) > 0 }

// FormatActions renders actions one per line, for logs and tests.
func FormatActions(acts []Action) string {
	var sb strings.Builder
	for _, a := range acts {
		sb.WriteString(a.String())
		sb.WriteByte('\n')
	}
	return sb.String()
}
