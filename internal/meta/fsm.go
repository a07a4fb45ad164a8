package meta

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// fsm applies commands to the state. Apply and Snapshot run on Raft's FSM
// goroutine; Restore runs alone; reads come from any goroutine under mu.
type fsm struct {
	mu       sync.RWMutex // guards st
	st       *state
	observer Observer // immutable; may be nil

	appliedMu sync.Mutex    // guards applied and advanced
	applied   uint64        // the last log index applied
	advanced  chan struct{} // closed and replaced when applied grows
}

func newFSM(o Observer) *fsm {
	return &fsm{st: newState(), observer: o, advanced: make(chan struct{})}
}

// setApplied records that the log is applied up to index and wakes
// whoever waits for it.
func (f *fsm) setApplied(index uint64) {
	f.appliedMu.Lock()
	if index > f.applied {
		f.applied = index
		close(f.advanced)
		f.advanced = make(chan struct{})
	}
	f.appliedMu.Unlock()
}

// appliedIndex is the last log index applied.
func (f *fsm) appliedIndex() uint64 {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	return f.applied
}

// waitApplied returns once the log is applied up to index. raftApplied
// reports Raft's own applied index, which also moves when a snapshot is
// installed (the state machine is not told the snapshot's index); but
// Raft moves it as it hands entries to the state machine, before they
// are applied, so it is trusted only once it has stood for a while.
func (f *fsm) waitApplied(ctx context.Context, index uint64, raftApplied func() uint64) error {
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	var raftSince time.Time
	for {
		f.appliedMu.Lock()
		done, ch := f.applied >= index, f.advanced
		f.appliedMu.Unlock()
		if done {
			return nil
		}
		if raftApplied() >= index {
			if raftSince.IsZero() {
				raftSince = time.Now()
			} else if time.Since(raftSince) > 500*time.Millisecond {
				return nil
			}
		}
		select {
		case <-ch:
		case <-poll.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// result is what Apply returns to the node for one command.
type result struct {
	value any
	err   error
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	defer f.setApplied(l.Index)
	if len(l.Data) == 0 {
		return result{}
	}
	t := CommandType(l.Data[0])
	var c command
	if err := json.Unmarshal(l.Data[1:], &c); err != nil {
		// The log is written only by this package: a body that does not
		// parse means the log is corrupt, and applying around it would
		// diverge from the other members.
		panic(fmt.Sprintf("meta: command %d at index %d does not decode: %v", t, l.Index, err))
	}
	var events []Event
	ev := func(e Event) { events = append(events, e) }
	f.mu.Lock()
	res := f.applyLocked(t, &c, ev, l.Index)
	f.mu.Unlock()
	if f.observer != nil {
		for _, e := range events {
			f.observer.Changed(e)
		}
	}
	return res
}

func (f *fsm) applyLocked(t CommandType, c *command, ev emit, index uint64) result {
	s := f.st
	switch t {
	case CmdPutVHost:
		s.putVHost(*c.VHost, ev)
		return result{}
	case CmdDeleteVHost:
		return result{err: s.deleteVHost(c.Target, ev)}
	case CmdPutUser:
		u := *c.User
		s.users[u.Name] = &u
		ev(Event{Kind: UserChanged, Name: u.Name})
		return result{}
	case CmdDeleteUser:
		if _, ok := s.users[c.Target]; !ok {
			return result{err: fmt.Errorf("%w: user '%s'", ErrNotFound, c.Target)}
		}
		delete(s.users, c.Target)
		for k := range s.perms {
			if k[0] == c.Target {
				delete(s.perms, k)
			}
		}
		for k := range s.topics {
			if k[0] == c.Target {
				delete(s.topics, k)
			}
		}
		ev(Event{Kind: UserDeleted, Name: c.Target})
		return result{}
	case CmdSetPermission:
		p := *c.Permission
		if _, err := s.vhost(p.VHost); err != nil {
			return result{err: err}
		}
		if _, ok := s.users[p.User]; !ok {
			return result{err: fmt.Errorf("%w: user '%s'", ErrNotFound, p.User)}
		}
		s.perms[[2]string{p.User, p.VHost}] = &p
		ev(Event{Kind: PermissionChanged, VHost: p.VHost, Name: p.User})
		return result{}
	case CmdClearPermission:
		k := [2]string{c.Target, c.VHostName}
		if _, ok := s.perms[k]; !ok {
			return result{err: fmt.Errorf("%w: permissions of user '%s' in vhost '%s'", ErrNotFound, c.Target, c.VHostName)}
		}
		delete(s.perms, k)
		ev(Event{Kind: PermissionChanged, VHost: c.VHostName, Name: c.Target})
		return result{}
	case CmdDeclareExchange:
		x, err := s.declareExchange(*c.Exchange, ev)
		return result{value: x, err: err}
	case CmdDeleteExchange:
		v, err := s.vhost(c.VHostName)
		if err != nil {
			return result{err: err}
		}
		return result{value: s.deleteExchange(v, c.Target, ev)}
	case CmdDeclareQueue:
		q, err := s.declareQueue(*c.Queue, ev)
		return result{value: q, err: err}
	case CmdDeleteQueue:
		v, err := s.vhost(c.VHostName)
		if err != nil {
			return result{err: err}
		}
		return result{value: s.deleteQueue(v, c.Target, ev)}
	case CmdSetPlacement:
		q, err := s.setPlacement(*c.Placement, ev)
		return result{value: q, err: err}
	case CmdBind:
		return result{err: s.bind(*c.Binding, ev)}
	case CmdUnbind:
		ok, err := s.unbind(*c.Binding, ev)
		return result{value: ok, err: err}
	case CmdSetTopicPermission:
		p := *c.Topic
		if _, err := s.vhost(p.VHost); err != nil {
			return result{err: err}
		}
		if _, ok := s.users[p.User]; !ok {
			return result{err: fmt.Errorf("%w: user '%s'", ErrNotFound, p.User)}
		}
		s.topics[[3]string{p.User, p.VHost, p.Exchange}] = &p
		ev(Event{Kind: PermissionChanged, VHost: p.VHost, Name: p.User})
		return result{}
	case CmdClearTopicPermission:
		// Target is the user; an empty exchange clears all of the user's
		// topic permissions in the vhost.
		found := false
		for k := range s.topics {
			if k[0] == c.Target && k[1] == c.VHostName && (c.Topic == nil || c.Topic.Exchange == "" || k[2] == c.Topic.Exchange) {
				delete(s.topics, k)
				found = true
			}
		}
		if !found {
			return result{err: fmt.Errorf("%w: topic permissions of user '%s' in vhost '%s'", ErrNotFound, c.Target, c.VHostName)}
		}
		ev(Event{Kind: PermissionChanged, VHost: c.VHostName, Name: c.Target})
		return result{}
	case CmdSetGlobalParameter:
		s.global[c.Global.Name] = *c.Global
		return result{}
	case CmdClearGlobalParameter:
		if _, ok := s.global[c.Target]; !ok {
			return result{err: fmt.Errorf("%w: global parameter '%s'", ErrNotFound, c.Target)}
		}
		delete(s.global, c.Target)
		return result{}
	case CmdSetPolicy:
		p := *c.Policy
		v, err := s.vhost(p.VHost)
		if err != nil {
			return result{err: err}
		}
		v.policies[policyKey{p.Name, p.Operator}] = &p
		ev(Event{Kind: PolicyChanged, VHost: p.VHost, Name: p.Name})
		return result{}
	case CmdClearPolicy:
		v, err := s.vhost(c.VHostName)
		if err != nil {
			return result{err: err}
		}
		k := policyKey{c.Target, c.Operator}
		if _, ok := v.policies[k]; !ok {
			return result{err: fmt.Errorf("%w: policy '%s' in vhost '%s'", ErrNotFound, c.Target, c.VHostName)}
		}
		delete(v.policies, k)
		ev(Event{Kind: PolicyChanged, VHost: c.VHostName, Name: c.Target})
		return result{}
	}
	if t&IgnorableFlag != 0 {
		return result{}
	}
	panic(fmt.Sprintf("meta: unknown command type %d at index %d", t, index))
}

// snapshotData is the whole state in the form snapshots store it.
type snapshotData struct {
	VHosts      []VHost           `json:"vhosts"`
	Users       []User            `json:"users"`
	Permissions []Permission      `json:"permissions"`
	Exchanges   []Exchange        `json:"exchanges"`
	Queues      []Queue           `json:"queues"`
	Bindings    []Binding         `json:"bindings"`
	Policies    []Policy          `json:"policies,omitempty"`
	Global      []GlobalParameter `json:"global_parameters,omitempty"`
	Topics      []TopicPermission `json:"topic_permissions,omitempty"`
}

func (s *state) export() *snapshotData {
	d := &snapshotData{}
	for _, vn := range sortedKeys(s.vhosts) {
		v := s.vhosts[vn]
		d.VHosts = append(d.VHosts, v.def)
		for _, k := range sortedKeys(v.exchanges) {
			d.Exchanges = append(d.Exchanges, *v.exchanges[k])
		}
		for _, k := range sortedKeys(v.queues) {
			d.Queues = append(d.Queues, *v.queues[k])
		}
		for _, k := range sortedKeys(v.bindings) {
			d.Bindings = append(d.Bindings, *v.bindings[k])
		}
		start := len(d.Policies)
		for _, p := range v.policies {
			d.Policies = append(d.Policies, *p)
		}
		sort.Slice(d.Policies[start:], func(i, j int) bool {
			a, b := d.Policies[start+i], d.Policies[start+j]
			if a.Operator != b.Operator {
				return !a.Operator
			}
			return a.Name < b.Name
		})
	}
	for _, k := range sortedKeys(s.users) {
		d.Users = append(d.Users, *s.users[k])
	}
	for _, k := range sortedKeys(s.global) {
		d.Global = append(d.Global, s.global[k])
	}
	for _, p := range s.topics {
		d.Topics = append(d.Topics, *p)
	}
	sort.Slice(d.Topics, func(i, j int) bool {
		a, b := d.Topics[i], d.Topics[j]
		return a.User+"\x00"+a.VHost+"\x00"+a.Exchange < b.User+"\x00"+b.VHost+"\x00"+b.Exchange
	})
	for _, p := range s.perms {
		d.Permissions = append(d.Permissions, *p)
	}
	sort.Slice(d.Permissions, func(i, j int) bool {
		a, b := d.Permissions[i], d.Permissions[j]
		if a.User != b.User {
			return a.User < b.User
		}
		return a.VHost < b.VHost
	})
	return d
}

// Snapshot implements raft.FSM. It copies the state, so Persist can run
// while commands keep applying.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	d := f.st.export()
	f.mu.RUnlock()
	return &fsmSnapshot{data: d}, nil
}

// Restore implements raft.FSM: the state is rebuilt from the snapshot and
// swapped in whole.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return fmt.Errorf("restore meta snapshot: %w", err)
	}
	s := newState()
	nop := func(Event) {}
	for _, v := range d.VHosts {
		s.vhosts[v.Name] = &vhostState{def: v, exchanges: map[string]*Exchange{}, queues: map[string]*Queue{}, bindings: map[string]*Binding{}, policies: map[policyKey]*Policy{}}
	}
	for i := range d.Exchanges {
		if v, ok := s.vhosts[d.Exchanges[i].VHost]; ok {
			v.exchanges[d.Exchanges[i].Name] = &d.Exchanges[i]
		}
	}
	for i := range d.Queues {
		s.declareQueue(d.Queues[i], nop)
	}
	for _, b := range d.Bindings {
		s.bind(b, nop)
	}
	for i := range d.Policies {
		p := &d.Policies[i]
		if v, ok := s.vhosts[p.VHost]; ok {
			v.policies[policyKey{p.Name, p.Operator}] = p
		}
	}
	for i := range d.Users {
		s.users[d.Users[i].Name] = &d.Users[i]
	}
	for _, g := range d.Global {
		s.global[g.Name] = g
	}
	for i := range d.Topics {
		p := &d.Topics[i]
		s.topics[[3]string{p.User, p.VHost, p.Exchange}] = p
	}
	for i := range d.Permissions {
		p := &d.Permissions[i]
		s.perms[[2]string{p.User, p.VHost}] = p
	}
	f.mu.Lock()
	f.st = s
	f.mu.Unlock()
	if f.observer != nil {
		f.observer.Changed(Event{Kind: StateReset, Definitions: &d})
	}
	return nil
}

type fsmSnapshot struct {
	data *snapshotData
}

func (d *snapshotData) write(w io.Writer) error {
	return json.NewEncoder(w).Encode(d)
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.data.write(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist meta snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
