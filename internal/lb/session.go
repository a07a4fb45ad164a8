package lb

import (
	"context"
	"errors"
	"net"
	"runtime/debug"
	"time"

	"github.com/warren-mq/warren/internal/lb/balance"
)

// session is one proxied client connection, for logging.
type session struct {
	accepted time.Time
	client   *net.TCPConn
	fe       *Frontend
	be       *Backend
	srv      *Server
	retries  int
	// redispatched is set when the last retry went to another server.
	redispatched bool
	waitQueue    time.Duration
	// srvQueuePos and beQueuePos are HAProxy's %sq and %bq: how many
	// connections left the server's and the backend's queue ahead of
	// this one, itself included, while it waited there.
	srvQueuePos, beQueuePos int64
	connTime                time.Duration // -1 when never connected
	result                  pipeResult
	feConn                  int64
	beConn                  int64
	srvConn                 int64
	actConn                 int64
}

// serve connects one client connection to a server. It owns client:
// finish, called exactly once when the connection is over, releases what
// the accept loop reserved. On success the data is copied by two fresh
// goroutines and serve returns at once, so its own stack (grown by the
// dial) is not kept for the life of an idle connection.
func (fe *Frontend) serve(ctx context.Context, client *net.TCPConn, finish func()) {
	ss := &session{accepted: time.Now(), client: client, fe: fe, connTime: -1}
	end := func() {
		_ = client.Close()
		fe.stats.leave()
		fe.lb.actConn.Add(-1)
		finish()
	}
	handedOff := false
	defer func() {
		if r := recover(); r != nil {
			fe.lb.log.Error("panic in connection", "frontend", fe.Name, "panic", r, "stack", string(debug.Stack()))
		}
		if !handedOff {
			end()
		}
	}()
	ss.actConn = fe.lb.actConn.Load()
	ss.feConn = fe.stats.cur.Load()
	if fe.cfg.Options.ClientTCPKA {
		_ = client.SetKeepAlive(true)
	}
	be := fe.route()
	if be == nil {
		ss.result.term = "SC"
		fe.lb.logSession(ss)
		return
	}
	ss.be = be
	be.stats.enter()
	ss.beConn = be.stats.cur.Load()
	server, err := be.connect(ctx, ss)
	if err != nil {
		be.stats.leave()
		// As in HAProxy's log, the counts are those at the end: the
		// process and frontend ones with the session, the backend and
		// server ones without it.
		ss.actConn, ss.feConn = fe.lb.actConn.Load(), fe.stats.cur.Load()
		ss.beConn = be.stats.cur.Load()
		if ss.srv != nil {
			ss.srvConn = ss.srv.stats.cur.Load()
		}
		switch {
		case errors.Is(err, errQueueTimeout):
			ss.result.term = "sQ"
		case errors.Is(err, errQueueFull):
			ss.result.term = "SQ"
		case errors.Is(err, errClientAbort):
			ss.result.term = "CQ"
		default:
			ss.result.term = "SC"
		}
		fe.lb.logSession(ss)
		return
	}
	ss.srvConn = ss.srv.stats.cur.Load()
	ss.srv.addSession(client, server)
	done := func(res pipeResult) {
		defer end()
		ss.srv.removeSession(client)
		// The log line shows the counts at the end: as in HAProxy, the
		// process and frontend ones with the session, the backend and
		// server ones without it.
		ss.actConn, ss.feConn = fe.lb.actConn.Load(), fe.stats.cur.Load()
		_ = server.Close()
		ss.srvConn = be.release(ss.srv)
		be.stats.leave()
		ss.beConn = be.stats.cur.Load()
		ss.result = res
		fe.stats.bytesIn.Add(res.toServer)
		fe.stats.bytesOut.Add(res.toClient)
		be.stats.bytesIn.Add(res.toServer)
		be.stats.bytesOut.Add(res.toClient)
		ss.srv.stats.bytesIn.Add(res.toServer)
		ss.srv.stats.bytesOut.Add(res.toClient)
		if res.term == "SD" || res.term == "sD" {
			be.stats.respErrors.Add(1)
			ss.srv.stats.respErrors.Add(1)
		}
		fe.lb.logSession(ss)
	}
	handedOff = true
	startPipe(client, server, be.pipeTimeouts(fe), &fe.lb.bufs, fe.lb.goCounted, done)
}

