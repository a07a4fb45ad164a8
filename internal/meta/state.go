package meta

import (
	"errors"
	"fmt"
	"sort"
)

// Errors returned by Apply for commands that the state refuses.
var (
	ErrNotFound = errors.New("meta: not found")
	ErrExists   = errors.New("meta: already exists")
	// ErrStale refuses a placement change made from a placement that
	// another change has replaced meanwhile.
	ErrStale = errors.New("meta: the queue's placement has changed meanwhile")
)

// EventKind says what changed.
type EventKind uint8

// Event kinds.
const (
	VHostAdded EventKind = iota + 1
	VHostDeleted
	ExchangeAdded
	ExchangeDeleted
	QueueAdded
	QueueDeleted
	// QueuePlaced: a queue's leader or mirrors changed (Queue).
	QueuePlaced
	BindingAdded
	BindingRemoved
	UserChanged
	UserDeleted
	PermissionChanged
	// PolicyChanged: a policy was set or cleared in VHost.
	PolicyChanged
	// StateReset follows a snapshot restore: observers rebuild from the
	// event's Definitions (the Node may not be open yet).
	StateReset
)

// Event is one applied change. Only the fields of its kind are set.
type Event struct {
	Kind     EventKind
	VHost    string
	Name     string
	Exchange *Exchange
	Queue    *Queue
	Binding  *Binding
	// Definitions is the whole state, for StateReset.
	Definitions *Definitions
}

// Observer learns of applied changes; see the package doc for when it is
// called.
type Observer interface {
	Changed(Event)
}

type vhostState struct {
	def       VHost
	exchanges map[string]*Exchange
	queues    map[string]*Queue
	bindings  map[string]*Binding
	policies  map[policyKey]*Policy
}

type policyKey struct {
	name     string
	operator bool
}

// state is the definitions. It is not safe for concurrent use; fsm guards it.
type state struct {
	vhosts map[string]*vhostState
	users  map[string]*User
	perms  map[[2]string]*Permission // user, vhost
	global map[string]GlobalParameter
	topics map[[3]string]*TopicPermission // user, vhost, exchange
}

func newState() *state {
	return &state{
		vhosts: map[string]*vhostState{},
		users:  map[string]*User{},
		perms:  map[[2]string]*Permission{},
		global: map[string]GlobalParameter{},
		topics: map[[3]string]*TopicPermission{},
	}
}

// builtinExchanges are created with every vhost, as RabbitMQ does.
var builtinExchanges = [...]struct{ name, typ string }{
	{"", "direct"},
	{"amq.direct", "direct"},
	{"amq.fanout", "fanout"},
	{"amq.topic", "topic"},
	{"amq.headers", "headers"},
	{"amq.match", "headers"},
	{"amq.rabbitmq.trace", "topic"},
}

// emit collects events while a command is applied; they are delivered
// after the state lock is released.
type emit func(Event)

func (s *state) vhost(name string) (*vhostState, error) {
	v, ok := s.vhosts[name]
	if !ok {
		return nil, fmt.Errorf("%w: vhost '%s'", ErrNotFound, name)
	}
	return v, nil
}

func (s *state) putVHost(def VHost, ev emit) {
	if v, ok := s.vhosts[def.Name]; ok {
		v.def = def
		return
	}
	v := &vhostState{def: def, exchanges: map[string]*Exchange{}, queues: map[string]*Queue{}, bindings: map[string]*Binding{}, policies: map[policyKey]*Policy{}}
	s.vhosts[def.Name] = v
	ev(Event{Kind: VHostAdded, VHost: def.Name})
	for _, b := range builtinExchanges {
		x := &Exchange{VHost: def.Name, Name: b.name, Type: b.typ, Durable: true, Internal: b.name == "amq.rabbitmq.trace"}
		v.exchanges[b.name] = x
		ev(Event{Kind: ExchangeAdded, VHost: def.Name, Exchange: x})
	}
}

func (s *state) deleteVHost(name string, ev emit) error {
	v, err := s.vhost(name)
	if err != nil {
		return err
	}
	for _, q := range sortedKeys(v.queues) {
		s.deleteQueue(v, q, ev)
	}
	for _, x := range sortedKeys(v.exchanges) {
		s.deleteExchange(v, x, ev)
	}
	for k := range s.perms {
		if k[1] == name {
			delete(s.perms, k)
			ev(Event{Kind: PermissionChanged, VHost: name, Name: k[0]})
		}
	}
	for k := range s.topics {
		if k[1] == name {
			delete(s.topics, k)
		}
	}
	delete(s.vhosts, name)
	ev(Event{Kind: VHostDeleted, VHost: name})
	return nil
}

