package lb

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mq/warren/internal/lb/balance"
	"github.com/warren-mq/warren/internal/lb/config"
	"github.com/warren-mq/warren/internal/lb/health"
)

// AdminState is a server's administrative state, set by config or the
// runtime API.
type AdminState int

// Administrative states.
const (
	AdminReady AdminState = iota
	AdminDrain
	AdminMaint
)

// counters are cumulative statistics shared by frontends, backends and servers.
type counters struct {
	cur, max, total     atomic.Int64
	bytesIn, bytesOut   atomic.Int64
	connErrors          atomic.Int64 // econ
	respErrors          atomic.Int64 // eresp
	retries, redispatch atomic.Int64
	denied              atomic.Int64
	queueMax            atomic.Int64
	lbTotal             atomic.Int64
	lastSess            atomic.Int64 // unix nano of the last session
}

func (c *counters) enter() {
	n := c.cur.Add(1)
	c.total.Add(1)
	c.lastSess.Store(time.Now().UnixNano())
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			return
		}
	}
}

func (c *counters) leave() { c.cur.Add(-1) }

// attempt counts another connection attempt of a session that already
// holds its slot: HAProxy counts every attempt in the total (stot).
func (c *counters) attempt() {
	c.total.Add(1)
	c.lastSess.Store(time.Now().UnixNano())
}

// Server is a runtime server. Fields below the line are guarded by the
// owning backend's mu.
type Server struct {
	Name  string
	stats counters
	// index is the server's position in its backend's balancer.
	index atomic.Int64
	// conf is the server line; replaced on reload, read by live sessions.
	conf atomic.Pointer[config.Server]

	// backend is the backend currently owning the server; it changes on
	// reload when the server is carried over.
	backend atomic.Pointer[Backend]

	health      health.State
	admin       AdminState
	weight      int // runtime weight (set weight), initially cfg weight
	lastChange  time.Time
	downSince   time.Time
	downtime    time.Duration
	checkStatus string // e.g. "L4OK", "L4CON"
	checkDesc   string // e.g. "Layer4 connection problem"
	checkInfo   string
	checkDur    time.Duration
	lastCheck   time.Time
	checkFails  int64
	downTrans   int64
	// checkStop stops the health checker; nil when not checking.
	checkStop context.CancelFunc
	// queue holds connections that must go to this server and wait for
	// one of its slots (HAProxy's server queue).
	queue pendQueue

	// sessMu guards sessions: the live connections through this server,
	// client side mapped to server side. Lock order: Backend.mu, sessMu.
	sessMu   sync.Mutex
	sessions map[*net.TCPConn]*net.TCPConn
}

// addSession records a live connection through the server.
func (s *Server) addSession(client, server *net.TCPConn) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if s.sessions == nil {
		s.sessions = map[*net.TCPConn]*net.TCPConn{}
	}
	s.sessions[client] = server
}

// removeSession forgets a connection that ended.
func (s *Server) removeSession(client *net.TCPConn) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	delete(s.sessions, client)
}

// shutdownSessions closes every live connection through the server and
// returns how many there were.
func (s *Server) shutdownSessions() int {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	for c, srv := range s.sessions {
		_ = c.Close()
		_ = srv.Close()
	}
	return len(s.sessions)
}

func (s *Server) config() *config.Server { return s.conf.Load() }

func (s *Server) idx() int { return int(s.index.Load()) }

// usableLocked reports whether the balancer may hand out the server.
func (s *Server) usableLocked() bool {
	return s.admin == AdminReady && s.health.Up()
}

// statusLocked returns the status column of the stats page.
func (s *Server) statusLocked() string {
	switch {
	case s.admin == AdminMaint:
		return "MAINT"
	case s.admin == AdminDrain && s.health.Up():
		return "DRAIN"
	case !s.config().Check:
		if s.admin == AdminDrain {
			return "DRAIN"
		}
		return "no check"
	}
	return s.health.Status()
}

// Backend is a runtime backend: servers, balancer and queue.
type Backend struct {
	Name string
	cfg  *config.Proxy
	lb   *LB
	// stats is shared with the backend of the same name after a reload.
	stats *counters

	// mu guards the fields below, and the queue and the fields marked as
	// guarded by it of every server the backend owns (Server.backend).
	mu       sync.Mutex
	servers  []*Server
	balancer *balance.Balancer
	// queue holds connections waiting for a slot on any server (HAProxy's
	// backend queue).
	queue pendQueue
	// retired is set when a reload replaced the backend: next is the
	// backend of the same name that took over its queue and servers, nil
	// when the new configuration has none.
	retired    bool
	next       *Backend
	lastChange time.Time
	downSince  time.Time
	downtime   time.Duration
}

