package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/warren-mq/warren/internal/meta"
)

// definitions is RabbitMQ's definitions file: what export writes and
// import reads.
type definitions struct {
	RabbitVersion    string            `json:"rabbit_version,omitempty"`
	RabbitMQVersion  string            `json:"rabbitmq_version,omitempty"`
	ProductName      string            `json:"product_name,omitempty"`
	ProductVersion   string            `json:"product_version,omitempty"`
	Users            []userDef         `json:"users,omitempty"`
	VHosts           []vhostDef        `json:"vhosts,omitempty"`
	Permissions      []meta.Permission `json:"permissions,omitempty"`
	TopicPermissions []map[string]any  `json:"topic_permissions"`
	Parameters       []map[string]any  `json:"parameters"`
	GlobalParameters []map[string]any  `json:"global_parameters"`
	Policies         []map[string]any  `json:"policies"`
	Queues           []queueDef        `json:"queues"`
	Exchanges        []exchangeDef     `json:"exchanges"`
	Bindings         []bindingDef      `json:"bindings"`
}

type userDef struct {
	Name             string  `json:"name"`
	PasswordHash     *string `json:"password_hash,omitempty"`
	Password         *string `json:"password,omitempty"`
	HashingAlgorithm string  `json:"hashing_algorithm,omitempty"`
	Tags             any     `json:"tags"`
	Limits           obj     `json:"limits"`
}

type vhostDef struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
}

type queueDef struct {
	Name       string         `json:"name"`
	VHost      string         `json:"vhost,omitempty"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Arguments  map[string]any `json:"arguments"`
}

type exchangeDef struct {
	Name       string         `json:"name"`
	VHost      string         `json:"vhost,omitempty"`
	Type       string         `json:"type"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Internal   bool           `json:"internal"`
	Arguments  map[string]any `json:"arguments"`
}

type bindingDef struct {
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

// export builds the definitions of the node, or of one vhost (without
// users, vhosts and permissions, and without vhost fields, as RabbitMQ's
// per-vhost export).
func (s *Server) export(vhost string) definitions {
	d := s.b.Meta().Snapshot()
	out := definitions{
		TopicPermissions: []map[string]any{}, Parameters: []map[string]any{},
		GlobalParameters: []map[string]any{}, Policies: []map[string]any{},
		Queues: []queueDef{}, Exchanges: []exchangeDef{}, Bindings: []bindingDef{},
	}
	out.RabbitVersion, out.RabbitMQVersion = s.cfg.Version, s.cfg.Version
	out.ProductName, out.ProductVersion = s.cfg.Product, s.cfg.Version
	keep := func(v string) (string, bool) {
		if vhost == "" {
			return v, true
		}
		return "", v == vhost
	}
	if vhost == "" {
		out.Users = []userDef{}
		for _, u := range d.Users {
			h := u.PasswordHash
			tags := u.Tags
			if tags == nil {
				tags = []string{}
			}
			out.Users = append(out.Users, userDef{Name: u.Name, PasswordHash: &h, HashingAlgorithm: u.HashingAlgorithm, Tags: tags, Limits: obj{}})
		}
		out.VHosts = []vhostDef{}
		for _, v := range d.VHosts {
			out.VHosts = append(out.VHosts, vhostDef{Name: v.Name, Description: v.Description, Tags: v.Tags})
		}
		out.Permissions = append([]meta.Permission{}, d.Permissions...)
	}
	for _, q := range d.Queues {
		v, ok := keep(q.VHost)
		if !ok || q.Exclusive {
			continue
		}
		out.Queues = append(out.Queues, queueDef{Name: q.Name, VHost: v, Durable: q.Durable, AutoDelete: q.AutoDelete, Arguments: tableJSON(q.Arguments.Table)})
	}
	for _, x := range d.Exchanges {
		v, ok := keep(x.VHost)
		if !ok || builtinExchange(x.Name) {
			continue
		}
		out.Exchanges = append(out.Exchanges, exchangeDef{Name: x.Name, VHost: v, Type: x.Type, Durable: x.Durable, AutoDelete: x.AutoDelete, Internal: x.Internal, Arguments: tableJSON(x.Arguments.Table)})
	}
	for _, b := range d.Bindings {
		v, ok := keep(b.VHost)
		if !ok {
			continue
		}
		out.Bindings = append(out.Bindings, bindingDef{Source: b.Source, VHost: v, Destination: b.Destination, DestinationType: b.DestinationType, RoutingKey: b.RoutingKey, Arguments: tableJSON(b.Arguments.Table)})
	}
	return out
}

func (s *Server) exportDefinitions(w http.ResponseWriter, r *http.Request, u *user) error {
	vhost := r.PathValue("vhost")
	if vhost != "" {
		if _, err := s.vhostParam(r, u); err != nil {
			return err
		}
	}
	if r.URL.Query().Get("download") != "" {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": r.URL.Query().Get("download")}))
	}
	return writeJSON(w, s.export(vhost))
}

func (s *Server) importDefinitions(w http.ResponseWriter, r *http.Request, u *user) error {
	vhost := r.PathValue("vhost")
	if vhost != "" {
		if _, err := s.vhostParam(r, u); err != nil {
			return err
		}
	}
	var raw io.Reader = r.Body
	// The web UI uploads the file as a form.
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" {
		f, _, err := r.FormFile("file")
		if err != nil {
			return errBadRequest("definitions upload: %v", err)
		}
		defer f.Close()
		raw = f
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, io.NopCloser(raw), 64<<20))
	dec.UseNumber()
	var d definitions
	if err := dec.Decode(&d); err != nil {
		return errBadRequest("not_json: %v", err)
	}
	if err := s.importDefs(r.Context(), d, vhost); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return err
		}
		return errBadRequest("%v", err)
	}
	return noContent(w)
}

