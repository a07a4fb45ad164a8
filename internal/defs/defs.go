// Package defs reads and writes definitions files in RabbitMQ's JSON
// format (what `rabbitmqctl export_definitions` and the management API's
// /api/definitions produce), so that definitions move between warren and
// RabbitMQ in both directions.
package defs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/warren-mq/warren/internal/auth"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/policy"
	"golang.org/x/sync/errgroup"
)

// Decode reads a definitions file's JSON, keeping numbers as written.
func Decode(b []byte) (File, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var f File
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("the definitions are not valid JSON: %w", err)
	}
	return f, nil
}

// File is RabbitMQ's definitions file: what Export writes and Import
// reads.
type File struct {
	RabbitVersion    string                 `json:"rabbit_version,omitempty"`
	RabbitMQVersion  string                 `json:"rabbitmq_version,omitempty"`
	ProductName      string                 `json:"product_name,omitempty"`
	ProductVersion   string                 `json:"product_version,omitempty"`
	Users            []User                 `json:"users,omitempty"`
	VHosts           []VHost                `json:"vhosts,omitempty"`
	Permissions      []meta.Permission      `json:"permissions,omitempty"`
	TopicPermissions []meta.TopicPermission `json:"topic_permissions"`
	Parameters       []map[string]any       `json:"parameters"`
	GlobalParameters []map[string]any       `json:"global_parameters"`
	Policies         []Policy               `json:"policies"`
	Queues           []Queue                `json:"queues"`
	Exchanges        []Exchange             `json:"exchanges"`
	Bindings         []Binding              `json:"bindings"`
}

// Policy is a policy in a definitions file.
type Policy struct {
	VHost      string         `json:"vhost,omitempty"`
	Name       string         `json:"name"`
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply-to"`
	Definition map[string]any `json:"definition"`
	Priority   int            `json:"priority"`
}

// User is a user in a definitions file.
type User struct {
	Name             string         `json:"name"`
	PasswordHash     *string        `json:"password_hash,omitempty"`
	Password         *string        `json:"password,omitempty"`
	HashingAlgorithm string         `json:"hashing_algorithm,omitempty"`
	Tags             any            `json:"tags"`
	Limits           map[string]any `json:"limits"`
}

// VHost is a vhost in a definitions file.
type VHost struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
}

// Queue is a queue in a definitions file.
type Queue struct {
	Name       string         `json:"name"`
	VHost      string         `json:"vhost,omitempty"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Arguments  map[string]any `json:"arguments"`
}

// Exchange is an exchange in a definitions file.
type Exchange struct {
	Name       string         `json:"name"`
	VHost      string         `json:"vhost,omitempty"`
	Type       string         `json:"type"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Internal   bool           `json:"internal"`
	Arguments  map[string]any `json:"arguments"`
}

// Binding is a binding in a definitions file.
type Binding struct {
	Source          string         `json:"source"`
	VHost           string         `json:"vhost,omitempty"`
	Destination     string         `json:"destination"`
	DestinationType string         `json:"destination_type"`
	RoutingKey      string         `json:"routing_key"`
	Arguments       map[string]any `json:"arguments"`
}

// builtinExchange reports whether an exchange comes with every vhost and
// so is left out of exports.
func builtinExchange(name string) bool {
	return name == "" || strings.HasPrefix(name, "amq.")
}

// Source names the exporting node's product and version.
type Source struct {
	Product, Version string
}