// goCounted runs f in a goroutine counted by the LB's WaitGroup. Callers
// already hold a counted goroutine, so the count never drops to zero
// while they call it.
func (lb *LB) goCounted(f func()) {
	lb.wg.Add(1)
	go func() {
		defer lb.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				lb.log.Error("panic in connection copy", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		f()
	}()
}

// pipeTimeouts combines the frontend's client-side and the backend's
// server-side timeouts; timeout tunnel, when set, replaces both.
func (b *Backend) pipeTimeouts(fe *Frontend) pipeTimeouts {
	t := pipeTimeouts{
		client:    fe.cfg.Timeouts.Client,
		server:    b.cfg.Timeouts.Server,
		clientFin: fe.cfg.Timeouts.ClientFin,
		serverFin: b.cfg.Timeouts.ServerFin,
	}
	if b.cfg.Timeouts.Tunnel > 0 {
		t.client, t.server = b.cfg.Timeouts.Tunnel, b.cfg.Timeouts.Tunnel
	}
	return t
}

// connect picks a server and connects to it, retrying failed connections
// up to "retries" times as HAProxy does (see retryPlan). On success
// ss.srv holds the server with a slot reserved.
//
// The counters follow HAProxy's: every attempt counts as a session on
// its server (stot), a retry on the same server counts a retry (wretr)
// on it, going back to the balancer counts a redispatch (wredis) on the
// server left, or a retry when the balancer picks it again, and only the
// attempt that ends the connection counts a connection error (econ).
func (b *Backend) connect(ctx context.Context, ss *session) (*net.TCPConn, error) {
	var key uint32
	if ta, ok := ss.client.RemoteAddr().(*net.TCPAddr); ok {
		if ip4 := ta.IP.To4(); ip4 != nil {
			key = balance.HashSource(ip4)
		} else {
			key = balance.HashSource(ta.IP)
		}
	}
	srv, err := b.acquire(ctx, ss, nil, key)
	if err != nil {
		b.countQueueError(ss, srv, err)
		return nil, err
	}
	retries := b.cfg.RetriesOrDefault()
	for attempt := 0; ; {
		connStart := time.Now()
		conn, err := b.dialServer(ctx, srv, ss.client.LocalAddr())
		if err == nil {
			if srv.config().SendProxy || srv.config().SendProxyV2 {
				if _, werr := conn.Write(proxyHeader(srv.config().SendProxyV2, ss.client.RemoteAddr(), ss.client.LocalAddr())); werr != nil {
					_ = conn.Close()
					err = werr
				}
			}
		}
		if err == nil {
			ss.srv = srv
			ss.connTime = time.Since(connStart)
			ss.retries = attempt
			return conn, nil
		}
		b.lb.log.Debug("server connection failed", "backend", b.Name, "server", srv.Name, "error", err)
		if attempt >= retries || ctx.Err() != nil {
			srv.stats.connErrors.Add(1)
			b.stats.connErrors.Add(1)
			b.release(srv)
			ss.srv = srv
			ss.retries = attempt
			return nil, err
		}
		attempt++
		redispatch, wait := b.retryPlan(srv, attempt, retries, err)
		if redispatch {
			b.release(srv)
			next, aerr := b.acquire(ctx, ss, srv, key)
			if aerr != nil {
				if next != nil {
					srv = next
				}
				b.countQueueError(ss, next, aerr)
				ss.srv = srv
				return nil, aerr
			}
			srv = next
		} else {
			srv.stats.retries.Add(1)
			b.stats.retries.Add(1)
			srv.stats.attempt()
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
}

// maxTurnAround is the longest pause before retrying a refused
// connection, HAProxy's turn-around time; a shorter "timeout connect"
// shortens it.
const maxTurnAround = time.Second

// retryPlan decides the retry numbered retry (from 1) of a connection
// whose attempt on s failed with err, as HAProxy's
// stream_choose_redispatch does. With "option redispatch" the connection
// goes back to the balancer when s is down, on the last retry, or at
// once when more than one active server is usable and the algorithm does
// not hash (any of them will do); otherwise it retries s. wait is the
// turn-around pause before the next attempt, taken after a refused or
// failed connection (not a timeout) when the retry goes to the same
// server or when at most one active server is usable.
func (b *Backend) retryPlan(s *Server, retry, retries int, err error) (redispatch bool, wait time.Duration) {
	owner := lockOwner(s)
	down := s.admin == AdminMaint || !s.health.Up()
	active := owner.balancer.ActiveUsable()
	owner.mu.Unlock()
	if b.cfg.Options.Redispatch {
		redispatch = down || retry%retries == 0 || active > 1 && b.cfg.Balance != balance.Source
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || redispatch && active > 1 {
		return redispatch, 0
	}
	wait = maxTurnAround
	if c := b.cfg.Timeouts.Connect; c > 0 && c < wait {
		wait = c
	}
	return redispatch, wait
}

// countQueueError counts a connection that found no server slot as a
// connection error, as HAProxy does: on the backend, and on the server
// when one was chosen (its queue was full or timed out); a client that
// left the queue is not counted. srv, when not nil, is logged as the
// connection's server.
func (b *Backend) countQueueError(ss *session, srv *Server, err error) {
	if srv != nil {
		ss.srv = srv
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, errClientAbort) {
		return // not the server's doing
	}
	b.stats.connErrors.Add(1)
	if srv != nil {
		srv.stats.connErrors.Add(1)
	}
}

// route returns the backend for a new connection: the first use_backend
// rule that applies, else default_backend, else the proxy itself for a
// listen section.
func (fe *Frontend) route() *Backend {
	st := fe.lb.current()
	for _, ub := range fe.cfg.UseBackends {
		if ub.CondTrue() {
			if b := st.backends[ub.Backend]; b != nil {
				return b
			}
		}
	}
	if fe.cfg.DefaultBackend != "" {
		return st.backends[fe.cfg.DefaultBackend]
	}
	if fe.cfg.Kind.HasBackend() {
		return st.backends[fe.Name]
	}
	return nil
}