// importDefs applies a definitions file: users, vhosts, permissions, then
// exchanges, queues and bindings. With vhost set, every object goes into
// that vhost. Sections the node cannot honour yet are refused before
// anything is applied, so a file is never half imported for that reason.
func (s *Server) importDefs(ctx context.Context, d definitions, vhost string) error {
	if len(d.TopicPermissions) > 0 {
		return errBadRequest("definitions contain topic_permissions, which this node does not support yet")
	}
	if len(d.Policies) > 0 {
		return errBadRequest("definitions contain policies, which this node does not support yet")
	}
	if len(d.Parameters) > 0 {
		return errBadRequest("definitions contain parameters (federation, shovel), which this node does not support")
	}
	for _, p := range d.GlobalParameters {
		// The cluster id is RabbitMQ's own bookkeeping, regenerated by each
		// cluster; it has no meaning here.
		if p["name"] != "internal_cluster_id" {
			return errBadRequest("definitions contain global parameter %v, which this node does not support", p["name"])
		}
	}
	users := make([]meta.User, 0, len(d.Users))
	for _, ud := range d.Users {
		usr, err := userBody{Name: ud.Name, Password: ud.Password, PasswordHash: ud.PasswordHash, HashingAlgorithm: ud.HashingAlgorithm, Tags: ud.Tags}.toUser(ud.Name)
		if err != nil {
			return err
		}
		users = append(users, usr)
	}
	m := s.b.Meta()
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
	in := func(v string) string {
		if vhost != "" {
			return vhost
		}
		return v
	}
	for _, x := range d.Exchanges {
		if builtinExchange(x.Name) {
			continue
		}
		def := meta.Exchange{VHost: in(x.VHost), Name: x.Name, Type: x.Type, Durable: x.Durable, AutoDelete: x.AutoDelete, Internal: x.Internal, Arguments: meta.Args{Table: argsTable(x.Arguments)}}
		if _, err := m.DeclareExchange(ctx, def); err != nil && !errors.Is(err, meta.ErrExists) {
			return fmt.Errorf("import exchange %q in vhost %q: %w", x.Name, def.VHost, err)
		}
	}
	for _, q := range d.Queues {
		def := meta.Queue{VHost: in(q.VHost), Name: q.Name, Durable: q.Durable, AutoDelete: q.AutoDelete, Arguments: meta.Args{Table: argsTable(q.Arguments)}, Node: s.b.NodeName()}
		if _, err := m.DeclareQueue(ctx, def); err != nil && !errors.Is(err, meta.ErrExists) {
			return fmt.Errorf("import queue %q in vhost %q: %w", q.Name, def.VHost, err)
		}
	}
	for _, b := range d.Bindings {
		def := meta.Binding{VHost: in(b.VHost), Source: b.Source, Destination: b.Destination, DestinationType: b.DestinationType, RoutingKey: b.RoutingKey, Arguments: meta.Args{Table: argsTable(b.Arguments)}}
		if err := m.Bind(ctx, def); err != nil {
			return fmt.Errorf("import binding %q -> %s %q in vhost %q: %w", b.Source, b.DestinationType, b.Destination, def.VHost, err)
		}
	}
	return nil
}