// Export returns the definitions of the node, or of one vhost (without
// users, vhosts and permissions, and without vhost fields, as RabbitMQ's
// per-vhost export does).
func Export(m *meta.Node, src Source, vhost string) File {
	d := m.Snapshot()
	out := File{
		TopicPermissions: []meta.TopicPermission{}, Parameters: []map[string]any{},
		GlobalParameters: []map[string]any{}, Policies: []Policy{},
		Queues: []Queue{}, Exchanges: []Exchange{}, Bindings: []Binding{},
	}
	out.RabbitVersion, out.RabbitMQVersion = src.Version, src.Version
	out.ProductName, out.ProductVersion = src.Product, src.Version
	keep := func(v string) (string, bool) {
		if vhost == "" {
			return v, true
		}
		return "", v == vhost
	}
	if vhost == "" {
		out.Users = []User{}
		for _, u := range d.Users {
			h := u.PasswordHash
			tags := u.Tags
			if tags == nil {
				tags = []string{}
			}
			limits := map[string]any{}
			for k, v := range u.Limits {
				limits[k] = v
			}
			out.Users = append(out.Users, User{Name: u.Name, PasswordHash: &h, HashingAlgorithm: u.HashingAlgorithm, Tags: tags, Limits: limits})
		}
		out.VHosts = []VHost{}
		for _, v := range d.VHosts {
			out.VHosts = append(out.VHosts, VHost{Name: v.Name, Description: v.Description, Tags: v.Tags})
		}
		out.Permissions = append([]meta.Permission{}, d.Permissions...)
		out.TopicPermissions = append(out.TopicPermissions, d.Topics...)
		for _, g := range d.Global {
			var v any
			if json.Unmarshal(g.Value, &v) == nil {
				out.GlobalParameters = append(out.GlobalParameters, map[string]any{"name": g.Name, "value": v})
			}
		}
	}
	for _, q := range d.Queues {
		v, ok := keep(q.VHost)
		if !ok || q.Exclusive {
			continue
		}
		out.Queues = append(out.Queues, Queue{Name: q.Name, VHost: v, Durable: q.Durable, AutoDelete: q.AutoDelete, Arguments: ArgsJSON(q.Arguments.Table)})
	}
	for _, x := range d.Exchanges {
		v, ok := keep(x.VHost)
		if !ok || builtinExchange(x.Name) {
			continue
		}
		out.Exchanges = append(out.Exchanges, Exchange{Name: x.Name, VHost: v, Type: x.Type, Durable: x.Durable, AutoDelete: x.AutoDelete, Internal: x.Internal, Arguments: ArgsJSON(x.Arguments.Table)})
	}
	for _, p := range d.Policies {
		v, ok := keep(p.VHost)
		if !ok || p.Operator {
			continue
		}
		out.Policies = append(out.Policies, Policy{VHost: v, Name: p.Name, Pattern: p.Pattern, ApplyTo: p.ApplyTo, Definition: p.Definition, Priority: p.Priority})
	}
	for _, b := range d.Bindings {
		v, ok := keep(b.VHost)
		if !ok {
			continue
		}
		out.Bindings = append(out.Bindings, Binding{Source: b.Source, VHost: v, Destination: b.Destination, DestinationType: b.DestinationType, RoutingKey: b.RoutingKey, Arguments: ArgsJSON(b.Arguments.Table)})
	}
	return out
}

