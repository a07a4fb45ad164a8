package meta

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/warren-mq/warren/internal/amqp"
)

// Args is an AMQP argument table that keeps its field types through JSON
// (as base64 of the AMQP encoding), so "received the value '5' of type
// 'long'" comparisons still see the type after a round trip.
type Args struct {
	amqp.Table
}

// MarshalJSON encodes the table in AMQP form.
func (a Args) MarshalJSON() ([]byte, error) {
	if len(a.Table) == 0 {
		return []byte("null"), nil
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(amqp.EncodeTable(a.Table)))
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (a *Args) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("args: %w", err)
	}
	if s == nil {
		a.Table = nil
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(*s)
	if err != nil {
		return fmt.Errorf("args: %w", err)
	}
	t, err := amqp.DecodeTable(raw)
	if err != nil {
		return fmt.Errorf("args: %w", err)
	}
	a.Table = t
	return nil
}

// VHost is a virtual host.
type VHost struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	// Limits caps the vhost: max-connections, max-queues. A negative
	// value, or none, means no limit.
	Limits map[string]int64 `json:"limits,omitempty"`
}

// User is a user who may log in. PasswordHash is RabbitMQ's format:
// base64 of a 4-octet salt followed by the hash of salt+password, with
// HashingAlgorithm naming the hash.
type User struct {
	Name             string   `json:"name"`
	PasswordHash     string   `json:"password_hash"`
	HashingAlgorithm string   `json:"hashing_algorithm"`
	Tags             []string `json:"tags,omitempty"`
	// Limits caps the user: max-connections, max-channels. A negative
	// value, or none, means no limit.
	Limits map[string]int64 `json:"limits,omitempty"`
}

// Limit returns a limit from a set of limits and whether it applies.
func Limit(limits map[string]int64, name string) (int64, bool) {
	n, ok := limits[name]
	return n, ok && n >= 0
}

// Permission is what a user may do in a vhost: three regular expressions
// matched against resource names, as RabbitMQ defines them.
type Permission struct {
	User      string `json:"user"`
	VHost     string `json:"vhost"`
	Configure string `json:"configure"`
	Write     string `json:"write"`
	Read      string `json:"read"`
}

// TopicPermission limits the routing keys a user may publish with (Write)
// and bind with (Read) on one topic exchange of a vhost, as RabbitMQ's
// topic permissions do.
type TopicPermission struct {
	User     string `json:"user"`
	VHost    string `json:"vhost"`
	Exchange string `json:"exchange"`
	Write    string `json:"write"`
	Read     string `json:"read"`
}

// Exchange is an exchange's definition.
type Exchange struct {
	VHost      string `json:"vhost"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Durable    bool   `json:"durable"`
	AutoDelete bool   `json:"auto_delete"`
	Internal   bool   `json:"internal"`
	Arguments  Args   `json:"arguments"`
}

// Queue is a queue's definition. Owner is the connection that declared an
// exclusive queue; empty otherwise. Node is the node its messages live on
// (a mirrored queue's leader); empty means the node that reads it.
type Queue struct {
	VHost      string `json:"vhost"`
	Name       string `json:"name"`
	Durable    bool   `json:"durable"`
	Exclusive  bool   `json:"exclusive"`
	AutoDelete bool   `json:"auto_delete"`
	Arguments  Args   `json:"arguments"`
	Owner      string `json:"owner,omitempty"`
	Node       string `json:"node,omitempty"`
	// Mirroring is where a mirrored queue's copies are; nil for a queue
	// that has never been mirrored. Only SetPlacement changes it.
	Mirroring *Mirroring `json:"mirroring,omitempty"`
}

// Mirroring is the placement of a mirrored queue's copies besides its
// leader (Queue.Node): see package mirror for the rules.
type Mirroring struct {
	// Mirrors are the other nodes that keep a copy, oldest first.
	Mirrors []string `json:"mirrors,omitempty"`
	// InSync are the mirrors holding every message the leader has
	// confirmed, oldest first.
	InSync []string `json:"in_sync,omitempty"`
	// Epoch grows with every change of leader.
	Epoch uint64 `json:"epoch"`
	// Version grows with every change of the placement.
	Version uint64 `json:"version"`
}

// PlacementVersion is the version of a queue's placement: 0 before its
// first SetPlacement.
func (q Queue) PlacementVersion() uint64 {
	if q.Mirroring == nil {
		return 0
	}
	return q.Mirroring.Version
}

// Policy applies settings to the queues or exchanges whose names match
// Pattern in VHost, as RabbitMQ's policies do. Operator policies are set
// by operators to cap what users may configure.
type Policy struct {
	VHost      string         `json:"vhost"`
	Name       string         `json:"name"`
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply-to"` // "queues", "exchanges" or "all"
	Definition map[string]any `json:"definition"`
	Priority   int            `json:"priority"`
	Operator   bool           `json:"operator,omitempty"`
}

// GlobalParameter is a node-wide setting, such as the cluster's name
// (cluster_name), stored as the JSON value it was given.
type GlobalParameter struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

// Destination types of a binding.
const (
	DestQueue    = "queue"
	DestExchange = "exchange"
)

// Binding routes from a source exchange to a queue or exchange.
type Binding struct {
	VHost           string `json:"vhost"`
	Source          string `json:"source"`
	Destination     string `json:"destination"`
	DestinationType string `json:"destination_type"`
	RoutingKey      string `json:"routing_key"`
	Arguments       Args   `json:"arguments"`
}

// key identifies a binding: RabbitMQ treats two bindings with the same
// ends, key and arguments as one.
func (b Binding) key() string {
	return b.Source + "\x00" + b.DestinationType + "\x00" + b.Destination + "\x00" + b.RoutingKey + "\x00" +
		string(amqp.EncodeTable(b.Arguments.Table))
}