// serverLoad exposes live server load to the balancer; used under mu.
type serverLoad []*Server

// Conns counts served and queued connections, as HAProxy's leastconn does.
func (l serverLoad) Conns(i int) int { return int(l[i].stats.cur.Load()) + l[i].queue.len() }

// Full reports that a server with a maxconn is at it or has connections
// waiting for it, so it takes no new connection ahead of them.
func (l serverLoad) Full(i int) bool {
	m := l[i].config().MaxConn
	return m > 0 && (l[i].queue.len() > 0 || int(l[i].stats.cur.Load()) >= m)
}

// Accepts reports whether leastconn may choose the server, queueing on it
// if needed: served plus queued connections below maxconn plus maxqueue.
func (l serverLoad) Accepts(i int) bool {
	sc := l[i].config()
	return sc.MaxConn <= 0 || int(l[i].stats.cur.Load())+l[i].queue.len() < sc.MaxConn+max(sc.MaxQueue, 0)
}

func newBackend(lb *LB, px *config.Proxy) *Backend {
	return &Backend{Name: px.Name, cfg: px, lb: lb, lastChange: time.Now(), stats: &counters{}}
}

// syncServerLocked pushes a server's state into the balancer.
func (b *Backend) syncServerLocked(s *Server) {
	b.balancer.SetServer(s.idx(), s.weight, s.usableLocked(), s.config().Backup)
	if b.balancer.ActiveUsable()+b.balancer.BackupUsable() == 0 {
		if b.downSince.IsZero() {
			b.downSince = time.Now()
			b.lastChange = b.downSince
		}
	} else if !b.downSince.IsZero() {
		b.downtime += time.Since(b.downSince)
		b.downSince = time.Time{}
		b.lastChange = time.Now()
	}
}

// server returns the named server or nil.
func (b *Backend) server(name string) *Server {
	for _, s := range b.servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// counts returns usable active and backup servers.
func (b *Backend) countsLocked() (act, bck int) {
	for _, s := range b.servers {
		if s.usableLocked() && s.weight > 0 {
			if s.config().Backup {
				bck++
			} else {
				act++
			}
		}
	}
	return act, bck
}

// dialServer connects to a server, with the backend's connect timeout.
// Without one the connection attempt lasts until the kernel gives up,
// as in HAProxy.
func (b *Backend) dialServer(ctx context.Context, s *Server, clientAddr net.Addr) (*net.TCPConn, error) {
	timeout := b.cfg.Timeouts.Connect
	addr := s.config().Addr
	if _, _, err := net.SplitHostPort(addr); err != nil {
		// No port on the server line: use the port the client connected to.
		if ta, ok := clientAddr.(*net.TCPAddr); ok {
			addr = net.JoinHostPort(addr, fmt.Sprint(ta.Port))
		}
	}
	// The server address is one literal IP (the configuration resolved
	// names), so Happy Eyeballs has nothing to race: FallbackDelay < 0
	// skips sorting the address list.
	d := net.Dialer{KeepAlive: -1, FallbackDelay: -1}
	cctx := connectContext{Context: ctx}
	if timeout > 0 {
		cctx.deadline = time.Now().Add(timeout)
	}
	c, err := d.DialContext(&cctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	if b.cfg.Options.ServerTCPKA {
		_ = tc.SetKeepAlive(true)
	}
	return tc, nil
}

// connectContext is the context of one connection attempt to a server:
// the LB's context (Done, Err and Value, so the dial registers directly
// with it to stop when the LB closes) plus the connect deadline, which
// the runtime poller enforces as the connecting socket's write deadline.
// It spares each attempt what context.WithDeadline costs the Dialer's
// Timeout: a runtime timer, and a child context of its own registered
// with the LB's context under its lock.
type connectContext struct {
	context.Context
	// deadline is zero when the attempt has no time limit.
	deadline time.Time
}

// Deadline returns the connect deadline, if any.
func (c *connectContext) Deadline() (time.Time, bool) {
	return c.deadline, !c.deadline.IsZero()
}
