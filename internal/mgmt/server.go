// Package mgmt is a node's management HTTP API, compatible with RabbitMQ's
// management plugin: the same paths, JSON field names, status codes and
// user tags, so that rabbitmqadmin, monitoring scripts and API clients work
// unchanged.
//
// Reads come from the broker's introspection methods and the local copy of
// the definitions. Changes that AMQP can express (declare, bind, delete,
// purge, publish, get) go through an in-process AMQP connection logged in
// as the HTTP user, as RabbitMQ's plugin does, so permissions, validation
// and error texts are those of the broker itself.
package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/mgmt/ui"
)

// Broker is what the API needs from a node.
type Broker interface {
	Authenticate(user, pass string, from net.Addr) (meta.User, error)
	ServeConn(nc net.Conn) error
	// Connections, Channels and Consumers are this node's, for its
	// metrics; the Cluster ones are every node's, for the API.
	Connections() []broker.ConnectionInfo
	Channels() []broker.ChannelInfo
	Consumers(vhost string) []broker.ConsumerInfo
	ClusterConnections() []broker.ConnectionInfo
	ClusterChannels() []broker.ChannelInfo
	ClusterConsumers(vhost string) []broker.ConsumerInfo
	CloseConnectionOn(node, name, reason string) bool
	Queues(vhost string) []broker.QueueInfo
	// ClusterQueues is Queues over every node of the cluster.
	ClusterQueues(vhost string) []broker.QueueInfo
	ClusterReports() []broker.NodeReport
	QuorumCritical() (critical bool, down []string)
	MirrorSyncCritical() []meta.Queue
	QueueRefs(vhost string) []broker.QueueRef
	QueueTotals(keep func(vhost string) bool) (queues, ready, unacked, consumers int)
	Queue(vhost, name string) (broker.QueueInfo, []broker.ConsumerInfo, bool)
	MessageTotals(vhost string) broker.MessageCounts
	Resources() broker.Resources
	Meta() *meta.Node
	NodeName() string
	ClusterName() string
	Started() time.Time
}

// Listener is a port the node listens on, for the overview and the
// listener health checks.
type Listener struct {
	Protocol string // "amqp", "http", "clustering", "prometheus"
	Addr     string // host:port
}

// Config configures a Server.
type Config struct {
	Broker Broker
	// Logger receives request errors. Default: discard.
	Logger *slog.Logger
	// Listeners are the node's listening ports.
	Listeners []Listener
	// SampleInterval is how often rates are computed. Default 5s, as
	// RabbitMQ's collect_statistics_interval.
	SampleInterval time.Duration
	// Version is reported as the product version.
	Version string
	// Product is reported as the product name. Default "warren".
	Product string
}

// Server is the management API as an http.Handler. Run samples rates
// until its context ends.
type Server struct {
	cfg   Config
	b     Broker
	log   *slog.Logger
	mux   *router
	rates *rates
}

// New returns the API for a node.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SampleInterval == 0 {
		cfg.SampleInterval = 5 * time.Second
	}
	if cfg.Product == "" {
		cfg.Product = "warren"
	}
	s := &Server{cfg: cfg, b: cfg.Broker, log: cfg.Logger, mux: &router{}, rates: newRates()}
	s.routes()
	return s
}

// Run samples message counters for rates until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.SampleInterval)
	defer t.Stop()
	s.rates.sample(s.b)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.rates.sample(s.b)
		}
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("management request panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
			writeError(w, http.StatusInternalServerError, "internal_server_error", "internal error")
		}
	}()
	// Everything outside /api/ is the web UI's; unknown API paths keep
	// the API's own JSON 404.
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		ui.Handler{}.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// apiError is an error with the status and JSON body RabbitMQ gives.
type apiError struct {
	status int
	kind   string // the "error" field
	reason string
}

func (e *apiError) Error() string { return e.kind + ": " + e.reason }

func errNotFound() *apiError {
	return &apiError{http.StatusNotFound, "Object Not Found", "Not Found"}
}

func errBadRequest(format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, a...)}
}

func errNotAuthorised(reason string) *apiError {
	return &apiError{http.StatusUnauthorized, "not_authorised", reason}
}

func writeError(w http.ResponseWriter, status int, kind, reason string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="RabbitMQ Management"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": kind, "reason": reason})
}

// user is an authenticated caller.
type user struct {
	name, pass string
	tags       []string
	from       net.Addr
}

func (u *user) is(tag string) bool { return slices.Contains(u.tags, tag) }

func (u *user) admin() bool { return u.is("administrator") }

// monitor may see every vhost's objects and the node's details.
func (u *user) monitor() bool { return u.admin() || u.is("monitoring") }