// Import applies a definitions file: users, vhosts, permissions, then
// exchanges, queues and bindings, declared on node. With vhost set, every
// object goes into that vhost. Sections the node cannot honour yet are
// refused before anything is applied, so a file is never half imported
// for that reason. It returns once every running member has applied what
// it applied.
func Import(ctx context.Context, m *meta.Node, node string, d File, vhost string) error {
	defer m.Spread()
	ctx = meta.Unspread(ctx)
	if len(d.Parameters) > 0 {
		return fmt.Errorf("definitions contain parameters (federation, shovel), which this node does not support")
	}
	var globals []meta.GlobalParameter
	for _, p := range d.GlobalParameters {
		name, _ := p["name"].(string)
		// The cluster id belongs to the cluster that made the file; this
		// one keeps its own.
		if name == "" || name == "internal_cluster_id" {
			continue
		}
		v, err := json.Marshal(p["value"])
		if err != nil {
			return fmt.Errorf("global parameter %q: %w", name, err)
		}
		globals = append(globals, meta.GlobalParameter{Name: name, Value: v})
	}
	in := func(v string) string {
		if vhost != "" {
			return vhost
		}
		return v
	}
	pols := make([]meta.Policy, 0, len(d.Policies))
	for _, p := range d.Policies {
		mp := meta.Policy{VHost: in(p.VHost), Name: p.Name, Pattern: p.Pattern, ApplyTo: p.ApplyTo, Definition: NumbersAsFloat(p.Definition), Priority: p.Priority}
		if mp.ApplyTo == "" {
			mp.ApplyTo = policy.All
		}
		if err := policy.Validate(mp); err != nil {
			return fmt.Errorf("policy '%s' in vhost '%s': %w", p.Name, mp.VHost, err)
		}
		pols = append(pols, mp)
	}
	users := make([]meta.User, 0, len(d.Users))
	for _, ud := range d.Users {
		usr, err := ud.ToMeta()
		if err != nil {
			return err
		}
		users = append(users, usr)
	}
	for _, usr := range users {
		if err := m.PutUser(ctx, usr); err != nil {
			return fmt.Errorf("import user %q: %w", usr.Name, err)
		}
	}
	for _, v := range d.VHosts {
		if err := m.PutVHost(ctx, meta.VHost{Name: v.Name, Description: v.Description, Tags: v.Tags}); err != nil {
			return fmt.Errorf("import vhost %q: %w", v.Name, err)
		}
	}
	for _, p := range d.Permissions {
		if err := m.SetPermission(ctx, p); err != nil {
			return fmt.Errorf("import permissions of %q in vhost %q: %w", p.User, p.VHost, err)
		}
	}
	for _, p := range d.TopicPermissions {
		if err := m.SetTopicPermission(ctx, p); err != nil {
			return fmt.Errorf("import topic permissions of %q in vhost %q: %w", p.User, p.VHost, err)
		}
	}
	for _, g := range globals {
		if err := m.SetGlobalParameter(ctx, g); err != nil {
			return fmt.Errorf("import global parameter %q: %w", g.Name, err)
		}
	}
	for _, p := range pols {
		if err := m.SetPolicy(ctx, p); err != nil {
			return fmt.Errorf("import policy %q in vhost %q: %w", p.Name, p.VHost, err)
		}
	}
	// Exchanges, queues and bindings, the bulk of a large file, are
	// applied many at a time within each kind, so that the cluster's log
	// takes them in batches: one by one, each waits for its own fsync.
	// Each kind waits for the one before, which it refers to.
	err := inParallel(ctx, len(d.Exchanges), func(ctx context.Context, i int) error {
		x := d.Exchanges[i]
		if builtinExchange(x.Name) {
			return nil
		}
		def := meta.Exchange{VHost: in(x.VHost), Name: x.Name, Type: x.Type, Durable: x.Durable, AutoDelete: x.AutoDelete, Internal: x.Internal, Arguments: meta.Args{Table: ArgsTable(x.Arguments)}}
		if _, err := m.DeclareExchange(ctx, def); err != nil && !errors.Is(err, meta.ErrExists) {
			return fmt.Errorf("import exchange %q in vhost %q: %w", x.Name, def.VHost, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = inParallel(ctx, len(d.Queues), func(ctx context.Context, i int) error {
		q := d.Queues[i]
		def := meta.Queue{VHost: in(q.VHost), Name: q.Name, Durable: q.Durable, AutoDelete: q.AutoDelete, Arguments: meta.Args{Table: ArgsTable(q.Arguments)}, Node: node}
		if _, err := m.DeclareQueue(ctx, def); err != nil && !errors.Is(err, meta.ErrExists) {
			return fmt.Errorf("import queue %q in vhost %q: %w", q.Name, def.VHost, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return inParallel(ctx, len(d.Bindings), func(ctx context.Context, i int) error {
		b := d.Bindings[i]
		def := meta.Binding{VHost: in(b.VHost), Source: b.Source, Destination: b.Destination, DestinationType: b.DestinationType, RoutingKey: b.RoutingKey, Arguments: meta.Args{Table: ArgsTable(b.Arguments)}}
		if err := m.Bind(ctx, def); err != nil {
			return fmt.Errorf("import binding %q -> %s %q in vhost %q: %w", b.Source, b.DestinationType, b.Destination, def.VHost, err)
		}
		return nil
	})
}

// importWorkers is how many definitions of one kind Import applies at
// once.
const importWorkers = 64

// inParallel calls fn for 0..n-1, importWorkers at a time, and returns
// the first error, after which the calls not yet started are skipped.
func inParallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(importWorkers)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(ctx, i) })
	}
	return g.Wait()
}

// Tags accepts user tags as RabbitMQ does: a comma-separated string or a
// list of strings.
func Tags(v any) []string {
	var out []string
	switch t := v.(type) {
	case string:
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	case []string:
		out = append(out, t...)
	}
	return out
}

// ToMeta checks a user and hashes a clear-text password, as RabbitMQ
// takes either a password or a hash with its algorithm.
func (u User) ToMeta() (meta.User, error) {
	usr := meta.User{Name: u.Name, Tags: Tags(u.Tags)}
	for k, v := range u.Limits {
		n, ok := AMQPValue(v).(int64)
		if !ok {
			return meta.User{}, fmt.Errorf("user '%s': limit %s must be an integer", u.Name, k)
		}
		if usr.Limits == nil {
			usr.Limits = map[string]int64{}
		}
		usr.Limits[k] = n
	}
	switch {
	case u.Password != nil:
		h, err := auth.HashPassword(auth.SHA256, *u.Password)
		if err != nil {
			return meta.User{}, err
		}
		usr.PasswordHash, usr.HashingAlgorithm = h, auth.SHA256
	case u.PasswordHash != nil:
		alg := u.HashingAlgorithm
		if alg == "" {
			alg = auth.SHA256
		}
		if alg != auth.SHA256 && alg != auth.SHA512 {
			return meta.User{}, fmt.Errorf("user '%s': unsupported hashing_algorithm '%s' (supported: %s, %s)", u.Name, alg, auth.SHA256, auth.SHA512)
		}
		// Empty is a user without a password; anything else is base64.
		if *u.PasswordHash != "" {
			if _, err := base64.StdEncoding.DecodeString(*u.PasswordHash); err != nil {
				return meta.User{}, fmt.Errorf("user '%s': password_hash is not valid base64", u.Name)
			}
		}
		usr.PasswordHash, usr.HashingAlgorithm = *u.PasswordHash, alg
	default:
		return meta.User{}, fmt.Errorf("user '%s': password or password_hash must be set", u.Name)
	}
	return usr, nil
}

// NumbersAsFloat turns json.Number values into float64, as decoded JSON
// holds numbers everywhere else.
func NumbersAsFloat(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = floatValue(v)
	}
	return out
}

func floatValue(v any) any {
	switch t := v.(type) {
	case json.Number:
		f, _ := t.Float64()
		return f
	case map[string]any:
		return NumbersAsFloat(t)
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = floatValue(x)
		}
		return out
	}
	return v
}