func (s *state) declareExchange(x Exchange, ev emit) (Exchange, error) {
	v, err := s.vhost(x.VHost)
	if err != nil {
		return Exchange{}, err
	}
	if cur, ok := v.exchanges[x.Name]; ok {
		return *cur, ErrExists
	}
	nx := x
	v.exchanges[x.Name] = &nx
	ev(Event{Kind: ExchangeAdded, VHost: x.VHost, Exchange: &nx})
	return x, nil
}

func (s *state) deleteExchange(v *vhostState, name string, ev emit) bool {
	if _, ok := v.exchanges[name]; !ok {
		return false
	}
	for _, k := range sortedKeys(v.bindings) {
		// A cascade may already have removed later keys.
		b, ok := v.bindings[k]
		if ok && (b.Source == name || (b.DestinationType == DestExchange && b.Destination == name)) {
			s.removeBinding(v, k, name, ev)
		}
	}
	delete(v.exchanges, name)
	ev(Event{Kind: ExchangeDeleted, VHost: v.def.Name, Name: name})
	return true
}

func (s *state) declareQueue(q Queue, ev emit) (Queue, error) {
	v, err := s.vhost(q.VHost)
	if err != nil {
		return Queue{}, err
	}
	if cur, ok := v.queues[q.Name]; ok {
		return *cur, ErrExists
	}
	nq := q
	v.queues[q.Name] = &nq
	ev(Event{Kind: QueueAdded, VHost: q.VHost, Queue: &nq})
	return q, nil
}

// setPlacement moves a queue's leader and mirrors, if the placement it
// replaces is still the current one (the version check that makes two
// deciders unable to both win).
func (s *state) setPlacement(p Placement, ev emit) (Queue, error) {
	v, err := s.vhost(p.VHost)
	if err != nil {
		return Queue{}, err
	}
	q, ok := v.queues[p.Name]
	if !ok {
		return Queue{}, fmt.Errorf("queue %q in vhost %q: %w", p.Name, p.VHost, ErrNotFound)
	}
	if cur := q.PlacementVersion(); cur != p.Expect || p.Mirroring.Version <= cur {
		return *q, fmt.Errorf("queue %q in vhost %q at version %d, not %d: %w", p.Name, p.VHost, cur, p.Expect, ErrStale)
	}
	nq := *q
	nq.Node = p.Leader
	m := p.Mirroring
	nq.Mirroring = &m
	v.queues[p.Name] = &nq
	ev(Event{Kind: QueuePlaced, VHost: p.VHost, Queue: &nq})
	return nq, nil
}

func (s *state) deleteQueue(v *vhostState, name string, ev emit) bool {
	if _, ok := v.queues[name]; !ok {
		return false
	}
	for _, k := range sortedKeys(v.bindings) {
		b, ok := v.bindings[k]
		if ok && b.DestinationType == DestQueue && b.Destination == name {
			s.removeBinding(v, k, "", ev)
		}
	}
	delete(v.queues, name)
	ev(Event{Kind: QueueDeleted, VHost: v.def.Name, Name: name})
	return true
}

func (s *state) bind(b Binding, ev emit) error {
	v, err := s.vhost(b.VHost)
	if err != nil {
		return err
	}
	if _, ok := v.exchanges[b.Source]; !ok {
		return fmt.Errorf("%w: exchange '%s' in vhost '%s'", ErrNotFound, b.Source, b.VHost)
	}
	if b.DestinationType == DestQueue {
		if _, ok := v.queues[b.Destination]; !ok {
			return fmt.Errorf("%w: queue '%s' in vhost '%s'", ErrNotFound, b.Destination, b.VHost)
		}
	} else if _, ok := v.exchanges[b.Destination]; !ok {
		return fmt.Errorf("%w: exchange '%s' in vhost '%s'", ErrNotFound, b.Destination, b.VHost)
	}
	k := b.key()
	if _, ok := v.bindings[k]; ok {
		return nil
	}
	nb := b
	v.bindings[k] = &nb
	ev(Event{Kind: BindingAdded, VHost: b.VHost, Binding: &nb})
	return nil
}

// removeBinding removes one binding and, as RabbitMQ does, an auto-delete
// source exchange that has no bindings left (unless that exchange is the
// one being deleted already, named by deleting).
func (s *state) removeBinding(v *vhostState, k, deleting string, ev emit) {
	b := v.bindings[k]
	delete(v.bindings, k)
	ev(Event{Kind: BindingRemoved, VHost: v.def.Name, Binding: b})
	src, ok := v.exchanges[b.Source]
	if !ok || !src.AutoDelete || src.Name == deleting {
		return
	}
	for _, o := range v.bindings {
		if o.Source == b.Source {
			return
		}
	}
	s.deleteExchange(v, b.Source, ev)
}

func (s *state) unbind(b Binding, ev emit) (bool, error) {
	v, err := s.vhost(b.VHost)
	if err != nil {
		return false, err
	}
	k := b.key()
	if _, ok := v.bindings[k]; !ok {
		return false, nil
	}
	s.removeBinding(v, k, "", ev)
	return true, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