// policymaker may manage policies and parameters in its vhosts.
func (u *user) policymaker() bool { return u.admin() || u.is("policymaker") }

// access is what a handler needs to be called: every handler needs a
// management user; some need more.
type access uint8

const (
	anyUser access = iota // any user with a management tag
	monitoring
	policymaking
	administrator
	noAuth // no login at all
)

type handler func(w http.ResponseWriter, r *http.Request, u *user) error

// handle registers a handler behind authentication and tag checks.
func (s *Server) handle(pattern string, need access, h handler) {
	s.mux.add(pattern, func(w http.ResponseWriter, r *http.Request) {
		var u *user
		if need != noAuth {
			var err *apiError
			if u, err = s.login(r); err != nil {
				writeError(w, err.status, err.kind, err.reason)
				return
			}
			if e := u.allowed(need); e != nil {
				writeError(w, e.status, e.kind, e.reason)
				return
			}
		}
		if err := h(w, r, u); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				s.log.Warn("management request failed", "method", r.Method, "path", r.URL.Path, "error", err)
				ae = &apiError{http.StatusInternalServerError, "internal_server_error", err.Error()}
			}
			writeError(w, ae.status, ae.kind, ae.reason)
		}
	})
}

func (s *Server) login(r *http.Request) (*user, *apiError) {
	name, pass, ok := r.BasicAuth()
	if !ok {
		return nil, errNotAuthorised("Not_Authorized")
	}
	from := remoteAddr(r)
	mu, err := s.b.Authenticate(name, pass, from)
	if err != nil {
		if errors.Is(err, broker.ErrLoopbackOnly) {
			return nil, errNotAuthorised("User can only log in via localhost")
		}
		return nil, errNotAuthorised("Login failed")
	}
	u := &user{name: name, pass: pass, tags: mu.Tags, from: from}
	if !u.admin() && !u.is("monitoring") && !u.is("policymaker") && !u.is("management") {
		return nil, errNotAuthorised("Not management user")
	}
	return u, nil
}

func (u *user) allowed(need access) *apiError {
	ok := true
	switch need {
	case monitoring:
		ok = u.monitor()
	case policymaking:
		ok = u.policymaker()
	case administrator:
		ok = u.admin()
	}
	if !ok {
		return errNotAuthorised("Not administrator user")
	}
	return nil
}

func remoteAddr(r *http.Request) net.Addr {
	if ap, err := netAddrPort(r.RemoteAddr); err == nil {
		return ap
	}
	return &net.TCPAddr{}
}

func netAddrPort(s string) (*net.TCPAddr, error) {
	return net.ResolveTCPAddr("tcp", s)
}

// canSee reports whether u may see objects of vhost: administrators see
// all, others the vhosts they have permissions in.
func (s *Server) canSee(u *user, vhost string) bool {
	if u.admin() {
		return true
	}
	_, ok := s.b.Meta().Permission(u.name, vhost)
	return ok
}

// vhostParam returns the {vhost} path value after checking that it exists
// and that u may use it.
func (s *Server) vhostParam(r *http.Request, u *user) (string, error) {
	v := r.PathValue("vhost")
	if !s.b.Meta().VHostExists(v) {
		return "", errNotFound()
	}
	if !s.canSee(u, v) {
		return "", errNotAuthorised("User not authorised to access virtual host")
	}
	return v, nil
}

// queueParam returns the {vhost} and {name} path values of a queue after
// checking that u may use the vhost and that the queue exists.
func (s *Server) queueParam(r *http.Request, u *user) (vhost, name string, err error) {
	if vhost, err = s.vhostParam(r, u); err != nil {
		return "", "", err
	}
	name = r.PathValue("name")
	if _, ok := s.b.Meta().Queue(vhost, name); !ok {
		return "", "", errNotFound()
	}
	return vhost, name, nil
}

// readJSON decodes a request body into v; an empty body leaves v as is.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<20))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		var syn *json.SyntaxError
		if errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errBadRequest("not_json")
		}
		return errBadRequest("%v", err)
	}
	return nil
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	return json.NewEncoder(w).Encode(v)
}

// created answers a PUT: 201 when it made something new, 204 otherwise.
func created(w http.ResponseWriter, isNew bool) error {
	if isNew {
		w.WriteHeader(http.StatusCreated)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleted answers a DELETE whose definitions command returned err: 204
// when it went, 404 when there was nothing to delete.
func deleted(w http.ResponseWriter, err error) error {
	if errors.Is(err, meta.ErrNotFound) {
		return errNotFound()
	}
	if err != nil {
		return err
	}
	return noContent(w)
}

// msTime is a time in milliseconds since the epoch, as the API reports
// connected_at.
func msTime(t time.Time) int64 { return t.UnixMilli() }
