package ctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/cluster"
	"github.com/warren-mq/warren/internal/meta"
)

// Broker is what commands need from a running broker.
type Broker interface {
	Meta() *meta.Node
	NodeName() string
	ClusterName() string
	Authenticate(user, pass string, from net.Addr) (meta.User, error)
	Queues(vhost string) []broker.QueueInfo
	ClusterQueues(vhost string) []broker.QueueInfo
	Connections() []broker.ConnectionInfo
	Channels() []broker.ChannelInfo
	Consumers(vhost string) []broker.ConsumerInfo
	// ClusterConnections and CloseConnectionOn reach every node, for
	// close_connection.
	ClusterConnections() []broker.ConnectionInfo
	CloseConnectionOn(node, name, reason string) bool
	PurgeQueue(vhost, name string) (int, error)
	DeleteQueue(ctx context.Context, vhost, name string, ifUnused, ifEmpty bool) (int, error)
	Resources() broker.Resources
	// Unreachable lists the other members the node cannot reach now.
	Unreachable() []string
	// MirrorSyncCritical lists the mirrored queues this node leads with
	// no in-sync mirror online.
	MirrorSyncCritical() []meta.Queue
	// SyncQueue starts (and waits for) or stops the synchronisation of
	// a mirrored queue's mirrors.
	SyncQueue(ctx context.Context, vhost, name string, cancel bool) error
	// Draining reports whether the node is in maintenance.
	Draining() bool
	SetMemoryHighWatermark(relative float64, absolute uint64) error
	SetDiskFreeLimit(limit uint64)
	Config() broker.Config
	Started() time.Time
}

// App is the node's application, which operators stop and start without
// stopping the process, as rabbitmqctl stop_app and start_app do.
type App interface {
	// Broker returns the running broker, or nil while the app is stopped.
	Broker() Broker
	StopApp(ctx context.Context) error
	StartApp(ctx context.Context) error
	Clustered
	// Stop asks the whole node to stop; it returns at once.
	Stop()
	// Drain puts the node into maintenance and returns the mirrored
	// queues it still leads; Revive takes it out.
	Drain(ctx context.Context) ([]meta.Queue, error)
	Revive(ctx context.Context) error
	// Info describes the node for status and environment.
	Info() NodeInfo
}

// NodeInfo is what status and environment report besides the broker.
type NodeInfo struct {
	Name        string
	Version     string
	PID         int
	DataDir     string
	ConfigFiles []string
	Listeners   []Listener
	Started     time.Time
	Settings    map[string]any // effective configuration, for environment
}

// Listener is a port the node listens on.
type Listener struct {
	Protocol, Addr string
}

// Server runs commands sent to a node.
type Server struct {
	app  App
	log  *slog.Logger
	cmds map[string]*command // read-only
}

// NewServer returns the command server of a node.
func NewServer(app App, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{app: app, log: log, cmds: allCommands()}
}

// requestTimeout bounds one command on the node.
const requestTimeout = 5 * time.Minute

// ServeConn answers one request on an authenticated connection and closes
// it.
func (s *Server) ServeConn(nc net.Conn, peer string) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(requestTimeout))
	var req Request
	if err := cluster.ReadJSON(nc, &req); err != nil {
		s.log.Debug("ctl: bad request", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp := s.Run(ctx, &req)
	if resp.Error != "" {
		s.log.Info("ctl command failed", "command", req.Command, "error", resp.Error)
	} else {
		s.log.Info("ctl command", "command", req.Command)
	}
	if err := cluster.WriteJSON(nc, resp); err != nil {
		s.log.Debug("ctl: reply", "error", err)
	}
	if resp.after != nil {
		resp.after()
	}
}

// Run executes one request.
func (s *Server) Run(ctx context.Context, req *Request) (resp Response) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("ctl command panicked", "command", req.Command, "panic", r)
			resp = failf(ExitSoftware, "internal error running %s", req.Command)
		}
	}()
	c, ok := s.cmds[req.Command]
	if !ok {
		return failf(ExitUsage, "Command '%s' not found.", req.Command)
	}
	// Another node gathering a cluster-wide listing asks for this node's
	// rows only.
	local := req.Options[localOption] != ""
	delete(req.Options, localOption)
	asked := *req // before defaults are filled in, for the other nodes
	if msg := c.check(req); msg != "" {
		return failf(ExitUsage, "%s", msg)
	}
	if req.VHost == "" {
		req.VHost = "/"
	}
	if c.run == nil {
		return failf(ExitUnavailable, "%s is not supported by this node yet", req.Command)
	}
	var b Broker
	if c.needsApp {
		if b = s.app.Broker(); b == nil {
			return failf(ExitUnavailable, "the broker application is not running on node %s.\n * Suggestion: start it with \"warrenctl start_app\" and try again", s.app.Info().Name)
		}
	}
	resp = c.run(ctx, s, b, req, c)
	if c.clusterWide && !local && resp.Error == "" {
		s.gatherRows(ctx, &asked, &resp)
	}
	return resp
}

// localOption marks a request for one node's rows of a cluster-wide
// listing.
const localOption = "_local"

// gatherRows adds the rows of every other running member to a listing;
// a member that does not answer in time is left out, as rabbitmqctl
// leaves out unreachable nodes.
func (s *Server) gatherRows(ctx context.Context, req *Request, resp *Response) {
	self := s.app.Info().Name
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		more [][]any
	)
	for _, m := range s.app.Members() {
		if m.Name == self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := *req
			r.Options = map[string]string{localOption: "true"}
			for k, v := range req.Options {
				r.Options[k] = v
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			var other Response
			if err := s.app.Identity().Call(cctx, m.Addr, cluster.ServiceCtl, &r, &other); err != nil || other.Error != "" {
				return
			}
			mu.Lock()
			more = append(more, other.Rows...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	resp.Rows = append(resp.Rows, more...)
}

func failf(code int, format string, a ...any) Response {
	return Response{Error: fmt.Sprintf(format, a...), Code: code}
}

// metaFail turns a definitions error into the answer rabbitmqctl gives.
func metaFail(err error, notFound string, code int) Response {
	if errors.Is(err, meta.ErrNotFound) {
		return failf(code, "%s", notFound)
	}
	return failf(ExitSoftware, "%v", err)
}

func ok(text string) Response { return Response{Text: text} }
